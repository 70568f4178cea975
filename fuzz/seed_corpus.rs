//! Writes the seed corpus of the `frame` fuzz target (`fuzz/corpus/frame/`) and the
//! document it is applied to (`fuzz/seed_doc.bin`), from real y-websocket frames:
//! updates from the automerge-paper editing trace, sync step 1 and 2, awareness, auth.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus
//!
//! The trace is read from `../shared/data/automerge-paper.json.gz` (or `VELLUM_TRACES`, a
//! folder or the file). Trace: "automerge-paper" by Martin Kleppmann and Alastair R.
//! Beresford, from github.com/automerge/automerge-perf, CC BY 4.0.
//! Output is deterministic: rerunning rewrites the same files.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use yrs::encoding::write::Write;
use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Array, Doc, Map, ReadTxn, StateVector, Text, Transact, Update, WriteTxn, XmlFragment, XmlTextPrelim};

const TRACE_FILE: &str = "automerge-paper.json.gz";
const TEXT: &str = "content";
/// Updates in `seed_doc.bin`; corpus updates from here on follow it directly.
const SEED_PREFIX: usize = 1000;
/// Updates of the trace used at all.
const USED: usize = 3000;

#[derive(Deserialize)]
struct TraceFile {
    txns: Vec<TraceTxn>,
}

#[derive(Deserialize)]
struct TraceTxn {
    patches: Vec<(u32, u32, String)>,
}

fn trace_path() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut candidates = vec![here.join("../../shared/data").join(TRACE_FILE)];
    if let Ok(p) = std::env::var("VELLUM_TRACES") {
        let p = PathBuf::from(p);
        candidates.push(if p.is_dir() { p.join(TRACE_FILE) } else { p });
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{TRACE_FILE} not found in ../shared/data nor at VELLUM_TRACES"))
}

/// The first `USED` updates of the trace, one transaction per patch, as client 1.
fn trace_updates() -> Vec<Vec<u8>> {
    let mut json = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(trace_path()).expect("open trace"))
        .read_to_string(&mut json)
        .expect("gunzip trace");
    let trace: TraceFile = serde_json::from_str(&json).expect("trace JSON");
    let doc = Doc::with_client_id(1);
    let text = doc.get_or_insert_text(TEXT);
    let mut out = Vec::new();
    for (pos, del, ins) in trace.txns.iter().flat_map(|t| &t.patches).take(USED) {
        let mut t = doc.transact_mut();
        if *del > 0 {
            text.remove_range(&mut t, *pos, *del);
        }
        if !ins.is_empty() {
            text.insert(&mut t, *pos, ins);
        }
        out.push(t.encode_update_v1());
    }
    out
}

fn doc_from(updates: &[Vec<u8>]) -> Doc {
    let doc = Doc::with_client_id(99);
    {
        let mut txn = doc.transact_mut();
        for u in updates {
            txn.apply_update(Update::decode_v1(u).expect("decodes"))
                .expect("applies");
        }
    }
    doc
}

fn sync(msg: SyncMessage) -> Vec<u8> {
    Message::Sync(msg).encode_v1()
}

/// An awareness message with entries in the given order (yrs' own encoder goes through a
/// HashMap, whose order changes from run to run).
fn awareness(entries: &[(u64, u32, &str)]) -> Vec<u8> {
    let mut inner = Vec::new();
    inner.write_var(entries.len());
    for (client, clock, json) in entries {
        inner.write_var(*client);
        inner.write_var(*clock);
        inner.write_string(json);
    }
    let mut frame = Vec::new();
    frame.write_var(1u8);
    frame.write_buf(&inner);
    frame
}

