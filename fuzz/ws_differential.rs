//! Shared by the `ws_frame` fuzz target and `tests/ws_differential.rs`, which
//! name the tungstenite crate `crate::tungstenite`.
//!
//! The differential check: arbitrary bytes, as a client sends them after the handshake, read by
//! Vellum's WebSocket frame reader (`vellum::ws::frame::Reader`) and by tungstenite's
//! (server role, the same limits). They must agree on every message (binary payloads,
//! pings' payloads, close codes) and on whether and how the input breaks the protocol:
//! a protocol violation (1002), invalid UTF-8 (1007) or a message over the limit (1009).
//!
//! Both readers see the input followed by zeros enough to complete any frame it left
//! open (and then unmasked frames, which both refuse): Vellum refuses a bad frame at its
//! header, tungstenite once its payload has arrived, and a truncated input would
//! otherwise read as "waiting for more" on one side only.

use std::io::{Read, Write};

use crate::tungstenite::protocol::frame::coding::CloseCode;
use crate::tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
use crate::tungstenite::{Error, Message};
use vellum::ws::frame::{Incoming, Reader, Violation};

/// The message limit both readers get: small, so the limit's paths are reached.
pub const MAX_MESSAGE: usize = 1024;

/// What a reader made of the input.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Binary(Vec<u8>),
    Text,
    Ping(Vec<u8>),
    Pong,
    /// The client's close frame, and its code.
    Close(Option<u16>),
}

/// How the reading ended.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum End {
    /// After a close frame (nothing after it is read).
    Closed,
    Protocol,
    Utf8,
    TooBig,
}

fn ours(input: &[u8]) -> (Vec<Seen>, End) {
    let mut reader = Reader::new(MAX_MESSAGE);
    reader.push(input);
    let mut seen = Vec::new();
    loop {
        match reader.next_message() {
            Ok(Some(m)) => {
                let closed = matches!(m, Incoming::Close(_));
                seen.push(match m {
                    Incoming::Binary(b) => Seen::Binary(b.to_vec()),
                    Incoming::Text => Seen::Text,
                    Incoming::Ping(p) => Seen::Ping(p.to_vec()),
                    Incoming::Pong => Seen::Pong,
                    Incoming::Close(code) => Seen::Close(code),
                });
                if closed {
                    return (seen, End::Closed);
                }
            }
            // The padding always ends in frames both refuse.
            Ok(None) => unreachable!("the padded input ran out: {seen:?}"),
            Err(Violation::Protocol(_)) => return (seen, End::Protocol),
            Err(Violation::InvalidUtf8(_)) => return (seen, End::Utf8),
            Err(Violation::TooBig) => return (seen, End::TooBig),
        }
    }
}

/// The client's bytes to read; what the server writes (pongs, close replies) is dropped.
struct Stream<'a>(&'a [u8]);

impl Read for Stream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Stream<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn theirs(input: &[u8]) -> (Vec<Seen>, End) {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let mut ws = WebSocket::from_raw_socket(Stream(input), Role::Server, Some(config));
    let mut seen = Vec::new();
    loop {
        match ws.read() {
            Ok(Message::Binary(b)) => seen.push(Seen::Binary(b.to_vec())),
            Ok(Message::Text(_)) => seen.push(Seen::Text),
            Ok(Message::Ping(p)) => seen.push(Seen::Ping(p.to_vec())),
            Ok(Message::Pong(_)) => seen.push(Seen::Pong),
            // tungstenite answers a close frame whose code may not be sent with 1002
            // "Protocol violation" and hands that frame up in place of the client's.
            Ok(Message::Close(Some(f))) if f.code == CloseCode::Protocol && f.reason == "Protocol violation" => {
                return (seen, End::Protocol);
            }
            Ok(Message::Close(f)) => {
                seen.push(Seen::Close(f.map(|f| u16::from(f.code))));
                return (seen, End::Closed);
            }
            Ok(Message::Frame(_)) => unreachable!("raw frames are never read"),
            Err(Error::Protocol(_)) => return (seen, End::Protocol),
            Err(Error::Utf8(_)) => return (seen, End::Utf8),
            Err(Error::Capacity(_)) => return (seen, End::TooBig),
            Err(e) => panic!("tungstenite ended otherwise: {e:?} after {seen:?}"),
        }
    }
}

/// Panics, saying how, when the readers disagree on `data`.
pub fn check(data: &[u8]) {
    // Completes any frame left open: a header needs at most 14 bytes, a payload at most
    // MAX_MESSAGE before both refuse it; then zeros are unmasked frames.
    let mut input = data.to_vec();
    input.resize(data.len() + MAX_MESSAGE + 32, 0);
    let (ours, our_end) = ours(&input);
    let (theirs, their_end) = theirs(&input);
    // A client's close code 1002 with the reason tungstenite uses for its own: the same
    // frame either way.
    let same_end = our_end == their_end
        || (their_end == End::Protocol && our_end == End::Closed && ours.last() == Some(&Seen::Close(Some(1002))));
    let ours_cmp = if same_end && our_end != their_end {
        &ours[..ours.len() - 1]
    } else {
        &ours[..]
    };
    assert!(
        same_end && ours_cmp == theirs.as_slice(),
        "the readers disagree on {data:02x?}:\n  vellum:     {ours:?} then {our_end:?}\n  tungstenite: {theirs:?} then {their_end:?}"
    );
}
