//! The embedded admin UI through the real router: index.html at `/` and at client-side
//! routes, assets with their content type and cache headers, and the API's own 404s.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{Backend, TestApp};
use http_body_util::BodyExt;
use tower::ServiceExt;

struct Got {
    status: StatusCode,
    content_type: String,
    cache: String,
    etag: String,
    body: String,
}

async fn get(app: &TestApp, path: &str, if_none_match: Option<&str>) -> Got {
    let mut req = Request::builder().method("GET").uri(path);
    if let Some(tag) = if_none_match {
        req = req.header(header::IF_NONE_MATCH, tag);
    }
    let res = app
        .router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let header = |name| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (content_type, cache, etag) = (
        header(header::CONTENT_TYPE),
        header(header::CACHE_CONTROL),
        header(header::ETAG),
    );
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Got {
        status,
        content_type,
        cache,
        etag,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// The built UI on disk (debug builds serve it from there; `build.rs` makes it).
fn dist() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("admin-ui/dist")
}

#[tokio::test]
async fn serves_index_and_spa_routes() {
    let app = TestApp::new(Backend::Sqlite).await;
    let index = std::fs::read_to_string(dist().join("index.html")).expect("build.rs writes admin-ui/dist/index.html");
    for path in ["/", "/documents/x", "/documents/0192-abc/history", "/signin"] {
        let got = get(&app, path, None).await;
        assert_eq!(got.status, StatusCode::OK, "{path}");
        assert_eq!(got.content_type, "text/html; charset=utf-8", "{path}");
        assert_eq!(got.cache, "no-cache", "{path}: index.html must be revalidated");
        assert_eq!(got.body, index, "{path}");
    }
    // a conditional request with the ETag is answered 304
    let first = get(&app, "/", None).await;
    assert!(!first.etag.is_empty());
    let again = get(&app, "/", Some(&first.etag)).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
}

/// The fresh-clone path: with npm on the machine, `build.rs` built the real UI (not the
/// placeholder it writes when npm is missing or `VELLUM_SKIP_UI_BUILD=1`).
#[test]
fn build_rs_built_the_ui_when_npm_is_available() {
    let npm = std::process::Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let skipped = std::env::var("VELLUM_SKIP_UI_BUILD").is_ok_and(|v| v == "1");
    if !npm || skipped {
        eprintln!("npm unavailable or VELLUM_SKIP_UI_BUILD=1: the placeholder is expected");
        return;
    }
    let index = std::fs::read_to_string(dist().join("index.html")).expect("admin-ui/dist/index.html");
    assert!(
        !index.contains("vellum-admin-ui-placeholder"),
        "build.rs left the placeholder although npm is available"
    );
    assert!(index.contains("/assets/"), "index.html should load the built assets");
}

#[tokio::test]
async fn serves_assets_with_type_and_long_cache() {
    let app = TestApp::new(Backend::Sqlite).await;
    let Ok(entries) = std::fs::read_dir(dist().join("assets")) else {
        // VELLUM_SKIP_UI_BUILD=1 or no npm: only the placeholder page exists
        eprintln!("admin-ui/dist/assets is missing (UI not built); skipping the asset checks");
        return;
    };
    let names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let js = names.iter().find(|n| n.ends_with(".js")).expect("a built .js asset");
    let got = get(&app, &format!("/assets/{js}"), None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.content_type, "text/javascript; charset=utf-8");
    assert_eq!(got.cache, "public, max-age=31536000, immutable");
    if let Some(css) = names.iter().find(|n| n.ends_with(".css")) {
        let got = get(&app, &format!("/assets/{css}"), None).await;
        assert_eq!(got.content_type, "text/css; charset=utf-8");
    }
    // a missing hashed asset is a 404, not index.html
    let got = get(&app, "/assets/nope-123.js", None).await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn api_paths_keep_json_404s() {
    let app = TestApp::new(Backend::Sqlite).await;
    for path in ["/api/nope", "/api", "/ws/nope", "/graphql/nope"] {
        let got = get(&app, path, None).await;
        assert_eq!(got.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            got.content_type.starts_with("application/json"),
            "{path}: {}",
            got.content_type
        );
        let v: serde_json::Value = serde_json::from_str(&got.body).expect("json");
        assert_eq!(v["error"]["code"], "NOT_FOUND", "{path}");
    }
    // the API's own routes still answer
    let (status, _) = app.request("GET", "/api/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
}
