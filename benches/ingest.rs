//! Ingest benchmark: replays the automerge-paper editing trace through the room code
//! (`vellum::collab`) with strict durability, on SQLite and on PostgreSQL, next to the
//! same updates applied to a bare yrs document (the "one core, no server" reference).
//!
//! - `cargo bench --bench ingest` (add `-- --quick` while developing): criterion over the
//!   first `VELLUM_BENCH_UPDATES` (default 5,000) updates of the trace, per backend.
//! - `VELLUM_BENCH_FULL=1 cargo bench --bench ingest`: the whole trace (259,778 updates),
//!   once per backend, printing one summary line each: updates/s, send → echo latency
//!   p50/p99, final text check and compacted state sizes. See BENCHMARKS.md.
//! - `cargo test --benches` (and CI's `cargo test --all-targets`) runs each benchmark once
//!   on the first 500 updates, as a smoke test of the whole path.
//!
//! Settings (environment): `VELLUM_TRACES` (folder or file of the trace, when it is not in
//! `../shared/data`), `VELLUM_BENCH_BACKENDS` (`sqlite,postgres`), `VELLUM_BENCH_PG` (admin
//! URL, default `VELLUM_TEST_PG` or `postgres://postgres@127.0.0.1:5432`),
//! `VELLUM_BENCH_WINDOW` (updates in flight, default 1024), `VELLUM_BENCH_UPDATES`, and
//! `RUST_LOG` (the server's logs on stderr, e.g. `RUST_LOG=vellum=warn`).
//!
//! Trace: "automerge-paper" by Martin Kleppmann and Alastair R. Beresford, from
//! github.com/automerge/automerge-perf, CC BY 4.0 (see ../shared/data/README.md).

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, SamplingMode, Throughput};
use serde::Deserialize;
use sqlx::Connection as _;
use tokio::runtime::Runtime;
use tokio::sync::{Semaphore, mpsc};
use uuid::Uuid;
use vellum::collab::{Collab, Kill, Outbound, Peer};
use vellum::config::{Config, Secret};
use vellum::state::AppState;
use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact, Update};

const TRACE_FILE: &str = "automerge-paper.json.gz";
/// Root text name used by the replay (the room does not care which).
const TEXT: &str = "content";
/// The replaying client's id: a fixed 32-bit one, like those Yjs clients pick at random.
const CLIENT_ID: u64 = 0x9E37_79B9;
/// Known compacted size of the final document (v2 encoding), from crdt-benchmarks (Yjs).
const KNOWN_V2_BYTES: usize = 159_929;
/// Give up when the room sends nothing for this long.
const STALL: Duration = Duration::from_secs(120);
const MAX_PENDING_BYTES: usize = 1 << 20;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TraceFile {
    start_content: String,
    end_content: String,
    txns: Vec<TraceTxn>,
}

#[derive(Deserialize)]
struct TraceTxn {
    /// `[position, numDeleted, insertedText]`, code points (the trace is ASCII).
    patches: Vec<(u32, u32, String)>,
}

/// The trace turned into client traffic: one v1 update (and its frame) per patch.
struct Replay {
    updates: Vec<Vec<u8>>,
    frames: Arc<Vec<Bytes>>,
    /// The text after all of `updates`.
    text: String,
    /// Whether `updates` is the whole trace.
    whole: bool,
}

impl Replay {
    fn target(&self) -> &'static str {
        if self.whole {
            "text matches endContent"
        } else {
            "text matches the local replay of the prefix"
        }
    }
}

