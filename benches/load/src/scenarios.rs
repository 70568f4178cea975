//! The scenarios. Each client runs in its own task: connect and sync (a bounded number
//! at once), report ready, wait for the start while still reading, do its part, then
//! receive until it has everything the senders sent (or the deadline) and report its text.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::sync::{Barrier, Semaphore, mpsc, watch};
use yrs::StateVector;
use yrs::block::ClientID;

use crate::check::{self, Final};
use crate::client::{self, Client, Ends, Ops, Registry};
use crate::stats::{CpuMeter, Latencies, round3, rss_json};
use crate::trace;
use crate::{Outcome, Target};

const SYNC_TIMEOUT: Duration = Duration::from_secs(60);
/// A `cold-load` open: the reference with LevelDB replays every stored update at its first
/// cold open (16 s for 50,000 on a 2-core host; the whole trace holds 259,778).
const OPEN_TIMEOUT: Duration = Duration::from_secs(600);
/// Characters per `fanout` insert: `<iiiii.sssss>`, the sender's index and sequence number.
const MARK_LEN: u32 = 13;
/// Once the senders stop, every client reads until nothing has arrived for this long,
/// and all of them have, before any integrates what it deferred: integrating stops a
/// client's reading (and takes the tool's CPU from the others), so an update still in
/// flight would be stamped seconds late. `ceiling`'s max latency was 2.4–2.8 s, an
/// artifact of its readers' catching up, before this (BENCHMARKS.md, change 34).
const DRAIN_QUIET: Duration = Duration::from_millis(250);

fn marker(idx: usize, seq: usize) -> String {
    format!("<{:05}.{:05}>", idx % 100_000, seq % 100_000)
}

/// Final clocks of the senders, published when they stop, and the signal that all did.
struct Finals {
    clocks: Vec<AtomicU32>,
    all: watch::Receiver<bool>,
}

impl Finals {
    /// The state vector a client of a document with these senders must reach.
    fn target(&self, senders: &[usize]) -> StateVector {
        let mut sv = StateVector::default();
        for &s in senders {
            let c = self.clocks[s].load(Ordering::Acquire);
            if c > 0 {
                sv.set_max(ClientID::new(client::client_id(s)), c);
            }
        }
        sv
    }
}

/// Resolves once the flag is set (or its sender is gone).
async fn wait_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// A client's report at the end of a run.
struct Report {
    doc: usize,
    fin: Final,
    latencies: Vec<u32>,
    sent: usize,
    acked: usize,
    updates_in: u64,
    messages_in: u64,
    bytes_in: u64,
    awareness_in: u64,
    late_samples: u64,
}

impl Report {
    fn from(c: Client, doc: usize, complete: bool, sent: usize) -> Self {
        Report {
            doc,
            fin: Final {
                idx: c.idx,
                text: c.string(),
                complete,
                errors: c.errors.clone(),
                closed: c.closed.clone(),
            },
            latencies: c.latencies.clone(),
            sent,
            acked: c.own_acked,
            updates_in: c.updates_in,
            messages_in: c.messages_in,
            bytes_in: c.bytes_in,
            awareness_in: c.awareness_in,
            late_samples: c.late_samples,
        }
    }
}

/// Connects and syncs under the connection semaphore; the time from connect to synced.
async fn open(url: &str, idx: usize, reg: &Arc<Registry>, sem: &Semaphore) -> anyhow::Result<(Client, Duration)> {
    let _permit = sem.acquire().await?;
    let t0 = Instant::now();
    let mut c = Client::connect(url, idx, reg.clone()).await?;
    c.wait_synced(SYNC_TIMEOUT).await?;
    Ok((c, t0.elapsed()))
}

/// Waits for `n` ready messages; the first error aborts the run.
async fn all_ready(
    rx: &mut mpsc::UnboundedReceiver<anyhow::Result<Duration>>,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(n);
    while times.len() < n {
        match rx.recv().await {
            Some(Ok(t)) => times.push(t),
            Some(Err(e)) => return Err(e.context(format!("after {} clients connected", times.len()))),
            None => anyhow::bail!("client tasks ended early"),
        }
    }
    Ok(times)
}

/// Checks every document; the first divergence is the run's failure.
fn converge(reports: &[Report], docs: &[String], expected: &dyn Fn(usize) -> Option<String>) -> Option<String> {
    let mut failures = Vec::new();
    for (d, name) in docs.iter().enumerate() {
        let fins: Vec<&Final> = reports.iter().filter(|r| r.doc == d).map(|r| &r.fin).collect();
        let owned: Vec<Final> = fins
            .iter()
            .map(|f| Final {
                idx: f.idx,
                text: f.text.clone(),
                complete: f.complete,
                errors: f.errors.clone(),
                closed: f.closed.clone(),
            })
            .collect();
        if let Err(e) = check::document(name, &owned, expected(d).as_deref()) {
            failures.push(e);
        }
    }
    if failures.is_empty() {
        None
    } else {
        let n = failures.len();
        let mut s = failures.into_iter().take(3).collect::<Vec<_>>().join("");
        if n > 3 {
            s.push_str(&format!("… and {} more documents\n", n - 3));
        }
        Some(s)
    }
}

