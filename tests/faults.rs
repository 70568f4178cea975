//! Failing dependencies, with clients typing over real sockets the whole time:
//! PostgreSQL stopped for a minute (`VELLUM_FAULT_SECS`, default 60), an SQLite file
//! locked by another process, an SQLite disk that fills up, and a document whose stored
//! state is damaged. The promises, each asserted below: the server stays up; `/readyz`
//! says 503 while the database cannot take writes; requests fail with a typed, retryable
//! error (GraphQL `UNAVAILABLE` with `retryable`, HTTP 503 with `Retry-After`); no edit
//! sent while the database is down is acknowledged; afterwards everything comes back on
//! its own, and every word every client typed (acknowledged or not) is in the database.
//! A damaged document is quarantined alone and `vellum doctor` repairs it.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{Backend, TestApp};
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{self, Message};
use tower::ServiceExt;
use uuid::Uuid;
use vellum::store::StoredPiece;
use yrs::encoding::read::Cursor;
use yrs::sync::{Message as YMessage, MessageReader, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, ReadTxn, Text, TextRef, Transact, Update};

/// How long each outage lasts.
fn outage() -> Duration {
    let secs = std::env::var("VELLUM_FAULT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

const TYPISTS: usize = 3;
const KEYSTROKE: Duration = Duration::from_millis(40);

// ---------------------------------------------------------------------------------------
// A y-websocket client over a real socket that types a numbered word every KEYSTROKE,
// connected or not (offline edits stay in its document, as with the stock client), and
// reconnects whenever its socket closes or an upgrade is refused.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Typing,
    Quiet,
    Stop,
}

struct Typist {
    n: usize,
    doc: Doc,
    text: TextRef,
    typed: usize,
    /// Update frames sent and not yet echoed: frame → (word, sent at).
    pending: HashMap<Vec<u8>, (usize, Instant)>,
    /// (word, sent at, acknowledged at).
    acked: Vec<(usize, Instant, Instant)>,
    /// Close codes the server sent, and HTTP statuses of refused upgrades.
    closes: Vec<u16>,
    refusals: Vec<u16>,
}

impl Typist {
    fn new(n: usize) -> Self {
        let doc = Doc::with_client_id(100 + n as u64);
        let text = doc.get_or_insert_text("t");
        Self {
            n,
            doc,
            text,
            typed: 0,
            pending: HashMap::new(),
            acked: Vec::new(),
            closes: Vec::new(),
            refusals: Vec::new(),
        }
    }

    fn word(n: usize, k: usize) -> String {
        format!("c{n}w{k}")
    }

    /// Types the next word; returns the update frame that carries it.
    fn type_word(&mut self) -> Vec<u8> {
        let before = self.doc.transact().state_vector();
        {
            let mut txn = self.doc.transact_mut();
            let len = self.text.len(&txn);
            self.text
                .insert(&mut txn, len, &format!("{} ", Self::word(self.n, self.typed)));
        }
        self.typed += 1;
        let update = self.doc.transact().encode_diff_v1(&before);
        YMessage::Sync(SyncMessage::Update(update)).encode_v1()
    }

    fn apply(&self, update: &[u8]) {
        let u = Update::decode_v1(update).expect("the server sends valid updates");
        self.doc.transact_mut().apply_update(u).expect("applies");
    }

    async fn run(mut self, url: String, mut phase: watch::Receiver<Phase>) -> Self {
        let mut tick = tokio::time::interval(KEYSTROKE);
        loop {
            if *phase.borrow() == Phase::Stop {
                return self;
            }
            let ws = match tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(&url)).await {
                Ok(Ok((ws, _))) => ws,
                failed => {
                    if let Ok(Err(tungstenite::Error::Http(res))) = &failed {
                        self.refusals.push(res.status().as_u16());
                    }
                    // Offline: keep typing, then try again.
                    tick.tick().await;
                    if *phase.borrow() == Phase::Typing {
                        self.type_word();
                    }
                    continue;
                }
            };
            let (mut tx, mut rx) = ws.split();
            let step1 = YMessage::Sync(SyncMessage::SyncStep1(self.doc.transact().state_vector())).encode_v1();
            if tx.send(Message::Binary(step1.into())).await.is_err() {
                continue;
            }
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if *phase.borrow() == Phase::Typing {
                            let frame = self.type_word();
                            self.pending.insert(frame.clone(), (self.typed - 1, Instant::now()));
                            if tx.send(Message::Binary(frame.into())).await.is_err() {
                                break;
                            }
                        }
                    }
                    msg = rx.next() => match msg {
                        Some(Ok(Message::Binary(frame))) => {
                            if let Some((word, sent)) = self.pending.remove(frame.as_ref()) {
                                self.acked.push((word, sent, Instant::now()));
                            }
                            let mut decoder = DecoderV1::new(Cursor::new(&frame));
                            let Some(Ok(m)) = MessageReader::new(&mut decoder).next() else { continue };
                            match m {
                                YMessage::Sync(SyncMessage::SyncStep1(sv)) => {
                                    let diff = self.doc.transact().encode_diff_v1(&sv);
                                    let reply = YMessage::Sync(SyncMessage::SyncStep2(diff)).encode_v1();
                                    if tx.send(Message::Binary(reply.into())).await.is_err() {
                                        break;
                                    }
                                }
                                YMessage::Sync(SyncMessage::SyncStep2(u)) | YMessage::Sync(SyncMessage::Update(u)) => {
                                    self.apply(&u)
                                }
                                _ => {}
                            }
                        }
                        Some(Ok(Message::Close(frame))) => {
                            self.closes.push(frame.map_or(1005, |f| u16::from(f.code)));
                            break;
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => break,
                    },
                    _ = phase.changed() => {
                        if *phase.borrow() == Phase::Stop {
                            let _ = tx.send(Message::Close(None)).await;
                            return self;
                        }
                    }
                }
            }
            // Frames in flight on a closed socket are not echoed: what they carried goes
            // in the next sync step 2.
            self.pending.clear();
        }
    }
}

