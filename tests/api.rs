//! GraphQL and REST through the real router, in-process, on both backends.

mod common;

use std::collections::HashSet;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Backend, TEST_SECRET, TestApp, gql_code};
use serde_json::{Value, json};

const ME: &str = "{ me { id email displayName role } }";

async fn register_login_me(backend: Backend) {
    let app = TestApp::new(backend).await;
    // GraphQL
    let v = app
        .gql(
            None,
            "mutation($i: RegisterInput!) { register(input: $i) { token user { email role displayName } } }",
            json!({ "i": { "email": "Ada@Example.com", "password": "correct horse", "displayName": "Ada" } }),
        )
        .await;
    assert_eq!(
        v["data"]["register"]["user"],
        json!({ "email": "ada@example.com", "role": "ADMIN", "displayName": "Ada" }),
        "{v}"
    );
    let token = v["data"]["register"]["token"].as_str().unwrap().to_string();
    let me = app.gql(Some(&token), ME, json!({})).await;
    assert_eq!(me["data"]["me"]["email"], "ada@example.com");
    let v = app
        .gql(
            None,
            "mutation { login(email: \"ada@example.com\", password: \"correct horse\") { token user { role } } }",
            json!({}),
        )
        .await;
    let token2 = v["data"]["login"]["token"].as_str().expect("login token");
    assert_eq!(
        app.gql(Some(token2), ME, json!({})).await["data"]["me"]["displayName"],
        "Ada"
    );
    assert_eq!(
        app.gql(None, ME, json!({})).await["data"]["me"],
        Value::Null,
        "anonymous me is null"
    );

    // REST
    let (bob, _) = app.register("bob@example.com", "Bob").await;
    let (status, v) = app.request("GET", "/api/auth/me", Some(&bob), None).await;
    assert_eq!(
        (status, v["email"].as_str(), v["role"].as_str()),
        (StatusCode::OK, Some("bob@example.com"), Some("author"))
    );
    let (status, v) = app
        .request(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({ "email": "BOB@example.com", "password": "correct horse" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.request("GET", "/api/auth/me", v["token"].as_str(), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = app.request("GET", "/api/auth/me", None, None).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED"))
    );
    let (status, v) = app
        .request(
            "POST",
            "/api/auth/register",
            None,
            Some(json!({ "email": "bob@example.com", "password": "correct horse", "displayName": "B" })),
        )
        .await;
    assert_eq!(
        (status, v["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("email"))
    );
}

async fn unknown_user_and_wrong_password_look_the_same(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.register("ada@example.com", "Ada").await;
    let wrong = app
        .request(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({ "email": "ada@example.com", "password": "wrong password" })),
        )
        .await;
    let unknown = app
        .request(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({ "email": "nobody@example.com", "password": "wrong password" })),
        )
        .await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong, unknown, "REST answers must be identical");
    let q = |email: &str| format!("mutation {{ login(email: \"{email}\", password: \"wrong password\") {{ token }} }}");
    let wrong = app.gql(None, &q("ada@example.com"), json!({})).await;
    let unknown = app.gql(None, &q("nobody@example.com"), json!({})).await;
    assert_eq!(gql_code(&wrong), Some("UNAUTHENTICATED"));
    assert_eq!(wrong, unknown, "GraphQL answers must be identical");
}

fn sign(claims: &Value, secret: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), claims, &key).unwrap()
}

