//! `/ws/doc/{id}`: the y-websocket endpoint. Authenticates before the upgrade, then
//! moves frames between the socket and the document's room. The WebSocket handshake and
//! framing are this module's own (`frame`): what an idle connection holds is the socket,
//! its room handles and a small task, with no buffers (benches/HISTORY.md, change 26).

mod access;
pub mod frame;

pub use access::start_access_checks;

use std::future::poll_fn;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use uuid::Uuid;

use crate::auth::{Access, Auth, Credential, Principal};
use crate::collab::{ConnInput, Connection, ConnectionSlot, Kill, Outbound, Peer, Ready, close};
use crate::documents;
use crate::error::Error;
use crate::rest::bearer_token;
use crate::state::AppState;
use crate::store::{SessionRow, now};
use frame::{Incoming, Violation};

/// How long a socket closed for an oversized message stays open after the close frame.
const TOO_BIG_LINGER: Duration = Duration::from_secs(2);
/// How long a socket this side closes waits for the client's close frame.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(2);

/// The most read from a socket at once, into a buffer on the stack: a burst of small
/// frames is one read, and nothing is kept between reads but an incomplete frame.
const READ_CHUNK: usize = 16 * 1024;

#[derive(Deserialize)]
pub struct WsParams {
    token: Option<String>,
}

/// Refuses with 401/403/404 before upgrading (a refused upgrade makes the y-websocket
/// client back off exponentially instead of retrying every 100 ms).
pub async fn upgrade(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<WsParams>,
    headers: HeaderMap,
    ws: Upgrade,
) -> Response {
    if app.collab.shutting_down() {
        // Before the upgrade, so a load balancer tries another node (nginx:
        // `proxy_next_upstream http_503`).
        return Error::Busy("this server is shutting down; connect again (to another node)".into()).into_response();
    }
    // The node's cap, also before the upgrade (and before any database read): a crowd
    // past it costs a refused request each, not a socket. The place is reserved here, so
    // however many arrive at once none is upgraded only to be closed.
    let Some(slot) = app.collab.reserve_connection() else {
        return Error::Busy(
            "too many document sockets open on this server (collab.max_connections); try again later".into(),
        )
        .into_response();
    };
    match authorize(&app, &id, params.token, &headers).await {
        Ok((document_id, peer)) => {
            let max_message = app.collab.config().max_message_bytes;
            ws.on_upgrade(max_message, move |socket| serve(app, document_id, peer, slot, socket))
        }
        Err(e) => e.into_response(),
    }
}

/// A WebSocket handshake (RFC 6455 §4.2.1), checked: a GET with `Upgrade: websocket`,
/// `Connection: upgrade`, a key and version 13, on a connection that can be upgraded.
pub struct Upgrade {
    accept: String,
    on_upgrade: OnUpgrade,
}

/// Any other request: 400 (426 for another protocol version), with a JSON body.
fn not_a_handshake(status: StatusCode, message: &str) -> Response {
    let mut response = Error::validation("upgrade", message).into_response();
    *response.status_mut() = status;
    if status == StatusCode::UPGRADE_REQUIRED {
        let headers = response.headers_mut();
        headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
    response
}

fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        const EXPECTED: &str = "this endpoint speaks WebSocket: a GET with Upgrade: websocket, Connection: upgrade and a Sec-WebSocket-Key";
        let headers = &parts.headers;
        if parts.method != Method::GET
            || !header_has(headers, header::CONNECTION, "upgrade")
            || !header_has(headers, header::UPGRADE, "websocket")
        {
            return Err(not_a_handshake(StatusCode::BAD_REQUEST, EXPECTED));
        }
        if headers.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
            return Err(not_a_handshake(
                StatusCode::UPGRADE_REQUIRED,
                "WebSocket version 13 only",
            ));
        }
        let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
            return Err(not_a_handshake(StatusCode::BAD_REQUEST, EXPECTED));
        };
        let accept = frame::accept_key(key.as_bytes());
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            return Err(not_a_handshake(
                StatusCode::BAD_REQUEST,
                "this connection cannot be upgraded",
            ));
        };
        Ok(Upgrade { accept, on_upgrade })
    }
}

