//! Wiring: state from config, the router, and serving with graceful shutdown.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use http_body::Body as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use std::sync::Arc;

use crate::auth::Auth;
use crate::bus::{Bus, InProcessBus, RedisBus};
use crate::collab::Collab;
use crate::config::{Config, DEV_JWT_SECRET};
use crate::graphql;
use crate::rest;
use crate::state::AppState;
use crate::store::{Backend, Store};

/// Connects the store, runs migrations and resolves the JWT secret.
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    crate::metrics::init();
    let store = Store::connect(&config.database, &config.server.data_dir).await?;
    let redis_url = config.bus.redis_url.expose();
    if !redis_url.is_empty() && store.backend() != Backend::Postgres {
        bail!(
            "REDIS_URL / bus.redis_url is set, but the database is SQLite: many nodes share one PostgreSQL database (set DATABASE_URL), or unset REDIS_URL to run a single node"
        );
    }
    store.lock_for_serving()?;
    store.migrate().await?;
    let secret = jwt_secret(&config, store.backend())?;
    let auth = Auth::new(&secret, &config.auth);
    let node_id = crate::collab::node_id(&config.collab);
    let bus: Arc<dyn Bus> = if redis_url.is_empty() {
        Arc::new(InProcessBus::new(1024))
    } else {
        tracing::info!(node = %node_id, "joining the cluster over the Redis bus");
        Arc::new(RedisBus::start(redis_url, node_id.clone(), config.bus.drop_percent)?)
    };
    let collab = Collab::new(config.collab.clone(), node_id, store.clone(), bus);
    collab.start_probe(Duration::from_secs(config.bus.probe_secs));
    start_session_heartbeat(&store, &collab).await?;
    let plugins = crate::plugins::Plugins::load(&config.plugins, &config.server.data_dir, Some(store.clone())).await;
    plugins.watch();
    let search = crate::search::Search::open(&config.search, &config.server.data_dir)?;
    let state = AppState::new(config, store, auth, collab, plugins, search);
    state.search.start(state.clone());
    crate::ws::start_access_checks(&state);
    Ok(state)
}

/// Clears `active_sessions` rows left by this node's previous run or by dead nodes,
/// then refreshes this node's rows every `collab.heartbeat_secs`.
async fn start_session_heartbeat(store: &Store, collab: &Collab) -> anyhow::Result<()> {
    let every = Duration::from_secs(collab.config().heartbeat_secs);
    let stale_before = crate::store::now() - chrono::Duration::from_std(every * 3)?;
    let cleared = store.clear_stale_sessions(collab.node_id(), stale_before).await?;
    if cleared > 0 {
        tracing::info!(cleared, "cleared stale sessions");
    }
    let (store, node) = (store.clone(), collab.node_id().to_string());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = store.heartbeat_sessions(&node).await {
                tracing::warn!(error = ?e, "session heartbeat failed");
            }
        }
    });
    Ok(())
}

/// The signing secret, under the rules documented in `config/default.toml`.
fn jwt_secret(config: &Config, backend: Backend) -> anyhow::Result<Vec<u8>> {
    let set = config.auth.jwt_secret.expose();
    let dev = config.server.dev;
    if !set.is_empty() {
        if !dev && (set.len() < 32 || set == DEV_JWT_SECRET) {
            bail!("JWT_SECRET must be at least 32 bytes and not the development secret (or run with VELLUM_DEV=1)");
        }
        return Ok(set.as_bytes().to_vec());
    }
    if dev {
        return Ok(DEV_JWT_SECRET.as_bytes().to_vec());
    }
    if backend == Backend::Postgres {
        bail!("set JWT_SECRET (at least 32 bytes): with PostgreSQL every node must share the same secret");
    }
    load_or_create_secret(&config.server.data_dir.join("jwt_secret"))
}

/// A random secret kept in the data directory, created on first start.
fn load_or_create_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    use rand::RngCore;
    if let Ok(existing) = std::fs::read_to_string(path) {
        let s = existing.trim();
        if s.len() >= 32 {
            return Ok(s.as_bytes().to_vec());
        }
        bail!(
            "{} holds a secret shorter than 32 bytes; delete it to generate a new one",
            path.display()
        );
    }
    let mut bytes = [0u8; 48];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    write_private(path, &secret).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a JWT secret");
    Ok(secret.into_bytes())
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(contents.as_bytes())
}

