//! One room: an actor task that owns a document's yrs `Doc`, its connections and
//! awareness states. Everything a room does happens in its task, in order.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::Future;
use futures::stream::{FuturesOrdered, StreamExt};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc, oneshot};
use tokio::time::Instant;
use uuid::Uuid;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Transact, TransactionMut, Update, WriteTxn};

use super::awareness::{Awareness, REMOTE};
use super::outbox::{OutboxSender, SendError};
use super::protocol::{self, Incoming, close};
use super::writer::WriteResult;
use super::{Collab, ConnId, Fault, JoinError, Peer, Verdict};
use crate::bus::{BusEvent, BusMessage};
use crate::store::StoredState;

/// Documents larger than this are encoded on the blocking pool rather than inline.
const INLINE_ENCODE_BYTES: usize = 256 * 1024;
/// Updates up to this size are applied inline (`Room::apply_inline`)...
const INLINE_APPLY_BYTES: usize = 4 * 1024;
/// ...unless they delete more than this many clocks (characters, elements)...
const INLINE_DELETED_CLOCKS: u64 = 4096;
/// ...or two inline applies in a row in the room, on a document over
/// `INLINE_ENCODE_BYTES`, took longer than this, the second in CPU time (unoptimized
/// builds, as in tests, run yrs tens of times slower).
const INLINE_SLOW: Duration = Duration::from_millis(if cfg!(debug_assertions) { 50 } else { 1 });
/// A snapshot rewrites the whole document, so on a big one it waits until the updates
/// since the last come to 1 / this of it: a 1 MB document typed into at 30 bytes per
/// update was rewritten every 30 KB of edits, 33 times the bytes edited, and encoding
/// snapshots took 13% of the server's samples in a profile at the throughput ceiling.
/// A load replays at most an eighth of the document's size in updates, or
/// `snapshot_every_updates` of them on a small document; more if the room was resting
/// after a snapshot (`SNAPSHOT_REST_FACTOR`), never more than `snapshot_every_bytes`.
const SNAPSHOT_LOG_FRACTION: u64 = 8;
/// After a snapshot, a room waits this many times as long as it took (encoding and
/// writing) before the next one the fraction above makes due; one that
/// `snapshot_every_bytes` makes due is written at once. Writing a snapshot holds
/// SQLite's write lock for about 10 ms per MB, and every group commit waits behind it:
/// at the throughput ceiling the document grows by 1 MB a second, and the snapshots that
/// rule asked for (one per eighth of growth: 9 a second at 3 MB) held the lock an eighth
/// of the time, the p99 following them (benches/HISTORY.md, change 43). With the rest, a
/// room spends at most 1 / 21 of its time on snapshots; a document edited at ordinary
/// rates never meets the rest.
const SNAPSHOT_REST_FACTOR: u32 = 20;
/// The longest rest, whatever the last snapshot took (a disk that stalled for seconds
/// would otherwise leave a small document's log growing for minutes).
const SNAPSHOT_REST_MAX: Duration = Duration::from_secs(10);
/// How long a gap in the sequence numbers a room has applied may last before it catches
/// up from the database. Another node's update reaches this one through the bus a
/// millisecond or so after it was stored, and this node's own commit can overtake it, so
/// a gap is normal for a moment; one that lasts means a message was lost.
const GAP_WAIT: Duration = Duration::from_millis(500);

/// Which updates of the log a room's document holds: every one up to `applied`, and
/// those in `ahead` (past a gap). Several nodes append to one document's log (the
/// database gives out the numbers, migration 0007), and a room learns of each update
/// either as its own commit's answer or from the bus, in any order.
///
/// A snapshot covers `applied` only: everything up to it is in the document, so
/// deleting those rows loses nothing, whatever other nodes did meanwhile.
#[derive(Debug, Default)]
pub(super) struct SeqLog {
    applied: i64,
    ahead: std::collections::BTreeSet<i64>,
}

impl SeqLog {
    fn starting_at(applied: i64) -> Self {
        Self {
            applied,
            ahead: Default::default(),
        }
    }

    /// Whether the document holds update `seq`.
    fn has(&self, seq: i64) -> bool {
        seq <= self.applied || self.ahead.contains(&seq)
    }

    /// Notes that the document now holds update `seq`.
    fn note(&mut self, seq: i64) {
        if seq == self.applied + 1 && self.ahead.is_empty() {
            self.applied = seq; // the common case: in order
            return;
        }
        if self.has(seq) {
            return;
        }
        self.ahead.insert(seq);
        while self.ahead.first() == Some(&(self.applied + 1)) {
            self.ahead.pop_first();
            self.applied += 1;
        }
    }

    /// Notes that the document holds every update up to `seq` (a catch-up).
    fn note_through(&mut self, seq: i64) {
        if seq > self.applied {
            self.applied = seq;
            self.ahead = self.ahead.split_off(&(seq + 1));
            while self.ahead.first() == Some(&(self.applied + 1)) {
                self.ahead.pop_first();
                self.applied += 1;
            }
        }
    }

    fn gap(&self) -> bool {
        !self.ahead.is_empty()
    }
}

/// Why a room caught up from the database (the `vellum_catchups_total` metric's `cause`).
#[derive(Debug, Clone, Copy)]
pub(super) enum CatchUp {
    /// A gap in the sequence numbers lasted `GAP_WAIT`.
    Gap,
    /// The bus reconnected or resubscribed: messages may have been lost meanwhile.
    Reconnect,
    /// The database's last sequence number stayed ahead of the room's over two probes.
    Probe,
    /// The room read the bus too slowly and missed messages.
    Lagged,
}

impl CatchUp {
    fn label(self) -> &'static str {
        match self {
            CatchUp::Gap => "gap",
            CatchUp::Reconnect => "reconnect",
            CatchUp::Probe => "probe",
            CatchUp::Lagged => "lagged",
        }
    }
}

/// A snapshot encoded while some of this room's updates in it were not yet stored:
/// written once they are ([`Room::on_durable`]).
struct PendingSnapshot {
    state: Vec<u8>,
    /// Written once this many of the room's own updates are stored...
    own: u64,
    /// ...covering this (what the log held when it was encoded)...
    applied: i64,
    /// ...or, if no other node's update was applied since (this epoch), what the log
    /// holds once they are stored.
    remote_epoch: u64,
    encoding: Duration,
    permit: OwnedSemaphorePermit,
}

