//! Plugins end to end: the real example plugins and the hostile fixture, built from
//! source by build.rs (`VELLUM_PLUGIN_BUILD`), loaded by the server as in production and
//! driven through GraphQL and REST.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::StatusCode;
use common::{Backend, TestApp, gql_code, set_markdown};
use serde_json::{Value, json};

const BUILT: &str = env!("VELLUM_PLUGIN_BUILD");

fn built(name: &str) -> PathBuf {
    let dir = Path::new(BUILT).join(name);
    assert!(
        dir.join("plugin.wasm").exists(),
        "{} was not built (is the wasm32-wasip2 target installed? `rustup target add wasm32-wasip2`)",
        dir.display()
    );
    dir
}

/// Copies a built plugin into `plugins_dir/<as_name>`, renaming it in its manifest.
fn install(plugins_dir: &Path, name: &str, as_name: &str) -> PathBuf {
    let to = plugins_dir.join(as_name);
    std::fs::create_dir_all(&to).unwrap();
    let from = built(name);
    std::fs::copy(from.join("plugin.wasm"), to.join("plugin.wasm")).unwrap();
    let manifest = std::fs::read_to_string(from.join("plugin.toml"))
        .unwrap()
        .replace(&format!("name = \"{name}\""), &format!("name = \"{as_name}\""));
    std::fs::write(to.join("plugin.toml"), manifest).unwrap();
    to
}

/// A server with the bundled plugins and a plugins directory; compiled components are
/// cached for the whole test run.
async fn app_with(backend: Backend, plugins_dir: &Path, adjust: impl FnOnce(&mut vellum::config::Config)) -> TestApp {
    let dir = plugins_dir.to_path_buf();
    TestApp::with_config(backend, move |c| {
        c.plugins.bundled = true;
        c.plugins.dir = dir;
        c.plugins.cache_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache");
        adjust(c);
    })
    .await
}

const PLUGINS: &str = "{ plugins { name version status hooks error disabledReason grantedCapabilities calls rejections failures lastFailure fuelUsed p50Ms p99Ms } }";

async fn plugins(app: &TestApp, admin: &str) -> Vec<Value> {
    let v = app.gql(Some(admin), PLUGINS, json!({})).await;
    v["data"]["plugins"].as_array().unwrap_or_else(|| panic!("{v}")).clone()
}

async fn plugin(app: &TestApp, admin: &str, name: &str) -> Value {
    plugins(app, admin)
        .await
        .into_iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no plugin {name}"))
}

async fn enable(app: &TestApp, admin: &str, name: &str) {
    let v = app
        .gql(
            Some(admin),
            "mutation($n: String!) { setPluginEnabled(name: $n, enabled: true) { status } }",
            json!({ "n": name }),
        )
        .await;
    assert_eq!(v["data"]["setPluginEnabled"]["status"], "ENABLED", "{v}");
}

const SET_CONFIG: &str = "mutation($n: String!, $c: JSON!) { setPluginConfig(name: $n, config: $c) { config } }";
const PUBLISH: &str = "mutation($d: ID!) { publish(documentId: $d) { status slug } }";
const SAVE: &str = "mutation($d: ID!, $l: String!) { saveVersion(documentId: $d, label: $l) { number title fields } }";

