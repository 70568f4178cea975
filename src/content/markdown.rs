//! Markdown (CommonMark, plus `~~strike~~`): parsed with `pulldown-cmark`, written
//! with `pulldown-cmark-to-cmark`. Underline has no Markdown syntax and is written as
//! `<u>…</u>`, which the reader understands again; other raw HTML is dropped.

use pulldown_cmark::{CodeBlockKind, CowStr, Event, HeadingLevel, LinkType, Options, Parser, Tag, TagEnd};
use serde_json::{Value, json};

use super::schema::{self, mark_rank};

/// Renders a ProseMirror `doc` as Markdown.
pub fn render(doc: &Value) -> String {
    let mut events = Vec::new();
    for n in content(doc) {
        block(n, &mut events, false);
    }
    let mut out = String::new();
    if pulldown_cmark_to_cmark::cmark(events.iter(), &mut out, Options::ENABLE_STRIKETHROUGH).is_err() {
        return String::new();
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn content(n: &Value) -> &[Value] {
    n["content"].as_array().map(Vec::as_slice).unwrap_or_default()
}

fn s(v: &Value) -> CowStr<'static> {
    CowStr::from(v.as_str().unwrap_or_default().to_string())
}

fn heading_level(l: i64) -> HeadingLevel {
    match l {
        2 => HeadingLevel::H2,
        3 => HeadingLevel::H3,
        4 => HeadingLevel::H4,
        5 => HeadingLevel::H5,
        6 => HeadingLevel::H6,
        _ => HeadingLevel::H1,
    }
}

/// `tight`: the first paragraph of a list item, written without blank lines around it.
fn block(n: &Value, ev: &mut Vec<Event<'static>>, tight: bool) {
    let a = &n["attrs"];
    match n["type"].as_str().unwrap_or_default() {
        "paragraph" if tight => inline(content(n), ev),
        "paragraph" => {
            ev.push(Event::Start(Tag::Paragraph));
            inline(content(n), ev);
            ev.push(Event::End(TagEnd::Paragraph));
        }
        "heading" => {
            let level = heading_level(a["level"].as_i64().unwrap_or(1));
            ev.push(Event::Start(Tag::Heading {
                level,
                id: None,
                classes: vec![],
                attrs: vec![],
            }));
            inline(content(n), ev);
            ev.push(Event::End(TagEnd::Heading(level)));
        }
        "codeBlock" => {
            let lang = a["language"].as_str().unwrap_or_default().to_string();
            ev.push(Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(lang.into()))));
            let mut text: String = content(n).iter().filter_map(|t| t["text"].as_str()).collect();
            if !text.is_empty() {
                text.push('\n');
                ev.push(Event::Text(text.into()));
            }
            ev.push(Event::End(TagEnd::CodeBlock));
        }
        "blockquote" => {
            ev.push(Event::Start(Tag::BlockQuote(None)));
            content(n).iter().for_each(|c| block(c, ev, false));
            ev.push(Event::End(TagEnd::BlockQuote(None)));
        }
        "bulletList" | "orderedList" => {
            let ordered = n["type"] == "orderedList";
            let start = ordered.then(|| a["start"].as_u64().unwrap_or(1));
            ev.push(Event::Start(Tag::List(start)));
            for item in content(n) {
                ev.push(Event::Start(Tag::Item));
                // A lone paragraph is written tight. Followed by more blocks it stays a
                // paragraph: a nested list could not interrupt it otherwise.
                let children = content(item);
                for c in children {
                    block(c, ev, children.len() == 1);
                }
                ev.push(Event::End(TagEnd::Item));
            }
            ev.push(Event::End(TagEnd::List(ordered)));
        }
        "horizontalRule" => ev.push(Event::Rule),
        "image" => {
            ev.push(Event::Start(Tag::Paragraph));
            image(a, ev);
            ev.push(Event::End(TagEnd::Paragraph));
        }
        _ => content(n).iter().for_each(|c| block(c, ev, tight)),
    }
}

fn image(a: &Value, ev: &mut Vec<Event<'static>>) {
    ev.push(Event::Start(Tag::Image {
        link_type: LinkType::Inline,
        dest_url: s(&a["src"]),
        title: s(&a["title"]),
        id: "".into(),
    }));
    if let Some(alt) = a["alt"].as_str().filter(|t| !t.is_empty()) {
        ev.push(Event::Text(alt.to_string().into()));
    }
    ev.push(Event::End(TagEnd::Image));
}