fn main() {
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let updates = trace_updates();
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();

    // The document the target starts from.
    let seed_doc = doc_from(&updates[..SEED_PREFIX]);
    let seed_state = seed_doc.transact().encode_state_as_update_v1(&StateVector::default());
    std::fs::write(fuzz_dir.join("seed_doc.bin"), &seed_state).expect("write seed_doc.bin");
    let seed_sv = seed_doc.transact().state_vector();

    // Single updates: the ones right after the seed (they integrate), then a sample of
    // later ones (they wait for missing predecessors), and a few from before (known).
    for i in SEED_PREFIX..SEED_PREFIX + 30 {
        seeds.push((format!("update-{i:05}"), sync(SyncMessage::Update(updates[i].clone()))));
    }
    for i in (SEED_PREFIX + 30..USED).step_by(100) {
        seeds.push((format!("update-{i:05}"), sync(SyncMessage::Update(updates[i].clone()))));
    }
    for i in [0, 1, 2, 10, 500, 999] {
        seeds.push((format!("update-{i:05}"), sync(SyncMessage::Update(updates[i].clone()))));
    }
    // Merged runs of updates (what a client that was offline sends).
    for (a, b) in [
        (SEED_PREFIX, SEED_PREFIX + 50),
        (SEED_PREFIX, SEED_PREFIX + 400),
        (1500, 1700),
        (2500, USED),
    ] {
        let merged = yrs::merge_updates_v1(&updates[a..b]).expect("merge");
        seeds.push((format!("merged-{a:05}-{b:05}"), sync(SyncMessage::Update(merged))));
    }

    // Sync step 2: whole states and diffs against the seed's state vector.
    for n in [0, 10, 200, SEED_PREFIX, 2000] {
        let state = doc_from(&updates[..n])
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        seeds.push((format!("step2-state-{n:05}"), sync(SyncMessage::SyncStep2(state))));
    }
    for n in [SEED_PREFIX + 1, SEED_PREFIX + 100, USED] {
        let diff = doc_from(&updates[..n]).transact().encode_diff_v1(&seed_sv);
        seeds.push((format!("step2-diff-{n:05}"), sync(SyncMessage::SyncStep2(diff))));
    }

    // Sync step 1: empty, the seed's, and one naming several clients.
    seeds.push((
        "step1-empty".into(),
        sync(SyncMessage::SyncStep1(StateVector::default())),
    ));
    seeds.push(("step1-seed".into(), sync(SyncMessage::SyncStep1(seed_sv.clone()))));

    // Another client editing concurrently on top of the seed: text, map, array, XML,
    // deletes of the trace's characters, and formatting.
    let other = Doc::with_client_id(2);
    other
        .transact_mut()
        .apply_update(Update::decode_v1(&seed_state).expect("decodes"))
        .expect("applies");
    let text = other.get_or_insert_text(TEXT);
    let ops: Vec<(&str, Box<dyn Fn(&mut yrs::TransactionMut)>)> = vec![
        ("text-insert", Box::new(|t| text.insert(t, 3, "concurrent"))),
        ("text-delete", Box::new(|t| text.remove_range(t, 0, 5))),
        (
            "text-format",
            Box::new(|t| {
                let attrs = yrs::types::Attrs::from([("bold".into(), true.into())]);
                text.format(t, 1, 4, attrs)
            }),
        ),
        (
            "map",
            Box::new(|t| {
                let map = t.get_or_insert_map("meta");
                map.insert(t, "title", "A Conflict-Free Replicated JSON Datatype");
                map.insert(t, "n", 42);
            }),
        ),
        (
            "array",
            Box::new(|t| {
                let arr = t.get_or_insert_array("list");
                arr.insert_range(t, 0, [1, 2, 3]);
                arr.remove_range(t, 1, 1);
            }),
        ),
        (
            "xml",
            Box::new(|t| {
                let frag = t.get_or_insert_xml_fragment("prosemirror");
                frag.insert(t, 0, XmlTextPrelim::new("hello"));
            }),
        ),
    ];
    let before = other.transact().state_vector();
    for (name, op) in &ops {
        let mut t = other.transact_mut();
        op(&mut t);
        seeds.push((
            format!("client2-{name}"),
            sync(SyncMessage::Update(t.encode_update_v1())),
        ));
    }
    let all = other.transact().encode_diff_v1(&before);
    seeds.push(("client2-all".into(), sync(SyncMessage::Update(all.clone()))));
    let mixed_sv = other.transact().state_vector();
    seeds.push(("step1-two-clients".into(), sync(SyncMessage::SyncStep1(mixed_sv))));
    // The same update in v2 encoding inside a v1 frame (a confused client).
    let all_v2 = Update::decode_v1(&all).expect("decodes").encode_v2();
    seeds.push(("client2-all-v2".into(), sync(SyncMessage::Update(all_v2))));

    // Awareness, awareness query, auth.
    let user = r##"{"user":{"name":"Ada","color":"#30bced"},"cursor":{"anchor":{"type":null,"tname":"content","item":{"client":1,"clock":4},"assoc":0},"head":null}}"##;
    seeds.push(("awareness-user".into(), awareness(&[(7, 1, user)])));
    seeds.push(("awareness-null".into(), awareness(&[(7, 2, "null")])));
    seeds.push((
        "awareness-two".into(),
        awareness(&[(7, 3, r#"{"user":{"name":"A"}}"#), (8, 1, "{}")]),
    ));
    seeds.push((
        "awareness-big-clock".into(),
        awareness(&[(u64::from(u32::MAX), u32::MAX, "{}")]),
    ));
    seeds.push(("awareness-query".into(), Message::AwarenessQuery.encode_v1()));
    seeds.push((
        "auth-denied".into(),
        Message::Auth(Some("read-only".into())).encode_v1(),
    ));
    seeds.push(("auth-granted".into(), Message::Auth(None).encode_v1()));

    // Refused frames: empty, unknown type, truncated, two messages in one frame.
    let one = sync(SyncMessage::Update(updates[SEED_PREFIX].clone()));
    seeds.push(("bad-empty".into(), Vec::new()));
    seeds.push(("bad-unknown-type".into(), vec![9, 1, 0]));
    seeds.push(("bad-truncated".into(), one[..one.len() / 2].to_vec()));
    seeds.push(("bad-two-messages".into(), [one.clone(), one].concat()));

    let corpus = fuzz_dir.join("corpus/frame");
    if corpus.exists() {
        std::fs::remove_dir_all(&corpus).expect("clear corpus/frame");
    }
    std::fs::create_dir_all(&corpus).expect("create corpus/frame");
    let mut bytes = 0;
    for (name, data) in &seeds {
        bytes += data.len();
        std::fs::write(corpus.join(name), data).expect("write seed");
    }
    println!(
        "wrote {} seeds ({bytes} bytes) to {} and seed_doc.bin ({} bytes)",
        seeds.len(),
        corpus.display(),
        seed_state.len()
    );
}
