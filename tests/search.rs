//! Search over the whole history, on both backends: what each query form finds in which
//! version, snippets, permissions on every page, metadata changes, a crash before a
//! commit, a rebuild, and two nodes on one database.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::StatusCode;
use common::{Backend, TestApp, gql_code, set_markdown, user_with_role};
use serde_json::{Value, json};
use vellum::auth::Role;
use vellum::state::AppState;

const SEARCH: &str = "query($q: String!, $f: SearchFilter, $n: Int, $a: String) {
  search(query: $q, filter: $f, first: $n, after: $a) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { kind versionNumber title titleHtml label snippets published myAccess document { id } } }
  } }";

async fn app(backend: Backend) -> TestApp {
    TestApp::with_config(backend, |c| {
        c.search.live_delay_ms = 0;
        c.search.poll_ms = 50;
    })
    .await
}

async fn settle(state: &AppState) {
    state
        .search
        .settled(state, Duration::from_secs(30))
        .await
        .expect("the index settles");
}

/// The `search` field of a query that must succeed.
async fn search(app: &TestApp, token: Option<&str>, q: &str, filter: Value, first: i64, after: Option<&str>) -> Value {
    let v = app
        .gql(token, SEARCH, json!({ "q": q, "f": filter, "n": first, "a": after }))
        .await;
    assert!(v["errors"].is_null(), "{q}: {v}");
    v["data"]["search"].clone()
}

