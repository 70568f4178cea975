//! Access taken away while connected. A document socket or a subscription is
//! authorized once, when it opens; what was granted can be taken away while it stays
//! open (a share removed, the document deleted, the API token revoked) and a session
//! token expires. So each connection keeps the [`Credential`] it was opened with, and:
//!
//! - every change that can take access away bumps the database's access epoch, in the
//!   same transaction (triggers, migration 0008), on whichever node made it;
//! - each node polls the epoch ([`AccessChanges`], every `auth.access_check_ms`) and,
//!   when it moved, checks its open connections again from their credentials, exactly
//!   as a new connection would be checked;
//! - a session's connections end when the token stops being valid, with no query.
//!
//! Steady state costs one indexed single-row read per node per interval.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

use super::service::hash_api_token;
use super::{API_TOKEN_PREFIX, Auth, Principal};
use crate::error::{Error, Result};
use crate::store::Store;

/// What a connection was authenticated with, kept so that it can be checked again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Credential {
    /// A session token: its user, and the Unix time from which it no longer verifies
    /// (`exp` plus the verifier's leeway).
    Session { user_id: Uuid, valid_until: i64 },
    /// An API token, by its hash (the token itself is not kept).
    ApiToken { hash: Arc<str> },
}

impl Credential {
    /// The credential behind a bearer value that has just authenticated.
    pub fn of(auth: &Auth, bearer: &str) -> Option<Credential> {
        let bearer = bearer.trim();
        if bearer.starts_with(API_TOKEN_PREFIX) {
            return Some(Credential::ApiToken {
                hash: hash_api_token(bearer).into(),
            });
        }
        auth.keys().verify(bearer).map(|c| Credential::session(&c))
    }

    /// The credential of a verified session token.
    pub fn session(claims: &super::Claims) -> Credential {
        Credential::Session {
            user_id: claims.sub,
            valid_until: claims.exp.saturating_add(super::jwt::LEEWAY_SECS as i64),
        }
    }

    /// When this credential stops being valid without anyone doing anything.
    pub fn valid_until(&self) -> Option<i64> {
        match self {
            Credential::Session { valid_until, .. } => Some(*valid_until),
            Credential::ApiToken { .. } => None,
        }
    }

    pub fn expired(&self, now: i64) -> bool {
        self.valid_until().is_some_and(|t| now >= t)
    }

    /// The principal this credential stands for now: `Unauthenticated` once the token
    /// expired or was revoked, or the account is gone.
    pub async fn principal(&self, store: &Store) -> Result<Principal> {
        match self {
            Credential::Session { user_id, .. } => {
                if self.expired(chrono::Utc::now().timestamp()) {
                    return Err(Error::Unauthenticated);
                }
                Auth::session_user(store, *user_id).await
            }
            Credential::ApiToken { hash } => {
                let (user, scope) = store.api_token_owner(hash).await?.ok_or(Error::Unauthenticated)?;
                Ok(Principal::Token { user, scope })
            }
        }
    }
}

/// The access epoch as this node last read it; changes when any node took access
/// away. Cheap to clone.
#[derive(Clone)]
pub struct AccessChanges {
    rx: watch::Receiver<i64>,
}

impl AccessChanges {
    /// Polls the store every `every` (nothing is polled when it is zero).
    pub fn spawn(store: Store, every: Duration) -> Self {
        let (tx, rx) = watch::channel(0);
        if every.is_zero() {
            return Self { rx };
        }
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match store.access_epoch().await {
                    Ok(epoch) => {
                        tx.send_if_modified(|seen| std::mem::replace(seen, epoch) != epoch);
                    }
                    Err(e) => tracing::debug!(error = ?e, "could not read the access epoch"),
                }
                if tx.is_closed() {
                    return;
                }
            }
        });
        Self { rx }
    }

    /// A receiver that wakes whenever access may have been taken away.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        let mut rx = self.rx.clone();
        rx.mark_unchanged();
        rx
    }
}