pub(super) enum Cmd {
    Join {
        conn: ConnId,
        peer: Peer,
        out: OutboxSender,
        reply: oneshot::Sender<Result<(), JoinRefused>>,
    },
    Frame {
        conn: ConnId,
        frame: Bytes,
    },
    Leave {
        conn: ConnId,
    },
    Presence {
        reply: oneshot::Sender<Vec<PresenceEntry>>,
    },
    /// The connections and who they are (access checked again).
    Peers {
        reply: oneshot::Sender<Vec<(ConnId, Peer)>>,
    },
    /// Access checked again: what changes for these connections.
    Reauthorized {
        verdicts: Vec<(ConnId, Verdict)>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    /// The database's last sequence number for this document (`Collab`'s probe).
    Probe {
        last_seq: i64,
    },
    /// A change made by the server (restore, setBody): applied in this room's document,
    /// stored and broadcast like any client update.
    Edit {
        author: Option<Uuid>,
        edit: EditFn,
        reply: oneshot::Sender<Result<Edited, EditError>>,
    },
}

/// Changes a document inside one transaction; returns whether it changed anything.
pub type EditFn = Box<dyn FnOnce(&mut TransactionMut) -> bool + Send>;

/// The outcome of a server-side edit, answered once the change is durable.
#[derive(Debug)]
pub struct Edited {
    /// The update that was stored and broadcast (empty when nothing changed).
    pub update: Vec<u8>,
    /// The whole document state right after the edit.
    pub state: Vec<u8>,
}

#[derive(Debug)]
pub enum EditError {
    TooLarge(usize),
    /// The room failed while applying or storing the change; nothing was acknowledged.
    Failed(String),
    /// The change was not made, for a passing reason (the database is unavailable, the
    /// room was reloading): the same request can be sent again.
    Retry(String),
}

pub(super) enum JoinRefused {
    /// This room is going away; join again to get a fresh one.
    Retry,
    Error(JoinError),
}

#[derive(Clone)]
pub(super) struct RoomHandle {
    pub tx: mpsc::Sender<Cmd>,
    pub generation: u64,
}

/// One person (one connection) in a document, for the presence API.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceEntry {
    pub user_id: Option<Uuid>,
    pub display_name: String,
    pub read_only: bool,
    /// The Yjs client id of the connection's awareness state, if it sent one.
    pub client_id: Option<u64>,
    /// `user.name` and `user.color` from the awareness state (TipTap's convention).
    pub name: Option<String>,
    pub color: Option<String>,
    /// The awareness `cursor` field, as JSON.
    pub cursor: Option<serde_json::Value>,
}

pub(super) fn spawn(collab: Collab, id: Uuid, generation: u64) -> RoomHandle {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(run(collab, id, generation, rx));
    RoomHandle { tx, generation }
}

struct Conn {
    peer: Peer,
    /// Frames to the client, and its kill switch.
    out: OutboxSender,
    told_read_only: bool,
}

/// Something that may reach clients only once everything before it is durable.
enum Durable {
    Update {
        data: Bytes,
        result: WriteResult,
        /// A server-side edit waiting for this update to be stored.
        edited: Option<EditReply>,
    },
    Reply {
        conn: ConnId,
        frame: Bytes,
    },
    /// An edit that changed nothing, answered in order with the updates before it.
    Unchanged(EditReply),
}

struct EditReply {
    reply: oneshot::Sender<Result<Edited, EditError>>,
    edited: Edited,
}

type DurableFuture = Pin<Box<dyn Future<Output = Durable> + Send + Sync>>;

enum Flow {
    Continue,
    Stop,
}

enum Applied {
    Ok,
    Empty,
    /// Did not decode: the document is untouched.
    Invalid(String),
    /// Failed while integrating: the document can no longer be trusted.
    Failed(String),
    /// Would wait entirely as pending structs, and is larger than allowed: not applied.
    PendingRefused(usize),
    /// Left more pending structs than allowed (the document holds them now).
    PendingOverflow(usize),
}

struct Room {
    collab: Collab,
    id: Uuid,
    generation: u64,
    doc: Doc,
    conns: HashMap<ConnId, Conn>,
    awareness: Awareness,
    /// Which updates of the stored log the document holds.
    log: SeqLog,
    /// This room's own updates handed to the writer, and how many of them are stored.
    own_submitted: u64,
    own_stored: u64,
    /// Counts other nodes' updates (and catch-ups) applied: a snapshot encoded before one
    /// covers only what the log held then.
    remote_epoch: u64,
    pending_snapshot: Option<PendingSnapshot>,
    /// Since when the log has had a gap.
    gap_since: Option<Instant>,
    /// The database's last sequence number at the previous probe, if it was ahead.
    probe_ahead: Option<i64>,
    /// Approximate stored size: last snapshot plus updates since.
    size: usize,
    /// The updates stored after the last snapshot: how many, and their bytes.
    since_snapshot: (u64, u64),
    /// One snapshot write at a time: the periodic task holds the permit while it writes,
    /// and the final snapshot waits for it.
    snapshot_permit: Arc<Semaphore>,
    /// Until when a snapshot that is only [`Due::Paced`] waits (`SNAPSHOT_REST_FACTOR`),
    /// set by the task that wrote the last one.
    snapshot_rest: Arc<std::sync::Mutex<Instant>>,
    inflight: FuturesOrdered<DurableFuture>,
    unload_at: Option<Instant>,
    /// An inline apply took more than `INLINE_SLOW`: apply on the blocking pool.
    slow_applies: bool,
    /// The last inline apply took more than `INLINE_SLOW` of wall time: time the next
    /// one in CPU time.
    suspect_slow: bool,
}

/// What `Room::apply_inline` did: applied the update (`Err` if yrs panicked), or left it
/// for the blocking pool.
enum Inline {
    Done(Result<Applied, ()>),
    Heavy,
}

async fn run(collab: Collab, id: Uuid, generation: u64, mut rx: mpsc::Receiver<Cmd>) {
    // Subscribe before loading, so nothing published meanwhile is missed.
    let mut bus_rx = collab.bus().subscribe_remote(id);
    let unavailable = || JoinRefused::Error(JoinError::Unavailable("could not load it from the database".into()));
    let state = match collab.shared.store.load_document_state(id).await {
        Ok(s) => s,
        Err(e) => {
            let down = crate::error::unavailable_cause(&e);
            tracing::error!(document = %id, error = ?e, database_unavailable = down, "could not load document");
            collab.unregister_if(id, generation, || true);
            if down {
                drain(&mut rx, || JoinRefused::Error(JoinError::DatabaseUnavailable));
            } else {
                drain(&mut rx, unavailable);
            }
            return;
        }
    };
    let (last_seq, size) = (state.last_seq(), stored_size(&state));
    let logged: (u64, u64) = (
        state.updates.len() as u64,
        state.updates.iter().map(|(_, u)| u.len() as u64).sum(),
    );
    let stored = stored_sync_step2(&state);
    let gate = collab.take_load_gate(id);
    let mut building = Box::pin(async move {
        if let Some(gate) = gate {
            gate.notified().await;
        }
        tokio::task::spawn_blocking(move || build(state)).await
    });
    let collab_grace = collab.config().unload_grace_ms;
    let mut room = Room {
        collab,
        id,
        generation,
        doc: Doc::new(), // replaced once built
        conns: HashMap::new(),
        awareness: Awareness::default(),
        log: SeqLog::starting_at(last_seq),
        own_submitted: 0,
        own_stored: 0,
        remote_epoch: 0,
        pending_snapshot: None,
        gap_since: None,
        probe_ahead: None,
        size,
        since_snapshot: logged,
        snapshot_permit: Arc::new(Semaphore::new(1)),
        snapshot_rest: Arc::new(std::sync::Mutex::new(Instant::now())),
        inflight: FuturesOrdered::new(),
        unload_at: Some(Instant::now() + Duration::from_millis(collab_grace)),
        slow_applies: false,
        suspect_slow: false,
    };
    // While the document is being built (milliseconds for a big one), joins are taken
    // and a fresh client's sync step 1 is answered with the stored state as it is in the
    // database (durable by definition); everything else waits, in order, for the document.
    let mut deferred = Vec::new();
    let built = loop {
        tokio::select! {
            built = &mut building => break built.map_err(anyhow::Error::from).and_then(|b| b),
            cmd = rx.recv() => match cmd {
                Some(cmd) => {
                    if let Some(cmd) = room.early(cmd, stored.as_ref(), !deferred.is_empty()) {
                        deferred.push(cmd);
                    }
                }
                None => return,
            },
        }
    };
    match built {
        Ok(doc) => room.doc = doc,
        Err(e) => {
            let damaged = e.downcast_ref::<super::Damaged>().is_some();
            tracing::error!(document = %id, error = %format!("{e:#}"), damaged, "could not load document");
            if damaged {
                crate::metrics::damaged_document_refused();
            }
            let (code, reason) = if damaged {
                JoinError::Damaged.close()
            } else {
                (
                    close::INTERNAL,
                    "document unavailable: could not load it from the database".into(),
                )
            };
            for c in room.conns.values() {
                c.out.kill(code, &reason);
            }
            room.collab.unregister_if(id, generation, || true);
            let refusal = || {
                if damaged {
                    JoinRefused::Error(JoinError::Damaged)
                } else {
                    unavailable()
                }
            };
            deferred.into_iter().for_each(|cmd| refuse(cmd, refusal));
            drain(&mut rx, refusal);
            return;
        }
    }
    // Those who joined early get the room's state vector now, then what waited.
    let early: Vec<ConnId> = room.conns.keys().copied().collect();
    for conn in early {
        room.greet(conn);
    }
    for cmd in deferred {
        if let Flow::Stop = room.handle(cmd, &mut rx).await {
            return;
        }
    }
    loop {
        let idle = room.conns.is_empty() && room.inflight.is_empty();
        let unload_at = room
            .unload_at
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let flow = tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(cmd) => room.handle(cmd, &mut rx).await,
                None => Flow::Stop,
            },
            Some(d) = room.inflight.next(), if !room.inflight.is_empty() => room.on_durable(d, &mut rx).await,
            msg = bus_rx.recv() => room.on_bus(msg, &mut bus_rx).await,
            _ = tokio::time::sleep_until(room.gap_since.map_or(unload_at, |t| t + GAP_WAIT)), if room.gap_since.is_some() => {
                room.catch_up(CatchUp::Gap).await;
                Flow::Continue
            }
            _ = tokio::time::sleep_until(unload_at), if idle && room.unload_at.is_some() => room.try_unload(&mut rx).await,
        };
        if let Flow::Stop = flow {
            return;
        }
    }
}

