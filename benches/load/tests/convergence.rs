//! The load tool's convergence check against a tiny in-test y-websocket server: a correct
//! relay passes, and deliberately broken ones (dropping or corrupting some of the updates
//! each client receives from the others) make the tool report a divergence and exit
//! non-zero. Each case runs with every client writing, and with `--writers 2` (the third
//! client a reader that integrates only after the sending stops). A stub that answers sync
//! step 1 with an empty document and sends the content a moment later (as the reference
//! server does with its LevelDB persistence) is a correct server too: `cold-load` must wait
//! for the content rather than end the open, or fail, at sync step 2.

use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use yrs::encoding::read::Cursor;
use yrs::sync::{Message as YMessage, MessageReader, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, Transact, Update};

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// Every 4th update a connection gets from the others is not sent.
    Drop,
    /// Every 3rd update a connection gets from the others arrives with one inserted
    /// character changed.
    Corrupt,
    /// Correct, but sync step 2 is empty and the document follows 30 ms later as an
    /// update message.
    LateState,
}

struct Stub {
    doc: Doc,
    conns: Mutex<Vec<Conn>>,
    fault: Fault,
}

struct Conn {
    no: usize,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    /// Updates from the other clients relayed to this one. (Counting all updates
    /// instead let the faults fall, in lockstep, only on a client's own echoes, which
    /// it ignores: the broken server then looked correct.)
    relayed: usize,
}

/// Starts the stub on a free loopback port; every path is the same room.
async fn start(fault: Fault) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stub = Arc::new(Stub {
        doc: Doc::new(),
        conns: Mutex::new(Vec::new()),
        fault,
    });
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((tcp, _)) = listener.accept().await {
            let stub = stub.clone();
            let no = n;
            n += 1;
            tokio::spawn(async move { serve(stub, no, tcp).await });
        }
    });
    format!("ws://{addr}")
}

async fn serve(stub: Arc<Stub>, no: usize, tcp: tokio::net::TcpStream) {
    let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if sink.send(Message::Binary(f.into())).await.is_err() {
                break;
            }
        }
    });
    let sv = stub.doc.transact().state_vector();
    let _ = tx.send(YMessage::Sync(SyncMessage::SyncStep1(sv)).encode_v1());
    stub.conns.lock().unwrap().push(Conn {
        no,
        tx: tx.clone(),
        relayed: 0,
    });
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Binary(frame) = msg else { continue };
        let mut decoder = DecoderV1::new(Cursor::new(&frame));
        for m in MessageReader::new(&mut decoder) {
            match m {
                Ok(YMessage::Sync(SyncMessage::SyncStep1(sv))) => {
                    let diff = stub.doc.transact().encode_diff_v1(&sv);
                    if stub.fault == Fault::LateState {
                        let empty = Doc::new().transact().encode_diff_v1(&sv);
                        let _ = tx.send(YMessage::Sync(SyncMessage::SyncStep2(empty)).encode_v1());
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
                            let _ = tx.send(YMessage::Sync(SyncMessage::Update(diff)).encode_v1());
                        });
                        continue;
                    }
                    let _ = tx.send(YMessage::Sync(SyncMessage::SyncStep2(diff)).encode_v1());
                }
                Ok(YMessage::Sync(SyncMessage::SyncStep2(u) | SyncMessage::Update(u))) => relay(&stub, no, u),
                _ => {}
            }
        }
    }
}

fn relay(stub: &Stub, from: usize, u: Vec<u8>) {
    let update = Update::decode_v1(&u).unwrap();
    if update.is_empty() {
        return;
    }
    stub.doc.transact_mut().apply_update(update).unwrap();
    let frame = YMessage::Sync(SyncMessage::Update(u)).encode_v1();
    for c in stub.conns.lock().unwrap().iter_mut() {
        let mut f = frame.clone();
        if c.no != from {
            c.relayed += 1;
            match stub.fault {
                Fault::Drop if c.relayed.is_multiple_of(4) => continue,
                Fault::Corrupt if c.relayed.is_multiple_of(3) => corrupt(&mut f),
                _ => {}
            }
        }
        let _ = c.tx.send(f);
    }
}

/// Changes the `<` that opens an inserted marker (`<iiiii.sssss>`) into `!`.
fn corrupt(frame: &mut [u8]) {
    if let Some(i) = frame.windows(2).position(|w| w[0] == b'<' && w[1].is_ascii_digit()) {
        frame[i] = b'!';
    }
}

/// The tool's runs against a fresh stub with `fault`: every client writing, then one
/// reader. Yields the exit status and output of each.
async fn runs(fault: Fault) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    for writers in ["3", "2"] {
        let url = start(fault).await;
        out.push(run_tool(&url, writers).await);
    }
    out
}

async fn run_tool(url: &str, writers: &str) -> (bool, String) {
    let args = format!(
        "--converge-timeout-ms 1500 --label stub fanout --clients 3 --writers {writers} --rate 20 --duration 1.5"
    );
    let (ok, out) = vellum_load(url, &args, None).await;
    (ok, format!("--writers {writers}:\n{out}"))
}

