//! Content conversion: ProseMirror JSON ↔ Yjs, HTML, Markdown, plain text, sanitizing,
//! validation, block-level replacement and text diffs. Expected outputs live in
//! `tests/fixtures/content/`; `VELLUM_BLESS=1 cargo test --test content` rewrites them
//! (review the diff before committing).

mod common;

use std::path::PathBuf;

use serde_json::{Value, json};
use vellum::content::diff::{self, DiffOp, DiffPart};
use vellum::content::{self, Body, BodyInput, parse_input, replace_blocks};
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/content")
        .join(name)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Compares with an expected file, or rewrites it under VELLUM_BLESS=1.
fn expect_file(name: &str, actual: &str) {
    if std::env::var_os("VELLUM_BLESS").is_some() {
        std::fs::write(fixture_path(name), actual).unwrap();
        return;
    }
    let expected = fixture(name);
    assert_eq!(actual, expected, "output differs from tests/fixtures/content/{name}");
}

fn all_json() -> Value {
    serde_json::from_str(&fixture("all.json")).unwrap()
}

/// A document whose body is `body` (written the way setBody writes it).
fn doc_with(body: &Value) -> Doc {
    let doc = Doc::new();
    let mut txn = doc.transact_mut();
    replace_blocks(&mut txn, body);
    drop(txn);
    doc
}

#[test]
fn json_to_yjs_to_json_is_identity_for_every_node_and_mark() {
    let fixture = all_json();
    let normalized = parse_input(BodyInput::Json(fixture.clone())).expect("the fixture is valid");
    assert_eq!(normalized, fixture, "normalizing the fixture changed it");
    let doc = doc_with(&fixture);
    assert_eq!(Body::from_doc(&doc).json(), &fixture);
    // And through the encoded state, as versions store it.
    let state = content::encode_state(&doc);
    assert_eq!(Body::from_state(&state).unwrap().json(), &fixture);
}

#[test]
fn yjs_layout_is_what_y_prosemirror_expects() {
    let doc = doc_with(&all_json());
    let txn = doc.transact();
    let frag = txn.get_xml_fragment(content::FRAGMENT).unwrap();
    let xml = yrs::GetString::get_string(&frag, &txn);
    // Elements named after node types, numbers as numbers, marks as formatting
    // attributes holding the mark's attributes.
    assert!(xml.starts_with("<heading level=\"1\">Field notes</heading>"), "{xml}");
    assert!(xml.contains("<bold>bold</bold>"), "{xml}");
    assert!(xml.contains("<hardBreak></hardBreak>"), "{xml}");
    let heading = yrs::XmlFragment::get(&frag, &txn, 0)
        .unwrap()
        .into_xml_element()
        .unwrap();
    let level = yrs::Xml::get_attribute(&heading, &txn, "level").unwrap();
    assert_eq!(level, yrs::Out::Any(yrs::Any::from(1i64)), "level must stay a number");
}

#[test]
fn html_output_matches_expected_file() {
    expect_file("all.html", &(Body::from_doc(&doc_with(&all_json())).html() + "\n"));
}

#[test]
fn markdown_output_matches_expected_file() {
    expect_file("all.md", &Body::from_doc(&doc_with(&all_json())).markdown());
}

#[test]
fn text_output_matches_expected_file() {
    expect_file("all.txt", &(Body::from_doc(&doc_with(&all_json())).text() + "\n"));
}

#[test]
fn html_reads_back_into_the_same_json() {
    let fixture = all_json();
    let html = Body::from_doc(&doc_with(&fixture)).html();
    let parsed = parse_input(BodyInput::Html(html)).unwrap();
    assert_eq!(parsed, fixture);
}

