//! `/ws/doc/{id}` over a real socket: refusals before the upgrade, and frames the
//! socket layer itself must refuse (text frames, oversized messages) with a close code;
//! and the HTTP server under it: slow and idle clients are cut off, upgraded ones not.
//! The handshake and framing are Vellum's own, so they are also driven byte by byte.

mod common;

use common::{Backend, TestApp};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

async fn serve(app: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = app.state.clone();
    tokio::spawn(vellum::app::serve(listener, state, std::future::pending()));
    format!("ws://{addr}")
}

async fn close_code(url: &str, send: Message) -> (u16, String) {
    let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("upgrade");
    // Send and read at once, as real clients do: a big message may not fit in the socket
    // buffers once the server stops reading it, and a client blocked writing it would
    // never read the close frame (the server then resets the connection).
    let (mut tx, mut rx) = ws.split();
    tokio::spawn(async move { tx.send(send).await.ok() });
    while let Some(msg) = rx.next().await {
        match msg {
            Ok(Message::Close(Some(f))) => return (u16::from(f.code), f.reason.to_string()),
            Ok(Message::Close(None)) => return (1005, String::new()),
            Ok(_) => {}
            Err(e) => panic!("socket error before a close frame: {e}"),
        }
    }
    panic!("socket ended without a close frame");
}

