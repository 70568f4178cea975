//! GraphQL at `/graphql`: a thin layer over `auth` and `documents`.
//!
//! Invariant: every error a client sees carries `extensions.code`. Resolver errors get
//! it from [`crate::error::Error`]; parse, validation and limit errors from the engine
//! get it in [`classify_engine_errors`].

mod deadline;
mod expanded;
mod schema;
mod search;
mod subscription;
mod types;

pub use schema::{Mutation, Query, VellumSchema, build_schema};

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::{Context, ErrorExtensionValues, Response as GqlResponse, ServerError};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use futures::future::Either;
use futures::{SinkExt, Stream, StreamExt};

use crate::auth::{Credential, Principal};
use crate::error::Error;
use crate::rest::bearer_token;
use crate::slots::Slots;
use crate::state::AppState;

/// The principal of the current request.
pub(crate) fn caller<'a>(ctx: &Context<'a>) -> &'a Principal {
    ctx.data_unchecked::<Principal>()
}

pub(crate) fn state<'a>(ctx: &Context<'a>) -> &'a AppState {
    ctx.data_unchecked::<AppState>()
}

/// Turns a capability error into a GraphQL error with its code.
pub(crate) fn gql(e: impl Into<Error>) -> async_graphql::Error {
    let e: Error = e.into();
    e.into()
}

pub async fn graphql_handler(
    State(app): State<AppState>,
    schema: axum::Extension<VellumSchema>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "LIMIT_EXCEEDED",
                "request body is too large",
                None,
            );
        }
        Err(rejection) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "VALIDATION",
                &rejection.body_text(),
                Some("body"),
            );
        }
    };
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(_) if body.first() == Some(&b'[') => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "VALIDATION",
                "batched requests are not supported",
                Some("body"),
            );
        }
        Err(e) => {
            let msg = format!("malformed GraphQL request: {e}");
            return error_response(StatusCode::BAD_REQUEST, "VALIDATION", &msg, Some("body"));
        }
    };
    let token = match bearer_token(&headers, &app.config) {
        Ok(t) => t,
        Err(e) => return error_response(StatusCode::FORBIDDEN, e.code(), &e.public_message(), None),
    };
    let principal = match app.auth.authenticate(&app.store, token.as_deref()).await {
        Ok(p) => p,
        // 401 for bad credentials; 503 (retryable) when the database cannot say.
        Err(e) => return e.graphql_response(),
    };
    crate::metrics::graphql_operation(crate::metrics::operation_kind(&request.query));
    let mut response = schema.execute(request.data(principal).data(app.clone())).await;
    classify_engine_errors(&mut response);
    for err in &response.errors {
        if let Some(async_graphql::Value::String(code)) = err.extensions.as_ref().and_then(|e| e.get("code")) {
            crate::metrics::graphql_error(code);
        }
    }
    let headers = std::mem::take(&mut response.http_headers);
    let mut out = axum::Json(response).into_response();
    out.headers_mut().extend(headers);
    out
}

/// GET /graphql: a `graphql-transport-ws` (or legacy `graphql-ws`) subscription socket
/// when upgrading, GraphiQL in dev mode otherwise. The socket authenticates with
/// `{"token": …}` in `connection_init`, or with the session cookie of the upgrade.
pub async fn graphql_get(
    State(app): State<AppState>,
    schema: axum::Extension<VellumSchema>,
    sockets: axum::Extension<SubscriptionSockets>,
    headers: HeaderMap,
    protocol: Result<GraphQLProtocol, StatusCode>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let (Ok(protocol), Ok(upgrade)) = (protocol, upgrade) else {
        return graphiql(&app);
    };
    let Some(slot) = sockets.0.0.try_take() else {
        let busy = Error::Busy("too many subscription sockets open on this server; try again later".into());
        return busy.into_response();
    };
    // A cookie from another site's page is refused before the upgrade.
    let cookie_token = match bearer_token(&headers, &app.config) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let schema = schema.0.clone();
    let max_message = app.config.server.max_body_bytes;
    let init_within = Duration::from_secs(app.config.graphql.init_timeout_secs.max(1));
    // tungstenite's defaults are a 128 KiB read buffer per socket, allocated up front,
    // and 64 MiB messages: a thousand sockets opened and left silent took 134 MB. Sockets
    // start with 512 B and take messages up to a request body's limit.
    let upgrade = upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(max_message)
        .max_frame_size(max_message);
    let max_operations = app.config.graphql.max_operations_per_socket;
    upgrade.on_upgrade(move |socket| async move {
        // Held until the socket ends.
        let _slot = slot;
        let (mut sink, stream) = socket.split();
        let operations = Operations::new(max_operations);
        let ending = Ending::default();
        let (expiry_tx, expiry_rx) = tokio::sync::watch::channel(None);
        let stream = first_message_within(stream, init_within, ending.clone())
            .take_until(Box::pin(session_expiry(expiry_rx, ending.clone())));
        let stream = operations.count_started(stream);
        let out = (&mut sink).with(|m: Message| {
            operations.note_ended(&m);
            futures::future::ready(Ok::<_, axum::Error>(ending.rewrite(m)))
        });
        let init_ending = ending.clone();
        GraphQLWebSocket::new_with_pair(out, stream, schema, protocol)
            .on_connection_init(move |payload| async move {
                let token = payload
                    .get("token")
                    .and_then(|t| t.as_str())
                    .map(String::from)
                    .or(cookie_token);
                let principal = match app.auth.authenticate(&app.store, token.as_deref()).await {
                    Ok(p) => p,
                    Err(e) => {
                        if matches!(e, Error::Unauthenticated) {
                            init_ending.set(FORBIDDEN, "Forbidden: the token is not valid");
                        }
                        return Err(gql(e));
                    }
                };
                let credential = token.as_deref().and_then(|t| Credential::of(&app.auth, t));
                let _ = expiry_tx.send(credential.as_ref().and_then(Credential::valid_until));
                let mut data = async_graphql::Data::default();
                data.insert(principal);
                data.insert(SocketCredential(credential));
                data.insert(app);
                Ok(data)
            })
            .serve()
            .await;
        let close = match (operations.over_limit(), ending.take()) {
            (Some(reason), _) => Some((TOO_MANY_OPERATIONS, reason)),
            (None, Some((code, reason))) => Some((code, reason.to_string())),
            (None, None) => None,
        };
        if let Some((code, reason)) = close {
            let close = CloseFrame {
                code,
                reason: reason.into(),
            };
            let _ = sink.send(Message::Close(Some(close))).await;
        }
    })
}

