//! HTML: rendering ProseMirror JSON, and reading HTML from callers. Both directions go
//! through one `ammonia` allowlist, so nothing outside the schema's tags and attributes
//! (no scripts, no event handlers, no `javascript:` URLs) survives either way.

use std::collections::HashSet;

use ammonia::Builder;
use scraper::{ElementRef, Html, Node};
use serde_json::{Value, json};

use super::schema::{self, mark_rank};

fn sanitizer() -> Builder<'static> {
    let mut b = Builder::empty();
    b.add_tags([
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "ul",
        "ol",
        "li",
        "blockquote",
        "pre",
        "code",
        "hr",
        "br",
        "img",
        "strong",
        "b",
        "em",
        "i",
        "s",
        "strike",
        "del",
        "u",
        "a",
        "div",
        "span",
    ])
    .add_tag_attributes("a", ["href", "target", "rel"])
    .add_tag_attributes("img", ["src", "alt", "title"])
    .add_tag_attributes("ol", ["start"])
    .add_tag_attributes("code", ["class"])
    .url_schemes(HashSet::from(["http", "https", "mailto", "tel"]))
    .link_rel(None)
    .strip_comments(true);
    // Contents of these are dropped entirely, not kept as text.
    b.clean_content_tags(HashSet::from([
        "script", "style", "template", "iframe", "object", "noscript",
    ]));
    b
}

/// Sanitizes arbitrary HTML with the content allowlist.
pub fn sanitize(html: &str) -> String {
    sanitizer().clean(html).to_string()
}

/// Sanitizes HTML that `render` plugins returned: the content allowlist, plus `id` on
/// headings (section anchors). Scripts, event attributes and `javascript:` URLs go,
/// whatever a plugin wrote.
pub fn sanitize_rendered(html: &str) -> String {
    let mut b = sanitizer();
    for h in ["h1", "h2", "h3", "h4", "h5", "h6"] {
        b.add_tag_attributes(h, ["id"]);
    }
    b.clean(html).to_string()
}

/// Renders a ProseMirror `doc` as sanitized HTML.
pub fn render(doc: &Value) -> String {
    let mut out = String::new();
    for n in content(doc) {
        block(n, &mut out);
    }
    sanitize(&out)
}

fn content(n: &Value) -> &[Value] {
    n["content"].as_array().map(Vec::as_slice).unwrap_or_default()
}

fn block(n: &Value, out: &mut String) {
    let a = &n["attrs"];
    match n["type"].as_str().unwrap_or_default() {
        "paragraph" => wrap(out, "p", |o| inline(content(n), o)),
        "heading" => {
            let tag = format!("h{}", a["level"].as_i64().unwrap_or(1).clamp(1, 6));
            wrap(out, &tag, |o| inline(content(n), o));
        }
        "codeBlock" => {
            out.push_str("<pre><code");
            if let Some(lang) = a["language"].as_str() {
                out.push_str(&format!(" class=\"language-{}\"", escape(lang)));
            }
            out.push('>');
            for t in content(n) {
                out.push_str(&escape(t["text"].as_str().unwrap_or_default()));
            }
            out.push_str("</code></pre>");
        }
        "blockquote" => wrap(out, "blockquote", |o| content(n).iter().for_each(|c| block(c, o))),
        "bulletList" => wrap(out, "ul", |o| content(n).iter().for_each(|c| block(c, o))),
        "orderedList" => {
            match a["start"].as_i64() {
                Some(s) if s != 1 => out.push_str(&format!("<ol start=\"{s}\">")),
                _ => out.push_str("<ol>"),
            }
            content(n).iter().for_each(|c| block(c, out));
            out.push_str("</ol>");
        }
        "listItem" => wrap(out, "li", |o| content(n).iter().for_each(|c| block(c, o))),
        "horizontalRule" => out.push_str("<hr>"),
        "image" => image(a, out),
        // Something another editor added that this schema does not know: its content.
        _ if content(n).iter().any(|c| c["type"] == "text") => wrap(out, "p", |o| inline(content(n), o)),
        _ => content(n).iter().for_each(|c| block(c, out)),
    }
}