async fn socket_limits_and_refusals(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.collab.max_message_bytes = 64 * 1024).await;
    let base = serve(&app).await;
    let (owner, _) = app.register("owner@example.com", "Owner").await;
    let (stranger, _) = app.register("stranger@example.com", "Stranger").await;
    let doc = app.create_doc(&owner, "Sock").await;
    let id = doc["id"].as_str().unwrap();
    let url = |token: &str| format!("{base}/ws/doc/{id}?token={token}");

    // Refused before the upgrade, with the status saying why: no or bad credentials
    // (a session token or an API token), no access, no such document, no such id.
    let api = app
        .gql(
            Some(&owner),
            "mutation { createApiToken(name: \"sock\", scope: READ) { token } }",
            serde_json::json!({}),
        )
        .await["data"]["createApiToken"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let missing = format!("{base}/ws/doc/{}?token={owner}", uuid::Uuid::now_v7());
    let refusals = [
        (url(""), 401),
        (url("garbage"), 401),
        (url("vlm_not-a-token"), 401),
        (url(&stranger), 403),
        (missing, 403),
        (format!("{base}/ws/doc/not-a-uuid?token={owner}"), 404),
    ];
    for (url, status) in refusals {
        let err = tokio_tungstenite::connect_async(&url).await.expect_err("refused");
        match err {
            tokio_tungstenite::tungstenite::Error::Http(resp) => {
                assert_eq!(resp.status().as_u16(), status, "{url}")
            }
            e => panic!("expected an HTTP refusal, got {e}"),
        }
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(url(&api)).await.expect("API token");
    let first = ws.next().await.unwrap().unwrap();
    assert_eq!(&first.into_data()[..2], &[0, 0], "the server opens with sync step 1");

    let (code, reason) = close_code(&url(&owner), Message::text("hello")).await;
    assert_eq!(
        (code, reason.as_str()),
        (u16::from(CloseCode::Unsupported), "binary frames only")
    );
    let big = vec![0u8; 100 * 1024];
    let (code, reason) = close_code(&url(&owner), Message::binary(big)).await;
    assert_eq!(code, u16::from(CloseCode::Size), "{reason}");
    let (code, reason) = close_code(&url(&owner), Message::binary(vec![7u8, 1, 2])).await;
    assert_eq!(code, u16::from(CloseCode::Unsupported), "{reason}");

    // The server is still fine: a well-behaved client syncs.
    let (mut ws, _) = tokio_tungstenite::connect_async(url(&owner)).await.unwrap();
    let first = ws.next().await.unwrap().unwrap();
    assert_eq!(&first.into_data()[..2], &[0, 0], "the server opens with sync step 1");
}

/// Each connection has an `active_sessions` row while it is open (written in batches,
/// so it may trail the socket by a commit).
async fn sessions_follow_connections(backend: Backend) {
    let app = TestApp::new(backend).await;
    let base = serve(&app).await;
    let (owner, _) = app.register("owner@example.com", "Owner").await;
    let doc = app.create_doc(&owner, "Sessions").await;
    let id: uuid::Uuid = doc["id"].as_str().unwrap().parse().unwrap();
    let sessions = || async { app.state.store.sessions_of(id).await.unwrap().len() };
    let until = |want: usize| async move {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let n = sessions().await;
            if n == want {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{n} sessions, want {want}");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    let url = format!("{base}/ws/doc/{id}?token={owner}");
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("upgrade");
        ws.next().await.expect("the room's sync step 1").unwrap();
        sockets.push(ws);
    }
    until(3).await;
    let mut first = sockets.remove(0);
    first.close(None).await.unwrap();
    until(2).await;
    drop(sockets); // no close frames: the server sees the sockets end
    until(0).await;
}

/// Once a burst of connections is over, the server hands what they freed back to the
/// system (`server.trim_memory_after_ms`; BENCHMARKS.md, change 39). Other tests in this
/// binary churn too and can put the trim off, by at most 120 ticks of 500 ms.
#[tokio::test]
async fn memory_is_trimmed_after_a_burst_of_connections() {
    let app = TestApp::new(Backend::Sqlite).await;
    let base = serve(&app).await;
    let (owner, _) = app.register("owner@example.com", "Owner").await;
    let doc = app.create_doc(&owner, "Burst").await;
    let url = format!("{base}/ws/doc/{}?token={owner}", doc["id"].as_str().unwrap());
    let before = vellum::memory::TRIMMER.trims();
    let mut sockets = Vec::new();
    for _ in 0..20 {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("upgrade");
        ws.next().await.expect("the room's sync step 1").unwrap();
        sockets.push(ws);
    }
    drop(sockets);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(90);
    while vellum::memory::TRIMMER.trims() == before {
        assert!(tokio::time::Instant::now() < deadline, "no trim after the burst");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A client gets `server.request_timeout_secs` to send a request's headers, and as long
/// for its body: one that sends either slowly or sends nothing (slowloris) is cut off,
/// and so is a kept-alive connection idle that long; a WebSocket, once upgraded, is not.
async fn slow_clients_are_cut_off_but_websockets_stay(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    let app = TestApp::with_config(backend, |c| c.server.request_timeout_secs = 1).await;
    let base = serve(&app).await;
    let addr = base.trim_start_matches("ws://").to_string();
    let (owner, _) = app.register("owner@example.com", "Owner").await;
    let doc = app.create_doc(&owner, "Timeouts").await;
    let url = format!("{base}/ws/doc/{}?token={owner}", doc["id"].as_str().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("upgrade");

    let started = std::time::Instant::now();
    let silent = TcpStream::connect(&addr).await.unwrap();
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut slow_body = TcpStream::connect(&addr).await.unwrap();
    let head =
        "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    slow_body.write_all(format!("{head}{{\"em").as_bytes()).await.unwrap();
    let conns = [
        ("silent", silent),
        ("slow", slow),
        ("idle", idle),
        ("slow body", slow_body),
    ];
    for (name, mut conn) in conns {
        let mut got = Vec::new();
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read_to_end(&mut got)).await;
        // Closed: the end of the stream, or a reset when the server closes with unread input.
        assert!(read.is_ok(), "the {name} connection was still open after 10 s");
        let got = String::from_utf8_lossy(&got);
        if name == "idle" {
            assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
        }
        if name == "slow body" {
            assert!(got.starts_with("HTTP/1.1 4"), "{got}");
            assert!(got.contains("did not arrive within 1 s"), "{got}");
        }
    }
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));

    // The WebSocket, open for longer than the timeout, still syncs: its sync step 1 (an
    // empty state vector) is answered with sync step 2.
    ws.send(Message::Binary(vec![0, 0, 1, 0].into())).await.unwrap();
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("an answer to sync step 1")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Binary(b) = msg
            && b.starts_with(&[0, 1])
        {
            break;
        }
    }
}

/// The GraphQL subscription socket (`graphql-transport-ws` on GET /graphql): past
/// `graphql.max_connections` open ones a socket is refused before the upgrade (503 BUSY);
/// one that never sends `connection_init` is closed after `graphql.init_timeout_secs`
/// (4408), an initialised one stays open past that, and a message over `server.max_body_bytes`
/// closes it.
async fn subscription_sockets_are_bounded(backend: Backend) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = TestApp::with_config(backend, |c| {
        c.graphql.init_timeout_secs = 1;
        c.server.max_body_bytes = 64 * 1024;
        c.graphql.max_connections = 2;
    })
    .await;
    let base = serve(&app).await;
    let mut request = format!("{base}/graphql").into_client_request().unwrap();
    let protocol = "graphql-transport-ws".parse().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", protocol);
    let ten_s = std::time::Duration::from_secs(10);
    // Ends when the server closes (a close frame, an error or the end of the stream).
    async fn closed(ws: &mut (impl StreamExt<Item = Result<Message, impl std::fmt::Debug>> + Unpin)) {
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                return;
            }
        }
    }
    async fn next_text(ws: &mut (impl StreamExt<Item = Result<Message, impl std::fmt::Debug>> + Unpin)) -> String {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return t.to_string(),
                Some(Ok(_)) => {}
                other => panic!("the socket ended: {other:?}"),
            }
        }
    }

    let (mut silent, _) = tokio_tungstenite::connect_async(request.clone()).await.unwrap();
    let (mut working, _) = tokio_tungstenite::connect_async(request.clone()).await.unwrap();
    match tokio_tungstenite::connect_async(request.clone()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default());
            assert!(body.contains("BUSY"), "{body}");
        }
        other => panic!(
            "a third socket past the limit of 2: {:?}",
            other.map(|(_, r)| r.status())
        ),
    }
    let started = std::time::Instant::now();
    let init = r#"{"type":"connection_init","payload":{}}"#;
    working.send(Message::Text(init.into())).await.unwrap();
    assert!(next_text(&mut working).await.contains("connection_ack"));
    let silent_closed = tokio::time::timeout(ten_s, closed_with(&mut silent)).await;
    assert_eq!(
        silent_closed
            .expect("a socket that never initialised was open after 10 s")
            .0,
        4408
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    // The closed socket's slot is free again. The server releases it just after closing,
    // and no event tells the client when: retry for up to a second.
    let mut again = None;
    for _ in 0..50 {
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(request.clone()).await {
            again = Some(ws);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "the closed socket's slot was not released");
    // Past the timeout, the initialised socket still answers.
    working.send(Message::Text(r#"{"type":"ping"}"#.into())).await.unwrap();
    let pong = tokio::time::timeout(ten_s, next_text(&mut working)).await.unwrap();
    assert!(pong.contains("pong"), "{pong}");
    // A message over the limit closes it.
    let big = format!(r#"{{"type":"ping","payload":{{"x":"{}"}}}}"#, "x".repeat(100 * 1024));
    let _ = working.send(Message::Text(big.into())).await;
    let big_closed = tokio::time::timeout(ten_s, closed(&mut working)).await;
    assert!(
        big_closed.is_ok(),
        "a socket that sent a message over the limit was open after 10 s"
    );
}

/// A client frame, masked, with the first byte (FIN, opcode) given.
fn raw_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0xa1, 0x02, 0x5c, 0xe7];
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= u16::MAX as usize => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Reads one server frame: (first byte, payload). Server frames are never masked.
async fn read_raw_frame(s: &mut tokio::net::TcpStream) -> (u8, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 2];
    s.read_exact(&mut head).await.expect("a frame");
    assert_eq!(head[1] & 0x80, 0, "a masked server frame");
    let len = match head[1] & 0x7f {
        126 => s.read_u16().await.unwrap() as usize,
        127 => s.read_u64().await.unwrap() as usize,
        n => n as usize,
    };
    let mut payload = vec![0; len];
    s.read_exact(&mut payload).await.unwrap();
    (head[0], payload)
}

/// A GET with `headers` (CRLF-terminated lines); the whole response.
async fn raw_request(base: &str, path: &str, headers: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("ws://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).await.unwrap();
    response
}

/// The handshake by hand, with `then` sent in the same write; returns the socket after
/// the 101 response and its headers.
async fn raw_upgrade(base: &str, path: &str, then: &[u8]) -> (tokio::net::TcpStream, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("ws://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(then);
    s.write_all(&request).await.unwrap();
    // Byte by byte up to the blank line, so no frame bytes are taken with the headers.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(s.read_u8().await.expect("a response"));
    }
    (s, String::from_utf8(head).unwrap())
}

/// The handshake's refusals and answer, and the frames a browser never sends but the
/// protocol allows (fragments, pings, bytes sent with the handshake) or forbids.
async fn websocket_protocol_by_hand(backend: Backend) {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::new(backend).await;
    let base = serve(&app).await;
    let (owner, _) = app.register("owner@example.com", "Owner").await;
    let doc = app.create_doc(&owner, "Frames").await;
    let path = format!("/ws/doc/{}?token={owner}", doc["id"].as_str().unwrap());
    // Not a handshake: 400, another version: 426 naming ours; both with a JSON body.
    let plain = raw_request(&base, &path, "").await;
    assert!(plain.starts_with("HTTP/1.1 400"), "{plain}");
    assert!(plain.contains(r#""code":"VALIDATION""#), "{plain}");
    let old = raw_request(
        &base,
        &path,
        "Connection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    )
    .await;
    assert!(old.starts_with("HTTP/1.1 426"), "{old}");
    assert!(old.to_ascii_lowercase().contains("sec-websocket-version: 13"), "{old}");
    assert!(old.contains(r#""code":"VALIDATION""#), "{old}");

    // The RFC's example key gets the RFC's accept value; a ping sent in the same write
    // as the request is answered.
    let (mut s, head) = raw_upgrade(&base, &path, &raw_frame(0x89, b"early")).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    // (The room's sync step 1 and the pong may come in either order.)
    let mut two = [read_raw_frame(&mut s).await, read_raw_frame(&mut s).await];
    two.sort();
    assert_eq!(
        (two[0].0, &two[0].1[..2]),
        (0x82, &[0u8, 0][..]),
        "the room's sync step 1"
    );
    assert_eq!(two[1], (0x8a, b"early".to_vec()), "pong");

    // A sync step 1 in three fragments with a ping between them is one message: the
    // room answers it with sync step 2.
    let step1 = [0u8, 0, 1, 0];
    let mut bytes = raw_frame(0x02, &step1[..1]);
    bytes.extend(raw_frame(0x00, &step1[1..2]));
    bytes.extend(raw_frame(0x89, b"between"));
    bytes.extend(raw_frame(0x80, &step1[2..]));
    s.write_all(&bytes).await.unwrap();
    assert_eq!(read_raw_frame(&mut s).await, (0x8a, b"between".to_vec()));
    let (first, reply) = read_raw_frame(&mut s).await;
    assert_eq!((first, &reply[..2]), (0x82, &[0u8, 1][..]), "sync step 2");

    // An unmasked frame breaks the protocol: 1002 with the reason.
    s.write_all(&[0x82, 1, 0]).await.unwrap();
    let (first, close) = read_raw_frame(&mut s).await;
    assert_eq!(first, 0x88);
    assert_eq!(u16::from_be_bytes([close[0], close[1]]), 1002);
    assert_eq!(&close[2..], b"client frames must be masked");
    s.write_all(&raw_frame(0x88, &1000u16.to_be_bytes())).await.unwrap();

    // The client closes: the server answers 1000 and the socket ends.
    let (mut s, _) = raw_upgrade(&base, &path, &[]).await;
    read_raw_frame(&mut s).await;
    s.write_all(&raw_frame(0x88, &1001u16.to_be_bytes())).await.unwrap();
    loop {
        let (first, payload) = read_raw_frame(&mut s).await;
        if first == 0x88 {
            assert_eq!(payload, 1000u16.to_be_bytes());
            break;
        }
    }
    use tokio::io::AsyncReadExt;
    assert_eq!(s.read(&mut [0u8; 16]).await.unwrap(), 0, "closed after the close frame");
}

/// One subscription socket runs at most `graphql.max_operations_per_socket` operations at
/// once: answered queries, refused ones and stopped subscriptions free their place, and
/// a start past the limit closes the socket with 4400 and a reason.
async fn operations_per_subscription_socket_are_bounded(backend: Backend) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = TestApp::with_config(backend, |c| c.graphql.max_operations_per_socket = 2).await;
    let base = serve(&app).await;
    let (owner, _) = app.register("owner@example.com", "Owner").await;
    let doc = app.create_doc(&owner, "Ops").await;
    let id = doc["id"].as_str().unwrap();
    let mut request = format!("{base}/graphql").into_client_request().unwrap();
    let protocol = "graphql-transport-ws".parse().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", protocol);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let send = |v: serde_json::Value| Message::Text(v.to_string().into());
    // The next message from the server (text as JSON, or a close frame's code and reason).
    async fn next(
        ws: &mut (impl StreamExt<Item = Result<Message, impl std::fmt::Debug>> + Unpin),
    ) -> Result<serde_json::Value, (u16, String)> {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(Some(f)))) => return Err((u16::from(f.code), f.reason.to_string())),
                Some(Ok(_)) => {}
                other => panic!("the socket ended without a close frame: {other:?}"),
            }
        }
    }
    let ten_s = std::time::Duration::from_secs(10);
    let init = serde_json::json!({ "type": "connection_init", "payload": { "token": owner } });
    ws.send(send(init)).await.unwrap();
    assert_eq!(next(&mut ws).await.unwrap()["type"], "connection_ack");

    // Three queries one after another, and a refused one: each ends, so none is left.
    for (n, query) in ["{ __typename }", "{ nope }", "{ __typename }", "{ __typename }"]
        .iter()
        .enumerate()
    {
        let op = format!("q{n}");
        let subscribe = serde_json::json!({ "id": op, "type": "subscribe", "payload": { "query": query } });
        ws.send(send(subscribe)).await.unwrap();
        loop {
            let m = tokio::time::timeout(ten_s, next(&mut ws)).await.unwrap().unwrap();
            if m["id"] == op.as_str() && (m["type"] == "complete" || m["type"] == "error") {
                break;
            }
        }
    }
    // Two subscriptions run; stopping one makes room for another.
    let presence = "subscription($d: ID!) { presenceChanged(documentId: $d) { displayName } }";
    for op in ["s1", "s2"] {
        let subscribe = serde_json::json!({ "id": op, "type": "subscribe", "payload": { "query": presence, "variables": { "d": id } } });
        ws.send(send(subscribe)).await.unwrap();
        let m = tokio::time::timeout(ten_s, next(&mut ws)).await.unwrap().unwrap();
        assert_eq!((m["id"].as_str(), m["type"].as_str()), (Some(op), Some("next")), "{m}");
    }
    ws.send(send(serde_json::json!({ "id": "s1", "type": "complete" })))
        .await
        .unwrap();
    let subscribe = serde_json::json!({ "id": "s3", "type": "subscribe", "payload": { "query": presence, "variables": { "d": id } } });
    ws.send(send(subscribe)).await.unwrap();
    let m = loop {
        // (The server confirms s1's end with its own `complete` first.)
        let m = tokio::time::timeout(ten_s, next(&mut ws)).await.unwrap().unwrap();
        if m["id"] != "s1" {
            break m;
        }
    };
    assert_eq!(
        (m["id"].as_str(), m["type"].as_str()),
        (Some("s3"), Some("next")),
        "{m}"
    );
    // A third at once closes the socket, saying why.
    let subscribe = serde_json::json!({ "id": "s4", "type": "subscribe", "payload": { "query": presence, "variables": { "d": id } } });
    ws.send(send(subscribe)).await.unwrap();
    let closed = loop {
        match tokio::time::timeout(ten_s, next(&mut ws)).await.unwrap() {
            Ok(m) => assert_ne!(m["id"], "s4", "the operation past the limit ran: {m}"),
            Err(close) => break close,
        }
    };
    assert_eq!(closed.0, 4400, "{closed:?}");
    assert!(closed.1.contains("at most 2"), "{closed:?}");
}

/// A case of [`rfc6455_case_groups`]: its name, the bytes, whether they go a byte per
/// write, the pongs expected in order, whether a sync step 2 answers (`None`: either),
/// and how the socket ends.
type Case = (String, Vec<u8>, bool, Vec<Vec<u8>>, Option<bool>, Then);

/// What a case of [`rfc6455_case_groups`] must end in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Then {
    /// The socket stays open (a ping sent after the case is answered).
    Open,
    /// The server closes with this code.
    Closed(u16),
}

/// A y-websocket awareness message whose frame payload is exactly `len` bytes (a valid
/// message of any size, which the room takes and relays).
fn awareness_of_len(len: usize) -> Vec<u8> {
    fn var(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let build = |client: usize, json_len: usize| {
        let json = format!(r#"{{"x":"{}"}}"#, "a".repeat(json_len));
        let mut entries = vec![1u8]; // one entry
        var(client, &mut entries);
        entries.push(1); // clock 1
        var(json.len(), &mut entries);
        entries.extend_from_slice(json.as_bytes());
        let mut m = vec![1u8]; // messageAwareness
        var(entries.len(), &mut m);
        m.extend(entries);
        m
    };
    // A length prefix grows by a byte at some lengths and skips one; a longer client id
    // (one, two or three bytes) steps over it.
    for client in [7, 300, 70_000] {
        let mut json_len = len.saturating_sub(20);
        while build(client, json_len).len() < len {
            json_len += 1;
        }
        let m = build(client, json_len);
        if m.len() == len {
            return m;
        }
    }
    panic!("no awareness message of exactly {len} bytes");
}

/// RFC 6455 against a real socket, case group by case group as the Autobahn|Testsuite
/// arranges them (its numbers in the names; the suite itself needs Python 2): framing,
/// pings, reserved bits, opcodes, fragmentation, UTF-8, close handshakes and limits. Each
/// case opens a socket, sends its bytes (some a byte per write), and checks the pongs,
/// the answer to a sync step 1 when it carries one, and how the socket ends: open, or
/// closed by the server with the code RFC 6455 asks for (1002 protocol error, 1007 not
/// UTF-8, 1009 too big; 1003 for text, which `/ws/doc` does not speak; 1000 in answer to a
/// client's close).
async fn rfc6455_case_groups(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::with_config(backend, |c| c.collab.max_message_bytes = 128 * 1024).await;
    let base = serve(&app).await;
    let (owner, _) = app.register("owner@example.com", "Owner").await;
    let doc = app.create_doc(&owner, "RFC 6455").await;
    let path = format!("/ws/doc/{}?token={owner}", doc["id"].as_str().unwrap());
    const FIN: u8 = 0x80;
    let f = raw_frame;
    let step1 = [0u8, 0, 1, 0];
    let bin = |p: &[u8]| f(FIN | 0x2, p);
    let text = |p: &[u8]| f(FIN | 0x1, p);
    let ping = |p: &[u8]| f(FIN | 0x9, p);
    let close = |p: &[u8]| f(FIN | 0x8, p);
    let code = |c: u16, reason: &[u8]| [&c.to_be_bytes()[..], reason].concat();
    let bytes_255: Vec<u8> = (0..=255u8).collect();
    // (name, bytes, a byte per write, pongs expected in order, a sync step 2 expected (`None`:
    // either; a message the server takes just before it fails the connection may go
    // unanswered, as Autobahn allows), then)
    let mut cases: Vec<Case> = vec![
        (
            "1.1.1 text message".into(),
            text(b"hello"),
            false,
            vec![],
            Some(false),
            Then::Closed(1003),
        ),
        (
            "1.2.1 binary message".into(),
            bin(&step1),
            false,
            vec![],
            Some(true),
            Then::Open,
        ),
        (
            "2.1 ping, no payload".into(),
            ping(b""),
            false,
            vec![vec![]],
            Some(false),
            Then::Open,
        ),
        (
            "2.2 ping, text payload".into(),
            ping(b"Hello, world!"),
            false,
            vec![b"Hello, world!".to_vec()],
            Some(false),
            Then::Open,
        ),
        (
            "2.3 ping, binary payload".into(),
            ping(&bytes_255[..125]),
            false,
            vec![bytes_255[..125].to_vec()],
            Some(false),
            Then::Open,
        ),
        (
            "2.4 ping, 125 bytes".into(),
            ping(&[0xfe; 125]),
            false,
            vec![vec![0xfe; 125]],
            Some(false),
            Then::Open,
        ),
        (
            "2.5 ping, 126 bytes".into(),
            ping(&[0xfe; 126]),
            false,
            vec![],
            Some(false),
            Then::Closed(1002),
        ),
        (
            "2.6 ping, 125 bytes, a byte per write".into(),
            ping(&[0xfe; 125]),
            true,
            vec![vec![0xfe; 125]],
            Some(false),
            Then::Open,
        ),
        (
            "2.7 unsolicited pong".into(),
            f(FIN | 0xA, b""),
            false,
            vec![],
            Some(false),
            Then::Open,
        ),
        (
            "2.8 unsolicited pong with payload".into(),
            f(FIN | 0xA, b"unsolicited"),
            false,
            vec![],
            Some(false),
            Then::Open,
        ),
        (
            "2.10 ten pings".into(),
            (0..10u8).flat_map(|i| ping(&[i])).collect(),
            false,
            (0..10u8).map(|i| vec![i]).collect(),
            Some(false),
            Then::Open,
        ),
        (
            "3.2 a message, then reserved bits: the message is taken, then 1002".into(),
            [bin(&step1), f(FIN | 0x20 | 0x2, &step1), ping(b"after")].concat(),
            false,
            vec![],
            None,
            Then::Closed(1002),
        ),
        (
            "4.1.x reserved opcodes 3-7 after a ping".into(),
            [ping(b"before"), f(FIN | 0x3, b"")].concat(),
            false,
            vec![b"before".to_vec()],
            Some(false),
            Then::Closed(1002),
        ),
        (
            "5.1 fragmented ping".into(),
            [f(0x9, b"frag"), f(FIN, b"ment")].concat(),
            false,
            vec![],
            Some(false),
            Then::Closed(1002),
        ),
        (
            "5.2 fragmented pong".into(),
            [f(0xA, b"frag"), f(FIN, b"ment")].concat(),
            false,
            vec![],
            Some(false),
            Then::Closed(1002),
        ),
        (
            "5.3 binary in two fragments".into(),
            [f(0x2, &step1[..2]), f(FIN, &step1[2..])].concat(),
            false,
            vec![],
            Some(true),
            Then::Open,
        ),
        (
            "5.6 fragments with a ping between".into(),
            [f(0x2, &step1[..2]), ping(b"between"), f(FIN, &step1[2..])].concat(),
            false,
            vec![b"between".to_vec()],
            Some(true),
            Then::Open,
        ),
        (
            "5.8 fragments with a ping between, a byte per write".into(),
            [
                f(0x2, &step1[..1]),
                ping(b"between"),
                f(0x0, &step1[1..3]),
                f(FIN, &step1[3..]),
            ]
            .concat(),
            true,
            vec![b"between".to_vec()],
            Some(true),
            Then::Open,
        ),
        (
            "5.9 continuation without a message".into(),
            [f(FIN, &step1), bin(&step1)].concat(),
            false,
            vec![],
            Some(false),
            Then::Closed(1002),
        ),
        (
            "5.10 continuation without a message, unfinished".into(),
            f(0x0, &step1),
            false,
            vec![],
            Some(false),
            Then::Closed(1002),
        ),
        (
            "5.15 a new message before the last one ended".into(),
            [f(0x2, &step1[..2]), f(0x2, &step1[2..])].concat(),
            false,
            vec![],
            Some(false),
            Then::Closed(1002),
        ),
        (
            "5.17 a fragmented text message".into(),
            [f(0x1, b"frag"), f(FIN, b"ment")].concat(),
            false,
            vec![],
            Some(false),
            Then::Closed(1003),
        ),
        (
            "6.1.1 empty text".into(),
            text(b""),
            false,
            vec![],
            Some(false),
            Then::Closed(1003),
        ),
        (
            "6.2.3 text split inside a character".into(),
            [f(0x1, &"κό".as_bytes()[..3]), f(FIN, &"κό".as_bytes()[3..])].concat(),
            false,
            vec![],
            Some(false),
            Then::Closed(1003),
        ),
        (
            "6.3.1 text that is not UTF-8".into(),
            text(&[
                0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65, 0x64, 0x69,
                0x74, 0x65, 0x64,
            ]),
            false,
            vec![],
            Some(false),
            Then::Closed(1007),
        ),
        (
            "6.4.1 fail fast: the message is broken before it ends".into(),
            [f(0x1, "κόσμε".as_bytes()), f(0x0, &[0xf4, 0x90, 0x80, 0x80])].concat(),
            false,
            vec![],
            Some(false),
            Then::Closed(1007),
        ),
        (
            "6.x text ending inside a character".into(),
            [f(0x1, b"ok"), f(FIN, &[0xce])].concat(),
            false,
            vec![],
            Some(false),
            Then::Closed(1007),
        ),
        (
            "7.1.1 close, no payload".into(),
            close(b""),
            false,
            vec![],
            Some(false),
            Then::Closed(1000),
        ),
        (
            "7.1.2 close, then a ping: not answered".into(),
            [close(b""), ping(b"late")].concat(),
            false,
            vec![],
            Some(false),
            Then::Closed(1000),
        ),
        (
            "7.3.1 close with a one-byte payload".into(),
            close(&[3]),
            false,
            vec![],
            Some(false),
            Then::Closed(1002),
        ),
        (
            "7.3.3 close 1000 with a reason".into(),
            close(&code(1000, b"Hello World!")),
            false,
            vec![],
            Some(false),
            Then::Closed(1000),
        ),
        (
            "7.3.6 close with a 123-byte reason".into(),
            close(&code(1000, &[b'*'; 123])),
            false,
            vec![],
            Some(false),
            Then::Closed(1000),
        ),
        (
            "7.5.1 close reason that is not UTF-8".into(),
            close(&code(
                1000,
                &[
                    0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65, 0x64,
                    0x69, 0x74, 0x65, 0x64,
                ],
            )),
            false,
            vec![],
            Some(false),
            Then::Closed(1007),
        ),
        (
            "9.1 a message over the limit".into(),
            bin(&vec![0; 128 * 1024 + 1]),
            false,
            vec![],
            Some(false),
            Then::Closed(1009),
        ),
        (
            "9.2 fragments over the limit together".into(),
            [f(0x2, &vec![0; 64 * 1024]), f(0x0, &vec![0; 64 * 1024]), f(FIN, &[0])].concat(),
            false,
            vec![],
            Some(false),
            Then::Closed(1009),
        ),
    ];
    for opcode in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        cases.push((
            format!("4.x reserved opcode {opcode:#x}"),
            f(FIN | opcode, b""),
            false,
            vec![],
            Some(false),
            Then::Closed(1002),
        ));
    }
    for (rsv, what) in [(0x40u8, "binary"), (0x20, "ping"), (0x10, "close"), (0x70, "binary")] {
        let op = match what {
            "ping" => 0x9,
            "close" => 0x8,
            _ => 0x2,
        };
        cases.push((
            format!("3.x reserved bits {rsv:#x} on {what}"),
            f(FIN | rsv | op, b""),
            false,
            vec![],
            Some(false),
            Then::Closed(1002),
        ));
    }
    for c in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        cases.push((
            format!("7.7.x close code {c}"),
            close(&code(c, b"")),
            false,
            vec![],
            Some(false),
            Then::Closed(1000),
        ));
    }
    for c in [
        0u16, 999, 1004, 1005, 1006, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        cases.push((
            format!("7.9.x close code {c} may not be sent"),
            close(&code(c, b"")),
            false,
            vec![],
            Some(false),
            Then::Closed(1002),
        ));
    }
    for len in [125usize, 126, 127, 128, 65535, 65536, 128 * 1024] {
        cases.push((
            format!("1.2.x binary message of {len} bytes"),
            bin(&awareness_of_len(len)),
            false,
            vec![],
            Some(false),
            Then::Open,
        ));
    }

    let ten_s = std::time::Duration::from_secs(10);
    for (name, bytes, bytewise, pongs, step2, then) in cases {
        let (mut s, head) = raw_upgrade(&base, &path, &[]).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{name}: {head}");
        if bytewise {
            for b in &bytes {
                s.write_all(&[*b]).await.unwrap();
            }
        } else {
            s.write_all(&bytes).await.unwrap();
        }
        if then == Then::Open {
            s.write_all(&ping(b"end")).await.unwrap();
        }
        let (mut got_pongs, mut got_step2, mut got_end, mut ended) = (Vec::new(), false, false, None);
        let outcome = tokio::time::timeout(ten_s, async {
            loop {
                let (first, payload) = read_raw_frame(&mut s).await;
                match first {
                    0x8A if then == Then::Open && payload == b"end" => got_end = true,
                    0x8A => got_pongs.push(payload),
                    0x82 if payload.starts_with(&[0, 1]) => got_step2 = true,
                    0x82 => {} // the room's own messages
                    0x88 => {
                        ended = Some(u16::from_be_bytes([payload[0], payload[1]]));
                        return;
                    }
                    other => panic!("{name}: a server frame {other:#x}"),
                }
                // The room's answer and the pongs travel apart: wait for both.
                if got_end && step2.is_none_or(|want| got_step2 == want) {
                    return;
                }
            }
        })
        .await;
        assert!(
            outcome.is_ok(),
            "{name}: no end within 10 s (pongs {got_pongs:?}, step 2 {got_step2})"
        );
        assert_eq!(got_pongs, pongs, "{name}: pongs");
        if let Some(want) = step2 {
            assert_eq!(got_step2, want, "{name}: the answer to sync step 1");
        }
        match then {
            Then::Open => assert_eq!(ended, None, "{name}: closed"),
            Then::Closed(c) => {
                assert_eq!(ended, Some(c), "{name}: the close code");
                // The server's close is the end: answer it, and the socket is closed.
                let _ = s.write_all(&close(&code(1000, b""))).await;
                let mut rest = Vec::new();
                let read = tokio::time::timeout(ten_s, s.read_to_end(&mut rest)).await;
                assert!(read.is_ok(), "{name}: the socket stayed open after the close");
            }
        }
    }
}

both_backends!(
    socket_limits_and_refusals,
    websocket_protocol_by_hand,
    sessions_follow_connections,
    slow_clients_are_cut_off_but_websockets_stay,
    subscription_sockets_are_bounded,
    operations_per_subscription_socket_are_bounded,
    access_taken_away_while_connected,
    sessions_end_their_sockets,
    rfc6455_case_groups,
    the_node_connection_cap_answers_before_the_upgrade
);

/// The status line of a request with `headers` (CRLF-terminated lines) and `body`.
async fn status_of(base: &str, method: &str, path: &str, headers: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("ws://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // A 101 keeps the socket open: the status line is all this needs.
    while !response.ends_with(b"\r\n") {
        match s.read_u8().await {
            Ok(b) => response.push(b),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&response).trim().to_string()
}

/// A page of another site cannot use the session cookie: the document socket, GraphQL
/// over HTTP and over WebSocket, and REST refuse a request whose cookie came with a
/// foreign `Origin` (403, before the upgrade or any resolver). The server's own origin
/// and those in `server.allowed_origins` may; a token in the header or the query string
/// is what frontends elsewhere use, and works from any origin.
#[tokio::test]
async fn cross_site_requests_cannot_use_the_session_cookie() {
    let app = TestApp::with_config(Backend::Sqlite, |c| {
        c.server.allowed_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let base = serve(&app).await;
    let own = format!("http://{}", base.trim_start_matches("ws://"));
    let (token, _) = app.register("owner@example.com", "Owner").await;
    let doc = app.create_doc(&token, "Cookies").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let cookie = format!("Cookie: vellum_session={token}\r\n");
    let from = |origin: &str| format!("Origin: {origin}\r\n");
    let gql = r#"{"query":"{ me { email } }"}"#;
    let json = "Content-Type: application/json\r\n";
    let doc_path = format!("/ws/doc/{doc}");
    let cases: Vec<(&str, String, String, &str, &str)> = vec![
        // (what, path, headers, body, expected status)
        (
            "document socket, foreign origin",
            doc_path.clone(),
            format!("{upgrade}{cookie}{}", from("https://evil.example")),
            "",
            "403",
        ),
        (
            "document socket, null origin",
            doc_path.clone(),
            format!("{upgrade}{cookie}{}", from("null")),
            "",
            "403",
        ),
        (
            "document socket, own origin",
            doc_path.clone(),
            format!("{upgrade}{cookie}{}", from(&own)),
            "",
            "101",
        ),
        (
            "document socket, allowed origin",
            doc_path.clone(),
            format!("{upgrade}{cookie}{}", from("https://app.example.com")),
            "",
            "101",
        ),
        (
            "document socket, no origin (not a browser)",
            doc_path.clone(),
            format!("{upgrade}{cookie}"),
            "",
            "101",
        ),
        (
            "document socket, token in the query",
            format!("{doc_path}?token={token}"),
            format!("{upgrade}{}", from("https://evil.example")),
            "",
            "101",
        ),
        (
            "subscription socket, foreign origin",
            "/graphql".into(),
            format!(
                "{upgrade}Sec-WebSocket-Protocol: graphql-transport-ws\r\n{cookie}{}",
                from("https://evil.example")
            ),
            "",
            "403",
        ),
        (
            "subscription socket, own origin",
            "/graphql".into(),
            format!(
                "{upgrade}Sec-WebSocket-Protocol: graphql-transport-ws\r\n{cookie}{}",
                from(&own)
            ),
            "",
            "101",
        ),
        (
            "GraphQL, foreign origin",
            "/graphql".into(),
            format!("{json}{cookie}{}", from("https://evil.example")),
            gql,
            "403",
        ),
        (
            "GraphQL, cross-site fetch without origin",
            "/graphql".into(),
            format!("{json}{cookie}Sec-Fetch-Site: cross-site\r\n"),
            gql,
            "403",
        ),
        (
            "GraphQL, own origin",
            "/graphql".into(),
            format!("{json}{cookie}{}", from(&own)),
            gql,
            "200",
        ),
        (
            "GraphQL, bearer token from anywhere",
            "/graphql".into(),
            format!(
                "{json}Authorization: Bearer {token}\r\n{cookie}{}",
                from("https://evil.example")
            ),
            gql,
            "200",
        ),
        (
            "REST, foreign origin",
            "/api/auth/me".into(),
            format!("{cookie}{}", from("https://evil.example")),
            "",
            "403",
        ),
        (
            "REST, own origin",
            "/api/auth/me".into(),
            format!("{cookie}{}", from(&own)),
            "",
            "200",
        ),
    ];
    for (what, path, headers, body, expected) in cases {
        let method = if body.is_empty() { "GET" } else { "POST" };
        let status = status_of(&base, method, &path, &headers, body).await;
        assert!(
            status.starts_with(&format!("HTTP/1.1 {expected}")),
            "{what}: expected {expected}, got {status}"
        );
    }
}

/// Past `collab.max_connections` document sockets on the node, an upgrade is refused with
/// 503 BUSY and Retry-After before it happens; a closed socket makes room again.
async fn the_node_connection_cap_answers_before_the_upgrade(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.collab.max_connections = 2).await;
    let base = serve(&app).await;
    let (owner, _) = app.register("owner@example.com", "Owner").await;
    let doc = app.create_doc(&owner, "Capped").await;
    let url = format!("{base}/ws/doc/{}?token={owner}", doc["id"].as_str().unwrap());
    let mut open = Vec::new();
    for _ in 0..2 {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("upgrade");
        ws.next().await.unwrap().unwrap();
        open.push(ws);
    }
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 503);
            assert_eq!(r.headers()["retry-after"], "1");
            let body = String::from_utf8_lossy(r.body().as_deref().unwrap_or_default()).to_string();
            assert!(
                body.contains("BUSY") && body.contains("collab.max_connections"),
                "{body}"
            );
        }
        other => panic!("a third socket past the cap of 2: {:?}", other.map(|(_, r)| r.status())),
    }
    // One closes: the next is let in once the server has seen it go.
    let mut first = open.remove(0);
    first.close(None).await.unwrap();
    while first.next().await.is_some() {}
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match tokio_tungstenite::connect_async(&url).await {
            Ok(_) => break,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "still refused: {e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A graphql-transport-ws socket, initialised with `token` (none: the init is not sent).
async fn gql_socket(
    base: &str,
    token: Option<&str>,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("{base}/graphql").into_client_request().unwrap();
    let protocol = "graphql-transport-ws".parse().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", protocol);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    if let Some(token) = token {
        let init = serde_json::json!({ "type": "connection_init", "payload": { "token": token } });
        ws.send(Message::Text(init.to_string().into())).await.unwrap();
    }
    ws
}

/// The next message on a socket: text as JSON (binary as `{"binary": [bytes]}`), or the
/// close frame's code and reason.
async fn next_message(
    ws: &mut (impl StreamExt<Item = Result<Message, impl std::fmt::Debug>> + Unpin),
) -> Result<serde_json::Value, (u16, String)> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Binary(b))) => return Ok(serde_json::json!({ "binary": b.to_vec() })),
            Some(Ok(Message::Close(Some(f)))) => return Err((u16::from(f.code), f.reason.to_string())),
            Some(Ok(Message::Close(None))) => return Err((1005, String::new())),
            Some(Ok(_)) => {}
            other => panic!("the socket ended without a close frame: {other:?}"),
        }
    }
}

