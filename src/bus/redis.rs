//! The bus over Redis pub/sub, for many nodes: a channel per document
//! (`vellum:doc:<id>`), messages tagged with their origin node (a node ignores its own)
//! and, for updates, the sequence number the database gave them.
//!
//! Redis is never waited for: publishing queues a message (a bounded queue; when it is
//! full, or Redis is down, the message is dropped and counted), and receiving runs on
//! its own task. A reconnect resubscribes every channel and tells the rooms to catch up
//! from the database ([`BusEvent::Resync`]), as does each new subscription once Redis
//! confirms it, since what was published before that never reaches this node.
//!
//! Presence: each node keeps who is connected to it per document in a Redis hash
//! (`vellum:presence:<id>`, one field per node, renewed every `PRESENCE_RENEW`), so any
//! node answers for all; [`BusEvent::PresenceChanged`] goes out after the hash is written.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast, mpsc};
use uuid::Uuid;

use super::{Bus, BusEvent, BusMessage, DocumentChange};
use crate::collab::PresenceEntry;

/// Messages waiting to be published; past this, new ones are dropped (and counted).
const OUT_QUEUE: usize = 8192;
/// Messages published in one pipeline.
const OUT_BATCH: usize = 256;
/// How long a connection attempt or a command may take before Redis counts as down.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// The subscriber pings this often: a Redis that stops answering without closing the
/// connection (a stopped process, a network partition) is noticed within a few seconds.
const PING_EVERY: Duration = Duration::from_secs(3);
/// Reconnect backoff: from the first to the last, doubling.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));
/// Documents nobody on this node listens to any more are unsubscribed this often.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// A node renews its presence entries this often; entries older than `PRESENCE_STALE`
/// (a node that died) are ignored.
const PRESENCE_RENEW: Duration = Duration::from_secs(10);
const PRESENCE_STALE: Duration = Duration::from_secs(35);
/// Presence writes of one burst (a caret moving on every keystroke) go out together.
const PRESENCE_COALESCE: Duration = Duration::from_millis(30);

const WIRE_VERSION: u8 = 1;

pub struct RedisBus {
    inner: Arc<Inner>,
}

struct Inner {
    node: Arc<str>,
    client: redis::Client,
    channels: Mutex<HashMap<Uuid, Channels>>,
    /// Channels the subscriber task should (un)subscribe.
    subs: mpsc::UnboundedSender<Uuid>,
    out: mpsc::Sender<(Uuid, Vec<u8>)>,
    subscriber_up: AtomicBool,
    publisher_up: AtomicBool,
    /// `bus.drop_percent`: a test switch that loses that share of received messages.
    drop_percent: u8,
    presence: Mutex<Presence>,
    presence_dirty: Notify,
}

struct Channels {
    /// Every message for the document, this node's included (subscriptions).
    all: broadcast::Sender<BusMessage>,
    /// Other nodes' messages (rooms).
    remote: broadcast::Sender<BusMessage>,
}

#[derive(Default)]
struct Presence {
    /// This node's entries per document (non-empty), renewed every `PRESENCE_RENEW`.
    current: HashMap<Uuid, Vec<PresenceEntry>>,
    /// Documents whose entries changed since the last write.
    dirty: HashSet<Uuid>,
}

#[derive(Serialize, Deserialize)]
struct PresenceField {
    /// Milliseconds since the Unix epoch when written.
    at: u64,
    entries: Vec<PresenceEntry>,
}