fn image(a: &Value, out: &mut String) {
    out.push_str(&format!(
        "<img src=\"{}\"",
        escape(a["src"].as_str().unwrap_or_default())
    ));
    for key in ["alt", "title"] {
        if let Some(v) = a[key].as_str() {
            out.push_str(&format!(" {key}=\"{}\"", escape(v)));
        }
    }
    out.push('>');
}

fn wrap(out: &mut String, tag: &str, inner: impl FnOnce(&mut String)) {
    out.push_str(&format!("<{tag}>"));
    inner(out);
    out.push_str(&format!("</{tag}>"));
}

/// Inline content with well-nested marks: a mark stays open across neighbouring text
/// nodes that share it.
fn inline(nodes: &[Value], out: &mut String) {
    let mut open: Vec<&Value> = Vec::new();
    for n in nodes {
        let mut marks: Vec<&Value> = n["marks"].as_array().map(|m| m.iter().collect()).unwrap_or_default();
        marks.sort_by_key(|m| mark_rank(m["type"].as_str().unwrap_or_default()));
        let keep = open.iter().zip(&marks).take_while(|(a, b)| a == b).count();
        while open.len() > keep {
            close_mark(open.pop().expect("non-empty"), out);
        }
        for m in &marks[keep..] {
            open_mark(m, out);
            open.push(m);
        }
        match n["type"].as_str().unwrap_or_default() {
            "text" => out.push_str(&escape(n["text"].as_str().unwrap_or_default())),
            "hardBreak" => out.push_str("<br>"),
            "image" => image(&n["attrs"], out),
            _ => inline(content(n), out),
        }
    }
    while let Some(m) = open.pop() {
        close_mark(m, out);
    }
}

fn mark_tag(name: &str) -> Option<&'static str> {
    Some(match name {
        "bold" => "strong",
        "italic" => "em",
        "strike" => "s",
        "code" => "code",
        "underline" => "u",
        "link" => "a",
        _ => return None,
    })
}

fn open_mark(m: &Value, out: &mut String) {
    let name = m["type"].as_str().unwrap_or_default();
    let Some(tag) = mark_tag(name) else { return };
    if tag != "a" {
        out.push_str(&format!("<{tag}>"));
        return;
    }
    let a = &m["attrs"];
    out.push_str(&format!(
        "<a href=\"{}\"",
        escape(a["href"].as_str().unwrap_or_default())
    ));
    for key in ["target", "rel"] {
        if let Some(v) = a[key].as_str() {
            out.push_str(&format!(" {key}=\"{}\"", escape(v)));
        }
    }
    out.push('>');
}

fn close_mark(m: &Value, out: &mut String) {
    if let Some(tag) = mark_tag(m["type"].as_str().unwrap_or_default()) {
        out.push_str(&format!("</{tag}>"));
    }
}

/// Text escaped for HTML content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut e = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => e.push_str("&amp;"),
            '<' => e.push_str("&lt;"),
            '>' => e.push_str("&gt;"),
            '"' => e.push_str("&quot;"),
            '\'' => e.push_str("&#39;"),
            _ => e.push(c),
        }
    }
    e
}

/// Reads HTML (sanitized first) into a ProseMirror `doc`. Unknown elements count for
/// their content; text outside any block becomes paragraphs.
pub fn parse(html: &str) -> Value {
    let clean = sanitize(html);
    let fragment = Html::parse_fragment(&clean);
    let mut blocks = Vec::new();
    let mut run = Vec::new();
    children_blocks(fragment.root_element(), &mut blocks, &mut run);
    flush(&mut run, &mut blocks);
    json!({ "type": "doc", "content": blocks })
}

