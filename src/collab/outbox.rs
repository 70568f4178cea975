//! A connection's outgoing frames and its kill switch, in one small allocation shared by
//! the room (which queues frames and may close the connection) and the socket task
//! (which sends them, or the close frame).
//!
//! Replaces a tokio `mpsc` channel plus a separate `Kill`: the channel allocated a block
//! of 32 slots up front (about 1.5 KiB per connection, idle or not), where this queue
//! allocates nothing until a frame waits and gives its buffer back once drained
//! (BENCHMARKS.md, "idle").

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

/// A drained queue keeps its buffer up to this many frames; a larger one is freed.
const KEEP_CAPACITY: usize = 16;

struct Shared {
    state: Mutex<State>,
    /// Woken on every change; waiters re-check the state (any number of them).
    notify: Notify,
    capacity: usize,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Bytes>,
    kill: Option<(u16, String)>,
    /// The room dropped its side: nothing more will be queued.
    sender_gone: bool,
    /// The socket side is gone: queueing is pointless.
    receiver_gone: bool,
}

impl State {
    fn pop(&mut self) -> Option<Bytes> {
        let frame = self.frames.pop_front();
        if self.frames.is_empty() && self.frames.capacity() > KEEP_CAPACITY {
            self.frames = VecDeque::new(); // a burst is over: give its buffer back
        }
        frame
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn kill(&self, code: u16, reason: String) {
        let mut s = self.lock();
        if s.kill.is_none() {
            s.kill = Some((code, reason));
            drop(s);
            self.notify.notify_waiters();
        }
    }

    /// Resolves with `check`'s first `Some`, re-checking after every change.
    async fn wait_for<T>(&self, mut check: impl FnMut(&mut State) -> Option<T>) -> T {
        loop {
            // Registered before checking, so a change between the check and the wait is
            // not missed (`notify_waiters` stores no permit).
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(t) = check(&mut self.lock()) {
                return t;
            }
            notified.await;
        }
    }
}

/// A new connection's outbox: the room's side, the socket's side, and the kill switch.
pub(super) fn pair(capacity: usize) -> (OutboxSender, Outbound, Kill) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        notify: Notify::new(),
        capacity,
    });
    (OutboxSender(shared.clone()), Outbound(shared.clone()), Kill(shared))
}

/// Why a frame was not queued.
pub(super) enum SendError {
    /// The queue holds `capacity` frames: the client is too far behind.
    Full,
    /// The socket side is gone.
    Closed,
}

/// The room's side. Dropping it tells the socket that nothing more will come.
pub(super) struct OutboxSender(Arc<Shared>);

impl OutboxSender {
    pub fn try_send(&self, frame: Bytes) -> Result<(), SendError> {
        let mut s = self.0.lock();
        if s.receiver_gone {
            return Err(SendError::Closed);
        }
        if s.frames.len() >= self.0.capacity {
            return Err(SendError::Full);
        }
        let was_empty = s.frames.is_empty();
        s.frames.push_back(frame);
        drop(s);
        if was_empty {
            // A waiting socket task is woken by the first frame; it takes all of them.
            self.0.notify.notify_waiters();
        }
        Ok(())
    }

    pub fn kill(&self, code: u16, reason: impl Into<String>) {
        self.0.kill(code, reason.into());
    }
}

impl Drop for OutboxSender {
    fn drop(&mut self) {
        self.0.lock().sender_gone = true;
        self.0.notify.notify_waiters();
    }
}

/// What the socket task should do next.
pub enum Ready {
    /// Frames are queued: take them with [`Outbound::try_recv`].
    Frames,
    /// Close the socket with this code and reason (queued frames are dropped).
    Killed(u16, String),
    /// The room let the connection go and everything queued was taken.
    Closed,
}

/// The socket's side: frames to send to the client.
pub struct Outbound(Arc<Shared>);

impl Outbound {
    /// Waits until there is something to do; a kill comes before queued frames.
    pub async fn ready(&self) -> Ready {
        self.0
            .wait_for(|s| {
                if let Some((code, reason)) = &s.kill {
                    Some(Ready::Killed(*code, reason.clone()))
                } else if !s.frames.is_empty() {
                    Some(Ready::Frames)
                } else if s.sender_gone {
                    Some(Ready::Closed)
                } else {
                    None
                }
            })
            .await
    }

