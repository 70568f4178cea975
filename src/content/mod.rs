//! Document bodies. A body lives in the Yjs document as the `XmlFragment` named
//! `default` (what TipTap's Collaboration extension edits); this module converts it to
//! and from ProseMirror JSON, and from that to HTML, Markdown and plain text.
//!
//! Invariants:
//! - ProseMirror JSON is the hub: every format converts through it, and everything a
//!   caller sends is validated against [`schema`] before it touches a document, so an
//!   editor never receives a node it would have to drop.
//! - HTML in either direction passes one sanitizer allowlist.
//! - Writing a body into a live document changes only the top-level blocks that differ
//!   ([`replace_blocks`]); blocks that are equal keep their Yjs identity, so edits made
//!   in them concurrently merge instead of being overwritten.

pub mod diff;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod html;
pub use html::sanitize_rendered;
mod markdown;
mod schema;
mod text;
mod yjs;

use serde_json::{Value, json};
use similar::{Algorithm, DiffOp, capture_diff_slices};
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, Transact, TransactionMut, Update, WriteTxn, XmlFragment};

pub use html::sanitize as sanitize_html;

/// The name of the body fragment in every document.
pub const FRAGMENT: &str = "default";

/// Input that does not fit the content schema: where (a JSON path such as
/// `json.content[2].attrs.level`) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub path: String,
    pub message: String,
}

impl Invalid {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A body given by a caller, in one of the accepted formats.
#[derive(Debug, Clone)]
pub enum BodyInput {
    Html(String),
    Markdown(String),
    Json(Value),
}

impl BodyInput {
    /// The one format given (`field` names the input in the error when none or several are).
    pub fn one_of(
        field: &str,
        html: Option<String>,
        markdown: Option<String>,
        json: Option<Value>,
    ) -> Result<Self, Invalid> {
        match (html, markdown, json) {
            (Some(h), None, None) => Ok(Self::Html(h)),
            (None, Some(m), None) => Ok(Self::Markdown(m)),
            (None, None, Some(j)) => Ok(Self::Json(j)),
            _ => Err(Invalid::new(field, "give exactly one of html, markdown and json")),
        }
    }
}

/// A body as ProseMirror JSON, rendered to the other formats on demand.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    json: Value,
    /// The HTML as `render` plugins left it (already sanitized), when they changed it.
    html: Option<String>,
}

impl Body {
    /// The body of a live or loaded document.
    pub fn from_doc(doc: &Doc) -> Self {
        Self {
            json: yjs::doc_json(doc),
            html: None,
        }
    }

    /// The body held in an encoded Yjs state (a v1 update, as stored for versions).
    pub fn from_state(state: &[u8]) -> anyhow::Result<Self> {
        Ok(Self::from_doc(&doc_from_state(state)?))
    }

    pub fn empty() -> Self {
        Self {
            json: json!({ "type": "doc" }),
            html: None,
        }
    }

    pub fn json(&self) -> &Value {
        &self.json
    }
    pub fn into_json(self) -> Value {
        self.json
    }
    /// This body with its HTML replaced (by `render` plugins, after the sanitizer).
    pub fn with_html(self, html: String) -> Self {
        Self {
            html: Some(html),
            ..self
        }
    }
    pub fn html(&self) -> String {
        if let Some(h) = &self.html {
            return h.clone();
        }
        html::render(&self.json)
    }
    pub fn markdown(&self) -> String {
        markdown::render(&self.json)
    }
    pub fn text(&self) -> String {
        text::render(&self.json)
    }
}

/// A fresh document holding an encoded state.
pub fn doc_from_state(state: &[u8]) -> anyhow::Result<Doc> {
    let doc = Doc::new();
    if !state.is_empty() {
        let update = Update::decode_v1(state).map_err(|e| anyhow::anyhow!("stored state does not decode: {e}"))?;
        doc.transact_mut()
            .apply_update(update)
            .map_err(|e| anyhow::anyhow!("stored state does not apply: {e}"))?;
    }
    Ok(doc)
}

/// Checks and normalizes a caller's body: the ProseMirror JSON it stands for, exactly
/// as it will read back from the document (default attributes filled in, neighbouring
/// text with equal marks merged).
pub fn parse_input(input: BodyInput) -> Result<Value, Invalid> {
    let (doc, prefix) = match input {
        BodyInput::Json(v) => (v, "json"),
        BodyInput::Html(h) => (html::parse(&h), "html"),
        BodyInput::Markdown(m) => (markdown::parse(&m), "markdown"),
    };
    schema::validate(&doc).map_err(|e| {
        if prefix == "json" {
            e
        } else {
            // Parsers only build valid documents; say which input produced this one.
            Invalid::new(prefix, format!("could not be converted: {}: {}", e.path, e.message))
        }
    })?;
    Ok(normalize(&doc))
}

