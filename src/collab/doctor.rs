//! `vellum doctor`: finds documents whose stored state is damaged (a snapshot or an
//! update that does not decode or apply, or on which yrs panics) and, when asked, sets
//! the damaged pieces aside so the document opens again.
//!
//! A damaged document is quarantined by the rooms on their own (`Damaged`: it cannot be
//! opened, every other document is unaffected); this is how an operator sees which and
//! why, and repairs it. Nothing is deleted: a piece set aside moves to `set_aside_rows`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use uuid::Uuid;
use yrs::updates::decoder::Decode;
use yrs::{Doc, Transact, Update};

use crate::store::{Store, StoredPiece, StoredState};

/// One damaged piece of one document.
#[derive(Debug, Clone)]
pub struct Finding {
    pub document_id: Uuid,
    pub piece: StoredPiece,
    pub problem: String,
    /// What `--repair` did about it, if it ran.
    pub repaired: Option<String>,
}

/// What a walk over the documents found.
#[derive(Debug, Default)]
pub struct Report {
    pub documents: usize,
    pub findings: Vec<Finding>,
    /// Documents that still do not open after the repair (or without one).
    pub still_damaged: Vec<Uuid>,
}

/// The damaged pieces of a stored state, in order. Each piece is decoded and applied on
/// its own, in order, to one document; a piece that fails is skipped (as a repair would
/// set it aside) and the walk goes on, so one call finds them all. Blocking.
pub fn damaged_pieces(state: &StoredState) -> Vec<(StoredPiece, String)> {
    let pieces: Vec<(StoredPiece, &[u8])> = state
        .snapshot
        .iter()
        .map(|(s, seq)| (StoredPiece::Snapshot(*seq), s.as_slice()))
        .chain(
            state
                .updates
                .iter()
                .map(|(seq, u)| (StoredPiece::Update(*seq), u.as_slice())),
        )
        .collect();
    let mut found = Vec::new();
    let mut good: Vec<&[u8]> = Vec::new();
    let mut doc = Doc::new();
    for (piece, bytes) in pieces {
        let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
            let update = Update::decode_v1(bytes).map_err(|e| format!("does not decode: {e}"))?;
            doc.transact_mut()
                .apply_update(update)
                .map_err(|e| format!("does not apply: {e}"))
        }))
        .unwrap_or_else(|_| Err("yrs panicked applying it".into()));
        match outcome {
            Ok(()) => good.push(bytes),
            Err(problem) => {
                found.push((piece, problem));
                // A failed or panicking apply may have left the document half changed:
                // start again from the good pieces.
                doc = Doc::new();
                let mut txn = doc.transact_mut();
                for b in &good {
                    if let Ok(u) = Update::decode_v1(b) {
                        let _ = txn.apply_update(u);
                    }
                }
            }
        }
    }
    found
}

/// Walks every document (`only`: one of them). With `repair`, each damaged piece is set
/// aside: an update is removed from the log, a snapshot is replaced by the newest
/// version's state (or removed when there is none); then the document is loaded again to
/// confirm it opens. `progress(done, total)` after each document.
pub async fn examine(
    store: &Store,
    only: Option<Uuid>,
    repair: bool,
    mut progress: impl FnMut(usize, usize),
) -> anyhow::Result<Report> {
    let ids = match only {
        Some(id) => vec![id],
        None => store.all_document_ids().await?,
    };
    let mut report = Report {
        documents: ids.len(),
        ..Report::default()
    };
    for (done, id) in ids.iter().copied().enumerate() {
        let state = store.load_document_state(id).await?;
        let (pieces, state) = tokio::task::spawn_blocking(move || (damaged_pieces(&state), state)).await?;
        if !pieces.is_empty() {
            let mut findings = Vec::new();
            for (piece, problem) in pieces {
                let repaired = if repair {
                    Some(set_aside(store, id, piece, &state, &problem).await?)
                } else {
                    None
                };
                findings.push(Finding {
                    document_id: id,
                    piece,
                    problem,
                    repaired,
                });
            }
            report.findings.extend(findings);
            if !repair || super::room::load_from(store, id).await.is_err() {
                report.still_damaged.push(id);
            }
        }
        progress(done + 1, ids.len());
    }
    Ok(report)
}

async fn set_aside(
    store: &Store,
    id: Uuid,
    piece: StoredPiece,
    state: &StoredState,
    problem: &str,
) -> anyhow::Result<String> {
    let reason = format!("vellum doctor: {problem}");
    match piece {
        StoredPiece::Update(seq) => {
            let data = state
                .updates
                .iter()
                .find(|(s, _)| *s == seq)
                .map(|(_, d)| d.as_slice())
                .unwrap_or_default();
            store.set_aside(id, piece, data, &reason, None).await?;
            Ok(format!("update {seq} set aside; the document opens without it"))
        }
        StoredPiece::Snapshot(seq) => {
            let data = state.snapshot.as_ref().map(|(d, _)| d.as_slice()).unwrap_or_default();
            let newest = store.list_versions(id, None, 1).await?.into_iter().next();
            let replacement = match &newest {
                Some(v) => store.version_state(v.id).await?,
                None => None,
            };
            store
                .set_aside(id, piece, data, &reason, replacement.as_deref())
                .await?;
            Ok(match (newest, replacement) {
                (Some(v), Some(_)) => format!(
                    "snapshot (covering updates up to {seq}) set aside and replaced by version {}'s state; \
                     edits made after version {} and before the snapshot are not recovered",
                    v.number, v.number
                ),
                _ => format!(
                    "snapshot (covering updates up to {seq}) set aside; the document has no saved version \
                     to start from, so only the updates after it remain"
                ),
            })
        }
    }
}

/// How a piece is named in reports.
pub fn describe(piece: StoredPiece) -> String {
    match piece {
        StoredPiece::Snapshot(seq) => format!("snapshot (up to update {seq})"),
        StoredPiece::Update(seq) => format!("update {seq}"),
    }
}
