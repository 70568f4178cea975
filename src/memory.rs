//! Handing freed memory back to the operating system after a burst of work.
//!
//! glibc's malloc keeps what a thread frees in that thread's arena for reuse, and gives
//! back only a free stretch at the very top of a heap. A burst of connections, requests
//! or documents unloading frees its transient memory (handshake buffers, query results,
//! a document's blocks) scattered between allocations that live on, so the process
//! keeps those pages: 2,000 WebSocket connections left about 1.5 MB behind that the heap
//! no longer used (benches/HISTORY.md, change 39).
//!
//! Work that churns memory calls [`churned`]; the trimmer started by the server
//! ([`spawn_trimmer`]) empties SQLite's page caches ([`release_caches`]) and calls
//! `malloc_trim(0)` once nothing has churned for
//! `server.trim_memory_after_ms`, or at the latest every [`MAX_PENDING_TICKS`] of those
//! while churn goes on. A trim walks every arena under its lock, so it runs on the
//! blocking pool, and only after a quiet spell, when no thread is likely to wait for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Trim at the latest after this many ticks with churn in each: a steady trickle of work
/// never leaves a quiet tick, and memory freed by an earlier burst would stay held.
pub const MAX_PENDING_TICKS: u32 = 120;

/// Counts churn, and the trims it led to.
pub struct Trimmer {
    churn: AtomicU64,
    trims: AtomicU64,
}

/// The process's trimmer: the heap it trims is the process's.
pub static TRIMMER: Trimmer = Trimmer::new();

/// Notes work that allocated and freed memory (a request served, a connection closed, a
/// document unloaded): a trim follows once such work stops. One relaxed atomic add.
pub fn churned() {
    TRIMMER.churned();
}

/// Starts the process trimmer, ticking every `quiet`; `Duration::ZERO` starts nothing.
pub fn spawn_trimmer(quiet: Duration) -> Option<tokio::task::JoinHandle<()>> {
    (!quiet.is_zero()).then(|| tokio::spawn(TRIMMER.run(quiet)))
}

impl Trimmer {
    pub const fn new() -> Self {
        Self {
            churn: AtomicU64::new(0),
            trims: AtomicU64::new(0),
        }
    }

    pub fn churned(&self) {
        self.churn.fetch_add(1, Ordering::Relaxed);
    }

    /// Trims started so far.
    pub fn trims(&self) -> u64 {
        self.trims.load(Ordering::Relaxed)
    }

    /// Every `quiet`: if there was churn since the last tick, wait for a tick without;
    /// after one (or after [`MAX_PENDING_TICKS`] ticks that all had churn), trim.
    pub async fn run(&'static self, quiet: Duration) {
        let mut tick = tokio::time::interval(quiet);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = self.churn.load(Ordering::Relaxed);
        let mut pending = 0u32; // ticks in a row that saw churn, since the last trim
        loop {
            tick.tick().await;
            let now = self.churn.load(Ordering::Relaxed);
            let busy = now != seen;
            seen = now;
            if busy {
                pending += 1;
                if pending < MAX_PENDING_TICKS {
                    continue;
                }
            } else if pending == 0 {
                continue;
            }
            pending = 0;
            self.trims.fetch_add(1, Ordering::Relaxed);
            let done = tokio::task::spawn_blocking(|| {
                let start = Instant::now();
                let caches = release_caches();
                trim();
                (caches, start.elapsed())
            })
            .await;
            if let Ok((caches, took)) = done {
                tracing::debug!(
                    sqlite_cache_bytes = caches,
                    micros = took.as_micros() as u64,
                    "returned freed memory to the system"
                );
            }
        }
    }
}

impl Default for Trimmer {
    fn default() -> Self {
        Self::new()
    }
}

/// Empties SQLite's page caches of the pages no statement is using, in every connection
/// of the process (they share one cache group, built with
/// `SQLITE_ENABLE_MEMORY_MANAGEMENT`); returns the bytes freed. After a quiet spell the
/// caches hold the pages the burst read, up to `database.sqlite_cache_kib` on each pooled
/// connection: 0.8 MB after loading 50 documents. A later read takes them from the
/// operating system's file cache again. Nothing to free on PostgreSQL.
pub fn release_caches() -> usize {
    // SAFETY: sqlite3_release_memory takes the page cache group's mutex; SQLite is built
    // thread-safe, and the call only drops pages that no statement holds.
    let freed = unsafe { libsqlite3_sys::sqlite3_release_memory(i32::MAX) };
    usize::try_from(freed).unwrap_or(0)
}

/// Returns the free memory of every malloc arena to the system (glibc's
/// `malloc_trim(0)`; nothing elsewhere). Walks every arena: call it off the executor.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() {
    // SAFETY: malloc_trim only releases free memory; it is safe to call at any time.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET: Duration = Duration::from_millis(100);

    fn trimmer() -> &'static Trimmer {
        Box::leak(Box::new(Trimmer::new()))
    }

    /// Churn every half tick for `ticks` ticks.
    async fn churn_for(t: &Trimmer, ticks: u32) {
        for _ in 0..ticks * 2 {
            t.churned();
            tokio::time::sleep(QUIET / 2).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn trims_once_after_a_burst_once_quiet() {
        let t = trimmer();
        let task = tokio::spawn(t.run(QUIET));
        tokio::time::sleep(QUIET * 10).await;
        assert_eq!(t.trims(), 0, "no churn, no trim");

        churn_for(t, 10).await;
        assert_eq!(t.trims(), 0, "no trim while the burst goes on");
        tokio::time::sleep(QUIET * 3).await;
        assert_eq!(t.trims(), 1, "one trim after a quiet tick");
        tokio::time::sleep(QUIET * 10).await;
        assert_eq!(t.trims(), 1, "and none after it while nothing churns");

        t.churned();
        tokio::time::sleep(QUIET * 3).await;
        assert_eq!(t.trims(), 2, "a single churn is a burst too");
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn trims_now_and_then_while_churn_never_stops() {
        let t = trimmer();
        let task = tokio::spawn(t.run(QUIET));
        churn_for(t, MAX_PENDING_TICKS - 2).await;
        assert_eq!(t.trims(), 0);
        churn_for(t, MAX_PENDING_TICKS).await;
        assert_eq!(t.trims(), 1, "one trim per {MAX_PENDING_TICKS} busy ticks");
        task.abort();
    }

    #[test]
    fn a_zero_interval_starts_no_trimmer() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async { assert!(spawn_trimmer(Duration::ZERO).is_none()) });
    }
}