/// Parses the children of a block container into `blocks`, gathering inline content
/// in `run` until a block interrupts it.
fn children_blocks(el: ElementRef, blocks: &mut Vec<Value>, run: &mut Vec<Value>) {
    for child in el.children() {
        match child.value() {
            Node::Text(t) => push_text(run, t, &[]),
            Node::Element(_) => {
                let e = ElementRef::wrap(child).expect("an element");
                element(e, blocks, run, &[]);
            }
            _ => {}
        }
    }
}

fn element(e: ElementRef, blocks: &mut Vec<Value>, run: &mut Vec<Value>, marks: &[Value]) {
    let name = e.value().name();
    let level = match name {
        "h1" => 1,
        "h2" => 2,
        "h3" => 3,
        "h4" => 4,
        "h5" => 5,
        "h6" => 6,
        _ => 0,
    };
    match name {
        "p" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
            flush(run, blocks);
            let mut inner = Vec::new();
            let mut nested = Vec::new();
            inline_children(e, &mut nested, &mut inner, &[]);
            let node = if level > 0 {
                json!({ "type": "heading", "attrs": { "level": level } })
            } else {
                json!({ "type": "paragraph" })
            };
            blocks.push(textblock(node, inner));
            blocks.append(&mut nested);
        }
        // A stray list item counts for its content, like a div.
        "div" | "li" => {
            flush(run, blocks);
            children_blocks(e, blocks, run);
            flush(run, blocks);
        }
        "ul" | "ol" => {
            flush(run, blocks);
            let mut items = Vec::new();
            for li in e.children().filter_map(ElementRef::wrap) {
                let mut inner = Vec::new();
                let mut r = Vec::new();
                children_blocks(li, &mut inner, &mut r);
                flush(&mut r, &mut inner);
                if inner.first().is_none_or(|f| f["type"] != "paragraph") {
                    inner.insert(0, json!({ "type": "paragraph" }));
                }
                items.push(json!({ "type": "listItem", "content": inner }));
            }
            if items.is_empty() {
                return;
            }
            let list = if name == "ol" {
                let start = e.attr("start").and_then(|s| s.trim().parse::<i64>().ok()).unwrap_or(1);
                json!({ "type": "orderedList", "attrs": { "start": start.clamp(0, 1_000_000) }, "content": items })
            } else {
                json!({ "type": "bulletList", "content": items })
            };
            blocks.push(list);
        }
        "blockquote" => {
            flush(run, blocks);
            let mut inner = Vec::new();
            let mut r = Vec::new();
            children_blocks(e, &mut inner, &mut r);
            flush(&mut r, &mut inner);
            if inner.is_empty() {
                inner.push(json!({ "type": "paragraph" }));
            }
            blocks.push(json!({ "type": "blockquote", "content": inner }));
        }
        "pre" => {
            flush(run, blocks);
            let code = e
                .children()
                .filter_map(ElementRef::wrap)
                .find(|c| c.value().name() == "code");
            let language = code
                .and_then(|c| c.attr("class"))
                .and_then(|c| c.split_whitespace().find_map(|k| k.strip_prefix("language-")))
                .filter(|l| l.len() <= 40 && l.chars().all(|c| c.is_ascii_alphanumeric() || "+#.-_".contains(c)));
            let text: String = e.text().collect();
            let text = text.strip_suffix('\n').unwrap_or(&text);
            let mut node = json!({ "type": "codeBlock", "attrs": { "language": language } });
            if !text.is_empty() {
                node["content"] = json!([{ "type": "text", "text": text }]);
            }
            blocks.push(node);
        }
        "hr" => {
            flush(run, blocks);
            blocks.push(json!({ "type": "horizontalRule" }));
        }
        "img" => {
            if let Some(img) = image_node(e) {
                flush(run, blocks);
                blocks.push(img);
            }
        }
        _ => inline_element(e, blocks, run, marks),
    }
}

fn image_node(e: ElementRef) -> Option<Value> {
    let src = e.attr("src").filter(|s| !s.trim().is_empty() && schema::safe_url(s))?;
    Some(json!({ "type": "image", "attrs": { "src": src, "alt": e.attr("alt"), "title": e.attr("title") } }))
}

