//! Search benchmarks, side by side in one run with PostgreSQL's own full-text search
//! (a generated `tsvector` column with a GIN index, `ts_rank` and `ts_headline`) on the
//! same versions, in the same database:
//!
//! - the corpus: the two editing traces in `../shared/data` replayed, the text taken
//!   every 1% of the trace, and each document given a 3 KB window of it, so that a
//!   document has 100 versions of real, evolving prose (LaTeX and a blog post);
//! - indexing: `vellum reindex`'s rebuild (MB of text per second, index size against the
//!   raw text) against adding the `tsvector` column and its GIN index;
//! - queries (single word, rare word, phrase, boolean, prefix, fuzzy; each with a total
//!   count and highlighted snippets of the first page of 10): p50/p99 in process
//!   (`search::search`, the database's say on each page included) and through GraphQL
//!   (the router, JSON in and out), against the PostgreSQL query that returns the same;
//! - `saveVersion` → searchable: from the mutation's answer to the version being found.
//!
//! `cargo bench --bench search` (needs PostgreSQL at VELLUM_TEST_PG, default
//! postgres://postgres@127.0.0.1:5432); `VELLUM_BENCH_VERSIONS` (default 100000),
//! `VELLUM_BENCH_QUERIES` (default 300). `cargo test --benches` runs a small smoke version.

use std::io::Read;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Connection;
use tower::ServiceExt;
use uuid::Uuid;
use vellum::auth::{self, Principal, RegisterInput, Role};
use vellum::config::{Config, Secret};
use vellum::search::{self, Filter};

const WINDOW: usize = 3000;
const SNAPSHOTS: usize = 100;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TraceFile {
    start_content: String,
    txns: Vec<TraceTxn>,
}

#[derive(Deserialize)]
struct TraceTxn {
    patches: Vec<(usize, usize, String)>,
}

/// The trace's text at every 1% of its edits.
fn snapshots(name: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(name);
    let mut json = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).expect("open trace (../shared/data)"))
        .read_to_string(&mut json)
        .expect("gunzip trace");
    let trace: TraceFile = serde_json::from_str(&json).expect("trace JSON");
    let total: usize = trace.txns.iter().map(|t| t.patches.len()).sum();
    let every = total.div_ceil(SNAPSHOTS);
    let mut text = trace.start_content;
    let mut out = Vec::new();
    let mut n = 0;
    for txn in trace.txns {
        for (pos, del, ins) in txn.patches {
            // ASCII traces: positions are byte offsets.
            text.replace_range(pos..pos + del, &ins);
            n += 1;
            if n % every == 0 {
                out.push(text.clone());
            }
        }
    }
    out.push(text);
    out.truncate(SNAPSHOTS);
    out
}

/// Document `d`'s version texts: a window of each snapshot of its trace.
fn versions_of(d: usize, traces: &[Vec<String>]) -> Vec<String> {
    let snaps = &traces[d % traces.len()];
    let final_len = snaps.last().map_or(0, |s| s.len());
    let start = (d / traces.len() * 7919) % final_len.saturating_sub(WINDOW).max(1);
    snaps
        .iter()
        .map(|s| {
            let from = start.min(s.len().saturating_sub(WINDOW));
            s[from..(from + WINDOW).min(s.len())].to_string()
        })
        .collect()
}

fn quantiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

struct Q {
    label: &'static str,
    vellum: &'static str,
    /// PostgreSQL's tsquery for the same (`None`: it has no equivalent).
    pg: Option<&'static str>,
}

const QUERIES: &[Q] = &[
    Q {
        label: "word (`concurrent`)",
        vellum: "concurrent",
        pg: Some("to_tsquery('english', 'concurrent')"),
    },
    Q {
        label: "rare word (`tombstone`)",
        vellum: "tombstone",
        pg: Some("to_tsquery('english', 'tombstone')"),
    },
    Q {
        label: "phrase (`\"data structure\"`)",
        vellum: "\"data structure\"",
        pg: Some("phraseto_tsquery('english', 'data structure')"),
    },
    Q {
        label: "boolean (`document AND NOT cursor`)",
        vellum: "document AND NOT cursor",
        pg: Some("to_tsquery('english', 'document & !cursor')"),
    },
    Q {
        label: "prefix (`algorit*`)",
        vellum: "algorit*",
        pg: Some("to_tsquery('english', 'algorit:*')"),
    },
    Q {
        label: "fuzzy (`algoritm~`)",
        vellum: "algoritm~",
        pg: None,
    },
];

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (versions, queries) = if bench {
        (env("VELLUM_BENCH_VERSIONS", 100_000), env("VELLUM_BENCH_QUERIES", 300))
    } else {
        (400, 3)
    };
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if !data.join("automerge-paper.json.gz").exists() {
        // As benches/ingest.rs: a checkout without the traces beside it skips, saying so.
        println!("search: the editing traces are not in {}; skipping", data.display());
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(versions, queries));
}