fn trace_path() -> Option<PathBuf> {
    let mut candidates = vec![
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data")
            .join(TRACE_FILE),
    ];
    if let Ok(p) = std::env::var("VELLUM_TRACES") {
        let p = PathBuf::from(p);
        candidates.push(if p.is_dir() { p.join(TRACE_FILE) } else { p });
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// Reads the trace and builds one update per patch (one transaction each) on a local
/// document, stopping after `limit` patches. Checks the replay against `endContent`.
fn build_replay(path: &PathBuf, limit: usize) -> Replay {
    let started = Instant::now();
    let mut json = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("open trace"))
        .read_to_string(&mut json)
        .expect("gunzip trace");
    let trace: TraceFile = serde_json::from_str(&json).expect("trace JSON");
    let parsed = Instant::now();
    let doc = Doc::with_client_id(CLIENT_ID);
    let text = doc.get_or_insert_text(TEXT);
    if !trace.start_content.is_empty() {
        text.insert(&mut doc.transact_mut(), 0, &trace.start_content);
    }
    let total: usize = trace.txns.iter().map(|t| t.patches.len()).sum();
    let mut updates = Vec::with_capacity(total.min(limit));
    'txns: for txn in &trace.txns {
        for (pos, del, ins) in &txn.patches {
            if updates.len() == limit {
                break 'txns;
            }
            let mut t = doc.transact_mut();
            if *del > 0 {
                text.remove_range(&mut t, *pos, *del);
            }
            if !ins.is_empty() {
                text.insert(&mut t, *pos, ins);
            }
            updates.push(t.encode_update_v1());
        }
    }
    let whole = updates.len() == total;
    let final_text = text.get_string(&doc.transact());
    if whole {
        assert_eq!(
            final_text, trace.end_content,
            "the local replay does not reach endContent"
        );
    }
    if std::env::var_os("VELLUM_BENCH_FULL").is_some() {
        eprintln!(
            "trace: parsed in {}, updates built in {}",
            ms(parsed - started),
            ms(parsed.elapsed())
        );
    }
    let frames = updates.iter().map(|u| vellum::collab::update_frame(u)).collect();
    Replay {
        updates,
        frames: Arc::new(frames),
        text: final_text,
        whole,
    }
}

// ---------------------------------------------------------------------------------------
// Baselines: no server, one core.

/// Decodes and applies each update in its own transaction on a bare document.
fn apply_bare(updates: &[Vec<u8>]) -> Doc {
    let doc = Doc::new();
    let _ = doc.get_or_insert_text(TEXT);
    for u in updates {
        let update = Update::decode_v1(u).expect("update decodes");
        doc.transact_mut().apply_update(update).expect("update applies");
    }
    doc
}

/// The room's per-frame work without the room: `vellum::collab::apply_frame` on each frame.
fn apply_frames(frames: &[Bytes]) -> Doc {
    let doc = Doc::new();
    let _ = doc.get_or_insert_text(TEXT);
    for f in frames {
        vellum::collab::apply_frame(&doc, f, MAX_PENDING_BYTES).expect("frame applies");
    }
    doc
}

fn text_of(doc: &Doc) -> String {
    let text = doc.get_or_insert_text(TEXT);
    text.get_string(&doc.transact())
}

fn state_sizes(doc: &Doc) -> (usize, usize) {
    let txn = doc.transact();
    (
        txn.encode_state_as_update_v1(&StateVector::default()).len(),
        txn.encode_state_as_update_v2(&StateVector::default()).len(),
    )
}

// ---------------------------------------------------------------------------------------
// The server side: an AppState on one backend.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