    /// The next queued frame, if any.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        self.0.lock().pop()
    }

    /// The next frame; `None` once the room let the connection go and the queue is empty.
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.0
            .wait_for(|s| match s.pop() {
                Some(f) => Some(Some(f)),
                None => s.sender_gone.then_some(None),
            })
            .await
    }

    /// Whether the room let the connection go (frames may still be queued).
    pub fn is_closed(&self) -> bool {
        self.0.lock().sender_gone
    }

    pub fn is_empty(&self) -> bool {
        self.0.lock().frames.is_empty()
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.receiver_gone = true;
        s.frames = VecDeque::new();
    }
}

/// Closes a connection's socket with a code and reason; any number of holders may wait
/// for it.
#[derive(Clone)]
pub struct Kill(Arc<Shared>);

impl Kill {
    /// The first kill wins; later ones are ignored.
    pub fn kill(&self, code: u16, reason: impl Into<String>) {
        self.0.kill(code, reason.into());
    }

    pub fn is_killed(&self) -> bool {
        self.0.lock().kill.is_some()
    }

    /// Resolves with the close code and reason once killed.
    pub async fn killed(&self) -> (u16, String) {
        self.0.wait_for(|s| s.kill.clone()).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Several tasks wait on one connection's kill (a test's reader and writer, say):
    /// every one of them sees it, whether it waited before or after.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_wakes_every_waiter() {
        for _ in 0..50 {
            let (_tx, _rx, kill) = pair(4);
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let k = kill.clone();
                    tokio::spawn(async move { k.killed().await })
                })
                .collect();
            // Not synchronisation: it lets both waiters park first, which is the case that
            // used to lose a wakeup (a kill before they wait is seen by the check).
            tokio::time::sleep(Duration::from_millis(2)).await;
            kill.kill(1008, "policy");
            kill.kill(1000, "ignored: the first kill wins");
            for w in waiters {
                let got = tokio::time::timeout(Duration::from_secs(5), w)
                    .await
                    .expect("a waiter missed the kill")
                    .unwrap();
                assert_eq!(got, (1008, "policy".to_string()));
            }
        }
    }

    /// Frames arrive in order, a waiting receiver is woken by the first, a full queue
    /// refuses, and the receiver sees the end once the sender is gone and it has taken
    /// everything.
    #[tokio::test]
    async fn frames_in_order_bounded_then_closed() {
        let (tx, mut rx, kill) = pair(3);
        let waiter = tokio::spawn(async move {
            let first = rx.recv().await;
            (first, rx)
        });
        tokio::task::yield_now().await;
        for i in 0..3u8 {
            assert!(tx.try_send(Bytes::from(vec![i])).is_ok());
        }
        let (first, mut rx) = waiter.await.unwrap();
        assert_eq!(first.as_deref(), Some(&[0u8][..]));
        assert!(tx.try_send(Bytes::from_static(b"x")).is_ok());
        assert!(matches!(tx.try_send(Bytes::from_static(b"y")), Err(SendError::Full)));
        assert!(matches!(rx.ready().await, Ready::Frames));
        drop(tx);
        assert!(rx.is_closed());
        assert_eq!(rx.recv().await.as_deref(), Some(&[1u8][..]));
        assert_eq!(rx.try_recv().as_deref(), Some(&[2u8][..]));
        assert_eq!(rx.recv().await.as_deref(), Some(&b"x"[..]));
        assert!(matches!(rx.ready().await, Ready::Closed));
        assert_eq!(rx.recv().await, None);
        // A kill comes before anything queued.
        kill.kill(4000, "bye");
        assert!(matches!(rx.ready().await, Ready::Killed(4000, r) if r == "bye"));
    }

    #[test]
    fn a_gone_socket_refuses_frames_and_frees_the_queue() {
        let (tx, rx, _kill) = pair(8);
        assert!(tx.try_send(Bytes::from_static(b"a")).is_ok());
        drop(rx);
        assert!(matches!(tx.try_send(Bytes::from_static(b"b")), Err(SendError::Closed)));
        assert_eq!(tx.0.lock().frames.capacity(), 0);
    }
}