impl Upgrade {
    /// Answers 101 and runs `serve` on the socket once hyper hands it over. The socket
    /// is the plain TCP stream when it can be (it always is under `app::accept`), not
    /// hyper's boxed wrapper of it.
    fn on_upgrade<F, G>(self, max_message: usize, serve: F) -> Response
    where
        F: FnOnce(Socket) -> G + Send + 'static,
        G: Future<Output = ()> + Send + 'static,
    {
        let Upgrade { accept, on_upgrade } = self;
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(u) => u,
                Err(e) => {
                    tracing::debug!(error = %e, "WebSocket upgrade failed");
                    return;
                }
            };
            let socket = match upgraded.downcast::<TokioIo<TcpStream>>() {
                Ok(parts) => {
                    let mut socket = Socket::new(Io::Tcp(parts.io.into_inner()), max_message);
                    socket.reader.push(&parts.read_buf);
                    socket
                }
                Err(upgraded) => {
                    tracing::warn!("an upgraded socket that is not a TCP stream: served through hyper's wrapper");
                    Socket::new(Io::Other(Box::new(TokioIo::new(upgraded))), max_message)
                }
            };
            serve(socket).await
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_str(&accept).expect("base64 is a header value"),
        );
        response
    }
}

/// The socket under a WebSocket: the TCP stream, or (never under `app::accept`) whatever
/// else hyper upgraded.
enum Io {
    Tcp(TcpStream),
    Other(Box<dyn AsyncReadWrite>),
}

trait AsyncReadWrite: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncReadWrite for T {}

/// An upgraded `/ws/doc` socket: the stream, and what has arrived of the next message.
struct Socket {
    io: Io,
    reader: frame::Reader,
}

impl Socket {
    fn new(io: Io, max_message: usize) -> Self {
        Socket {
            io,
            reader: frame::Reader::new(max_message),
        }
    }

    /// The next message or control frame. Cancel-safe: what was read stays in the
    /// reader.
    async fn recv(&mut self) -> Result<Incoming, Ended> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// [`Socket::recv`] as a poll. Reads go through a buffer on the stack, so waiting
    /// holds no buffer.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Incoming, Ended>> {
        loop {
            if let Some(m) = self.reader.next_message().map_err(Ended::Violation)? {
                return Poll::Ready(Ok(m));
            }
            let mut scratch = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut scratch);
            let polled = match &mut self.io {
                Io::Tcp(s) => Pin::new(s).poll_read(cx, &mut buf),
                Io::Other(s) => Pin::new(s).poll_read(cx, &mut buf),
            };
            match ready!(polled) {
                Ok(()) if !buf.filled().is_empty() => self.reader.push(buf.filled()),
                Ok(()) | Err(_) => return Poll::Ready(Err(Ended::Gone)),
            }
        }
    }

    /// Writes `bytes` (whole frames) and flushes.
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match &mut self.io {
            Io::Tcp(s) => s.write_all(bytes).await,
            Io::Other(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }
}

/// Why reading a socket stopped.
enum Ended {
    Violation(Violation),
    /// Closed or reset by the client.
    Gone,
}

async fn authorize(
    app: &AppState,
    id: &str,
    query_token: Option<String>,
    headers: &HeaderMap,
) -> Result<(Uuid, Peer), Error> {
    let document_id = Uuid::parse_str(id).map_err(|_| Error::NotFound("document"))?;
    let token = match query_token {
        Some(t) => Some(t),
        None => bearer_token(headers, &app.config)?,
    };
    let token = token.as_deref();
    // A session token names its user, so the document (with that user's grant) is read
    // beside the user rather than after: one wait for the database instead of two on
    // every connect (benches/HISTORY.md, change 32). API tokens are looked up first.
    // The credential is kept to check access again while the socket is open.
    let (who, prefetched, credential) = match app.auth.session_claims(token) {
        Some(claims) => {
            let (who, found) = tokio::join!(
                Auth::session_user(&app.store, claims.sub),
                app.store.document_by_id(document_id, Some(claims.sub)),
            );
            (who?, Some(found?), Some(Credential::session(&claims)))
        }
        None => {
            let who = app.auth.authenticate(&app.store, token).await?;
            (who, None, token.and_then(|t| Credential::of(&app.auth, t)))
        }
    };
    if matches!(who, Principal::Anonymous) {
        return Err(Error::Unauthenticated);
    }
    let visible = match prefetched {
        Some(found) => documents::visible(&who, found),
        None => documents::get(&app.store, &who, document_id).await,
    };
    let visible = visible.map_err(|e| match e {
        // A document the caller can't see is refused the same way as one without access.
        Error::NotFound(_) => Error::forbidden("no access to this document"),
        e => e,
    })?;
    let user = who.require_user()?;
    Ok((
        document_id,
        Peer {
            user_id: Some(user.id),
            display_name: user.display_name.clone(),
            read_only: visible.access < Access::Write,
            credential,
        },
    ))
}

