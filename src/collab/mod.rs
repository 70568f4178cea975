//! Live rooms: one yrs document per open document, the y-websocket protocol, awareness,
//! the durable update log and snapshot compaction.
//!
//! Invariants:
//! - `collab` never touches a socket: a connection is a queue of outgoing frames and a
//!   kill switch; `ws` moves bytes between those and the WebSocket.
//! - Durable before broadcast: an update reaches anyone (its sender's echo included,
//!   which is the acknowledgement) only after the group commit that stored it. A sync
//!   step 2 reply is held back the same way, so no client sees undurable content.
//! - One live room per document in a process. A room that is unloading, or that failed,
//!   answers joins with "retry", and the joiner loads a fresh room from the database.
//! - A room that cannot trust its in-memory document (a panic or an apply error while
//!   applying, a pending-struct overflow, a failed commit) closes its sockets and is
//!   reloaded from the database by the next join; other rooms are untouched.

mod awareness;
pub mod doctor;
#[doc(hidden)]
pub mod fuzzing;
mod outbox;
mod protocol;
mod room;
mod sessions;
mod vet;
mod writer;

pub use outbox::{Kill, Outbound, Ready};
pub use protocol::close;
pub use room::{EditError, Edited, PresenceEntry};
pub use sessions::SessionLog;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use uuid::Uuid;
use yrs::{ReadTxn, Transact};

use crate::bus::Bus;
use crate::config::CollabConfig;
use crate::store::Store;
use room::{Cmd, RoomHandle};
use writer::Writer;

/// A connection's identity in its room.
pub type ConnId = u64;

/// Who is connecting, and whether they may edit.
#[derive(Debug, Clone)]
pub struct Peer {
    pub user_id: Option<Uuid>,
    pub display_name: String,
    pub read_only: bool,
    /// What the connection authenticated with, to check it again when access may have
    /// been taken away (`ws::start_access_checks`); `None`: never checked again.
    pub credential: Option<crate::auth::Credential>,
}

/// What checking a connection's access again decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Close it with this code and reason.
    Close(u16, &'static str),
    /// Keep it, editing or (`true`) only reading.
    ReadOnly(bool),
}

/// This node's id: `collab.node_id`, or a random one.
pub fn node_id(config: &CollabConfig) -> Arc<str> {
    if config.node_id.is_empty() {
        format!("node-{}", &Uuid::new_v4().simple().to_string()[..12]).into()
    } else {
        config.node_id.as_str().into()
    }
}

/// A joined connection: feed `input` the client's frames, send `outbound` to the
/// client, and close the socket when `kill` says so.
pub struct Connection {
    pub input: ConnInput,
    pub outbound: Outbound,
    pub kill: Kill,
}

/// The room side of a connection; dropping it leaves the room.
pub struct ConnInput {
    pub id: ConnId,
    room: RoomHandle,
    collab: Collab,
}

impl ConnInput {
    /// Hands a frame from the client to the room (waits when the room is busy, which
    /// slows this client's reads rather than queueing without bound).
    pub async fn receive(&self, frame: Bytes) {
        if let Some(wait) = self.try_receive(frame) {
            wait.await;
        }
    }

    /// [`ConnInput::receive`] without the wait where the room has room: when its queue
    /// is full, the frame waits in the returned future, which the caller awaits before
    /// reading more. The socket task boxes that rare wait: it lives as long as the
    /// connection, and the wait holds a whole command (BENCHMARKS.md, "idle").
    pub fn try_receive(&self, frame: Bytes) -> Option<impl Future<Output = ()> + Send + '_> {
        let cmd = Cmd::Frame { conn: self.id, frame };
        match self.room.tx.try_send(cmd) {
            Err(mpsc::error::TrySendError::Full(cmd)) => Some(async move {
                let _ = self.room.tx.send(cmd).await;
            }),
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => None,
        }
    }
}