/// Runs the tool against `url` with `args` (split at spaces), and the traces in `traces`
/// if given; its exit status, and its stdout and stderr together.
async fn vellum_load(url: &str, args: &str, traces: Option<&std::path::Path>) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_vellum-load"));
    cmd.args(["--url", url]).args(args.split(' '));
    if let Some(dir) = traces {
        cmd.env("VELLUM_TRACES", dir);
    }
    let out = cmd.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.success(), format!("{stdout}\n{stderr}"))
}

/// The JSON line of a run's output.
fn json_line(out: &str) -> serde_json::Value {
    let line = out
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line:\n{out}"));
    serde_json::from_str(line).unwrap()
}

#[tokio::test]
async fn a_correct_server_converges() {
    for (ok, out) in runs(Fault::None).await {
        assert!(ok, "{out}");
        assert!(out.contains("\"converged\":true"), "{out}");
        assert_every_delivery_measured(&out);
    }
    // Unpaced too, as `ceiling` runs: readers integrate after the run, so every send
    // instant must still be known then (BENCHMARKS.md, change 33).
    let url = start(Fault::None).await;
    let (_, out) = vellum_load(
        &url,
        "--label stub fanout --clients 3 --writers 2 --rate 0 --window 16 --duration 1",
        None,
    )
    .await;
    assert!(out.contains("\"converged\":true"), "{out}");
    assert_every_delivery_measured(&out);
}

/// Each update reaches the 2 other clients of a 3-client run, and each arrival is a
/// latency sample: none is lost for want of its send instant, and none was stamped
/// after its receiver stopped reading to integrate (BENCHMARKS.md, change 34).
fn assert_every_delivery_measured(out: &str) {
    let v = json_line(out);
    let (sent, samples) = (v["sent"].as_u64().unwrap(), v["latency"]["samples"].as_u64().unwrap());
    assert!(sent > 0, "{v}");
    assert_eq!(samples, sent * 2, "{v}");
    assert_eq!(v["late_samples"].as_u64(), Some(0), "{v}");
}

#[tokio::test]
async fn dropped_updates_are_a_divergence() {
    for (ok, out) in runs(Fault::Drop).await {
        assert!(!ok, "the tool passed a server that drops updates:\n{out}");
        assert!(out.contains("DIVERGED"), "{out}");
        assert!(out.contains("did not receive every update"), "{out}");
        assert!(out.contains("\"converged\":false"), "{out}");
    }
}

#[tokio::test]
async fn corrupted_updates_are_a_divergence() {
    for (ok, out) in runs(Fault::Corrupt).await {
        assert!(!ok, "the tool passed a server that corrupts updates:\n{out}");
        assert!(out.contains("DIVERGED") && out.contains("at offset"), "{out}");
    }
}

/// A small trace in the format of `../shared/data` (see the README there), so that the
/// test does not need the real ones: 200 transactions typing and deleting.
fn tiny_trace_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vellum-load-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut txns = Vec::new();
    let mut len = 0u32;
    for i in 0..200u32 {
        let patch = if i % 7 == 6 {
            len -= 1;
            serde_json::json!([len / 2, 1, ""])
        } else {
            len += 1;
            serde_json::json!([len / 3, 0, char::from(b'a' + (i % 26) as u8).to_string()])
        };
        txns.push(serde_json::json!({"time": "2020-01-01T00:00:00.000Z", "patches": [patch]}));
    }
    let trace = serde_json::json!({"startContent": "", "endContent": "", "txns": txns});
    let file = std::fs::File::create(dir.join("automerge-paper.json.gz")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, trace.to_string().as_bytes()).unwrap();
    gz.finish().unwrap();
    dir
}

#[tokio::test]
async fn cold_load_waits_for_content_sent_after_sync_step_2() {
    let traces = tiny_trace_dir();
    for fault in [Fault::None, Fault::LateState] {
        let url = start(fault).await;
        let (_, out) = vellum_load(&url, "--label stub cold-load --patches 0 --opens 2", Some(&traces)).await;
        let v = json_line(&out);
        assert_eq!(v["converged"], true, "{out}");
        let numbers = |key: &str| -> Vec<f64> {
            let a = v[key].as_array().unwrap_or_else(|| panic!("no {key}:\n{out}"));
            a.iter().map(|n| n.as_f64().unwrap()).collect()
        };
        let (late, opens) = (numbers("cold_updates_after_sync"), numbers("cold_open_ms"));
        if fault == Fault::LateState {
            assert!(late.iter().all(|&n| n >= 1.0), "{out}");
            assert!(
                opens.iter().all(|&ms| ms >= 30.0),
                "an open ended before the content came:\n{out}"
            );
        } else {
            assert_eq!(late, [0.0, 0.0], "{out}");
        }
    }
    std::fs::remove_dir_all(traces).unwrap();
}