/// What a subscription socket authenticated with (`connection_init`'s token or the
/// cookie), for checking access again while its subscriptions run.
pub(crate) struct SocketCredential(pub Option<Credential>);

/// graphql-transport-ws's close codes for a socket that did not initialise in time, one
/// whose token is not valid (async-graphql says 1002), and one whose session expired.
const INIT_TIMEOUT: u16 = 4408;
const FORBIDDEN: u16 = 4403;
const UNAUTHORIZED: u16 = 4401;

/// Why this side ends a subscription socket, when it is not async-graphql's own
/// reason: the close frame sent, or the one async-graphql's is replaced with.
#[derive(Clone, Default)]
struct Ending(Arc<Mutex<Option<(u16, &'static str)>>>);

impl Ending {
    fn set(&self, code: u16, reason: &'static str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert((code, reason));
    }

    fn take(&self) -> Option<(u16, &'static str)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// async-graphql's close frame, replaced when this side knows better why.
    fn rewrite(&self, m: Message) -> Message {
        match m {
            Message::Close(_) => match self.take() {
                Some((code, reason)) => Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })),
                None => m,
            },
            m => m,
        }
    }
}

/// Completes when the socket's session token expires (never for an API token, nor
/// before `connection_init` named a token), saying so in `ending`.
async fn session_expiry(mut expiry: tokio::sync::watch::Receiver<Option<i64>>, ending: Ending) {
    let valid_until = loop {
        if let Some(t) = *expiry.borrow_and_update() {
            break t;
        }
        if expiry.changed().await.is_err() {
            return std::future::pending().await;
        }
    };
    let left = valid_until.saturating_sub(chrono::Utc::now().timestamp()).max(0);
    tokio::time::sleep(Duration::from_secs(left as u64)).await;
    ending.set(UNAUTHORIZED, "Unauthorized: the session expired");
}

/// Initial size of a subscription socket's read buffer (tungstenite's; it grows for a
/// larger message).
const READ_BUFFER_BYTES: usize = 512;

/// The close code for a socket that started more than `graphql.max_operations_per_socket`
/// operations at once: graphql-transport-ws's "bad request", which clients do not retry.
const TOO_MANY_OPERATIONS: u16 = 4400;

/// The operations running on one subscription socket, by id: started by the client's
/// `subscribe` (`start` in the legacy protocol), ended by its `complete` (`stop`) or by
/// the server's `complete`. async-graphql runs any number of them per socket;
/// past the limit the client's messages stop there and the socket is closed (4400).
#[derive(Clone)]
struct Operations(Arc<Mutex<OperationsState>>);

struct OperationsState {
    running: HashSet<String>,
    max: usize,
    over: bool,
}

/// The fields of a protocol message that say what it does to an operation.
#[derive(serde::Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
}

fn envelope(message: &Message) -> Option<Envelope> {
    match message {
        Message::Text(text) => serde_json::from_str(text.as_str()).ok(),
        _ => None,
    }
}