/// A place among the node's `collab.max_connections`, held from before the upgrade until
/// the connection it becomes (or, refused, given back on drop).
pub struct ConnectionSlot {
    collab: Collab,
    held: bool,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if self.held {
            self.collab.shared.connections.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for ConnInput {
    fn drop(&mut self) {
        self.collab.shared.connections.fetch_sub(1, Ordering::Relaxed);
        crate::memory::churned();
        let _ = self.room.tx.try_send(Cmd::Leave { conn: self.id }).or_else(|e| {
            // The room's queue is full: leave from a task rather than lose the leave.
            let tx = self.room.tx.clone();
            let cmd = e.into_inner();
            tokio::spawn(async move { tx.send(cmd).await });
            Ok::<(), ()>(())
        });
    }
}

/// A document's stored state (its snapshot or an update) does not decode or apply. The
/// document is quarantined: it cannot be opened or its body read (a clear error says
/// so), every other document is unaffected, and `vellum doctor` finds the damaged piece
/// and, with `--repair`, sets it aside.
#[derive(Debug)]
pub struct Damaged(pub String);

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the document's stored state is damaged: {}", self.0)
    }
}

impl std::error::Error for Damaged {}

/// What a client is told about a damaged document.
pub const DAMAGED_MESSAGE: &str = "this document's stored content is damaged and cannot be opened; an administrator can inspect and repair it with `vellum doctor`";
/// [`DAMAGED_MESSAGE`] as a close reason (at most 123 bytes, RFC 6455 §5.5).
pub const DAMAGED_CLOSE_REASON: &str =
    "this document's stored content is damaged; an administrator can repair it with `vellum doctor`";

#[derive(Debug)]
pub enum JoinError {
    /// Per-document or per-node connection limit.
    TooManyConnections(&'static str),
    /// The document could not be loaded; nothing was served.
    Unavailable(String),
    /// The database could not be used to load it: reconnect later.
    DatabaseUnavailable,
    /// Its stored state is damaged ([`Damaged`]).
    Damaged,
    /// This node is shutting down: the client reconnects (through the load balancer, to
    /// another node).
    ShuttingDown,
}

const _: () = assert!(DAMAGED_CLOSE_REASON.len() <= 123);

impl JoinError {
    pub fn close(&self) -> (u16, String) {
        match self {
            JoinError::TooManyConnections(what) => (close::TRY_AGAIN, format!("too many connections {what}")),
            JoinError::Unavailable(why) => (close::INTERNAL, format!("document unavailable: {why}")),
            JoinError::DatabaseUnavailable => (close::TRY_AGAIN, crate::error::DATABASE_UNAVAILABLE.into()),
            JoinError::Damaged => (close::INTERNAL, DAMAGED_CLOSE_REASON.into()),
            JoinError::ShuttingDown => (close::SERVICE_RESTART, "server restarting; reconnect".into()),
        }
    }
}

/// A fault injected into a room's next update apply, for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Panic,
    /// Spends more CPU time than `INLINE_SLOW` when applying on the room's own thread.
    Slow,
}

#[derive(Clone)]
pub struct Collab {
    shared: Arc<Shared>,
}

struct Shared {
    config: CollabConfig,
    store: Store,
    bus: Arc<dyn Bus>,
    node_id: Arc<str>,
    writer: Writer,
    sessions: SessionLog,
    /// One snapshot written at a time on this node. Snapshots are background work;
    /// when many rooms unloaded together (a final snapshot each), the next group commit
    /// waited behind all of them, on SQLite's write lock or for a pooled connection.
    /// With this and the store's write turns, the trace's p99 at 128 typists went from
    /// 45-109 ms to about 20 ms (benches/HISTORY.md, change 15).
    snapshot_writes: Semaphore,
    rooms: Mutex<HashMap<Uuid, RoomHandle>>,
    /// Set when shutdown begins: joins are refused from then on.
    shutting_down: AtomicBool,
    connections: AtomicUsize,
    next_conn: AtomicU64,
    next_room: AtomicU64,
    /// Client updates applied on a room's own thread, and on the blocking pool.
    applied_inline: AtomicU64,
    applied_on_pool: AtomicU64,
    snapshots_written: AtomicU64,
    content_changes: ContentChanges,
    /// Documents whose next update apply misbehaves (fault injection for tests).
    faults: Mutex<HashMap<Uuid, Fault>>,
    /// Set once a fault has been injected: until then no update locks `faults`.
    faults_armed: AtomicBool,
    /// Documents whose next load waits, after reading the database and before building
    /// the document, until the gate is notified (for tests).
    load_gates: Mutex<HashMap<Uuid, Arc<Notify>>>,
}