/// Loads the snapshot and later updates into a fresh document, off the executor.
pub(super) async fn load(collab: &Collab, id: Uuid) -> anyhow::Result<(Doc, i64, usize)> {
    load_from(&collab.shared.store, id).await
}

/// [`load`] from a store alone (what tools without a running engine read).
pub(super) async fn load_from(store: &crate::store::Store, id: Uuid) -> anyhow::Result<(Doc, i64, usize)> {
    let state = store.load_document_state(id).await?;
    let (last_seq, size) = (state.last_seq(), stored_size(&state));
    let doc = tokio::task::spawn_blocking(move || build(state)).await??;
    Ok((doc, last_seq, size))
}

fn stored_size(state: &StoredState) -> usize {
    state.snapshot.as_ref().map_or(0, |(s, _)| s.len()) + state.updates.iter().map(|(_, u)| u.len()).sum::<usize>()
}

/// A sync step 2 carrying the whole stored state, when the database holds it as one
/// update: a snapshot with no updates after it (what unloading leaves), or one update.
fn stored_sync_step2(state: &StoredState) -> Option<Bytes> {
    match (&state.snapshot, state.updates.as_slice()) {
        (Some((snapshot, _)), []) => Some(protocol::sync_step2(snapshot.clone())),
        (None, [(_, update)]) => Some(protocol::sync_step2(update.clone())),
        _ => None,
    }
}

/// Builds a document from its stored state. Blocking; yrs panics become errors.
fn build(state: StoredState) -> anyhow::Result<Doc> {
    catch_unwind(AssertUnwindSafe(|| -> anyhow::Result<Doc> {
        let doc = Doc::new();
        {
            let mut txn = doc.transact_mut();
            let stored = state
                .snapshot
                .iter()
                .map(|(s, seq)| (s, "snapshot", *seq))
                .chain(state.updates.iter().map(|(seq, u)| (u, "update", *seq)));
            for (bytes, what, seq) in stored {
                let update = Update::decode_v1(bytes)
                    .map_err(|e| super::Damaged(format!("the {what} at sequence number {seq} does not decode: {e}")))?;
                txn.apply_update(update)
                    .map_err(|e| super::Damaged(format!("the {what} at sequence number {seq} does not apply: {e}")))?;
            }
            // Structs still waiting for predecessors are not content. Drop them: a
            // client that has them sends them again in its sync step 2, and a crafted
            // pending state (on which yrs panics when encoding) cannot outlive a reload.
            if txn.has_missing_updates() {
                let _ = txn.prune_pending();
            }
        }
        Ok(doc)
    }))
    .map_err(|_| super::Damaged("applying its stored state panicked in yrs".into()))?
}

/// Answers whatever is still queued after the room stopped taking commands.
fn drain(rx: &mut mpsc::Receiver<Cmd>, refusal: impl Fn() -> JoinRefused) {
    rx.close();
    while let Ok(cmd) = rx.try_recv() {
        refuse(cmd, &refusal);
    }
}

/// Answers a command this room will not carry out.
fn refuse(cmd: Cmd, refusal: impl Fn() -> JoinRefused) {
    match cmd {
        Cmd::Join { reply, .. } => {
            let _ = reply.send(Err(refusal()));
        }
        Cmd::Presence { reply } => {
            let _ = reply.send(Vec::new());
        }
        Cmd::Peers { reply } => {
            let _ = reply.send(Vec::new());
        }
        Cmd::Shutdown { reply } => {
            let _ = reply.send(());
        }
        Cmd::Edit { reply, .. } => {
            let _ = reply.send(Err(EditError::Retry("the document was unloading; try again".into())));
        }
        Cmd::Frame { .. } | Cmd::Leave { .. } | Cmd::Probe { .. } | Cmd::Reauthorized { .. } => {}
    }
}

/// Applies one client update to `doc`: `check`, then `integrate`. Runs under
/// `catch_unwind`, on the blocking pool unless `Room::apply_inline` took it.
fn apply(doc: &Doc, data: &[u8], inject_panic: bool, max_pending: usize) -> Applied {
    match check(doc, data, max_pending) {
        Ok(checked) => integrate(doc, checked.update, inject_panic, max_pending),
        Err(outcome) => outcome,
    }
}

/// A client update that decoded and passed the checks, ready to integrate.
struct Checked {
    update: Update,
    /// How many clocks its delete set covers (see `vet::Vetted`).
    deleted: u64,
}

/// Decodes one client update and checks it without changing `doc`: work that follows
/// from the update's size. `Err` is the outcome for an update not to integrate.
fn check(doc: &Doc, data: &[u8], max_pending: usize) -> Result<Checked, Applied> {
    let update = decode_update(data).map_err(Applied::Invalid)?;
    if update.is_empty() {
        return Err(Applied::Empty);
    }
    // What yrs does not check (clocks past u32::MAX, subdocuments): refused before it
    // touches the document.
    let vetted = super::vet::update(data).map_err(Applied::Invalid)?;
    // An update that starts past what the document has for one of its clients cannot
    // integrate now: all of it would wait as pending structs. Refuse a large one before
    // touching the document, so a pending-struct bomb costs only its sender's socket.
    if data.len() > max_pending {
        let have = doc.transact().state_vector();
        if update
            .state_vector_lower()
            .iter()
            .any(|(client, clock)| *clock > have.get(client))
        {
            return Err(Applied::PendingRefused(data.len()));
        }
    }
    Ok(Checked {
        update,
        deleted: vetted.deleted,
    })
}