/// How a connection's socket loop ended.
enum End {
    /// Close with this code and reason (killed by the room, or by this side).
    Close(u16, String),
    /// The client sent its close frame: answer it.
    ClientClosed,
    /// A message over `max_message_bytes`: close with 1009 and linger.
    TooBig,
    /// The socket is gone (reset, or a write failed).
    Gone,
}

/// Joins the document's room, then hands the connection to a task of its own
/// ([`Live::run`]) and ends: the upgrade, the join and their state stay in this task,
/// and the task that lasts as long as the connection holds only what an open
/// connection needs (BENCHMARKS.md, "idle"; benches/HISTORY.md, change 27).
async fn serve(app: AppState, document_id: Uuid, peer: Peer, slot: ConnectionSlot, socket: Socket) {
    let user_id = peer.user_id;
    let Connection { input, outbound, kill } = match app.collab.join_with(document_id, peer, slot).await {
        Ok(c) => c,
        Err(e) => {
            let (code, reason) = e.close();
            finish(socket, End::Close(code, reason)).await;
            return;
        }
    };
    let session_id = Uuid::now_v7();
    app.collab.sessions().connected(SessionRow {
        id: session_id,
        node_id: app.collab.node_id().to_string(),
        user_id,
        document_id,
        connected_at: now(),
        heartbeat_at: now(),
    });
    tokio::spawn(
        Live {
            app,
            session_id,
            socket,
            input,
            outbound,
            kill,
        }
        .run(),
    );
}

/// A joined connection. (Two tasks per connection, a reader and a writer, cost more
/// memory than anything else an idle connection held; BENCHMARKS.md, "idle".)
struct Live {
    app: AppState,
    session_id: Uuid,
    socket: Socket,
    input: ConnInput,
    outbound: Outbound,
    kill: Kill,
}

impl Live {
    /// The connection's task: moves frames until the connection ends, then leaves the
    /// room and closes the socket. An `async` block rather than an `async fn`: an
    /// `async fn` keeps its arguments twice, as passed and as bound (rust-lang/rust#62958).
    #[expect(clippy::manual_async_fn, reason = "an async fn would store `self` twice")]
    fn run(mut self) -> impl Future<Output = ()> + Send {
        async move {
            let end = self.pump().await;
            let Live {
                app,
                session_id,
                socket,
                input,
                outbound,
                kill: _,
            } = self;
            drop(input); // leave the room
            drop(outbound);
            app.collab.sessions().disconnected(session_id);
            Box::pin(finish(socket, end)).await;
        }
    }

