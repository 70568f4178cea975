//! Registration, login, and turning credentials into a [`Principal`].

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::throttle::LoginThrottle;
use super::{ApiToken, JwtKeys, Principal, Role, TokenScope, User, password};
use crate::config::AuthConfig;
use crate::error::{Error, Result};
use crate::store::Store;

/// API tokens start with this, which is how a bearer value is told apart from a JWT.
pub const API_TOKEN_PREFIX: &str = "vlm_";

pub struct Auth {
    keys: JwtKeys,
    allow_registration: bool,
    throttle: LoginThrottle,
}

pub struct RegisterInput {
    pub email: String,
    pub password: String,
    pub display_name: String,
}

/// A token as shown once, at creation.
pub struct NewApiToken {
    pub token: String,
    pub info: ApiToken,
}

impl Auth {
    pub fn new(secret: &[u8], cfg: &AuthConfig) -> Self {
        Self {
            keys: JwtKeys::new(secret, cfg),
            allow_registration: cfg.allow_registration,
            throttle: LoginThrottle::new(cfg.login_max_failures, Duration::from_secs(cfg.login_lockout_secs)),
        }
    }

    pub fn keys(&self) -> &JwtKeys {
        &self.keys
    }

    /// Registers a user through the API. The first user becomes admin; later ones authors.
    pub async fn register(&self, store: &Store, input: RegisterInput) -> Result<(User, String)> {
        if !self.allow_registration {
            return Err(Error::forbidden("registration is closed; ask an admin for an account"));
        }
        let user = create_user(store, input, None).await?;
        let token = self.keys.issue(user.id)?;
        Ok((user, token))
    }

    /// Unknown email and wrong password give the same error in the same time. Too many
    /// failures for an email, known or not, and its logins are refused with RATE_LIMITED
    /// before the password is checked (`throttle`).
    pub async fn login(&self, store: &Store, email: &str, password: &str) -> Result<(User, String)> {
        let email = email.trim().to_lowercase();
        // Dropped unsettled on an early return (BUSY, a store error), it counts for nothing.
        let attempt = self.throttle.begin(&email, Instant::now())?;
        let found = store.credentials(&email).await?;
        let (user, hash) = match found {
            Some((u, h)) => (Some(u), Some(h)),
            None => (None, None),
        };
        let ok = password::verify(password.to_string(), hash).await?;
        match user {
            Some(user) if ok => {
                attempt.succeeded();
                let token = self.keys.issue(user.id)?;
                Ok((user, token))
            }
            _ => {
                attempt.failed(Instant::now());
                Err(Error::InvalidCredentials)
            }
        }
    }

    /// The claims of a bearer value that is a valid session token (a JWT; not an API
    /// token), without reading the store: lets a caller read what it needs for the user
    /// (`sub`) while [`Auth::session_user`] checks the user still exists.
    pub fn session_claims(&self, bearer: Option<&str>) -> Option<super::Claims> {
        let bearer = bearer
            .map(str::trim)
            .filter(|b| !b.is_empty() && !b.starts_with(API_TOKEN_PREFIX))?;
        self.keys.verify(bearer)
    }

    /// The principal behind a bearer value (a session JWT or an API token).
    /// No credentials is anonymous; bad credentials are an error, never anonymous.
    pub async fn authenticate(&self, store: &Store, bearer: Option<&str>) -> Result<Principal> {
        let Some(bearer) = bearer.map(str::trim).filter(|b| !b.is_empty()) else {
            return Ok(Principal::Anonymous);
        };
        if bearer.starts_with(API_TOKEN_PREFIX) {
            let (user, scope) = store
                .api_token_owner(&hash_api_token(bearer))
                .await?
                .ok_or(Error::Unauthenticated)?;
            return Ok(Principal::Token { user, scope });
        }
        let claims = self.keys.verify(bearer).ok_or(Error::Unauthenticated)?;
        Self::session_user(store, claims.sub).await
    }

    /// The principal for a verified session token's subject ([`Auth::session_claims`]):
    /// the user, if the account still exists.
    pub async fn session_user(store: &Store, user_id: uuid::Uuid) -> Result<Principal> {
        let user = store.user_by_id(user_id).await?.ok_or(Error::Unauthenticated)?;
        Ok(Principal::User(user))
    }

    pub async fn create_api_token(
        &self,
        store: &Store,
        who: &Principal,
        name: &str,
        scope: TokenScope,
    ) -> Result<NewApiToken> {
        // Only a signed-in person mints tokens; a token cannot mint another.
        let Principal::User(user) = who else {
            return Err(match who {
                Principal::Anonymous => Error::Unauthenticated,
                _ => Error::forbidden("API tokens cannot create API tokens"),
            });
        };
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::validation("name", "must be 1 to 100 characters"));
        }
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = format!("{API_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        let info = store
            .create_api_token(user.id, name, scope, &hash_api_token(&token))
            .await?;
        Ok(NewApiToken { token, info })
    }
}

/// Creates a user (API registration, or `vellum user create` with an explicit role).
pub async fn create_user(store: &Store, input: RegisterInput, role: Option<Role>) -> Result<User> {
    let email = input.email.trim().to_lowercase();
    validate_email(&email)?;
    let display_name = input.display_name.trim();
    if display_name.is_empty() || display_name.chars().count() > 100 {
        return Err(Error::validation("displayName", "must be 1 to 100 characters"));
    }
    if input.password.chars().count() < 8 || input.password.len() > 1024 {
        return Err(Error::validation("password", "must be 8 to 1024 characters"));
    }
    let hash = password::hash(input.password).await?;
    store
        .create_user(&email, display_name, &hash, role, Role::Author)
        .await?
        .ok_or_else(|| Error::validation("email", "already registered"))
}

fn validate_email(email: &str) -> Result<()> {
    let bad = || Error::validation("email", "must be a valid email address");
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.contains('@') => Ok(()),
        _ => Err(bad()),
    }
}

/// Tokens have 256 random bits, so a fast hash is enough (no salt or argon2 needed):
/// the database holds nothing that can be used as a token.
pub(super) fn hash_api_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
