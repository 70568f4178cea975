//! The `active_sessions` rows of this node's connections, written in batches by one
//! task: one commit for every connect and disconnect that queued up meanwhile, instead
//! of one commit (an fsync on SQLite) per connect and per disconnect, which capped a
//! reconnecting crowd at ~1,100 connections/s (benches/HISTORY.md, change 12).
//!
//! The rows say who is connected where (for other nodes and for cleanup after a crash);
//! nothing waits for them, so they may trail the sockets by one commit.

use std::collections::HashSet;

use tokio::sync::mpsc;
use uuid::Uuid;

use crate::store::{SessionRow, Store};

/// Most operations written in one transaction.
const MAX_BATCH: usize = 1024;

enum Op {
    Connected(Box<SessionRow>),
    Disconnected(Uuid),
}

#[derive(Clone)]
pub struct SessionLog {
    // Unbounded, but bounded in practice: at most two operations per connection, and
    // connections are capped by `collab.max_connections`.
    tx: mpsc::UnboundedSender<Op>,
}

impl SessionLog {
    pub fn spawn(store: Store) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, rx));
        Self { tx }
    }

    /// Records a connection. Its `disconnected` must come after this call.
    pub fn connected(&self, row: SessionRow) {
        let _ = self.tx.send(Op::Connected(Box::new(row)));
    }

    pub fn disconnected(&self, id: Uuid) {
        let _ = self.tx.send(Op::Disconnected(id));
    }
}

async fn run(store: Store, mut rx: mpsc::UnboundedReceiver<Op>) {
    let mut ops = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut ops, MAX_BATCH).await > 0 {
        let (inserts, deletes) = batch(ops.drain(..));
        match store.write_sessions(&inserts, &deletes).await {
            Ok(()) => {}
            // Shutting down: the server clears this node's sessions itself.
            Err(e) if matches!(e.downcast_ref(), Some(sqlx::Error::PoolClosed)) => return,
            Err(e) => tracing::warn!(error = ?e, rows = inserts.len() + deletes.len(), "could not record sessions"),
        }
    }
}

/// The rows to insert and the ids to delete for a batch of operations in order. A
/// session that came and went within the batch is not written at all.
fn batch(ops: impl Iterator<Item = Op>) -> (Vec<SessionRow>, Vec<Uuid>) {
    let (mut inserts, mut deletes) = (Vec::new(), Vec::new());
    for op in ops {
        match op {
            Op::Connected(row) => inserts.push(*row),
            Op::Disconnected(id) => deletes.push(id),
        }
    }
    let inserted: HashSet<Uuid> = inserts.iter().map(|r| r.id).collect();
    let gone: HashSet<Uuid> = deletes.iter().copied().filter(|id| inserted.contains(id)).collect();
    inserts.retain(|r| !gone.contains(&r.id));
    deletes.retain(|id| !gone.contains(id));
    (inserts, deletes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::now;

    fn row(id: Uuid) -> SessionRow {
        SessionRow {
            id,
            node_id: "n".into(),
            user_id: None,
            document_id: Uuid::nil(),
            connected_at: now(),
            heartbeat_at: now(),
        }
    }

    #[test]
    fn a_session_that_came_and_went_in_one_batch_is_not_written() {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let ops = vec![
            Op::Connected(Box::new(row(a))),
            Op::Connected(Box::new(row(b))),
            Op::Disconnected(c), // connected in an earlier batch
            Op::Disconnected(a),
        ];
        let (inserts, deletes) = batch(ops.into_iter());
        assert_eq!(inserts.iter().map(|r| r.id).collect::<Vec<_>>(), vec![b]);
        assert_eq!(deletes, vec![c]);
    }
}
