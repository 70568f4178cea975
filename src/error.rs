//! One error vocabulary for every interface.
//!
//! Capability modules return [`Error`]; it is mapped exactly once to an HTTP status
//! with a JSON body (here), to a GraphQL error with `extensions.code` (here), and,
//! later, to WebSocket close codes. Internal errors are logged with their cause and
//! shown to the caller only as "internal error".

use async_graphql::ErrorExtensions;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Deliberately not `Display`: async-graphql converts any `Display` type into a
/// GraphQL error without a code, and this way the compiler makes every resolver go
/// through the `From` impl below, which sets `extensions.code`.
#[derive(Debug)]
pub enum Error {
    Unauthenticated,
    /// Same answer for an unknown user and a wrong password.
    InvalidCredentials,
    Forbidden(String),
    NotFound(&'static str),
    /// A stale `lockVersion`: carries the record as it is now.
    Conflict {
        message: String,
        current: Value,
    },
    Validation {
        field: String,
        message: String,
    },
    LimitExceeded(String),
    /// Too much of some bounded work is queued (password hashing): try again shortly.
    Busy(String),
    /// Too many failed logins for one email (`auth::throttle`): refused without checking
    /// the password until the lockout ends.
    RateLimited {
        retry_after_secs: u64,
    },
    /// A plugin refused the change (its `before-*` or `on-metadata-change` hook).
    PluginRejected {
        plugin: String,
        code: String,
        message: String,
        field: Option<String>,
    },
    /// A plugin on the path of the change failed (trap, fuel, time, memory, output).
    PluginFailed {
        plugin: String,
        kind: &'static str,
        message: String,
    },
    /// A dependency (the database) cannot be reached right now: nothing was done, and the
    /// same request can be sent again (`retryable`, `Retry-After`).
    Unavailable(String),
    /// The document's stored state is damaged (`collab::Damaged`): quarantined until
    /// `vellum doctor --repair`.
    DocumentDamaged,
    Internal(anyhow::Error),
}

/// The message of [`Error::Unavailable`] when the database is the cause.
pub const DATABASE_UNAVAILABLE: &str = "the database is unavailable; nothing was changed, try again shortly";

/// Whether a database error means the database cannot be used right now (down, unreachable,
/// out of connections, out of disk, locked by another process), so the same request may
/// succeed later, rather than a fault of the request or of Vellum. PostgreSQL: connection
/// exceptions (SQLSTATE class 08), shutdown and start-up (57P01-57P03), too many
/// connections and disk full (53xxx). SQLite: BUSY, LOCKED, IOERR, FULL, CANTOPEN.
pub fn database_unavailable(e: &sqlx::Error) -> bool {
    let unavailable = classify_unavailable(e);
    if unavailable {
        LAST_UNAVAILABLE.store(unix_secs(), std::sync::atomic::Ordering::Relaxed);
    }
    unavailable
}

/// When [`database_unavailable`] last said yes (seconds since the epoch; 0: never).
static LAST_UNAVAILABLE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether the database was found unavailable within the last `window`.
pub fn unavailable_within(window: std::time::Duration) -> bool {
    let last = LAST_UNAVAILABLE.load(std::sync::atomic::Ordering::Relaxed);
    last != 0 && unix_secs().saturating_sub(last) <= window.as_secs()
}

fn classify_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => {
            let Some(code) = d.code() else { return false };
            if d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // Extended result codes: the primary code is the low byte.
                let primary = code.parse::<i32>().map(|c| c & 0xff).unwrap_or(0);
                matches!(primary, 5 | 6 | 10 | 13 | 14)
            } else {
                code.starts_with("08") || code.starts_with("53") || matches!(&*code, "57P01" | "57P02" | "57P03")
            }
        }
        _ => false,
    }
}

/// Whether any cause in `e`'s chain is a [`database_unavailable`] error.
pub fn unavailable_cause(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| c.downcast_ref::<sqlx::Error>().is_some_and(database_unavailable))
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        let unavailable = crate::error::unavailable_cause(&e);
        if unavailable {
            tracing::warn!(error = format!("{e:#}"), "database unavailable");
            return Error::Unavailable(DATABASE_UNAVAILABLE.into());
        }
        if let Some(damaged) = e.chain().find_map(|c| c.downcast_ref::<crate::collab::Damaged>()) {
            tracing::error!(error = %damaged, "refused: a damaged document");
            return Error::DocumentDamaged;
        }
        Error::Internal(e)
    }
}