impl RedisBus {
    /// Connects lazily: the tasks retry until Redis answers, and the node serves
    /// meanwhile (a single node's worth of collaboration, `/readyz` degraded).
    pub fn start(url: &str, node: Arc<str>, drop_percent: u8) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("bus.redis_url: {e}"))?;
        let (subs, subs_rx) = mpsc::unbounded_channel();
        let (out, out_rx) = mpsc::channel(OUT_QUEUE);
        let inner = Arc::new(Inner {
            node,
            client,
            channels: Mutex::new(HashMap::new()),
            subs,
            out,
            subscriber_up: AtomicBool::new(false),
            publisher_up: AtomicBool::new(false),
            drop_percent: drop_percent.min(100),
            presence: Mutex::new(Presence::default()),
            presence_dirty: Notify::new(),
        });
        tokio::spawn(subscriber(Arc::downgrade(&inner), subs_rx));
        tokio::spawn(publisher(Arc::downgrade(&inner), out_rx));
        tokio::spawn(presence_writer(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    fn channels(&self, document_id: Uuid) -> (broadcast::Sender<BusMessage>, broadcast::Sender<BusMessage>) {
        let mut channels = self.inner.channels.lock().expect("bus lock");
        let c = channels.entry(document_id).or_insert_with(|| {
            let _ = self.inner.subs.send(document_id);
            Channels {
                all: broadcast::channel(1024).0,
                remote: broadcast::channel(1024).0,
            }
        });
        (c.all.clone(), c.remote.clone())
    }
}

impl Bus for RedisBus {
    fn publish(&self, msg: BusMessage) {
        let tx = self
            .inner
            .channels
            .lock()
            .expect("bus lock")
            .get(&msg.document_id)
            .map(|c| c.all.clone());
        if let Some(tx) = tx {
            let _ = tx.send(msg.clone());
        }
        if matches!(msg.event, BusEvent::PresenceChanged | BusEvent::Resync) {
            return; // presence goes out once its hash is written (`presence_writer`)
        }
        self.inner.send(msg.document_id, encode(&msg));
    }

    fn subscribe(&self, document_id: Uuid) -> broadcast::Receiver<BusMessage> {
        self.channels(document_id).0.subscribe()
    }

    fn subscribe_remote(&self, document_id: Uuid) -> broadcast::Receiver<BusMessage> {
        self.channels(document_id).1.subscribe()
    }

    fn shared(&self) -> bool {
        true
    }

    fn connected(&self) -> bool {
        self.inner.subscriber_up.load(Ordering::Relaxed) && self.inner.publisher_up.load(Ordering::Relaxed)
    }

    fn set_presence(&self, document_id: Uuid, entries: Vec<PresenceEntry>) {
        let mut p = self.inner.presence.lock().expect("presence lock");
        if entries.is_empty() {
            p.current.remove(&document_id);
        } else {
            p.current.insert(document_id, entries);
        }
        p.dirty.insert(document_id);
        drop(p);
        self.inner.presence_dirty.notify_one();
    }

    fn remote_presence(&self, document_id: Uuid) -> BoxFuture<'static, Vec<PresenceEntry>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let read = async {
                let mut conn = inner.client.get_multiplexed_async_connection().await?;
                let fields: HashMap<String, Vec<u8>> = conn.hgetall(presence_key(document_id)).await?;
                Ok::<_, redis::RedisError>(fields)
            };
            let fields = match tokio::time::timeout(REDIS_TIMEOUT, read).await {
                Ok(Ok(fields)) => fields,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "could not read other nodes' presence");
                    return Vec::new();
                }
                Err(_) => return Vec::new(),
            };
            let fresh_after = unix_ms().saturating_sub(PRESENCE_STALE.as_millis() as u64);
            let mut nodes: Vec<(String, PresenceField)> = fields
                .into_iter()
                .filter(|(node, _)| *node != *inner.node)
                .filter_map(|(node, raw)| Some((node, serde_json::from_slice::<PresenceField>(&raw).ok()?)))
                .filter(|(_, f)| f.at >= fresh_after)
                .collect();
            nodes.sort_by(|a, b| a.0.cmp(&b.0));
            nodes.into_iter().flat_map(|(_, f)| f.entries).collect()
        })
    }
}

impl Inner {
    /// Queues a message for the publisher; dropped (and counted) when Redis is down or
    /// the queue is full.
    fn send(&self, document_id: Uuid, payload: Vec<u8>) {
        if !self.publisher_up.load(Ordering::Relaxed) {
            crate::metrics::bus_dropped("down");
            return;
        }
        if self.out.try_send((document_id, payload)).is_err() {
            crate::metrics::bus_dropped("full");
        }
    }

    /// Hands a message from Redis to this node's listeners.
    fn receive(&self, channel: &str, payload: &[u8]) {
        let Some(document_id) = channel
            .strip_prefix("vellum:doc:")
            .and_then(|id| Uuid::parse_str(id).ok())
        else {
            return;
        };
        let Some((msg, sent_at)) = decode(document_id, payload) else {
            crate::metrics::bus_dropped("invalid");
            return;
        };
        if *msg.origin == *self.node {
            return; // our own, delivered locally when published
        }
        if self.drop_percent > 0 && rand::random::<u8>() % 100 < self.drop_percent {
            crate::metrics::bus_dropped("test");
            return;
        }
        crate::metrics::bus_received(Duration::from_micros(unix_us().saturating_sub(sent_at)));
        self.deliver(msg, true);
    }

