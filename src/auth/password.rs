//! Password hashing: argon2id with OWASP's parameters (m = 19 MiB, t = 2, p = 1),
//! always on the blocking pool so a login never stalls the async executor, and at most
//! one hash per core at a time (see [`Gate`]).

use std::sync::LazyLock;

use anyhow::Context;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::slots::Slots;

/// Requests that may wait for a hash, per core, beyond the ones hashing.
const WAITING_PER_CORE: usize = 32;

/// Bounds the hashes in flight. Each fills 19 MiB and takes tens of milliseconds of a
/// core, and anyone can ask for one (a login with any email): 200 logins at once used
/// to start 200 hashes on the blocking pool, 3.8 GB of memory, and crowd out the rooms'
/// work there. Now one hash runs per core, up to `WAITING_PER_CORE` per core wait in
/// turn, and the rest are refused at once with `BUSY` (HTTP 503, Retry-After) rather
/// than queued for seconds.
struct Gate {
    hashing: Semaphore,
    /// Requests admitted: hashing or waiting to.
    admitted: Slots,
}

static GATE: LazyLock<Gate> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Gate {
        hashing: Semaphore::new(cores),
        admitted: Slots::new(cores * (1 + WAITING_PER_CORE)),
    }
});

/// Runs `work` (one hash) on the blocking pool once the gate lets it.
async fn gated<T: Send + 'static>(what: &'static str, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let gate: &'static Gate = &GATE;
    // Held until the hash ends, or until the request is dropped while it waits.
    let Some(admitted) = gate.admitted.try_take() else {
        return Err(Error::Busy("too many sign-ins at once; try again in a second".into()));
    };
    let permit = gate
        .hashing
        .acquire()
        .await
        .expect("the gate's semaphore is never closed");
    // The permit goes with the work: a request dropped mid-hash still holds its core
    // until the hash ends.
    tokio::task::spawn_blocking(move || {
        let _held = (admitted, permit);
        work()
    })
    .await
    .with_context(|| format!("{what} task"))
    .map_err(Error::Internal)
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Verified against when the email is unknown, so that an unknown user costs the
/// same time as a wrong password and the two cannot be told apart.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(b"not a real password", &salt)
        .expect("hashing a constant")
        .to_string()
});

pub async fn hash(password: String) -> Result<String> {
    gated("password hashing", move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
    })
    .await?
    .map_err(Error::Internal)
}

/// Checks `password` against `stored`, or against a dummy hash when there is no user.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool> {
    gated("password verification", move || {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.clone());
        let parsed = PasswordHash::new(&stored).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
        let ok = argon2().verify_password(password.as_bytes(), &parsed).is_ok();
        Ok(ok && known)
    })
    .await?
    .map_err(Error::Internal)
}