    /// Reads the client's frames into the room and writes the room's frames to the
    /// client. What waits here is a few references: both sides are polled by hand rather
    /// than through `select!`, which kept both futures and their results, and the rare
    /// and larger steps (writing, answering a ping, a busy room) are boxed.
    #[expect(
        clippy::manual_async_fn,
        reason = "as `run`: 8 bytes less in every connection's task"
    )]
    fn pump(&mut self) -> impl Future<Output = End> + Send + '_ {
        async move {
            loop {
                // The room's side first: a kill, or frames to write, before reading more.
                let event = poll_fn(|cx| {
                    if let Poll::Ready(ready) = self.outbound.poll_ready(cx) {
                        return Poll::Ready(Event::Room(ready));
                    }
                    self.socket.poll_recv(cx).map(Event::Client)
                })
                .await;
                // Anything to wait for next is boxed, so that only a pointer waits here.
                let wait: Option<Pin<Box<dyn Future<Output = bool> + Send + '_>>> = match event {
                    Event::Room(Ready::Killed(code, reason)) => return End::Close(code, reason),
                    Event::Room(Ready::Closed) => return End::Close(1000, String::new()),
                    Event::Room(Ready::Frames) => {
                        Some(Box::pin(send_queued(&mut self.socket, &mut self.outbound, &self.kill)))
                    }
                    Event::Client(Ok(Incoming::Binary(frame))) => self.input.try_receive(frame).map(|busy| {
                        Box::pin(async {
                            busy.await;
                            true
                        }) as _
                    }),
                    Event::Client(Ok(Incoming::Text)) => {
                        self.kill.kill(close::UNSUPPORTED, "binary frames only");
                        None
                    }
                    Event::Client(Ok(Incoming::Close(_))) => return End::ClientClosed,
                    Event::Client(Ok(Incoming::Ping(payload))) => {
                        Some(Box::pin(pong(&mut self.socket, &self.kill, payload)))
                    }
                    Event::Client(Ok(Incoming::Pong)) => None,
                    Event::Client(Err(Ended::Violation(Violation::TooBig))) => return End::TooBig,
                    Event::Client(Err(Ended::Violation(Violation::InvalidUtf8(why)))) => {
                        return End::Close(close::INVALID, why.to_string());
                    }
                    Event::Client(Err(Ended::Violation(Violation::Protocol(why)))) => {
                        return End::Close(close::PROTOCOL, why.to_string());
                    }
                    Event::Client(Err(Ended::Gone)) => return End::Gone,
                };
                if let Some(wait) = wait
                    && !wait.await
                {
                    return End::Gone;
                }
            }
        }
    }
}

/// What woke a connection's task.
enum Event {
    Room(Ready),
    Client(Result<Incoming, Ended>),
}

/// Closes the socket the way the loop ended.
async fn finish(mut socket: Socket, end: End) {
    let (code, reason) = match &end {
        End::Gone => return,
        End::Close(code, reason) => (*code, reason.as_str()),
        End::ClientClosed => (1000, ""),
        End::TooBig => (close::TOO_BIG, "message too big"),
    };
    let mut frame = Vec::new();
    frame::close_frame(&mut frame, code, reason);
    if !matches!(
        tokio::time::timeout(CLOSE_HANDSHAKE, socket.send(&frame)).await,
        Ok(Ok(()))
    ) {
        return;
    }
    match end {
        End::Close(..) => {
            // Our close frame is out: read until the client answers with its own, so the
            // TCP close cannot race the client's reply (a client whose reply hits a closed
            // socket gets a reset instead of our close code and reason).
            let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
                while let Ok(m) = socket.recv().await {
                    if let Incoming::Close(_) = m {
                        break;
                    }
                }
            })
            .await;
        }
        End::TooBig => {
            // The rest of the oversized message is still unread in the kernel's buffer,
            // and closing a socket with unread data sends a reset, which can reach the
            // client before it has read our close frame (1009). Give the client time to
            // read the close first.
            tokio::time::sleep(TOO_BIG_LINGER).await;
        }
        End::ClientClosed | End::Gone => {}
    }
}

/// Most frames written at once.
const MAX_BATCH_FRAMES: usize = 64;

/// Writes what is queued (up to [`MAX_BATCH_FRAMES`] frames) in one write: under
/// fan-out load a socket's frames arrive in bursts, and one write is one syscall
/// (BENCHMARKS.md, "ceiling"). The buffer lives only while writing. `false` once the
/// socket is gone. A write the client does not read could wait forever: a kill (the
/// room's "too far behind", say) ends it.
async fn send_queued(socket: &mut Socket, outbound: &mut Outbound, kill: &Kill) -> bool {
    let frames = outbound.take(MAX_BATCH_FRAMES);
    // A frame's header is at most 10 bytes.
    let mut out = Vec::with_capacity(frames.iter().map(|f| f.len() + 10).sum());
    for f in frames {
        frame::binary(&mut out, &f);
    }
    tokio::select! {
        r = socket.send(&out) => r.is_ok(),
        _ = kill.killed() => true,
    }
}

/// Answers a ping; `false` once the socket is gone.
async fn pong(socket: &mut Socket, kill: &Kill, payload: Bytes) -> bool {
    let mut pong = Vec::with_capacity(2 + payload.len());
    frame::pong(&mut pong, &payload);
    tokio::select! {
        r = socket.send(&pong) => r.is_ok(),
        _ = kill.killed() => true,
    }
}