    fn deliver(&self, msg: BusMessage, to_all: bool) {
        let channels = self.channels.lock().expect("bus lock");
        let Some(c) = channels.get(&msg.document_id) else {
            return;
        };
        if to_all {
            let _ = c.all.send(msg.clone());
        }
        let _ = c.remote.send(msg);
    }

    /// Tells the rooms of `documents` to catch up from the database.
    fn resync(&self, documents: impl IntoIterator<Item = Uuid>) {
        for document_id in documents {
            let msg = BusMessage {
                origin: Arc::from(""),
                document_id,
                event: BusEvent::Resync,
            };
            self.deliver(msg, false);
        }
    }

    /// Forgets documents nobody on this node listens to; returns them.
    fn sweep(&self) -> Vec<Uuid> {
        let mut channels = self.channels.lock().expect("bus lock");
        let idle: Vec<Uuid> = channels
            .iter()
            .filter(|(_, c)| c.all.receiver_count() == 0 && c.remote.receiver_count() == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in &idle {
            channels.remove(id);
        }
        idle
    }

    fn subscribed(&self) -> Vec<Uuid> {
        self.channels.lock().expect("bus lock").keys().copied().collect()
    }
}

fn channel_name(document_id: Uuid) -> String {
    format!("vellum:doc:{document_id}")
}

fn presence_key(document_id: Uuid) -> String {
    format!("vellum:presence:{document_id}")
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn unix_ms() -> u64 {
    unix_us() / 1000
}

/// Keeps a pub/sub connection, subscribed to every document someone on this node
/// listens to; reconnects with backoff.
async fn subscriber(inner: std::sync::Weak<Inner>, mut subs: mpsc::UnboundedReceiver<Uuid>) {
    let mut backoff = BACKOFF.0;
    let mut ever_connected = false;
    loop {
        let Some(this) = inner.upgrade() else { return };
        let client = this.client.clone();
        drop(this);
        let connected = tokio::time::timeout(REDIS_TIMEOUT, client.get_async_pubsub()).await;
        let Ok(Ok(pubsub)) = connected else {
            if let Some(this) = inner.upgrade() {
                if this.subscriber_up.swap(false, Ordering::Relaxed) {
                    tracing::warn!("lost the Redis bus; collaboration continues on this node alone");
                }
            } else {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF.1);
            continue;
        };
        let (mut sink, mut stream) = pubsub.split();
        let Some(this) = inner.upgrade() else { return };
        // Everything someone listens to, then a catch-up for all of it: whatever was
        // published while this node was not subscribed never comes.
        while subs.try_recv().is_ok() {}
        let documents = this.subscribed();
        let names: Vec<String> = documents.iter().map(|d| channel_name(*d)).collect();
        let ok = names.is_empty()
            || matches!(
                tokio::time::timeout(REDIS_TIMEOUT, sink.subscribe(&names)).await,
                Ok(Ok(()))
            );
        if !ok {
            drop(this);
            tokio::time::sleep(backoff).await;
            continue;
        }
        if ever_connected {
            tracing::info!(documents = documents.len(), "Redis bus back; catching up");
        }
        ever_connected = true;
        this.subscriber_up.store(true, Ordering::Relaxed);
        this.resync(documents.iter().copied());
        let mut listening: HashSet<Uuid> = documents.into_iter().collect();
        drop(this);
        backoff = BACKOFF.0;
        let start = tokio::time::Instant::now();
        let mut ping = tokio::time::interval_at(start + PING_EVERY, PING_EVERY);
        let mut sweep = tokio::time::interval_at(start + SWEEP_EVERY, SWEEP_EVERY);
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else { break };
                    let Some(this) = inner.upgrade() else { return };
                    this.receive(msg.get_channel_name(), msg.get_payload_bytes());
                }
                doc = subs.recv() => {
                    let Some(doc) = doc else { return };
                    if !listening.insert(doc) {
                        continue;
                    }
                    let done = tokio::time::timeout(REDIS_TIMEOUT, sink.subscribe(channel_name(doc))).await;
                    if !matches!(done, Ok(Ok(()))) {
                        break;
                    }
                    let Some(this) = inner.upgrade() else { return };
                    this.resync([doc]);
                }
                _ = ping.tick() => {
                    // In subscribed mode PING answers an array (`pong`, ""), not a status.
                    let pong = tokio::time::timeout(REDIS_TIMEOUT, sink.ping::<redis::Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        break;
                    }
                }
                _ = sweep.tick() => {
                    let Some(this) = inner.upgrade() else { return };
                    let idle = this.sweep();
                    drop(this);
                    if !idle.is_empty() {
                        idle.iter().for_each(|d| { listening.remove(d); });
                        let names: Vec<String> = idle.iter().map(|d| channel_name(*d)).collect();
                        let done = tokio::time::timeout(REDIS_TIMEOUT, sink.unsubscribe(&names)).await;
                        if !matches!(done, Ok(Ok(()))) {
                            break;
                        }
                    }
                }
            }
        }
        if let Some(this) = inner.upgrade() {
            this.subscriber_up.store(false, Ordering::Relaxed);
            tracing::warn!("lost the Redis bus; collaboration continues on this node alone");
        }
    }
}

