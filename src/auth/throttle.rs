//! Brute-force protection for password login: a per-email count of failed logins, in
//! memory on this node.
//!
//! After `auth.login_max_failures` failures in a row for an email, every login for it is
//! refused for `auth.login_lockout_secs` with `RATE_LIMITED`, before the password is
//! looked at: a refusal costs no argon2 work and no database read, and the right
//! password is refused too (or the lockout would protect nothing). The email is the key
//! whether or not an account has it, so the throttle answers the same for both. A
//! success clears the count; failures are forgotten `login_lockout_secs` after the last
//! one, which lets no more guesses through than waiting out a lockout would.
//!
//! Callers pass the time in ([`LoginThrottle::begin`], [`Attempt::failed`]), so the
//! tests check the lockout's end without sleeping.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::Error;

/// Most emails tracked at once on a node. An email is tracked while it has an attempt
/// in progress or failures that still count, and each failure costs the attacker one
/// argon2 verification: at the hash gate's pace (one per core, tens of milliseconds
/// each) a core produces at most a few tens of failures a second, about 10,000 within a
/// default lockout, so a server with fewer than about ten cores cannot be filled by
/// failures that still count. Each entry takes about 70 bytes (a SHA-256 of the email,
/// the counts, the map's overhead), so the map stays under 10 MB.
pub const MAX_TRACKED: usize = 100_000;

/// A full map is swept for entries that no longer count at most this often: a sweep
/// walks every entry under the lock, and must not run on every attempt while full.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The SHA-256 of the normalised email: fixed-size whatever the email's length (a login
/// body may carry a megabyte of "email"), and no address is kept in memory.
type Key = [u8; 32];

fn key(email: &str) -> Key {
    Sha256::digest(email.as_bytes()).into()
}

pub struct LoginThrottle {
    /// 0: off.
    max_failures: u32,
    lockout: Duration,
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    emails: HashMap<Key, Entry>,
    /// When the full map was last swept.
    swept_at: Option<Instant>,
}

/// One email. Entries with nothing in progress and no failures that count are removed.
#[derive(Default)]
struct Entry {
    /// Failed logins in a row, each less than the lockout after the one before.
    failures: u32,
    /// When the last of them failed; with `failures == max_failures`, when the lockout began.
    last_failure: Option<Instant>,
    /// Attempts let through and not settled yet. They count against the limit, so logins
    /// sent all at once cannot get more guesses past it than one after another.
    in_progress: u32,
}

impl Entry {
    /// Forgets the failures once `lockout` has passed since the last one.
    fn expire(&mut self, now: Instant, lockout: Duration) {
        if self
            .last_failure
            .is_some_and(|at| now.saturating_duration_since(at) >= lockout)
        {
            self.failures = 0;
            self.last_failure = None;
        }
    }

    fn is_idle(&self) -> bool {
        self.failures == 0 && self.in_progress == 0
    }
}

impl LoginThrottle {
    /// `max_failures` 0 turns the throttle off.
    pub fn new(max_failures: u32, lockout: Duration) -> Self {
        Self::with_capacity(max_failures, lockout, MAX_TRACKED)
    }

    fn with_capacity(max_failures: u32, lockout: Duration, capacity: usize) -> Self {
        Self {
            max_failures,
            lockout,
            capacity,
            state: Mutex::default(),
        }
    }