/// The hits of a query as (kind, version number), sorted: what matched, not in what order.
async fn hits(app: &TestApp, token: &str, q: &str, filter: Value) -> Vec<(String, i64)> {
    let s = search(app, Some(token), q, filter, 50, None).await;
    let mut out: Vec<(String, i64)> = s["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let n = &e["node"];
            (
                n["kind"].as_str().unwrap().to_string(),
                n["versionNumber"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    out.sort();
    assert_eq!(s["totalCount"].as_u64().unwrap() as usize, out.len(), "{q}: {s}");
    out
}

async fn save(app: &TestApp, token: &str, doc: &str, label: &str) -> i64 {
    let (status, v) = app
        .request(
            "POST",
            &format!("/api/documents/{doc}/versions"),
            Some(token),
            Some(json!({ "label": label })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v["number"].as_i64().unwrap()
}

fn v(n: i64) -> (String, i64) {
    ("VERSION".into(), n)
}
fn live() -> (String, i64) {
    ("LIVE".into(), 0)
}

async fn history_and_query_forms(backend: Backend) {
    let app = app(backend).await;
    let admin = user_with_role(&app, "admin@example.com", Role::Admin).await;
    let doc = app.create_doc(&admin, "Airship notes").await;
    let id = doc["id"].as_str().unwrap();
    set_markdown(
        &app,
        &admin,
        id,
        "The zeppelin crossed the ocean. We collaborate on drafts.",
    )
    .await;
    save(&app, &admin, id, "first").await;
    set_markdown(
        &app,
        &admin,
        id,
        "The airship crossed the ocean. Editors are collaborating.",
    )
    .await;
    save(&app, &admin, id, "second").await;
    set_markdown(&app, &admin, id, "The airship landed safely. Collaboration is over.").await;
    save(&app, &admin, id, "third").await;
    set_markdown(
        &app,
        &admin,
        id,
        "The airship landed safely. Collaboration is over. Quixotic live words.",
    )
    .await;
    settle(&app.state).await;

    // A word deleted after version 1 is found in version 1 only.
    assert_eq!(hits(&app, &admin, "zeppelin", json!(null)).await, vec![v(1)]);
    assert_eq!(hits(&app, &admin, "zeppelin", json!({ "live": true })).await, vec![]);
    assert_eq!(
        hits(&app, &admin, "quixotic", json!({ "live": true })).await,
        vec![live()]
    );
    assert_eq!(hits(&app, &admin, "quixotic", json!({ "live": false })).await, vec![]);
    // Phrases keep their order.
    assert_eq!(
        hits(&app, &admin, "\"crossed the ocean\"", json!(null)).await,
        vec![v(1), v(2)]
    );
    assert_eq!(hits(&app, &admin, "\"ocean crossed\"", json!(null)).await, vec![]);
    // Boolean operators (the title, "Airship notes", is in every entry: body: leaves it out).
    assert_eq!(
        hits(&app, &admin, "body:airship AND NOT landed", json!(null)).await,
        vec![v(2)]
    );
    assert_eq!(hits(&app, &admin, "-body:airship ocean", json!(null)).await, vec![v(1)]);
    assert_eq!(
        hits(&app, &admin, "zeppelin OR landed", json!(null)).await,
        vec![live(), v(1), v(3)]
    );
    assert_eq!(
        hits(&app, &admin, "(zeppelin OR safely) drafts", json!(null)).await,
        vec![v(1)]
    );
    // Stemming finds every form, and the exact word still finds itself.
    let all = vec![live(), v(1), v(2), v(3)];
    assert_eq!(hits(&app, &admin, "collaborate", json!(null)).await, all);
    // A prefix is matched against words as written (the stem of "collaborative" is
    // "collabor": the prefix "collabora" still finds it).
    assert_eq!(hits(&app, &admin, "collabora*", json!(null)).await, all);
    assert_eq!(hits(&app, &admin, "zep*", json!(null)).await, vec![v(1)]);
    // Typos.
    assert_eq!(hits(&app, &admin, "zepelin~", json!(null)).await, vec![v(1)]);
    assert_eq!(hits(&app, &admin, "zepelin", json!(null)).await, vec![]);
    // Fields.
    assert_eq!(hits(&app, &admin, "title:airship", json!(null)).await, all);
    assert_eq!(hits(&app, &admin, "title:zeppelin", json!(null)).await, vec![]);
    assert_eq!(hits(&app, &admin, "label:second", json!(null)).await, vec![v(2)]);
    // latestOnly: the newest version of each document.
    assert_eq!(
        hits(&app, &admin, "airship", json!({ "latestOnly": true })).await,
        vec![v(3)]
    );
    assert_eq!(hits(&app, &admin, "ocean", json!({ "latestOnly": true })).await, vec![]);

    // Snippets mark the matched words.
    let s = search(&app, Some(&admin), "zeppelin ocean", json!(null), 10, None).await;
    let node = &s["edges"][0]["node"];
    assert_eq!(node["label"], "first");
    assert_eq!(
        node["snippets"][0], "The <mark>zeppelin</mark> crossed the <mark>ocean</mark>. We collaborate on drafts.",
        "{s}"
    );
    assert_eq!(node["titleHtml"], "Airship notes");
    let s = search(&app, Some(&admin), "collab*", json!({ "latestOnly": true }), 10, None).await;
    assert_eq!(
        s["edges"][0]["node"]["snippets"][0], "The airship landed safely. <mark>Collaboration</mark> is over.",
        "{s}"
    );

    // Snippets and titles are escaped HTML.
    let other = app.create_doc(&admin, "Fish & <chips> zeppelin").await;
    let other_id = other["id"].as_str().unwrap();
    set_markdown(&app, &admin, other_id, "5 < 6 & the zeppelin's \"hangar\"").await;
    save(&app, &admin, other_id, "escape").await;
    settle(&app.state).await;
    let s = search(
        &app,
        Some(&admin),
        "zeppelin",
        json!({ "documentId": other_id, "live": false }),
        10,
        None,
    )
    .await;
    let node = &s["edges"][0]["node"];
    assert_eq!(
        node["titleHtml"], "Fish &amp; &lt;chips&gt; <mark>zeppelin</mark>",
        "{s}"
    );
    assert_eq!(
        node["snippets"][0], "5 &lt; 6 &amp; the <mark>zeppelin</mark>&#39;s &quot;hangar&quot;",
        "{s}"
    );

    // Syntax errors say where; other bad input says which field.
    let bad = app.gql(Some(&admin), SEARCH, json!({ "q": "ocean \"crossed" })).await;
    assert_eq!(gql_code(&bad), Some("VALIDATION"), "{bad}");
    assert!(
        bad["errors"][0]["message"].as_str().unwrap().contains("character 7"),
        "{bad}"
    );
    assert_eq!(bad["errors"][0]["extensions"]["field"], "query", "{bad}");
    let bad = app.gql(Some(&admin), SEARCH, json!({ "q": "ocean", "n": 0 })).await;
    assert_eq!(gql_code(&bad), Some("VALIDATION"), "{bad}");
    let bad = app
        .gql(Some(&admin), SEARCH, json!({ "q": "ocean", "a": "nonsense" }))
        .await;
    assert_eq!(gql_code(&bad), Some("VALIDATION"), "{bad}");

    // REST answers the same.
    let (status, r) = app
        .request(
            "GET",
            &format!("/api/search?q=zeppelin&documentId={id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["totalCount"], 1, "{r}");
    assert_eq!(r["items"][0]["versionNumber"], 1, "{r}");
    assert_eq!(r["items"][0]["kind"], "version", "{r}");
    let (status, r) = app.request("GET", "/api/search?q=(ocean", Some(&admin), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert_eq!(r["error"]["code"], "VALIDATION", "{r}");
    let (status, r) = app.request("GET", "/api/search?q=x&bogus=1", Some(&admin), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
}

/// Pages through a search: every hit's document id and whether it is published, and
/// the total each page reported.
async fn all_pages(
    app: &TestApp,
    token: Option<&str>,
    q: &str,
    filter: Value,
    first: i64,
) -> (Vec<(String, bool)>, usize) {
    let mut after: Option<String> = None;
    let mut out = Vec::new();
    let mut total = None;
    loop {
        let s = search(app, token, q, filter.clone(), first, after.as_deref()).await;
        let t = s["totalCount"].as_u64().unwrap() as usize;
        assert_eq!(*total.get_or_insert(t), t, "the total changed between pages");
        let edges = s["edges"].as_array().unwrap();
        let more = s["pageInfo"]["hasNextPage"].as_bool().unwrap();
        if more {
            assert_eq!(edges.len() as i64, first, "a page before the last is full: {s}");
        }
        for e in edges {
            out.push((
                e["node"]["document"]["id"].as_str().unwrap().to_string(),
                e["node"]["published"].as_bool().unwrap(),
            ));
        }
        if !more {
            break;
        }
        after = s["pageInfo"]["endCursor"].as_str().map(str::to_string);
    }
    assert_eq!(out.len(), total.unwrap_or(0), "pages add up to the total");
    (out, total.unwrap_or(0))
}

async fn permissions_hold_on_every_page(backend: Backend) {
    let app = app(backend).await;
    let alice = user_with_role(&app, "alice@example.com", Role::Author).await;
    let bob = user_with_role(&app, "bob@example.com", Role::Author).await;
    let editor = user_with_role(&app, "editor@example.com", Role::Editor).await;
    let mut mine = BTreeSet::new();
    for i in 0..5 {
        let d = app.create_doc(&alice, &format!("Alice {i}")).await;
        let id = d["id"].as_str().unwrap().to_string();
        set_markdown(&app, &alice, &id, &format!("A lantern in room {i}.")).await;
        save(&app, &alice, &id, "v").await;
        mine.insert(id);
    }
    let mut bobs = Vec::new();
    for i in 0..4 {
        let d = app.create_doc(&bob, &format!("Bob {i}")).await;
        let id = d["id"].as_str().unwrap().to_string();
        set_markdown(&app, &bob, &id, &format!("Bob's lantern number {i}.")).await;
        save(&app, &bob, &id, "v").await;
        bobs.push(id);
    }
    // One of Bob's is shared with Alice; another is published (a new version).
    let (status, _) = app
        .request(
            "PATCH",
            &format!("/api/documents/{}/access", bobs[0]),
            Some(&bob),
            Some(json!({ "userEmail": "alice@example.com", "role": "viewer" })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, r) = app
        .request(
            "POST",
            &format!("/api/documents/{}/publish", bobs[1]),
            Some(&editor),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    settle(&app.state).await;

    // Alice: her 5 documents (a version and a draft each), the shared one (the same),
    // and the published version of the published one, whatever the page size.
    for first in [1, 2, 3, 7, 50] {
        let (seen, total) = all_pages(&app, Some(&alice), "lantern", json!(null), first).await;
        assert_eq!(total, 13, "page size {first}: {seen:?}");
        for (doc, published) in &seen {
            assert!(
                mine.contains(doc) || *doc == bobs[0] || (*doc == bobs[1] && *published),
                "alice sees {doc} (published: {published})"
            );
        }
        assert_eq!(seen.iter().filter(|(d, _)| *d == bobs[1]).count(), 1);
    }
    // Anonymous readers: published content only.
    let (seen, total) = all_pages(&app, None, "lantern", json!(null), 2).await;
    assert_eq!((total, seen), (1, vec![(bobs[1].clone(), true)]));
    assert_eq!(all_pages(&app, None, "lantern", json!({ "live": true }), 5).await.1, 0);
    // Editors see everything; publishedOnly narrows to what readers get.
    assert_eq!(all_pages(&app, Some(&editor), "lantern", json!(null), 4).await.1, 19);
    let (seen, _) = all_pages(&app, Some(&editor), "lantern", json!({ "publishedOnly": true }), 4).await;
    assert_eq!(seen, vec![(bobs[1].clone(), true)]);
    let (seen, _) = all_pages(&app, Some(&editor), "lantern", json!({ "status": "PUBLISHED" }), 4).await;
    assert_eq!(
        seen.len(),
        3,
        "the published document's two versions and its draft: {seen:?}"
    );
    // author: the versions a user saved (drafts have no author); from/to: when saved.
    let me = app.gql(Some(&alice), "{ me { id } }", json!({})).await;
    let alice_id = me["data"]["me"]["id"].as_str().unwrap().to_string();
    let (seen, _) = all_pages(&app, Some(&editor), "lantern", json!({ "author": alice_id }), 4).await;
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert!(seen.iter().all(|(d, _)| mine.contains(d)));
    let (past, future) = ("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z");
    let window = |from: &str, to: &str| json!({ "from": from, "to": to, "live": false });
    assert_eq!(
        all_pages(&app, Some(&editor), "lantern", window(past, future), 4)
            .await
            .1,
        10
    );
    assert_eq!(
        all_pages(&app, Some(&editor), "lantern", window(future, future), 4)
            .await
            .1,
        0
    );
    assert_eq!(
        all_pages(&app, Some(&editor), "lantern", window(past, past), 4).await.1,
        0
    );

    // Unpublishing takes it away from anonymous readers; revoking the share from Alice.
    let (status, _) = app
        .request(
            "POST",
            &format!("/api/documents/{}/unpublish", bobs[1]),
            Some(&editor),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .request(
            "PATCH",
            &format!("/api/documents/{}/access", bobs[0]),
            Some(&bob),
            Some(json!({ "userEmail": "alice@example.com", "role": null })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    settle(&app.state).await;
    assert_eq!(all_pages(&app, None, "lantern", json!(null), 2).await.1, 0);
    let (seen, total) = all_pages(&app, Some(&alice), "lantern", json!(null), 3).await;
    assert_eq!(total, 10);
    assert!(seen.iter().all(|(d, _)| mine.contains(d)));
}

async fn metadata_changes_are_reflected(backend: Backend) {
    let app = app(backend).await;
    let admin = user_with_role(&app, "admin@example.com", Role::Admin).await;
    let doc = app.create_doc(&admin, "Old name").await;
    let id = doc["id"].as_str().unwrap();
    set_markdown(&app, &admin, id, "Some walrus text.").await;
    save(&app, &admin, id, "v").await;
    settle(&app.state).await;
    assert_eq!(hits(&app, &admin, "title:old", json!(null)).await, vec![live(), v(1)]);
    let r = app
        .gql(
            Some(&admin),
            "mutation($id: ID!) { updateDocument(id: $id, input: { title: \"Brand new\" }, lockVersion: 1) { title } }",
            json!({ "id": id }),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    settle(&app.state).await;
    // The version keeps the title it was saved with; the draft has the new one.
    assert_eq!(hits(&app, &admin, "title:old", json!(null)).await, vec![v(1)]);
    assert_eq!(hits(&app, &admin, "title:brand", json!(null)).await, vec![live()]);
    // A deleted document's entries are gone.
    let (status, _) = app
        .request("DELETE", &format!("/api/documents/{id}"), Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    settle(&app.state).await;
    assert_eq!(hits(&app, &admin, "walrus", json!(null)).await, vec![]);
    let searcher = app.state.search.opened().unwrap().reader.searcher();
    assert_eq!(
        searcher.num_docs(),
        0,
        "nothing of the deleted document is left in the index"
    );
}

/// Every (document, kind, version number) a query finds, and its total: what two indexes
/// must agree on.
/// A query and what it found: (document id, kind, version number), sorted.
type Answers = Vec<(String, Vec<(String, String, i64)>)>;

async fn answers(app: &TestApp, token: &str) -> Answers {
    let mut out = Vec::new();
    for q in [
        "lantern",
        "\"red lantern\"",
        "lant*",
        "lanturn~",
        "lantern -red",
        "title:doc*",
    ] {
        let s = search(app, Some(token), q, json!(null), 50, None).await;
        let mut found: Vec<(String, String, i64)> = s["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let n = &e["node"];
                (
                    n["document"]["id"].as_str().unwrap().to_string(),
                    n["kind"].as_str().unwrap().to_string(),
                    n["versionNumber"].as_i64().unwrap_or(0),
                )
            })
            .collect();
        found.sort();
        out.push((q.to_string(), found));
    }
    out
}

async fn populate(app: &TestApp, token: &str, docs: usize) {
    for i in 0..docs {
        let d = app.create_doc(token, &format!("Doc {i}")).await;
        let id = d["id"].as_str().unwrap();
        for n in 0..3 {
            let color = ["red", "green", "blue"][(i + n) % 3];
            set_markdown(app, token, id, &format!("A {color} lantern, edit {n} of doc {i}.")).await;
            save(app, token, id, &format!("v{n}")).await;
        }
    }
}

async fn a_crash_before_commit_is_caught_up_exactly_once(backend: Backend) {
    let mut app = app(backend).await;
    let admin = user_with_role(&app, "admin@example.com", Role::Admin).await;
    populate(&app, &admin, 2).await;
    settle(&app.state).await;
    let before = answers(&app, &admin).await;
    // The indexer reads the next versions, then the process dies before committing them.
    app.state.search.hold_commits();
    let held = app.state.search.wait_held();
    let doc = app.create_doc(&admin, "Doc late").await;
    let id = doc["id"].as_str().unwrap().to_string();
    set_markdown(&app, &admin, &id, "A red lantern, late.").await;
    save(&app, &admin, &id, "late 1").await;
    save(&app, &admin, &id, "late 2").await;
    held.await;
    app.state.search.crash().await;
    // A process killed while writing leaves tantivy's lock file behind: not a problem.
    let index = app.state.search.status().index;
    let dir = app.config.server.data_dir.join("search").join(&index);
    std::fs::write(dir.join(".tantivy-writer.lock"), b"").unwrap();
    app.restart().await;
    settle(&app.state).await;
    let after = answers(&app, &admin).await;
    // Each version once: the two late versions and the late draft, nothing twice.
    let lantern = |a: &Answers| a[0].1.clone();
    let mut expected = lantern(&before);
    expected.extend([
        (id.clone(), "LIVE".to_string(), 0),
        (id.clone(), "VERSION".to_string(), 1),
        (id.clone(), "VERSION".to_string(), 2),
    ]);
    expected.sort();
    assert_eq!(lantern(&after), expected);
    let searcher = app.state.search.opened().unwrap().reader.searcher();
    assert_eq!(searcher.num_docs(), 2 * 4 + 3, "no entry is in the index twice");
}

async fn reindex_gives_the_same_answers(backend: Backend) {
    let app = app(backend).await;
    let admin = user_with_role(&app, "admin@example.com", Role::Admin).await;
    populate(&app, &admin, 3).await;
    let gone = app.create_doc(&admin, "Doc gone").await;
    let gone = gone["id"].as_str().unwrap();
    set_markdown(&app, &admin, gone, "A red lantern soon deleted.").await;
    save(&app, &admin, gone, "v").await;
    let (status, _) = app
        .request("DELETE", &format!("/api/documents/{gone}"), Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    settle(&app.state).await;
    let incremental = answers(&app, &admin).await;
    let old_index = app.state.search.status().index;
    // The admin's way: the reindex mutation, followed to the end through searchStatus.
    let v = app
        .gql(
            Some(&admin),
            "mutation { reindex { enabled rebuild { total } } }",
            json!({}),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    assert!(
        !v["data"]["reindex"]["rebuild"].is_null(),
        "the answer says it is under way: {v}"
    );
    let mut switched = false;
    for _ in 0..600 {
        let s = app
            .gql(
                Some(&admin),
                "{ searchStatus { index rebuild { done total } behind error } }",
                json!({}),
            )
            .await;
        let st = &s["data"]["searchStatus"];
        if st["rebuild"].is_null() && st["index"] != old_index.as_str() {
            assert!(st["error"].is_null(), "{s}");
            switched = true;
            break;
        }
        settle(&app.state).await;
    }
    assert!(switched, "the rebuilt index is in use");
    settle(&app.state).await;
    assert_eq!(answers(&app, &admin).await, incremental);
    // Only the new index is left on disk.
    let root = app.config.server.data_dir.join("search");
    let dirs: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("index-"))
        .collect();
    assert_eq!(dirs.len(), 1);
    // Another language is another index: built from the database at the next start.
    let mut app = app;
    app.config.search.language = "none".into();
    app.restart().await;
    settle(&app.state).await;
    assert_ne!(app.state.search.status().index, old_index);
    let unstemmed = answers(&app, &admin).await;
    assert_eq!(unstemmed[0], incremental[0], "`lantern` is its own stem");
    // Only admins rebuild.
    let author = user_with_role(&app, "author@example.com", Role::Author).await;
    let v = app
        .gql(Some(&author), "mutation { reindex { enabled } }", json!({}))
        .await;
    assert_eq!(gql_code(&v), Some("FORBIDDEN"), "{v}");
}

both_backends!(
    history_and_query_forms,
    permissions_hold_on_every_page,
    metadata_changes_are_reflected,
    a_crash_before_commit_is_caught_up_exactly_once,
    reindex_gives_the_same_answers,
);

/// Two nodes on one PostgreSQL database, each with its own index, answer the same, and
/// a version saved on one is found on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_answer_the_same() {
    let app = app(Backend::Postgres).await;
    let admin = user_with_role(&app, "admin@example.com", Role::Admin).await;
    populate(&app, &admin, 2).await;
    let other_dir = tempfile::tempdir().unwrap();
    let second = app.second_node(other_dir.path()).await;
    // A version saved on the second node.
    let doc = second.create_doc(&admin, "Doc from node two").await;
    let id = doc["id"].as_str().unwrap();
    set_markdown(&second, &admin, id, "A red lantern from the second node.").await;
    save(&second, &admin, id, "two").await;
    settle(&app.state).await;
    settle(&second.state).await;
    let one = answers(&app, &admin).await;
    let two = answers(&second, &admin).await;
    assert_eq!(one, two);
    assert!(
        one[0].1.iter().any(|(d, k, n)| d == id && k == "VERSION" && *n == 1),
        "{one:?}"
    );
    second.state.search.shutdown().await;
}
