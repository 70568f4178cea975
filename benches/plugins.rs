//! Plugin benchmarks: what a hook call costs, and what the example plugins add to a
//! publish. Side by side in one run:
//!
//! - per call (a fresh instance, the call, the answer checked; through the same path the
//!   server uses: the chain, the concurrency cap, a blocking thread): `word-count`'s
//!   `enrich` on a small document and on a 100 KB one, next to the same hook written as a
//!   native Rust function (the floor), and `heading-anchors`' `render`;
//! - a publish (GraphQL's `publish`, SQLite, strict durability) with all four example
//!   plugins enabled, next to the same publish with none.
//!
//! `cargo bench --bench plugins` prints p50/p99 tables (see BENCHMARKS.md); `cargo test
//! --benches` runs a few iterations of each as a smoke test. `VELLUM_BENCH_CALLS` (default
//! 3000) and `VELLUM_BENCH_PUBLISHES` (default 300) set the sizes.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vellum::auth::{self, Principal, RegisterInput, Role};
use vellum::config::{Config, Secret};
use vellum::content::BodyInput;
use vellum::documents::{self, NewDocument};
use vellum::plugins::{Caller, Plugins, Record};
use vellum::publishing;

fn quantiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

fn record(words: usize) -> Record {
    let text: String = (0..words).map(|i| format!("word{} ", i % 97)).collect();
    let html = format!("<h2>Intro</h2><p>{text}</p>");
    let json = json!({"type": "doc", "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}]});
    Record {
        id: uuid::Uuid::now_v7().to_string(),
        slug: "bench".into(),
        title: "Bench".into(),
        status: "draft".into(),
        version: Some(1),
        body_text: text,
        body_html: html,
        body_json: json.to_string(),
        fields_json: "{}".into(),
    }
}

/// The floor: `word-count`'s hook as a native function.
fn native_word_count(doc: &Record) -> Value {
    let words = doc.body_text.split_whitespace().count() as u64;
    json!({ "words": words, "readingMinutes": words.div_ceil(200) })
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (calls, publishes) = if bench {
        (env("VELLUM_BENCH_CALLS", 3000), env("VELLUM_BENCH_PUBLISHES", 300))
    } else {
        (5, 3)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        per_call(calls).await;
        publish_chain(publishes).await;
    });
}

async fn per_call(n: usize) {
    let mut config = Config::defaults();
    config.plugins.dir = "/nonexistent".into();
    let plugins = Plugins::load(&config.plugins, std::path::Path::new("/tmp"), None).await;
    assert!(
        !plugins.loaded().is_empty(),
        "no bundled plugins: build with the wasm32-wasip2 target"
    );
    plugins.trust_all();
    let caller = Caller {
        actor: None,
        request_id: "bench".into(),
        services: vellum::plugins::local::services(),
    };
    println!("| per call ({n} calls each) | p50 | p99 |");
    println!("| --- | --- | --- |");
    for (label, words) in [("small document (200 B body)", 30usize), ("100 KB document", 14_000)] {
        let doc = record(words);
        let mut wasm = Vec::with_capacity(n);
        let mut native = Vec::with_capacity(n);
        let mut render = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let f = plugins.run_enrich(&caller, &doc).await;
            wasm.push(t.elapsed());
            assert!(f.contains_key("word-count"));
            let t = Instant::now();
            let v = std::hint::black_box(native_word_count(std::hint::black_box(&doc)));
            native.push(t.elapsed());
            assert_eq!(Some(&v), f.get("word-count"));
            let t = Instant::now();
            let h = plugins.run_render(&caller, &doc, &doc.body_html).await;
            render.push(t.elapsed());
            assert!(h.is_some_and(|h| h.contains("id=\"intro\"")));
        }
        for (what, v) in [
            ("`word-count` enrich, WebAssembly", wasm),
            ("`word-count` enrich, native Rust (the floor)", native),
            ("`heading-anchors` render, WebAssembly", render),
        ] {
            let (p50, p99) = quantiles(v);
            println!("| {label}: {what} | {p50:.1} µs | {p99:.1} µs |");
        }
    }
}

async fn publish_chain(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::defaults();
    config.server.data_dir = dir.path().to_path_buf();
    config.auth.jwt_secret = Secret::new("bench-secret-that-is-at-least-32-bytes-long");
    let app = vellum::app::build_state(config).await.unwrap();
    let user = auth::create_user(
        &app.store,
        RegisterInput {
            email: "bench@example.com".into(),
            password: "correct horse".into(),
            display_name: "Bench".into(),
        },
        Some(Role::Admin),
    )
    .await
    .unwrap_or_else(|e| panic!("{}", e.public_message()));
    let who = Principal::User(user);
    let doc = documents::create(
        &app,
        &who,
        NewDocument {
            title: "Bench".into(),
            slug: None,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{}", e.public_message()));
    let body = "## Getting started\n\n".to_string() + &"Some words in a paragraph. ".repeat(40) + "\n";
    publishing::set_body(&app, &who, doc.id, BodyInput::Markdown(body), None)
        .await
        .unwrap_or_else(|e| panic!("{}", e.public_message()));
    let names = ["word-count", "slugify", "banned-words", "heading-anchors"];
    let set = |on: bool| {
        let (app, who) = (app.clone(), who.clone());
        async move {
            for name in names {
                app.plugins
                    .set_enabled(&who, name, on)
                    .await
                    .unwrap_or_else(|e| panic!("{}", e.public_message()));
            }
            if on {
                app.plugins
                    .set_config(&who, "banned-words", &json!({ "words": ["frobnicate"] }))
                    .await
                    .unwrap_or_else(|e| panic!("{}", e.public_message()));
            }
        }
    };
    let mut with = Vec::with_capacity(n);
    let mut without = Vec::with_capacity(n);
    // Alternate, so both see the same machine and the same growing history.
    for i in 0..2 * n {
        let on = i % 2 == 0;
        set(on).await;
        let t = Instant::now();
        publishing::publish(&app, &who, doc.id, Some("bench"))
            .await
            .unwrap_or_else(|e| panic!("{}", e.public_message()));
        if on { &mut with } else { &mut without }.push(t.elapsed());
    }
    let (w50, w99) = quantiles(with);
    let (o50, o99) = quantiles(without);
    println!();
    println!("| publish ({n} each, alternating) | p50 | p99 |");
    println!("| --- | --- | --- |");
    println!("| no plugins | {:.2} ms | {:.2} ms |", o50 / 1000.0, o99 / 1000.0);
    println!(
        "| all four example plugins | {:.2} ms | {:.2} ms |",
        w50 / 1000.0,
        w99 / 1000.0
    );
    println!(
        "| added by the chain | {:.2} ms | {:.2} ms |",
        (w50 - o50) / 1000.0,
        (w99 - o99) / 1000.0
    );
}