#[test]
fn markdown_reads_back_into_the_same_text_and_structure() {
    let fixture = all_json();
    let body = Body::from_doc(&doc_with(&fixture));
    let parsed = parse_input(BodyInput::Markdown(body.markdown())).unwrap();
    let reparsed = Body::from_doc(&doc_with(&parsed));
    // Markdown has no empty paragraphs: the fixture's one is the only loss.
    let mut fixture = fixture;
    fixture["content"]
        .as_array_mut()
        .unwrap()
        .retain(|b| b != &json!({"type": "paragraph"}));
    let body = Body::from_doc(&doc_with(&fixture));
    assert_eq!(reparsed.text(), body.text());
    // Markdown has no link target/rel: everything else survives.
    let strip = |v: &Value| {
        v.to_string()
            .replace(r#","rel":"noopener noreferrer nofollow","target":"_blank""#, "")
            .replace(r#","rel":null,"target":null"#, "")
    };
    assert_eq!(strip(reparsed.json()), strip(&fixture));
    assert_eq!(reparsed.markdown(), body.markdown(), "markdown output is stable");
}

#[test]
fn markdown_input_commonmark() {
    let md = "# Title\n\nSome *em* and **strong** and `code` and ~~gone~~ and <u>under</u>.\n\n- a\n- b\n  1. c\n\n> quote\n\n```js\nlet x = 1;\n```\n\n---\n\n![alt text](/img.png \"T\")\n\n[bad](javascript:alert(1)) <script>alert(1)</script>\n";
    let v = parse_input(BodyInput::Markdown(md.into())).unwrap();
    let body = Body::from_doc(&doc_with(&v));
    assert_eq!(
        body.html(),
        "<h1>Title</h1><p>Some <em>em</em> and <strong>strong</strong> and <code>code</code> and <s>gone</s> and <u>under</u>.</p><ul><li><p>a</p></li><li><p>b</p><ol><li><p>c</p></li></ol></li></ul><blockquote><p>quote</p></blockquote><pre><code class=\"language-js\">let x = 1;</code></pre><hr><img src=\"/img.png\" alt=\"alt text\" title=\"T\"><p>bad alert(1)</p>"
    );
}

const HOSTILE: &str = r#"<p onclick="steal()">Hi <script>alert(1)</script><img src=x onerror="alert(2)"><a href="javascript:alert(3)" onmouseover="x()">link</a></p><iframe src="https://evil"></iframe><style>p{}</style><svg onload="alert(4)"></svg><p><a href="https://ok.example" style="color:red">ok</a></p>"#;

fn assert_clean(html: &str) {
    let lower = html.to_lowercase();
    for bad in [
        "<script",
        "onclick",
        "onerror",
        "onmouseover",
        "onload",
        "javascript:",
        "<iframe",
        "<style",
        "<svg",
        "style=",
    ] {
        assert!(!lower.contains(bad), "`{bad}` survived sanitizing: {html}");
    }
}

#[test]
fn script_tags_and_event_attributes_never_survive() {
    assert_clean(&content::sanitize_html(HOSTILE));
    let v = parse_input(BodyInput::Html(HOSTILE.into())).unwrap();
    let body = Body::from_doc(&doc_with(&v));
    assert_clean(&body.html());
    assert_clean(&body.markdown());
    assert_eq!(
        body.text(),
        "Hi link\n\nok",
        "script content is dropped, not kept as text"
    );
    // Through JSON, a link with a script URL or an attribute carrying markup is refused
    // or escaped.
    let bad_link = json!({"type":"doc","content":[{"type":"paragraph","content":[{"type":"text","text":"x","marks":[{"type":"link","attrs":{"href":"JavaScript:alert(1)"}}]}]}]});
    let err = parse_input(BodyInput::Json(bad_link)).unwrap_err();
    assert_eq!(err.path, "json.content[0].content[0].marks[0].attrs.href");
    let sneaky = json!({"type":"doc","content":[{"type":"image","attrs":{"src":"/a.png","alt":"\"><script>alert(1)</script>"}}]});
    let v = parse_input(BodyInput::Json(sneaky)).unwrap();
    assert_clean(&Body::from_doc(&doc_with(&v)).html());
}

#[test]
fn invalid_json_names_the_offending_path() {
    let cases = [
        (json!({"type":"paragraph"}), "json.type"),
        (
            json!({"type":"doc","content":[{"type":"table"}]}),
            "json.content[0].type",
        ),
        (
            json!({"type":"doc","content":[{"type":"heading","attrs":{"level":9}}]}),
            "json.content[0].attrs.level",
        ),
        (
            json!({"type":"doc","content":[{"type":"paragraph","content":[{"type":"text","text":""}]}]}),
            "json.content[0].content[0].text",
        ),
        (
            json!({"type":"doc","content":[{"type":"paragraph","content":[{"type":"text","text":"a","marks":[{"type":"blink"}]}]}]}),
            "json.content[0].content[0].marks[0].type",
        ),
        (
            json!({"type":"doc","content":[{"type":"bulletList","content":[{"type":"paragraph"}]}]}),
            "json.content[0].content[0].type",
        ),
        (
            json!({"type":"doc","content":[{"type":"bulletList"}]}),
            "json.content[0].content",
        ),
        (
            json!({"type":"doc","content":[{"type":"text","text":"loose"}]}),
            "json.content[0].type",
        ),
    ];
    for (input, path) in cases {
        let err = parse_input(BodyInput::Json(input.clone())).expect_err(&input.to_string());
        assert_eq!(err.path, path, "{input}: {}", err.message);
    }
}

fn para(text: &str) -> Value {
    json!({"type":"paragraph","content":[{"type":"text","text":text}]})
}

fn doc_of(paras: &[&str]) -> Value {
    json!({"type":"doc","content": paras.iter().map(|p| para(p)).collect::<Vec<_>>()})
}

fn sync(from: &Doc, to: &Doc) {
    let sv = to.transact().state_vector();
    let update = from.transact().encode_state_as_update_v1(&sv);
    to.transact_mut()
        .apply_update(Update::decode_v1(&update).unwrap())
        .unwrap();
}

#[test]
fn replacing_blocks_keeps_concurrent_edits_in_untouched_blocks() {
    let server = doc_with(&doc_of(&["one", "two", "three"]));
    let client = Doc::new();
    sync(&server, &client);
    // The client types in "two" while the server replaces "one" and removes "three".
    {
        let mut txn = client.transact_mut();
        let frag = txn.get_xml_fragment(content::FRAGMENT).unwrap();
        let p = yrs::XmlFragment::get(&frag, &txn, 1)
            .unwrap()
            .into_xml_element()
            .unwrap();
        let t = yrs::XmlFragment::get(&p, &txn, 0).unwrap().into_xml_text().unwrap();
        yrs::Text::insert(&t, &mut txn, 3, " and a half");
    }
    let target = parse_input(BodyInput::Json(doc_of(&["ONE", "two"]))).unwrap();
    assert!(replace_blocks(&mut server.transact_mut(), &target));
    assert!(
        !replace_blocks(&mut server.transact_mut(), &target),
        "applying it again changes nothing"
    );
    sync(&client, &server);
    sync(&server, &client);
    for d in [&server, &client] {
        assert_eq!(Body::from_doc(d).text(), "ONE\n\ntwo and a half");
    }
    let sv_before = server.transact().state_vector();
    assert_ne!(sv_before, StateVector::default());
}

#[test]
fn version_diff_of_two_fixtures_gives_the_expected_hunks() {
    let old = fixture("diff-old.txt");
    let new = fixture("diff-new.txt");
    let part = |op, text: &str| DiffPart { op, text: text.into() };
    assert_eq!(
        diff::lines(&old, &new),
        vec![
            part(DiffOp::Equal, "The quick brown fox\n\n"),
            part(DiffOp::Delete, "jumps over the lazy dog.\n"),
            part(DiffOp::Insert, "leaps over the sleepy dog.\n"),
            part(DiffOp::Equal, "\nThe end.\n"),
            part(DiffOp::Insert, "\nA new last line.\n"),
        ]
    );
    assert_eq!(
        diff::words("jumps over the lazy dog.", "leaps over the sleepy dog."),
        vec![
            part(DiffOp::Delete, "jumps"),
            part(DiffOp::Insert, "leaps"),
            part(DiffOp::Equal, " over the "),
            part(DiffOp::Delete, "lazy"),
            part(DiffOp::Insert, "sleepy"),
            part(DiffOp::Equal, " dog."),
        ]
    );
}

#[test]
fn merging_from_a_base_keeps_edits_made_since_the_read() {
    let base = parse_input(BodyInput::Json(doc_of(&["one", "two", "three"]))).unwrap();
    let live = doc_with(&base);
    // Since the caller read `base`, an editor changed "two" and added "four".
    let edited = parse_input(BodyInput::Json(doc_of(&["one", "two and more", "three", "four"]))).unwrap();
    replace_blocks(&mut live.transact_mut(), &edited);
    // The caller changes "one", deletes "three" and sends "two" back as it read it.
    let target = parse_input(BodyInput::Json(doc_of(&["ONE", "two"]))).unwrap();
    assert!(content::merge_blocks(&mut live.transact_mut(), Some(&base), &target));
    assert_eq!(Body::from_doc(&live).text(), "ONE\n\ntwo and more\n\nfour");

    // Both changed the same block: neither change is lost.
    let base = parse_input(BodyInput::Json(doc_of(&["a", "b"]))).unwrap();
    let live = doc_with(&parse_input(BodyInput::Json(doc_of(&["a (editor)", "b"]))).unwrap());
    let target = parse_input(BodyInput::Json(doc_of(&["a (api)", "b"]))).unwrap();
    content::merge_blocks(&mut live.transact_mut(), Some(&base), &target);
    assert_eq!(Body::from_doc(&live).text(), "a (editor)\n\na (api)\n\nb");

    // Nothing to do: nothing changes.
    assert!(!content::merge_blocks(&mut live.transact_mut(), Some(&target), &target));
}

/// The `content` fuzz target's check on its seeds and on every input it found that
/// once failed (fuzz/corpus/content, fuzz/regressions/content).
#[test]
fn fuzz_inputs_pass_the_content_check() {
    let inputs = common::fuzz_inputs("content");
    assert!(inputs.len() >= 4, "{} inputs", inputs.len());
    for input in &inputs {
        vellum::content::fuzzing::content(input);
    }
}