/// Publishes queued messages in pipelines; while Redis is down, nothing is queued.
async fn publisher(inner: std::sync::Weak<Inner>, mut out: mpsc::Receiver<(Uuid, Vec<u8>)>) {
    let mut backoff = BACKOFF.0;
    let mut batch = Vec::with_capacity(OUT_BATCH);
    loop {
        let Some(this) = inner.upgrade() else { return };
        let client = this.client.clone();
        drop(this);
        let conn = tokio::time::timeout(REDIS_TIMEOUT, client.get_multiplexed_async_connection()).await;
        let Ok(Ok(mut conn)) = conn else {
            let Some(this) = inner.upgrade() else { return };
            this.publisher_up.store(false, Ordering::Relaxed);
            drop(this);
            while out.try_recv().is_ok() {
                crate::metrics::bus_dropped("down");
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF.1);
            continue;
        };
        backoff = BACKOFF.0;
        if let Some(this) = inner.upgrade() {
            this.publisher_up.store(true, Ordering::Relaxed);
        }
        loop {
            if out.recv_many(&mut batch, OUT_BATCH).await == 0 {
                return;
            }
            let mut pipe = redis::pipe();
            for (document_id, payload) in &batch {
                pipe.publish(channel_name(*document_id), payload.as_slice()).ignore();
            }
            let sent = batch.len();
            batch.clear();
            match tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(&mut conn)).await {
                Ok(Ok(())) => crate::metrics::bus_published(sent),
                _ => {
                    (0..sent).for_each(|_| crate::metrics::bus_dropped("down"));
                    break;
                }
            }
        }
    }
}

/// A document's presence field to write (`None`: delete it: nobody here any more).
type PresenceWrite = (Uuid, Option<Vec<u8>>);

/// Writes this node's presence to Redis when it changes (and renews it), then tells the
/// other nodes.
async fn presence_writer(inner: std::sync::Weak<Inner>) {
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let mut renew = tokio::time::interval(PRESENCE_RENEW);
    loop {
        let Some(this) = inner.upgrade() else { return };
        let renewing = tokio::select! {
            _ = this.presence_dirty.notified() => false,
            _ = renew.tick() => true,
        };
        tokio::time::sleep(PRESENCE_COALESCE).await;
        let (writes, changed): (Vec<PresenceWrite>, Vec<Uuid>) = {
            let mut p = this.presence.lock().expect("presence lock");
            let mut docs: HashSet<Uuid> = std::mem::take(&mut p.dirty);
            let changed: Vec<Uuid> = docs.iter().copied().collect();
            if renewing {
                docs.extend(p.current.keys().copied());
            }
            let at = unix_ms();
            let writes = docs
                .into_iter()
                .map(|d| {
                    let field = p.current.get(&d).map(|entries| {
                        serde_json::to_vec(&PresenceField {
                            at,
                            entries: entries.clone(),
                        })
                        .unwrap_or_default()
                    });
                    (d, field)
                })
                .collect();
            (writes, changed)
        };
        if writes.is_empty() {
            continue;
        }
        if conn.is_none() {
            let client = this.client.clone();
            conn = tokio::time::timeout(REDIS_TIMEOUT, client.get_multiplexed_async_connection())
                .await
                .ok()
                .and_then(Result::ok);
        }
        let Some(c) = conn.as_mut() else {
            // Redis is down: try again at the next change or renewal.
            this.presence.lock().expect("presence lock").dirty.extend(changed);
            continue;
        };
        let mut pipe = redis::pipe();
        for (document_id, field) in &writes {
            let key = presence_key(*document_id);
            match field {
                Some(json) => {
                    pipe.hset(&key, &*this.node, json.as_slice()).ignore();
                    pipe.pexpire(&key, PRESENCE_STALE.as_millis() as i64 * 2).ignore();
                }
                None => {
                    pipe.hdel(&key, &*this.node).ignore();
                }
            }
        }
        for document_id in &changed {
            let msg = BusMessage {
                origin: this.node.clone(),
                document_id: *document_id,
                event: BusEvent::PresenceChanged,
            };
            pipe.publish(channel_name(*document_id), encode(&msg)).ignore();
        }
        if !matches!(
            tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(c)).await,
            Ok(Ok(()))
        ) {
            conn = None;
            this.presence.lock().expect("presence lock").dirty.extend(changed);
        }
    }
}