fn backends() -> Vec<Backend> {
    let wanted = std::env::var("VELLUM_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    wanted
        .split(',')
        .filter_map(|b| match b.trim() {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" | "pg" => Some(Backend::Postgres),
            "" => None,
            other => panic!("unknown backend `{other}` in VELLUM_BENCH_BACKENDS"),
        })
        .collect()
}

fn pg_admin_url() -> String {
    std::env::var("VELLUM_BENCH_PG")
        .or_else(|_| std::env::var("VELLUM_TEST_PG"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} must be a number")))
        .unwrap_or(default)
}

/// One backend's server state, with a user to edit as. Its database (a temp-dir SQLite
/// file, or a fresh PostgreSQL database) goes away with it: call [`Env::close`].
struct Env {
    state: AppState,
    user: Uuid,
    pg_name: Option<String>,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn new(backend: Backend) -> anyhow::Result<Self> {
        // Under target/tmp, on the build's disk (not a tmpfs), so fsync means something.
        let dir = tempfile::Builder::new()
            .prefix("vellum-bench-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
        let mut config = Config::defaults();
        config.server.data_dir = dir.path().to_path_buf();
        config.auth.jwt_secret = Secret::new("test-secret-that-is-at-least-32-bytes-long");
        let mut pg_name = None;
        if backend == Backend::Postgres {
            let name = format!("vellum_bench_{}", std::process::id());
            let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", pg_admin_url())).await?;
            sqlx::query(&format!("drop database if exists {name} with (force)"))
                .execute(&mut admin)
                .await?;
            sqlx::query(&format!("create database {name}"))
                .execute(&mut admin)
                .await?;
            config.database.url = Secret::new(format!("{}/{name}", pg_admin_url()));
            pg_name = Some(name);
        }
        let state = vellum::app::build_state(config).await?;
        let user = state
            .store
            .create_user("bench@example.com", "Bench", "hash", None, vellum::auth::Role::Author)
            .await?
            .expect("a fresh database has no such user");
        Ok(Self {
            state,
            user: user.id,
            pg_name,
            _dir: dir,
        })
    }

    async fn new_document(&self) -> Uuid {
        let slug = format!("trace-{}", Uuid::new_v4().simple());
        let doc = self
            .state
            .store
            .create_document(self.user, "automerge-paper", &slug)
            .await
            .expect("create document")
            .expect("slug is unique");
        doc.id
    }

    fn peer(&self, name: &str) -> Peer {
        Peer {
            user_id: Some(self.user),
            display_name: name.into(),
            read_only: false,
            credential: None,
        }
    }

    async fn close(self) {
        self.state.collab.shutdown().await;
        self.state.store.close().await;
        if let Some(name) = &self.pg_name {
            let dropped = async {
                let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", pg_admin_url())).await?;
                sqlx::query(&format!("drop database if exists {name} with (force)"))
                    .execute(&mut admin)
                    .await?;
                anyhow::Ok(())
            };
            if let Err(e) = dropped.await {
                eprintln!("could not drop database {name}: {e:#}");
            }
        }
    }
}

/// What pushing a replay through one room measured.
struct RoomRun {
    document: Uuid,
    /// First send to last echo.
    elapsed: Duration,
    /// Send → echo, per update, in nanoseconds (sorted).
    latencies: Vec<u64>,
    /// Frames other than update messages the connection received (the join's sync step 1).
    other_frames: usize,
    /// Update messages that were not the echo due next: the room broadcast something
    /// this client did not send.
    extra: Extra,
}

/// Update messages a sender received besides its echoes.
#[derive(Default)]
struct Extra {
    count: usize,
    bytes: usize,
    /// How many of them carry no new structs, only a delete set.
    delete_set_only: usize,
    /// The first few, described.
    first: Vec<String>,
}

impl Extra {
    fn record(&mut self, after_echoes: usize, frame: &[u8]) {
        self.count += 1;
        self.bytes += frame.len();
        let payload = match Message::decode_v1(frame) {
            Ok(Message::Sync(SyncMessage::Update(u))) => u,
            _ => Vec::new(),
        };
        let what = match Update::decode_v1(&payload) {
            Ok(u) => {
                let structs = u.state_vector();
                let only_ds = structs.is_empty() && !u.delete_set().is_empty();
                self.delete_set_only += usize::from(only_ds);
                format!(
                    "new structs for {} client(s), delete set {}",
                    structs.len(),
                    if u.delete_set().is_empty() {
                        "empty"
                    } else {
                        "non-empty"
                    }
                )
            }
            Err(e) => format!("does not decode: {e}"),
        };
        if self.first.len() < 3 {
            self.first
                .push(format!("{} B after {after_echoes} echoes ({what})", frame.len()));
        }
    }

    fn describe(&self) -> String {
        if self.count == 0 {
            return "none".into();
        }
        format!(
            "{} frames, {} B, {} with only a delete set; first: {}",
            self.count,
            self.bytes,
            self.delete_set_only,
            self.first.join("; ")
        )
    }
}

/// Counts the echoes of `expected` on `outbound`, in order, checking each is
/// byte-identical to the frame sent, and frees one window slot per echo. On failure it
/// closes the window, so the sender stops too.
async fn collect_echoes(
    outbound: Outbound,
    kill: Kill,
    expected: Arc<Vec<Bytes>>,
    sent_at: mpsc::UnboundedReceiver<Instant>,
    window: Arc<Semaphore>,
) -> Result<(Instant, Vec<u64>, usize, Extra), String> {
    let result = count_echoes(outbound, kill, expected, sent_at, window.clone()).await;
    if result.is_err() {
        window.close();
    }
    result
}

async fn count_echoes(
    mut outbound: Outbound,
    kill: Kill,
    expected: Arc<Vec<Bytes>>,
    mut sent_at: mpsc::UnboundedReceiver<Instant>,
    window: Arc<Semaphore>,
) -> Result<(Instant, Vec<u64>, usize, Extra), String> {
    let mut latencies = Vec::with_capacity(expected.len());
    let mut other = 0;
    let mut extra = Extra::default();
    while latencies.len() < expected.len() {
        let n = latencies.len();
        let frame = tokio::select! {
            biased;
            f = outbound.recv() => f,
            (code, reason) = kill.killed() => {
                return Err(format!("the room closed the connection after {n} echoes: {code} {reason}"));
            }
            _ = tokio::time::sleep(STALL) => {
                return Err(format!("no frame for {STALL:?} after {n} of {} echoes", expected.len()));
            }
        };
        let Some(frame) = frame else {
            return Err(format!("the outbound queue closed after {n} echoes"));
        };
        let now = Instant::now();
        // y-websocket: [0 = sync, 2 = update, ...]; anything else is not an echo.
        if !frame.starts_with(&[0, 2]) {
            other += 1;
            continue;
        }
        if frame != expected[n] {
            // Not ours (echoes arrive in send order): the room broadcast another update.
            extra.record(n, &frame);
            continue;
        }
        let t0 = sent_at.recv().await.ok_or("send times ended early")?;
        latencies.push(now.duration_since(t0).as_nanos() as u64);
        window.add_permits(1);
    }
    Ok((Instant::now(), latencies, other, extra))
}

/// Pushes every frame into a fresh document's room over one connection, keeping up to
/// `window` updates in flight, and waits for all the echoes.
async fn push_through_room(env: &Env, frames: &Arc<Vec<Bytes>>, window: usize) -> Result<RoomRun, String> {
    let document = env.new_document().await;
    let conn = env
        .state
        .collab
        .join(document, env.peer("writer"))
        .await
        .map_err(|e| format!("join refused: {e:?}"))?;
    let slots = Arc::new(Semaphore::new(window));
    let (times_tx, times_rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(collect_echoes(
        conn.outbound,
        conn.kill.clone(),
        frames.clone(),
        times_rx,
        slots.clone(),
    ));
    let start = Instant::now();
    for frame in frames.iter() {
        tokio::select! {
            permit = slots.acquire() => match permit {
                Ok(permit) => permit.forget(),
                Err(_) => break, // the echo counter gave up
            },
            _ = conn.kill.killed() => break,
        }
        let _ = times_tx.send(Instant::now());
        conn.input.receive(frame.clone()).await;
    }
    let (end, mut latencies, other_frames, extra) = reader.await.map_err(|e| format!("echo task: {e}"))??;
    drop(conn.input);
    latencies.sort_unstable();
    Ok(RoomRun {
        document,
        elapsed: end - start,
        latencies,
        other_frames,
        extra,
    })
}

/// The document as a newly joined client gets it: sync step 1 with an empty state vector,
/// and the sync step 2 reply applied to a fresh document.
async fn fetch_via_room(collab: &Collab, document: Uuid, peer: Peer) -> Result<Doc, String> {
    let mut conn = collab
        .join(document, peer)
        .await
        .map_err(|e| format!("join refused: {e:?}"))?;
    let step1 = Message::Sync(SyncMessage::SyncStep1(StateVector::default())).encode_v1();
    conn.input.receive(step1.into()).await;
    loop {
        let frame = tokio::time::timeout(STALL, conn.outbound.recv())
            .await
            .map_err(|_| "no sync step 2 reply".to_string())?
            .ok_or("the connection closed before sync step 2")?;
        if let Ok(Message::Sync(SyncMessage::SyncStep2(state))) = Message::decode_v1(&frame) {
            let doc = Doc::new();
            let _ = doc.get_or_insert_text(TEXT);
            let update = Update::decode_v1(&state).map_err(|e| format!("sync step 2 does not decode: {e}"))?;
            doc.transact_mut()
                .apply_update(update)
                .map_err(|e| format!("sync step 2 does not apply: {e}"))?;
            return Ok(doc);
        }
    }
}

/// The document as stored: the snapshot and the logged updates after it.
async fn load_from_store(env: &Env, document: Uuid) -> Result<Doc, String> {
    let stored = env
        .state
        .store
        .load_document_state(document)
        .await
        .map_err(|e| format!("load: {e:#}"))?;
    let doc = Doc::new();
    let _ = doc.get_or_insert_text(TEXT);
    let mut txn = doc.transact_mut();
    for bytes in stored
        .snapshot
        .iter()
        .map(|(s, _)| s)
        .chain(stored.updates.iter().map(|(_, u)| u))
    {
        let update = Update::decode_v1(bytes).map_err(|e| format!("stored update does not decode: {e}"))?;
        txn.apply_update(update)
            .map_err(|e| format!("stored update does not apply: {e}"))?;
    }
    drop(txn);
    Ok(doc)
}

fn percentile(sorted: &[u64], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    Duration::from_nanos(sorted[((sorted.len() - 1) as f64 * q).round() as usize])
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

// ---------------------------------------------------------------------------------------
// Full-trace mode: one run per backend, one summary line each.

fn full(rt: &Runtime, path: &PathBuf) -> bool {
    let window = env_usize("VELLUM_BENCH_WINDOW", 1024);
    let t = Instant::now();
    let replay = build_replay(path, env_usize("VELLUM_BENCH_UPDATES", usize::MAX));
    let n = replay.updates.len();
    let update_bytes: usize = replay.updates.iter().map(Vec::len).sum();
    println!(
        "trace: {} ({n} updates{}, {update_bytes} bytes of v1 updates, built in {})",
        path.display(),
        if replay.whole { "" } else { ": a prefix of the trace" },
        ms(t.elapsed())
    );

    let t = Instant::now();
    let bare = apply_bare(&replay.updates);
    let bare_time = t.elapsed();
    let bare_rate = rate(n, bare_time);
    let (v1, v2) = state_sizes(&bare);
    let ok = text_of(&bare) == replay.text;
    println!(
        "yrs-bare: {n} updates in {} = {bare_rate:.0} updates/s (decode + apply, one transaction each, one core); \
         {}; state v1 {v1} B, v2 {v2} B (known: {KNOWN_V2_BYTES} B v2)",
        ms(bare_time),
        if ok { replay.target() } else { "MISMATCH" },
    );
    let t = Instant::now();
    let framed = apply_frames(&replay.frames);
    let framed_time = t.elapsed();
    let framed_ok = text_of(&framed) == replay.text;
    println!(
        "apply_frame: {n} updates in {} = {:.0} updates/s (the room's decode + checked apply, no server); {}",
        ms(framed_time),
        rate(n, framed_time),
        if framed_ok { replay.target() } else { "MISMATCH" },
    );
    let mut all_ok = ok && framed_ok;

    for backend in backends() {
        let result = rt.block_on(async {
            let env = Env::new(backend).await.map_err(|e| format!("setup: {e:#}"))?;
            let outcome = full_room(&env, &replay, window, bare_rate).await;
            env.close().await;
            outcome
        });
        match result {
            Ok(line) => println!("{}: {line}", backend.name()),
            Err(e) => {
                all_ok = false;
                println!("{}: FAILED: {e}", backend.name());
            }
        }
    }
    all_ok
}

async fn full_room(env: &Env, replay: &Replay, window: usize, bare_rate: f64) -> Result<String, String> {
    let n = replay.frames.len();
    let run = push_through_room(env, &replay.frames, window).await?;
    let updates_per_s = rate(n, run.elapsed);
    let (log_rows, log_bytes) = env
        .state
        .store
        .update_log_stats(run.document)
        .await
        .map_err(|e| format!("update_log_stats: {e:#}"))?;
    let fetched = fetch_via_room(&env.state.collab, run.document, env.peer("checker")).await?;
    let (v1, v2) = state_sizes(&fetched);
    let text_ok = text_of(&fetched) == replay.text;
    // Unload (final snapshot), then read back what the database holds.
    env.state.collab.shutdown().await;
    let stored_ok = text_of(&load_from_store(env, run.document).await?) == replay.text;
    let verdict = match (text_ok, stored_ok) {
        (true, true) => format!("{} (live room and reloaded from the database)", replay.target()),
        _ => format!("TEXT MISMATCH (live room ok: {text_ok}, reloaded from the database ok: {stored_ok})"),
    };
    let line = format!(
        "{n} updates in {:.2} s = {updates_per_s:.0} updates/s ({:.4}x bare yrs at {bare_rate:.0}/s; \
         window {window}, strict durability); latency send->echo p50 {} p99 {} max {}; {verdict}; \
         state v1 {v1} B, v2 {v2} B (known: {KNOWN_V2_BYTES} B v2); \
         update log before unload: {log_rows} rows, {log_bytes} B; non-update frames {}; \
         update frames that were not echoes: {}",
        run.elapsed.as_secs_f64(),
        updates_per_s / bare_rate,
        ms(percentile(&run.latencies, 0.5)),
        ms(percentile(&run.latencies, 0.99)),
        ms(percentile(&run.latencies, 1.0)),
        run.other_frames,
        run.extra.describe(),
    );
    if text_ok && stored_ok { Ok(line) } else { Err(line) }
}

// ---------------------------------------------------------------------------------------
// Criterion mode: the first N updates per iteration.

fn criterion_benches(c: &mut Criterion, rt: &Runtime, replay: &Replay) {
    let n = replay.updates.len();
    let window = env_usize("VELLUM_BENCH_WINDOW", 1024);
    let mut group = c.benchmark_group(format!("ingest_first_{n}"));
    group.sample_size(10).throughput(Throughput::Elements(n as u64));

    group.bench_function("yrs_bare", |b| {
        b.iter(|| apply_bare(&replay.updates));
    });
    assert_eq!(text_of(&apply_bare(&replay.updates)), replay.text);
    group.bench_function("apply_frame", |b| {
        b.iter(|| apply_frames(&replay.frames));
    });
    assert_eq!(text_of(&apply_frames(&replay.frames)), replay.text);

    group
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    for backend in backends() {
        let env = match rt.block_on(Env::new(backend)) {
            Ok(env) => env,
            Err(e) => {
                eprintln!("skipping room_{}: could not set it up: {e:#}", backend.name());
                continue;
            }
        };
        group.bench_function(format!("room_{}", backend.name()), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let run = rt
                        .block_on(push_through_room(&env, &replay.frames, window))
                        .unwrap_or_else(|e| panic!("room_{}: {e}", backend.name()));
                    total += run.elapsed;
                    if run.extra.count > 0 {
                        eprintln!(
                            "room_{}: update frames that were not echoes: {}",
                            backend.name(),
                            run.extra.describe()
                        );
                    }
                    // Untimed: check the room's document, then unload it (final snapshot).
                    rt.block_on(async {
                        let doc = fetch_via_room(&env.state.collab, run.document, env.peer("checker"))
                            .await
                            .unwrap_or_else(|e| panic!("room_{}: {e}", backend.name()));
                        assert_eq!(text_of(&doc), replay.text, "room_{}: text mismatch", backend.name());
                        env.state.collab.shutdown().await;
                    });
                }
                total
            });
        });
        rt.block_on(env.close());
    }
    group.finish();
}

fn main() {
    // The server's own logs (e.g. `RUST_LOG=vellum=warn`), to stderr; silent by default.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let Some(path) = trace_path() else {
        eprintln!(
            "ingest: {TRACE_FILE} not found in {}/../shared/data nor at VELLUM_TRACES; skipping",
            env!("CARGO_MANIFEST_DIR")
        );
        if std::env::var_os("VELLUM_BENCH_FULL").is_some() {
            std::process::exit(1);
        }
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if std::env::var("VELLUM_BENCH_FULL").is_ok_and(|v| !v.is_empty() && v != "0") {
        if !full(&rt, &path) {
            std::process::exit(1);
        }
        return;
    }
    // `cargo bench` passes --bench; without it (cargo test --benches) criterion runs each
    // benchmark once, so a short prefix of the trace is enough.
    let args: Vec<String> = std::env::args().collect();
    let benchmarking = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test");
    let n = env_usize("VELLUM_BENCH_UPDATES", if benchmarking { 5_000 } else { 500 });
    let replay = build_replay(&path, n);
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &rt, &replay);
    c.final_summary();
}