async fn example_plugins_through_graphql_and_rest(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with(backend, dir.path(), |_| {}).await;
    let (admin, _) = app.register("admin@example.com", "Admin").await;

    // Bundled plugins are loaded and start disabled.
    let all = plugins(&app, &admin).await;
    for name in ["word-count", "slugify", "banned-words", "heading-anchors"] {
        let p = all
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {all:?}"));
        assert_eq!(p["status"], "DISABLED", "{p}");
        enable(&app, &admin, name).await;
    }
    // Settings are checked against the manifest's schema.
    let set = SET_CONFIG;
    let v = app
        .gql(
            Some(&admin),
            set,
            json!({ "n": "banned-words", "c": { "words": "frobnicate" } }),
        )
        .await;
    assert_eq!(gql_code(&v), Some("VALIDATION"), "{v}");
    assert_eq!(v["errors"][0]["extensions"]["field"], "config.words", "{v}");
    let v = app
        .gql(
            Some(&admin),
            set,
            json!({ "n": "banned-words", "c": { "words": ["frobnicate"] } }),
        )
        .await;
    assert_eq!(v["data"]["setPluginConfig"]["config"]["words"][0], "frobnicate", "{v}");

    // slugify: an empty slug is derived from the title, on create and on update.
    let v = app
        .gql(
            Some(&admin),
            "mutation { createDocument(input: {title: \"Hello Plugin World\", slug: \"\"}) { id slug lockVersion } }",
            json!({}),
        )
        .await;
    let doc = &v["data"]["createDocument"];
    assert_eq!(doc["slug"], "hello-plugin-world", "{v}");
    let id = doc["id"].as_str().unwrap().to_string();
    let (status, d) = app
        .request(
            "PATCH",
            &format!("/api/documents/{id}"),
            Some(&admin),
            Some(json!({ "lockVersion": doc["lockVersion"], "title": "Launch Notes", "slug": "" })),
        )
        .await;
    assert_eq!(
        (status, d["slug"].as_str()),
        (StatusCode::OK, Some("launch-notes")),
        "{d}"
    );

    // banned-words: the publish is refused with the plugin, its message and the field.
    set_markdown(
        &app,
        &admin,
        &id,
        "# Getting Started\n\nFirst paragraph.\n\nWe frobnicate here.\n",
    )
    .await;
    let v = app.gql(Some(&admin), PUBLISH, json!({ "d": id })).await;
    assert_eq!(gql_code(&v), Some("PLUGIN_REJECTED"), "{v}");
    let ext = &v["errors"][0]["extensions"];
    assert_eq!(ext["plugin"], "banned-words", "{v}");
    assert_eq!(ext["field"], "body", "{v}");
    assert_eq!(ext["reason"], "banned-word", "{v}");
    let msg = ext["pluginMessage"].as_str().unwrap();
    assert!(msg.contains("frobnicate") && msg.contains("paragraph 3"), "{msg}");
    let (status, e) = app
        .request(
            "POST",
            &format!("/api/documents/{id}/publish"),
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(
        (e["error"]["code"].as_str(), e["error"]["plugin"].as_str()),
        (Some("PLUGIN_REJECTED"), Some("banned-words")),
        "{e}"
    );
    // Nothing was published.
    let (status, _) = app
        .request("GET", "/api/content/by-slug/launch-notes", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // word-count: fields on the version and on the document.
    set_markdown(&app, &admin, &id, "# Getting Started\n\nOne two three four five.\n").await;
    let v = app.gql(Some(&admin), SAVE, json!({ "d": id, "l": "counted" })).await;
    let fields = &v["data"]["saveVersion"]["fields"]["word-count"];
    assert_eq!(
        (fields["words"].as_u64(), fields["readingMinutes"].as_u64()),
        (Some(7), Some(1)),
        "{v}"
    );
    let v = app
        .gql(
            Some(&admin),
            "query($id: ID!) { document(id: $id, draft: true) { fields } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(v["data"]["document"]["fields"]["word-count"]["words"], 7, "{v}");
    // Its setting changes the reading time.
    let v = app
        .gql(
            Some(&admin),
            set,
            json!({ "n": "word-count", "c": { "wordsPerMinute": 2 } }),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    let v = app
        .gql(Some(&admin), SAVE, json!({ "d": id, "l": "slow readers" }))
        .await;
    assert_eq!(
        v["data"]["saveVersion"]["fields"]["word-count"]["readingMinutes"], 4,
        "{v}"
    );

    // heading-anchors: ids on headings in delivered HTML, GraphQL and REST.
    let v = app.gql(Some(&admin), PUBLISH, json!({ "d": id })).await;
    assert_eq!(v["data"]["publish"]["status"], "PUBLISHED", "{v}");
    let v = app
        .gql(
            None,
            "{ document(slug: \"launch-notes\") { body { html } } }",
            json!({}),
        )
        .await;
    let html = v["data"]["document"]["body"]["html"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    assert!(
        html.starts_with("<h1 id=\"getting-started\">Getting Started</h1>"),
        "{html}"
    );
    let (status, c) = app
        .request("GET", "/api/content/by-slug/launch-notes", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert!(
        c["body"]["html"]
            .as_str()
            .unwrap()
            .contains("<h1 id=\"getting-started\">"),
        "{c}"
    );

    // Statistics.
    let p = plugin(&app, &admin, "banned-words").await;
    // Two refused publishes (GraphQL, REST) and the one that went through.
    assert!(p["calls"] == 3 && p["rejections"] == 2, "{p}");
    assert!(
        p["fuelUsed"].as_u64().unwrap() > 0 && p["p99Ms"].as_f64().is_some(),
        "{p}"
    );

    // Only admins see or manage plugins.
    let (author, _) = app.register("author@example.com", "Author").await;
    let v = app.gql(Some(&author), PLUGINS, json!({})).await;
    assert_eq!(gql_code(&v), Some("FORBIDDEN"), "{v}");
    let v = app
        .gql(
            Some(&author),
            "mutation { setPluginEnabled(name: \"slugify\", enabled: false) { status } }",
            json!({}),
        )
        .await;
    assert_eq!(gql_code(&v), Some("FORBIDDEN"), "{v}");
}

async fn save_titled(app: &TestApp, token: &str, title: &str) -> Value {
    let doc = app.create_doc(token, title).await;
    app.gql(Some(token), SAVE, json!({ "d": doc["id"], "l": "v" })).await
}

fn failed_kind(v: &Value) -> (Option<&str>, Option<&str>) {
    (gql_code(v), v["errors"][0]["extensions"]["kind"].as_str())
}

/// Each misbehaviour of the hostile fixture is stopped or refused with its typed error,
/// no hostile HTML is delivered, and the server stays healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plugins_are_stopped() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "hostile", "hostile");
    // Fuel, not the clock, stops the loop here: the deadline is far away.
    let app = app_with(Backend::Sqlite, dir.path(), |c| {
        c.plugins.timeout_ms = 20_000;
        c.plugins.failures_before_disable = 0;
    })
    .await;
    let (admin, _) = app.register("admin@example.com", "Admin").await;
    // A directory plugin starts enabled, with no capability granted.
    let p = plugin(&app, &admin, "hostile").await;
    assert_eq!(
        (p["status"].as_str(), p["grantedCapabilities"].as_array().map(Vec::len)),
        (Some("ENABLED"), Some(0)),
        "{p}"
    );

    for (title, kind) in [
        ("loop", "out-of-fuel"),
        ("memory", "memory-limit"),
        ("recursion", "trap"),
        ("huge", "invalid-output"),
        ("utf8", "invalid-output"),
        ("kv", "capability-denied"),
        ("panic", "trap"),
    ] {
        let v = save_titled(&app, &admin, title).await;
        assert_eq!(failed_kind(&v), (Some("PLUGIN_FAILED"), Some(kind)), "{title}: {v}");
        assert_eq!(v["errors"][0]["extensions"]["plugin"], "hostile", "{v}");
        let p = plugin(&app, &admin, "hostile").await;
        assert!(p["lastFailure"].as_str().unwrap().starts_with(kind), "{title}: {p}");
        if title == "panic" {
            assert!(
                p["lastFailure"].as_str().unwrap().contains("panicked on purpose"),
                "{p}"
            );
        }
    }

    // The sandbox has no files, no network, no environment.
    let v = save_titled(&app, &admin, "files").await;
    let title = v["data"]["saveVersion"]["title"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    assert!(
        title.starts_with("fs: error") && title.contains("net: error") && title.ends_with("env: 0"),
        "{title}"
    );

    // Hostile HTML from `render` is sanitized before delivery.
    let doc = app.create_doc(&admin, "html").await;
    let id = doc["id"].as_str().unwrap();
    set_markdown(&app, &admin, id, "Hello.\n").await;
    let v = app
        .gql(
            Some(&admin),
            "query($id: ID!) { document(id: $id, draft: true) { body { html } } }",
            json!({ "id": id }),
        )
        .await;
    let html = v["data"]["document"]["body"]["html"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    assert!(html.starts_with("<p>Hello.</p>"), "{html}");
    for bad in ["<script", "alert(1)", "onerror", "onclick", "javascript:"] {
        assert!(!html.contains(bad), "{bad} delivered: {html}");
    }
    let (status, c) = app
        .request("GET", &format!("/api/content/{id}?draft=true"), Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert!(!c["body"]["html"].as_str().unwrap().contains("<script"), "{c}");

    // A document the plugin does not pick on saves normally; the server is healthy.
    let v = save_titled(&app, &admin, "an ordinary title").await;
    assert_eq!(v["data"]["saveVersion"]["title"], "an ordinary title", "{v}");
    let (status, _) = app.request("GET", "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

/// The wall clock stops a loop when fuel does not; requests that use no plugin are
/// answered while it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_stops_a_loop_and_other_requests_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = install(dir.path(), "hostile", "hostile");
    let m = std::fs::read_to_string(hostile.join("plugin.toml"))
        .unwrap()
        .replace("fuel = 200_000_000", "fuel = 1_000_000_000_000");
    std::fs::write(hostile.join("plugin.toml"), m).unwrap();
    let app = app_with(Backend::Sqlite, dir.path(), |c| {
        c.plugins.fuel = 1_000_000_000_000;
        c.plugins.timeout_ms = 1000;
    })
    .await;
    let (admin, _) = app.register("admin@example.com", "Admin").await;
    let doc = app.create_doc(&admin, "loop").await;
    let started = std::time::Instant::now();
    let looping = {
        let router = app.router.clone();
        let admin = admin.clone();
        let id = doc["id"].as_str().unwrap().to_string();
        tokio::spawn(async move {
            use tower::ServiceExt;
            let body = json!({ "query": SAVE, "variables": { "d": id, "l": "v" } }).to_string();
            let req = axum::http::Request::post("/graphql")
                .header("authorization", format!("Bearer {admin}"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body))
                .unwrap();
            let res = router.oneshot(req).await.unwrap();
            let bytes = http_body_util::BodyExt::collect(res.into_body())
                .await
                .unwrap()
                .to_bytes();
            (
                serde_json::from_slice::<Value>(&bytes).unwrap(),
                std::time::Instant::now(),
            )
        })
    };
    // While the loop runs, plain requests are answered: all of them before it ends.
    for _ in 0..20 {
        let v = app.gql(Some(&admin), "{ me { email } }", json!({})).await;
        assert_eq!(v["data"]["me"]["email"], "admin@example.com", "{v}");
    }
    let plain_done = std::time::Instant::now();
    let (v, loop_done) = looping.await.unwrap();
    assert_eq!(failed_kind(&v), (Some("PLUGIN_FAILED"), Some("timeout")), "{v}");
    assert!(plain_done < loop_done, "plain requests waited for the plugin call");
    assert!(
        loop_done - started >= Duration::from_millis(950),
        "stopped before its deadline"
    );
}

/// A plugin that keeps failing is disabled, says why, and stops being called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_disable_a_plugin() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "hostile", "hostile");
    let app = app_with(Backend::Sqlite, dir.path(), |c| c.plugins.failures_before_disable = 3).await;
    let (admin, _) = app.register("admin@example.com", "Admin").await;
    for _ in 0..3 {
        let v = save_titled(&app, &admin, "panic").await;
        assert_eq!(gql_code(&v), Some("PLUGIN_FAILED"), "{v}");
    }
    let p = plugin(&app, &admin, "hostile").await;
    assert_eq!(p["status"], "FAILING", "{p}");
    assert!(p["disabledReason"].as_str().unwrap().contains("3 failures"), "{p}");
    // Disabled: the same save now goes through.
    let v = save_titled(&app, &admin, "panic").await;
    assert_eq!(v["data"]["saveVersion"]["title"], "panic", "{v}");
    enable(&app, &admin, "hostile").await;
    let v = save_titled(&app, &admin, "panic").await;
    assert_eq!(gql_code(&v), Some("PLUGIN_FAILED"), "{v}");
}

/// Bad plugins are reported with why and skipped; the server starts and the good ones run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_plugins_are_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    // The word-count component imports `config`; a manifest that does not request it is refused.
    let no_caps = install(dir.path(), "word-count", "no-caps");
    let m = std::fs::read_to_string(no_caps.join("plugin.toml"))
        .unwrap()
        .replace("capabilities = [\"config\"]", "capabilities = []");
    std::fs::write(no_caps.join("plugin.toml"), m).unwrap();
    // A component that does not match the manifest's sha256.
    let tampered = install(dir.path(), "slugify", "tampered");
    let mut wasm = std::fs::read(tampered.join("plugin.wasm")).unwrap();
    let last = wasm.len() - 1;
    wasm[last] ^= 1;
    std::fs::write(tampered.join("plugin.wasm"), wasm).unwrap();
    // Not a manifest at all.
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("plugin.toml"), "name = 3").unwrap();
    // And a good one.
    install(dir.path(), "slugify", "good-slugs");

    let app = app_with(Backend::Sqlite, dir.path(), |_| {}).await;
    let (admin, _) = app.register("admin@example.com", "Admin").await;
    let all = plugins(&app, &admin).await;
    let get = |n: &str| {
        all.iter()
            .find(|p| p["name"] == n)
            .unwrap_or_else(|| panic!("{n}: {all:?}"))
            .clone()
    };
    assert_eq!(get("good-slugs")["status"], "ENABLED");
    for (name, why) in [
        ("no-caps", "without requesting it"),
        ("tampered", "does not match the manifest's sha256"),
        ("broken", "plugin.toml"),
    ] {
        let p = get(name);
        assert_eq!(p["status"], "BROKEN", "{p}");
        assert!(p["error"].as_str().unwrap().contains(why), "{name}: {p}");
    }
    let v = app
        .gql(
            Some(&admin),
            "mutation { createDocument(input: {title: \"Works Anyway\", slug: \"\"}) { slug } }",
            json!({}),
        )
        .await;
    assert_eq!(v["data"]["createDocument"]["slug"], "works-anyway", "{v}");
}

/// Files replaced while calls run: new calls use the new version and none fails; a
/// broken replacement keeps the old one and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_swaps_versions_without_failing_calls() {
    let dir = tempfile::tempdir().unwrap();
    let anchors = install(dir.path(), "heading-anchors", "anchors");
    let app = app_with(Backend::Sqlite, dir.path(), |_| {}).await;
    let (admin, _) = app.register("admin@example.com", "Admin").await;
    let doc = app.create_doc(&admin, "Reloaded").await;
    let id = doc["id"].as_str().unwrap().to_string();
    set_markdown(&app, &admin, &id, "## Section One\n\nText.\n").await;
    let read = "query($id: ID!) { document(id: $id, draft: true) { body { html } } }";

    // Readers keep reading while the files change.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (router, admin, id, stop) = (app.router.clone(), admin.clone(), id.clone(), stop.clone());
        tokio::spawn(async move {
            use tower::ServiceExt;
            let mut reads = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = json!({ "query": read, "variables": { "id": id } }).to_string();
                let req = axum::http::Request::post("/graphql")
                    .header("authorization", format!("Bearer {admin}"))
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(body))
                    .unwrap();
                let res = router.clone().oneshot(req).await.unwrap();
                let bytes = http_body_util::BodyExt::collect(res.into_body())
                    .await
                    .unwrap()
                    .to_bytes();
                let v: Value = serde_json::from_slice(&bytes).unwrap();
                let html = v["data"]["document"]["body"]["html"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{v}"))
                    .to_string();
                assert!(
                    html.contains("<h2 id=\"section-one\">"),
                    "a read missed the plugin: {html}"
                );
                reads += 1;
            }
            reads
        })
    };

    // A new version: same component, version 0.2.0 (written as a copy swaps in: first the
    // component, then the manifest).
    let m = std::fs::read_to_string(anchors.join("plugin.toml"))
        .unwrap()
        .replace("version = \"0.1.0\"", "version = \"0.2.0\"");
    std::fs::write(anchors.join("plugin.toml.new"), m).unwrap();
    std::fs::rename(anchors.join("plugin.toml.new"), anchors.join("plugin.toml")).unwrap();
    wait_for(&app, &admin, "anchors", |p| p["version"] == "0.2.0").await;

    // A broken replacement: the old version stays, with the error shown.
    std::fs::write(anchors.join("plugin.wasm"), b"not a component").unwrap();
    let p = wait_for(&app, &admin, "anchors", |p| !p["error"].is_null()).await;
    assert_eq!(
        (p["version"].as_str(), p["status"].as_str()),
        (Some("0.2.0"), Some("ENABLED")),
        "{p}"
    );
    assert!(p["error"].as_str().unwrap().contains("sha256"), "{p}");

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.await.unwrap();
    assert!(reads > 0);
    let p = plugin(&app, &admin, "anchors").await;
    assert_eq!(p["failures"], 0, "{p}");
}

/// Polls the admin view until `done` holds (the watcher reloads within a second).
async fn wait_for(app: &TestApp, admin: &str, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let p = plugin(app, admin, name).await;
        if done(&p) {
            return p;
        }
        assert!(tokio::time::Instant::now() < deadline, "not reloaded in 20 s: {p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `vellum plugin check` and `vellum plugin run` report what the server would decide,
/// with the fuel a call used.
#[test]
fn cli_checks_and_runs_a_plugin() {
    let bin = env!("CARGO_BIN_EXE_vellum");
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin)
        .args(["plugin", "check"])
        .arg(built("word-count"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("word-count 0.1.0: ok"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let input = tmp.path().join("doc.json");
    std::fs::write(&input, r#"{"title": "loop"}"#).unwrap();
    let run = |dir: &Path, hook: &str| {
        let out = std::process::Command::new(bin)
            .args(["plugin", "run"])
            .arg(dir)
            .args(["--hook", hook, "--input"])
            .arg(&input)
            .env("VELLUM_PLUGINS__TIMEOUT_MS", "20000")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let v = run(&built("hostile"), "before-save-version");
    assert_eq!(v["outcome"]["failed"]["kind"], "out-of-fuel", "{v}");
    // The budget is an instruction count: the run used all of it, every time.
    let fuel = v["fuelUsed"].as_u64().unwrap();
    assert_eq!(
        fuel,
        run(&built("hostile"), "before-save-version")["fuelUsed"]
            .as_u64()
            .unwrap()
    );
    assert!(fuel >= 200_000_000 / 2, "{v}");

    std::fs::write(&input, r#"{"bodyText": "one two three"}"#).unwrap();
    let v = run(&built("word-count"), "enrich");
    assert_eq!(v["outcome"]["fields"]["words"], 3, "{v}");
}

both_backends!(example_plugins_through_graphql_and_rest);

/// What an admin decides about a plugin lives in the database, so every node of a cluster
/// agrees: enabled and configured on one node, it runs with those settings on another
/// (within the state's cache time, a couple of seconds), and disabled there, it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_follows_the_admins_plugin_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let a = app_with(Backend::Postgres, dir.path(), |_| {}).await;
    let other = tempfile::tempdir().unwrap();
    let b = a.second_node(other.path()).await;
    let (admin, _) = a.register("admin@example.com", "Admin").await;
    enable(&a, &admin, "word-count").await;
    let set = SET_CONFIG;
    let v = a
        .gql(
            Some(&admin),
            set,
            json!({ "n": "word-count", "c": { "wordsPerMinute": 2 } }),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    let id = b.create_doc(&admin, "Counted").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    set_markdown(&b, &admin, &id, "One two three four five six seven.\n").await;
    // Node b reads the decision from the database once its cached copy is stale.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = b.gql(Some(&admin), SAVE, json!({ "d": id, "l": "on b" })).await;
        if v["data"]["saveVersion"]["fields"]["word-count"]["readingMinutes"] == 4 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "node b never followed: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(plugin(&b, &admin, "word-count").await["status"], "ENABLED");
    let v = b
        .gql(
            Some(&admin),
            "mutation($n: String!) { setPluginEnabled(name: $n, enabled: false) { status } }",
            json!({ "n": "word-count" }),
        )
        .await;
    assert_eq!(v["data"]["setPluginEnabled"]["status"], "DISABLED", "{v}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = a.gql(Some(&admin), SAVE, json!({ "d": id, "l": "on a" })).await;
        if v["data"]["saveVersion"]["fields"].get("word-count").is_none() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "node a never followed: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Granted capabilities work within their bounds: `kv` up to its quota and only the
/// plugin's own keys, `content` only what the acting user may read, and a failing
/// `after-publish` is retried a bounded number of times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_capabilities_work_within_their_bounds() {
    let dir = tempfile::tempdir().unwrap();
    // Its own name: the after-publish counter below is process-wide.
    install(dir.path(), "hostile", "capable");
    let app = app_with(Backend::Sqlite, dir.path(), |c| c.plugins.kv_quota_bytes = 1000).await;
    let (admin, _) = app.register("admin@example.com", "Admin").await;
    let author = common::user_with_role(&app, "author@example.com", vellum::auth::Role::Author).await;

    // Not granted yet: refused with its typed error.
    let v = save_titled(&app, &admin, "kv-fill").await;
    assert_eq!(
        failed_kind(&v),
        (Some("PLUGIN_FAILED"), Some("capability-denied")),
        "{v}"
    );
    // Only capabilities the manifest requests can be granted; only admins grant.
    let grant = "mutation($n: String!, $c: [Capability!]!) { setPluginGrants(name: $n, capabilities: $c) { grantedCapabilities } }";
    let v = app
        .gql(Some(&admin), grant, json!({ "n": "capable", "c": ["CONFIG"] }))
        .await;
    assert_eq!(gql_code(&v), Some("VALIDATION"), "{v}");
    let v = app
        .gql(Some(&author), grant, json!({ "n": "capable", "c": ["KV"] }))
        .await;
    assert_eq!(gql_code(&v), Some("FORBIDDEN"), "{v}");
    let v = app
        .gql(Some(&admin), grant, json!({ "n": "capable", "c": ["KV", "CONTENT"] }))
        .await;
    assert_eq!(
        v["data"]["setPluginGrants"]["grantedCapabilities"],
        json!(["KV", "CONTENT"]),
        "{v}"
    );

    // kv: the quota counts keys and values together; rewriting a key reuses its room.
    let v = save_titled(&app, &admin, "kv-fill").await;
    let title = v["data"]["saveVersion"]["title"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    assert!(title.starts_with("a: Ok(()); b: Err("), "{title}");
    assert!(title.contains("quota") && title.ends_with("a again: Ok(())"), "{title}");
    let v = save_titled(&app, &admin, "kv-get:a").await;
    assert_eq!(
        v["data"]["saveVersion"]["title"],
        format!("kv: 650 bytes: {}", "A".repeat(16)),
        "{v}"
    );
    let v = save_titled(&app, &admin, "kv-get:b").await;
    assert_eq!(v["data"]["saveVersion"]["title"], "kv: none", "{v}");

    // content: what the acting user may read, nothing more.
    let v = app
        .gql(
            Some(&admin),
            "mutation { createDocument(input: {title: \"Secret plan\", slug: \"secret-plan\"}) { id } }",
            json!({}),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    let v = save_titled(&app, &admin, "content:secret-plan").await;
    assert_eq!(v["data"]["saveVersion"]["title"], "found: Secret plan", "{v}");
    let v = save_titled(&app, &author, "content:secret-plan").await;
    assert_eq!(v["data"]["saveVersion"]["title"], "found nothing", "{v}");
    let v = save_titled(&app, &author, "content:no-such-document").await;
    assert_eq!(v["data"]["saveVersion"]["title"], "found nothing", "{v}");

    // after-publish: the publish succeeds at once; the failing call is tried 3 times.
    let doc = app.create_doc(&admin, "after-fail").await;
    let v = app.gql(Some(&admin), PUBLISH, json!({ "d": doc["id"] })).await;
    assert_eq!(v["data"]["publish"]["status"], "PUBLISHED", "{v}");
    let gave_up = "vellum_plugin_after_publish_total{plugin=\"capable\",outcome=\"gave-up\"} 1";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let (_, m) = app.request("GET", "/metrics", None, None).await;
        let m = m.as_str().unwrap_or_default().to_string();
        if m.contains(gave_up) {
            break m;
        }
        assert!(tokio::time::Instant::now() < deadline, "no give-up in 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        metrics.contains("vellum_plugin_after_publish_total{plugin=\"capable\",outcome=\"retried\"} 2"),
        "{metrics}"
    );
    let v = save_titled(&app, &admin, "kv-get:attempts").await;
    assert_eq!(v["data"]["saveVersion"]["title"], "kv: 1 bytes: 3", "{v}");
}

/// The second-language plugin (JavaScript through componentize-js, built by the test
/// command from plugins/excerpt-js) works the same way through the server. Without its
/// build (no Node.js) the test says so and passes, unless `VELLUM_REQUIRE_JS_PLUGIN=1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_plugin_works_like_the_rust_ones() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/excerpt-js");
    if !source.join("plugin.wasm").exists() {
        assert!(
            std::env::var("VELLUM_REQUIRE_JS_PLUGIN").is_err(),
            "plugins/excerpt-js/plugin.wasm is missing: `cd plugins/excerpt-js && npm ci && npm run build`"
        );
        eprintln!("skipped: plugins/excerpt-js is not built (cd plugins/excerpt-js && npm ci && npm run build)");
        return;
    }
    // Installed as an operator would: the files, and the sha256 once trusted.
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("excerpt-js");
    std::fs::create_dir_all(&to).unwrap();
    let wasm = std::fs::read(source.join("plugin.wasm")).unwrap();
    std::fs::write(to.join("plugin.wasm"), &wasm).unwrap();
    let manifest = std::fs::read_to_string(source.join("plugin.toml")).unwrap();
    let sha = vellum::plugins::runtime::sha256_hex(&wasm);
    std::fs::write(to.join("plugin.toml"), format!("sha256 = \"{sha}\"\n{manifest}")).unwrap();

    let app = app_with(Backend::Sqlite, dir.path(), |c| {
        c.plugins.bundled = false;
        c.plugins.grants.insert("excerpt-js".into(), vec!["config".into()]);
    })
    .await;
    let (admin, _) = app.register("admin@example.com", "Admin").await;
    let p = plugin(&app, &admin, "excerpt-js").await;
    assert_eq!(p["status"], "ENABLED", "{p}");
    assert_eq!(p["hooks"], json!(["ENRICH"]), "{p}");

    let doc = app.create_doc(&admin, "JS").await;
    let id = doc["id"].as_str().unwrap();
    let long = "word ".repeat(60);
    set_markdown(&app, &admin, id, &format!("First paragraph.\n\n{long}\n")).await;
    let v = app.gql(Some(&admin), SAVE, json!({ "d": id, "l": "js" })).await;
    let f = &v["data"]["saveVersion"]["fields"]["excerpt-js"];
    assert_eq!(f["paragraphs"], 2, "{v}");
    assert_eq!(f["characters"], 17 + 60 * 5 - 1, "{v}");
    let excerpt = f["excerpt"].as_str().unwrap_or_else(|| panic!("{v}"));
    assert!(
        excerpt.starts_with("First paragraph. word") && excerpt.ends_with('…'),
        "{excerpt}"
    );
    assert!(excerpt.chars().count() <= 160, "{excerpt}");

    // Its setting, validated against its schema, reaches the component.
    let set = SET_CONFIG;
    let v = app
        .gql(
            Some(&admin),
            set,
            json!({ "n": "excerpt-js", "c": { "excerptLength": 5 } }),
        )
        .await;
    assert_eq!(gql_code(&v), Some("VALIDATION"), "below its minimum: {v}");
    let v = app
        .gql(
            Some(&admin),
            set,
            json!({ "n": "excerpt-js", "c": { "excerptLength": 30 } }),
        )
        .await;
    assert!(v["errors"].is_null(), "{v}");
    let v = app.gql(Some(&admin), SAVE, json!({ "d": id, "l": "short" })).await;
    let excerpt = v["data"]["saveVersion"]["fields"]["excerpt-js"]["excerpt"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(excerpt, "First paragraph. word word…", "{v}");
    // The same fields on the document, and the call in the statistics.
    let v = app
        .gql(
            Some(&admin),
            "query($id: ID!) { document(id: $id, draft: true) { fields } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(v["data"]["document"]["fields"]["excerpt-js"]["paragraphs"], 2, "{v}");
    let p = plugin(&app, &admin, "excerpt-js").await;
    assert!(p["calls"].as_u64().unwrap() >= 2 && p["failures"] == 0, "{p}");
}
