//! One y-websocket client: a WebSocket and a yrs `Doc`, speaking the protocol the stock
//! `y-websocket` provider speaks (sync step 1 on connect, a sync step 2 answer to the
//! server's step 1, updates both ways) and handling awareness as the stock client does:
//! every awareness entry it applies (newer than what it holds, y-protocols' rule), its own
//! or anyone else's, it sends back to the server, since the provider's `update` handler
//! does not look at the origin. A server that relays those echoes pays for them here too.
//!
//! Latency is measured with one clock: every sender registers a table of its operations
//! (`Ops`: the Yjs clock each one ends at, and the instant it was sent, on the process-wide
//! `Registry::epoch`). A receiver that integrates an update sees its document's state
//! vector advance for the sender's client id; every operation whose end clock it now
//! covers was delivered, and `now - sent` is its sender→receiver latency. The inserted
//! content also names its sender and sequence number (`<idx.seq>` in `fanout`), so a
//! divergence report shows whose edit went missing.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use yrs::block::ClientID;
use yrs::encoding::read::Cursor;
use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
use yrs::sync::{Message as YMessage, MessageReader, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Text, TextRef, Transact, Update};

/// The root text every client edits (any name works with y-websocket servers).
pub const TEXT: &str = "text";
/// Client ids are `CLIENT_BASE + index`: 32-bit like the ids Yjs picks, unique per run.
pub const CLIENT_BASE: u64 = 0x1000_0000;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a y-websocket update message starts: message type sync (0), sync type update (2).
const UPDATE_PREFIX: &[u8] = &[0, 2];

/// How a sender's operations map to its Yjs clock.
pub enum Ends {
    /// Every operation inserts exactly this many characters.
    Fixed(u32),
    /// The clock after each operation, and whether it inserted anything (operations
    /// that only delete leave no trace in the state vector and are not measured).
    Table { ends: Vec<u32>, inserts: Vec<bool> },
}

pub struct Ops {
    ends: Ends,
    /// Send instants (ns since the epoch, +1; 0 = not sent), a ring indexed by op % len.
    sent: Vec<AtomicU64>,
}

