//! A connection's outgoing frames and its kill switch, in one small allocation shared by
//! the room (which queues frames and may close the connection) and the socket task
//! (which sends them, or the close frame).
//!
//! Replaces a tokio `mpsc` channel plus a separate `Kill`: the channel allocated a block
//! of 32 slots up front (about 1.5 KiB per connection, idle or not), where this queue
//! allocates nothing until a frame waits and gives its buffer back once drained
//! (BENCHMARKS.md, "idle").

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tokio::sync::Notify;

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
    /// The socket task waiting in [`Outbound::ready`]. A slot rather than a `Notify`
    /// waiter: the wait lives in every idle connection's task, and a `Notified` future
    /// is ~100 bytes where this wait is a reference (benches/HISTORY.md, change 27).
    waiting: Option<Waker>,
}

impl State {
    fn pop(&mut self) -> Option<Bytes> {
        let frame = self.frames.pop_front();
        if self.frames.is_empty() {
            // A burst is over: give its buffer back, so an idle connection holds none (a
            // new burst allocates again, once per burst rather than once per frame).
            self.frames = VecDeque::new();
        }
        frame
    }

    /// What the socket task should do next, if anything.
    fn ready(&self) -> Option<Ready> {
        if let Some((code, reason)) = &self.kill {
            Some(Ready::Killed(*code, reason.clone()))
        } else if !self.frames.is_empty() {
            Some(Ready::Frames)
        } else if self.sender_gone {
            Some(Ready::Closed)
        } else {
            None
        }
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
            self.wake(s);
        }
    }

    /// Wakes every waiter, after releasing the lock.
    fn wake(&self, mut s: MutexGuard<'_, State>) {
        let waiting = s.waiting.take();
        drop(s);
        if let Some(w) = waiting {
            w.wake();
        }
        self.notify.notify_waiters();
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
        if was_empty {
            // A waiting socket task is woken by the first frame; it takes all of them.
            self.0.wake(s);
        }
        Ok(())
    }

    pub fn kill(&self, code: u16, reason: impl Into<String>) {
        self.0.kill(code, reason.into());
    }
}

impl Drop for OutboxSender {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.sender_gone = true;
        self.0.wake(s);
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
    pub fn ready(&self) -> impl Future<Output = Ready> + '_ {
        poll_fn(|cx| self.poll_ready(cx))
    }

    /// [`Outbound::ready`] as a poll: one task waits at a time (the socket's).
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Ready> {
        let mut s = self.0.lock();
        if let Some(ready) = s.ready() {
            return Poll::Ready(ready);
        }
        match &mut s.waiting {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The next queued frame, if any.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        self.0.lock().pop()
    }

    /// Up to `max` queued frames, in order, taken under one lock (the room queues
    /// under the same lock while the socket writes). The queue's buffer goes with
    /// them when they are all of it, as [`Outbound::try_recv`] gives it back.
    pub fn take(&mut self, max: usize) -> VecDeque<Bytes> {
        let mut s = self.0.lock();
        if s.frames.len() <= max {
            std::mem::take(&mut s.frames)
        } else {
            s.frames.drain(..max).collect()
        }
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
        s.waiting = None;
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

    /// `take` hands over at most `max` frames, in order; the rest stay queued, and a
    /// queue taken whole holds no buffer.
    #[test]
    fn take_hands_over_frames_in_order() {
        let (tx, mut rx, _kill) = pair(8);
        for i in 0..5u8 {
            assert!(tx.try_send(Bytes::from(vec![i])).is_ok());
        }
        let frames = |q: VecDeque<Bytes>| q.into_iter().map(|b| b[0]).collect::<Vec<u8>>();
        assert_eq!(frames(rx.take(3)), [0, 1, 2]);
        assert_eq!(frames(rx.take(3)), [3, 4]);
        assert!(rx.is_empty());
        assert_eq!(rx.0.lock().frames.capacity(), 0);
        assert!(rx.take(3).is_empty());
        assert!(tx.try_send(Bytes::from_static(b"\x05")).is_ok());
        assert_eq!(frames(rx.take(3)), [5]);
    }

    /// The socket task waiting in `ready` (through its waker slot, not the `Notify`) is
    /// woken by the first frame, by the room letting go, and by a kill; a drained queue
    /// holds no buffer. (The yields let the waiter park first, the case that needs the
    /// wake-up; a waiter that has not parked yet sees the change when it polls.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_socket_task_is_woken_by_each_change() {
        async fn ready_within(rx: Outbound) -> (Ready, Outbound) {
            let ready = tokio::time::timeout(Duration::from_secs(5), rx.ready())
                .await
                .expect("the waiting socket task was not woken");
            (ready, rx)
        }
        for _ in 0..20 {
            let (tx, rx, _) = pair(8);
            let waiter = tokio::spawn(ready_within(rx));
            tokio::task::yield_now().await;
            assert!(tx.try_send(Bytes::from_static(b"a")).is_ok());
            let (ready, mut rx) = waiter.await.unwrap();
            assert!(matches!(ready, Ready::Frames));
            assert_eq!(rx.try_recv().as_deref(), Some(&b"a"[..]));
            assert_eq!(rx.0.lock().frames.capacity(), 0, "a drained queue kept its buffer");

            let waiter = tokio::spawn(ready_within(rx));
            tokio::task::yield_now().await;
            drop(tx);
            assert!(matches!(waiter.await.unwrap().0, Ready::Closed));

            let (_tx, rx, kill) = pair(8);
            let waiter = tokio::spawn(ready_within(rx));
            tokio::task::yield_now().await;
            kill.kill(1013, "behind");
            assert!(matches!(waiter.await.unwrap().0, Ready::Killed(1013, r) if r == "behind"));
        }
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
