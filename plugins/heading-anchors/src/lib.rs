//! `render`: gives every heading of delivered HTML an `id` made from its text, so
//! frontends can link to sections (`#getting-started`).
use std::collections::HashMap;

use vellum_plugin_sdk::prelude::*;

#[derive(Default)]
struct HeadingAnchors;

fn anchor(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// The text of an HTML fragment, tags left out and the few entities the host writes
/// turned back into characters.
fn text_of(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"")
}

fn add_anchors(html: &str) -> String {
    let mut out = String::with_capacity(html.len() + 64);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut rest = html;
    while let Some(at) = rest.find("<h") {
        let level = rest.as_bytes().get(at + 2).copied();
        let close = rest.as_bytes().get(at + 3).copied();
        if !matches!(level, Some(b'1'..=b'6')) || close != Some(b'>') {
            out.push_str(&rest[..at + 2]);
            rest = &rest[at + 2..];
            continue;
        }
        let end_tag = format!("</h{}>", level.unwrap() as char);
        let Some(end) = rest[at..].find(&end_tag) else { break };
        let inner = &rest[at + 4..at + end];
        let mut id = anchor(&text_of(inner));
        if id.is_empty() {
            id = "section".into();
        }
        let n = seen.entry(id.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            id = format!("{id}-{n}");
        }
        out.push_str(&rest[..at + 3]);
        out.push_str(&format!(" id=\"{id}\">"));
        out.push_str(inner);
        out.push_str(&end_tag);
        rest = &rest[at + end + end_tag.len()..];
    }
    out.push_str(rest);
    out
}

impl Plugin for HeadingAnchors {
    fn render(&self, _ctx: &Context, _doc: Document, html: String) -> Option<String> {
        html.contains("<h").then(|| add_anchors(&html))
    }
}

register_plugin!(HeadingAnchors);
