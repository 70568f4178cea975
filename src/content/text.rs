//! Plain text: the text of every textblock, blocks separated by a blank line (as
//! TipTap's `getText()`), hard breaks as newlines. What search and diffs work on.

use serde_json::Value;

use super::schema::TEXTBLOCKS;

pub fn render(doc: &Value) -> String {
    let mut blocks = Vec::new();
    collect(doc, &mut blocks);
    blocks.join("\n\n")
}

fn collect(n: &Value, out: &mut Vec<String>) {
    let children = n["content"].as_array().map(Vec::as_slice).unwrap_or_default();
    let name = n["type"].as_str().unwrap_or_default();
    if TEXTBLOCKS.contains(&name) || children.iter().any(|c| c["type"] == "text") {
        let mut s = String::new();
        inline(children, &mut s);
        out.push(s);
        return;
    }
    for c in children {
        collect(c, out);
    }
}

fn inline(nodes: &[Value], s: &mut String) {
    for n in nodes {
        match n["type"].as_str().unwrap_or_default() {
            "text" => s.push_str(n["text"].as_str().unwrap_or_default()),
            "hardBreak" => s.push('\n'),
            _ => inline(n["content"].as_array().map(Vec::as_slice).unwrap_or_default(), s),
        }
    }
}
