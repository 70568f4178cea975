//! The check of the `content` fuzz target (`fuzz/`), also run by the tests on the inputs
//! it found. Panics only on a bug.

use serde_json::Value;
use yrs::{Doc, Transact};

use super::{Body, BodyInput, parse_input, replace_blocks};

/// A body as a caller sends it (the first byte picks HTML, Markdown or ProseMirror JSON;
/// the rest is the input). What is accepted must be written into a document and read
/// back as the same normalized body, and deliver HTML, Markdown and text that parse
/// again, with no script or event handler in the HTML.
pub fn content(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest).into_owned();
    let input = match kind % 3 {
        0 => BodyInput::Html(text),
        1 => BodyInput::Markdown(text),
        _ => match serde_json::from_slice::<Value>(rest) {
            Ok(v) => BodyInput::Json(v),
            Err(_) => return,
        },
    };
    let Ok(doc) = parse_input(input) else { return };
    let ydoc = Doc::new();
    {
        let mut txn = ydoc.transact_mut();
        replace_blocks(&mut txn, &doc);
    }
    let body = Body::from_doc(&ydoc);
    assert_eq!(body.json(), &doc, "a normalized body reads back as itself");
    let html = body.html();
    for (tag, attrs) in tags(&html) {
        assert!(
            !matches!(tag.as_str(), "script" | "style" | "iframe"),
            "<{tag}> in delivered HTML: {html}"
        );
        for (name, value) in attrs {
            assert!(!name.starts_with("on"), "an event handler in delivered HTML: {html}");
            let url = value.trim().to_ascii_lowercase();
            assert!(
                !(url.starts_with("javascript:") || url.starts_with("data:text/html")),
                "a script URL in delivered HTML: {html}"
            );
        }
    }
    parse_input(BodyInput::Html(html.clone()))
        .unwrap_or_else(|e| panic!("delivered HTML does not parse: {e:?}: {html}"));
    let md = body.markdown();
    parse_input(BodyInput::Markdown(md.clone()))
        .unwrap_or_else(|e| panic!("delivered Markdown does not parse: {e:?}: {md}"));
    let _ = body.text();
}

/// The start tags of serialized HTML (text and attribute values are escaped, so each
/// `<` starts a tag): each tag's name and its attributes, lowercased names.
fn tags(html: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        if rest.starts_with('/') || rest.starts_with('!') {
            continue;
        }
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = &rest[name_end..];
        let mut attrs = Vec::new();
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
            if rest.is_empty() || rest.starts_with('>') {
                break;
            }
            let n_end = rest
                .find(|c: char| c.is_whitespace() || c == '=' || c == '>')
                .unwrap_or(rest.len());
            let attr = rest[..n_end].to_ascii_lowercase();
            rest = &rest[n_end..];
            let mut value = String::new();
            if let Some(after) = rest.strip_prefix('=') {
                let (v, tail) = match after.chars().next() {
                    Some(q @ ('"' | '\'')) => {
                        let inner = &after[1..];
                        let close = inner.find(q).unwrap_or(inner.len());
                        (&inner[..close], inner.get(close + 1..).unwrap_or(""))
                    }
                    _ => {
                        let end = after
                            .find(|c: char| c.is_whitespace() || c == '>')
                            .unwrap_or(after.len());
                        (&after[..end], &after[end..])
                    }
                };
                value = v.replace("&amp;", "&").replace("&#58;", ":");
                rest = tail;
            }
            attrs.push((attr, value));
        }
        out.push((name, attrs));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn tags_are_read_with_their_attributes() {
        let t = super::tags(r#"<p class="a b">x &lt;script&gt; onclick=1</p><img src='y' alt="z onload=q"><br/>"#);
        let names: Vec<_> = t.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["p", "img", "br"]);
        assert_eq!(
            t[1].1,
            [
                ("src".to_string(), "y".to_string()),
                ("alt".into(), "z onload=q".into())
            ]
        );
    }
}