impl Error {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Error::Forbidden(message.into())
    }

    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthenticated | Error::InvalidCredentials => "UNAUTHENTICATED",
            Error::Forbidden(_) => "FORBIDDEN",
            Error::NotFound(_) => "NOT_FOUND",
            Error::Conflict { .. } => "CONFLICT",
            Error::Validation { .. } => "VALIDATION",
            Error::LimitExceeded(_) => "LIMIT_EXCEEDED",
            Error::Busy(_) => "BUSY",
            Error::RateLimited { .. } => "RATE_LIMITED",
            Error::PluginRejected { .. } => "PLUGIN_REJECTED",
            Error::PluginFailed { .. } => "PLUGIN_FAILED",
            Error::Unavailable(_) => "UNAVAILABLE",
            Error::DocumentDamaged => "DOCUMENT_DAMAGED",
            Error::Internal(_) => "INTERNAL",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::Unauthenticated | Error::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::LimitExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::PluginRejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            // The server is healthy; a component it runs on the request's path is not.
            Error::PluginFailed { .. } => StatusCode::BAD_GATEWAY,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::DocumentDamaged => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message a caller sees; internal causes are logged here and never shown.
    pub fn public_message(&self) -> String {
        match self {
            Error::Unauthenticated => "authentication required".into(),
            Error::InvalidCredentials => "invalid email or password".into(),
            Error::Forbidden(m) | Error::LimitExceeded(m) | Error::Busy(m) | Error::Unavailable(m) => m.clone(),
            Error::RateLimited { retry_after_secs: n } => format!(
                "too many sign-in attempts for this email; try again in {n} second{}",
                if *n == 1 { "" } else { "s" }
            ),
            Error::NotFound(what) => format!("{what} not found"),
            Error::Conflict { message, .. } => message.clone(),
            Error::DocumentDamaged => crate::collab::DAMAGED_MESSAGE.into(),
            Error::Validation { field, message } => format!("{field}: {message}"),
            Error::PluginRejected { plugin, message, .. } => format!("{plugin}: {message}"),
            Error::PluginFailed { plugin, kind, message } => {
                tracing::warn!(%plugin, kind, %message, "plugin failed on a request's path");
                format!("plugin {plugin} failed ({kind}); the change was not made")
            }
            Error::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                "internal error".into()
            }
        }
    }

    /// Extra machine-readable detail, shared by REST bodies and GraphQL extensions.
    fn details(&self) -> Vec<(&'static str, Value)> {
        match self {
            Error::Validation { field, .. } => vec![("field", json!(field))],
            Error::Conflict { current, .. } => vec![("current", current.clone())],
            Error::RateLimited { retry_after_secs } => vec![("retryAfter", json!(retry_after_secs))],
            Error::Busy(_) | Error::Unavailable(_) => vec![
                ("retryable", json!(true)),
                ("retryAfter", json!(self.retry_after_secs())),
            ],
            Error::PluginRejected {
                plugin,
                code,
                message,
                field,
            } => vec![
                ("plugin", json!(plugin)),
                ("reason", json!(code)),
                ("pluginMessage", json!(message)),
                ("field", json!(field)),
            ],
            Error::PluginFailed { plugin, kind, .. } => vec![("plugin", json!(plugin)), ("kind", json!(kind))],
            _ => vec![],
        }
    }

    /// Seconds to wait before trying again, sent as `Retry-After`.
    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::Busy(_) => Some(1),
            Error::Unavailable(_) => Some(2),
            Error::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }
}

/// Content that does not fit the schema: a VALIDATION error naming its JSON path.
impl From<crate::content::Invalid> for Error {
    fn from(e: crate::content::Invalid) -> Self {
        Error::validation(e.path, e.message)
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::from(anyhow::Error::from(e))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut body = json!({ "code": self.code(), "message": self.public_message() });
        for (k, v) in self.details() {
            body[k] = v;
        }
        let mut response = (self.status(), Json(json!({ "error": body }))).into_response();
        if let Some(secs) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl Error {
    /// The error as a whole GraphQL response over HTTP (`{"errors": [...]}`), for errors
    /// met before the engine runs (authentication): its status, `extensions.code` and
    /// details, and `Retry-After` where it has one.
    pub fn graphql_response(self) -> Response {
        let mut ext = json!({ "code": self.code() });
        for (k, v) in self.details() {
            ext[k] = v;
        }
        let body = json!({ "errors": [{ "message": self.public_message(), "extensions": ext }] });
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<Error> for async_graphql::Error {
    fn from(e: Error) -> Self {
        let mut err = async_graphql::Error::new(e.public_message());
        let code = e.code();
        let details = e.details();
        err = err.extend_with(|_, ext| {
            ext.set("code", code);
            for (k, v) in details {
                if let Ok(v) = async_graphql::Value::from_json(v) {
                    ext.set(k, v);
                }
            }
        });
        err
    }
}