/// Waits for the close frame, skipping other messages.
async fn closed_with(ws: &mut (impl StreamExt<Item = Result<Message, impl std::fmt::Debug>> + Unpin)) -> (u16, String) {
    loop {
        if let Err(close) = next_message(ws).await {
            return close;
        }
    }
}

fn subscribe(id: &str, query: &str, doc: &str) -> Message {
    let m =
        serde_json::json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": { "d": doc } } });
    Message::Text(m.to_string().into())
}

/// Access taken away while connected: a lowered share makes the document socket
/// read-only (its edits refused and not stored); a removed share closes it with 4403
/// and ends the user's subscriptions; a revoked API token closes its sockets. Each
/// within 5 s (the check runs every `auth.access_check_ms`, here 200 ms).
async fn access_taken_away_while_connected(backend: Backend) {
    let app = TestApp::with_config(backend, |c| c.auth.access_check_ms = 200).await;
    let base = serve(&app).await;
    let (owner, _) = app.register("owner@example.com", "Owner").await;
    let (alice, alice_id) = app.register("alice@example.com", "Alice").await;
    let doc = app.create_doc(&owner, "Shared").await;
    let id = doc["id"].as_str().unwrap().to_string();
    let share = |role: &'static str| {
        let (app, owner, id) = (&app, owner.clone(), id.clone());
        async move {
            let v = app
                .gql(
                    Some(&owner),
                    "mutation($d: ID!, $r: AccessGrant!) { grantAccess(documentId: $d, userEmail: \"alice@example.com\", role: $r) }",
                    serde_json::json!({ "d": id, "r": role }),
                )
                .await;
            assert_eq!(v["data"]["grantAccess"], true, "{v}");
        }
    };
    share("EDITOR").await;
    let five_s = std::time::Duration::from_secs(5);
    let ten_s = std::time::Duration::from_secs(10);

    // The owner watches presence; Alice has the document open and watches it change.
    let presence = "subscription($d: ID!) { presenceChanged(documentId: $d) { userId readOnly } }";
    let mut watcher = gql_socket(&base, Some(&owner)).await;
    assert_eq!(next_message(&mut watcher).await.unwrap()["type"], "connection_ack");
    watcher.send(subscribe("p", presence, &id)).await.unwrap();
    let alice_in = |m: &serde_json::Value| -> Option<bool> {
        m["payload"]["data"]["presenceChanged"]
            .as_array()?
            .iter()
            .find(|p| p["userId"] == alice_id.as_str())
            .map(|p| p["readOnly"].as_bool().unwrap())
    };
    let url = format!("{base}/ws/doc/{id}?token={alice}");
    let (mut sock, _) = tokio_tungstenite::connect_async(&url).await.expect("upgrade");
    sock.next().await.unwrap().unwrap(); // sync step 1
    loop {
        let m = tokio::time::timeout(ten_s, next_message(&mut watcher))
            .await
            .unwrap()
            .unwrap();
        if alice_in(&m) == Some(false) {
            break;
        }
    }
    let mut alice_subs = gql_socket(&base, Some(&alice)).await;
    assert_eq!(next_message(&mut alice_subs).await.unwrap()["type"], "connection_ack");
    let changed = "subscription($d: ID!) { documentChanged(id: $d) { kind } }";
    alice_subs.send(subscribe("c", changed, &id)).await.unwrap();
    alice_subs.send(subscribe("p", presence, &id)).await.unwrap();
    assert_eq!(next_message(&mut alice_subs).await.unwrap()["id"], "p");

    // Lowered to viewer: the socket stays, read-only, and says so when she types.
    share("VIEWER").await;
    tokio::time::timeout(five_s, async {
        loop {
            let m = next_message(&mut watcher).await.unwrap();
            if alice_in(&m) == Some(true) {
                break;
            }
        }
    })
    .await
    .expect("the socket was not read-only within 5 s");
    let edit = {
        use yrs::updates::encoder::Encode;
        use yrs::{Text, Transact};
        let d = yrs::Doc::new();
        let t = d.get_or_insert_text("default");
        let mut txn = d.transact_mut();
        t.insert(&mut txn, 0, "not allowed");
        let update = txn.encode_update_v1();
        yrs::sync::Message::Sync(yrs::sync::SyncMessage::Update(update)).encode_v1()
    };
    sock.send(Message::binary(edit)).await.unwrap();
    let denied = tokio::time::timeout(ten_s, async {
        loop {
            let m = next_message(&mut sock).await.expect("still open");
            // y-protocols' auth message: [2, 0 = permission denied, reason].
            if let Some(b) = m["binary"].as_array()
                && b.first() == Some(&serde_json::json!(2))
            {
                return m;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(denied["binary"][1], 0, "{denied}");
    let (stored, _) = app.state.collab.durable_body(id.parse().unwrap()).await.unwrap();
    assert!(!stored.text().contains("not allowed"), "{}", stored.text());

    // Removed: the socket closes with 4403, her subscriptions end, and she cannot reconnect.
    share("NONE").await;
    let close = tokio::time::timeout(five_s, closed_with(&mut sock))
        .await
        .expect("the socket was open 5 s after access was taken away");
    assert_eq!(close.0, 4403, "{close:?}");
    let mut completed = std::collections::BTreeSet::new();
    tokio::time::timeout(five_s, async {
        while completed.len() < 2 {
            let m = next_message(&mut alice_subs).await.unwrap();
            if m["type"] == "complete" {
                completed.insert(m["id"].as_str().unwrap().to_string());
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("subscriptions still running after 5 s: ended {completed:?}"));
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("reconnected: {:?}", other.map(|(_, r)| r.status())),
    }

    // A revoked API token: its socket on her own document closes.
    let own = app.create_doc(&alice, "Hers").await;
    let v = app
        .gql(
            Some(&alice),
            "mutation { createApiToken(name: \"editor\", scope: WRITE) { token apiToken { id } } }",
            serde_json::json!({}),
        )
        .await;
    let token = v["data"]["createApiToken"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    let token_id = v["data"]["createApiToken"]["apiToken"]["id"].as_str().unwrap();
    let url = format!("{base}/ws/doc/{}?token={token}", own["id"].as_str().unwrap());
    let (mut sock, _) = tokio_tungstenite::connect_async(&url).await.expect("upgrade");
    sock.next().await.unwrap().unwrap();
    let v = app
        .gql(
            Some(&alice),
            "mutation($id: ID!) { revokeApiToken(id: $id) }",
            serde_json::json!({ "id": token_id }),
        )
        .await;
    assert_eq!(v["data"]["revokeApiToken"], true, "{v}");
    let close = tokio::time::timeout(five_s, closed_with(&mut sock))
        .await
        .expect("the token's socket was open 5 s after it was revoked");
    assert_eq!(close.0, 4403, "{close:?}");
}

/// A session token that expires while its sockets are open closes them: the document
/// socket with 4401, the subscription socket with graphql-transport-ws's 4401. A
/// subscription socket that never initialises is closed with 4408, and one whose token
/// is not valid with 4403.
async fn sessions_end_their_sockets(backend: Backend) {
    let app = TestApp::with_config(backend, |c| {
        c.auth.access_check_ms = 100;
        c.auth.token_ttl_secs = 1;
        c.graphql.init_timeout_secs = 1;
    })
    .await;
    let base = serve(&app).await;
    let (owner, _) = app.register("owner@example.com", "Owner").await;
    let doc = app.create_doc(&owner, "Brief").await;
    let id = doc["id"].as_str().unwrap();
    let (mut sock, _) = tokio_tungstenite::connect_async(format!("{base}/ws/doc/{id}?token={owner}"))
        .await
        .expect("upgrade");
    let mut subs = gql_socket(&base, Some(&owner)).await;
    assert_eq!(next_message(&mut subs).await.unwrap()["type"], "connection_ack");
    // The token verifies until `exp` plus 5 s of leeway: 6 s from now at most.
    let twenty_s = std::time::Duration::from_secs(20);
    let close = tokio::time::timeout(twenty_s, closed_with(&mut sock)).await.unwrap();
    assert_eq!(close.0, 4401, "{close:?}");
    let close = tokio::time::timeout(twenty_s, closed_with(&mut subs)).await.unwrap();
    assert_eq!(close, (4401, "Unauthorized: the session expired".into()));

    let mut silent = gql_socket(&base, None).await;
    let close = tokio::time::timeout(twenty_s, closed_with(&mut silent)).await.unwrap();
    assert_eq!(close, (4408, "Connection initialisation timeout".into()));
    let mut bad = gql_socket(&base, Some("not-a-token")).await;
    let close = tokio::time::timeout(twenty_s, closed_with(&mut bad)).await.unwrap();
    assert_eq!(close.0, 4403, "{close:?}");
}
