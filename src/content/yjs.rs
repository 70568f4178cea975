//! The body `XmlFragment` ↔ ProseMirror JSON, in the shape `y-prosemirror` (TipTap's
//! Collaboration extension) reads and writes:
//! - a node is an `XmlElement` named after its type, with its non-null attributes as
//!   element attributes (numbers stay numbers);
//! - the text of a textblock is an `XmlText` whose formatting attributes are the marks,
//!   each keyed by mark name with the mark's attributes as value (`{}` when it has none);
//!   consecutive text nodes share one `XmlText`; inline nodes (hard break, image) are
//!   elements between them.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use yrs::types::Attrs;
use yrs::types::Delta;
use yrs::types::text::YChange;
use yrs::types::xml::{XmlDeltaPrelim, XmlIn};
use yrs::{
    Any, Doc, In, Out, ReadTxn, Text, Transact, TransactionMut, Xml, XmlElementPrelim, XmlElementRef, XmlFragment,
    XmlFragmentRef, XmlOut, XmlTextRef,
};

use super::FRAGMENT;
use super::schema;

/// The whole fragment as a ProseMirror `doc` node.
pub fn fragment_json<T: ReadTxn>(txn: &T, frag: &XmlFragmentRef) -> Value {
    let mut content = Vec::new();
    for child in frag.children(txn) {
        push_node(txn, child, &mut content);
    }
    node("doc", None, content)
}

/// The body of `doc` as ProseMirror JSON (an empty `doc` when it has none).
pub fn doc_json(doc: &Doc) -> Value {
    let txn = doc.transact();
    match txn.get_xml_fragment(FRAGMENT) {
        Some(frag) => fragment_json(&txn, &frag),
        None => node("doc", None, Vec::new()),
    }
}

pub(super) fn push_node<T: ReadTxn>(txn: &T, child: XmlOut, out: &mut Vec<Value>) {
    match child {
        XmlOut::Element(el) => out.push(element_json(txn, &el)),
        XmlOut::Text(text) => out.extend(text_nodes(txn, &text)),
        XmlOut::Fragment(f) => {
            for c in f.children(txn) {
                push_node(txn, c, out);
            }
        }
    }
}

fn element_json<T: ReadTxn>(txn: &T, el: &XmlElementRef) -> Value {
    let name = el.tag().to_string();
    let mut attrs = Map::new();
    for (key, value) in el.attributes(txn) {
        if let Out::Any(any) = value
            && !matches!(any, Any::Null | Any::Undefined)
        {
            attrs.insert(key.to_string(), any_json(&any));
        }
    }
    schema::fill_defaults(&name, &mut attrs);
    let mut content = Vec::new();
    for child in el.children(txn) {
        push_node(txn, child, &mut content);
    }
    node(&name, (!attrs.is_empty()).then_some(attrs), content)
}

fn text_nodes<T: ReadTxn>(txn: &T, text: &XmlTextRef) -> Vec<Value> {
    let mut out = Vec::new();
    for chunk in text.diff(txn, YChange::identity) {
        let Out::Any(Any::String(s)) = chunk.insert else {
            continue;
        };
        if s.is_empty() {
            continue;
        }
        let mut marks: Vec<(String, Value)> = Vec::new();
        for (key, value) in chunk.attributes.iter().flat_map(|a| a.iter()) {
            // y-prosemirror names a second mark of one type `type--hash`.
            let name = key.split("--").next().unwrap_or(key).to_string();
            let mark = match value {
                Any::Null | Any::Undefined | Any::Bool(false) => continue,
                Any::Map(m) if !m.is_empty() => {
                    let attrs: Map<String, Value> = m.iter().map(|(k, v)| (k.clone(), any_json(v))).collect();
                    json!({ "type": name, "attrs": attrs })
                }
                _ => json!({ "type": name }),
            };
            marks.push((name, mark));
        }
        marks.sort_by(|a, b| {
            schema::mark_rank(&a.0)
                .cmp(&schema::mark_rank(&b.0))
                .then(a.0.cmp(&b.0))
        });
        let mut t = json!({ "type": "text", "text": &*s });
        if !marks.is_empty() {
            t["marks"] = Value::Array(marks.into_iter().map(|(_, m)| m).collect());
        }
        out.push(t);
    }
    out
}

