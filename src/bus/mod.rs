//! Cross-node fan-out. Single node: [`InProcessBus`]. Many nodes: [`RedisBus`]
//! (`bus.redis_url`), Redis pub/sub with a channel per document.
//!
//! Invariant: the bus is derived state, never on the durability path. A node that
//! misses messages catches up from the database (a room sees a gap in the sequence
//! numbers, a [`BusEvent::Resync`] after a reconnect, or the probe); nothing is only on
//! the bus, and nothing waits for it.

mod redis;

pub use self::redis::RedisBus;

use futures::future::BoxFuture;

use crate::collab::PresenceEntry;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::broadcast;
use uuid::Uuid;

/// What travels on a document's channel.
#[derive(Debug, Clone)]
pub enum BusEvent {
    /// A durable CRDT update with its per-document sequence number.
    Update { seq: i64, data: Bytes },
    /// A raw awareness message (y-protocols encoding).
    Awareness { data: Bytes },
    /// Who is in the document changed (someone joined, left, or moved their cursor).
    PresenceChanged,
    /// Metadata or publication changed, or the document was deleted.
    DocumentChanged { change: DocumentChange },
    /// A named version was saved (by hand, by a restore or by publishing).
    VersionCreated { version_id: i64 },
    /// Sent by the bus itself to a document's rooms after it (re)subscribed: messages
    /// may have been lost meanwhile, so they catch up from the database.
    Resync,
}

/// What happened to a document, for `documentChanged` subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentChange {
    Metadata,
    Published,
    Unpublished,
    Deleted,
}

#[derive(Debug, Clone)]
pub struct BusMessage {
    /// The node that published it; a node ignores its own messages.
    pub origin: Arc<str>,
    pub document_id: Uuid,
    pub event: BusEvent,
}

pub trait Bus: Send + Sync + 'static {
    fn publish(&self, msg: BusMessage);
    /// Every message for one document from now on, this node's included (for
    /// subscriptions). A receiver that lags gets `RecvError::Lagged`.
    fn subscribe(&self, document_id: Uuid) -> broadcast::Receiver<BusMessage>;
    /// Only other nodes' messages for one document: what a room must apply. A room
    /// that lags catches up from the database.
    fn subscribe_remote(&self, document_id: Uuid) -> broadcast::Receiver<BusMessage>;
    /// Whether other nodes share this bus (then rooms probe the database too).
    fn shared(&self) -> bool {
        false
    }
    /// Whether messages reach the other nodes right now (`/readyz` says degraded if not).
    fn connected(&self) -> bool {
        true
    }
    /// Who is in a document on this node, for other nodes' presence answers (called
    /// by the room, before it publishes [`BusEvent::PresenceChanged`]).
    fn set_presence(&self, _document_id: Uuid, _entries: Vec<PresenceEntry>) {}
    /// Who is in a document on the other nodes.
    fn remote_presence(&self, _document_id: Uuid) -> BoxFuture<'static, Vec<PresenceEntry>> {
        Box::pin(async { Vec::new() })
    }
}

/// Publishes API-side events (metadata, publication, versions) as this node.
#[derive(Clone)]
pub struct Events {
    bus: Arc<dyn Bus>,
    origin: Arc<str>,
}

impl Events {
    pub fn new(bus: Arc<dyn Bus>, origin: Arc<str>) -> Self {
        Self { bus, origin }
    }

    pub fn document_changed(&self, document_id: Uuid, change: DocumentChange) {
        self.publish(document_id, BusEvent::DocumentChanged { change });
    }

    pub fn version_created(&self, document_id: Uuid, version_id: i64) {
        self.publish(document_id, BusEvent::VersionCreated { version_id });
    }

    fn publish(&self, document_id: Uuid, event: BusEvent) {
        self.bus.publish(BusMessage {
            origin: self.origin.clone(),
            document_id,
            event,
        });
    }
}

/// Per-document broadcast channels inside one process.
pub struct InProcessBus {
    channels: Mutex<HashMap<Uuid, broadcast::Sender<BusMessage>>>,
    capacity: usize,
    /// There are no other nodes: remote subscribers get a channel nothing is sent on.
    /// (Rooms used to read their own messages and, falling behind under load, reloaded
    /// from the database over and over.)
    no_remote: broadcast::Sender<BusMessage>,
}

impl InProcessBus {
    pub fn new(capacity: usize) -> Self {
        Self {
            channels: Mutex::new(HashMap::new()),
            capacity,
            no_remote: broadcast::channel(1).0,
        }
    }
}

impl Bus for InProcessBus {
    fn publish(&self, msg: BusMessage) {
        let mut channels = self.channels.lock().expect("bus lock");
        if let Some(tx) = channels.get(&msg.document_id)
            && tx.send(msg.clone()).is_err()
        {
            // Nobody listens any more: forget the channel.
            channels.remove(&msg.document_id);
        }
    }

    fn subscribe(&self, document_id: Uuid) -> broadcast::Receiver<BusMessage> {
        let mut channels = self.channels.lock().expect("bus lock");
        channels
            .entry(document_id)
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }

    fn subscribe_remote(&self, _document_id: Uuid) -> broadcast::Receiver<BusMessage> {
        self.no_remote.subscribe()
    }
}