pub fn router(state: AppState) -> Router {
    let schema = graphql::build_schema(&state.config);
    Router::new()
        .route("/graphql", get(graphql::graphql_get).post(graphql::graphql_handler))
        .route("/ws/doc/{id}", get(crate::ws::upgrade))
        .nest("/api", rest::router())
        .route("/healthz", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        // the admin UI: its files, and index.html for client-side routes
        .fallback(crate::ui::fallback)
        .layer(Extension(schema))
        .layer(Extension(graphql::SubscriptionSockets(crate::slots::Slots::new(
            state.config.graphql.max_connections,
        ))))
        .layer(DefaultBodyLimit::max(state.config.server.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            request_timeout(&state.config),
            body_deadline,
        ))
        .layer(middleware::from_fn(note_churn))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// Every request allocates and frees (buffers, headers, query results): noted, so the
/// memory a burst of them freed goes back to the system once they stop (`memory`).
async fn note_churn(req: Request, next: Next) -> Response {
    crate::memory::churned();
    next.run(req).await
}

/// The span tower-http's trace layer opens per request, as its default one (at debug
/// level) but with any `token` in the query hidden: the WebSocket endpoint takes a session
/// or API token there (browsers cannot set headers on a WebSocket), and the default span
/// wrote it into the log.
fn request_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %req.method(),
        uri = %redacted_uri(req.uri()),
        version = ?req.version(),
    )
}

/// The path and query of `uri`, with the value of every `token` parameter replaced.
fn redacted_uri(uri: &axum::http::Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.path().to_string();
    };
    let pairs: Vec<&str> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some(("token", _)) => "token=[redacted]",
            _ => pair,
        })
        .collect();
    format!("{}?{}", uri.path(), pairs.join("&"))
}

/// `server.request_timeout_secs`: for a request's headers (`accept`), then for its body
/// (`body_deadline`), and for a subscription socket's first message; 0 is none.
pub(crate) fn request_timeout(config: &Config) -> Option<Duration> {
    match config.server.request_timeout_secs {
        0 => None,
        secs => Some(Duration::from_secs(secs)),
    }
}

/// Gives a request's body `request_timeout_secs` from its headers to arrive whole.
/// hyper times the headers only, so a client could still hold a connection forever by
/// sending a body a byte at a time; a body past its deadline fails to read (the handler
/// answers with an error, and the connection closes with the body unread).
async fn body_deadline(State(timeout): State<Option<Duration>>, req: Request, next: Next) -> Response {
    match timeout {
        Some(timeout) if !req.body().is_end_stream() => {
            let deadline = tokio::time::Instant::now() + timeout;
            let req = req.map(|body| {
                Body::new(Deadline {
                    body,
                    deadline,
                    timeout,
                    sleep: None,
                })
            });
            next.run(req).await
        }
        _ => next.run(req).await,
    }
}

/// A request body that fails once its deadline passes. The timer starts at the first read.
struct Deadline {
    body: Body,
    deadline: tokio::time::Instant,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            let secs = this.timeout.as_secs();
            let e = format!("the request body did not arrive within {secs} s");
            return std::task::Poll::Ready(Some(Err(axum::Error::new(e))));
        }
        Pin::new(&mut this.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// How long `/readyz` waits for the database before saying it is unavailable (a load
/// balancer's health check gives up after a few seconds).
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Ready: 200 `ready`; 200 `degraded` while the Redis bus is down (this node still
/// serves its own clients, and nothing is lost); 503 while the database is unreachable
/// or does not take writes (after the group commit failed for want of it), or once
/// shutdown began (a load balancer then sends new clients elsewhere).
async fn readyz(State(app): State<AppState>) -> Response {
    if app.collab.shutting_down() {
        let body = Json(json!({ "status": "unavailable", "reason": "shutting down" }));
        return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    }
    let probe = async {
        app.store.ping().await?;
        if app.store.writes_failing() {
            // Reads can work while writes do not (a locked or full SQLite file): once the
            // group commit failed for want of the database, only a real write says ready.
            app.store.probe_write(app.collab.node_id()).await?;
        }
        anyhow::Ok(())
    };
    let checked = tokio::time::timeout(READY_PROBE_TIMEOUT, probe)
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {READY_PROBE_TIMEOUT:?}")));
    match checked {
        Ok(()) if !app.collab.bus().connected() => {
            Json(json!({ "status": "degraded", "reason": "bus" })).into_response()
        }
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "reason": "database" })),
            )
                .into_response()
        }
    }
}

