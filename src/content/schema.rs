//! The content schema: TipTap StarterKit's nodes and marks (plus underline, link and
//! image), their default attributes, and validation of ProseMirror JSON from callers.

use serde_json::{Map, Value, json};

use super::Invalid;

/// Blocks whose content is inline (text and inline nodes).
pub const TEXTBLOCKS: &[&str] = &["paragraph", "heading", "codeBlock"];
/// Blocks whose content is other blocks.
const CONTAINERS: &[&str] = &["blockquote", "bulletList", "orderedList", "listItem"];
const LEAF_BLOCKS: &[&str] = &["horizontalRule", "image"];
const INLINE: &[&str] = &["text", "hardBreak"];
/// Marks in the order they are listed (and nested: the first is outermost).
pub const MARKS: &[&str] = &["link", "bold", "italic", "underline", "strike", "code"];

/// Largest nesting accepted from callers (lists in quotes in lists…).
const MAX_DEPTH: usize = 48;
/// Most nodes accepted in one body.
const MAX_NODES: usize = 200_000;

pub fn mark_rank(name: &str) -> usize {
    MARKS.iter().position(|m| *m == name).unwrap_or(MARKS.len())
}

/// Adds the attributes a node type has by default and `attrs` lacks, as TipTap's
/// `getJSON()` shows them (Yjs stores only non-null attributes).
pub fn fill_defaults(node: &str, attrs: &mut Map<String, Value>) {
    let defaults = match node {
        "heading" => json!({ "level": 1 }),
        "codeBlock" => json!({ "language": null }),
        "orderedList" => json!({ "start": 1 }),
        "image" => json!({ "src": null, "alt": null, "title": null }),
        _ => return,
    };
    for (k, v) in defaults.as_object().into_iter().flatten() {
        attrs.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

/// Whether a URL may appear in a link or image: http(s), mailto, tel, or relative.
pub fn safe_url(url: &str) -> bool {
    let u = url.trim();
    let scheme_end = u.find(':');
    let path_start = u.find(['/', '?', '#']).unwrap_or(u.len());
    match scheme_end {
        // No scheme (or a colon only after the path starts): relative.
        None => true,
        Some(i) if i > path_start => true,
        Some(i) => matches!(
            u[..i].to_ascii_lowercase().as_str(),
            "http" | "https" | "mailto" | "tel"
        ),
    }
}

/// Checks a ProseMirror `doc` from a caller against the schema.
pub fn validate(doc: &Value) -> Result<(), Invalid> {
    if doc["type"] != "doc" {
        return Err(Invalid::new("json.type", "the root node must be {\"type\": \"doc\"}"));
    }
    let mut count = 0;
    children(doc, "json", Kind::Blocks, 0, &mut count)
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Blocks,
    Inline,
    /// A code block: plain text only.
    Code,
    ListItems,
}

fn children(node: &Value, path: &str, kind: Kind, depth: usize, count: &mut usize) -> Result<(), Invalid> {
    let content = match node.get("content") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(c)) => c,
        Some(_) => return Err(Invalid::new(format!("{path}.content"), "must be an array of nodes")),
    };
    if depth > MAX_DEPTH {
        return Err(Invalid::new(path, format!("nested more than {MAX_DEPTH} levels deep")));
    }
    for (i, child) in content.iter().enumerate() {
        *count += 1;
        if *count > MAX_NODES {
            return Err(Invalid::new(path, format!("more than {MAX_NODES} nodes")));
        }
        let p = format!("{path}.content[{i}]");
        let Some(name) = child["type"].as_str() else {
            return Err(Invalid::new(format!("{p}.type"), "every node needs a string `type`"));
        };
        let allowed = match kind {
            Kind::Blocks => {
                TEXTBLOCKS.contains(&name)
                    || CONTAINERS.contains(&name) && name != "listItem"
                    || LEAF_BLOCKS.contains(&name)
            }
            // TipTap's image is a block; an inline one would be dropped by the editor.
            Kind::Inline => INLINE.contains(&name),
            Kind::Code => name == "text",
            Kind::ListItems => name == "listItem",
        };
        if !allowed {
            let known = TEXTBLOCKS
                .iter()
                .chain(CONTAINERS)
                .chain(LEAF_BLOCKS)
                .chain(INLINE)
                .any(|n| *n == name);
            let message = if known {
                format!("`{name}` is not allowed here")
            } else {
                format!("unknown node type `{name}`")
            };
            return Err(Invalid::new(format!("{p}.type"), message));
        }
        attrs(child, name, &p)?;
        match name {
            "text" => text(child, &p, kind)?,
            "codeBlock" => children(child, &p, Kind::Code, depth + 1, count)?,
            "paragraph" | "heading" => children(child, &p, Kind::Inline, depth + 1, count)?,
            "bulletList" | "orderedList" => children(child, &p, Kind::ListItems, depth + 1, count)?,
            "blockquote" | "listItem" => children(child, &p, Kind::Blocks, depth + 1, count)?,
            _ if child.get("content").is_some_and(|c| !c.is_null()) => {
                return Err(Invalid::new(format!("{p}.content"), format!("`{name}` has no content")));
            }
            _ => {}
        }
        // ProseMirror refuses (and the editor then drops) containers without content,
        // and list items that do not start with a paragraph.
        let first = child["content"].get(0);
        if CONTAINERS.contains(&name) && first.is_none() {
            return Err(Invalid::new(
                format!("{p}.content"),
                format!("`{name}` needs at least one child"),
            ));
        }
        if name == "listItem" && first.is_some_and(|f| f["type"] != "paragraph") {
            return Err(Invalid::new(
                format!("{p}.content[0]"),
                "a list item starts with a paragraph",
            ));
        }
    }
    Ok(())
}

