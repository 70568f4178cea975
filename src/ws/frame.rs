//! WebSocket framing (RFC 6455) for `/ws/doc`, without extensions: client frames parsed
//! out of a byte buffer, server frames encoded into one. No I/O here (`ws::Socket` reads
//! and writes), so every rule is unit-tested and fuzzed on plain bytes.
//!
//! Our own instead of tungstenite's because of what an idle connection holds: tungstenite
//! keeps a read buffer, a write buffer and its codec state for as long as the socket is
//! open, while [`Reader`] holds no allocation between messages and the socket reads
//! through a buffer on the stack (benches/HISTORY.md, change 26).

use bytes::{Buf, Bytes, BytesMut};

/// A complete client message, or a control frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Binary(Bytes),
    /// A text message (its payload is not kept: `/ws/doc` speaks binary only).
    Text,
    Ping(Bytes),
    Pong,
    /// The client's close frame, with its status code if it sent one.
    Close(Option<u16>),
}

/// A frame that breaks the protocol (close 1002 with this reason), text that is not
/// UTF-8 (1007), or a message over the size limit (1009).
///
/// A frame that breaks several rules is refused for the first of them in tungstenite's
/// order, so that both readers close with the same code (the `ws_frame` fuzz target
/// compares them): an unknown opcode, then the frame's size, then masking, reserved
/// bits and the rules of control frames, then fragmentation, the message's size and
/// UTF-8.
#[derive(Debug, PartialEq, Eq)]
pub enum Violation {
    Protocol(&'static str),
    InvalidUtf8(&'static str),
    TooBig,
}

const FIN: u8 = 0x80;
const RSV: u8 = 0x70;
const MASKED: u8 = 0x80;

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// A control frame's payload limit (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

/// A parsed frame header.
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    header_len: usize,
    payload_len: usize,
}

/// Reads the header at the start of `buf` and checks the frame on its own; `None` until
/// all of the header is there. No frame may carry more than `max_payload`.
fn header(buf: &[u8], max_payload: usize) -> Result<Option<Header>, Violation> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    let opcode = b0 & 0x0F;
    let fin = b0 & FIN != 0;
    let masked = b1 & MASKED != 0;
    let control = opcode & 0x8 != 0;
    match opcode {
        CONTINUATION | TEXT | BINARY | CLOSE | PING | PONG => {}
        _ => return Err(Violation::Protocol("unknown opcode")),
    }
    let len_bytes = match b1 & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask_at = 2 + len_bytes;
    let header_len = mask_at + if masked { 4 } else { 0 };
    if buf.len() < header_len {
        return Ok(None);
    }
    let len = match len_bytes {
        0 => u64::from(b1 & 0x7F),
        2 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
        // A length with its top bit set (RFC 6455 §5.2 forbids it) is over any limit.
        _ => u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes")),
    };
    if len > max_payload as u64 {
        return Err(Violation::TooBig);
    }
    if !masked {
        return Err(Violation::Protocol("client frames must be masked"));
    }
    if b0 & RSV != 0 {
        return Err(Violation::Protocol("reserved bits set without an extension"));
    }
    if control {
        if !fin {
            return Err(Violation::Protocol("fragmented control frame"));
        }
        if len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(Violation::Protocol("control frame over 125 bytes"));
        }
    }
    let mask = buf[mask_at..header_len].try_into().expect("4 bytes");
    Ok(Some(Header {
        fin,
        opcode,
        mask,
        header_len,
        payload_len: len as usize,
    }))
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// A fragmented message so far.
struct Fragments {
    opcode: u8,
    payload: BytesMut,
    /// For text: how much of `payload` is known to be UTF-8 (the rest is the start of a
    /// character continued in the next fragment). Each fragment is checked as it comes
    /// (RFC 6455 §8.1: fail as soon as the text cannot be UTF-8), and only once.
    valid_utf8: usize,
}

