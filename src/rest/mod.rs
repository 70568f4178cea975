//! REST under `/api`: the seed's endpoints for simple clients, described at
//! `/api/openapi.json`. Thin: handlers call `auth` and `documents`.

mod auth;
mod content;
mod documents;
mod openapi;
mod search;
mod versions;

use axum::Router;
use axum::body::Bytes;
use axum::extract::FromRequest;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::routing::{get, patch, post, put};
use serde::de::DeserializeOwned;

use crate::auth::Principal;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(auth::register))
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/me", get(auth::me))
        .route("/documents", post(documents::create).get(documents::list))
        .route(
            "/documents/{id}",
            get(documents::get).patch(documents::update).delete(documents::delete),
        )
        .route("/documents/by-slug/{slug}", get(documents::get_by_slug))
        .route("/documents/{id}/access", patch(documents::share))
        .route("/documents/{id}/versions", get(versions::list).post(versions::save))
        .route("/documents/{id}/versions/{number}", get(versions::get))
        .route("/documents/{id}/versions/{number}/diff", get(versions::diff))
        .route("/documents/{id}/restore/{number}", post(versions::restore))
        .route("/documents/{id}/body", put(versions::set_body))
        .route("/documents/{id}/publish", post(versions::publish))
        .route("/documents/{id}/unpublish", post(versions::unpublish))
        .route("/content/{id}", get(content::by_id))
        .route("/content/by-slug/{slug}", get(content::by_slug))
        .route("/search", get(search::search))
        .route("/openapi.json", get(openapi::spec))
        .fallback(|| async { Error::NotFound("endpoint") })
}

/// A document id from a path.
pub(super) fn parse_document_id(id: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(id).map_err(|_| Error::validation("id", "not a valid document id"))
}

/// The session or API token: `Authorization: Bearer …` first, then the session cookie,
/// which counts only from a page of an allowed origin ([`cookie_origin_allowed`]): a
/// cookie sent along by a page of another site is refused with FORBIDDEN.
pub fn bearer_token(headers: &HeaderMap, config: &Config) -> Result<Option<String>> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        let token = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .unwrap_or(v);
        return Ok(Some(token.trim().to_string()));
    }
    let name = &config.auth.cookie_name;
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.to_string());
    if cookie.is_some() && !cookie_origin_allowed(headers, config) {
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("another site");
        return Err(Error::forbidden(format!(
            "the session cookie is not accepted from {origin}: send a token in the Authorization header, \
             or add the origin to server.allowed_origins"
        )));
    }
    Ok(cookie)
}

/// Whether a request carrying the session cookie comes from a page that may use it: no
/// `Origin` (not a browser's cross-site request; then `Sec-Fetch-Site` must not say
/// cross-site), the server's own origin (its host is the request's `Host` or
/// `X-Forwarded-Host`), one in `server.allowed_origins`, or in dev mode a loopback one.
pub fn cookie_origin_allowed(headers: &HeaderMap, config: &Config) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
    };
    let Some(origin) = text(header::ORIGIN) else {
        return text(axum::http::HeaderName::from_static("sec-fetch-site")) != Some("cross-site");
    };
    let origin = origin.trim().trim_end_matches('/');
    let Some(host) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false; // "null" (a sandboxed or file page) and anything else
    };
    let forwarded = text(axum::http::HeaderName::from_static("x-forwarded-host"))
        .and_then(|v| v.split(',').next())
        .map(str::trim);
    if [text(header::HOST), forwarded]
        .into_iter()
        .flatten()
        .any(|h| h.eq_ignore_ascii_case(host))
    {
        return true;
    }
    if config
        .server
        .allowed_origins
        .iter()
        .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    config.server.dev && matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

/// A `Set-Cookie` value carrying `token`, or clearing the cookie with `None`.
pub fn session_cookie(config: &Config, token: Option<&str>) -> String {
    let a = &config.auth;
    let secure = if a.cookie_secure { "; Secure" } else { "" };
    match token {
        Some(t) => format!(
            "{}={t}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            a.cookie_name, a.token_ttl_secs
        ),
        None => format!("{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}", a.cookie_name),
    }
}

/// The caller of a REST request. Bad credentials are a 401, never anonymous.
pub struct Caller(pub Principal);

impl axum::extract::FromRequestParts<AppState> for Caller {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, app: &AppState) -> Result<Self> {
        let bearer = bearer_token(&parts.headers, &app.config)?;
        Ok(Caller(app.auth.authenticate(&app.store, bearer.as_deref()).await?))
    }
}

/// A JSON body whose errors name the offending field: malformed JSON, unknown
/// fields and wrong types are VALIDATION errors, an oversized body LIMIT_EXCEEDED.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;
    async fn from_request(req: Request<axum::body::Body>, state: &S) -> Result<Self> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r: BytesRejection| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::LimitExceeded("request body is too large".into())
            } else {
                Error::validation("body", r.body_text())
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return Error::validation("body", format!("malformed JSON: {inner}"));
        }
        let message = inner.to_string();
        // serde names the field in backticks: "unknown field `foo`, expected …"
        let unknown = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|p| message.strip_prefix(p))
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| name.to_string());
        let path = e.path().to_string();
        let field = unknown.unwrap_or_else(|| if path == "." { "body".to_string() } else { path });
        Error::validation(field, message)
    })
}
