//! Document sockets checked again while open (`auth::access`): when any node may have
//! taken access away, every socket on this node is authorized again from the credential
//! it opened with, exactly as a new one would be; a session's sockets also close once
//! its token expires. Sockets that lost access close with 4403, expired sessions with
//! 4401; a lowered share makes a socket read-only (and a raised one lets it edit).

use std::collections::HashMap;
use std::time::Duration;

use uuid::Uuid;

use crate::auth::{Access, Credential};
use crate::collab::{Verdict, close};
use crate::documents;
use crate::error::Error;
use crate::state::AppState;

/// Expiry is looked for every this many access checks (no query: the sockets'
/// credentials carry their expiry).
const EXPIRY_EVERY: u32 = 10;

/// Starts the checks (nothing when `auth.access_check_ms` is 0).
pub fn start_access_checks(app: &AppState) {
    let every = Duration::from_millis(app.config.auth.access_check_ms);
    if every.is_zero() {
        return;
    }
    let app = app.clone();
    let mut changes = app.access.subscribe();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u32;
        // Set when access changed and not every socket could be checked yet (the
        // database did not answer): checked again at the next tick.
        let mut owed = false;
        loop {
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    owed = true;
                }
                _ = tick.tick() => ticks = ticks.wrapping_add(1),
            }
            if owed {
                owed = !check_all(&app, true).await;
            } else if ticks.is_multiple_of(EXPIRY_EVERY) {
                check_all(&app, false).await;
            }
        }
    });
}

/// Checks every socket on this node: expiry always, access too when `access`. False
/// when some could not be checked (and `access` has to be checked again).
async fn check_all(app: &AppState, access: bool) -> bool {
    let now = chrono::Utc::now().timestamp();
    let mut complete = true;
    for (document, peers) in app.collab.peers().await {
        // One check per credential: a user's tabs on one document share the answer.
        let mut decided: HashMap<Credential, Option<Verdict>> = HashMap::new();
        let mut verdicts = Vec::new();
        for (conn, peer) in peers {
            let Some(credential) = peer.credential else { continue };
            let verdict = if credential.expired(now) {
                Some(Verdict::Close(
                    close::SESSION_EXPIRED,
                    "the session expired; sign in again",
                ))
            } else if !access {
                None
            } else {
                match decided.get(&credential) {
                    Some(v) => v.clone(),
                    None => match check(app, &credential, document).await {
                        Ok(v) => {
                            decided.insert(credential, v.clone());
                            v
                        }
                        Err(e) => {
                            tracing::debug!(error = ?e, %document, "could not check access again; retrying");
                            complete = false;
                            None
                        }
                    },
                }
            };
            match verdict {
                Some(Verdict::ReadOnly(r)) if r == peer.read_only => {}
                Some(v) => verdicts.push((conn, v)),
                None => {}
            }
        }
        if !verdicts.is_empty() {
            app.collab.reauthorized(document, verdicts).await;
        }
    }
    complete
}

/// What a socket opened with `credential` on `document` may do now: `Err` when that
/// could not be decided (the database did not answer).
async fn check(app: &AppState, credential: &Credential, document: Uuid) -> Result<Option<Verdict>, Error> {
    let revoked = Some(Verdict::Close(
        close::ACCESS_REVOKED,
        "access to this document was taken away",
    ));
    let who = match credential.principal(&app.store).await {
        Ok(who) => who,
        Err(Error::Unauthenticated) => return Ok(revoked),
        Err(e) => return Err(e),
    };
    match documents::get(&app.store, &who, document).await {
        Ok(visible) => Ok(Some(Verdict::ReadOnly(visible.access < Access::Write))),
        Err(Error::NotFound(_) | Error::Forbidden(_) | Error::Unauthenticated) => Ok(revoked),
        Err(e) => Err(e),
    }
}
