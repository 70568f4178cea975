//! Session tokens: HS256 JWTs with expiry, issuer and audience all checked, and the
//! previous signing secret accepted until a set time (rotation with an overlap).

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::AuthConfig;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// Clock skew allowed when checking `exp` and `nbf`, in seconds.
pub(super) const LEEWAY_SECS: u64 = 5;

/// Longer tokens are refused before any decoding: ours are about 250 bytes.
const MAX_TOKEN_BYTES: usize = 4096;

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// `auth.jwt_previous_secret`, accepted until `auth.jwt_previous_until`.
    previous: Option<(DecodingKey, DateTime<Utc>)>,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl_secs: i64,
}

impl JwtKeys {
    pub fn new(secret: &[u8], cfg: &AuthConfig) -> Self {
        // Only HS256 is accepted: `alg: none` and algorithm-confusion tokens fail here.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&cfg.jwt_issuer]);
        validation.set_audience(&[&cfg.jwt_audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        // `Config::validate` checked the date; an unparsable one turns the old key off.
        let previous = (!cfg.jwt_previous_secret.is_empty())
            .then(|| DateTime::parse_from_rfc3339(&cfg.jwt_previous_until).ok())
            .flatten()
            .map(|until| {
                let key = DecodingKey::from_secret(cfg.jwt_previous_secret.expose().as_bytes());
                (key, until.with_timezone(&Utc))
            });
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            previous,
            validation,
            issuer: cfg.jwt_issuer.clone(),
            audience: cfg.jwt_audience.clone(),
            ttl_secs: i64::try_from(cfg.token_ttl_secs).unwrap_or(i64::MAX / 2),
        }
    }

    pub fn issue(&self, user_id: Uuid) -> anyhow::Result<String> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now.saturating_add(self.ttl_secs),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// The claims of a valid token; `None` for anything else (the caller does not
    /// learn which check failed, and neither does the client).
    pub fn verify(&self, token: &str) -> Option<Claims> {
        if token.len() > MAX_TOKEN_BYTES {
            tracing::debug!(bytes = token.len(), "rejected an oversized session token");
            return None;
        }
        let current = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation);
        let e = match current {
            Ok(data) => return Some(data.claims),
            Err(e) => e,
        };
        if let Some((key, until)) = &self.previous
            && Utc::now() < *until
            && matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature)
            && let Ok(data) = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
        {
            return Some(data.claims);
        }
        tracing::debug!(error = %e, "rejected session token");
        None
    }
}