async fn run(target: usize, queries: usize) {
    let pg = std::env::var("VELLUM_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let name = format!("vellum_bench_search_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&format!("{pg}/postgres"))
        .await
        .expect("PostgreSQL (VELLUM_TEST_PG)");
    sqlx::query(&format!("create database {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::defaults();
    config.server.data_dir = data.path().to_path_buf();
    config.database.url = Secret::new(format!("{pg}/{name}"));
    config.auth.jwt_secret = Secret::new("bench-secret-bench-secret-bench-secret!!");
    config.plugins.bundled = false;
    config.log.level = "warn".into();
    vellum::telemetry::init(&config.log);
    // The bulk load is not followed row by row: the rebuild indexes it.
    config.search.poll_ms = 3_600_000;
    let app = vellum::app::build_state(config.clone()).await.expect("state");
    let router = vellum::app::router(app.clone());

    // The corpus.
    let started = Instant::now();
    let traces = vec![snapshots("automerge-paper.json.gz"), snapshots("seph-blog1.json.gz")];
    let docs = target.div_ceil(SNAPSHOTS);
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
    .unwrap();
    let pool = sqlx::PgPool::connect(&format!("{pg}/{name}")).await.unwrap();
    let mut raw_bytes = 0usize;
    let mut count = 0usize;
    for d in 0..docs {
        let id = Uuid::now_v7();
        sqlx::query("insert into documents (id, title, slug, status, owner_id, lock_version, created_at, updated_at) values ($1, $2, $3, 'draft', $4, 1, now(), now())")
            .bind(id)
            .bind(format!("Document {d}"))
            .bind(format!("document-{d}"))
            .bind(user.id)
            .execute(&pool)
            .await
            .unwrap();
        let texts = versions_of(d, &traces);
        let n = texts.len().min(target - count);
        raw_bytes += texts[..n].iter().map(String::len).sum::<usize>();
        sqlx::query(
            "insert into document_versions (document_id, number, label, author_id, state, text, html, title, created_at)
             select $1, n, 'v' || n, $2, '\\x00'::bytea, t, '', $3, now() - (interval '1 minute' * ($5 - n))
             from unnest($4::text[]) with ordinality as x(t, n)",
        )
        .bind(id)
        .bind(user.id)
        .bind(format!("Document {d}"))
        .bind(&texts[..n])
        .bind(n as i64)
        .execute(&pool)
        .await
        .unwrap();
        count += n;
    }
    let loaded = started.elapsed();
    println!(
        "corpus: {count} versions of {docs} documents, {:.1} MB of text (loaded in {:.1} s)\n",
        raw_bytes as f64 / 1e6,
        loaded.as_secs_f64()
    );

    // Indexing.
    let t = Instant::now();
    let rebuilt = search::rebuild(&app.store, &config.search, data.path(), |_, _| {})
        .await
        .unwrap();
    let vellum_secs = t.elapsed().as_secs_f64();
    app.search.touch();
    app.search.settled(&app, Duration::from_secs(600)).await.unwrap();
    assert_eq!(app.search.status().index, rebuilt.index);
    let t = Instant::now();
    sqlx::query("alter table document_versions add column tsv tsvector generated always as (to_tsvector('english', title || ' ' || label || ' ' || text)) stored")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("create index document_versions_tsv on document_versions using gin (tsv)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("analyze document_versions").execute(&pool).await.unwrap();
    let pg_secs = t.elapsed().as_secs_f64();
    let (pg_column, pg_index): (i64, i64) = sqlx::query_as(
        "select (select coalesce(sum(pg_column_size(tsv)), 0)::bigint from document_versions),
                pg_relation_size('document_versions_tsv')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let mb = raw_bytes as f64 / 1e6;
    println!("| indexing {count} versions ({mb:.1} MB) | time | MB/s | index size | size / text |");
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| Vellum (tantivy, rebuild; stemmed + as-written fields, text stored for snippets) | {vellum_secs:.1} s | {:.1} | {:.1} MB | {:.2} |",
        mb / vellum_secs,
        rebuilt.size_bytes as f64 / 1e6,
        rebuilt.size_bytes as f64 / raw_bytes as f64
    );
    println!(
        "| PostgreSQL (tsvector column + GIN; the text itself is in the table) | {pg_secs:.1} s | {:.1} | {:.1} MB | {:.2} |\n",
        mb / pg_secs,
        (pg_column + pg_index) as f64 / 1e6,
        (pg_column + pg_index) as f64 / raw_bytes as f64
    );

    // Queries.
    let who = Principal::User(user.clone());
    let token = login(&router).await;
    println!(
        "| query ({queries} runs each; totals and the first page's snippets) | hits | Vellum in process p50 / p99 | Vellum GraphQL p50 / p99 | PostgreSQL p50 / p99 | p99 ratio (PostgreSQL / Vellum GraphQL) |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for q in QUERIES {
        let mut inproc = Vec::new();
        let mut gql = Vec::new();
        let mut pgt = Vec::new();
        let mut total = 0;
        for i in 0..queries + 10 {
            let t = Instant::now();
            let page = search::search(&app, &who, q.vellum, Filter::default(), Some(10), None)
                .await
                .unwrap();
            let a = t.elapsed();
            total = page.total;
            let t = Instant::now();
            let v = graphql(&router, &token, q.vellum).await;
            let b = t.elapsed();
            assert!(v["errors"].is_null(), "{v}");
            let c = match q.pg {
                Some(tsq) => {
                    let t = Instant::now();
                    pg_search(&pool, tsq).await;
                    Some(t.elapsed())
                }
                None => None,
            };
            if i >= 10 {
                inproc.push(a);
                gql.push(b);
                if let Some(c) = c {
                    pgt.push(c);
                }
            }
        }
        let (a50, a99) = quantiles(inproc);
        let (b50, b99) = quantiles(gql);
        let (pg_cell, ratio) = if pgt.is_empty() {
            (
                "no equivalent (tsvector has no fuzzy match)".to_string(),
                "—".to_string(),
            )
        } else {
            let (c50, c99) = quantiles(pgt);
            (format!("{c50:.2} / {c99:.2} ms"), format!("{:.1}×", c99 / b99))
        };
        println!(
            "| {} | {total} | {a50:.2} / {a99:.2} ms | {b50:.2} / {b99:.2} ms | {pg_cell} | {ratio} |",
            q.label
        );
    }

    // saveVersion → searchable.
    let doc = sqlx::query_scalar::<_, Uuid>("select id from documents limit 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    let rounds = queries.clamp(3, 100);
    let mut lags = Vec::new();
    for i in 0..rounds {
        let word = format!("qqmarker{i}x{}", std::process::id());
        let set = format!(
            "mutation {{ setBody(documentId: \"{doc}\", input: {{ markdown: \"A paragraph with {word}.\" }}) {{ id }} }}"
        );
        let v = gql_request(&router, &token, &set).await;
        assert!(v["errors"].is_null(), "{v}");
        let save = format!("mutation {{ saveVersion(documentId: \"{doc}\", label: \"lag {i}\") {{ id }} }}");
        let v = gql_request(&router, &token, &save).await;
        assert!(v["errors"].is_null(), "{v}");
        let t = Instant::now();
        let only_versions = Filter {
            live: Some(false),
            ..Filter::default()
        };
        loop {
            let page = search::search(&app, &who, &word, only_versions.clone(), Some(1), None)
                .await
                .unwrap();
            if page.total == 1 {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "version {i} not searchable: {:?}",
                app.search.status()
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        lags.push(t.elapsed());
    }
    let (l50, l99) = quantiles(lags);
    println!("\n| saveVersion → searchable ({rounds} saves, {count} versions indexed) | p50 | p99 |");
    println!("| --- | --- | --- |");
    println!("| from the mutation's answer to the version found | {l50:.1} ms | {l99:.1} ms |");

    app.search.shutdown().await;
    pool.close().await;
    app.store.close().await;
    let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
        .execute(&mut admin)
        .await;
}

async fn login(router: &axum::Router) -> String {
    let body = json!({ "email": "bench@example.com", "password": "correct horse" }).to_string();
    let req = Request::post("/api/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let res = router.clone().oneshot(req).await.unwrap();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["token"].as_str().expect("login").to_string()
}

async fn gql_request(router: &axum::Router, token: &str, query: &str) -> Value {
    let body = json!({ "query": query }).to_string();
    let req = Request::post("/graphql")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body))
        .unwrap();
    let res = router.clone().oneshot(req).await.unwrap();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

async fn graphql(router: &axum::Router, token: &str, q: &str) -> Value {
    let query = format!(
        "{{ search(query: {}, first: 10) {{ totalCount edges {{ node {{ title versionNumber score snippets document {{ id }} }} }} }} }}",
        serde_json::to_string(q).unwrap()
    );
    gql_request(router, token, &query).await
}

/// What an operator would write with PostgreSQL alone: the total, and the first page
/// ranked, with highlighted fragments.
async fn pg_search(pool: &sqlx::PgPool, tsquery: &str) -> usize {
    let sql = format!(
        "with q as (select {tsquery} as q),
         hits as (select v.id, v.document_id, v.text, ts_rank(v.tsv, q.q) as rank, count(*) over () as total
                  from document_versions v, q where v.tsv @@ q.q order by rank desc limit 10)
         select id, document_id, total,
                ts_headline('english', text, (select q from q), 'MaxFragments=2, MaxWords=30, MinWords=10, StartSel=<mark>, StopSel=</mark>')
         from hits"
    );
    let rows: Vec<(i64, Uuid, i64, String)> = sqlx::query_as(&sql).fetch_all(pool).await.unwrap();
    rows.first().map_or(0, |r| r.2 as usize)
}
