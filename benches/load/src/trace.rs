//! The editing traces in `../shared/data` (see the README there for their format):
//!
//! - `automerge-paper.json.gz`: *Editing trace by Martin Kleppmann and Alastair R.
//!   Beresford, from github.com/automerge/automerge-perf, CC BY 4.0*
//!   (https://creativecommons.org/licenses/by/4.0/);
//! - `seph-blog1.json.gz` (upstream's `ascii_only` variant): *Editing trace by Joseph
//!   Gentle, from github.com/josephg/editing-traces, CC BY 4.0*.
//!
//! Both are read from disk at run time; nothing of them is copied into this repository.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use yrs::{Doc, GetString, ReadTxn, Text, Transact};

use crate::client::TEXT;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    pub start_content: String,
    pub end_content: String,
    pub txns: Vec<Txn>,
}

#[derive(Deserialize)]
pub struct Txn {
    pub time: String,
    /// `[position, numDeleted, insertedText]` in code points (both traces are ASCII).
    pub patches: Vec<(u32, u32, String)>,
}

/// `--traces DIR` or `$VELLUM_TRACES`, else `../shared/data` next to the repository.
pub fn locate(dir: Option<&Path>, file: &str) -> anyhow::Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(d) = dir {
        candidates.push(d.to_path_buf());
    }
    if let Ok(d) = std::env::var("VELLUM_TRACES") {
        candidates.push(PathBuf::from(d));
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    candidates.push(manifest.join("../../../shared/data"));
    candidates.push(PathBuf::from("../shared/data"));
    for c in &candidates {
        let p = if c.is_file() { c.clone() } else { c.join(file) };
        if p.is_file() {
            return Ok(p);
        }
    }
    anyhow::bail!("{file} not found (looked in {candidates:?}); pass --traces DIR")
}

pub fn load(path: &Path) -> anyhow::Result<Trace> {
    let mut json = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).with_context(|| format!("{}", path.display()))?)
        .read_to_string(&mut json)?;
    let t: Trace = serde_json::from_str(&json).with_context(|| format!("parsing {}", path.display()))?;
    anyhow::ensure!(t.start_content.is_empty(), "trace does not start empty");
    Ok(t)
}

/// The text after the first `n` transactions, replayed on a plain string (the traces are
/// ASCII, so positions are byte offsets).
pub fn text_after(trace: &Trace, n: usize) -> String {
    if n >= trace.txns.len() {
        return trace.end_content.clone();
    }
    let mut s: Vec<u8> = Vec::new();
    for t in &trace.txns[..n] {
        for (pos, del, ins) in &t.patches {
            let (pos, del) = (*pos as usize, *del as usize);
            s.splice(pos..pos + del, ins.bytes());
        }
    }
    String::from_utf8(s).expect("ASCII trace")
}

/// The first `n` transactions as yrs v1 updates made by `client_id` (one transaction per
/// trace transaction), with the text they produce and the client's clock after each.
pub struct Updates {
    pub updates: Vec<Vec<u8>>,
    pub ends: Vec<u32>,
    pub inserts: Vec<bool>,
    pub text: String,
}

pub fn updates(trace: &Trace, n: usize, client_id: u64) -> Updates {
    let doc = Doc::with_client_id(client_id);
    let text = doc.get_or_insert_text(TEXT);
    let n = n.min(trace.txns.len());
    let mut out = Updates {
        updates: Vec::with_capacity(n),
        ends: Vec::with_capacity(n),
        inserts: Vec::with_capacity(n),
        text: String::new(),
    };
    let mut clock = 0u32;
    for t in &trace.txns[..n] {
        let mut txn = doc.transact_mut();
        let mut inserted = false;
        for (pos, del, ins) in &t.patches {
            if *del > 0 {
                text.remove_range(&mut txn, *pos, *del);
            }
            if !ins.is_empty() {
                text.insert(&mut txn, *pos, ins);
                clock += ins.len() as u32;
                inserted = true;
            }
        }
        out.updates.push(txn.encode_update_v1());
        out.ends.push(clock);
        out.inserts.push(inserted);
    }
    out.text = text.get_string(&doc.transact());
    debug_assert_eq!(
        doc.transact().state_vector().get(&yrs::block::ClientID::new(client_id)),
        clock
    );
    out
}

/// When each transaction is typed, relative to the first, from the trace's timestamps
/// (1-second resolution: transactions within one second are spread evenly over it),
/// with pauses longer than `max_gap` cut to `max_gap`, then divided by `speed`.
pub fn schedule(trace: &Trace, n: usize, max_gap: Duration, speed: f64) -> Vec<Duration> {
    let n = n.min(trace.txns.len());
    let secs: Vec<i64> = trace.txns[..n].iter().map(|t| epoch_secs(&t.time)).collect();
    let mut out = Vec::with_capacity(n);
    let mut base = 0.0f64; // compressed start of the current second
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j < n && secs[j] == secs[i] {
            j += 1;
        }
        let count = (j - i) as f64;
        for k in i..j {
            out.push(Duration::from_secs_f64((base + (k - i) as f64 / count) / speed));
        }
        if j < n {
            let gap = (secs[j] - secs[i]) as f64;
            base += gap.min(max_gap.as_secs_f64()).max(1.0_f64.min(gap));
        }
        i = j;
    }
    out
}

/// Seconds since 1970 of `YYYY-MM-DDTHH:MM:SS…` (UTC); 0 if it does not parse.
fn epoch_secs(t: &str) -> i64 {
    let num = |a: usize, b: usize| t.get(a..b).and_then(|s| s.parse::<i64>().ok());
    let (Some(y), Some(m), Some(d), Some(hh), Some(mm), Some(ss)) =
        (num(0, 4), num(5, 7), num(8, 10), num(11, 13), num(14, 16), num(17, 19))
    else {
        return 0;
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hh * 3600 + mm * 60 + ss
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch() {
        assert_eq!(epoch_secs("1970-01-02T00:00:01.000Z"), 86_401);
        assert_eq!(epoch_secs("2021-05-12T04:01:04.000Z"), 1_620_792_064);
    }

    #[test]
    fn schedule_spreads_and_caps() {
        let txn = |time: &str| Txn {
            time: time.into(),
            patches: vec![(0, 0, "a".into())],
        };
        let trace = Trace {
            start_content: String::new(),
            end_content: String::new(),
            txns: vec![
                txn("2021-05-12T04:01:04.000Z"),
                txn("2021-05-12T04:01:04.000Z"),
                txn("2021-05-12T04:01:05.000Z"),
                txn("2021-05-12T05:01:05.000Z"),
            ],
        };
        let s = schedule(&trace, 4, Duration::from_secs(2), 2.0);
        let ms: Vec<u128> = s.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![0, 250, 500, 1500]);
    }
}