fn text(node: &Value, path: &str, kind: Kind) -> Result<(), Invalid> {
    match node["text"].as_str() {
        Some(t) if !t.is_empty() => {}
        _ => {
            return Err(Invalid::new(
                format!("{path}.text"),
                "a text node needs non-empty `text`",
            ));
        }
    }
    let marks = match node.get("marks") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(m)) => m,
        Some(_) => return Err(Invalid::new(format!("{path}.marks"), "must be an array of marks")),
    };
    if kind == Kind::Code && !marks.is_empty() {
        return Err(Invalid::new(
            format!("{path}.marks"),
            "text in a code block has no marks",
        ));
    }
    for (i, mark) in marks.iter().enumerate() {
        let p = format!("{path}.marks[{i}]");
        let name = mark["type"].as_str().unwrap_or_default();
        if !MARKS.contains(&name) {
            return Err(Invalid::new(format!("{p}.type"), format!("unknown mark `{name}`")));
        }
        match mark.get("attrs") {
            None | Some(Value::Null) | Some(Value::Object(_)) => {}
            Some(_) => return Err(Invalid::new(format!("{p}.attrs"), "must be an object")),
        }
        if name == "link" {
            match mark["attrs"]["href"].as_str() {
                Some(href) if safe_url(href) => {}
                Some(_) => {
                    return Err(Invalid::new(
                        format!("{p}.attrs.href"),
                        "only http, https, mailto, tel and relative links are allowed",
                    ));
                }
                None => return Err(Invalid::new(format!("{p}.attrs.href"), "a link needs a string `href`")),
            }
        }
        scalars(&mark["attrs"], &p)?;
    }
    Ok(())
}

fn attrs(node: &Value, name: &str, path: &str) -> Result<(), Invalid> {
    let a = &node["attrs"];
    if !(a.is_null() || a.is_object()) {
        return Err(Invalid::new(format!("{path}.attrs"), "must be an object"));
    }
    scalars(a, path)?;
    let p = |k: &str| format!("{path}.attrs.{k}");
    match name {
        "heading" => match a["level"].as_i64() {
            Some(1..=6) => {}
            _ if a["level"].is_null() => {}
            _ => return Err(Invalid::new(p("level"), "must be a whole number from 1 to 6")),
        },
        "orderedList"
            if !(a["start"].is_null() || a["start"].as_i64().is_some_and(|s| (0..=1_000_000).contains(&s))) =>
        {
            return Err(Invalid::new(p("start"), "must be a whole number from 0"));
        }
        "codeBlock" => {
            let ok = match &a["language"] {
                Value::Null => true,
                Value::String(l) => {
                    l.len() <= 40 && l.chars().all(|c| c.is_ascii_alphanumeric() || "+#.-_".contains(c))
                }
                _ => false,
            };
            if !ok {
                return Err(Invalid::new(p("language"), "must be a short language name like `rust`"));
            }
        }
        "image" => match a["src"].as_str() {
            Some(src) if !src.trim().is_empty() && safe_url(src) => {}
            _ => return Err(Invalid::new(p("src"), "an image needs an http(s) or relative `src`")),
        },
        _ => {}
    }
    Ok(())
}

/// Attribute values are plain: strings, numbers, booleans or null.
fn scalars(attrs: &Value, path: &str) -> Result<(), Invalid> {
    for (k, v) in attrs.as_object().into_iter().flatten() {
        if v.is_object() || v.is_array() {
            return Err(Invalid::new(
                format!("{path}.attrs.{k}"),
                "attribute values must be plain values",
            ));
        }
    }
    Ok(())
}