/// Starts typists numbered `numbers`; returns their phase switch and their tasks.
fn start_typists(
    url: &str,
    numbers: std::ops::Range<usize>,
) -> (watch::Sender<Phase>, Vec<tokio::task::JoinHandle<Typist>>) {
    let (phase, rx) = watch::channel(Phase::Typing);
    let tasks = numbers
        .map(|n| tokio::spawn(Typist::new(n).run(url.to_string(), rx.clone())))
        .collect();
    (phase, tasks)
}

/// Quiets the typists (what they typed leaves), stops them, and returns them.
async fn stop_typists(phase: watch::Sender<Phase>, tasks: Vec<tokio::task::JoinHandle<Typist>>) -> Vec<Typist> {
    // Typists keep their connections (and reconnect) while quiet, so what they typed
    // offline reaches the server in their sync step 2.
    phase.send(Phase::Quiet).unwrap();
    tokio::time::sleep(KEYSTROKE * 3).await; // the last keystroke's frame leaves
    phase.send(Phase::Stop).unwrap();
    let mut typists = Vec::new();
    for t in tasks {
        typists.push(t.await.unwrap());
    }
    typists
}

async fn serve(app: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(vellum::app::serve(listener, app.state.clone(), std::future::pending()));
    format!("ws://{addr}")
}

/// A request through the router, with the response's headers.
async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, header::HeaderMap, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let res = app.router.clone().oneshot(req).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Waits (polling, up to `within`) until `/readyz` answers `want`.
async fn ready_becomes(app: &TestApp, want: StatusCode, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (status, _) = app.raw("GET", "/readyz", None, None).await;
        if status == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz did not become {want} within {within:?} (still {status})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the document as the database holds it.
async fn durable_text(app: &TestApp, doc: Uuid) -> String {
    let stored = app
        .state
        .store
        .load_document_state(doc)
        .await
        .expect("the database is back");
    let d = Doc::new();
    {
        let mut txn = d.transact_mut();
        for bytes in stored
            .snapshot
            .iter()
            .map(|(s, _)| s)
            .chain(stored.updates.iter().map(|(_, u)| u))
        {
            txn.apply_update(Update::decode_v1(bytes).unwrap()).unwrap();
        }
    }
    let t = d.get_or_insert_text("t");
    t.get_string(&d.transact())
}

/// Waits until the database holds every word every typist typed.
async fn everything_typed_is_stored(app: &TestApp, doc: Uuid, typists: &[(usize, usize)]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = durable_text(app, doc).await;
        let missing: Vec<String> = typists
            .iter()
            .flat_map(|&(n, typed)| (0..typed).map(move |k| Typist::word(n, k)))
            .filter(|w| !text.split(' ').any(|x| x == w))
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} word(s) typed are not in the database a minute after recovery, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How a broken database fails writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Every write fails (PostgreSQL down, SQLite locked).
    EveryWrite,
    /// Only writes that need new space fail: on a full disk SQLite still fits a write
    /// into log space it already has, and such a write is stored (and may be
    /// acknowledged) as usual.
    WritesThatGrow,
}