    /// Admits one login attempt for `email` (already normalised), or refuses it with
    /// `RATE_LIMITED`. The attempt counts against the limit until it is settled with
    /// [`Attempt::succeeded`] or [`Attempt::failed`]; dropped unsettled (the hash gate
    /// was full, the store failed, the caller went away), it counts for nothing.
    pub fn begin(&self, email: &str, now: Instant) -> Result<Attempt<'_>, Error> {
        if self.max_failures == 0 {
            return Ok(Attempt::untracked(self));
        }
        let key = key(email);
        let mut state = self.lock();
        if !state.emails.contains_key(&key) && state.emails.len() >= self.capacity {
            let swept = state.sweep(now, self.lockout);
            if state.emails.len() >= self.capacity {
                // Full of emails whose failures still count. Rather than grow, or forget
                // a locked email to make room (which would let an attacker unlock one by
                // flooding the map), this attempt goes untracked: argon2 and the hash
                // gate still bound it, as they bound every login before this throttle.
                drop(state);
                if swept {
                    tracing::warn!(
                        tracked = self.capacity,
                        "the login throttle is full; new emails go unthrottled until failures expire"
                    );
                }
                return Ok(Attempt::untracked(self));
            }
        }
        let entry = state.emails.entry(key).or_default();
        entry.expire(now, self.lockout);
        if entry.failures >= self.max_failures {
            let locked_for = now.saturating_duration_since(entry.last_failure.unwrap_or(now));
            let left = self.lockout.saturating_sub(locked_for);
            crate::metrics::login_throttled();
            return Err(Error::RateLimited {
                retry_after_secs: whole_seconds(left),
            });
        }
        if entry.failures.saturating_add(entry.in_progress) >= self.max_failures {
            // Attempts in progress could still reach the limit; they end within a second
            // or so, unless the hash gate keeps them waiting.
            crate::metrics::login_throttled();
            return Err(Error::RateLimited { retry_after_secs: 1 });
        }
        entry.in_progress += 1;
        Ok(Attempt {
            throttle: self,
            key: Some(key),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The lock is held for a few map operations, none of which panics mid-update.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends one attempt in progress, then applies `settle` to its entry.
    fn settle(&self, key: &Key, settle: impl FnOnce(&mut Entry)) {
        let mut state = self.lock();
        // An entry with an attempt in progress is never swept, so it is there.
        if let Some(entry) = state.emails.get_mut(key) {
            entry.in_progress = entry.in_progress.saturating_sub(1);
            settle(entry);
            if entry.is_idle() {
                state.emails.remove(key);
            }
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().emails.len()
    }

    /// The failures kept for `email`, if it is tracked.
    #[cfg(test)]
    fn failures(&self, email: &str) -> Option<u32> {
        self.lock().emails.get(&key(email)).map(|e| e.failures)
    }
}

impl State {
    /// Drops the entries that no longer count, unless that was done less than
    /// `SWEEP_EVERY` ago; says whether it was done now.
    fn sweep(&mut self, now: Instant, lockout: Duration) -> bool {
        if self
            .swept_at
            .is_some_and(|at| now.saturating_duration_since(at) < SWEEP_EVERY)
        {
            return false;
        }
        self.swept_at = Some(now);
        self.emails.retain(|_, entry| {
            entry.expire(now, lockout);
            !entry.is_idle()
        });
        true
    }
}

/// Rounded up, and at least 1: a client told to retry in 0 seconds would retry at once.
fn whole_seconds(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// One admitted login attempt, counted against its email's limit until settled.
#[must_use = "an attempt counts against the limit until it is settled or dropped"]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    /// `None` when not tracked (the throttle is off or full) or already settled.
    key: Option<Key>,
}

impl<'a> Attempt<'a> {
    fn untracked(throttle: &'a LoginThrottle) -> Self {
        Self { throttle, key: None }
    }

    /// The right password: the email's failures are cleared.
    pub fn succeeded(mut self) {
        if let Some(key) = self.key.take() {
            self.throttle.settle(&key, |entry| {
                entry.failures = 0;
                entry.last_failure = None;
            });
        }
    }

    /// A wrong password (or no such account): one more failure; the last one allowed
    /// starts the lockout.
    pub fn failed(mut self, now: Instant) {
        let Some(key) = self.key.take() else { return };
        let (max, lockout) = (self.throttle.max_failures, self.throttle.lockout);
        let mut locked = false;
        self.throttle.settle(&key, |entry| {
            entry.expire(now, lockout);
            entry.failures = entry.failures.saturating_add(1).min(max);
            entry.last_failure = Some(now);
            locked = entry.failures == max;
        });
        if locked {
            // No email in the log: the count is kept by the email's hash only.
            tracing::info!(
                failures = max,
                lockout_secs = lockout.as_secs(),
                "an email's logins are locked after failed logins"
            );
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.throttle.settle(&key, |_| {});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCKOUT: Duration = Duration::from_secs(300);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// The `retry_after_secs` of a refusal; panics if the attempt was admitted.
    fn refused(r: Result<Attempt<'_>, Error>) -> u64 {
        match r {
            Err(Error::RateLimited { retry_after_secs }) => retry_after_secs,
            Err(e) => panic!("refused with {e:?}"),
            Ok(_) => panic!("admitted"),
        }
    }

    fn fail_times(t: &LoginThrottle, email: &str, n: u32, now: Instant) {
        for i in 0..n {
            t.begin(email, now)
                .unwrap_or_else(|e| panic!("failure {i} refused: {e:?}"))
                .failed(now);
        }
    }

    #[test]
    fn the_limit_locks_the_email_without_looking_at_passwords() {
        let t = LoginThrottle::new(5, LOCKOUT);
        let t0 = Instant::now();
        fail_times(&t, "ada@example.com", 4, t0);
        // The fifth is still let through; failing, it starts the lockout.
        t.begin("ada@example.com", t0).unwrap().failed(t0 + secs(10));
        // Refused before any password is checked, so the right one is refused too.
        assert_eq!(refused(t.begin("ada@example.com", t0 + secs(10))), 300);
        assert_eq!(refused(t.begin("ada@example.com", t0 + secs(70))), 240);
        // Another email, known or not, is untouched.
        t.begin("bob@example.com", t0 + secs(10)).unwrap().succeeded();
    }

    #[test]
    fn the_lockout_ends_and_counting_starts_again_from_zero() {
        let t = LoginThrottle::new(3, LOCKOUT);
        let t0 = Instant::now();
        fail_times(&t, "ada@example.com", 3, t0);
        let nearly = t0 + LOCKOUT - Duration::from_millis(1500);
        assert_eq!(refused(t.begin("ada@example.com", nearly)), 2, "rounded up");
        assert_eq!(refused(t.begin("ada@example.com", t0 + LOCKOUT - secs(1))), 1);
        let after = t0 + LOCKOUT;
        // From zero: two more failures are let through, the third locks again.
        fail_times(&t, "ada@example.com", 2, after);
        t.begin("ada@example.com", after).unwrap().failed(after);
        assert_eq!(refused(t.begin("ada@example.com", after)), 300);
    }

    #[test]
    fn a_success_clears_the_count() {
        let t = LoginThrottle::new(3, LOCKOUT);
        let t0 = Instant::now();
        fail_times(&t, "ada@example.com", 2, t0);
        t.begin("ada@example.com", t0).unwrap().succeeded();
        assert_eq!(t.tracked(), 0, "nothing kept for an email in good standing");
        fail_times(&t, "ada@example.com", 3, t0);
        refused(t.begin("ada@example.com", t0));
    }

    #[test]
    fn failures_are_forgotten_a_lockout_after_the_last_one() {
        let t = LoginThrottle::new(3, LOCKOUT);
        let t0 = Instant::now();
        // Each failure restarts the window: 300 s after the first but not after the
        // second, both still count.
        fail_times(&t, "ada@example.com", 1, t0);
        fail_times(&t, "ada@example.com", 1, t0 + secs(200));
        fail_times(&t, "ada@example.com", 1, t0 + LOCKOUT);
        refused(t.begin("ada@example.com", t0 + LOCKOUT));
        // A lockout after the last failure, they are gone.
        fail_times(&t, "bob@example.com", 2, t0);
        assert_eq!(t.failures("bob@example.com"), Some(2));
        let later = t0 + LOCKOUT;
        fail_times(&t, "bob@example.com", 2, later);
        assert_eq!(t.failures("bob@example.com"), Some(2));
        fail_times(&t, "bob@example.com", 1, later);
        refused(t.begin("bob@example.com", later));
    }

    #[test]
    fn attempts_in_progress_count_against_the_limit() {
        let t = LoginThrottle::new(3, LOCKOUT);
        let now = Instant::now();
        let a = t.begin("ada@example.com", now).unwrap();
        let b = t.begin("ada@example.com", now).unwrap();
        let c = t.begin("ada@example.com", now).unwrap();
        assert_eq!(refused(t.begin("ada@example.com", now)), 1);
        // One ends unsettled (the hash gate was full): it counts for nothing.
        drop(a);
        let d = t.begin("ada@example.com", now).unwrap();
        b.failed(now);
        c.failed(now);
        d.failed(now);
        assert_eq!(refused(t.begin("ada@example.com", now)), 300);
    }

    #[test]
    fn logins_at_once_cannot_slip_past_the_limit() {
        let t = LoginThrottle::new(5, LOCKOUT);
        let now = Instant::now();
        let ready = std::sync::Barrier::new(64);
        let admitted = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..64 {
                s.spawn(|| {
                    ready.wait();
                    if let Ok(attempt) = t.begin("ada@example.com", now) {
                        admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        // Held while the others try, as a hash in progress would be.
                        ready.wait();
                        attempt.failed(now);
                    } else {
                        ready.wait();
                    }
                });
            }
        });
        assert_eq!(admitted.into_inner(), 5);
        assert_eq!(refused(t.begin("ada@example.com", now)), 300);
    }

    #[test]
    fn the_map_is_bounded_and_keeps_its_locked_emails() {
        let t = LoginThrottle::with_capacity(2, LOCKOUT, 3);
        let t0 = Instant::now();
        fail_times(&t, "locked@example.com", 2, t0);
        fail_times(&t, "a@example.com", 1, t0);
        let in_progress = t.begin("b@example.com", t0).unwrap();
        assert_eq!(t.tracked(), 3);
        // Full of entries that count: a new email goes untracked, however often it fails.
        for _ in 0..10 {
            t.begin("random@example.com", t0 + secs(1))
                .unwrap()
                .failed(t0 + secs(1));
        }
        assert_eq!(t.tracked(), 3, "the map did not grow");
        refused(t.begin("locked@example.com", t0 + secs(1)));
        // A lockout later, a sweep drops what no longer counts, but not an attempt in
        // progress, which then settles as usual.
        let later = t0 + LOCKOUT + secs(1);
        fail_times(&t, "new@example.com", 1, later);
        assert_eq!(t.tracked(), 2, "b (in progress) and new");
        in_progress.failed(later);
        fail_times(&t, "b@example.com", 1, later);
        refused(t.begin("b@example.com", later));
    }

    #[test]
    fn a_full_map_is_swept_at_most_once_a_second() {
        let t = LoginThrottle::with_capacity(5, secs(1), 1);
        let t0 = Instant::now();
        fail_times(&t, "a@example.com", 1, t0);
        // Full; swept at t0 + 0.5 s with nothing to drop, so b goes untracked.
        let half = t0 + Duration::from_millis(500);
        t.begin("b@example.com", half).unwrap().failed(half);
        assert_eq!(
            (t.failures("a@example.com"), t.failures("b@example.com")),
            (Some(1), None)
        );
        // a's failure no longer counts from t0 + 1 s, but the next sweep waits until 1.5 s.
        let early = t0 + Duration::from_millis(1200);
        t.begin("b@example.com", early).unwrap().failed(early);
        assert_eq!(
            (t.failures("a@example.com"), t.failures("b@example.com")),
            (Some(1), None)
        );
        let swept = t0 + Duration::from_millis(1500);
        t.begin("b@example.com", swept).unwrap().failed(swept);
        assert_eq!(
            (t.failures("a@example.com"), t.failures("b@example.com")),
            (None, Some(1))
        );
    }

    #[test]
    fn zero_turns_it_off() {
        let t = LoginThrottle::new(0, LOCKOUT);
        let now = Instant::now();
        fail_times(&t, "ada@example.com", 1000, now);
        t.begin("ada@example.com", now).unwrap().succeeded();
        assert_eq!(t.tracked(), 0);
    }

    #[test]
    fn emails_are_keyed_exactly_as_given() {
        // `Auth::login` normalises (trim, lowercase) before it asks; the throttle adds
        // nothing of its own, so differently written emails are different keys here.
        let t = LoginThrottle::new(1, LOCKOUT);
        let now = Instant::now();
        fail_times(&t, "ada@example.com", 1, now);
        refused(t.begin("ada@example.com", now));
        t.begin("ada@example.org", now).unwrap().succeeded();
    }
}