/// Inline content; marks stay open across neighbouring text nodes that share them.
/// The code mark is innermost: its text is one code span.
fn inline(nodes: &[Value], ev: &mut Vec<Event<'static>>) {
    let mut open: Vec<&Value> = Vec::new();
    for n in nodes {
        let mut marks: Vec<&Value> = n["marks"]
            .as_array()
            .map(|m| m.iter().filter(|m| m["type"] != "code").collect())
            .unwrap_or_default();
        marks.sort_by_key(|m| mark_rank(m["type"].as_str().unwrap_or_default()));
        let keep = open.iter().zip(&marks).take_while(|(a, b)| a == b).count();
        while open.len() > keep {
            ev.push(mark_event(open.pop().expect("non-empty"), false));
        }
        for m in &marks[keep..] {
            ev.push(mark_event(m, true));
            open.push(m);
        }
        let code = n["marks"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["type"] == "code"));
        match n["type"].as_str().unwrap_or_default() {
            "text" if code => ev.push(Event::Code(s(&n["text"]))),
            "text" => ev.push(Event::Text(s(&n["text"]))),
            "hardBreak" => ev.push(Event::HardBreak),
            "image" => image(&n["attrs"], ev),
            _ => inline(content(n), ev),
        }
    }
    while let Some(m) = open.pop() {
        ev.push(mark_event(m, false));
    }
}

fn mark_event(m: &Value, start: bool) -> Event<'static> {
    let tag = match m["type"].as_str().unwrap_or_default() {
        "bold" => Tag::Strong,
        "italic" => Tag::Emphasis,
        "strike" => Tag::Strikethrough,
        "link" => Tag::Link {
            link_type: LinkType::Inline,
            dest_url: s(&m["attrs"]["href"]),
            title: "".into(),
            id: "".into(),
        },
        _ => return Event::InlineHtml(if start { "<u>" } else { "</u>" }.into()),
    };
    if start {
        Event::Start(tag)
    } else {
        Event::End(tag.to_end())
    }
}

/// A node being built, with the content gathered so far.
struct Frame {
    node: Value,
    content: Vec<Value>,
    /// A paragraph opened for loose inline content (a tight list item's text).
    implicit: bool,
}

impl Frame {
    fn new(node: Value) -> Self {
        Self {
            node,
            content: Vec::new(),
            implicit: false,
        }
    }
    fn is_textblock(&self) -> bool {
        schema::TEXTBLOCKS.contains(&self.node["type"].as_str().unwrap_or_default())
    }
}

struct Reader {
    stack: Vec<Frame>,
    /// Open marks; `None` for a link whose URL was refused (its text stays).
    marks: Vec<Option<Value>>,
    /// Inside an image: its attributes and the alt text so far.
    image: Option<(Value, String)>,
}

/// Parses Markdown into a ProseMirror `doc`.
pub fn parse(md: &str) -> Value {
    let mut r = Reader {
        stack: vec![Frame::new(json!({ "type": "doc" }))],
        marks: Vec::new(),
        image: None,
    };
    for event in Parser::new_ext(md, Options::ENABLE_STRIKETHROUGH) {
        r.event(event);
    }
    while r.stack.len() > 1 {
        r.close();
    }
    let root = r.stack.pop().expect("the doc frame");
    json!({ "type": "doc", "content": root.content })
}