fn node(name: &str, attrs: Option<Map<String, Value>>, content: Vec<Value>) -> Value {
    let mut n = Map::new();
    n.insert("type".into(), Value::String(name.into()));
    if let Some(a) = attrs {
        n.insert("attrs".into(), Value::Object(a));
    }
    if !content.is_empty() {
        n.insert("content".into(), Value::Array(content));
    }
    Value::Object(n)
}

/// Inserts ProseMirror block `node` as child `index` of `parent`.
/// `node` must be valid (see [`schema::validate`]).
pub fn insert_node(txn: &mut TransactionMut, parent: &impl XmlFragment, index: u32, node: &Value) {
    let name = node["type"].as_str().unwrap_or("paragraph");
    let el = parent.insert(txn, index, XmlElementPrelim::empty(name));
    fill_element(txn, &el, node);
}

fn fill_element(txn: &mut TransactionMut, el: &XmlElementRef, node: &Value) {
    if let Some(attrs) = node["attrs"].as_object() {
        for (key, value) in attrs {
            if !value.is_null() {
                el.insert_attribute(txn, key.as_str(), json_any(value));
            }
        }
    }
    let children = node["content"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut i = 0;
    while i < children.len() {
        if children[i]["type"] == "text" {
            // A run of text nodes is one XmlText.
            let mut delta = Vec::new();
            while i < children.len() && children[i]["type"] == "text" {
                let t = &children[i];
                let text = t["text"].as_str().unwrap_or_default();
                delta.push(Delta::Inserted(In::Any(Any::from(text)), Some(Box::new(mark_attrs(t)))));
                i += 1;
            }
            let prelim = XmlDeltaPrelim {
                attributes: HashMap::new(),
                delta,
            };
            let len = el.len(txn);
            el.insert(txn, len, XmlIn::Text(prelim));
        } else {
            let len = el.len(txn);
            insert_node(txn, el, len, &children[i]);
            i += 1;
        }
    }
}

fn mark_attrs(text: &Value) -> Attrs {
    let mut attrs = Attrs::new();
    for mark in text["marks"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let Some(name) = mark["type"].as_str() else { continue };
        let value = match mark.get("attrs") {
            Some(Value::Object(_)) => json_any(&mark["attrs"]),
            _ => Any::Map(Arc::default()),
        };
        attrs.insert(Arc::from(name), value);
    }
    attrs
}

pub fn any_json(any: &Any) -> Value {
    match any {
        Any::Null | Any::Undefined => Value::Null,
        Any::Bool(b) => Value::Bool(*b),
        Any::Number(n) => match n.as_i64() {
            Some(i) => json!(i),
            None => json!(n.as_f64()),
        },
        Any::String(s) => Value::String(s.to_string()),
        Any::Buffer(b) => Value::Array(b.iter().map(|x| json!(x)).collect()),
        Any::Array(a) => Value::Array(a.iter().map(any_json).collect()),
        Any::Map(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), any_json(v))).collect()),
    }
}

/// JSON to a Yjs value. Whole numbers become integers, which Yjs clients read as plain
/// numbers (a heading's `level` must stay the number 1, not "1" or 1.0).
pub fn json_any(v: &Value) -> Any {
    match v {
        Value::Null => Any::Null,
        Value::Bool(b) => Any::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Any::from(i),
            None => Any::from(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => Any::from(s.as_str()),
        Value::Array(a) => Any::Array(a.iter().map(json_any).collect()),
        Value::Object(o) => Any::Map(Arc::new(o.iter().map(|(k, v)| (k.clone(), json_any(v))).collect())),
    }
}