/// `doc` as it reads back after being written into a Yjs document.
fn normalize(doc: &Value) -> Value {
    let scratch = Doc::new();
    {
        let mut txn = scratch.transact_mut();
        let frag = txn.get_or_insert_xml_fragment(FRAGMENT);
        for (i, block) in blocks(doc).iter().enumerate() {
            yjs::insert_node(&mut txn, &frag, i as u32, block);
        }
    }
    yjs::doc_json(&scratch)
}

fn blocks(doc: &Value) -> &[Value] {
    doc["content"].as_array().map(Vec::as_slice).unwrap_or_default()
}

/// Makes the body in `txn`'s document equal to `target` (a normalized `doc`, see
/// [`parse_input`]) by deleting and inserting only the top-level blocks that differ.
/// Returns whether anything changed.
pub fn replace_blocks(txn: &mut TransactionMut, target: &Value) -> bool {
    merge_blocks(txn, None, target)
}

/// Applies the change from `base` to `target` (both normalized `doc`s) to the body in
/// `txn`'s document, block by block: blocks the change deletes or replaces are removed
/// only if they are still as in `base`, so a block someone edited meanwhile is kept
/// (next to the new one when both changed it); new blocks go where the change puts
/// them. Without a base, the live body is the base: the result equals `target`.
/// Returns whether anything changed.
pub fn merge_blocks(txn: &mut TransactionMut, base: Option<&Value>, target: &Value) -> bool {
    let frag = txn.get_or_insert_xml_fragment(FRAGMENT);
    let current: Vec<String> = frag
        .children(&*txn)
        .map(|child| {
            let mut nodes = Vec::new();
            yjs::push_node(&*txn, child, &mut nodes);
            Value::Array(nodes).to_string()
        })
        .collect();
    let key = |b: &Value| json!([b]).to_string();
    let base_keys: Vec<String> = match base {
        Some(b) => blocks(b).iter().map(key).collect(),
        None => current.clone(),
    };
    let wanted = blocks(target);
    let wanted_keys: Vec<String> = wanted.iter().map(key).collect();

    // Where each base block is in the live body, if it is still unchanged there.
    let mut live_index: Vec<Option<usize>> = vec![None; base_keys.len()];
    for op in capture_diff_slices(Algorithm::Myers, &base_keys, &current) {
        if let DiffOp::Equal {
            old_index,
            new_index,
            len,
        } = op
        {
            for k in 0..len {
                live_index[old_index + k] = Some(new_index + k);
            }
        }
    }
    // The live position before which blocks inserted at base position `b` go.
    let anchor = |b: usize| live_index[b..].iter().find_map(|i| *i).unwrap_or(current.len());

    let mut deletes = vec![false; current.len()];
    // (live position, new block index), in order.
    let mut inserts: Vec<(usize, usize)> = Vec::new();
    for op in capture_diff_slices(Algorithm::Myers, &base_keys, &wanted_keys) {
        let (old, new) = match op {
            DiffOp::Equal { .. } => continue,
            DiffOp::Delete { old_index, old_len, .. } => (old_index..old_index + old_len, 0..0),
            DiffOp::Insert {
                old_index,
                new_index,
                new_len,
            } => (old_index..old_index, new_index..new_index + new_len),
            DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => (old_index..old_index + old_len, new_index..new_index + new_len),
        };
        let at = old
            .clone()
            .find_map(|b| live_index[b])
            .unwrap_or_else(|| anchor(old.end));
        for b in old {
            if let Some(i) = live_index[b] {
                deletes[i] = true;
            }
        }
        inserts.extend(new.map(|n| (at, n)));
    }
    if inserts.is_empty() && !deletes.contains(&true) {
        return false;
    }
    // From the end, so that earlier positions stay valid.
    for pos in (0..=current.len()).rev() {
        if pos < current.len() && deletes[pos] {
            frag.remove_range(txn, pos as u32, 1);
        }
        for &(_, n) in inserts.iter().filter(|(at, _)| *at == pos).rev() {
            yjs::insert_node(txn, &frag, pos as u32, &wanted[n]);
        }
    }
    true
}

/// The encoded state of a document (a v1 update from nothing), as versions store it.
pub fn encode_state(doc: &Doc) -> Vec<u8> {
    doc.transact().encode_state_as_update_v1(&yrs::StateVector::default())
}