/// Integrates a checked update into `doc`, and checks that the document still encodes.
fn integrate(doc: &Doc, update: Update, inject_panic: bool, max_pending: usize) -> Applied {
    let mut txn = doc.transact_mut();
    if inject_panic {
        panic!("injected fault while applying an update");
    }
    if let Err(e) = txn.apply_update(update) {
        return Applied::Failed(e.to_string());
    }
    // Committing (GC, squashing blocks) can change what the checks below see: run them on
    // the committed state, which is what later encodes read. Dropping `txn` then does nothing.
    txn.commit();
    let pending = txn.has_missing_updates();
    if pending {
        let store = txn.store();
        let size = store.pending_update().map_or(0, |p| p.update.encode_v1().len())
            + store.pending_ds().map_or(0, |ds| ds.encode_v1().len());
        if size > max_pending {
            return Applied::PendingOverflow(size);
        }
    }
    match encodes_after(&txn, pending) {
        Ok(()) => Applied::Ok,
        Err(e) => Applied::Failed(e),
    }
}

/// Whether the document still encodes after the committed transaction `txn`. yrs accepts
/// some updates that leave it unable to (found by fuzzing: pending structs it panics on
/// merging; clocks that wrap past u32::MAX, which `vet` now refuses first), and then the
/// next sync reply or snapshot would panic, on every reload too once stored. Encodes what
/// the transaction changed, as a peer's sync reply would (about the update's size), and
/// while structs are pending (rare) the whole state, as a snapshot would; a failure
/// refuses the update, so it is never stored and the room reloads.
fn encodes_after(txn: &TransactionMut, pending: bool) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| {
        let _ = txn.encode_update_v1();
        if pending {
            let _ = txn.encode_state_as_update_v1(&StateVector::default());
        }
    }))
    .map_err(|_| "the document could not be encoded after it".to_string())
}

/// Whether a snapshot is due, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    No,
    /// By `snapshot_every_updates` and the log's share of the document: once the room
    /// has rested after the last snapshot (`SNAPSHOT_REST_FACTOR`).
    Paced,
    /// By `snapshot_every_bytes`: now, rested or not, so the log stays bounded.
    Now,
}

/// Whether a snapshot is due. `since`: the updates stored after the last snapshot (how
/// many, their bytes); `last`: that snapshot's size; `every`: `snapshot_every_updates`
/// and `snapshot_every_bytes`. Due after `every.0` updates once their bytes also come to
/// `1 / SNAPSHOT_LOG_FRACTION` of `last`, or after `every.1` bytes.
fn snapshot_due(since: (u64, u64), last: u64, every: (u64, u64)) -> Due {
    let (updates, bytes) = since;
    if bytes >= every.1 {
        Due::Now
    } else if updates >= every.0 && bytes.saturating_mul(SNAPSHOT_LOG_FRACTION) >= last {
        Due::Paced
    } else {
        Due::No
    }
}

/// How long a room rests after a snapshot that took `took` to encode and write.
fn snapshot_rest(took: Duration) -> Duration {
    took.saturating_mul(SNAPSHOT_REST_FACTOR).min(SNAPSHOT_REST_MAX)
}

/// Whether to write a snapshot that is `due`, at `now`, with the room resting until `rest`.
fn snapshot_wanted(due: Due, now: Instant, rest: Instant) -> bool {
    match due {
        Due::No => false,
        Due::Paced => now >= rest,
        Due::Now => true,
    }
}

/// The CPU time this thread has used.
fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Decodes a v1 update; yrs asserts on some malformed input in debug builds, which
/// counts as malformed here too.
fn decode_update(data: &[u8]) -> Result<Update, String> {
    catch_unwind(|| Update::decode_v1(data))
        .map_err(|_| "the update could not be decoded".to_string())?
        .map_err(|e| e.to_string())
}

impl Room {
    async fn handle(&mut self, cmd: Cmd, rx: &mut mpsc::Receiver<Cmd>) -> Flow {
        match cmd {
            Cmd::Join { conn, peer, out, reply } => {
                if self.join(conn, peer, out, reply) {
                    self.greet(conn);
                }
                Flow::Continue
            }
            Cmd::Frame { conn, frame } => self.on_frame(conn, frame, rx).await,
            Cmd::Edit { author, edit, reply } => self.apply_edit(author, edit, reply, rx).await,
            Cmd::Leave { conn } => {
                self.remove(conn);
                Flow::Continue
            }
            Cmd::Presence { reply } => {
                let _ = reply.send(self.presence());
                Flow::Continue
            }
            Cmd::Peers { reply } => {
                let _ = reply.send(self.conns.iter().map(|(id, c)| (*id, c.peer.clone())).collect());
                Flow::Continue
            }
            Cmd::Reauthorized { verdicts } => {
                self.reauthorized(verdicts);
                Flow::Continue
            }
            Cmd::Probe { last_seq } => {
                self.on_probe(last_seq).await;
                Flow::Continue
            }
            Cmd::Shutdown { reply } => {
                while let Some(d) = self.inflight.next().await {
                    if let Flow::Stop = self.on_durable(d, rx).await {
                        let _ = reply.send(());
                        return Flow::Stop;
                    }
                }
                self.final_snapshot().await;
                for c in self.conns.values() {
                    c.out.kill(close::SERVICE_RESTART, "server restarting; reconnect");
                }
                self.conns.clear();
                self.awareness = Awareness::default();
                self.presence_changed();
                self.collab.unregister_if(self.id, self.generation, || true);
                drain(rx, || JoinRefused::Retry);
                let _ = reply.send(());
                Flow::Stop
            }
        }
    }

    /// Takes a connection in; false if refused (or the joiner gave up).
    fn join(
        &mut self,
        conn: ConnId,
        peer: Peer,
        out: OutboxSender,
        reply: oneshot::Sender<Result<(), JoinRefused>>,
    ) -> bool {
        if self.conns.len() >= self.collab.config().max_connections_per_document {
            let _ = reply.send(Err(JoinRefused::Error(JoinError::TooManyConnections(
                "on this document",
            ))));
            return false;
        }
        if reply.send(Ok(())).is_err() {
            return false; // the joiner gave up
        }
        self.conns.insert(
            conn,
            Conn {
                peer,
                out,
                told_read_only: false,
            },
        );
        self.unload_at = None;
        self.presence_changed();
        true
    }

    /// The room's first frames to a joined connection: its sync step 1 (so the client
    /// sends what the room lacks) and who is here.
    fn greet(&mut self, conn: ConnId) {
        let sv = self.doc.transact().state_vector();
        self.send(conn, protocol::sync_step1(&sv));
        if !self.awareness.is_empty() {
            self.send(conn, self.awareness_frame());
        }
    }

    /// A command that arrives while the document is being built: a join is taken (its
    /// greeting waits for the document), and a fresh client's sync step 1 is answered
    /// with `stored` (a sync step 2 of the stored state), unless something is already
    /// waiting. Returns the command if it must wait for the document.
    fn early(&mut self, cmd: Cmd, stored: Option<&Bytes>, waiting: bool) -> Option<Cmd> {
        match cmd {
            Cmd::Join { conn, peer, out, reply } => {
                self.join(conn, peer, out, reply);
                None
            }
            Cmd::Frame { conn, ref frame } if !waiting && self.conns.contains_key(&conn) => {
                match (stored, protocol::decode(frame)) {
                    (Some(reply), Ok(Incoming::SyncStep1(sv))) if sv.is_empty() => {
                        self.send(conn, reply.clone());
                        None
                    }
                    _ => Some(cmd),
                }
            }
            cmd => Some(cmd),
        }
    }