impl Fragments {
    /// Appends a fragment; checks the text so far.
    fn extend(&mut self, payload: &[u8], fin: bool) -> Result<(), Violation> {
        self.payload.extend_from_slice(payload);
        if self.opcode == TEXT {
            self.valid_utf8 += utf8_prefix(&self.payload[self.valid_utf8..], fin)?;
        }
        Ok(())
    }
}

/// How much of `bytes` is UTF-8; the rest may only be an unfinished character, and only
/// when more is to come (`!last`).
fn utf8_prefix(bytes: &[u8], last: bool) -> Result<usize, Violation> {
    match std::str::from_utf8(bytes) {
        Ok(_) => Ok(bytes.len()),
        Err(e) if e.error_len().is_none() && !last => Ok(e.valid_up_to()),
        Err(_) => Err(Violation::InvalidUtf8("text is not UTF-8")),
    }
}

/// Client bytes in, messages out. Holds the bytes of a frame not yet complete and the
/// fragments of a message not yet finished; both are empty and unallocated between
/// messages, which is most of an idle connection's life.
pub struct Reader {
    /// Received and not yet parsed.
    buf: BytesMut,
    /// A fragmented message so far (boxed: rare, and the reader lives in every
    /// connection's task).
    fragments: Option<Box<Fragments>>,
    max_message: usize,
}

impl Reader {
    pub fn new(max_message: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            fragments: None,
            max_message,
        }
    }

    /// Bytes received from the client.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message or control frame in what was received, if there is one.
    pub fn next_message(&mut self) -> Result<Option<Incoming>, Violation> {
        loop {
            let Some(h) = header(&self.buf, self.max_message)? else {
                self.release();
                return Ok(None);
            };
            // What a data frame may be, known from its header.
            if h.opcode & 0x8 == 0 {
                match (h.opcode, &self.fragments) {
                    (CONTINUATION, None) => {
                        return Err(Violation::Protocol("continuation frame without a message"));
                    }
                    (CONTINUATION, Some(_)) => {}
                    (_, Some(_)) => {
                        return Err(Violation::Protocol("new message before the last one ended"));
                    }
                    (_, None) => {}
                }
                let so_far = self.fragments.as_ref().map_or(0, |f| f.payload.len());
                if h.payload_len > self.max_message - so_far {
                    return Err(Violation::TooBig);
                }
            }
            if self.buf.len() < h.header_len + h.payload_len {
                return Ok(None);
            }
            self.buf.advance(h.header_len);
            let payload = &mut self.buf[..h.payload_len];
            unmask(payload, h.mask);
            let message = match (h.opcode, &mut self.fragments) {
                (PING, _) => Some(Incoming::Ping(Bytes::copy_from_slice(payload))),
                (PONG, _) => Some(Incoming::Pong),
                (CLOSE, _) => Some(close(payload)?),
                (CONTINUATION, Some(so_far)) => {
                    so_far.extend(payload, h.fin)?;
                    if h.fin {
                        let whole = self.fragments.take().expect("fragments");
                        Some(complete(whole.opcode, whole.payload.freeze()))
                    } else {
                        None
                    }
                }
                (opcode, _) if h.fin => {
                    if opcode == TEXT {
                        utf8_prefix(payload, true)?;
                    }
                    Some(complete(opcode, Bytes::copy_from_slice(payload)))
                }
                (opcode, _) => {
                    let mut first = Fragments {
                        opcode,
                        payload: BytesMut::new(),
                        valid_utf8: 0,
                    };
                    first.extend(payload, false)?;
                    self.fragments = Some(Box::new(first));
                    None
                }
            };
            self.buf.advance(h.payload_len);
            if let Some(m) = message {
                self.release();
                return Ok(Some(m));
            }
        }
    }

    /// Frees the read buffer once everything in it is parsed: an idle connection holds
    /// no buffer at all.
    fn release(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }
}

fn complete(opcode: u8, payload: Bytes) -> Incoming {
    match opcode {
        BINARY => Incoming::Binary(payload),
        _ => Incoming::Text,
    }
}