// ---- fanout ----------------------------------------------------------------------------------

#[derive(Args)]
pub struct FanoutArgs {
    /// Clients on the document.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// How many of the clients insert (0: all). The others only read: they keep each
    /// update with its arrival time and integrate them after the sending stops, so their
    /// latencies are measured at arrival and the convergence check still covers them,
    /// while the load tool's CPU goes to the traffic rather than to yrs.
    #[arg(long, default_value_t = 0)]
    writers: usize,
    /// Inserts per second per client; 0: as fast as the window allows (throughput ceiling).
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Most own inserts not yet echoed back per client (0: no limit; default 8 with --rate 0).
    #[arg(long, default_value_t = 0)]
    window: usize,
    /// Where each insert goes. `start` costs the clients least: yrs finds a position by
    /// walking the text, which made random positions the client's main cost (70% of its
    /// CPU) once the text held thousands of inserts. The server never looks positions up.
    #[arg(long, value_enum, default_value_t = At::Start)]
    at: At,
    /// Every client has an awareness state (a user name and colour), and a writer moves
    /// its caret with every insert, as TipTap's CollaborationCaret does on each keystroke.
    #[arg(long)]
    cursor: bool,
}

/// An awareness state shaped like TipTap's: the user, and a caret as two Yjs relative
/// positions (at the client's last insert).
fn caret_state(idx: usize, clock: Option<u32>) -> String {
    let user = format!(r##""user":{{"name":"typist {idx}","color":"#30bced"}}"##);
    match clock {
        None => format!("{{{user}}}"),
        Some(k) => {
            let pos = format!(
                r#"{{"type":null,"tname":"{}","item":{{"client":{},"clock":{k}}},"assoc":0}}"#,
                crate::client::TEXT,
                crate::client::client_id(idx)
            );
            format!(r#"{{{user},"cursor":{{"anchor":{pos},"head":{pos}}}}}"#)
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum At {
    Start,
    Random,
}

pub async fn fanout(target: &Target, a: FanoutArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(a.clients >= 2, "fanout needs at least 2 clients");
    let writers = if a.writers == 0 { a.clients } else { a.writers };
    anyhow::ensure!(
        writers <= a.clients,
        "--writers {writers} is more than --clients {}",
        a.clients
    );
    let window = if a.rate <= 0.0 && a.window == 0 { 8 } else { a.window };
    let docs = target.documents(1, "fanout").await?;
    let url = target.url(&docs[0]);
    // Every send instant has to stay known until the last reader integrates, which a
    // reader does after the run: the ring must never wrap. Unpaced, room for 500,000
    // updates a second across the writers (ten times the most any server took here); a
    // writer that fills its share stops with an error. Before, a fixed 65,536 wrapped in
    // `ceiling`, and the readers' samples of every earlier update were dropped
    // (BENCHMARKS.md, change 33).
    let capacity = if a.rate > 0.0 {
        (a.rate * a.duration * 1.5) as usize + 64
    } else {
        (a.duration * 500_000.0 / writers as f64) as usize + 64
    };
    let mut reg = Registry::new(a.clients);
    let ops: Vec<Arc<Ops>> = (0..a.clients)
        .map(|i| {
            let ring = if i < writers { capacity } else { 1 };
            reg.set(i, Ops::new(Ends::Fixed(MARK_LEN), ring))
        })
        .collect();
    let reg = Arc::new(reg);
    let (finals_tx, finals_rx) = watch::channel(false);
    let finals = Arc::new(Finals {
        clocks: (0..a.clients).map(|_| AtomicU32::new(0)).collect(),
        all: finals_rx,
    });
    let (go_tx, go_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<()>();
    let sem = Arc::new(Semaphore::new(target.args.connect_concurrency));
    let drained = Arc::new(Barrier::new(a.clients));
    let senders: Arc<Vec<usize>> = Arc::new((0..writers).collect());
    let duration = Duration::from_secs_f64(a.duration);
    let converge_timeout = Duration::from_millis(target.args.converge_timeout_ms);
    let rss_before = target.rss();
    let mut tasks = Vec::new();
    for idx in 0..a.clients {
        let (url, reg, sem, ops) = (url.clone(), reg.clone(), sem.clone(), ops[idx].clone());
        let drained = drained.clone();
        let (ready_tx, done_tx, mut go_rx, finals, senders) = (
            ready_tx.clone(),
            done_tx.clone(),
            go_rx.clone(),
            finals.clone(),
            senders.clone(),
        );
        let (rate, at, cursor, clients) = (a.rate, a.at, a.cursor, a.clients);
        tasks.push(tokio::spawn(async move {
            let mut c = match open(&url, idx, &reg, &sem).await {
                Ok((c, t)) => {
                    let _ = ready_tx.send(Ok(t));
                    c
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return None;
                }
            };
            if cursor && c.set_awareness(&caret_state(idx, None)).await.is_err() {
                c.errors.push("could not send the awareness state".into());
            }
            c.idle_until(wait_true(&mut go_rx)).await;
            if cursor && let Err(e) = c.wait_awareness(clients, Duration::from_secs(30)).await {
                c.errors.push(format!("{e:#}"));
            }
            c.reset_counts();
            let writes = idx < writers;
            c.defer = !writes;
            let mut rng = SmallRng::seed_from_u64(idx as u64);
            let start = tokio::time::Instant::now();
            let deadline = start + duration;
            let period = if rate > 0.0 {
                Duration::from_secs_f64(1.0 / rate)
            } else {
                Duration::ZERO
            };
            let mut next = start + period.mul_f64(rng.r#gen::<f64>());
            let mut seq = 0usize;
            let mut failed = false;
            'send: loop {
                let may_send = writes
                    && if rate > 0.0 {
                        tokio::time::Instant::now() >= next
                    } else {
                        window == 0 || seq < c.own_acked + window
                    };
                if may_send && !failed {
                    if seq == capacity {
                        c.errors.push(format!(
                            "sent {capacity} updates, all the send instants this run can keep; measure a shorter run"
                        ));
                        break 'send;
                    }
                    let frac = match at {
                        At::Start => 0.0,
                        At::Random => rng.r#gen::<f64>(),
                    };
                    let u = c.insert_at(frac, &marker(idx, seq));
                    ops.mark_sent(seq, reg.now_ns());
                    failed = c.send_update(u).await.is_err();
                    if cursor && !failed {
                        let clock = (seq as u32 + 1) * MARK_LEN - 1;
                        failed = c.set_awareness(&caret_state(idx, Some(clock))).await.is_err();
                    }
                    seq += 1;
                    next += period;
                    if tokio::time::Instant::now() >= deadline {
                        break 'send;
                    }
                    continue;
                }
                let wake = if rate > 0.0 && writes {
                    next.min(deadline)
                } else {
                    deadline
                };
                tokio::select! {
                    _ = tokio::time::sleep_until(wake) => {
                        if tokio::time::Instant::now() >= deadline { break 'send; }
                    }
                    alive = c.recv() => {
                        if !alive { break 'send; }
                        let _ = c.flush().await;
                    }
                }
            }
            finals.clocks[idx].store(seq as u32 * MARK_LEN, Ordering::Release);
            let _ = done_tx.send(());
            let mut all = finals.all.clone();
            c.idle_until(wait_true(&mut all)).await;
            c.drain(DRAIN_QUIET).await;
            drained.wait().await;
            c.catch_up();
            let target = finals.target(&senders);
            let complete = c.settle(&target, tokio::time::Instant::now() + converge_timeout).await;
            let r = Report::from(c, 0, complete, seq);
            Some(r)
        }));
    }
    drop((ready_tx, done_tx));
    let connect_times = all_ready(&mut ready_rx, a.clients).await?;
    let rss_connected = target.rss();
    let cpu = CpuMeter::start(target.args.server_pid);
    let t0 = Instant::now();
    go_tx.send_replace(true);
    for _ in 0..a.clients {
        done_rx.recv().await.context("a client task ended while sending")?;
    }
    let send_wall = t0.elapsed().as_secs_f64();
    let cpu_json = cpu.stop();
    finals_tx.send_replace(true);
    let mut reports = Vec::new();
    for t in tasks {
        if let Some(r) = t.await? {
            reports.push(r);
        }
    }
    let rss_after = target.rss();
    let mut lat = Latencies::default();
    let (mut sent, mut acked, mut updates_in, mut late) = (0, 0, 0, 0);
    let (mut messages_in, mut bytes_in, mut awareness_in) = (0, 0, 0);
    for r in &mut reports {
        lat.extend(std::mem::take(&mut r.latencies));
        sent += r.sent;
        acked += r.acked;
        updates_in += r.updates_in;
        messages_in += r.messages_in;
        bytes_in += r.bytes_in;
        awareness_in += r.awareness_in;
        late += r.late_samples;
    }
    let s = lat.summary();
    let expected_len = sent * MARK_LEN as usize;
    let mut failure = converge(&reports, &docs, &|_| None);
    if failure.is_none()
        && let Some(r) = reports.first()
        && (r.fin.text.len() != expected_len || r.fin.text.matches('<').count() != sent)
    {
        failure = Some(format!(
            "DIVERGED: the converged text holds {} bytes / {} inserts, expected {expected_len} / {sent}",
            r.fin.text.len(),
            r.fin.text.matches('<').count()
        ));
    }
    let mut ct = Latencies(connect_times.iter().map(|d| d.as_micros() as u32).collect());
    let delivered = s.samples as f64 / send_wall;
    let json = json!({
        "clients": a.clients, "writers": writers, "rate": a.rate, "duration_s": a.duration, "window": window,
        "at": match a.at { At::Start => "start", At::Random => "random" },
        "latency": s.json(),
        "sent": sent,
        "sent_per_s": round3(sent as f64 / send_wall),
        "acked_per_s": round3(acked as f64 / send_wall),
        "delivered_per_s": round3(delivered),
        "cursor": a.cursor,
        "updates_in": updates_in,
        // What the server sent the clients while the senders sent, per update delivered
        // to a client (each receiver's copy of each insert is one): the cost of the
        // traffic around the edits, awareness included.
        "messages_in": messages_in,
        "bytes_in": bytes_in,
        "awareness_in": awareness_in,
        "messages_per_delivered": round3(messages_in as f64 / s.samples.max(1) as f64),
        "bytes_per_delivered": round3(bytes_in as f64 / s.samples.max(1) as f64),
        "late_samples": late,
        "connect": ct.summary().json(),
        "rss": rss_json(rss_before, rss_after, Some(("client", a.clients))),
        "rss_connected_kib": rss_connected,
        "cpu": cpu_json,
    });
    let human = format!(
        "  {} clients ({writers} writing) × {} ops/s × {} s (window {window}): sender→receiver latency {}\n  sent {sent} ({:.0}/s, echoed {:.0}/s), delivered {:.0} updates/s; client CPU {} cores, server CPU {} cores\n  received {messages_in} messages ({awareness_in} awareness), {} per delivered update, {} bytes per delivered update",
        a.clients,
        a.rate,
        a.duration,
        s.human(),
        sent as f64 / send_wall,
        acked as f64 / send_wall,
        delivered,
        json["cpu"]["client_cores"],
        json["cpu"]["server_cores"],
        json["messages_per_delivered"],
        json["bytes_per_delivered"],
    );
    Ok(Outcome { json, human, failure })
}

// ---- many-docs -----------------------------------------------------------------------------

#[derive(Args)]
pub struct ManyDocsArgs {
    /// Documents.
    #[arg(long, default_value_t = 50)]
    docs: usize,
    /// Clients per document (the first loads it, the others then join and sync).
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Patches of automerge-paper each document is loaded with (one update each).
    #[arg(long, default_value_t = 1000)]
    patches: usize,
    /// Updates in flight (sent, not yet echoed) while loading a document.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Seconds to wait after loading before reading the server's memory.
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
}

/// Sends `frames` with at most `window` not yet echoed (one writer per document, so every
/// update message it receives is an echo); returns once all are echoed.
async fn push(c: &mut Client, frames: &[Bytes], window: usize) -> anyhow::Result<()> {
    let base = c.updates_in as usize;
    let mut next = 0;
    while (c.updates_in as usize) - base < frames.len() {
        while next < frames.len() && next < (c.updates_in as usize - base) + window {
            c.send(frames[next].clone()).await?;
            next += 1;
        }
        match tokio::time::timeout(Duration::from_secs(60), c.recv()).await {
            Ok(true) => c.flush().await?,
            Ok(false) => anyhow::bail!(
                "connection closed while loading: {}",
                c.closed.as_deref().unwrap_or("?")
            ),
            Err(_) => anyhow::bail!(
                "no echo for 60 s while loading ({} of {} echoed)",
                c.updates_in as usize - base,
                frames.len()
            ),
        }
    }
    if let Some(e) = c.errors.first() {
        anyhow::bail!("while loading: {e}");
    }
    Ok(())
}

/// Trace-derived frames for the loading writer, with the text they produce.
fn paper_frames(target: &Target, patches: usize) -> anyhow::Result<(Arc<Vec<Bytes>>, Arc<String>, usize)> {
    let path = trace::locate(target.args.traces.as_deref(), "automerge-paper.json.gz")?;
    let t = trace::load(&path)?;
    // A fixed 32-bit id outside the clients' range, like the ingest bench's replay.
    let u = trace::updates(&t, patches, 0x9E37_79B9);
    let n = u.updates.len();
    let frames = u.updates.into_iter().map(client::update_frame).collect();
    Ok((Arc::new(frames), Arc::new(u.text), n))
}

pub async fn many_docs(target: &Target, a: ManyDocsArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        a.clients >= 1 && a.docs >= 1,
        "need at least one document and one client"
    );
    let (frames, expected, patches) = paper_frames(target, a.patches)?;
    let docs = target.documents(a.docs, "many-docs").await?;
    let reg = Arc::new(Registry::new(0));
    let sem = Arc::new(Semaphore::new(target.args.connect_concurrency));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (release_tx, release_rx) = watch::channel(false);
    let rss_before = target.rss();
    let cpu = CpuMeter::start(target.args.server_pid);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (d, doc) in docs.iter().enumerate() {
        let (url, reg, sem, frames) = (target.url(doc), reg.clone(), sem.clone(), frames.clone());
        let (ready_tx, mut release_rx) = (ready_tx.clone(), release_rx.clone());
        let (k, window) = (a.clients, a.window);
        tasks.push(tokio::spawn(async move {
            let run = async {
                let (mut writer, _) = open(&url, d * k, &reg, &sem).await?;
                push(&mut writer, &frames, window).await?;
                let mut clients = vec![writer];
                for j in 1..k {
                    clients.push(open(&url, d * k + j, &reg, &sem).await?.0);
                }
                anyhow::Ok(clients)
            };
            let clients = match run.await {
                Ok(c) => {
                    let _ = ready_tx.send(Ok(Duration::ZERO));
                    c
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return Vec::new();
                }
            };
            wait_true(&mut release_rx).await;
            clients
                .into_iter()
                .map(|c| Report::from(c, d, true, 0))
                .collect::<Vec<_>>()
        }));
    }
    drop(ready_tx);
    all_ready(&mut ready_rx, a.docs).await?;
    let load_s = t0.elapsed().as_secs_f64();
    let cpu_json = cpu.stop();
    tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;
    let rss_after = target.rss();
    release_tx.send_replace(true);
    let mut reports = Vec::new();
    for t in tasks {
        reports.extend(t.await?);
    }
    let failure = converge(&reports, &docs, &|_| Some(expected.to_string()));
    let rss = rss_json(rss_before, rss_after, Some(("doc", a.docs)));
    let json = json!({
        "docs": a.docs, "clients_per_doc": a.clients, "patches": patches,
        "text_bytes": expected.len(),
        "load_s": round3(load_s),
        "updates_per_s": round3((a.docs * patches) as f64 / load_s),
        "rss": rss,
        "rss_per_connection_kib": match (rss_before, rss_after) {
            (Some(b), Some(a2)) => round3((a2 as f64 - b as f64) / (a.docs * a.clients) as f64),
            _ => serde_json::Value::Null,
        },
        "cpu": cpu_json,
    });
    let human = format!(
        "  {} documents × {} clients, {} patches each ({} B of text): loaded in {:.2} s ({:.0} updates/s)\n  server RSS {} → {} KiB: {} KiB per document (with its clients)",
        a.docs,
        a.clients,
        patches,
        expected.len(),
        load_s,
        (a.docs * patches) as f64 / load_s,
        json["rss"]["before_kib"],
        json["rss"]["after_kib"],
        json["rss"]["per_doc_kib"],
    );
    Ok(Outcome { json, human, failure })
}

// ---- idle ----------------------------------------------------------------------------------

#[derive(Args)]
pub struct IdleArgs {
    /// Connections.
    #[arg(long, default_value_t = 2000)]
    connections: usize,
    /// Documents they are spread over (round robin).
    #[arg(long, default_value_t = 20)]
    docs: usize,
    /// Seconds to hold them open before reading the server's memory.
    #[arg(long, default_value_t = 2.0)]
    hold: f64,
}

pub async fn idle(target: &Target, a: IdleArgs) -> anyhow::Result<Outcome> {
    let docs = target.documents(a.docs.max(1), "idle").await?;
    let reg = Arc::new(Registry::new(0));
    let sem = Arc::new(Semaphore::new(target.args.connect_concurrency));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (release_tx, release_rx) = watch::channel(false);
    let rss_before = target.rss();
    let cpu = CpuMeter::start(target.args.server_pid);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for idx in 0..a.connections {
        let d = idx % docs.len();
        let (url, reg, sem) = (target.url(&docs[d]), reg.clone(), sem.clone());
        let (ready_tx, mut release_rx) = (ready_tx.clone(), release_rx.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = match open(&url, idx, &reg, &sem).await {
                Ok((c, t)) => {
                    let _ = ready_tx.send(Ok(t));
                    c
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return None;
                }
            };
            c.idle_until(wait_true(&mut release_rx)).await;
            let alive = c.closed.is_none();
            let r = Report::from(c, d, alive, 0);
            Some(r)
        }));
    }
    drop(ready_tx);
    let times = all_ready(&mut ready_rx, a.connections).await?;
    let connect_s = t0.elapsed().as_secs_f64();
    let cpu_json = cpu.stop();
    tokio::time::sleep(Duration::from_secs_f64(a.hold)).await;
    let rss_after = target.rss();
    release_tx.send_replace(true);
    let mut reports = Vec::new();
    for t in tasks {
        if let Some(r) = t.await? {
            reports.push(r);
        }
    }
    let failure = converge(&reports, &docs, &|_| Some(String::new()));
    let mut ct = Latencies(times.iter().map(|d| d.as_micros() as u32).collect());
    let cts = ct.summary();
    let json = json!({
        "connections": a.connections, "docs": docs.len(),
        "connect_s": round3(connect_s),
        "connects_per_s": round3(a.connections as f64 / connect_s),
        "connect": cts.json(),
        "rss": rss_json(rss_before, rss_after, Some(("connection", a.connections))),
        "cpu": cpu_json,
    });
    let human = format!(
        "  {} idle connections on {} documents: all connected and synced in {:.2} s ({:.0}/s); each {}\n  server RSS {} → {} KiB: {} KiB per connection",
        a.connections,
        docs.len(),
        connect_s,
        a.connections as f64 / connect_s,
        cts.human(),
        json["rss"]["before_kib"],
        json["rss"]["after_kib"],
        json["rss"]["per_connection_kib"],
    );
    Ok(Outcome { json, human, failure })
}

// ---- cold-load -----------------------------------------------------------------------------

#[derive(Args)]
pub struct ColdLoadArgs {
    /// Patches of automerge-paper the document holds (one update each); 0: all 259,778.
    #[arg(long, default_value_t = 50_000)]
    patches: usize,
    /// Updates in flight while loading it.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Opens measured in each of the two conditions.
    #[arg(long, default_value_t = 3)]
    opens: usize,
    /// Milliseconds to wait with nobody connected before each cold open (long enough for
    /// the server to unload the document: Vellum's `collab.unload_grace_ms`).
    #[arg(long, default_value_t = 0)]
    unload_wait_ms: u64,
}

pub async fn cold_load(target: &Target, a: ColdLoadArgs) -> anyhow::Result<Outcome> {
    let patches = if a.patches == 0 { usize::MAX } else { a.patches };
    let (frames, expected, patches) = paper_frames(target, patches)?;
    let docs = target.documents(1, "cold-load").await?;
    let url = target.url(&docs[0]);
    let reg = Arc::new(Registry::new(0));
    let sem = Semaphore::new(1);
    let rss_before = target.rss();
    let cpu = CpuMeter::start(target.args.server_pid);
    let t0 = Instant::now();
    let (mut writer, _) = open(&url, 0, &reg, &sem).await?;
    push(&mut writer, &frames, a.window).await?;
    let load_s = t0.elapsed().as_secs_f64();
    let cpu_json = cpu.stop();
    let rss_loaded = target.rss();
    let full = writer.state_vector();
    let mut reports = vec![Report::from_ref(&writer, 0)];
    let mut next_idx = 0;
    // An open ends once the client holds the whole document (synced alone is not enough
    // against a server that sends part of it after sync step 2).
    let mut open_once = || {
        next_idx += 1;
        let (url, reg, idx, full) = (url.clone(), reg.clone(), next_idx, &full);
        async move {
            let t0 = Instant::now();
            let mut c = Client::connect(&url, idx, reg).await?;
            c.wait_covers(full, OPEN_TIMEOUT).await?;
            anyhow::Ok((c, t0.elapsed()))
        }
    };
    // Warm: the document is loaded (its writer is still connected).
    let mut warm = Vec::new();
    let (mut warm_up, mut cold_up) = (Vec::new(), Vec::new());
    let (mut warm_apply, mut cold_apply) = (Vec::new(), Vec::new());
    let mut cold_late = Vec::new();
    for _ in 0..a.opens {
        let (c, t) = open_once().await?;
        warm.push(t);
        warm_up.push(c.upgrade);
        warm_apply.push(c.sync_apply + c.update_apply);
        reports.push(Report::from_ref(&c, 0));
        c.close().await;
    }
    writer.close().await;
    // Cold: nobody connected for `unload_wait_ms` first.
    let mut cold = Vec::new();
    let mut state_bytes = 0;
    for _ in 0..a.opens {
        tokio::time::sleep(Duration::from_millis(a.unload_wait_ms)).await;
        let (c, t) = open_once().await?;
        cold.push(t);
        cold_up.push(c.upgrade);
        cold_apply.push(c.sync_apply + c.update_apply);
        cold_late.push(c.updates_in);
        state_bytes = c.bytes_in;
        reports.push(Report::from_ref(&c, 0));
        c.close().await;
    }
    let failure = converge(&reports, &docs, &|_| Some(expected.to_string()));
    let ms = |v: &[Duration]| -> Vec<f64> { v.iter().map(|d| (d.as_secs_f64() * 1e6).round() / 1e3).collect() };
    let median = |v: &[Duration]| -> f64 {
        let mut m = ms(v);
        m.sort_by(f64::total_cmp);
        m.get(m.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let json = json!({
        "patches": patches, "text_bytes": expected.len(),
        "load_s": round3(load_s),
        "load_updates_per_s": round3(patches as f64 / load_s),
        "warm_open_ms": ms(&warm), "cold_open_ms": ms(&cold),
        "warm_open_median_ms": round3(median(&warm)), "cold_open_median_ms": round3(median(&cold)),
        "warm_upgrade_ms": ms(&warm_up), "cold_upgrade_ms": ms(&cold_up),
        "warm_client_apply_ms": ms(&warm_apply), "cold_client_apply_ms": ms(&cold_apply),
        "cold_updates_after_sync": cold_late,
        "bytes_received_on_open": state_bytes,
        "unload_wait_ms": a.unload_wait_ms,
        "rss": rss_json(rss_before, rss_loaded, Some(("doc", 1))),
        "load_cpu": cpu_json,
    });
    let human = format!(
        "  document of {patches} patches ({} B of text), loaded at {:.0} updates/s\n  open (connect → synced and complete, text checked): warm {:?} ms, cold (after {} ms with nobody connected) {:?} ms; {} B received\n  of which the WebSocket upgrade (authentication): warm {:?} ms, cold {:?} ms\n  and the client's own decoding and applying of the state: warm {:?} ms, cold {:?} ms\n  server RSS {} → {} KiB with the document loaded",
        expected.len(),
        patches as f64 / load_s,
        ms(&warm),
        a.unload_wait_ms,
        ms(&cold),
        state_bytes,
        ms(&warm_up),
        ms(&cold_up),
        ms(&warm_apply),
        ms(&cold_apply),
        json["rss"]["before_kib"],
        json["rss"]["after_kib"],
    );
    Ok(Outcome { json, human, failure })
}

impl Report {
    fn from_ref(c: &Client, doc: usize) -> Self {
        Report {
            doc,
            fin: Final {
                idx: c.idx,
                text: c.string(),
                complete: c.synced,
                errors: c.errors.clone(),
                closed: c.closed.clone(),
            },
            latencies: Vec::new(),
            sent: 0,
            acked: 0,
            updates_in: c.updates_in,
            messages_in: c.messages_in,
            bytes_in: c.bytes_in,
            awareness_in: c.awareness_in,
            late_samples: c.late_samples,
        }
    }
}

// ---- trace ---------------------------------------------------------------------------------

#[derive(Args)]
pub struct TraceArgs {
    /// Typist counts to try, in order; stops after the first whose p99 exceeds --p99-ms.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32,64")]
    typists: Vec<usize>,
    /// Readers on each typist's document.
    #[arg(long, default_value_t = 2)]
    readers: usize,
    /// Transactions of seph-blog1 each typist replays.
    #[arg(long, default_value_t = 400)]
    txns: usize,
    /// Time compression: the trace's pace multiplied by this.
    #[arg(long, default_value_t = 20.0)]
    speed: f64,
    /// Pauses in the trace longer than this (ms, before compression) are cut to it.
    #[arg(long, default_value_t = 1000)]
    max_gap_ms: u64,
    /// The latency bound for a step to pass.
    #[arg(long, default_value_t = 50.0)]
    p99_ms: f64,
}

pub async fn trace(target: &Target, a: TraceArgs) -> anyhow::Result<Outcome> {
    let path = trace::locate(target.args.traces.as_deref(), "seph-blog1.json.gz")?;
    let t = Arc::new(trace::load(&path)?);
    let n = a.txns.min(t.txns.len());
    let expected = Arc::new(trace::text_after(&t, n));
    let shape = trace::updates(&t, n, 1);
    let schedule = Arc::new(trace::schedule(&t, n, Duration::from_millis(a.max_gap_ms), a.speed));
    let span = schedule.last().copied().unwrap_or_default();
    let mut steps = Vec::new();
    let mut best = 0usize;
    let mut failure = None;
    let mut human = format!(
        "  seph-blog1, first {n} transactions at {}× ({:.1} s each), {} readers per typist; p99 bound {} ms\n",
        a.speed,
        span.as_secs_f64(),
        a.readers,
        a.p99_ms
    );
    for &k in &a.typists {
        let per = 1 + a.readers;
        let docs = target.documents(k, &format!("trace-k{k}")).await?;
        let mut reg = Registry::new(k * per);
        let ops: Vec<Arc<Ops>> = (0..k)
            .map(|d| {
                let ends = Ends::Table {
                    ends: shape.ends.clone(),
                    inserts: shape.inserts.clone(),
                };
                reg.set(d * per, Ops::new(ends, 0))
            })
            .collect();
        let reg = Arc::new(reg);
        let (finals_tx, finals_rx) = watch::channel(false);
        let finals = Arc::new(Finals {
            clocks: (0..k * per).map(|_| AtomicU32::new(0)).collect(),
            all: finals_rx,
        });
        let (go_tx, go_rx) = watch::channel(false);
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<()>();
        let sem = Arc::new(Semaphore::new(target.args.connect_concurrency));
        let drained = Arc::new(Barrier::new(k * per));
        let converge_timeout = Duration::from_millis(target.args.converge_timeout_ms);
        let mut tasks = Vec::new();
        for d in 0..k {
            for r in 0..per {
                let idx = d * per + r;
                let (url, reg, sem) = (target.url(&docs[d]), reg.clone(), sem.clone());
                let (ready_tx, done_tx, mut go_rx, finals) =
                    (ready_tx.clone(), done_tx.clone(), go_rx.clone(), finals.clone());
                let (t, schedule, ops) = (t.clone(), schedule.clone(), (r == 0).then(|| ops[d].clone()));
                let (expected, drained) = (expected.clone(), drained.clone());
                tasks.push(tokio::spawn(async move {
                    let mut c = match open(&url, idx, &reg, &sem).await {
                        Ok((c, time)) => {
                            let _ = ready_tx.send(Ok(time));
                            c
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return None;
                        }
                    };
                    c.idle_until(wait_true(&mut go_rx)).await;
                    // Readers integrate after the replay (as `fanout --writers` does).
                    c.defer = ops.is_none();
                    let mut sent = 0;
                    if let Some(ops) = ops {
                        // Typists start at staggered times, so their bursts do not line up.
                        let stagger = Duration::from_millis(SmallRng::seed_from_u64(idx as u64).gen_range(0..500));
                        let start = tokio::time::Instant::now() + stagger;
                        for (i, at) in schedule.iter().enumerate() {
                            let when = start + *at;
                            c.idle_until(tokio::time::sleep_until(when)).await;
                            let u = c.patch(&t.txns[i].patches);
                            ops.mark_sent(i, reg.now_ns());
                            if c.send_update(u).await.is_err() {
                                break;
                            }
                            sent += 1;
                        }
                        let clock = c.state_vector().get(&ClientID::new(client::client_id(idx)));
                        finals.clocks[idx].store(clock, Ordering::Release);
                    }
                    let _ = done_tx.send(());
                    let mut all = finals.all.clone();
                    c.idle_until(wait_true(&mut all)).await;
                    c.drain(DRAIN_QUIET).await;
                    drained.wait().await;
                    c.catch_up();
                    let target = finals.target(&[d * per]);
                    let deadline = tokio::time::Instant::now() + converge_timeout;
                    // A reader that still differs at the deadline is reported by the check.
                    let complete = c.settle(&target, deadline).await;
                    c.settle_text(&target, &expected, deadline).await;
                    Some(Report::from(c, d, complete, sent))
                }));
            }
        }
        drop((ready_tx, done_tx));
        all_ready(&mut ready_rx, k * per).await?;
        let cpu = CpuMeter::start(target.args.server_pid);
        let t0 = Instant::now();
        go_tx.send_replace(true);
        for _ in 0..k * per {
            done_rx.recv().await.context("a client task ended early")?;
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu_json = cpu.stop();
        finals_tx.send_replace(true);
        let mut reports = Vec::new();
        for task in tasks {
            if let Some(r) = task.await? {
                reports.push(r);
            }
        }
        let mut lat = Latencies::default();
        let (mut sent, mut late) = (0, 0);
        for r in &mut reports {
            lat.extend(std::mem::take(&mut r.latencies));
            sent += r.sent;
            late += r.late_samples;
        }
        let s = lat.summary();
        let step_failure = converge(&reports, &docs, &|_| Some(expected.to_string()));
        let pass = step_failure.is_none() && s.p99 <= a.p99_ms;
        human.push_str(&format!(
            "  {k:>3} typists: {} — {} (client CPU {} cores, server {} cores)\n",
            s.human(),
            if pass { "pass" } else { "FAIL" },
            cpu_json["client_cores"],
            cpu_json["server_cores"]
        ));
        steps.push(json!({
            "typists": k, "readers": k * a.readers, "latency": s.json(), "sent": sent,
            "sent_per_s": round3(sent as f64 / wall), "delivered_per_s": round3(s.samples as f64 / wall),
            "late_samples": late,
            "pass": pass, "cpu": cpu_json,
        }));
        if step_failure.is_some() {
            failure = step_failure;
            break;
        }
        if !pass {
            break;
        }
        best = k;
    }
    human.push_str(&format!("  max typists with p99 ≤ {} ms: {best}", a.p99_ms));
    let json = json!({
        "txns": n, "speed": a.speed, "readers_per_typist": a.readers, "p99_bound_ms": a.p99_ms,
        "max_typists": best, "steps": steps,
    });
    Ok(Outcome { json, human, failure })
}