    async fn on_frame(&mut self, conn: ConnId, frame: Bytes, rx: &mut mpsc::Receiver<Cmd>) -> Flow {
        let Some(c) = self.conns.get(&conn) else {
            return Flow::Continue;
        };
        let read_only = c.peer.read_only;
        match protocol::decode(&frame) {
            Err(refusal) => {
                let (code, reason) = refusal.close();
                self.kill(conn, code, reason);
            }
            Ok(Incoming::SyncStep1(sv)) => match self.encode_diff(sv).await {
                Some(diff) => self.after_durable(conn, protocol::sync_step2(diff)),
                None => {
                    return self
                        .poison("internal error while encoding the document; reconnect", rx)
                        .await;
                }
            },
            Ok(Incoming::Update(data)) if read_only => {
                let harmless = decode_update(&data).is_ok_and(|u| u.is_empty());
                let c = self.conns.get_mut(&conn).expect("checked above");
                if !harmless && !c.told_read_only {
                    c.told_read_only = true;
                    self.send(
                        conn,
                        protocol::permission_denied("read-only access: your changes are not saved"),
                    );
                }
            }
            Ok(Incoming::Update(data)) => return self.apply_from(conn, data.into(), rx).await,
            Ok(Incoming::Awareness(entries)) => self.on_awareness(conn, entries, &frame),
            Ok(Incoming::AwarenessQuery) => {
                let f = self.awareness_frame();
                self.send(conn, f);
            }
            Ok(Incoming::Auth) => {}
        }
        Flow::Continue
    }

    /// The updates `sv` lacks; `None` if yrs fails to encode the document.
    async fn encode_diff(&self, sv: StateVector) -> Option<Vec<u8>> {
        let doc = self.doc.clone();
        let encode = move || catch_unwind(AssertUnwindSafe(|| doc.transact().encode_diff_v1(&sv))).ok();
        if self.size < INLINE_ENCODE_BYTES {
            return encode();
        }
        tokio::task::spawn_blocking(encode).await.ok().flatten()
    }

    /// Sends `frame` to `conn` once every update given a sequence number so far is durable.
    fn after_durable(&mut self, conn: ConnId, frame: Bytes) {
        if self.inflight.is_empty() {
            self.send(conn, frame);
        } else {
            self.inflight
                .push_back(Box::pin(async move { Durable::Reply { conn, frame } }));
        }
    }

    async fn apply_from(&mut self, conn: ConnId, data: Bytes, rx: &mut mpsc::Receiver<Cmd>) -> Flow {
        let cfg = self.collab.config();
        if self.size + data.len() > cfg.max_document_bytes {
            let reason = format!("document would exceed {} bytes", cfg.max_document_bytes);
            self.kill(conn, close::TOO_BIG, reason);
            return Flow::Continue;
        }
        // An injected fault waits for an update with something in it: a client's empty
        // sync step 2 (`[0, 0]`, the answer to the room's step 1) can arrive after the
        // test injected it, and must not use it up.
        let fault = if data[..] == [0, 0] {
            None
        } else {
            self.collab.take_fault(self.id)
        };
        let cap = cfg.max_pending_bytes;
        let (fault, slow) = (fault == Some(Fault::Panic), fault == Some(Fault::Slow));
        let (outcome, site) = match self.apply_inline(&data, fault, slow, cap) {
            Inline::Done(outcome) => (outcome, &self.collab.shared.applied_inline),
            Inline::Heavy => {
                let (doc, input) = (self.doc.clone(), data.clone());
                let run = move || catch_unwind(AssertUnwindSafe(|| apply(&doc, &input, fault, cap)));
                let outcome = tokio::task::spawn_blocking(run)
                    .await
                    .map_err(|_| ())
                    .and_then(|r| r.map_err(|_| ()));
                (outcome, &self.collab.shared.applied_on_pool)
            }
        };
        if !matches!(outcome, Ok(Applied::Empty)) {
            site.fetch_add(1, Ordering::Relaxed);
        }
        match outcome {
            Err(()) => {
                tracing::error!(document = %self.id, "panic while applying an update; reloading the room");
                return self
                    .poison("internal error while applying an update; reconnect to resync", rx)
                    .await;
            }
            Ok(Applied::Empty) => {}
            Ok(Applied::Invalid(e)) => self.kill(conn, close::INVALID, format!("invalid update: {e}")),
            Ok(Applied::Failed(e)) => {
                self.kill(conn, close::INVALID, format!("update could not be applied: {e}"));
                return self.poison("the document was reloaded; reconnect to resync", rx).await;
            }
            Ok(Applied::PendingRefused(n)) => {
                let reason = format!("update of {n} bytes depends on updates this server does not have (limit {cap})");
                self.kill(conn, close::POLICY, reason);
            }
            Ok(Applied::PendingOverflow(n)) => {
                let reason = format!("update leaves {n} bytes of pending structs (limit {cap})");
                self.kill(conn, close::POLICY, reason);
                return self.poison("the document was reloaded; reconnect to resync", rx).await;
            }
            Ok(Applied::Ok) => {
                let author = self.conns.get(&conn).and_then(|c| c.peer.user_id);
                self.store(data, author, None).await;
            }
        }
        Flow::Continue
    }

    /// Applies a small update on the room's own thread when that is cheap. Applying one
    /// takes microseconds, and the blocking pool's thread hand-off cost more than that:
    /// at the throughput ceiling it was a quarter of the server's time. Checking (decoding,
    /// vetting) follows from the update's size; integrating mostly does too, except
    /// deleting (a few bytes can delete a whole document) and pathological histories, so
    /// a large delete goes to the blocking pool. On a document under
    /// `INLINE_ENCODE_BYTES` the rest is bounded by its size; on a larger one each inline
    /// apply is timed on the wall clock, and one over `INLINE_SLOW` makes the room time
    /// the next in CPU time (the wall clock also counts the thread being preempted,
    /// common on a busy machine, and reading the thread's CPU clock is a system call,
    /// 6% of the server's time at the throughput ceiling when every apply read it:
    /// benches/HISTORY.md, change 35). After one over `INLINE_SLOW` in CPU time the room
    /// applies every update on the blocking pool.
    /// `fault` and `slow` are injected faults (`Collab::inject_apply_panic`, `inject_slow_apply`).
    fn apply_inline(&mut self, data: &[u8], fault: bool, slow: bool, cap: usize) -> Inline {
        if data.len() > INLINE_APPLY_BYTES || self.slow_applies {
            return Inline::Heavy;
        }
        let timed = self.size >= INLINE_ENCODE_BYTES;
        let cpu_started = (timed && self.suspect_slow).then(thread_cpu_time);
        let wall_started = (timed && !self.suspect_slow).then(std::time::Instant::now);
        let outcome = catch_unwind(AssertUnwindSafe(|| match check(&self.doc, data, cap) {
            Err(outcome) => Some(outcome),
            Ok(checked) if checked.deleted > INLINE_DELETED_CLOCKS => None,
            Ok(checked) => Some(integrate(&self.doc, checked.update, fault, cap)),
        }));
        if timed && slow {
            let spun = thread_cpu_time();
            while thread_cpu_time().saturating_sub(spun) <= INLINE_SLOW {
                std::hint::spin_loop();
            }
        }
        if let Some(started) = cpu_started {
            self.suspect_slow = false;
            let took = thread_cpu_time().saturating_sub(started);
            if took > INLINE_SLOW {
                tracing::debug!(document = %self.id, ?took, "slow inline apply; applying on the blocking pool from now on");
                self.slow_applies = true;
            }
        } else if wall_started.is_some_and(|t| t.elapsed() > INLINE_SLOW) {
            self.suspect_slow = true;
        }
        match outcome {
            Ok(Some(outcome)) => Inline::Done(Ok(outcome)),
            Ok(None) => Inline::Heavy,
            Err(_) => Inline::Done(Err(())),
        }
    }