impl Ops {
    pub fn new(ends: Ends, capacity: usize) -> Self {
        let len = match &ends {
            Ends::Fixed(_) => capacity.max(1),
            Ends::Table { ends, .. } => ends.len().max(1),
        };
        Self {
            ends,
            sent: (0..len).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Operations completed by a clock moving from `old` to `new`.
    fn completed(&self, old: u32, new: u32) -> std::ops::Range<usize> {
        match &self.ends {
            Ends::Fixed(unit) => (old / unit) as usize..(new / unit) as usize,
            Ends::Table { ends, .. } => ends.partition_point(|e| *e <= old)..ends.partition_point(|e| *e <= new),
        }
    }

    fn measured(&self, i: usize) -> bool {
        match &self.ends {
            Ends::Fixed(_) => true,
            Ends::Table { inserts, .. } => inserts.get(i).copied().unwrap_or(false),
        }
    }

    /// Operations that started at or before `clock` (for the sender's own echoes).
    fn started_by(&self, clock: u32) -> usize {
        match &self.ends {
            Ends::Fixed(unit) => (clock / unit) as usize + 1,
            Ends::Table { ends, .. } => ends.partition_point(|e| *e <= clock) + 1,
        }
    }

    pub fn mark_sent(&self, i: usize, at_ns: u64) {
        let n = self.sent.len();
        self.sent[i % n].store(at_ns + 1, Ordering::Relaxed);
    }

    fn sent_at(&self, i: usize) -> Option<u64> {
        let n = self.sent.len();
        match self.sent[i % n].load(Ordering::Relaxed) {
            0 => None,
            t => Some(t - 1),
        }
    }
}

/// The one clock and every sender's operations, shared by all clients of the process.
pub struct Registry {
    pub epoch: Instant,
    senders: Vec<Option<Arc<Ops>>>,
}

impl Registry {
    pub fn new(clients: usize) -> Self {
        Self {
            epoch: Instant::now(),
            senders: vec![None; clients],
        }
    }

    pub fn set(&mut self, idx: usize, ops: Ops) -> Arc<Ops> {
        let ops = Arc::new(ops);
        self.senders[idx] = Some(ops.clone());
        ops
    }

    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn ops(&self, client: &ClientID) -> Option<&Arc<Ops>> {
        let idx = client.get().checked_sub(CLIENT_BASE)? as usize;
        self.senders.get(idx)?.as_ref()
    }
}

pub fn client_id(idx: usize) -> u64 {
    CLIENT_BASE + idx as u64
}

pub struct Client {
    ws: Ws,
    pub idx: usize,
    pub doc: Doc,
    pub text: TextRef,
    me: ClientID,
    reg: Arc<Registry>,
    outbox: Vec<Bytes>,
    pub synced: bool,
    /// Sender→receiver latencies of other clients' operations, in microseconds.
    pub latencies: Vec<u32>,
    /// Own operations echoed back by the server (counted from each echo's first clock).
    pub own_acked: usize,
    /// Update messages received (sync step 2 excluded).
    pub updates_in: u64,
    /// Every WebSocket message received, and their bytes.
    pub messages_in: u64,
    pub bytes_in: u64,
    /// Awareness messages received.
    pub awareness_in: u64,
    /// Awareness states known, as the stock client keeps them: the clock of each client's
    /// last state and the state (`None` once removed; the clock is kept).
    awareness: HashMap<u64, (u32, Option<Arc<str>>)>,
    /// Protocol trouble: undecodable or unappliable updates, permission denied.
    pub errors: Vec<String>,
    /// Set once the server closed the connection (code and reason) or it broke.
    pub closed: Option<String>,
    /// Time from connecting to the WebSocket upgrade's answer (auth happens before it).
    pub upgrade: Duration,
    /// Time this client spent decoding and applying sync step 2 replies: the client's
    /// own share of an open, whatever the server.
    pub sync_apply: Duration,
    /// Time this client spent decoding and applying update messages (the rest of a
    /// document, for a server that sends it after sync step 2).
    pub update_apply: Duration,
    /// A reader that only watches (`fanout --writers`): update messages are kept with
    /// their arrival time and integrated by [`Client::catch_up`], after the measured
    /// window, so that the load tool's CPU goes to the server's traffic rather than to
    /// integrating it 9 times over. The server sees the same traffic either way.
    pub defer: bool,
    deferred: Vec<(Bytes, u64)>,
    /// Set by [`Client::catch_up`]: from then on this client stops reading while it
    /// integrates, so an arrival is stamped late.
    caught_up: bool,
    /// Latency samples taken after [`Client::catch_up`] (see [`Client::drain`]).
    pub late_samples: u64,
}

impl Client {
    /// Connects and sends sync step 1. `url` is the full document URL (with any token).
    pub async fn connect(url: &str, idx: usize, reg: Arc<Registry>) -> anyhow::Result<Self> {
        let t0 = Instant::now();
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .with_context(|| format!("connecting to {}", redact(url)))?;
        let doc = Doc::with_client_id(client_id(idx));
        let text = doc.get_or_insert_text(TEXT);
        let mut c = Self {
            ws,
            idx,
            me: ClientID::new(client_id(idx)),
            doc,
            text,
            reg,
            outbox: Vec::new(),
            synced: false,
            latencies: Vec::new(),
            own_acked: 0,
            updates_in: 0,
            messages_in: 0,
            bytes_in: 0,
            awareness_in: 0,
            awareness: HashMap::new(),
            errors: Vec::new(),
            closed: None,
            upgrade: t0.elapsed(),
            sync_apply: Duration::ZERO,
            update_apply: Duration::ZERO,
            defer: false,
            deferred: Vec::new(),
            caught_up: false,
            late_samples: 0,
        };
        let sv = c.doc.transact().state_vector();
        c.send(YMessage::Sync(SyncMessage::SyncStep1(sv)).encode_v1().into())
            .await?;
        Ok(c)
    }

    /// Receives until synced (the server's sync step 2 was applied).
    pub async fn wait_synced(&mut self, timeout: Duration) -> anyhow::Result<()> {
        self.receive_until(|c| c.synced, "synced", timeout).await
    }

    /// Receives until synced and holding everything `target` names: a server may answer
    /// sync step 1 before it has loaded the document and send the rest as updates (the
    /// reference server with its LevelDB persistence does), so synced alone is not open.
    pub async fn wait_covers(&mut self, target: &StateVector, timeout: Duration) -> anyhow::Result<()> {
        self.receive_until(|c| c.synced && c.covers(target), "synced and complete", timeout)
            .await
    }

    /// Receives until this client holds the awareness state of `clients` clients (its
    /// own included): the barrier before a measured phase, so that the relays of the
    /// states set while connecting are not counted in it.
    pub async fn wait_awareness(&mut self, clients: usize, timeout: Duration) -> anyhow::Result<()> {
        self.receive_until(
            |c| c.awareness.values().filter(|(_, s)| s.is_some()).count() >= clients,
            "holding every client's awareness",
            timeout,
        )
        .await
    }

    /// Receives (answering as it goes) until `done` holds; fails once `timeout` passes
    /// or the connection ends first.
    async fn receive_until(
        &mut self,
        done: impl Fn(&Self) -> bool,
        what: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(self) {
            match tokio::time::timeout_at(deadline, self.recv()).await {
                Err(_) => bail!("client {} not {what} after {timeout:?}", self.idx),
                Ok(false) => bail!(
                    "client {}: connection closed before it was {what}: {}",
                    self.idx,
                    self.closed.as_deref().unwrap_or("?")
                ),
                Ok(true) => self.flush().await?,
            }
        }
        Ok(())
    }

    /// Reads and handles one WebSocket message. `false` once the connection is gone.
    /// Cancel-safe: replies are queued for [`Client::flush`].
    pub async fn recv(&mut self) -> bool {
        if self.closed.is_some() {
            std::future::pending::<()>().await;
        }
        match self.ws.next().await {
            Some(Ok(Message::Binary(b))) => {
                self.messages_in += 1;
                self.bytes_in += b.len() as u64;
                let now = self.reg.now_ns();
                if self.defer && b.starts_with(UPDATE_PREFIX) {
                    self.deferred.push((b, now));
                } else {
                    self.on_frame(&b, now);
                }
                true
            }
            Some(Ok(Message::Close(f))) => {
                self.closed = Some(f.map_or("closed".into(), |f| {
                    format!("closed {} {}", u16::from(f.code), f.reason)
                }));
                false
            }
            Some(Ok(_)) => true,
            Some(Err(e)) => {
                self.closed = Some(format!("error: {e}"));
                false
            }
            None => {
                self.closed = Some("connection ended".into());
                false
            }
        }
    }

    /// Reads until nothing has arrived for `quiet`: what the server still had in flight
    /// when the senders stopped is stamped as it arrives, before [`Client::catch_up`]
    /// stops reading for as long as integrating takes (seconds, after `ceiling`).
    pub async fn drain(&mut self, quiet: Duration) {
        while let Ok(true) = tokio::time::timeout(quiet, self.recv()).await {
            if self.flush().await.is_err() {
                return;
            }
        }
    }

    /// Integrates the deferred updates, each measured at its arrival, and stops deferring.
    pub fn catch_up(&mut self) {
        self.defer = false;
        for (frame, arrived) in std::mem::take(&mut self.deferred) {
            self.on_frame(&frame, arrived);
        }
        self.caught_up = true;
    }

    /// Handles one frame that arrived at `now` (ns since the registry's epoch).
    fn on_frame(&mut self, frame: &[u8], now: u64) {
        let mut decoder = DecoderV1::new(Cursor::new(frame));
        let reader = MessageReader::new(&mut decoder);
        for msg in reader {
            match msg {
                Ok(YMessage::Sync(SyncMessage::SyncStep1(sv))) => {
                    let diff = self.doc.transact().encode_diff_v1(&sv);
                    self.outbox
                        .push(YMessage::Sync(SyncMessage::SyncStep2(diff)).encode_v1().into());
                }
                Ok(YMessage::Sync(SyncMessage::SyncStep2(u))) => {
                    let t = Instant::now();
                    self.apply(&u, now);
                    self.sync_apply += t.elapsed();
                    self.synced = true;
                }
                Ok(YMessage::Sync(SyncMessage::Update(u))) => {
                    self.updates_in += 1;
                    let t = Instant::now();
                    self.apply(&u, now);
                    self.update_apply += t.elapsed();
                }
                Ok(YMessage::Awareness(update)) => {
                    self.awareness_in += 1;
                    self.on_awareness(update);
                }
                Ok(YMessage::Auth(Some(reason))) => self.errors.push(format!("permission denied: {reason}")),
                Ok(_) => {}
                Err(e) => {
                    self.errors.push(format!("undecodable message: {e}"));
                    break;
                }
            }
        }
    }

    /// Applies an awareness update by y-protocols' rule and, as the stock client does,
    /// sends every entry it applied back to the server.
    fn on_awareness(&mut self, update: AwarenessUpdate) {
        let mut applied = HashMap::new();
        for (client, entry) in update.clients {
            let id = client.get();
            let null = &*entry.json == "null";
            let (clock, state) = self.awareness.get(&id).cloned().unwrap_or((0, None));
            if !(entry.clock > clock || (entry.clock == clock && null && state.is_some())) {
                continue;
            }
            let mut json = entry.json.clone();
            let mut at = entry.clock;
            if id == self.me.get() && null && state.is_some() {
                // never let a remote client remove the local state: renew it instead
                at += 1;
                json = state.clone().expect("checked");
                self.awareness.insert(id, (at, Some(json.clone())));
            } else {
                self.awareness.insert(id, (at, (!null).then(|| json.clone())));
            }
            applied.insert(client, AwarenessUpdateEntry { clock: at, json });
        }
        if !applied.is_empty() {
            self.outbox.push(
                YMessage::Awareness(AwarenessUpdate { clients: applied })
                    .encode_v1()
                    .into(),
            );
        }
    }

    /// Sets this client's awareness state (as `awareness.setLocalState` does: the clock
    /// moves on) and sends it. TipTap's caret does this on every keystroke.
    pub async fn set_awareness(&mut self, json: &str) -> anyhow::Result<()> {
        let me = self.me.get();
        // The stock client's awareness starts with `{}` at clock 0 (which no receiver
        // applies: y-protocols applies only newer clocks), so its first real state is 1.
        let clock = self.awareness.get(&me).map_or(1, |(c, _)| c + 1);
        let json: Arc<str> = Arc::from(json);
        self.awareness.insert(me, (clock, Some(json.clone())));
        let entry = AwarenessUpdateEntry { clock, json };
        let clients = HashMap::from([(self.me, entry)]);
        self.send(YMessage::Awareness(AwarenessUpdate { clients }).encode_v1().into())
            .await
    }

    /// Starts the counts of what was received over (at the start of a measured window).
    pub fn reset_counts(&mut self) {
        (self.messages_in, self.bytes_in, self.awareness_in, self.updates_in) = (0, 0, 0, 0);
    }

    fn apply(&mut self, data: &[u8], now: u64) {
        let update = match Update::decode_v1(data) {
            Ok(u) => u,
            Err(e) => {
                self.errors.push(format!("undecodable update: {e}"));
                return;
            }
        };
        if let Some((_, lo)) = update.state_vector_lower().iter().find(|(c, _)| **c == self.me)
            && let Some(ops) = self.reg.ops(&self.me)
        {
            self.own_acked = self.own_acked.max(ops.started_by(*lo));
        }
        let mut txn = self.doc.transact_mut();
        let before = txn.state_vector();
        if let Err(e) = txn.apply_update(update) {
            self.errors.push(format!("update did not apply: {e}"));
            return;
        }
        let after = txn.state_vector();
        drop(txn);
        for (client, clock) in after.iter() {
            let old = before.get(client);
            if *clock <= old || *client == self.me {
                continue;
            }
            let Some(ops) = self.reg.ops(client) else { continue };
            for i in ops.completed(old, *clock) {
                if let Some(sent) = ops.sent_at(i).filter(|_| ops.measured(i))
                    && sent <= now
                {
                    self.latencies.push(((now - sent) / 1000).min(u32::MAX as u64) as u32);
                    self.late_samples += u64::from(self.caught_up);
                }
            }
        }
    }

    pub async fn send(&mut self, frame: Bytes) -> anyhow::Result<()> {
        self.ws
            .send(Message::Binary(frame))
            .await
            .with_context(|| format!("client {}: send failed", self.idx))
    }

    /// Sends a v1 update as a y-websocket update message.
    pub async fn send_update(&mut self, update: Vec<u8>) -> anyhow::Result<()> {
        self.send(update_frame(update)).await
    }

    pub async fn flush(&mut self) -> anyhow::Result<()> {
        for f in std::mem::take(&mut self.outbox) {
            self.send(f).await?;
        }
        Ok(())
    }

    /// Inserts `s` at `frac` of the current length; returns the v1 update.
    pub fn insert_at(&mut self, frac: f64, s: &str) -> Vec<u8> {
        let mut txn = self.doc.transact_mut();
        let len = self.text.len(&txn);
        let pos = ((len as f64 * frac) as u32).min(len);
        self.text.insert(&mut txn, pos, s);
        txn.encode_update_v1()
    }

    /// Applies a trace transaction locally; returns the v1 update.
    pub fn patch(&mut self, patches: &[(u32, u32, String)]) -> Vec<u8> {
        let mut txn = self.doc.transact_mut();
        for (pos, del, ins) in patches {
            if *del > 0 {
                self.text.remove_range(&mut txn, *pos, *del);
            }
            if !ins.is_empty() {
                self.text.insert(&mut txn, *pos, ins);
            }
        }
        txn.encode_update_v1()
    }

    pub fn state_vector(&self) -> StateVector {
        self.doc.transact().state_vector()
    }

    /// Whether this client has everything `target` names.
    pub fn covers(&self, target: &StateVector) -> bool {
        let sv = self.state_vector();
        target.iter().all(|(c, clock)| sv.get(c) >= *clock)
    }

    pub fn string(&self) -> String {
        self.text.get_string(&self.doc.transact())
    }

    /// Keeps reading (answering pings, applying updates) until `until` resolves or the
    /// connection ends.
    pub async fn idle_until<F: std::future::Future>(&mut self, until: F) {
        tokio::pin!(until);
        loop {
            tokio::select! {
                _ = &mut until => return,
                alive = self.recv() => {
                    if !alive || self.flush().await.is_err() {
                        until.await;
                        return;
                    }
                }
            }
        }
    }

    /// Receives until this client covers `target` or `deadline` passes.
    pub async fn settle(&mut self, target: &StateVector, deadline: tokio::time::Instant) -> bool {
        while !self.covers(target) {
            match tokio::time::timeout_at(deadline, self.recv()).await {
                Ok(true) => {
                    let _ = self.flush().await;
                }
                Ok(false) | Err(_) => return self.covers(target),
            }
        }
        true
    }

    /// Like [`Client::settle`], and then until the text equals `expected`: an update that
    /// only deletes does not move the state vector, so covering the senders' clocks does
    /// not yet mean every delete arrived.
    pub async fn settle_text(&mut self, target: &StateVector, expected: &str, deadline: tokio::time::Instant) -> bool {
        if !self.settle(target, deadline).await {
            return false;
        }
        while self.string() != expected {
            match tokio::time::timeout_at(deadline, self.recv()).await {
                Ok(true) => {
                    let _ = self.flush().await;
                }
                Ok(false) | Err(_) => return false,
            }
        }
        true
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }
}

pub fn update_frame(update: Vec<u8>) -> Bytes {
    YMessage::Sync(SyncMessage::Update(update)).encode_v1().into()
}

/// A URL without its `token=` value, for messages.
pub fn redact(url: &str) -> String {
    match url.find("token=") {
        Some(i) => format!("{}token=…", &url[..i]),
        None => url.to_string(),
    }
}