/// Inline content of a textblock. Blocks found inside (invalid HTML, or an image) go
/// to `nested`, after the textblock.
fn inline_children(e: ElementRef, nested: &mut Vec<Value>, run: &mut Vec<Value>, marks: &[Value]) {
    for child in e.children() {
        match child.value() {
            Node::Text(t) => push_text(run, t, marks),
            Node::Element(_) => {
                let c = ElementRef::wrap(child).expect("an element");
                match c.value().name() {
                    "img" => nested.extend(image_node(c)),
                    _ => inline_element(c, nested, run, marks),
                }
            }
            _ => {}
        }
    }
}

fn inline_element(e: ElementRef, blocks: &mut Vec<Value>, run: &mut Vec<Value>, marks: &[Value]) {
    let mark = match e.value().name() {
        "br" => {
            run.push(json!({ "type": "hardBreak" }));
            return;
        }
        "strong" | "b" => Some(json!({ "type": "bold" })),
        "em" | "i" => Some(json!({ "type": "italic" })),
        "s" | "strike" | "del" => Some(json!({ "type": "strike" })),
        "u" => Some(json!({ "type": "underline" })),
        "code" => Some(json!({ "type": "code" })),
        "a" => e.attr("href").filter(|h| schema::safe_url(h)).map(|href| {
            json!({ "type": "link", "attrs": { "href": href, "target": e.attr("target"), "rel": e.attr("rel"), "class": null } })
        }),
        _ => None,
    };
    let mut inner_marks = marks.to_vec();
    if let Some(m) = mark
        && !inner_marks.iter().any(|x| x["type"] == m["type"])
    {
        inner_marks.push(m);
    }
    for child in e.children() {
        match child.value() {
            Node::Text(t) => push_text(run, t, &inner_marks),
            Node::Element(_) => {
                let c = ElementRef::wrap(child).expect("an element");
                element(c, blocks, run, &inner_marks);
            }
            _ => {}
        }
    }
}

/// Adds text with HTML whitespace collapsing.
fn push_text(run: &mut Vec<Value>, text: &str, marks: &[Value]) {
    let mut collapsed = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_ascii_whitespace() {
            space = true;
        } else {
            if space {
                collapsed.push(' ');
            }
            space = false;
            collapsed.push(c);
        }
    }
    if space {
        collapsed.push(' ');
    }
    if collapsed.is_empty() {
        return;
    }
    // A space after a space (or a line start) collapses away.
    let prev_space = run
        .last()
        .is_none_or(|p| p["type"] == "hardBreak" || p["text"].as_str().is_some_and(|t| t.ends_with(' ')));
    if prev_space && collapsed.starts_with(' ') {
        collapsed.remove(0);
        if collapsed.is_empty() {
            return;
        }
    }
    let mut node = json!({ "type": "text", "text": collapsed });
    if !marks.is_empty() {
        node["marks"] = Value::Array(marks.to_vec());
    }
    run.push(node);
}

/// Ends an inline run: a paragraph, unless it is only whitespace.
fn flush(run: &mut Vec<Value>, blocks: &mut Vec<Value>) {
    let inner = std::mem::take(run);
    let p = textblock(json!({ "type": "paragraph" }), inner);
    if p.get("content").is_some() {
        blocks.push(p);
    }
}

/// A textblock holding `inner`, its trailing spaces trimmed.
fn textblock(mut node: Value, mut inner: Vec<Value>) -> Value {
    if let Some(last) = inner.last_mut()
        && let Some(t) = last["text"].as_str()
    {
        let trimmed = t.trim_end().to_string();
        if trimmed.is_empty() {
            inner.pop();
        } else {
            last["text"] = Value::String(trimmed);
        }
    }
    if !inner.is_empty() {
        node["content"] = Value::Array(inner);
    }
    node
}