    /// Hands an applied update to the writer, which gives it its sequence number; it
    /// reaches clients (and `edited` its answer) once committed.
    async fn store(&mut self, data: Bytes, author: Option<Uuid>, edited: Option<EditReply>) {
        self.own_submitted += 1;
        self.size += data.len();
        let ack = self.collab.shared.writer.append(self.id, data.clone(), author).await;
        self.inflight.push_back(Box::pin(async move {
            let result = ack
                .await
                .unwrap_or_else(|_| Err(super::writer::WriteFailed::other("the writer dropped the update")));
            Durable::Update { data, result, edited }
        }));
    }

    async fn apply_edit(
        &mut self,
        author: Option<Uuid>,
        edit: EditFn,
        reply: oneshot::Sender<Result<Edited, EditError>>,
        rx: &mut mpsc::Receiver<Cmd>,
    ) -> Flow {
        let doc = self.doc.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            catch_unwind(AssertUnwindSafe(|| {
                let update = {
                    let mut txn = doc.transact_mut();
                    edit(&mut txn);
                    txn.encode_update_v1()
                };
                let state = crate::content::encode_state(&doc);
                Edited { update, state }
            }))
        })
        .await
        .map_err(|_| ())
        .and_then(|r| r.map_err(|_| ()));
        let Ok(edited) = outcome else {
            tracing::error!(document = %self.id, "panic while applying a server-side edit; reloading the room");
            let _ = reply.send(Err(EditError::Failed(
                "internal error while applying the change".into(),
            )));
            return self
                .poison("internal error while applying a change; reconnect to resync", rx)
                .await;
        };
        let unchanged = Update::decode_v1(&edited.update).is_ok_and(|u| u.is_empty());
        if unchanged {
            let answer = EditReply {
                reply,
                edited: Edited {
                    update: Vec::new(),
                    state: edited.state,
                },
            };
            if self.inflight.is_empty() {
                let _ = answer.reply.send(Ok(answer.edited));
            } else {
                self.inflight
                    .push_back(Box::pin(async move { Durable::Unchanged(answer) }));
            }
            return Flow::Continue;
        }
        let max = self.collab.config().max_document_bytes;
        if self.size + edited.update.len() > max {
            // Already applied here: the room must reload to forget it.
            let _ = reply.send(Err(EditError::TooLarge(max)));
            return self.poison("the document was reloaded; reconnect to resync", rx).await;
        }
        let data = Bytes::from(edited.update.clone());
        self.store(data, author, Some(EditReply { reply, edited })).await;
        Flow::Continue
    }

    async fn on_durable(&mut self, d: Durable, rx: &mut mpsc::Receiver<Cmd>) -> Flow {
        match d {
            Durable::Reply { conn, frame } => self.send(conn, frame),
            Durable::Unchanged(answer) => {
                let _ = answer.reply.send(Ok(answer.edited));
            }
            Durable::Update {
                data,
                result: Ok(seq),
                edited,
            } => {
                self.own_stored += 1;
                self.log.note(seq);
                self.watch_gap();
                crate::metrics::update_accepted();
                self.broadcast(protocol::update(&data));
                self.since_snapshot.0 += 1;
                self.since_snapshot.1 += data.len() as u64;
                self.publish(BusEvent::Update { seq, data });
                self.collab.shared.content_changes.mark(self.id);
                if let Some(answer) = edited {
                    let _ = answer.reply.send(Ok(answer.edited));
                }
                if self.pending_snapshot.as_ref().is_some_and(|p| p.own <= self.own_stored) {
                    let p = self.pending_snapshot.take().expect("checked above");
                    let covers = if p.remote_epoch == self.remote_epoch {
                        self.log.applied
                    } else {
                        p.applied
                    };
                    self.spawn_snapshot(p.state, covers, p.encoding, p.permit);
                }
                self.maybe_snapshot().await;
            }
            Durable::Update {
                result: Err(e), edited, ..
            } => {
                if let Some(answer) = edited {
                    let _ = answer.reply.send(Err(if e.unavailable {
                        EditError::Retry(crate::error::DATABASE_UNAVAILABLE.into())
                    } else {
                        EditError::Failed("the change could not be saved".into())
                    }));
                }
                tracing::error!(document = %self.id, error = %e, "update was not stored; reloading the room");
                if e.unavailable {
                    // Not the document's fault: what this room holds beyond the database is
                    // unacknowledged, and each client still has it; they reconnect (refused
                    // with 503 until the database is back) and send it again.
                    return self
                        .close_all(
                            close::TRY_AGAIN,
                            "the database is unavailable; reconnect, your unsaved edits are kept",
                            rx,
                        )
                        .await;
                }
                return self
                    .poison("an update could not be saved; reconnect to resync", rx)
                    .await;
            }
        }
        Flow::Continue
    }

    async fn maybe_snapshot(&mut self) {
        let cfg = self.collab.config();
        let last = self.size.saturating_sub(self.since_snapshot.1 as usize) as u64;
        let every = (cfg.snapshot_every_updates, cfg.snapshot_every_bytes);
        let due = snapshot_due(self.since_snapshot, last, every);
        if due == Due::No {
            return; // the common case, on every durable update: no lock, no clock
        }
        let rest = *self.snapshot_rest.lock().unwrap_or_else(|e| e.into_inner());
        if !snapshot_wanted(due, Instant::now(), rest) {
            return; // the next update or the final snapshot asks again
        }
        let Ok(permit) = self.snapshot_permit.clone().try_acquire_owned() else {
            return; // one is being written; the next update or the final snapshot follows up
        };
        let started = Instant::now();
        let Some(state) = self.encode_state().await else {
            return;
        };
        let encoding = started.elapsed();
        self.since_snapshot = (0, 0);
        self.size = state.len();
        if self.own_stored == self.own_submitted {
            // Everything in the state is stored: it covers what the log holds.
            self.spawn_snapshot(state, self.log.applied, encoding, permit);
        } else {
            // Written once the room's own updates in it are stored, and never covering
            // an update of another node that the state lacks (`PendingSnapshot`).
            self.pending_snapshot = Some(PendingSnapshot {
                state,
                own: self.own_submitted,
                applied: self.log.applied,
                remote_epoch: self.remote_epoch,
                encoding,
                permit,
            });
        }
    }

    /// Writes a snapshot in the background; the room rests after it (`SNAPSHOT_REST_FACTOR`).
    fn spawn_snapshot(&self, state: Vec<u8>, covers: i64, encoding: Duration, permit: OwnedSemaphorePermit) {
        let (collab, id, rest) = (self.collab.clone(), self.id, self.snapshot_rest.clone());
        tokio::spawn(async move {
            match collab.write_snapshot(id, &state, covers).await {
                Ok(writing) => {
                    let until = Instant::now() + snapshot_rest(encoding + writing);
                    *rest.lock().unwrap_or_else(|e| e.into_inner()) = until;
                }
                Err(e) => {
                    tracing::warn!(document = %id, error = ?e, "snapshot failed; the update log still has everything")
                }
            }
            drop(permit);
        });
    }

    /// The whole state. `None` if yrs fails to encode the document: then no snapshot is
    /// written and the update log keeps everything (an empty snapshot would delete what
    /// it "covers").
    async fn encode_state(&self) -> Option<Vec<u8>> {
        let doc = self.doc.clone();
        let encode = move || {
            catch_unwind(AssertUnwindSafe(|| {
                doc.transact().encode_state_as_update_v1(&StateVector::default())
            }))
            .ok()
        };
        match tokio::task::spawn_blocking(encode).await.ok().flatten() {
            Some(state) => Some(state),
            None => {
                tracing::error!(document = %self.id, "could not encode the document; no snapshot written");
                None
            }
        }
    }

    /// Writes a snapshot covering everything, if anything changed since the last one.
    async fn final_snapshot(&mut self) {
        if self.since_snapshot.0 == 0 || !self.inflight.is_empty() {
            return;
        }
        self.pending_snapshot = None; // its permit goes back; this one covers more
        let Ok(_permit) = self.snapshot_permit.acquire().await else {
            return;
        };
        let covers = self.log.applied;
        let Some(state) = self.encode_state().await else {
            return;
        };
        match self.collab.write_snapshot(self.id, &state, covers).await {
            Ok(_) => self.since_snapshot = (0, 0),
            Err(e) => {
                tracing::warn!(document = %self.id, error = ?e, "final snapshot failed; the update log still has everything")
            }
        }
    }

    async fn try_unload(&mut self, rx: &mut mpsc::Receiver<Cmd>) -> Flow {
        self.final_snapshot().await;
        let gone = self.collab.unregister_if(self.id, self.generation, || rx.is_empty());
        if !gone {
            self.unload_at = None; // a join is queued; it will re-arm on leave
            return Flow::Continue;
        }
        drain(rx, || JoinRefused::Retry);
        crate::memory::churned(); // the document's memory is freed as the room stops
        tracing::debug!(document = %self.id, "room unloaded");
        Flow::Stop
    }

    /// The in-memory document can't be trusted: close every socket and stop. The next
    /// join loads the room again from the database.
    async fn poison(&mut self, reason: &str, rx: &mut mpsc::Receiver<Cmd>) -> Flow {
        self.close_all(close::INTERNAL, reason, rx).await
    }

    /// Closes every socket with `code` and stops; the next join loads the room again.
    async fn close_all(&mut self, code: u16, reason: &str, rx: &mut mpsc::Receiver<Cmd>) -> Flow {
        for c in self.conns.values() {
            c.out.kill(code, reason);
        }
        self.conns.clear();
        // Let updates already handed to the writer finish (committed or failed) before a
        // new room can load, so it never reuses a sequence number still in flight.
        while let Some(d) = self.inflight.next().await {
            // A committed edit is durable even though this room goes away: say so.
            if let Durable::Update {
                result: Ok(_),
                edited: Some(answer),
                ..
            } = d
            {
                let _ = answer.reply.send(Ok(answer.edited));
            }
        }
        self.collab.unregister_if(self.id, self.generation, || true);
        drain(rx, || JoinRefused::Retry);
        self.presence_changed();
        Flow::Stop
    }

    async fn on_bus(
        &mut self,
        msg: Result<BusMessage, broadcast::error::RecvError>,
        bus_rx: &mut broadcast::Receiver<BusMessage>,
    ) -> Flow {
        match msg {
            Ok(m) if *m.origin == *self.collab.node_id() => {}
            Ok(m) => match m.event {
                BusEvent::Update { seq, data } => {
                    if self.log.has(seq) {
                        return Flow::Continue; // a catch-up brought it already
                    }
                    let doc = self.doc.clone();
                    let input = data.clone();
                    let cap = usize::MAX;
                    let ok = tokio::task::spawn_blocking(move || {
                        catch_unwind(AssertUnwindSafe(|| apply(&doc, &input, false, cap)))
                    })
                    .await
                    .is_ok_and(|r| matches!(r, Ok(Applied::Ok | Applied::Empty)));
                    if ok {
                        self.log.note(seq);
                        self.remote_epoch += 1;
                        self.watch_gap();
                        self.broadcast(protocol::update(&data));
                        self.collab.shared.content_changes.mark(self.id);
                    } else {
                        // Stored by another node, so the database has it: read it from there.
                        self.catch_up(CatchUp::Gap).await;
                    }
                }
                BusEvent::Awareness { data } => self.on_awareness(REMOTE, protocol::awareness_entries(&data), &data),
                BusEvent::Resync => self.catch_up(CatchUp::Reconnect).await,
                BusEvent::PresenceChanged | BusEvent::DocumentChanged { .. } | BusEvent::VersionCreated { .. } => {}
            },
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(document = %self.id, missed = n, "bus lagged; catching up from the database");
                self.catch_up(CatchUp::Lagged).await;
            }
            Err(broadcast::error::RecvError::Closed) => {
                *bus_rx = self.collab.bus().subscribe_remote(self.id);
                self.catch_up(CatchUp::Reconnect).await;
            }
        }
        Flow::Continue
    }

    /// Starts or stops the gap timer after the log changed.
    fn watch_gap(&mut self) {
        match (self.log.gap(), self.gap_since) {
            (true, None) => self.gap_since = Some(Instant::now()),
            (false, Some(_)) => self.gap_since = None,
            _ => {}
        }
    }

    /// The database's last sequence number is `last_seq`: a room behind it for two
    /// probes in a row (an update stored elsewhere whose bus message never came, and
    /// nothing after it to show the gap) catches up.
    async fn on_probe(&mut self, last_seq: i64) {
        if last_seq <= self.log.applied {
            self.probe_ahead = None;
            return;
        }
        match self.probe_ahead {
            Some(before) if self.log.applied < before => self.catch_up(CatchUp::Probe).await,
            _ => self.probe_ahead = Some(last_seq),
        }
    }

    /// Applies whatever the database has past the updates this room holds in an unbroken
    /// run: the snapshot, if it covers more, and the updates after.
    async fn catch_up(&mut self, cause: CatchUp) {
        crate::metrics::catch_up(cause.label());
        let after = self.log.applied;
        let state = match self.collab.shared.store.load_document_state_after(self.id, after).await {
            Ok(state) => state,
            Err(e) => {
                tracing::warn!(document = %self.id, error = ?e, "could not catch up from the database; trying again later");
                self.gap_since = Some(Instant::now());
                return;
            }
        };
        let through = state.last_seq();
        let doc = self.doc.clone();
        let diff = tokio::task::spawn_blocking(move || {
            let before = doc.transact().state_vector();
            let stored = state
                .snapshot
                .iter()
                .map(|(s, _)| s.clone())
                .chain(state.updates.into_iter().map(|(_, u)| u));
            for bytes in stored {
                let _ = catch_unwind(AssertUnwindSafe(|| apply(&doc, &bytes, false, usize::MAX)));
            }
            doc.transact().encode_diff_v1(&before)
        })
        .await
        .unwrap_or_default();
        self.log.note_through(through);
        self.remote_epoch += 1;
        self.probe_ahead = None;
        self.gap_since = None;
        self.watch_gap();
        if Update::decode_v1(&diff).is_ok_and(|u| !u.is_empty()) {
            tracing::debug!(document = %self.id, cause = cause.label(), after, through, "caught up from the database");
            self.broadcast(protocol::update(&diff));
            self.collab.shared.content_changes.mark(self.id);
        }
    }

    /// Takes an awareness frame from `conn` (or another node) and relays what was new in
    /// it, to everyone here (its sender included: the renewal every 15 s is what keeps an
    /// idle y-websocket client from timing out its connection after 30 s) and, from one
    /// of this node's clients, to the other nodes. Nothing new, nothing sent.
    fn on_awareness(&mut self, conn: ConnId, entries: Vec<protocol::AwarenessEntry>, frame: &[u8]) {
        let total = entries.len();
        let fresh = self.awareness.apply(conn, entries);
        if fresh.is_empty() {
            return;
        }
        let frame = if fresh.len() == total {
            Bytes::copy_from_slice(frame)
        } else {
            protocol::awareness(fresh)
        };
        self.broadcast(frame.clone());
        if conn != REMOTE {
            self.publish(BusEvent::Awareness { data: frame });
            self.presence_changed();
        }
    }

    /// Every known awareness state, as one message.
    fn awareness_frame(&self) -> Bytes {
        protocol::awareness(self.awareness.entries())
    }

    fn presence(&self) -> Vec<PresenceEntry> {
        let mut out = Vec::new();
        for (id, c) in &self.conns {
            let states: Vec<_> = self.awareness.iter().filter(|(_, s)| s.conn == *id).collect();
            let base = PresenceEntry {
                user_id: c.peer.user_id,
                display_name: c.peer.display_name.clone(),
                read_only: c.peer.read_only,
                client_id: None,
                name: None,
                color: None,
                cursor: None,
            };
            if states.is_empty() {
                out.push(base);
                continue;
            }
            for (client, s) in states {
                let v: serde_json::Value = serde_json::from_str(&s.json).unwrap_or_default();
                out.push(PresenceEntry {
                    client_id: Some(*client),
                    name: v["user"]["name"].as_str().map(String::from),
                    color: v["user"]["color"].as_str().map(String::from),
                    cursor: v.get("cursor").filter(|c| !c.is_null()).cloned(),
                    ..base.clone()
                });
            }
        }
        out
    }

    /// Tells subscribers (on every node) that who is here changed.
    fn presence_changed(&self) {
        let bus = self.collab.bus();
        if bus.shared() {
            bus.set_presence(self.id, self.presence());
        }
        self.publish(BusEvent::PresenceChanged);
    }

    fn publish(&self, event: BusEvent) {
        self.collab.bus().publish(BusMessage {
            origin: self.collab.shared.node_id.clone(),
            document_id: self.id,
            event,
        });
    }

    fn send(&mut self, conn: ConnId, frame: Bytes) {
        let Some(c) = self.conns.get(&conn) else { return };
        match c.out.try_send(frame) {
            Ok(()) => {}
            Err(SendError::Full) => self.kill(
                conn,
                close::TRY_AGAIN,
                "client fell too far behind; reconnect to resync",
            ),
            Err(SendError::Closed) => self.remove(conn),
        }
    }

    fn broadcast(&mut self, frame: Bytes) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.send(id, frame.clone());
        }
    }

    /// Applies what checking access again decided: a connection that lost access is
    /// closed (its awareness states go with it); one whose share changed may now only
    /// read, or edit again.
    fn reauthorized(&mut self, verdicts: Vec<(ConnId, Verdict)>) {
        let mut changed = false;
        for (conn, verdict) in verdicts {
            match verdict {
                Verdict::Close(code, reason) => self.kill(conn, code, reason),
                Verdict::ReadOnly(read_only) => {
                    if let Some(c) = self.conns.get_mut(&conn)
                        && c.peer.read_only != read_only
                    {
                        tracing::info!(document = %self.id, conn, read_only, "access changed");
                        c.peer.read_only = read_only;
                        c.told_read_only = false;
                        changed = true;
                    }
                }
            }
        }
        if changed {
            self.presence_changed();
        }
    }

    fn kill(&mut self, conn: ConnId, code: u16, reason: impl Into<String>) {
        if let Some(c) = self.conns.get(&conn) {
            let reason = reason.into();
            tracing::info!(document = %self.id, conn, code, %reason, "closing connection");
            c.out.kill(code, reason);
        }
        self.remove(conn);
    }

    /// Forgets a connection and tells the others its awareness states are gone.
    fn remove(&mut self, conn: ConnId) {
        if self.conns.remove(&conn).is_none() {
            return;
        }
        let gone = self.awareness.remove_conn(conn);
        if !gone.is_empty() {
            let frame = protocol::awareness(gone);
            self.broadcast(frame.clone());
            self.publish(BusEvent::Awareness { data: frame });
        }
        self.presence_changed();
        if self.conns.is_empty() {
            self.unload_at = Some(Instant::now() + Duration::from_millis(self.collab.config().unload_grace_ms));
        }
    }
}