impl Collab {
    pub fn new(config: CollabConfig, node_id: Arc<str>, store: Store, bus: Arc<dyn Bus>) -> Self {
        let writer = Writer::spawn(store.clone(), config.max_batch);
        let sessions = SessionLog::spawn(store.clone());
        Self {
            shared: Arc::new(Shared {
                config,
                store,
                bus,
                node_id,
                writer,
                sessions,
                snapshot_writes: Semaphore::new(1),
                rooms: Mutex::new(HashMap::new()),
                shutting_down: AtomicBool::new(false),
                connections: AtomicUsize::new(0),
                next_conn: AtomicU64::new(1),
                next_room: AtomicU64::new(1),
                applied_inline: AtomicU64::new(0),
                applied_on_pool: AtomicU64::new(0),
                snapshots_written: AtomicU64::new(0),
                content_changes: ContentChanges::default(),
                faults: Mutex::new(HashMap::new()),
                faults_armed: AtomicBool::new(false),
                load_gates: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// With a bus other nodes share: every `every`, compares each loaded room with the
    /// database's last sequence number for its document (one query for all), so a room
    /// whose last message from another node was lost catches up (`Room::on_probe`).
    pub fn start_probe(&self, every: Duration) {
        if !self.shared.bus.shared() || every.is_zero() {
            return;
        }
        let shared = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(shared) = shared.upgrade() else { return };
                let rooms: Vec<(Uuid, RoomHandle)> = shared
                    .rooms
                    .lock()
                    .expect("rooms lock")
                    .iter()
                    .map(|(id, r)| (*id, r.clone()))
                    .collect();
                let ids: Vec<Uuid> = rooms.iter().map(|(id, _)| *id).collect();
                let last = match shared.store.last_seqs(&ids).await {
                    Ok(last) => last.into_iter().collect::<HashMap<Uuid, i64>>(),
                    Err(e) => {
                        tracing::debug!(error = ?e, "probe failed");
                        continue;
                    }
                };
                for (id, room) in rooms {
                    if let Some(&last_seq) = last.get(&id) {
                        let _ = room.tx.try_send(Cmd::Probe { last_seq });
                    }
                }
            }
        });
    }

    /// Writes a snapshot of `document_id` covering updates up to `covers`, in turn
    /// with the node's other snapshots (see `Shared::snapshot_writes`). Returns how long
    /// the write took once its turn came.
    async fn write_snapshot(&self, document_id: Uuid, state: &[u8], covers: i64) -> anyhow::Result<Duration> {
        let _turn = self.shared.snapshot_writes.acquire().await?;
        let started = std::time::Instant::now();
        self.shared.store.write_snapshot(document_id, state, covers).await?;
        self.shared.snapshots_written.fetch_add(1, Ordering::Relaxed);
        crate::metrics::snapshot_written();
        Ok(started.elapsed())
    }

    /// Snapshots this node has written, for tests.
    #[doc(hidden)]
    pub fn snapshots_written(&self) -> u64 {
        self.shared.snapshots_written.load(Ordering::Relaxed)
    }

    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    /// This node's connections, as recorded in `active_sessions`.
    pub fn sessions(&self) -> &SessionLog {
        &self.shared.sessions
    }

    pub fn config(&self) -> &CollabConfig {
        &self.shared.config
    }

    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.shared.bus
    }

    /// Publishes API-side events as this node.
    pub fn events(&self) -> crate::bus::Events {
        crate::bus::Events::new(self.shared.bus.clone(), self.shared.node_id.clone())
    }