/// Prometheus metrics (README, "Metrics").
async fn metrics(State(app): State<AppState>) -> Response {
    let text = crate::metrics::render(|| {
        crate::metrics::set_gauges(
            app.collab.connections(),
            app.collab.loaded_rooms(),
            app.collab.bus().connected(),
        )
    });
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish (bounded
/// by `server.shutdown_grace_secs`) and closes the store.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let grace = Duration::from_secs(state.config.server.shutdown_grace_secs);
    let header_timeout = request_timeout(&state.config);
    let store = state.store.clone();
    let collab = state.collab.clone();
    let search = state.search.clone();
    let node_id = collab.node_id().to_string();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stopping = async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(());
    };
    let trimmer = crate::memory::spawn_trimmer(Duration::from_millis(state.config.server.trim_memory_after_ms));
    // On the signal the listener stops accepting first; then rooms flush pending updates,
    // write final snapshots and close their sockets with 1012 (clients reconnect through
    // the load balancer to another node), while HTTP requests in flight finish.
    let mut server = tokio::spawn(accept(listener, router(state), header_timeout, stopping));
    let ended = tokio::select! {
        res = &mut server => Some(res),
        _ = &mut stop_rx => None,
    };
    collab.shutdown().await;
    match ended {
        Some(res) => res.context("server task")?,
        None => match tokio::time::timeout(grace, &mut server).await {
            Ok(res) => res.context("server task")?,
            Err(_) => {
                tracing::warn!("in-flight requests did not finish within the grace period");
                server.abort();
            }
        },
    }
    // Sockets still closing cannot clear their own session rows once the store is
    // closed: clear this node's in one statement first (the next start would too).
    if let Err(e) = store.clear_node_sessions(&node_id).await {
        tracing::warn!(error = ?e, "could not clear this node's sessions");
    }
    search.shutdown().await;
    store.close().await;
    if let Some(trimmer) = trimmer {
        trimmer.abort();
    }
    Ok(())
}

/// Accepts connections and serves HTTP/1.1 on each (with upgrades, for WebSockets) until
/// `stopping` resolves; then asks every connection to finish its request and close, and
/// returns once they have. `axum::serve` does this too, but never gives hyper a timer, so
/// a client could hold a connection forever by sending its request headers slowly, or
/// nothing at all (slowloris); here a connection gets `header_timeout` to send each
/// request's headers, which also closes kept-alive connections idle that long (and
/// `body_deadline` times the body). An upgraded connection (a WebSocket) is no longer
/// HTTP and is not timed.
async fn accept(
    listener: TcpListener,
    router: Router,
    header_timeout: Option<Duration>,
    stopping: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    // Each connection holds a receiver: a value sent asks them to finish, and `closed`
    // resolves once the last has.
    let (finish_tx, finish_rx) = tokio::sync::watch::channel(());
    let mut stopping = std::pin::pin!(stopping);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut stopping => break,
        };
        // Nagle's algorithm holds back a small WebSocket frame until the previous one is
        // acknowledged, and the peer delays that ACK by up to 40 ms: without TCP_NODELAY a
        // fan-out update waits for it (p95 ~35 ms at 50 updates/s; see BENCHMARKS.md).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(router.clone());
        let conn = http.serve_connection(TokioIo::new(tcp), service).with_upgrades();
        let mut finish = finish_rx.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = finish.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(finish);
        });
    }
    drop(finish_rx);
    let _ = finish_tx.send(());
    finish_tx.closed().await;
}

/// An accept error: a connection that failed before it was accepted is dropped; anything
/// else (out of file descriptors, say) is logged and retried after a second rather than
/// in a tight loop.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "could not accept a connection; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called
/// (not when first polled), so a signal right after start-up is not missed.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::redacted_uri;

    #[test]
    fn redacts_tokens_in_queries() {
        let cases = [
            ("/ws/doc/1?token=abc.def", "/ws/doc/1?token=[redacted]"),
            ("/ws/doc/1?x=1&token=abc&y=2", "/ws/doc/1?x=1&token=[redacted]&y=2"),
            ("/api/documents?first=20&tokens=3", "/api/documents?first=20&tokens=3"),
            ("/healthz", "/healthz"),
        ];
        for (uri, want) in cases {
            assert_eq!(redacted_uri(&uri.parse().unwrap()), want);
        }
    }
}