/// [`apply`] with its outcome as a result, for [`super::apply_frame`].
pub(super) fn apply_checked(doc: &Doc, data: &[u8], max_pending: usize) -> Result<(), String> {
    // As in a room: a panic inside yrs is contained (the room then reloads).
    let applied = catch_unwind(AssertUnwindSafe(|| apply(doc, data, false, max_pending)))
        .map_err(|_| "panic while applying (a room reloads from the database)".to_string())?;
    match applied {
        Applied::Ok | Applied::Empty => Ok(()),
        Applied::Invalid(e) | Applied::Failed(e) => Err(e),
        Applied::PendingOverflow(n) | Applied::PendingRefused(n) => Err(format!("{n} bytes of pending structs")),
    }
}

#[cfg(test)]
mod tests {
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, ReadTxn, Transact, Update};

    use std::time::Duration;

    use tokio::time::Instant;

    use super::{Due, encodes_after, snapshot_due, snapshot_rest, snapshot_wanted};

    /// Small documents: every 1,000 updates. Big ones: once the updates since come to an
    /// eighth of the last snapshot. Either way after 4 MiB, and that one without rest.
    #[test]
    fn snapshots_wait_longer_on_big_documents() {
        let every = (1000, 4 << 20);
        assert_eq!(snapshot_due((999, 30_000), 0, every), Due::No);
        assert_eq!(snapshot_due((1000, 30_000), 0, every), Due::Paced);
        assert_eq!(snapshot_due((1000, 30_000), 240_000, every), Due::Paced);
        assert_eq!(snapshot_due((1000, 30_000), 240_001, every), Due::No);
        assert_eq!(snapshot_due((5000, 125_000), 1_000_001, every), Due::No);
        assert_eq!(snapshot_due((5000, 125_000), 1_000_000, every), Due::Paced);
        assert_eq!(snapshot_due((10, 4 << 20), 64 << 20, every), Due::Now);
        assert_eq!(snapshot_due((5000, 4 << 20), 0, every), Due::Now);
        assert_eq!(
            snapshot_due((0, 0), 0, every),
            Due::No,
            "nothing logged, nothing to write"
        );
    }

    /// A paced snapshot waits out the rest after the last one; a forced one does not.
    #[test]
    fn snapshots_rest_unless_the_log_is_full() {
        let now = Instant::now();
        let (rested, resting) = (now - Duration::from_millis(1), now + Duration::from_millis(600));
        assert!(snapshot_wanted(Due::Paced, now, rested));
        assert!(snapshot_wanted(Due::Paced, now, now));
        assert!(!snapshot_wanted(Due::Paced, now, resting));
        assert!(snapshot_wanted(Due::Now, now, resting));
        assert!(!snapshot_wanted(Due::No, now, rested));
        assert_eq!(snapshot_rest(Duration::from_millis(30)), Duration::from_millis(600));
        assert_eq!(snapshot_rest(Duration::from_secs(5)), Duration::from_secs(10));
    }

    /// Applied without `vet` (as before it existed), an update whose clocks wrap leaves
    /// the document unable to encode what changed, and the check says so.
    #[test]
    fn encodes_after_catches_a_document_that_no_longer_encodes() {
        let frame = include_bytes!("../../fuzz/regressions/frame/wrapped-clock-encode-panic");
        let doc = Doc::with_client_id(1);
        let mut txn = doc.transact_mut();
        txn.apply_update(Update::decode_v1(&frame[3..]).unwrap()).unwrap();
        txn.commit();
        assert!(!txn.has_missing_updates(), "it integrates: only the encode shows it");
        assert!(encodes_after(&txn, false).is_err());

        let fine = Doc::with_client_id(2);
        let text = fine.get_or_insert_text("t");
        let mut txn = fine.transact_mut();
        yrs::Text::insert(&text, &mut txn, 0, "hello");
        txn.commit();
        assert_eq!(encodes_after(&txn, false), Ok(()));
    }
}
