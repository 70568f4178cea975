//! Versions, restore, setBody, publishing and content delivery, over GraphQL and REST,
//! on both backends.

mod common;

use axum::http::StatusCode;
use common::{Backend, TestApp, gql_code, set_markdown, user_with_role};
use serde_json::{Value, json};
use vellum::auth::Role;

async fn save(app: &TestApp, token: &str, doc: &str, label: &str) -> Value {
    let v = app
        .gql(
            Some(token),
            "mutation($d: ID!, $l: String!) { saveVersion(documentId: $d, label: $l) { id number label title restoredFrom author { displayName } text } }",
            json!({ "d": doc, "l": label }),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    v["data"]["saveVersion"].clone()
}

async fn live_text(app: &TestApp, token: &str, doc: &str) -> String {
    let v = app
        .gql(
            Some(token),
            "query($d: ID!) { document(id: $d, draft: true) { body { text } } }",
            json!({ "d": doc }),
        )
        .await;
    v["data"]["document"]["body"]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_string()
}

async fn versions_save_list_read_diff(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (admin, _) = app.register("admin@example.com", "Admin").await;
    let doc = app.create_doc(&admin, "Notes").await;
    let id = doc["id"].as_str().unwrap();

    set_markdown(&app, &admin, id, "# Notes\n\nThe quick brown fox\n").await;
    let v1 = save(&app, &admin, id, "  first draft ").await;
    assert_eq!(v1["number"], 1);
    assert_eq!(v1["label"], "first draft", "labels are trimmed");
    assert_eq!(v1["title"], "Notes");
    assert_eq!(v1["author"]["displayName"], "Admin");
    assert_eq!(v1["text"], "Notes\n\nThe quick brown fox");

    set_markdown(&app, &admin, id, "# Notes\n\nThe quick red fox\n\nMore.\n").await;
    let v2 = save(&app, &admin, id, "second").await;
    assert_eq!(v2["number"], 2);

    // Newest first, paginated.
    let page = |after: Value| {
        app.gql(
            Some(&admin),
            "query($d: ID!, $a: String) { versions(documentId: $d, first: 1, after: $a) { edges { cursor node { number label } } pageInfo { hasNextPage endCursor } } }",
            json!({ "d": id, "a": after }),
        )
    };
    let p1 = page(Value::Null).await;
    assert_eq!(p1["data"]["versions"]["edges"][0]["node"]["number"], 2, "{p1}");
    assert_eq!(p1["data"]["versions"]["pageInfo"]["hasNextPage"], true);
    let p2 = page(p1["data"]["versions"]["pageInfo"]["endCursor"].clone()).await;
    assert_eq!(p2["data"]["versions"]["edges"][0]["node"]["number"], 1, "{p2}");
    assert_eq!(p2["data"]["versions"]["pageInfo"]["hasNextPage"], false);

    // One version in every format.
    let v = app
        .gql(
            Some(&admin),
            "query($v: ID!) { version(id: $v) { number body { html markdown text json } } }",
            json!({ "v": v1["id"] }),
        )
        .await;
    let body = &v["data"]["version"]["body"];
    assert_eq!(body["html"], "<h1>Notes</h1><p>The quick brown fox</p>", "{v}");
    assert_eq!(body["markdown"], "# Notes\n\nThe quick brown fox\n");
    assert_eq!(body["json"]["content"][0]["attrs"]["level"], 1);

    // Diffs between versions, and against the live document.
    let d = app
        .gql(
            Some(&admin),
            "query($a: ID!, $b: ID) { versionDiff(from: $a, to: $b) { lines { op text } words { op text } } }",
            json!({ "a": v1["id"], "b": v2["id"] }),
        )
        .await;
    let words = &d["data"]["versionDiff"]["words"];
    assert!(
        words
            .as_array()
            .unwrap()
            .contains(&json!({ "op": "DELETE", "text": "brown" })),
        "{d}"
    );
    assert!(
        words
            .as_array()
            .unwrap()
            .contains(&json!({ "op": "INSERT", "text": "red" }))
    );
    set_markdown(
        &app,
        &admin,
        id,
        "# Notes\n\nThe quick red fox\n\nMore.\n\nLive only.\n",
    )
    .await;
    let (status, d) = app
        .request(
            "GET",
            &format!("/api/documents/{id}/versions/2/diff"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(
        d["lines"].as_array().unwrap().last().unwrap(),
        &json!({ "op": "insert", "text": "\nLive only.\n" })
    );

    // REST parity.
    let (status, list) = app
        .request("GET", &format!("/api/documents/{id}/versions"), Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let (status, v3) = app
        .request(
            "POST",
            &format!("/api/documents/{id}/versions"),
            Some(&admin),
            Some(json!({ "label": "third" })),
        )
        .await;
    assert_eq!((status, v3["number"].as_i64()), (StatusCode::CREATED, Some(3)), "{v3}");
    let (status, one) = app
        .request("GET", &format!("/api/documents/{id}/versions/3"), Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["body"]["text"], "Notes\n\nThe quick red fox\n\nMore.\n\nLive only.");

    // Bad input, and strangers.
    let (status, e) = app
        .request(
            "POST",
            &format!("/api/documents/{id}/versions"),
            Some(&admin),
            Some(json!({ "label": "  " })),
        )
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("label"))
    );
    let (stranger, _) = app.register("stranger@example.com", "Stranger").await;
    let v = app
        .gql(
            Some(&stranger),
            "query($v: ID!) { version(id: $v) { label } }",
            json!({ "v": v1["id"] }),
        )
        .await;
    assert_eq!(gql_code(&v), Some("NOT_FOUND"), "{v}");
    let v = app
        .gql(Some(&admin), "query { version(id: \"abc\") { label } }", json!({}))
        .await;
    assert_eq!(gql_code(&v), Some("VALIDATION"));
}

async fn restore_changes_the_live_document_and_records_a_version(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (admin, _) = app.register("admin@example.com", "Admin").await;
    let id = app.create_doc(&admin, "Story").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    set_markdown(&app, &admin, &id, "Once upon a time.\n\nThe end.\n").await;
    let v1 = save(&app, &admin, &id, "original").await;
    set_markdown(
        &app,
        &admin,
        &id,
        "Once upon a time.\n\nA dragon appeared.\n\nThe end?\n",
    )
    .await;

    let v = app
        .gql(
            Some(&admin),
            "mutation($v: ID!) { restoreVersion(versionId: $v) { number label restoredFrom text } }",
            json!({ "v": v1["id"] }),
        )
        .await;
    let restored = &v["data"]["restoreVersion"];
    assert_eq!(restored["number"], 2, "{v}");
    assert_eq!(restored["label"], "Restored v1: original");
    assert_eq!(restored["restoredFrom"], 1);
    assert_eq!(restored["text"], "Once upon a time.\n\nThe end.");
    assert_eq!(live_text(&app, &admin, &id).await, "Once upon a time.\n\nThe end.");

    // Over REST, by number; history is kept, never rewritten.
    set_markdown(&app, &admin, &id, "Something else entirely.\n").await;
    let (status, r) = app
        .request("POST", &format!("/api/documents/{id}/restore/1"), Some(&admin), None)
        .await;
    assert_eq!((status, r["number"].as_i64()), (StatusCode::CREATED, Some(3)), "{r}");
    assert_eq!(live_text(&app, &admin, &id).await, "Once upon a time.\n\nThe end.");
    let (_, list) = app
        .request("GET", &format!("/api/documents/{id}/versions"), Some(&admin), None)
        .await;
    let numbers: Vec<i64> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, vec![3, 2, 1]);

    // The restored state survives a restart (it went through the update log).
    let mut app = app;
    app.restart().await;
    assert_eq!(live_text(&app, &admin, &id).await, "Once upon a time.\n\nThe end.");

    // A viewer cannot restore; an unknown version is NOT_FOUND.
    let (viewer, _) = app.register("viewer@example.com", "Viewer").await;
    app.request(
        "PATCH",
        &format!("/api/documents/{id}/access"),
        Some(&admin),
        Some(json!({ "userEmail": "viewer@example.com", "role": "viewer" })),
    )
    .await;
    let (status, _) = app
        .request("POST", &format!("/api/documents/{id}/restore/1"), Some(&viewer), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .request("POST", &format!("/api/documents/{id}/restore/99"), Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn set_body_formats_and_errors(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (admin, _) = app.register("admin@example.com", "Admin").await;
    let id = app.create_doc(&admin, "Body").await["id"].as_str().unwrap().to_string();
    let set = |input: Value, base: Value| {
        app.gql(
            Some(&admin),
            "mutation($d: ID!, $i: BodyInput!, $b: BodyInput) { setBody(documentId: $d, input: $i, base: $b) { body { text html } } }",
            json!({ "d": id, "i": input, "b": base }),
        )
    };
    let v = set(
        json!({ "html": "<p>Hello <b>world</b><script>alert(1)</script></p>" }),
        Value::Null,
    )
    .await;
    assert_eq!(
        v["data"]["setBody"]["body"]["html"], "<p>Hello <strong>world</strong></p>",
        "{v}"
    );
    let json_body = json!({ "type": "doc", "content": [{ "type": "heading", "attrs": { "level": 2 }, "content": [{ "type": "text", "text": "Hi" }] }] });
    let v = set(json!({ "json": json_body }), Value::Null).await;
    assert_eq!(v["data"]["setBody"]["body"]["html"], "<h2>Hi</h2>", "{v}");

    // A base: only the caller's changes from it apply.
    set_markdown(&app, &admin, &id, "one\n\ntwo\n").await;
    let v = set(
        json!({ "markdown": "ONE\n\ntwo\n" }),
        json!({ "markdown": "one\n\ntwo\n" }),
    )
    .await;
    assert_eq!(v["data"]["setBody"]["body"]["text"], "ONE\n\ntwo", "{v}");

    // Errors name the field; nothing changes.
    for (input, field) in [
        (
            json!({ "json": { "type": "doc", "content": [{ "type": "heading", "attrs": { "level": 7 } }] } }),
            "json.content[0].attrs.level",
        ),
        (json!({ "html": "<p>a</p>", "markdown": "a" }), "input"),
        (json!({}), "input"),
    ] {
        let v = set(input, Value::Null).await;
        assert_eq!(gql_code(&v), Some("VALIDATION"), "{v}");
        assert_eq!(v["errors"][0]["extensions"]["field"], field, "{v}");
    }
    let (status, e) = app
        .request("PUT", &format!("/api/documents/{id}/body"), Some(&admin), Some(json!({ "json": { "type": "doc", "content": [{ "type": "paragraph", "content": [{ "type": "text", "text": "x", "marks": [{ "type": "link", "attrs": { "href": "javascript:alert(1)" } }] }] }] } })))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["error"]["field"], "json.content[0].content[0].marks[0].attrs.href");
    assert_eq!(live_text(&app, &admin, &id).await, "ONE\n\ntwo");

    // Viewers and read-only tokens cannot write.
    let token = app
        .gql(
            Some(&admin),
            "mutation { createApiToken(name: \"ro\") { token } }",
            json!({}),
        )
        .await["data"]["createApiToken"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = app
        .request(
            "PUT",
            &format!("/api/documents/{id}/body"),
            Some(&token),
            Some(json!({ "markdown": "no" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

const READ: &str =
    "query($s: String!, $draft: Boolean) { document(slug: $s, draft: $draft) { title status body { html text } } }";

async fn publish_and_read_published_content(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (admin, _) = app.register("admin@example.com", "Admin").await;
    let (author, _) = app.register("author@example.com", "Author").await;
    let editor = user_with_role(&app, "editor@example.com", Role::Editor).await;
    let doc = app.create_doc(&author, "Launch post").await;
    let (id, slug) = (doc["id"].as_str().unwrap(), doc["slug"].as_str().unwrap());
    set_markdown(&app, &author, id, "We launched.\n").await;

    // Not published: anonymous readers see nothing, whatever they ask.
    let v = app.gql(None, READ, json!({ "s": slug })).await;
    assert_eq!(gql_code(&v), Some("NOT_FOUND"), "{v}");
    let v = app.gql(None, READ, json!({ "s": slug, "draft": true })).await;
    assert_eq!(gql_code(&v), Some("UNAUTHENTICATED"), "{v}");
    let (status, _) = app
        .request("GET", &format!("/api/content/by-slug/{slug}"), None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Authors send to review; they cannot publish.
    let publish = "mutation($d: ID!) { publish(documentId: $d) { status publishedVersion { number label } } }";
    let v = app.gql(Some(&author), publish, json!({ "d": id })).await;
    assert_eq!(gql_code(&v), Some("FORBIDDEN"), "{v}");
    let lock = doc["lockVersion"].as_i64().unwrap();
    let (status, d) = app
        .request(
            "PATCH",
            &format!("/api/documents/{id}"),
            Some(&author),
            Some(json!({ "lockVersion": lock, "status": "in_review" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    let (status, e) = app
        .request(
            "PATCH",
            &format!("/api/documents/{id}"),
            Some(&author),
            Some(json!({ "lockVersion": d["lockVersion"], "status": "published" })),
        )
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("status")),
        "{e}"
    );

    // An editor publishes: anonymous readers get that version.
    let v = app.gql(Some(&editor), publish, json!({ "d": id })).await;
    assert_eq!(v["data"]["publish"]["status"], "PUBLISHED", "{v}");
    assert_eq!(v["data"]["publish"]["publishedVersion"]["label"], "Published");
    let v = app.gql(None, READ, json!({ "s": slug })).await;
    assert_eq!(v["data"]["document"]["body"]["html"], "<p>We launched.</p>", "{v}");
    assert_eq!(v["data"]["document"]["title"], "Launch post");

    // Later drafts are not what readers see.
    set_markdown(&app, &author, id, "We launched. Draft edit.\n").await;
    let (_, d) = app
        .request("GET", &format!("/api/documents/{id}"), Some(&author), None)
        .await;
    app.request(
        "PATCH",
        &format!("/api/documents/{id}"),
        Some(&editor),
        Some(json!({ "lockVersion": d["lockVersion"], "title": "Draft title" })),
    )
    .await;
    let v = app.gql(None, READ, json!({ "s": slug })).await;
    assert_eq!(v["data"]["document"]["body"]["text"], "We launched.", "{v}");
    assert_eq!(
        v["data"]["document"]["title"], "Launch post",
        "the published title, not the draft one"
    );
    let (status, c) = app
        .request("GET", &format!("/api/content/by-slug/{slug}"), None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["body"]["text"], "We launched.");
    assert_eq!(c["version"]["number"], 1);
    let (_, c) = app
        .request("GET", &format!("/api/content/{id}?draft=true"), Some(&author), None)
        .await;
    assert_eq!(
        (c["body"]["text"].as_str(), c["title"].as_str()),
        (Some("We launched. Draft edit."), Some("Draft title"))
    );
    let (status, _) = app
        .request("GET", &format!("/api/content/{id}?draft=true"), None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Publishing again moves readers.
    let (status, p) = app
        .request(
            "POST",
            &format!("/api/documents/{id}/publish"),
            Some(&admin),
            Some(json!({ "label": "v2" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    let (_, c) = app.request("GET", &format!("/api/content/{id}"), None, None).await;
    assert_eq!(
        (c["body"]["text"].as_str(), c["version"]["label"].as_str()),
        (Some("We launched. Draft edit."), Some("v2"))
    );

    // A read-scoped API token of a user without access reads published content too.
    let (other, _) = app.register("other@example.com", "Other").await;
    let token = app
        .gql(
            Some(&other),
            "mutation { createApiToken(name: \"site\") { token } }",
            json!({}),
        )
        .await["data"]["createApiToken"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let v = app.gql(Some(&token), READ, json!({ "s": slug })).await;
    assert_eq!(v["data"]["document"]["body"]["text"], "We launched. Draft edit.", "{v}");
    let v = app.gql(Some(&token), READ, json!({ "s": slug, "draft": true })).await;
    assert_eq!(gql_code(&v), Some("NOT_FOUND"), "{v}");

    // Unpublished: gone for readers without access; authors cannot unpublish.
    let (status, _) = app
        .request("POST", &format!("/api/documents/{id}/unpublish"), Some(&author), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, d) = app
        .request("POST", &format!("/api/documents/{id}/unpublish"), Some(&editor), None)
        .await;
    assert_eq!((status, d["status"].as_str()), (StatusCode::OK, Some("draft")), "{d}");
    let (status, _) = app
        .request("GET", &format!("/api/content/by-slug/{slug}"), None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let v = app.gql(Some(&token), READ, json!({ "s": slug })).await;
    assert_eq!(gql_code(&v), Some("NOT_FOUND"), "{v}");
}

async fn anonymous_reading_can_be_turned_off(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.content.anonymous_read = false).await;
    let (admin, _) = app.register("admin@example.com", "Admin").await;
    let doc = app.create_doc(&admin, "Members only").await;
    let id = doc["id"].as_str().unwrap();
    set_markdown(&app, &admin, id, "Secret handshake.\n").await;
    let (status, _) = app
        .request("POST", &format!("/api/documents/{id}/publish"), Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, e) = app.request("GET", &format!("/api/content/{id}"), None, None).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED"))
    );
    let (reader, _) = app.register("reader@example.com", "Reader").await;
    let (status, c) = app
        .request("GET", &format!("/api/content/{id}"), Some(&reader), None)
        .await;
    assert_eq!(
        (status, c["body"]["text"].as_str()),
        (StatusCode::OK, Some("Secret handshake."))
    );
}

async fn status_workflow_follows_roles(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (_admin, _) = app.register("admin@example.com", "Admin").await;
    let (author, _) = app.register("author@example.com", "Author").await;
    let editor = user_with_role(&app, "editor@example.com", Role::Editor).await;
    let doc = app.create_doc(&author, "Workflow").await;
    let id = doc["id"].as_str().unwrap();
    let set_status = async |token: &str, status: &str| {
        let (_, d) = app
            .request("GET", &format!("/api/documents/{id}"), Some(token), None)
            .await;
        let body = json!({ "lockVersion": d["lockVersion"], "status": status });
        app.request("PATCH", &format!("/api/documents/{id}"), Some(token), Some(body))
            .await
            .0
    };
    assert_eq!(set_status(&author, "in_review").await, StatusCode::OK);
    assert_eq!(set_status(&author, "draft").await, StatusCode::OK);
    // The owner may archive and unarchive their own document.
    assert_eq!(set_status(&author, "archived").await, StatusCode::OK);
    assert_eq!(set_status(&author, "draft").await, StatusCode::OK);
    let (status, _) = app
        .request("POST", &format!("/api/documents/{id}/publish"), Some(&editor), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // Leaving `published` is for editors and admins.
    assert_eq!(set_status(&author, "draft").await, StatusCode::FORBIDDEN);
    assert_eq!(set_status(&editor, "archived").await, StatusCode::OK);
    // Archived documents are not published until unarchived.
    let (status, e) = app
        .request("POST", &format!("/api/documents/{id}/publish"), Some(&editor), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
}

both_backends!(
    versions_save_list_read_diff,
    restore_changes_the_live_document_and_records_a_version,
    set_body_formats_and_errors,
    publish_and_read_published_content,
    anonymous_reading_can_be_turned_off,
    status_workflow_follows_roles,
);