impl Operations {
    fn new(max: usize) -> Self {
        Self(Arc::new(Mutex::new(OperationsState {
            running: HashSet::new(),
            max,
            over: false,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OperationsState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `stream`, counting the operations the client starts and stops; it ends before a
    /// start that would pass the limit.
    fn count_started<S, E>(&self, stream: S) -> impl Stream<Item = Result<Message, E>> + use<S, E>
    where
        S: Stream<Item = Result<Message, E>>,
    {
        let operations = self.clone();
        stream.take_while(move |item| {
            let keep = match item.as_ref().ok().and_then(envelope) {
                Some(Envelope { kind, id: Some(id) }) => {
                    let mut state = operations.lock();
                    match kind.as_str() {
                        "subscribe" | "start" if !state.running.contains(&id) => {
                            if state.running.len() >= state.max {
                                state.over = true;
                                false
                            } else {
                                state.running.insert(id);
                                true
                            }
                        }
                        "complete" | "stop" => {
                            state.running.remove(&id);
                            true
                        }
                        _ => true,
                    }
                }
                _ => true,
            };
            futures::future::ready(keep)
        })
    }

    /// Called for each message the server sends. async-graphql ends every operation with
    /// `complete` (a refused one too: its errors go in `next`), and writes the type
    /// first, so the `next` messages (the subscription events, of any size) are not
    /// parsed here.
    fn note_ended(&self, message: &Message) {
        let Message::Text(text) = message else { return };
        if !text.as_str().starts_with(r#"{"type":"complete""#) {
            return;
        }
        if let Some(Envelope { id: Some(id), .. }) = envelope(message) {
            self.lock().running.remove(&id);
        }
    }

    /// Why the socket is to be closed, if a start passed the limit.
    fn over_limit(&self) -> Option<String> {
        let state = self.lock();
        state.over.then(|| {
            format!(
                "too many operations on one socket: at most {} at once (graphql.max_operations_per_socket)",
                state.max
            )
        })
    }
}

/// The subscription sockets open on this node, at most `graphql.max_connections`.
#[derive(Clone)]
pub struct SubscriptionSockets(pub Slots);

/// `stream`, ended unless its first message arrives within `timeout`. A client's first
/// message is `connection_init`, which the protocol expects promptly; without this a
/// socket opened and left silent was held forever, since async-graphql has no such
/// timeout (its keep-alive timeout would close idle subscribers too).
fn first_message_within<S: Stream + Unpin>(
    mut stream: S,
    timeout: Duration,
    ending: Ending,
) -> impl Stream<Item = S::Item> {
    futures::stream::once(async move {
        match tokio::time::timeout(timeout, stream.next()).await {
            Ok(Some(first)) => Either::Left(futures::stream::iter([first]).chain(stream)),
            Ok(None) => Either::Right(futures::stream::empty()),
            Err(_) => {
                ending.set(INIT_TIMEOUT, "Connection initialisation timeout");
                Either::Right(futures::stream::empty())
            }
        }
    })
    .flatten()
}

fn graphiql(app: &AppState) -> Response {
    if !app.config.server.dev {
        return (StatusCode::METHOD_NOT_ALLOWED, "POST GraphQL requests to /graphql").into_response();
    }
    Html(
        async_graphql::http::GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql")
            .finish(),
    )
    .into_response()
}

fn error_response(status: StatusCode, code: &str, message: &str, field: Option<&str>) -> Response {
    let mut ext = serde_json::json!({ "code": code });
    if let Some(f) = field {
        ext["field"] = f.into();
    }
    let body = serde_json::json!({ "errors": [{ "message": message, "extensions": ext }] });
    (status, axum::Json(body)).into_response()
}

/// Gives engine errors (syntax, unknown fields, wrong types, depth and complexity
/// limits) a code, and a `field` where the message names one.
fn classify_engine_errors(response: &mut GqlResponse) {
    for err in &mut response.errors {
        if err.extensions.as_ref().is_some_and(|e| e.get("code").is_some()) {
            continue;
        }
        let (code, field) = classify(err);
        let ext = err.extensions.get_or_insert_with(ErrorExtensionValues::default);
        ext.set("code", code);
        if let Some(f) = field {
            ext.set("field", f);
        }
    }
}

fn classify(err: &ServerError) -> (&'static str, Option<String>) {
    let m = &err.message;
    if m.contains("nested too deep") || m.contains("too complex") || m.contains("too many") {
        return ("LIMIT_EXCEEDED", None);
    }
    let quoted_after = |marker: &str| {
        let rest = &m[m.find(marker)? + marker.len()..];
        let start = rest.find('"')? + 1;
        let len = rest[start..].find('"')?;
        Some(rest[start..start + len].to_string())
    };
    let field = quoted_after("unknown field")
        .or_else(|| quoted_after("field"))
        .or_else(|| quoted_after("argument"));
    ("VALIDATION", field)
}
