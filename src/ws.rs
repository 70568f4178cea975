//! `/ws/doc/{id}`: the y-websocket endpoint. Authenticates before the upgrade, then
//! moves frames between the socket and the document's room.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::SinkExt;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::{Access, Principal};
use crate::collab::{Connection, Outbound, Peer, Ready, close};
use crate::documents;
use crate::error::Error;
use crate::rest::bearer_token;
use crate::state::AppState;
use crate::store::{SessionRow, now};

/// How long a socket closed for an oversized message stays open after the close frame.
const TOO_BIG_LINGER: Duration = Duration::from_secs(2);
/// How long a socket this side closes waits for the client's close frame.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(2);

/// Initial size of a socket's read buffer (it grows for larger messages); GraphQL's
/// subscription sockets start with the same.
pub(crate) const READ_BUFFER_BYTES: usize = 512;

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
    ws: WebSocketUpgrade,
) -> Response {
    match authorize(&app, &id, params.token, &headers).await {
        Ok((document_id, peer)) => {
            let cfg = app.collab.config();
            // tungstenite allocates (and zero-fills) its whole read buffer per socket up
            // front, 128 KiB by default; y-websocket frames are mostly tens of bytes, and
            // the buffer grows to fit a larger frame. 2 KiB instead of 128 KiB cuts an idle
            // connection's memory from ~136 KiB to ~9 KiB (BENCHMARKS.md, "idle").
            ws.max_message_size(cfg.max_message_bytes)
                .max_frame_size(cfg.max_message_bytes)
                .read_buffer_size(READ_BUFFER_BYTES)
                .on_upgrade(move |socket| serve(app, document_id, peer, socket))
        }
        Err(e) => e.into_response(),
    }
}

async fn authorize(
    app: &AppState,
    id: &str,
    query_token: Option<String>,
    headers: &HeaderMap,
) -> Result<(Uuid, Peer), Error> {
    let document_id = Uuid::parse_str(id).map_err(|_| Error::NotFound("document"))?;
    let token = query_token.or_else(|| bearer_token(headers, &app.config));
    let who = app.auth.authenticate(&app.store, token.as_deref()).await?;
    if matches!(who, Principal::Anonymous) {
        return Err(Error::Unauthenticated);
    }
    let visible = documents::get(&app.store, &who, document_id)
        .await
        .map_err(|e| match e {
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

/// One task per connection: it reads the client's frames into the room and writes the
/// room's frames to the client. (Two tasks, a reader and a writer, cost more memory
/// than anything else an idle connection held; BENCHMARKS.md, "idle".) The rare and
/// large steps, joining and ending, are boxed so the future that lives as long as the
/// connection stays small.
async fn serve(app: AppState, document_id: Uuid, peer: Peer, mut socket: WebSocket) {
    let user_id = peer.user_id;
    let joined = Box::pin(app.collab.join(document_id, peer)).await;
    let Connection {
        input,
        mut outbound,
        kill,
    } = match joined {
        Ok(c) => c,
        Err(e) => {
            let (code, reason) = e.close();
            Box::pin(finish(socket, End::Close(code, reason))).await;
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

    let end = loop {
        tokio::select! {
            biased;
            ready = outbound.ready() => match ready {
                Ready::Killed(code, reason) => break End::Close(code, reason),
                Ready::Closed => break End::Close(1000, String::new()),
                Ready::Frames => {
                    // A write the client does not read can wait forever: a kill (the
                    // room's "too far behind", say) ends it. Boxed, like every large
                    // step: it would otherwise be part of each idle connection's task.
                    let sent = Box::pin(async {
                        tokio::select! {
                            r = send_queued(&mut socket, &mut outbound) => r.is_ok(),
                            _ = kill.killed() => true,
                        }
                    })
                    .await;
                    if !sent {
                        break End::Gone;
                    }
                }
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Binary(frame))) => input.receive(frame).await,
                Some(Ok(Message::Text(_))) => kill.kill(close::UNSUPPORTED, "binary frames only"),
                Some(Ok(Message::Close(_))) => break End::ClientClosed,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Err(e)) => {
                    let text = e.to_string();
                    if text.contains("too long") || text.contains("Space limit") {
                        break End::TooBig;
                    }
                    // Most likely the socket is gone (and the close frame fails fast);
                    // otherwise the client broke the protocol.
                    break End::Close(close::PROTOCOL, "protocol error".into());
                }
                None => break End::Gone,
            },
        }
    };
    drop(input); // leave the room
    drop(outbound);
    app.collab.sessions().disconnected(session_id);
    Box::pin(finish(socket, end)).await;
}

/// Closes the socket the way the loop ended.
async fn finish(mut socket: WebSocket, end: End) {
    let (code, reason) = match &end {
        End::Gone => return,
        End::Close(code, reason) => (*code, reason.clone()),
        End::ClientClosed => (1000, String::new()),
        End::TooBig => (close::TOO_BIG, "message too big".to_string()),
    };
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if tokio::time::timeout(CLOSE_HANDSHAKE, socket.send(Message::Close(Some(frame))))
        .await
        .is_err()
    {
        return;
    }
    match end {
        End::Close(..) => {
            // Our close frame is out: read until the client answers with its own, so the
            // TCP close cannot race the client's reply (a client whose reply hits a closed
            // socket gets a reset instead of our close code and reason).
            let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
                while let Some(Ok(m)) = socket.recv().await {
                    if let Message::Close(_) = m {
                        break;
                    }
                }
            })
            .await;
        }
        End::TooBig => {
            // The rest of the oversized message is still unread in the kernel's buffer,
            // and closing a socket with unread data sends a reset, which can reach the
            // client before it has read our close frame (1009). With a small read buffer
            // most of a big message is always unread, so give the client time to read the
            // close first.
            tokio::time::sleep(TOO_BIG_LINGER).await;
        }
        End::ClientClosed | End::Gone => {}
    }
}

/// Most frames written before one flush.
const MAX_BATCH_FRAMES: usize = 64;

/// Writes what is queued (up to [`MAX_BATCH_FRAMES`] frames), then flushes once: under
/// fan-out load a socket's frames arrive in bursts, and one flush is one write syscall
/// (BENCHMARKS.md, "ceiling").
async fn send_queued(socket: &mut WebSocket, outbound: &mut Outbound) -> Result<(), axum::Error> {
    for _ in 0..MAX_BATCH_FRAMES {
        match outbound.try_recv() {
            Some(f) => socket.feed(Message::Binary(f)).await?,
            None => break,
        }
    }
    socket.flush().await
}