/// The whole scenario against one app: type, take the database away with `break_db`
/// (which returns once it is unusable), check every promise while it is gone, give it
/// back with `mend_db`, and check that everything comes back.
async fn outage_while_typing(app: &TestApp, fault: Fault, break_db: impl AsyncFnOnce(), mend_db: impl AsyncFnOnce()) {
    let base = serve(app).await;
    let (token, _) = app.register("typist@example.com", "Typist").await;
    let doc = app.create_doc(&token, "Under fire").await;
    let id: Uuid = doc["id"].as_str().unwrap().parse().unwrap();
    let (phase, tasks) = start_typists(&format!("{base}/ws/doc/{id}?token={token}"), 0..TYPISTS);

    // Typing, with the database up: acknowledgements flow.
    let started = Instant::now();
    loop {
        let text = durable_text(app, id).await;
        if (0..TYPISTS).all(|n| text.contains(&Typist::word(n, 5))) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "typing was not stored before the outage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    break_db().await;
    let down = Instant::now();
    println!("database unusable; keeping it so for {:?}", outage());

    // Not ready, but alive; requests fail fast with a typed, retryable error. (On a
    // full disk, readiness may come and go as writes that fit succeed: wait for one that
    // did not.)
    if fault == Fault::EveryWrite {
        ready_becomes(app, StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(15)).await;
    } else {
        while !app.state.store.writes_failing() {
            assert!(
                down.elapsed() < Duration::from_secs(15),
                "no write failed on the full disk"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (status, _) = app.raw("GET", "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "the process answers while the database is gone");
    let create = json!({ "query": "mutation { createDocument(input: { title: \"During\" }) { id } }" });
    let (_, _, v) = call(app, "POST", "/graphql", &token, Some(create.clone())).await;
    let ext = &v["errors"][0]["extensions"];
    if fault == Fault::EveryWrite || !v["data"]["createDocument"]["id"].is_string() {
        assert_eq!(ext["code"], "UNAVAILABLE", "a write while the database is gone: {v}");
        assert_eq!(ext["retryable"], true, "{v}");
        assert!(
            !v["errors"][0]["message"].as_str().unwrap().contains("sqlx"),
            "no internal text: {v}"
        );
    }
    let (status, headers, v) = call(app, "GET", &format!("/api/documents/{id}"), &token, None).await;
    // A read may still work (SQLite: the file is readable while locked or full).
    if status != StatusCode::OK {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert_eq!(v["error"]["code"], "UNAVAILABLE", "{v}");
        assert!(headers.contains_key(header::RETRY_AFTER), "Retry-After on a 503");
    }

    tokio::time::sleep_until((down + outage()).into()).await;
    let up = Instant::now();
    mend_db().await;
    ready_becomes(app, StatusCode::OK, Duration::from_secs(30)).await;

    // The request refused during the outage now succeeds as it was.
    let (status, _, v) = call(app, "POST", "/graphql", &token, Some(create)).await;
    assert!(
        status.is_success() && v["data"]["createDocument"]["id"].is_string(),
        "retried after recovery: {v}"
    );

    // Everyone reconnects and goes on typing, then stops.
    let resumed = Instant::now();
    loop {
        let text = durable_text(app, id).await;
        // Each typist has typed about outage / KEYSTROKE words by now; a word typed
        // after recovery proves the reconnection.
        let after = (outage().as_millis() / KEYSTROKE.as_millis()) as usize + 20;
        if (0..TYPISTS).all(|n| text.contains(&Typist::word(n, after))) {
            break;
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(60),
            "typing did not resume after recovery: the database has {:?} words of each typist, {after} wanted",
            (0..TYPISTS)
                .map(|n| text.split(' ').filter(|w| w.starts_with(&format!("c{n}w"))).count())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let typists = stop_typists(phase, tasks).await;
    let typed: Vec<(usize, usize)> = typists.iter().map(|t| (t.n, t.typed)).collect();
    // Stopped typists no longer sync: a fresh connection per typist carries whatever
    // the server still lacks, as a reconnecting client would.
    for t in &typists {
        resync(&base, id, &token, &t.doc).await;
    }
    everything_typed_is_stored(app, id, &typed).await;

    // No acknowledgement for an edit sent while the database was unusable (on a full
    // disk, those that were stored are acknowledged, and checked above like the rest).
    for t in &typists {
        let early = t
            .acked
            .iter()
            .filter(|(_, sent, acked)| *sent > down && *acked < up)
            .count();
        assert!(
            early == 0 || fault == Fault::WritesThatGrow,
            "typist {} got {early} acknowledgement(s) while the database was down",
            t.n
        );
        assert!(
            t.acked.iter().any(|(_, sent, _)| *sent > up),
            "typist {} got acknowledgements again after recovery",
            t.n
        );
        assert!(
            t.closes.iter().all(|c| [1011, 1013].contains(c)),
            "typist {}'s sockets closed with {:?}",
            t.n,
            t.closes
        );
        assert!(
            t.refusals.iter().all(|s| *s == 503),
            "upgrades refused with 503 only, got {:?}",
            t.refusals
        );
    }
    println!(
        "typed {} words; {} acknowledged; closes {:?}; refused upgrades {}",
        typed.iter().map(|(_, n)| n).sum::<usize>(),
        typists.iter().map(|t| t.acked.len()).sum::<usize>(),
        typists.iter().flat_map(|t| t.closes.clone()).collect::<Vec<_>>(),
        typists.iter().map(|t| t.refusals.len()).sum::<usize>()
    );
}

/// Connects once, sends sync step 1, answers the server's step 1 with what it lacks,
/// and waits for the server's step 2 after that (so the answer was stored).
async fn resync(base: &str, id: Uuid, token: &str, doc: &Doc) {
    let url = format!("{base}/ws/doc/{id}?token={token}");
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connects after recovery");
    let sv = doc.transact().state_vector();
    ws.send(Message::Binary(
        YMessage::Sync(SyncMessage::SyncStep1(sv)).encode_v1().into(),
    ))
    .await
    .unwrap();
    let mut answered = false;
    while let Some(Ok(Message::Binary(frame))) = ws.next().await {
        let mut decoder = DecoderV1::new(Cursor::new(&frame));
        match MessageReader::new(&mut decoder).next() {
            Some(Ok(YMessage::Sync(SyncMessage::SyncStep1(server_sv)))) if !answered => {
                let diff = doc.transact().encode_diff_v1(&server_sv);
                ws.send(Message::Binary(
                    YMessage::Sync(SyncMessage::SyncStep2(diff)).encode_v1().into(),
                ))
                .await
                .unwrap();
                answered = true;
                // A second step 1 asks for a reply after the first was handled.
                let sv = doc.transact().state_vector();
                ws.send(Message::Binary(
                    YMessage::Sync(SyncMessage::SyncStep1(sv)).encode_v1().into(),
                ))
                .await
                .unwrap();
            }
            Some(Ok(YMessage::Sync(SyncMessage::SyncStep2(_)))) if answered => break,
            _ => {}
        }
    }
    let _ = ws.close(None).await;
}

// ---------------------------------------------------------------------------------------
// PostgreSQL, our own server, stopped and started again.

struct OwnPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl OwnPostgres {
    fn start() -> Self {
        let bin = std::env::var("VELLUM_PG_BIN").map(PathBuf::from).unwrap_or_else(|_| {
            let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .expect("PostgreSQL's server binaries (/usr/lib/postgresql/*/bin, or VELLUM_PG_BIN)")
                .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .filter(|p| p.join("pg_ctl").exists())
                .collect();
            found.sort();
            found.pop().expect("pg_ctl under /usr/lib/postgresql/*/bin")
        });
        let dir = tempfile::tempdir().unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        // PostgreSQL refuses to run as root: as root, run it as `postgres`.
        if is_root() {
            std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        }
        let pg = Self { dir, bin, port };
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.start_again();
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("runs PostgreSQL's tools");
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start_again(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off",
            self.port
        );
        let log = self.dir.path().join("log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"]);
    }

    /// An immediate shutdown: what a crash or a lost machine looks like to clients.
    fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let exe = self.bin.join("pg_ctl");
        let data = self.data();
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let _ = cmd.args(["-D", &data, "-m", "immediate", "stop"]).output();
    }
}

fn is_root() -> bool {
    rustix::process::getuid().is_root()
}

fn base_config(data_dir: &Path) -> vellum::config::Config {
    let mut config = vellum::config::Config::defaults();
    if std::env::var_os("RUST_LOG").is_some() {
        vellum::telemetry::init(&config.log); // the server's log, to see what it did
    }
    config.server.data_dir = data_dir.to_path_buf();
    config.auth.jwt_secret = vellum::config::Secret::new(common::TEST_SECRET);
    config.plugins.bundled = false;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_for_a_minute() {
    let pg = OwnPostgres::start();
    pg.run(
        "createdb",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            "postgres",
            "vellum",
        ],
    );
    let data = tempfile::tempdir().unwrap();
    let mut config = base_config(data.path());
    config.database.url = vellum::config::Secret::new(pg.url("vellum"));
    config.database.max_connections = 5;
    let app = TestApp::on(config).await;
    outage_while_typing(&app, Fault::EveryWrite, async || pg.stop(), async || pg.start_again()).await;
}

// ---------------------------------------------------------------------------------------
// SQLite: the file locked by another process, and the disk full.

/// Another process holding SQLite's write lock (`begin exclusive`) until released.
struct SqliteLock(std::process::Child);

impl SqliteLock {
    fn take(db: &Path) -> Self {
        let script = "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n\
             c.execute('begin exclusive')\n\
             c.execute('create table if not exists lock_holder (x)')\n\
             print('locked', flush=True)\n\
             sys.stdin.read()\n\
             c.execute('rollback')\n";
        let mut child = Command::new("python3")
            .args(["-c", script, &db.display().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with its sqlite3 module");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut line).unwrap();
        assert_eq!(line.trim(), "locked");
        Self(child)
    }

    fn release(mut self) {
        drop(self.0.stdin.take());
        assert!(self.0.wait().unwrap().success(), "the lock holder ends cleanly");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_by_another_process() {
    let data = tempfile::tempdir().unwrap();
    let mut config = base_config(data.path());
    config.database.busy_timeout_ms = 1000;
    let app = TestApp::on(config).await;
    let db = data.path().join("vellum.db");
    let holder = std::sync::Mutex::new(None::<SqliteLock>);
    outage_while_typing(
        &app,
        Fault::EveryWrite,
        async || *holder.lock().unwrap() = Some(SqliteLock::take(&db)),
        async || holder.lock().unwrap().take().unwrap().release(),
    )
    .await;
}

/// A query is stopped at `graphql.query_timeout_ms` (here while it waits on a lock
/// another session holds); a mutation is not cut off, and completes once it can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_past_its_deadline_is_stopped() {
    use sqlx::Connection;
    let app = TestApp::with_config(Backend::Postgres, |c| c.graphql.query_timeout_ms = 300).await;
    let (token, _) = app.register("reader@example.com", "Reader").await;
    // Another session holds a lock that every read of `documents` waits for.
    let mut locker = sqlx::PgConnection::connect(app.config.database.url.expose())
        .await
        .unwrap();
    sqlx::query("begin").execute(&mut locker).await.unwrap();
    sqlx::query("lock table documents in access exclusive mode")
        .execute(&mut locker)
        .await
        .unwrap();

    let started = Instant::now();
    let v = app
        .gql(Some(&token), "{ document(slug: \"somewhere\") { title } }", json!({}))
        .await;
    assert_eq!(common::gql_code(&v), Some("TIMEOUT"), "{v}");
    assert_eq!(v["errors"][0]["extensions"]["retryable"], true, "{v}");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("graphql.query_timeout_ms"),
        "{v}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped at its deadline ({:?})",
        started.elapsed()
    );

    // A mutation waits instead, and its effect and its answer arrive together.
    let create = "mutation { createDocument(input: { title: \"Patient\" }) { id title } }";
    let (v, ()) = tokio::join!(app.gql(Some(&token), create, json!({})), async {
        tokio::time::sleep(Duration::from_secs(1)).await; // the lock outlasts the query deadline
        sqlx::query("rollback").execute(&mut locker).await.unwrap();
    });
    assert_eq!(v["data"]["createDocument"]["title"], "Patient", "{v}");
}

/// Not yet kept: after SQLite reports the disk full, a connection of the pool can keep
/// the database's write lock after space is back, so writes stay refused (UNAVAILABLE,
/// "database is locked") until a restart. Nothing acknowledged is lost meanwhile.
/// `cargo test --test faults -- --ignored sqlite_disk_full` shows it.
#[ignore = "a full SQLite disk can leave the write lock held after space is back (SECURITY.md)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_disk_full() {
    if !is_root() {
        println!("SKIPPED: mounting a small file system for the full disk needs root (CI runs as root)");
        return;
    }
    let mount = tempfile::tempdir().unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=48m", "tmpfs"])
        .arg(mount.path())
        .status()
        .unwrap();
    assert!(status.success(), "mount a tmpfs");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.path().to_path_buf());
    let config = base_config(mount.path());
    let app = TestApp::on(config).await;
    let filler = mount.path().join("filler");
    outage_while_typing(
        &app,
        Fault::WritesThatGrow,
        async || {
            // Empty the write-ahead log first (a checkpoint that truncates it): SQLite
            // reuses a log's space once it is checkpointed, so a full disk shows only
            // when the log must grow. Then fill every byte left: the log's next growth
            // fails with SQLITE_FULL.
            let out = Command::new("python3")
                .args([
                    "-c",
                    "import sqlite3, sys\n\
                     c = sqlite3.connect(sys.argv[1], timeout=30)\n\
                     print(c.execute('pragma wal_checkpoint(truncate)').fetchall())\n",
                    &mount.path().join("vellum.db").display().to_string(),
                ])
                .output()
                .expect("python3 with its sqlite3 module");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            use std::io::Write;
            let mut f = std::fs::File::create(&filler).unwrap();
            let chunk = vec![0u8; 64 * 1024];
            while f.write_all(&chunk).is_ok() {}
            let _ = f.flush();
            while f.write_all(&[0]).is_ok() {}
        },
        async || std::fs::remove_file(&filler).unwrap(),
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// A surge at twice the node's connection cap.

/// Twice `collab.max_connections` typists at once, each retrying at once whenever its
/// upgrade is refused (harsher than the stock client's backoff): those past the cap are
/// refused with 503 before the upgrade while those in keep typing; nobody in is thrown
/// out; once half leave, the rest get in, and every word anyone typed is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surge_at_twice_capacity_recovers() {
    const CAP: usize = 6;
    let app = TestApp::with_config(Backend::Sqlite, |c| c.collab.max_connections = CAP).await;
    let base = serve(&app).await;
    let (token, _) = app.register("surge@example.com", "Surge").await;
    let doc = app.create_doc(&token, "Surge").await;
    let id: Uuid = doc["id"].as_str().unwrap().parse().unwrap();
    let url = format!("{base}/ws/doc/{id}?token={token}");
    let started = Instant::now();
    let (first_phase, first) = start_typists(&url, 0..CAP);
    let (second_phase, second) = start_typists(&url, CAP..2 * CAP);

    // At the peak: CAP typists' words are being stored, the node is ready, and one more
    // upgrade is refused before it happens.
    loop {
        let text = durable_text(&app, id).await;
        let typing = (0..2 * CAP).filter(|&n| text.contains(&Typist::word(n, 10))).count();
        if typing >= CAP {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the first {CAP} typists were not stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = app.raw("GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "a full node is still ready");
    match tokio_tungstenite::connect_async(&url).await {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 503),
        other => panic!("an upgrade past the cap: {:?}", other.map(|(_, r)| r.status())),
    }

    // Half leave; every one of the other half is in and typing soon after.
    let first = stop_typists(first_phase, first).await;
    let left = started.elapsed();
    let after = (left.as_millis() / KEYSTROKE.as_millis()) as usize + 20;
    let resumed = Instant::now();
    loop {
        let text = durable_text(&app, id).await;
        if (CAP..2 * CAP).all(|n| text.contains(&Typist::word(n, after))) {
            break;
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(30),
            "the second half did not all get in"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = stop_typists(second_phase, second).await;
    let typists: Vec<Typist> = first.into_iter().chain(second).collect();
    for t in &typists {
        resync(&base, id, &token, &t.doc).await;
    }
    let typed: Vec<(usize, usize)> = typists.iter().map(|t| (t.n, t.typed)).collect();
    everything_typed_is_stored(&app, id, &typed).await;
    let refusals: Vec<u16> = typists.iter().flat_map(|t| t.refusals.clone()).collect();
    assert!(!refusals.is_empty(), "the surge was past the cap");
    assert!(
        refusals.iter().all(|s| *s == 503),
        "refused with 503 only: {refusals:?}"
    );
    for t in &typists {
        assert!(t.closes.is_empty(), "typist {} was thrown out: {:?}", t.n, t.closes);
        assert!(
            t.n < CAP || !t.acked.is_empty(),
            "typist {} of the half that stayed got in",
            t.n
        );
    }
    println!(
        "typed {} words; {} acknowledged; {} upgrades refused",
        typed.iter().map(|(_, n)| n).sum::<usize>(),
        typists.iter().map(|t| t.acked.len()).sum::<usize>(),
        refusals.len()
    );
}

// ---------------------------------------------------------------------------------------
// A damaged stored update or snapshot: that document alone is closed, with a clear
// error; `vellum doctor` names the piece and, with --repair, sets it aside.

async fn a_damaged_document_is_quarantined_alone(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (token, _) = app.register("owner@example.com", "Owner").await;
    let mut docs = Vec::new();
    for title in ["Damaged", "Healthy"] {
        let d = app.create_doc(&token, title).await;
        let id: Uuid = d["id"].as_str().unwrap().parse().unwrap();
        common::set_markdown(&app, &token, &id.to_string(), &format!("# {title}\n\nFirst paragraph.")).await;
        docs.push(id);
    }
    let (damaged, healthy) = (docs[0], docs[1]);
    // A version of the damaged one, then more content after it.
    let v = app
        .gql(
            Some(&token),
            "mutation($d: ID!) { saveVersion(documentId: $d, label: \"good\") { number } }",
            json!({ "d": damaged.to_string() }),
        )
        .await;
    assert_eq!(v["data"]["saveVersion"]["number"], 1, "{v}");
    common::set_markdown(
        &app,
        &token,
        &damaged.to_string(),
        "# Damaged\n\nFirst paragraph.\n\nSecond.",
    )
    .await;
    app.state.collab.shutdown().await; // rooms unload: the next open reads the database
    let mut app = app;
    app.restart().await;
    let base = serve(&app).await;

    // Damage the last update (a shape yrs cannot decode).
    let state = app.state.store.load_document_state(damaged).await.unwrap();
    let last = state.updates.last().map(|(seq, _)| *seq);
    let piece = match last {
        Some(seq) => StoredPiece::Update(seq),
        None => StoredPiece::Snapshot(state.snapshot.as_ref().unwrap().1),
    };
    let n = app
        .state
        .store
        .overwrite_stored_piece(damaged, piece, &[0xff, 0xff, 0xff, 0xff, 0x0f, 0x07])
        .await
        .unwrap();
    assert!(n >= 1, "damaged a stored row");

    // Opening it: closed at once with a clear reason, the same every time.
    for _ in 0..2 {
        let url = format!("{base}/ws/doc/{damaged}?token={token}");
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("upgrade");
        let close = loop {
            match ws.next().await {
                Some(Ok(Message::Close(f))) => break f.expect("a close frame with a code"),
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        assert_eq!(u16::from(close.code), 1011);
        assert!(
            close.reason.contains("damaged") && close.reason.contains("vellum doctor"),
            "{}",
            close.reason
        );
    }
    let body = "query($d: ID!) { document(id: $d, draft: true) { title body { text } } }";
    let v = app.gql(Some(&token), body, json!({ "d": damaged.to_string() })).await;
    assert_eq!(common::gql_code(&v), Some("DOCUMENT_DAMAGED"), "{v}");
    let (status, v) = app
        .raw("GET", &format!("/api/content/{damaged}?draft=true"), Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert_eq!(v["error"]["code"], "DOCUMENT_DAMAGED", "{v}");
    // Its metadata still reads; the other document is untouched.
    let v = app
        .gql(
            Some(&token),
            "query($d: ID!) { document(id: $d) { title } }",
            json!({ "d": damaged.to_string() }),
        )
        .await;
    assert_eq!(v["data"]["document"]["title"], "Damaged", "{v}");
    let v = app.gql(Some(&token), body, json!({ "d": healthy.to_string() })).await;
    assert!(
        v["data"]["document"]["body"]["text"]
            .as_str()
            .unwrap()
            .contains("First paragraph"),
        "{v}"
    );
    let (status, _) = app.raw("GET", "/readyz", None, None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "one damaged document does not make the node unready"
    );

    // The doctor: finds exactly that piece; repairs it; the document opens again.
    let report = vellum::collab::doctor::examine(&app.state.store, None, false, |_, _| {})
        .await
        .unwrap();
    assert_eq!(report.documents, 2);
    assert_eq!(report.findings.len(), 1, "{report:?}");
    assert_eq!(
        (report.findings[0].document_id, report.findings[0].piece),
        (damaged, piece)
    );
    assert_eq!(report.still_damaged, vec![damaged]);
    let report = vellum::collab::doctor::examine(&app.state.store, None, true, |_, _| {})
        .await
        .unwrap();
    assert!(report.still_damaged.is_empty(), "{report:?}");
    assert_eq!(
        app.state.store.set_aside_count(damaged).await.unwrap(),
        1,
        "kept, not deleted"
    );
    let v = app.gql(Some(&token), body, json!({ "d": damaged.to_string() })).await;
    let text = v["data"]["document"]["body"]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    assert!(text.contains("First paragraph"), "{text}");
    let report = vellum::collab::doctor::examine(&app.state.store, None, false, |_, _| {})
        .await
        .unwrap();
    assert!(report.findings.is_empty(), "{report:?}");
}

/// A damaged snapshot is replaced by the newest version's state.
async fn a_damaged_snapshot_falls_back_to_the_newest_version(backend: Backend) {
    let mut app = TestApp::new(backend).await;
    let (token, _) = app.register("owner@example.com", "Owner").await;
    let d = app.create_doc(&token, "Snap").await;
    let id: Uuid = d["id"].as_str().unwrap().parse().unwrap();
    common::set_markdown(&app, &token, &id.to_string(), "Kept in version one.").await;
    let v = app
        .gql(
            Some(&token),
            "mutation($d: ID!) { saveVersion(documentId: $d, label: \"one\") { number } }",
            json!({ "d": id.to_string() }),
        )
        .await;
    assert_eq!(v["data"]["saveVersion"]["number"], 1, "{v}");
    app.restart().await; // the final snapshot covers everything
    let state = app.state.store.load_document_state(id).await.unwrap();
    let seq = state.snapshot.as_ref().expect("a snapshot after unloading").1;
    let n = app
        .state
        .store
        .overwrite_stored_piece(id, StoredPiece::Snapshot(seq), b"not a yjs update")
        .await
        .unwrap();
    assert_eq!(n, 1);
    let body = "query($d: ID!) { document(id: $d, draft: true) { body { text } } }";
    let v = app.gql(Some(&token), body, json!({ "d": id.to_string() })).await;
    assert_eq!(common::gql_code(&v), Some("DOCUMENT_DAMAGED"), "{v}");

    // The binary, as an operator runs it: exit 1 and the finding; then --repair.
    let doctor = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vellum"));
        cmd.arg("doctor").args(args);
        cmd.env("VELLUM_SERVER__DATA_DIR", &app.config.server.data_dir)
            .env("VELLUM_AUTH__JWT_SECRET", common::TEST_SECRET);
        if backend == Backend::Postgres {
            cmd.env("VELLUM_DATABASE__URL", app.config.database.url.expose());
        }
        cmd.output().unwrap()
    };
    let out = doctor(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&id.to_string()) && stdout.contains("snapshot"),
        "{stdout}"
    );
    // On SQLite, --repair refuses while a server uses the database.
    if backend == Backend::Sqlite {
        let out = doctor(&["--repair"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("stop the server"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        app.state.collab.shutdown().await;
        app.state.search.shutdown().await;
        app.state.store.close().await;
    }
    let out = doctor(&["--repair"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("version 1"), "{stdout}");
    if backend == Backend::Sqlite {
        app.state = vellum::app::build_state(app.config.clone()).await.unwrap();
        app.router = vellum::app::router(app.state.clone());
    }
    let v = app.gql(Some(&token), body, json!({ "d": id.to_string() })).await;
    assert_eq!(v["data"]["document"]["body"]["text"], "Kept in version one.", "{v}");
    assert_eq!(app.state.store.set_aside_count(id).await.unwrap(), 1);
}

both_backends!(
    a_damaged_document_is_quarantined_alone,
    a_damaged_snapshot_falls_back_to_the_newest_version
);
