//! The load tool's convergence check against a tiny in-test y-websocket server: a correct
//! relay passes, and deliberately broken ones (dropping or corrupting some of the updates
//! each client receives from the others) make the tool report a divergence and exit
//! non-zero. Each case runs with
//! every client writing, and with `--writers 2` (the third client a reader that integrates
//! only after the sending stops).

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
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vellum-load"))
        .args(["--url", url, "--converge-timeout-ms", "1500", "--label", "stub"])
        .args(["fanout", "--clients", "3", "--writers", writers])
        .args(["--rate", "20", "--duration", "1.5"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (
        out.status.success(),
        format!("--writers {writers}:\n{stdout}\n{stderr}"),
    )
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
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vellum-load"))
        .args(["--url", &url, "--label", "stub"])
        .args([
            "fanout",
            "--clients",
            "3",
            "--writers",
            "2",
            "--rate",
            "0",
            "--window",
            "16",
            "--duration",
            "1",
        ])
        .output()
        .await
        .unwrap();
    let out = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.contains("\"converged\":true"), "{out}");
    assert_every_delivery_measured(&out);
}

/// Each update reaches the 2 other clients of a 3-client run, and each arrival is a
/// latency sample: none is lost for want of its send instant, and none was stamped
/// after its receiver stopped reading to integrate (BENCHMARKS.md, change 34).
fn assert_every_delivery_measured(out: &str) {
    let line = out
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line:\n{out}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let (sent, samples) = (v["sent"].as_u64().unwrap(), v["latency"]["samples"].as_u64().unwrap());
    assert!(sent > 0, "{line}");
    assert_eq!(samples, sent * 2, "{line}");
    assert_eq!(v["late_samples"].as_u64(), Some(0), "{line}");
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
