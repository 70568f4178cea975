//! `/ws/doc/{id}`: the y-websocket endpoint. Authenticates before the upgrade, then
//! moves frames between the socket and the document's room.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::auth::{Access, Principal};
use crate::collab::{Connection, Peer, close};
use crate::documents;
use crate::error::Error;
use crate::rest::bearer_token;
use crate::state::AppState;
use crate::store::{SessionRow, now};

/// How long a socket closed for an oversized message stays open after the close frame.
const TOO_BIG_LINGER: Duration = Duration::from_secs(2);
/// How long a socket this side closes waits for the client's close frame.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(2);

/// Initial size of a socket's read buffer (it grows for larger messages).
const READ_BUFFER_BYTES: usize = 2 * 1024;

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

async fn serve(app: AppState, document_id: Uuid, peer: Peer, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let user_id = peer.user_id;
    let Connection {
        input,
        mut outbound,
        kill,
    } = match app.collab.join(document_id, peer).await {
        Ok(c) => c,
        Err(e) => {
            let (code, reason) = e.close();
            let _ = sink
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })))
                .await;
            return;
        }
    };
    let session = SessionRow {
        id: Uuid::now_v7(),
        node_id: app.collab.node_id().to_string(),
        user_id,
        document_id,
        connected_at: now(),
        heartbeat_at: now(),
    };
    // Recorded beside the connection rather than before it: the client's sync step 1
    // need not wait for this commit (an fsync on SQLite) to be answered.
    let recorded = {
        let (store, row) = (app.store.clone(), session.clone());
        tokio::spawn(async move {
            if let Err(e) = store.insert_session(&row).await {
                tracing::warn!(error = ?e, "could not record the session");
            }
        })
    };

    // The writer owns the sink: frames from the room, then a close frame when killed.
    let writer_kill = kill.clone();
    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                (code, reason) = writer_kill.killed() => {
                    let frame = CloseFrame { code, reason: reason.into() };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
                frame = outbound.recv() => match frame {
                    // Everything already queued goes out with one flush (one write syscall)
                    // instead of one per frame: under fan-out load a socket's frames arrive
                    // in bursts (BENCHMARKS.md, "ceiling").
                    Some(f) => if send_batch(&mut sink, f, &mut outbound).await.is_err() { break },
                    None => break,
                },
            }
        }
    });

    let mut linger = false;
    // Whether the client's side is done (it sent a close frame, or the socket ended):
    // otherwise this side closes and waits for the client's reply (the closing handshake).
    let mut peer_done = false;
    loop {
        let msg = tokio::select! {
            _ = kill.killed() => break,
            msg = stream.next() => match msg {
                Some(m) => m,
                None => {
                    peer_done = true;
                    break;
                }
            },
        };
        match msg {
            Ok(Message::Binary(frame)) => input.receive(frame).await,
            Ok(Message::Text(_)) => {
                kill.kill(close::UNSUPPORTED, "binary frames only");
                break;
            }
            Ok(Message::Close(_)) => {
                peer_done = true;
                break;
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Err(e) => {
                let text = e.to_string();
                if text.contains("too long") || text.contains("Space limit") {
                    kill.kill(close::TOO_BIG, "message too big");
                    linger = true;
                } else {
                    peer_done = true;
                }
                break;
            }
        }
    }
    drop(input); // leave the room
    kill.kill(1000, "");
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    if !peer_done && !linger {
        // Our close frame is out: read until the client answers with its own, so the TCP
        // close cannot race the client's reply (a client whose reply hits a closed socket
        // gets a reset instead of our close code and reason).
        let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
            while let Some(Ok(m)) = stream.next().await {
                if let Message::Close(_) = m {
                    break;
                }
            }
        })
        .await;
    }
    if linger {
        // The rest of the oversized message is still unread in the kernel's buffer, and
        // closing a socket with unread data sends a reset, which can reach the client
        // before it has read our close frame (1009). With a small read buffer most of a
        // big message is always unread, so give the client time to read the close first.
        tokio::time::sleep(TOO_BIG_LINGER).await;
    }
    let _ = recorded.await; // so the delete cannot overtake the insert
    if let Err(e) = app.store.delete_session(session.id).await {
        tracing::warn!(error = ?e, "could not clear the session");
    }
}

/// Most frames written before one flush.
const MAX_BATCH_FRAMES: usize = 64;

/// Writes `first` and whatever else is already queued (up to [`MAX_BATCH_FRAMES`]), then
/// flushes once.
async fn send_batch<S>(sink: &mut S, first: Bytes, outbound: &mut mpsc::Receiver<Bytes>) -> Result<(), S::Error>
where
    S: futures::Sink<Message> + Unpin,
{
    sink.feed(Message::Binary(first)).await?;
    for _ in 1..MAX_BATCH_FRAMES {
        match outbound.try_recv() {
            Ok(f) => sink.feed(Message::Binary(f)).await?,
            Err(_) => break,
        }
    }
    sink.flush().await
}