/// Whether a client may send this close code (RFC 6455 §7.4; 1004-1006 and 1015 are
/// never sent, 1016-2999 are reserved, 0-999 unused), as tungstenite decides it.
fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999)
}

fn close(payload: &[u8]) -> Result<Incoming, Violation> {
    match payload {
        [] => Ok(Incoming::Close(None)),
        [_] => Err(Violation::Protocol("close frame with a one-byte payload")),
        [a, b, reason @ ..] => {
            if std::str::from_utf8(reason).is_err() {
                return Err(Violation::InvalidUtf8("close reason is not UTF-8"));
            }
            let code = u16::from_be_bytes([*a, *b]);
            if !close_code_allowed(code) {
                return Err(Violation::Protocol("close code that may not be sent"));
            }
            Ok(Incoming::Close(Some(code)))
        }
    }
}

/// Appends a server frame (unmasked, unfragmented) to `out`.
fn encode(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(FIN | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= u16::MAX as usize => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

pub fn binary(out: &mut Vec<u8>, payload: &[u8]) {
    encode(out, BINARY, payload);
}

pub fn pong(out: &mut Vec<u8>, payload: &[u8]) {
    encode(out, PONG, payload);
}

/// A close frame; the reason is cut (at a character) to fit a control frame.
pub fn close_frame(out: &mut Vec<u8>, code: u16, reason: &str) {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode(out, CLOSE, &payload);
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn accept_key(key: &[u8]) -> String {
    use base64::Engine;
    use sha1::{Digest, Sha1};
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked with a fixed key.
    fn client(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(MASKED | n as u8),
            n if n <= u16::MAX as usize => {
                out.push(MASKED | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(MASKED | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        let start = out.len();
        out.extend_from_slice(payload);
        unmask(&mut out[start..], mask);
        out
    }

    /// Takes every message `r` can give into `out`; false once it gave an error.
    fn drain(r: &mut Reader, out: &mut Vec<Result<Incoming, Violation>>) -> bool {
        loop {
            match r.next_message() {
                Ok(Some(m)) => out.push(Ok(m)),
                Ok(None) => return true,
                Err(e) => {
                    out.push(Err(e));
                    return false;
                }
            }
        }
    }

    /// `bytes` fed at once: the messages, or the first error.
    fn read_all(bytes: &[u8], max: usize) -> Result<Vec<Incoming>, Violation> {
        let mut r = Reader::new(max);
        r.push(bytes);
        let mut out = vec![];
        drain(&mut r, &mut out);
        out.into_iter().collect()
    }

    #[test]
    fn the_rfc_example_key() {
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn every_length_encoding_byte_by_byte() {
        for len in [0, 1, 125, 126, 65535, 65536, 200_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let frame = client(FIN | BINARY, &payload);
            let mut r = Reader::new(1 << 20);
            // Fed in pieces, as the network would.
            let mut got = None;
            for chunk in frame.chunks(4093) {
                assert!(got.is_none(), "a message before all of it arrived");
                r.push(chunk);
                got = r.next_message().unwrap();
            }
            assert_eq!(got, Some(Incoming::Binary(payload.into())), "{len} bytes");
            assert_eq!(r.buf.capacity(), 0, "the buffer is released between messages");
        }
    }

    #[test]
    fn several_frames_in_one_read_and_control_frames_between_fragments() {
        let mut bytes = client(BINARY, b"hel");
        bytes.extend(client(FIN | PING, b"are you there"));
        bytes.extend(client(CONTINUATION, b"lo "));
        bytes.extend(client(FIN | CONTINUATION, b"world"));
        bytes.extend(client(FIN | PONG, b""));
        bytes.extend(client(FIN | TEXT, "é".as_bytes()));
        bytes.extend(client(FIN | CLOSE, &[0x03, 0xe8, b'o', b'k']));
        bytes.extend(client(FIN | CLOSE, b""));
        assert_eq!(
            read_all(&bytes, 1024).unwrap(),
            vec![
                Incoming::Ping(Bytes::from_static(b"are you there")),
                Incoming::Binary(Bytes::from_static(b"hello world")),
                Incoming::Pong,
                Incoming::Text,
                Incoming::Close(Some(1000)),
                Incoming::Close(None),
            ]
        );
    }

    #[test]
    fn protocol_violations() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![FIN | BINARY, 3, 1, 2, 3], "client frames must be masked"),
            (
                client(FIN | 0x40 | BINARY, b"x"),
                "reserved bits set without an extension",
            ),
            (client(FIN | 0x3, b"x"), "unknown opcode"),
            (client(FIN | 0xB, b""), "unknown opcode"),
            (client(PING, b""), "fragmented control frame"),
            (client(FIN | PING, &[0; 126]), "control frame over 125 bytes"),
            (client(FIN | CONTINUATION, b"x"), "continuation frame without a message"),
            (client(FIN | CLOSE, &[3]), "close frame with a one-byte payload"),
            (client(FIN | CLOSE, &[3, 237]), "close code that may not be sent"),
            (client(FIN | CLOSE, &[0, 0]), "close code that may not be sent"),
            (
                [client(BINARY, b"a"), client(FIN | BINARY, b"b")].concat(),
                "new message before the last one ended",
            ),
        ];
        for (bytes, why) in cases {
            assert_eq!(read_all(&bytes, 1 << 20), Err(Violation::Protocol(why)), "{bytes:?}");
        }
        // A length with its top bit set is over any limit.
        let top_bit = [FIN | BINARY, MASKED | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(read_all(&top_bit, 1 << 20), Err(Violation::TooBig));
    }

    #[test]
    fn text_must_be_utf8_as_it_arrives() {
        let bad = Err(Violation::InvalidUtf8("text is not UTF-8"));
        assert_eq!(read_all(&client(FIN | TEXT, &[b'a', 0xff]), 64), bad);
        // A character split across fragments is fine; a broken one fails at its fragment,
        // before the message ends.
        let e = "é".as_bytes();
        let split = [client(TEXT, &e[..1]), client(FIN | CONTINUATION, &e[1..])].concat();
        assert_eq!(read_all(&split, 64).unwrap(), vec![Incoming::Text]);
        let broken = [client(TEXT, b"ok"), client(CONTINUATION, &[0xc3, b'x'])].concat();
        assert_eq!(read_all(&broken, 64), bad);
        // An unfinished character at the end of the message.
        let unfinished = [client(TEXT, b"ok"), client(FIN | CONTINUATION, &e[..1])].concat();
        assert_eq!(read_all(&unfinished, 64), bad);
        // A close reason too.
        assert_eq!(
            read_all(&client(FIN | CLOSE, &[3, 232, 0xff]), 64),
            Err(Violation::InvalidUtf8("close reason is not UTF-8"))
        );
    }

    #[test]
    fn the_first_broken_rule_decides_as_in_tungstenite() {
        // Unmasked, with reserved bits, and too long: too long.
        assert_eq!(
            read_all(&[FIN | 0x40 | BINARY, 126, 4, 0], 1000),
            Err(Violation::TooBig)
        );
        // An unknown opcode comes before the size.
        assert_eq!(
            read_all(&[FIN | 0x3, 126, 4, 0], 1000),
            Err(Violation::Protocol("unknown opcode"))
        );
        // A long ping within the limit breaks the control frame rule; over it, the size.
        assert_eq!(
            read_all(&client(FIN | PING, &[0; 200]), 1000),
            Err(Violation::Protocol("control frame over 125 bytes"))
        );
        assert_eq!(read_all(&client(FIN | PING, &[0; 2000]), 1000), Err(Violation::TooBig));
        // A new message inside a fragmented one, however long.
        let bytes = [client(BINARY, &[0; 600]), client(FIN | BINARY, &[0; 600])].concat();
        assert_eq!(
            read_all(&bytes, 1000),
            Err(Violation::Protocol("new message before the last one ended"))
        );
    }

    #[test]
    fn too_big_is_known_from_the_header() {
        // Only the header of a 2 MB frame has arrived.
        let header = &client(FIN | BINARY, &vec![0; 2 << 20])[..14];
        assert_eq!(read_all(header, 1 << 20), Err(Violation::TooBig));
        // Fragments count together.
        let mut bytes = client(BINARY, &[0; 600]);
        bytes.extend(client(FIN | CONTINUATION, &[0; 600]));
        assert_eq!(read_all(&bytes, 1000), Err(Violation::TooBig));
        assert_eq!(read_all(&bytes, 1200).unwrap().len(), 1);
    }

    /// Random messages, cut into random fragments with pings between them and the bytes
    /// fed in random pieces, come out whole; random bytes fed in pieces give what they
    /// give fed at once, and never a panic. Prints its seed (`VELLUM_SEED` replays it).
    #[test]
    fn random_frames_and_splits() {
        use rand::{Rng, SeedableRng};
        let seed = std::env::var("VELLUM_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(rand::random::<u64>);
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let feed = |r: &mut Reader, bytes: &[u8], rng: &mut rand::rngs::StdRng| {
            let mut out = vec![];
            let mut at = 0;
            while at < bytes.len() {
                let n = rng.gen_range(1..=(bytes.len() - at).min(3000));
                r.push(&bytes[at..at + n]);
                at += n;
                if !drain(r, &mut out) {
                    break;
                }
            }
            out
        };
        for _ in 0..100 {
            let mut bytes = vec![];
            let mut want = vec![];
            for _ in 0..rng.gen_range(1..6) {
                let len = rng.gen_range(0..20_000);
                let message: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
                let mut at = 0;
                let mut first = true;
                loop {
                    let n = rng.gen_range(0..=len - at);
                    let fin = at + n == len;
                    let opcode = if first { BINARY } else { CONTINUATION };
                    bytes.extend(client(if fin { FIN | opcode } else { opcode }, &message[at..at + n]));
                    if !fin && rng.gen_bool(0.2) {
                        bytes.extend(client(FIN | PING, b"p"));
                        want.push(Ok(Incoming::Ping(Bytes::from_static(b"p"))));
                    }
                    at += n;
                    first = false;
                    if fin {
                        break;
                    }
                }
                want.push(Ok(Incoming::Binary(message.into())));
            }
            let mut r = Reader::new(1 << 20);
            assert_eq!(feed(&mut r, &bytes, &mut rng), want, "seed {seed}");
            assert_eq!(r.buf.capacity(), 0, "seed {seed}");

            let noise: Vec<u8> = (0..rng.gen_range(0..400)).map(|_| rng.r#gen()).collect();
            let mut whole = Reader::new(1000);
            whole.push(&noise);
            let mut expected = vec![];
            drain(&mut whole, &mut expected);
            assert_eq!(feed(&mut Reader::new(1000), &noise, &mut rng), expected, "seed {seed}");
        }
    }

    #[test]
    fn server_frames() {
        let mut out = vec![];
        binary(&mut out, b"hi");
        assert_eq!(out, [FIN | BINARY, 2, b'h', b'i']);
        out.clear();
        binary(&mut out, &[0; 300]);
        assert_eq!(&out[..4], &[FIN | BINARY, 126, 1, 44]);
        assert_eq!(out.len(), 304);
        out.clear();
        binary(&mut out, &[0; 70_000]);
        assert_eq!(&out[..10], &[FIN | BINARY, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        out.clear();
        let long = "é".repeat(100);
        close_frame(&mut out, 1011, &long);
        assert_eq!(out[1] as usize, 2 + 122, "cut at a character within 125 bytes");
        assert_eq!(&out[2..4], &[0x03, 0xf3]);
        out.clear();
        pong(&mut out, b"x");
        assert_eq!(out, [FIN | PONG, 1, b'x']);
    }
}