async fn bad_tokens_are_refused(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (good, id) = app.register("ada@example.com", "Ada").await;
    let now = chrono::Utc::now().timestamp();
    let claims = |aud: &str, exp: i64| json!({ "sub": id, "iss": "vellum", "aud": aud, "iat": now, "exp": exp });
    let valid = sign(&claims("vellum", now + 600), TEST_SECRET);
    assert_eq!(
        app.request("GET", "/api/auth/me", Some(&valid), None).await.0,
        StatusCode::OK,
        "control: a well-formed token works"
    );

    let expired = sign(&claims("vellum", now - 3600), TEST_SECRET);
    let wrong_audience = sign(&claims("someone-else", now + 600), TEST_SECRET);
    let wrong_secret = sign(&claims("vellum", now + 600), "another-secret-that-is-at-least-32-bytes");
    let mut parts: Vec<String> = good.split('.').map(String::from).collect();
    let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    payload["sub"] = json!(uuid::Uuid::now_v7());
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    let tampered = parts.join(".");
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!(
        "{none_header}.{}.",
        URL_SAFE_NO_PAD.encode(claims("vellum", now + 600).to_string())
    );
    for (what, token) in [
        ("expired", expired),
        ("wrong audience", wrong_audience),
        ("wrong secret", wrong_secret),
        ("tampered", tampered),
        ("alg none", alg_none),
        ("garbage", "not-a-token".into()),
        ("unknown api token", "vlm_nope".into()),
    ] {
        let (status, v) = app.request("GET", "/api/auth/me", Some(&token), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {v}");
        let g = app.gql(Some(&token), ME, json!({})).await;
        assert_eq!(gql_code(&g), Some("UNAUTHENTICATED"), "{what}: {g}");
    }
}

async fn viewers_and_strangers_cannot_update(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (owner, _) = app.register("owner@example.com", "Owner").await;
    let (viewer, _) = app.register("viewer@example.com", "Viewer").await;
    let (stranger, _) = app.register("stranger@example.com", "Stranger").await;
    let doc = app.create_doc(&owner, "Plans").await;
    let id = doc["id"].as_str().unwrap();
    let share = app
        .gql(
            Some(&owner),
            "mutation($d: ID!) { grantAccess(documentId: $d, userEmail: \"viewer@example.com\", role: VIEWER) }",
            json!({ "d": id }),
        )
        .await;
    assert_eq!(share["data"]["grantAccess"], true, "{share}");
    let update =
        "mutation($id: ID!) { updateDocument(id: $id, input: { title: \"Mine now\" }, lockVersion: 1) { title } }";
    let v = app.gql(Some(&viewer), update, json!({ "id": id })).await;
    assert_eq!(gql_code(&v), Some("FORBIDDEN"), "{v}");
    let (status, _) = app
        .request(
            "PATCH",
            &format!("/api/documents/{id}"),
            Some(&viewer),
            Some(json!({ "lockVersion": 1, "title": "x" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The viewer can read it; the stranger cannot even see it.
    assert_eq!(
        app.request("GET", &format!("/api/documents/{id}"), Some(&viewer), None)
            .await
            .0,
        StatusCode::OK
    );
    let v = app.gql(Some(&stranger), update, json!({ "id": id })).await;
    assert_eq!(gql_code(&v), Some("NOT_FOUND"), "{v}");
    assert_eq!(
        app.request("GET", &format!("/api/documents/{id}"), Some(&stranger), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.request("GET", &format!("/api/documents/{id}"), None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Nothing changed.
    let (_, now) = app
        .request("GET", &format!("/api/documents/{id}"), Some(&owner), None)
        .await;
    assert_eq!(
        (now["title"].as_str(), now["lockVersion"].as_i64()),
        (Some("Plans"), Some(1))
    );
    // An editor grant makes it writable; a read-scoped API token of the owner does not.
    let (status, _) = app
        .request(
            "PATCH",
            &format!("/api/documents/{id}/access"),
            Some(&owner),
            Some(json!({ "userEmail": "viewer@example.com", "role": "editor" })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let v = app.gql(Some(&viewer), update, json!({ "id": id })).await;
    assert_eq!(v["data"]["updateDocument"]["title"], "Mine now", "{v}");
    let t = app
        .gql(
            Some(&owner),
            "mutation { createApiToken(name: \"site\", scope: READ) { token } }",
            json!({}),
        )
        .await;
    let api = t["data"]["createApiToken"]["token"].as_str().unwrap();
    assert_eq!(
        app.request("GET", &format!("/api/documents/{id}"), Some(api), None)
            .await
            .0,
        StatusCode::OK
    );
    let (status, v) = app
        .request(
            "PATCH",
            &format!("/api/documents/{id}"),
            Some(api),
            Some(json!({ "lockVersion": 2, "title": "x" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
}

async fn concurrent_updates_one_conflict(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (owner, _) = app.register("owner@example.com", "Owner").await;
    let doc = app.create_doc(&owner, "Race").await;
    let id = doc["id"].as_str().unwrap();
    let update = "mutation($id: ID!, $t: String!) { updateDocument(id: $id, input: { title: $t }, lockVersion: 1) { title lockVersion } }";
    let (a, b) = tokio::join!(
        app.gql(Some(&owner), update, json!({ "id": id, "t": "A" })),
        app.gql(Some(&owner), update, json!({ "id": id, "t": "B" })),
    );
    let (won, lost) = if a["errors"].is_null() { (a, b) } else { (b, a) };
    assert_eq!(
        won["data"]["updateDocument"]["lockVersion"], 2,
        "one write succeeds: {won}"
    );
    assert_eq!(gql_code(&lost), Some("CONFLICT"), "the other conflicts: {lost}");
    let current = &lost["errors"][0]["extensions"]["current"];
    assert_eq!(
        current["title"], won["data"]["updateDocument"]["title"],
        "CONFLICT carries the current record"
    );
    assert_eq!(current["lockVersion"], 2);
    // REST says 409 with the current record too.
    let (status, v) = app
        .request(
            "PATCH",
            &format!("/api/documents/{id}"),
            Some(&owner),
            Some(json!({ "lockVersion": 1, "title": "late" })),
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("CONFLICT"))
    );
    assert_eq!(v["error"]["current"]["lockVersion"], 2);
}

async fn pagination_walks_every_document_once(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (owner, _) = app.register("owner@example.com", "Owner").await;
    let mut ids = HashSet::new();
    for i in 0..13 {
        ids.insert(
            app.create_doc(&owner, &format!("Doc {}", i % 3)).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let q = "query($after: String, $o: DocumentOrder) { documents(first: 5, after: $after, orderBy: $o) {
               edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }";
    for order in [
        json!({ "field": "TITLE", "direction": "ASC" }),
        json!({ "field": "UPDATED_AT", "direction": "DESC" }),
    ] {
        let mut seen = Vec::new();
        let mut after = Value::Null;
        loop {
            let v = app.gql(Some(&owner), q, json!({ "after": after, "o": order })).await;
            let conn = &v["data"]["documents"];
            seen.extend(
                conn["edges"]
                    .as_array()
                    .expect("edges")
                    .iter()
                    .map(|e| e["node"]["id"].as_str().unwrap().to_string()),
            );
            if conn["pageInfo"]["hasNextPage"] != true {
                break;
            }
            after = conn["pageInfo"]["endCursor"].clone();
        }
        assert_eq!(seen.len(), 13, "{order}");
        assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), ids);
    }
    // REST walks the same set.
    let mut seen = Vec::new();
    let mut path = "/api/documents?first=4&orderBy=createdAt&direction=asc".to_string();
    loop {
        let (status, v) = app.request("GET", &path, Some(&owner), None).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        seen.extend(
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_str().unwrap().to_string()),
        );
        match v["pageInfo"]["endCursor"].as_str() {
            Some(c) if v["pageInfo"]["hasNextPage"] == true => {
                path = format!("/api/documents?first=4&orderBy=createdAt&direction=asc&after={c}")
            }
            _ => break,
        }
    }
    assert_eq!(seen.len(), 13);
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), ids);
    // A cursor from another order, or garbage, is a VALIDATION error on `after`.
    let v = app
        .gql(
            Some(&owner),
            "{ documents(first: 2) { pageInfo { endCursor } } }",
            json!({}),
        )
        .await;
    let cursor = v["data"]["documents"]["pageInfo"]["endCursor"].clone();
    let v = app
        .gql(
            Some(&owner),
            q,
            json!({ "after": cursor, "o": { "field": "TITLE", "direction": "ASC" } }),
        )
        .await;
    assert_eq!(
        (gql_code(&v), v["errors"][0]["extensions"]["field"].as_str()),
        (Some("VALIDATION"), Some("after"))
    );
    let v = app.gql(Some(&owner), q, json!({ "after": "zzz" })).await;
    assert_eq!(gql_code(&v), Some("VALIDATION"));
    let v = app
        .gql(
            Some(&owner),
            "{ documents(first: 1000) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert!(matches!(gql_code(&v), Some("VALIDATION" | "LIMIT_EXCEEDED")), "{v}");
}

async fn bad_input_is_validation_and_writes_nothing(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (owner, _) = app.register("owner@example.com", "Owner").await;
    let doc = app.create_doc(&owner, "Keep me").await;
    let id = doc["id"].as_str().unwrap().to_string();
    let count = || async {
        app.state
            .store
            .list_documents(&all_docs())
            .await
            .unwrap()
            .documents
            .len()
    };
    assert_eq!(count().await, 1);

    let field = |v: &Value| v["error"]["field"].as_str().map(String::from);
    let long = "x".repeat(201);
    let long_title = format!("{{\"title\": \"{long}\"}}");
    let rest_cases: Vec<(&str, String, Option<&str>, &str)> = vec![
        ("POST", "/api/documents".into(), Some("{\"title\": "), "body"),
        (
            "POST",
            "/api/documents".into(),
            Some("{\"title\": \"ok\", \"color\": \"red\"}"),
            "color",
        ),
        (
            "POST",
            "/api/documents".into(),
            Some("{\"slug\": \"no-title\"}"),
            "title",
        ),
        ("POST", "/api/documents".into(), Some("{\"title\": 5}"), "title"),
        ("POST", "/api/documents".into(), Some(&long_title), "title"),
        (
            "POST",
            "/api/documents".into(),
            Some("{\"title\": \"ok\", \"slug\": \"Not A Slug\"}"),
            "slug",
        ),
        (
            "PATCH",
            format!("/api/documents/{id}"),
            Some("{\"lockVersion\": 1, \"slug\": \"-bad\"}"),
            "slug",
        ),
        (
            "PATCH",
            format!("/api/documents/{id}"),
            Some("{\"lockVersion\": 1, \"nope\": 1}"),
            "nope",
        ),
        (
            "PATCH",
            format!("/api/documents/{id}"),
            Some("{\"title\": \"no lock\"}"),
            "lockVersion",
        ),
        (
            "PATCH",
            format!("/api/documents/{id}"),
            Some("{\"lockVersion\": 1, \"status\": \"gone\"}"),
            "status",
        ),
        ("GET", "/api/documents/not-a-uuid".into(), None, "id"),
    ];
    for (method, path, body, want) in rest_cases {
        let (status, v) = app.raw(method, &path, Some(&owner), body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path} {body:?}: {v}"
        );
        assert_eq!(v["error"]["code"], "VALIDATION", "{v}");
        assert_eq!(field(&v).as_deref(), Some(want), "{method} {path} {body:?}: {v}");
    }

    let create = "mutation($i: CreateDocumentInput!) { createDocument(input: $i) { id } }";
    let update =
        "mutation($id: ID!, $i: UpdateDocumentInput!) { updateDocument(id: $id, input: $i, lockVersion: 1) { id } }";
    let gql_cases = [
        (create, json!({ "i": { "title": long } }), "title"),
        (create, json!({ "i": { "title": "ok", "slug": "UPPER" } }), "slug"),
        (create, json!({ "i": { "title": "ok", "colour": "red" } }), "colour"),
        (update, json!({ "id": id, "i": { "slug": "a--b" } }), "slug"),
        (update, json!({ "id": id, "i": { "title": "   " } }), "title"),
        (update, json!({ "id": "nope", "i": { "title": "x" } }), "id"),
    ];
    for (q, vars, want) in gql_cases {
        let v = app.gql(Some(&owner), q, vars.clone()).await;
        assert_eq!(gql_code(&v), Some("VALIDATION"), "{vars}: {v}");
        assert_eq!(
            v["errors"][0]["extensions"]["field"].as_str(),
            Some(want),
            "{vars}: {v}"
        );
    }
    let (status, v) = app.raw("POST", "/graphql", Some(&owner), Some("{\"query\": ")).await;
    assert_eq!(
        (status, gql_code(&v)),
        (StatusCode::BAD_REQUEST, Some("VALIDATION")),
        "{v}"
    );
    let v = app.gql(Some(&owner), "{ me { id ", json!({})).await;
    assert_eq!(gql_code(&v), Some("VALIDATION"), "syntax error: {v}");
    let v = app.gql(Some(&owner), "{ me { shoeSize } }", json!({})).await;
    assert_eq!(
        (gql_code(&v), v["errors"][0]["extensions"]["field"].as_str()),
        (Some("VALIDATION"), Some("shoeSize")),
        "{v}"
    );

    assert_eq!(count().await, 1, "nothing was written");
    let (_, now) = app
        .request("GET", &format!("/api/documents/{id}"), Some(&owner), None)
        .await;
    assert_eq!(
        (now["title"].as_str(), now["lockVersion"].as_i64()),
        (Some("Keep me"), Some(1))
    );
}

fn all_docs() -> vellum::store::ListQuery {
    vellum::store::ListQuery {
        status: None,
        owner: None,
        visible_to: None,
        order: vellum::store::OrderField::CreatedAt,
        descending: false,
        after: None,
        limit: 100,
    }
}

async fn graphql_limits(backend: Backend) {
    let app = TestApp::with_config(backend, |c| {
        c.graphql.max_depth = 4;
        c.graphql.introspection = false;
    })
    .await;
    let (owner, _) = app.register("owner@example.com", "Owner").await;
    let deep = "{ documents { edges { node { owner { id } } } } }";
    let v = app.gql(Some(&owner), deep, json!({})).await;
    assert_eq!(gql_code(&v), Some("LIMIT_EXCEEDED"), "{v}");
    let v = app.gql(None, "{ __schema { types { name } } }", json!({})).await;
    assert!(v["data"]["__schema"].is_null(), "introspection is off: {v}");
    let v = app
        .gql(Some(&owner), "{ documentz { edges { node { id } } } }", json!({}))
        .await;
    assert_eq!(gql_code(&v), Some("VALIDATION"), "{v}");
    assert!(
        !v.to_string().contains("Did you mean"),
        "suggestions are off with introspection: {v}"
    );
    let batch = json!([{ "query": ME }, { "query": ME }]).to_string();
    let (status, v) = app.raw("POST", "/graphql", None, Some(&batch)).await;
    assert_eq!(
        (status, gql_code(&v)),
        (StatusCode::BAD_REQUEST, Some("VALIDATION")),
        "{v}"
    );
    let big = format!(
        "{{\"query\": \"{{ me {{ id }} }}\", \"pad\": \"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let (status, v) = app.raw("POST", "/graphql", None, Some(&big)).await;
    assert_eq!(
        (status, gql_code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("LIMIT_EXCEEDED")),
        "{v}"
    );
    let (status, v) = app.raw("POST", "/api/documents", Some(&owner), Some(&big)).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("LIMIT_EXCEEDED"))
    );
}

/// Queries built to cost the server are refused before any resolver runs (nothing is
/// created by the 1,001 aliased mutations), with a code and no internal text: aliases,
/// fragment cycles, fragments reused to blow up, directive floods.
async fn graphql_abuse_is_refused_before_any_resolver(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (owner, _) = app.register("owner@example.com", "Owner").await;
    let internal = |v: &Value| {
        let s = v.to_string();
        s.contains("async_graphql") || s.contains("::") || s.contains("panicked") || s.contains("src/")
    };
    let documents = || async {
        let v = app
            .gql(
                Some(&owner),
                "{ documents(first: 100) { edges { node { id } } } }",
                json!({}),
            )
            .await;
        v["data"]["documents"]["edges"].as_array().map(Vec::len)
    };
    assert_eq!(documents().await, Some(0));

    // 1,001 aliases of a mutation: the complexity limit, and no document created.
    let aliases: String = (0..1001)
        .map(|i| format!("a{i}: createDocument(input: {{title: \"t{i}\"}}) {{ id }} "))
        .collect();
    let v = app
        .gql(Some(&owner), &format!("mutation {{ {aliases} }}"), json!({}))
        .await;
    assert_eq!(gql_code(&v), Some("LIMIT_EXCEEDED"), "{v}");
    assert!(!internal(&v), "{v}");
    assert_eq!(documents().await, Some(0), "a resolver ran");
    // 1,000 aliases of an expensive list.
    let lists: String = (0..1000)
        .map(|i| format!("l{i}: documents(first: 100) {{ edges {{ node {{ id title }} }} }} "))
        .collect();
    let v = app.gql(Some(&owner), &format!("{{ {lists} }}"), json!({})).await;
    assert_eq!(gql_code(&v), Some("LIMIT_EXCEEDED"), "{v}");

    // A fragment cycle.
    let cycle = "query { ...A } fragment A on Query { me { id } ...B } fragment B on Query { ...A }";
    let v = app.gql(Some(&owner), cycle, json!({})).await;
    assert_eq!(gql_code(&v), Some("VALIDATION"), "{v}");
    assert!(!internal(&v), "{v}");
    // Fragments each spreading the last twice: 2^30 fields from a few hundred bytes. Refused
    // at once (the request is answered, not left computing).
    let mut bomb = String::from("fragment F0 on Document { id title slug }\n");
    for i in 1..=30 {
        bomb.push_str(&format!("fragment F{i} on Document {{ ...F{p} ...F{p} }}\n", p = i - 1));
    }
    bomb.push_str("{ documents(first: 100) { edges { node { ...F30 } } } }");
    let started = std::time::Instant::now();
    let v = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        app.gql(Some(&owner), &bomb, json!({})),
    )
    .await
    .expect("the fragment bomb was answered");
    assert_eq!(gql_code(&v), Some("LIMIT_EXCEEDED"), "{v}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // A directive flood.
    let flood = format!("{{ me {} {{ id }} }}", "@include(if: true) ".repeat(200));
    let v = app.gql(Some(&owner), &flood, json!({})).await;
    assert!(
        gql_code(&v).is_some_and(|c| c == "LIMIT_EXCEEDED" || c == "VALIDATION"),
        "{v}"
    );
    assert!(!internal(&v), "{v}");
    // The server is fine.
    let v = app.gql(Some(&owner), ME, json!({})).await;
    assert_eq!(v["data"]["me"]["displayName"], "Owner", "{v}");
}

async fn documents_lifecycle(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (admin, _) = app.register("admin@example.com", "Admin").await;
    let (author, _) = app.register("author@example.com", "Author").await;
    let a = app.create_doc(&author, "Hello, World!").await;
    assert_eq!(
        (a["slug"].as_str(), a["status"].as_str()),
        (Some("hello-world"), Some("draft"))
    );
    let b = app.create_doc(&author, "Hello world").await;
    assert_eq!(b["slug"], "hello-world-2", "derived slugs avoid collisions");
    let v = app
        .gql(
            Some(&author),
            "{ document(slug: \"hello-world-2\") { id title owner { displayName email } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        v["data"]["document"]["owner"],
        json!({ "displayName": "Author", "email": "author@example.com" })
    );
    // Admins see every document; the author's list holds only theirs.
    let admin_doc = app.create_doc(&admin, "Admin only").await;
    let list = "{ documents(first: 50) { edges { node { id } } } }";
    let count = |v: Value| v["data"]["documents"]["edges"].as_array().unwrap().len();
    assert_eq!(count(app.gql(Some(&admin), list, json!({})).await), 3);
    assert_eq!(count(app.gql(Some(&author), list, json!({})).await), 2);
    // Only the owner or an admin deletes.
    let (status, _) = app
        .request(
            "DELETE",
            &format!("/api/documents/{}", admin_doc["id"].as_str().unwrap()),
            Some(&author),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let id = a["id"].as_str().unwrap();
    let v = app
        .gql(
            Some(&author),
            "mutation($id: ID!) { deleteDocument(id: $id) }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(v["data"]["deleteDocument"], id, "{v}");
    assert_eq!(
        app.request("GET", &format!("/api/documents/{id}"), Some(&author), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, v) = app
        .request("GET", "/api/documents/by-slug/hello-world-2", Some(&author), None)
        .await;
    assert_eq!((status, v["title"].as_str()), (StatusCode::OK, Some("Hello world")));
    // Viewers cannot create.
    let v = app
        .gql(
            Some(&admin),
            "mutation { createApiToken(name: \"ci\") { token apiToken { scope } } }",
            json!({}),
        )
        .await;
    assert_eq!(v["data"]["createApiToken"]["apiToken"]["scope"], "READ");
    let ro = v["data"]["createApiToken"]["token"].as_str().unwrap();
    let v = app
        .gql(
            Some(ro),
            "mutation { createDocument(input: { title: \"x\" }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(gql_code(&v), Some("FORBIDDEN"), "{v}");
}

async fn ops_endpoints(backend: Backend) {
    let app = TestApp::new(backend).await;
    assert_eq!(
        app.request("GET", "/healthz", None, None).await,
        (StatusCode::OK, json!({ "status": "ok" }))
    );
    assert_eq!(
        app.request("GET", "/readyz", None, None).await,
        (StatusCode::OK, json!({ "status": "ready" }))
    );
    let (status, spec) = app.request("GET", "/api/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/logout",
        "/api/auth/me",
        "/api/documents",
        "/api/documents/{id}",
        "/api/documents/by-slug/{slug}",
        "/api/documents/{id}/access",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} is described");
    }
    let (status, v) = app.request("GET", "/api/nothing-here", None, None).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("NOT_FOUND"))
    );
    app.state.store.close().await;
    assert_eq!(
        app.request("GET", "/readyz", None, None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

async fn registration_can_be_closed(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.auth.allow_registration = false).await;
    let (status, v) = app
        .request(
            "POST",
            "/api/auth/register",
            None,
            Some(json!({ "email": "a@example.com", "password": "correct horse", "displayName": "A" })),
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("FORBIDDEN"))
    );
}

/// Serves `app` on a real socket and returns its address.
async fn serve(app: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(vellum::app::serve(listener, app.state.clone(), std::future::pending()));
    addr
}

/// A JSON POST over HTTP/1.1: the status, the head (lowercased) and the JSON body.
async fn post_http(addr: &str, path: &str, body: Value) -> (u16, String, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).await.unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("a whole response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let json = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {out}"));
    (status, head.to_ascii_lowercase(), json)
}

/// Checks a login refused by the throttle (429, `Retry-After`, RATE_LIMITED with
/// `retryAfter`) with most of a 300 s lockout left, and returns its body.
fn assert_rate_limited((status, head, body): &(u16, String, Value)) -> Value {
    assert_eq!(*status, 429, "{head}\n{body}");
    assert_eq!(body["error"]["code"], "RATE_LIMITED", "{body}");
    let header: u64 = head
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .unwrap_or_else(|| panic!("no Retry-After: {head}"))
        .trim()
        .parse()
        .unwrap();
    assert!((290..=300).contains(&header), "Retry-After: {header}");
    assert_eq!(body["error"]["retryAfter"], json!(header), "{body}");
    body.clone()
}

/// The body without its seconds, which move on while a test runs.
fn without_seconds(body: &Value) -> Value {
    let mut body = body.clone();
    body["error"].as_object_mut().unwrap().remove("retryAfter");
    let message = body["error"]["message"].as_str().unwrap();
    body["error"]["message"] = message.replace(|c: char| c.is_ascii_digit(), "").into();
    body
}

/// The login throttle, over a real socket: after `login_max_failures` failures an
/// email's logins are refused with 429 even with the right password, an unknown email
/// just the same, while other accounts sign in as usual; GraphQL's `login` too.
async fn failed_logins_lock_the_email(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.auth.login_max_failures = 3).await;
    let addr = serve(&app).await;
    app.register("ada@example.com", "Ada").await;
    app.register("bob@example.com", "Bob").await;
    let login = |email: &str, password: &str| {
        post_http(
            &addr,
            "/api/auth/login",
            json!({ "email": email, "password": password }),
        )
    };
    for email in ["ada@example.com", "nobody@example.com"] {
        for _ in 0..3 {
            let (status, _, v) = login(email, "wrong password").await;
            assert_eq!(
                (status, v["error"]["code"].as_str()),
                (401, Some("UNAUTHENTICATED")),
                "{email}: {v}"
            );
        }
    }
    // The right password is refused too, however the email is written.
    let ada = assert_rate_limited(&login(" ADA@Example.com", "correct horse").await);
    let nobody = assert_rate_limited(&login("nobody@example.com", "correct horse").await);
    assert_eq!(
        without_seconds(&ada),
        without_seconds(&nobody),
        "a locked account and a locked unknown email must look the same"
    );

    // Bob is unaffected, and a success clears his count: 2 + 2 failures lock nothing.
    for round in 0..2 {
        for _ in 0..2 {
            assert_eq!(login("bob@example.com", "wrong password").await.0, 401, "round {round}");
        }
        let (status, _, v) = login("bob@example.com", "correct horse").await;
        assert_eq!(status, 200, "round {round}: {v}");
        assert!(v["token"].is_string(), "{v}");
    }

    let gql =
        json!({ "query": "mutation { login(email: \"ada@example.com\", password: \"correct horse\") { token } }" });
    let (status, _, v) = post_http(&addr, "/graphql", gql).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(gql_code(&v), Some("RATE_LIMITED"), "{v}");
    let retry = v["errors"][0]["extensions"]["retryAfter"].as_u64().unwrap_or_default();
    assert!((290..=300).contains(&retry), "{v}");
    assert_eq!(v["data"], Value::Null, "{v}");

    let (_, spec) = app.request("GET", "/api/openapi.json", None, None).await;
    assert!(
        spec["paths"]["/api/auth/login"]["post"]["responses"]["429"].is_object(),
        "429 is described"
    );
}

both_backends!(
    register_login_me,
    unknown_user_and_wrong_password_look_the_same,
    bad_tokens_are_refused,
    viewers_and_strangers_cannot_update,
    concurrent_updates_one_conflict,
    pagination_walks_every_document_once,
    bad_input_is_validation_and_writes_nothing,
    graphql_limits,
    graphql_abuse_is_refused_before_any_resolver,
    documents_lifecycle,
    ops_endpoints,
    registration_can_be_closed,
    failed_logins_lock_the_email,
);

/// Session tokens that are not exactly what this server issues are refused with 401 and
/// one generic body, whatever is wrong with them; a token signed with the previous secret
/// is accepted until `auth.jwt_previous_until`, then refused.
#[tokio::test]
async fn forged_and_stale_session_tokens_are_refused_alike() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    const OLD_SECRET: &str = "the-previous-secret-of-at-least-32-bytes";
    let app = TestApp::with_config(Backend::Postgres, |c| {
        c.auth.jwt_previous_secret = vellum::config::Secret::new(OLD_SECRET);
        c.auth.jwt_previous_until = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    })
    .await;
    let (token, user_id) = app.register("owner@example.com", "Owner").await;
    let now = chrono::Utc::now().timestamp();
    let claims = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut c = json!({ "sub": user_id, "iss": "vellum", "aud": "vellum", "iat": now, "exp": now + 600 });
        edit(&mut c);
        c
    };
    let sign = |alg: Algorithm, secret: &str, claims: &serde_json::Value| {
        encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    };
    let b64 = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let good = claims(&|_| {});
    let mut flipped = sign(Algorithm::HS256, TEST_SECRET, &good).into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let forged: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&good)),
        ),
        (
            "HS512 with the same secret (algorithm confusion)",
            sign(Algorithm::HS512, TEST_SECRET, &good),
        ),
        (
            "another secret",
            sign(Algorithm::HS256, "a-different-secret-of-at-least-32-bytes!", &good),
        ),
        (
            "expired beyond the leeway",
            sign(Algorithm::HS256, TEST_SECRET, &claims(&|c| c["exp"] = json!(now - 60))),
        ),
        (
            "no exp",
            sign(
                Algorithm::HS256,
                TEST_SECRET,
                &claims(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
            ),
        ),
        (
            "nbf in the future",
            sign(Algorithm::HS256, TEST_SECRET, &claims(&|c| c["nbf"] = json!(now + 600))),
        ),
        (
            "wrong issuer",
            sign(
                Algorithm::HS256,
                TEST_SECRET,
                &claims(&|c| c["iss"] = json!("someone-else")),
            ),
        ),
        (
            "wrong audience",
            sign(
                Algorithm::HS256,
                TEST_SECRET,
                &claims(&|c| c["aud"] = json!("another-app")),
            ),
        ),
        (
            "oversized",
            sign(
                Algorithm::HS256,
                TEST_SECRET,
                &claims(&|c| c["pad"] = json!("x".repeat(8000))),
            ),
        ),
        ("a flipped signature bit", String::from_utf8(flipped).unwrap()),
        ("not a JWT", "not.a.token".into()),
    ];
    let mut bodies = std::collections::HashSet::new();
    for (what, forged) in &forged {
        let (status, body) = app.request("GET", "/api/auth/me", Some(forged), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        bodies.insert(body.to_string());
    }
    assert_eq!(bodies.len(), 1, "one generic body for every refusal: {bodies:?}");
    // Within the leeway, and as issued, it is fine.
    let (status, _) = app.request("GET", "/api/auth/me", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    let leeway = sign(Algorithm::HS256, TEST_SECRET, &claims(&|c| c["exp"] = json!(now - 2)));
    assert_eq!(
        app.request("GET", "/api/auth/me", Some(&leeway), None).await.0,
        StatusCode::OK
    );
    // Rotation: the previous secret's tokens work during the overlap...
    let old = sign(Algorithm::HS256, OLD_SECRET, &good);
    assert_eq!(
        app.request("GET", "/api/auth/me", Some(&old), None).await.0,
        StatusCode::OK
    );
    // ...and not once it has ended (a node of the same database, restarted later).
    let dir = tempfile::tempdir().unwrap();
    let later = app
        .second_node_with(dir.path(), |c| {
            c.auth.jwt_previous_until = (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
        })
        .await;
    assert_eq!(
        later.request("GET", "/api/auth/me", Some(&token), None).await.0,
        StatusCode::OK
    );
    let (status, body) = later.request("GET", "/api/auth/me", Some(&old), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the overlap is over");
    assert!(bodies.contains(&body.to_string()));
}