    /// Counts a connection against `collab.max_connections` before it exists: `None` when
    /// the node is full. The socket handler takes one before the upgrade, so a crowd past
    /// the cap is refused with 503 however many arrive at once, and nobody is upgraded
    /// only to be closed.
    pub fn reserve_connection(&self) -> Option<ConnectionSlot> {
        let s = &self.shared;
        if s.connections.fetch_add(1, Ordering::Relaxed) >= s.config.max_connections {
            s.connections.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(ConnectionSlot {
            collab: self.clone(),
            held: true,
        })
    }

    /// Joins the room of `document_id`, loading it if needed.
    pub async fn join(&self, document_id: Uuid, peer: Peer) -> Result<Connection, JoinError> {
        let slot = self
            .reserve_connection()
            .ok_or(JoinError::TooManyConnections("on this server"))?;
        self.join_with(document_id, peer, slot).await
    }

    /// [`Collab::join`] on a slot reserved already; the connection keeps it.
    pub async fn join_with(
        &self,
        document_id: Uuid,
        peer: Peer,
        mut slot: ConnectionSlot,
    ) -> Result<Connection, JoinError> {
        let s = &self.shared;
        if s.shutting_down.load(Ordering::Relaxed) {
            return Err(JoinError::ShuttingDown);
        }
        let id = s.next_conn.fetch_add(1, Ordering::Relaxed);
        loop {
            let room = self.room(document_id);
            let (out, outbound, kill) = outbox::pair(s.config.outbound_queue);
            let (reply, answer) = oneshot::channel();
            let cmd = Cmd::Join {
                conn: id,
                peer: peer.clone(),
                out,
                reply,
            };
            if room.tx.send(cmd).await.is_err() {
                continue; // the room stopped meanwhile: load a fresh one
            }
            match answer.await {
                Ok(Ok(())) => {
                    slot.held = false; // the connection gives it back when it drops
                    let input = ConnInput {
                        id,
                        room,
                        collab: self.clone(),
                    };
                    return Ok(Connection { input, outbound, kill });
                }
                Ok(Err(room::JoinRefused::Retry)) | Err(_) => continue,
                Ok(Err(room::JoinRefused::Error(e))) => return Err(e),
            }
        }
    }

    /// The live room for `document_id`, started if there is none.
    fn room(&self, document_id: Uuid) -> RoomHandle {
        let mut rooms = self.shared.rooms.lock().expect("rooms lock");
        if let Some(r) = rooms.get(&document_id).filter(|r| !r.tx.is_closed()) {
            return r.clone();
        }
        let generation = self.shared.next_room.fetch_add(1, Ordering::Relaxed);
        let handle = room::spawn(self.clone(), document_id, generation);
        rooms.insert(document_id, handle.clone());
        handle
    }

    /// Removes the room if it is still the registered one for its document.
    /// Runs under the registry lock together with `check`, so a join cannot slip
    /// in between the check and the removal.
    fn unregister_if(&self, document_id: Uuid, generation: u64, check: impl FnOnce() -> bool) -> bool {
        let mut rooms = self.shared.rooms.lock().expect("rooms lock");
        let ours = rooms.get(&document_id).is_some_and(|r| r.generation == generation);
        if ours && check() {
            rooms.remove(&document_id);
            return true;
        }
        !ours
    }

    /// Who is in a document: on this node, then on the others (from the bus; nothing
    /// while it is down).
    pub async fn presence(&self, document_id: Uuid) -> Vec<PresenceEntry> {
        let remote = self.shared.bus.remote_presence(document_id);
        let mut here = self.local_presence(document_id).await;
        here.extend(remote.await);
        here
    }

    /// Who is in a document on this node (empty when its room is not loaded here).
    async fn local_presence(&self, document_id: Uuid) -> Vec<PresenceEntry> {
        let room = self.shared.rooms.lock().expect("rooms lock").get(&document_id).cloned();
        let Some(room) = room else { return Vec::new() };
        let (reply, answer) = oneshot::channel();
        if room.tx.send(Cmd::Presence { reply }).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Every connection on this node and who it is, by document.
    pub async fn peers(&self) -> Vec<(Uuid, Vec<(ConnId, Peer)>)> {
        let rooms: Vec<(Uuid, RoomHandle)> = {
            let rooms = self.shared.rooms.lock().expect("rooms lock");
            rooms.iter().map(|(id, r)| (*id, r.clone())).collect()
        };
        let mut out = Vec::with_capacity(rooms.len());
        for (id, room) in rooms {
            let (reply, answer) = oneshot::channel();
            if room.tx.send(Cmd::Peers { reply }).await.is_ok()
                && let Ok(peers) = answer.await
                && !peers.is_empty()
            {
                out.push((id, peers));
            }
        }
        out
    }

    /// Tells a document's room what checking its connections' access again decided.
    pub async fn reauthorized(&self, document_id: Uuid, verdicts: Vec<(ConnId, Verdict)>) {
        let room = self.shared.rooms.lock().expect("rooms lock").get(&document_id).cloned();
        if let Some(room) = room {
            let _ = room.tx.send(Cmd::Reauthorized { verdicts }).await;
        }
    }

    /// Open document sockets on this node (metrics).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Whether shutdown has begun (`/readyz` then says so, and joins are refused).
    pub fn shutting_down(&self) -> bool {
        self.shared.shutting_down.load(Ordering::Relaxed)
    }

    /// Changes a document from the server (restore, setBody): `edit` runs in the
    /// document's room, inside one transaction, so it sees and merges with every edit
    /// applied so far. The change is stored and broadcast like a client's update; the
    /// answer comes once it is durable.
    pub async fn edit(
        &self,
        document_id: Uuid,
        author: Option<Uuid>,
        edit: impl FnOnce(&mut yrs::TransactionMut) -> bool + Send + 'static,
    ) -> Result<Edited, EditError> {
        let mut edit: room::EditFn = Box::new(edit);
        for _ in 0..5 {
            let room = self.room(document_id);
            let (reply, answer) = oneshot::channel();
            let cmd = Cmd::Edit { author, edit, reply };
            match room.tx.send(cmd).await {
                Ok(()) => {}
                Err(mpsc::error::SendError(Cmd::Edit { edit: e, .. })) => {
                    edit = e; // the room stopped meanwhile: load a fresh one
                    continue;
                }
                Err(_) => unreachable!("the command sent was an edit"),
            }
            return answer
                .await
                .unwrap_or_else(|_| Err(EditError::Retry("the document was reloaded; try again".into())));
        }
        Err(EditError::Retry("the document is unavailable; try again".into()))
    }

    /// The durable state of a document (what the database holds), encoded as one update.
    pub async fn durable_state(&self, document_id: Uuid) -> anyhow::Result<Vec<u8>> {
        let (doc, _, _) = room::load(self, document_id).await?;
        Ok(tokio::task::spawn_blocking(move || crate::content::encode_state(&doc)).await?)
    }

    /// The body the database holds for a document, and the sequence number of the last
    /// update in it.
    pub async fn durable_body(&self, document_id: Uuid) -> anyhow::Result<(crate::content::Body, i64)> {
        durable_body(&self.shared.store, document_id).await
    }

    /// Documents whose content changed on this node (a client's update made durable, or
    /// another node's applied) since the last [`ContentChanges::take`]: what the search
    /// indexer refreshes live drafts from.
    pub fn content_changes(&self) -> &ContentChanges {
        &self.shared.content_changes
    }

    /// Number of loaded rooms (metrics and tests).
    pub fn loaded_rooms(&self) -> usize {
        self.shared.rooms.lock().expect("rooms lock").len()
    }

    /// Unloads every room: refuses new joins, waits for pending commits, writes final
    /// snapshots and closes sockets with 1012 (clients reconnect, through the load
    /// balancer to another node). For graceful shutdown.
    pub async fn shutdown(&self) {
        self.shared.shutting_down.store(true, Ordering::Relaxed);
        let rooms: Vec<RoomHandle> = self
            .shared
            .rooms
            .lock()
            .expect("rooms lock")
            .values()
            .cloned()
            .collect();
        for room in rooms {
            let (reply, done) = oneshot::channel();
            if room.tx.send(Cmd::Shutdown { reply }).await.is_ok() {
                let _ = done.await;
            }
        }
        // Every room's last update is committed: the pool may close.
        self.shared.writer.release_connection();
    }

    /// Test hook: the next update applied to `document_id` panics inside the room (an
    /// empty one, `[0, 0]`, does not count).
    #[doc(hidden)]
    pub fn inject_apply_panic(&self, document_id: Uuid) {
        self.shared
            .faults
            .lock()
            .expect("faults lock")
            .insert(document_id, Fault::Panic);
        self.shared.faults_armed.store(true, Ordering::Release);
    }

    /// Test hook: the next update (not an empty one) applied to `document_id` on the
    /// room's own thread takes longer than `INLINE_SLOW` of CPU time (see
    /// `Room::apply_inline`; only documents over `INLINE_ENCODE_BYTES` are timed, so on a
    /// smaller one the hook does nothing).
    #[doc(hidden)]
    pub fn inject_slow_apply(&self, document_id: Uuid) {
        self.shared
            .faults
            .lock()
            .expect("faults lock")
            .insert(document_id, Fault::Slow);
        self.shared.faults_armed.store(true, Ordering::Release);
    }

    /// How many client updates (empty ones aside) were applied on a room's own thread and
    /// how many on the blocking pool (see `Room::apply_inline`), for tests.
    #[doc(hidden)]
    pub fn apply_sites(&self) -> (u64, u64) {
        (
            self.shared.applied_inline.load(Ordering::Relaxed),
            self.shared.applied_on_pool.load(Ordering::Relaxed),
        )
    }

    fn take_fault(&self, document_id: Uuid) -> Option<Fault> {
        if !self.shared.faults_armed.load(Ordering::Acquire) {
            return None;
        }
        self.shared.faults.lock().expect("faults lock").remove(&document_id)
    }

    /// Test hook: the next load of `document_id` reads the database, then waits to build
    /// the document until the returned gate is notified (`notify_one`).
    #[doc(hidden)]
    pub fn hold_next_load(&self, document_id: Uuid) -> Arc<Notify> {
        let gate = Arc::new(Notify::new());
        self.shared
            .load_gates
            .lock()
            .expect("gates lock")
            .insert(document_id, gate.clone());
        gate
    }

    fn take_load_gate(&self, document_id: Uuid) -> Option<Arc<Notify>> {
        self.shared.load_gates.lock().expect("gates lock").remove(&document_id)
    }
}

/// What the room does with one client frame, without a room: decode it; for an update,
/// apply it to `doc` under the same checks; for a sync step 1, encode the reply. For the
/// fuzz target and benches. A panic while encoding that reply is not caught here: in a
/// room it is (the room then reloads, disconnecting everyone in it), so any client's
/// state vector that makes yrs panic is a bug the fuzzer must report.
#[doc(hidden)]
/// [`Collab::durable_body`] from a store alone.
pub async fn durable_body(store: &Store, document_id: Uuid) -> anyhow::Result<(crate::content::Body, i64)> {
    let (doc, seq, _) = room::load_from(store, document_id).await?;
    let body = tokio::task::spawn_blocking(move || crate::content::Body::from_doc(&doc)).await?;
    Ok((body, seq))
}

/// A set of changed documents, drained by whoever polls it.
#[derive(Default)]
pub struct ContentChanges {
    changed: std::sync::Mutex<std::collections::HashSet<Uuid>>,
}

impl ContentChanges {
    pub fn mark(&self, document_id: Uuid) {
        self.changed.lock().expect("content changes lock").insert(document_id);
    }

    pub fn is_empty(&self) -> bool {
        self.changed.lock().expect("content changes lock").is_empty()
    }

    pub fn take(&self) -> Vec<Uuid> {
        self.changed.lock().expect("content changes lock").drain().collect()
    }
}

pub fn apply_frame(doc: &yrs::Doc, frame: &[u8], max_pending_bytes: usize) -> Result<(), String> {
    match protocol::decode(frame) {
        Err(r) => Err(r.close().1),
        Ok(protocol::Incoming::Update(data)) => room::apply_checked(doc, &data, max_pending_bytes),
        Ok(protocol::Incoming::SyncStep1(sv)) => {
            let _ = doc.transact().encode_diff_v1(&sv);
            Ok(())
        }
        Ok(_) => Ok(()),
    }
}

/// Encodes a y-websocket update message (what clients send and the room broadcasts).
#[doc(hidden)]
pub fn update_frame(update: &[u8]) -> Bytes {
    protocol::update(update)
}