/// `version, kind, origin length, origin, sent at (µs since the epoch), then the kind's
/// fields`: a few bytes around an update, which is most of the traffic.
fn encode(msg: &BusMessage) -> Vec<u8> {
    let origin = msg.origin.as_bytes();
    let origin = &origin[..origin.len().min(255)];
    let (kind, seq, data): (u8, i64, &[u8]) = match &msg.event {
        BusEvent::Update { seq, data } => (1, *seq, data),
        BusEvent::Awareness { data } => (2, 0, data),
        BusEvent::PresenceChanged => (3, 0, &[]),
        BusEvent::DocumentChanged { change } => (
            4,
            match change {
                DocumentChange::Metadata => 0,
                DocumentChange::Published => 1,
                DocumentChange::Unpublished => 2,
                DocumentChange::Deleted => 3,
            },
            &[],
        ),
        BusEvent::VersionCreated { version_id } => (5, *version_id, &[]),
        BusEvent::Resync => (6, 0, &[]),
    };
    let mut out = Vec::with_capacity(19 + origin.len() + data.len());
    out.extend_from_slice(&[WIRE_VERSION, kind, origin.len() as u8]);
    out.extend_from_slice(origin);
    out.extend_from_slice(&unix_us().to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// [`encode`] backwards, with the time it was sent; `None` for anything else.
fn decode(document_id: Uuid, b: &[u8]) -> Option<(BusMessage, u64)> {
    let &[version, kind, len] = b.get(..3)? else {
        return None;
    };
    let rest = &b[3..];
    if version != WIRE_VERSION || rest.len() < len as usize + 16 {
        return None;
    }
    let (origin, rest) = rest.split_at(len as usize);
    let origin: Arc<str> = std::str::from_utf8(origin).ok()?.into();
    let sent_at = u64::from_le_bytes(rest[..8].try_into().ok()?);
    let n = i64::from_le_bytes(rest[8..16].try_into().ok()?);
    let data = Bytes::copy_from_slice(&rest[16..]);
    let event = match kind {
        1 => BusEvent::Update { seq: n, data },
        2 => BusEvent::Awareness { data },
        3 => BusEvent::PresenceChanged,
        4 => BusEvent::DocumentChanged {
            change: match n {
                0 => DocumentChange::Metadata,
                1 => DocumentChange::Published,
                2 => DocumentChange::Unpublished,
                3 => DocumentChange::Deleted,
                _ => return None,
            },
        },
        5 => BusEvent::VersionCreated { version_id: n },
        _ => return None,
    };
    Some((
        BusMessage {
            origin,
            document_id,
            event,
        },
        sent_at,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_survive_the_wire() {
        let doc = Uuid::new_v4();
        let cases = [
            BusEvent::Update {
                seq: 42,
                data: Bytes::from_static(b"\x01\x02"),
            },
            BusEvent::Awareness {
                data: Bytes::from_static(b"aw"),
            },
            BusEvent::PresenceChanged,
            BusEvent::DocumentChanged {
                change: DocumentChange::Deleted,
            },
            BusEvent::VersionCreated { version_id: 7 },
        ];
        for event in cases {
            let msg = BusMessage {
                origin: "node-a".into(),
                document_id: doc,
                event,
            };
            let (back, _) = decode(doc, &encode(&msg)).expect("decodes");
            assert_eq!(&*back.origin, "node-a");
            assert_eq!(format!("{:?}", back.event), format!("{:?}", msg.event));
        }
        assert!(decode(doc, b"").is_none());
        assert!(decode(doc, &[9, 1, 0]).is_none(), "unknown version");
        assert!(decode(doc, &[1, 1, 200, 1, 2]).is_none(), "truncated");
        let resync = encode(&BusMessage {
            origin: "x".into(),
            document_id: doc,
            event: BusEvent::Resync,
        });
        assert!(decode(doc, &resync).is_none(), "a resync never comes from another node");
    }
}
