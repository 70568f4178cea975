//! The group-commit writer: one task appends the updates of every room.
//!
//! While one batch commits, new updates queue up; the next batch takes them all
//! (up to `max_batch`) in one transaction with multi-row inserts. Replies go out in
//! submission order, so a room's updates become durable in the order it sent them.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{Notify, mpsc, oneshot};
use uuid::Uuid;

use crate::store::{Fold, HeldConnection, NewUpdate, Store};

/// The sequence number the update got, or why it was not stored.
pub type WriteResult = Result<i64, WriteFailed>;

/// Why an update was not stored.
#[derive(Debug, Clone)]
pub struct WriteFailed {
    pub message: String,
    /// The database could not be used right now (down, locked, full): the client keeps its
    /// edit and sends it again once it reconnects; nothing is wrong with the document.
    pub unavailable: bool,
}

impl WriteFailed {
    pub fn other(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            unavailable: false,
        }
    }
}

impl std::fmt::Display for WriteFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// How long the group commit keeps its connection with nothing to write.
const KEEP_IDLE: std::time::Duration = std::time::Duration::from_millis(250);

struct Job {
    document_id: Uuid,
    data: Bytes,
    author: Option<Uuid>,
    reply: oneshot::Sender<WriteResult>,
}

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    /// Asks the task to give its kept connection back now (at shutdown).
    release: Arc<Notify>,
}

impl Writer {
    pub fn spawn(store: Store, max_batch: usize) -> Self {
        // Bounded: when the database falls behind, rooms wait here instead of
        // queueing without limit.
        let (tx, rx) = mpsc::channel(max_batch * 8);
        let release = Arc::new(Notify::new());
        tokio::spawn(run(store, rx, max_batch, release.clone()));
        Self { tx, release }
    }

    /// Gives the kept connection back to the pool now rather than after [`KEEP_IDLE`]:
    /// closing the pool waits for it.
    pub fn release_connection(&self) {
        self.release.notify_one();
    }

    /// Queues an update; the receiver resolves once it is committed, with its sequence
    /// number (or failed).
    pub async fn append(&self, document_id: Uuid, data: Bytes, author: Option<Uuid>) -> oneshot::Receiver<WriteResult> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            document_id,
            data,
            author,
            reply,
        };
        if let Err(mpsc::error::SendError(job)) = self.tx.send(job).await {
            let _ = job.reply.send(Err(WriteFailed::other("the writer has stopped")));
        }
        rx
    }
}

/// Commits what is queued, a batch at a time. The pooled connection is kept while
/// batches follow one another, and given back [`KEEP_IDLE`] after the last:
/// sqlx pings a connection each time it goes back to the pool (a round trip to SQLite's
/// worker thread, or to the database server), and the next batch would wait for the
/// pool again (benches/HISTORY.md, change 36). On SQLite the kept connection has a larger page
/// cache (`database.sqlite_commit_cache_kib`): with many documents edited at once every
/// commit touches a page of the log per document, and the pooled connections' caches
/// are small (benches/HISTORY.md, change 38). With a pool of one connection nothing is kept: snapshots,
/// loads and session rows need it too, and on SQLite a snapshot holding the write turn
/// would wait for it while this task, holding it, waits for the turn.
///
/// On SQLite a group commit of several documents appends to the update log's recent
/// rows, and this task moves them into the log proper a step at a time between commits
/// (`Store::fold_update_log_on`): once there are [`crate::store::FOLD_AT_ROWS`], and
/// whenever it has been idle for [`KEEP_IDLE`]; and all at once at start (rows a
/// previous run left).
async fn run(store: Store, mut rx: mpsc::Receiver<Job>, max_batch: usize, release: Arc<Notify>) {
    let mut batch = Vec::with_capacity(max_batch);
    let keep = store.pool_size() >= 2;
    let mut held: Option<HeldConnection> = None;
    fold(&store, &mut held, Fold::Any, false).await;
    loop {
        let received = match held.take() {
            None => rx.recv_many(&mut batch, max_batch).await,
            Some(conn) => {
                let woke = tokio::select! {
                    n = rx.recv_many(&mut batch, max_batch) => Woke::Jobs(n),
                    _ = tokio::time::sleep(KEEP_IDLE) => Woke::Idle,
                    _ = release.notified() => Woke::Release,
                };
                held = Some(conn);
                match woke {
                    Woke::Jobs(n) => n,
                    Woke::Idle => {
                        // The recent rows move a step at a time while nothing else comes;
                        // then the connection goes back.
                        while rx.is_empty() && fold(&store, &mut held, Fold::Step, true).await {}
                        if rx.is_empty()
                            && let Some(conn) = held.take()
                        {
                            store.release(conn).await;
                        }
                        continue;
                    }
                    Woke::Release => {
                        if let Some(conn) = held.take() {
                            store.release(conn).await;
                        }
                        continue;
                    }
                }
            }
        };
        if received == 0 {
            break;
        }
        if keep && held.is_none() {
            // On an error here the batch goes through a plain pooled connection, whose
            // error (if any) is the batch's.
            held = store.hold_commit_connection().await.ok();
        }
        let rows: Vec<NewUpdate<'_>> = batch
            .iter()
            .map(|j| NewUpdate {
                document_id: j.document_id,
                data: &j.data,
                author_id: j.author,
            })
            .collect();
        let started = std::time::Instant::now();
        let result = store.append_updates_on(&mut held, &rows).await.map_err(|e| {
            let unavailable = crate::error::unavailable_cause(&e);
            tracing::error!(error = ?e, rows = rows.len(), unavailable, "group commit failed");
            if unavailable {
                // A held connection to a database that went away is dead: the next batch
                // takes a new one from the pool.
                held = None;
            }
            WriteFailed {
                message: format!("{e:#}"),
                unavailable,
            }
        });
        crate::metrics::group_commit(rows.len(), started.elapsed(), result.is_ok());
        store.note_writes_failing(result.as_ref().is_err_and(|e| e.unavailable));
        drop(rows);
        match result {
            Ok(seqs) => {
                for (job, seq) in batch.drain(..).zip(seqs) {
                    let _ = job.reply.send(Ok(seq));
                }
            }
            Err(e) => {
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
        fold(&store, &mut held, Fold::IfDue, keep).await;
    }
    if let Some(conn) = held.take() {
        store.release(conn).await;
    }
}

/// What woke the writer while it kept its connection.
enum Woke {
    Jobs(usize),
    Idle,
    Release,
}

/// Moves the update log's recent rows (SQLite), logging a failure: the rows stay where
/// they are, read from there, and the move is tried again later. Unless `keep`, the
/// connection goes back to the pool first and after: the move waits for the write turn,
/// and with a pool of one a snapshot holding the turn may be waiting for the connection.
/// Returns whether there is more to move.
async fn fold(store: &Store, held: &mut Option<HeldConnection>, when: Fold, keep: bool) -> bool {
    if !keep && let Some(conn) = held.take() {
        store.release(conn).await;
    }
    let more = match store.fold_update_log_on(held, when).await {
        Ok(folded) => {
            if folded.deleted > 0 {
                tracing::debug!(rows = folded.deleted, "moved the update log's recent rows");
            }
            folded.more
        }
        Err(e) => {
            tracing::error!(error = ?e, "could not move the update log's recent rows; they stay readable where they are");
            false
        }
    };
    if !keep && let Some(conn) = held.take() {
        store.release(conn).await;
    }
    more
}