impl Reader {
    fn event(&mut self, event: Event) {
        if let Some((_, alt)) = &mut self.image {
            match event {
                Event::Text(t) | Event::Code(t) => alt.push_str(&t),
                Event::End(TagEnd::Image) => {
                    let (mut attrs, alt) = self.image.take().expect("in an image");
                    attrs["alt"] = if alt.is_empty() {
                        Value::Null
                    } else {
                        Value::String(alt)
                    };
                    self.inline_node(json!({ "type": "image", "attrs": attrs }));
                }
                _ => {}
            }
            return;
        }
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) => {
                if self.top().node["type"] == "codeBlock" {
                    self.top_mut().content.push(json!({ "type": "text", "text": &*t }));
                } else {
                    self.text(&t, false);
                }
            }
            Event::Code(t) => self.text(&t, true),
            Event::SoftBreak => self.text(" ", false),
            Event::HardBreak => self.inline_node(json!({ "type": "hardBreak" })),
            Event::Rule => self.block_node(json!({ "type": "horizontalRule" })),
            Event::InlineHtml(h) | Event::Html(h) => match h.trim().to_ascii_lowercase().as_str() {
                "<u>" => self.marks.push(Some(json!({ "type": "underline" }))),
                "</u>" => {
                    if let Some(i) = self
                        .marks
                        .iter()
                        .rposition(|m| m.as_ref().is_some_and(|m| m["type"] == "underline"))
                    {
                        self.marks.remove(i);
                    }
                }
                "<br>" | "<br/>" | "<br />" => self.inline_node(json!({ "type": "hardBreak" })),
                _ => {}
            },
            _ => {}
        }
    }

    fn top(&self) -> &Frame {
        self.stack.last().expect("the doc frame")
    }
    fn top_mut(&mut self) -> &mut Frame {
        self.stack.last_mut().expect("the doc frame")
    }

    fn start(&mut self, tag: Tag) {
        let block = match tag {
            Tag::Paragraph => json!({ "type": "paragraph" }),
            Tag::Heading { level, .. } => json!({ "type": "heading", "attrs": { "level": level as i64 } }),
            Tag::BlockQuote(_) => json!({ "type": "blockquote" }),
            Tag::CodeBlock(kind) => {
                let lang = match kind {
                    CodeBlockKind::Fenced(info) => info.split_whitespace().next().map(str::to_string),
                    CodeBlockKind::Indented => None,
                }
                .filter(|l| l.len() <= 40 && l.chars().all(|c| c.is_ascii_alphanumeric() || "+#.-_".contains(c)));
                json!({ "type": "codeBlock", "attrs": { "language": lang } })
            }
            Tag::List(Some(start)) => json!({ "type": "orderedList", "attrs": { "start": start.min(1_000_000) } }),
            Tag::List(None) => json!({ "type": "bulletList" }),
            Tag::Item => json!({ "type": "listItem" }),
            Tag::Emphasis => return self.marks.push(Some(json!({ "type": "italic" }))),
            Tag::Strong => return self.marks.push(Some(json!({ "type": "bold" }))),
            Tag::Strikethrough => return self.marks.push(Some(json!({ "type": "strike" }))),
            Tag::Link { dest_url, .. } => {
                let mark = schema::safe_url(&dest_url).then(|| {
                    json!({ "type": "link", "attrs": { "href": &*dest_url, "target": null, "rel": null, "class": null } })
                });
                return self.marks.push(mark);
            }
            Tag::Image { dest_url, title, .. } => {
                if schema::safe_url(&dest_url) && !dest_url.trim().is_empty() {
                    let title = if title.is_empty() { Value::Null } else { json!(&*title) };
                    self.image = Some((json!({ "src": &*dest_url, "title": title }), String::new()));
                }
                return;
            }
            _ => return,
        };
        self.close_implicit();
        self.stack.push(Frame::new(block));
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough | TagEnd::Link => {
                self.marks.pop();
            }
            TagEnd::Paragraph
            | TagEnd::Heading(_)
            | TagEnd::BlockQuote(_)
            | TagEnd::CodeBlock
            | TagEnd::List(_)
            | TagEnd::Item => {
                self.close_implicit();
                self.close();
            }
            _ => {}
        }
    }

    fn close_implicit(&mut self) {
        if self.top().implicit {
            self.close();
        }
    }

    /// Finishes the top frame and adds it to its parent.
    fn close(&mut self) {
        let Frame { mut node, content, .. } = self.stack.pop().expect("a frame to close");
        let kind = node["type"].as_str().unwrap_or_default().to_string();
        let parent = self.top_mut();
        match kind.as_str() {
            "paragraph" => {
                // Images are blocks: split the paragraph around them.
                let mut run = Vec::new();
                for c in content {
                    if c["type"] == "image" {
                        push_paragraph(&mut parent.content, std::mem::take(&mut run));
                        parent.content.push(c);
                    } else {
                        run.push(c);
                    }
                }
                push_paragraph(&mut parent.content, run);
            }
            "codeBlock" => {
                let text: String = content.iter().filter_map(|t| t["text"].as_str()).collect();
                let text = text.strip_suffix('\n').unwrap_or(&text);
                if !text.is_empty() {
                    node["content"] = json!([{ "type": "text", "text": text }]);
                }
                parent.content.push(node);
            }
            "listItem" => {
                let mut content = content;
                if content.first().is_none_or(|f| f["type"] != "paragraph") {
                    content.insert(0, json!({ "type": "paragraph" }));
                }
                node["content"] = Value::Array(content);
                parent.content.push(node);
            }
            "blockquote" | "bulletList" | "orderedList" => {
                if content.is_empty() {
                    return;
                }
                node["content"] = Value::Array(content);
                parent.content.push(node);
            }
            _ => {
                if !content.is_empty() {
                    node["content"] = Value::Array(content);
                }
                parent.content.push(node);
            }
        }
    }

    fn ensure_textblock(&mut self) {
        if !self.top().is_textblock() {
            let mut f = Frame::new(json!({ "type": "paragraph" }));
            f.implicit = true;
            self.stack.push(f);
        }
    }

    fn text(&mut self, text: &str, code: bool) {
        if text.is_empty() {
            return;
        }
        let mut marks: Vec<Value> = self.marks.iter().flatten().cloned().collect();
        if code {
            marks.push(json!({ "type": "code" }));
        }
        marks.dedup_by(|a, b| a["type"] == b["type"]);
        let mut node = json!({ "type": "text", "text": text });
        if !marks.is_empty() {
            node["marks"] = Value::Array(marks);
        }
        self.inline_node(node);
    }

    fn inline_node(&mut self, node: Value) {
        self.ensure_textblock();
        self.top_mut().content.push(node);
    }

    fn block_node(&mut self, node: Value) {
        self.close_implicit();
        self.top_mut().content.push(node);
    }
}

/// Adds a paragraph unless `run` is empty. A paragraph that held only an image
/// disappears (the image took its place).
fn push_paragraph(out: &mut Vec<Value>, run: Vec<Value>) {
    if run.is_empty() {
        return;
    }
    out.push(json!({ "type": "paragraph", "content": run }));
}
