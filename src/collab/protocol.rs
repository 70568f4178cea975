//! The y-websocket wire format: one message per WebSocket frame.
//! Decoding and encoding only; no sockets and no documents here.

use bytes::Bytes;
use yrs::StateVector;
use yrs::encoding::read::Cursor;
use yrs::sync::{Message, MessageReader, SyncMessage};
use yrs::updates::decoder::DecoderV1;
use yrs::updates::encoder::Encode;

/// WebSocket close codes Vellum uses, with their meaning for clients.
pub mod close {
    /// Server shutting down: reconnect elsewhere or later.
    pub const GOING_AWAY: u16 = 1001;
    /// This node is restarting or leaving the cluster (SIGTERM): reconnect now, and the
    /// load balancer sends you to another node. Everything acknowledged is stored.
    pub const SERVICE_RESTART: u16 = 1012;
    /// A frame that breaks the WebSocket protocol (RFC 6455).
    pub const PROTOCOL: u16 = 1002;
    /// A message type this server does not speak.
    pub const UNSUPPORTED: u16 = 1003;
    /// A message that does not decode.
    pub const INVALID: u16 = 1007;
    /// A message refused by policy (pending-struct cap, read-only violations).
    pub const POLICY: u16 = 1008;
    /// A message or document over its size limit.
    pub const TOO_BIG: u16 = 1009;
    /// Something failed on the server; reconnecting reloads from the database.
    pub const INTERNAL: u16 = 1011;
    /// Too many connections, or the client fell too far behind: try again later.
    pub const TRY_AGAIN: u16 = 1013;
    /// The session token expired while connected: sign in again.
    pub const SESSION_EXPIRED: u16 = 4401;
    /// Access to the document was taken away while connected (a share removed, the
    /// document deleted, the API token revoked): reconnecting with the same
    /// credentials is refused.
    pub const ACCESS_REVOKED: u16 = 4403;
}

pub type AwarenessEntry = (u64, u32, std::sync::Arc<str>);

/// A client message, decoded.
#[derive(Debug)]
pub enum Incoming {
    SyncStep1(StateVector),
    /// Sync step 2 or an update: both carry a v1 update to apply.
    Update(Vec<u8>),
    /// Client id, clock and JSON state of each entry ("null" removes).
    Awareness(Vec<AwarenessEntry>),
    AwarenessQuery,
    Auth,
}

/// Why a frame was refused.
#[derive(Debug)]
pub enum Refusal {
    Malformed(String),
    UnknownType(u8),
}

impl Refusal {
    pub fn close(&self) -> (u16, String) {
        match self {
            Refusal::Malformed(e) => (close::INVALID, format!("malformed message: {e}")),
            Refusal::UnknownType(t) => (close::UNSUPPORTED, format!("unknown message type {t}")),
        }
    }
}

/// Decodes one frame. Exactly one message per frame: trailing bytes are refused.
/// The decoder is third-party code fed untrusted bytes; a panic in it (yrs asserts on
/// out-of-range client ids, for one) is a malformed frame, never a dead room.
pub fn decode(frame: &[u8]) -> Result<Incoming, Refusal> {
    std::panic::catch_unwind(|| decode_unguarded(frame))
        .unwrap_or_else(|_| Err(Refusal::Malformed("the message could not be decoded".into())))
}

fn decode_unguarded(frame: &[u8]) -> Result<Incoming, Refusal> {
    claims_fit(frame).map_err(Refusal::Malformed)?;
    let mut decoder = DecoderV1::new(Cursor::new(frame));
    let mut reader = MessageReader::new(&mut decoder);
    let msg = match reader.next() {
        Some(Ok(m)) => m,
        Some(Err(e)) => return Err(Refusal::Malformed(e.to_string())),
        None => return Err(Refusal::Malformed("empty frame".into())),
    };
    if reader.next().is_some() {
        return Err(Refusal::Malformed("more than one message in a frame".into()));
    }
    Ok(match msg {
        Message::Sync(SyncMessage::SyncStep1(sv)) => Incoming::SyncStep1(sv),
        Message::Sync(SyncMessage::SyncStep2(u) | SyncMessage::Update(u)) => Incoming::Update(u),
        Message::Awareness(update) => Incoming::Awareness(
            update
                .clients
                .into_iter()
                .map(|(id, e)| (id.get(), e.clock, e.json))
                .collect(),
        ),
        Message::AwarenessQuery => Incoming::AwarenessQuery,
        Message::Auth(_) => Incoming::Auth,
        Message::Custom(tag, _) => return Err(Refusal::UnknownType(tag)),
    })
}

/// yrs reserves a hash map for as many entries as a message claims to hold: a state
/// vector's clients (sync step 1), an update's clients (sync step 2, update), an
/// awareness update's states. The reservation fails cleanly when it cannot be had, but
/// one that can is filled in: an 8-byte sync step 1 claiming 2^29 clients made the server
/// touch 1 GB and spend 0.7 s before the decode failed (found by fuzzing). Each entry
/// takes at least one byte, so a message claiming more entries than it has bytes left is
/// refused before yrs sees it; what yrs then reserves is bounded by the frame's size.
fn claims_fit(frame: &[u8]) -> Result<(), String> {
    use yrs::encoding::read::Read;
    let mut message = Cursor::new(frame);
    let payload = match message.read_var::<u64>() {
        Ok(MSG_SYNC) => {
            let sync = message.read_var::<u64>();
            match (sync, message.read_buf()) {
                (Ok(_), Ok(payload)) => payload,
                _ => return Ok(()), // yrs reports it
            }
        }
        Ok(MSG_AWARENESS) => match message.read_buf() {
            Ok(payload) => payload,
            Err(_) => return Ok(()),
        },
        _ => return Ok(()),
    };
    let mut entries = Cursor::new(payload);
    let Ok(claimed) = entries.read_var::<u64>() else {
        return Ok(());
    };
    let left = payload.len() - entries.next;
    if claimed > left as u64 {
        return Err(format!("it claims {claimed} entries in {left} bytes"));
    }
    Ok(())
}

/// y-protocols message types whose payload starts with a count of entries.
const MSG_SYNC: u64 = 0;
const MSG_AWARENESS: u64 = 1;

/// The entries of an awareness frame (from the bus); empty if it is not one.
pub fn awareness_entries(frame: &[u8]) -> Vec<AwarenessEntry> {
    match decode(frame) {
        Ok(Incoming::Awareness(entries)) => entries,
        _ => Vec::new(),
    }
}

pub fn sync_step1(sv: &StateVector) -> Bytes {
    Message::Sync(SyncMessage::SyncStep1(sv.clone())).encode_v1().into()
}

pub fn sync_step2(diff: Vec<u8>) -> Bytes {
    sync_message(MSG_SYNC_STEP2, &diff)
}

pub fn update(data: &[u8]) -> Bytes {
    sync_message(MSG_SYNC_UPDATE, data)
}

const MSG_SYNC_STEP2: u8 = 1;
const MSG_SYNC_UPDATE: u8 = 2;

/// A sync message carrying an update: the message type, `kind`, the payload's length
/// (a varint) and the payload, in one buffer of exactly that size. yrs's
/// `Message::encode_v1` copies the payload into a `Vec` first and then into a buffer
/// that starts at 1 KiB (reallocated as a big state grows), for every update a room
/// broadcasts (about 2% of the server's samples at the throughput ceiling: benches/HISTORY.md,
/// change 41), and every small frame in flight held that 1 KiB.
fn sync_message(kind: u8, payload: &[u8]) -> Bytes {
    let mut len = [0u8; 10];
    let mut n = payload.len();
    let mut used = 0;
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        len[used] = if n == 0 { low } else { low | 0x80 };
        used += 1;
        if n == 0 {
            break;
        }
    }
    let mut frame = Vec::with_capacity(2 + used + payload.len());
    frame.extend_from_slice(&[MSG_SYNC as u8, kind]);
    frame.extend_from_slice(&len[..used]);
    frame.extend_from_slice(payload);
    frame.into()
}

pub fn permission_denied(reason: &str) -> Bytes {
    Message::Auth(Some(reason.to_string())).encode_v1().into()
}

/// An awareness message for `entries` (client id, clock, JSON state; "null" removes).
pub fn awareness(entries: impl IntoIterator<Item = AwarenessEntry>) -> Bytes {
    use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
    let clients = entries
        .into_iter()
        .map(|(id, clock, json)| (yrs::block::ClientID::new(id), AwarenessUpdateEntry { clock, json }))
        .collect();
    Message::Awareness(AwarenessUpdate { clients }).encode_v1().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_messages_are_framed_as_yrs_frames_them() {
        for n in [0usize, 1, 2, 127, 128, 300, 16_383, 16_384, 100_000] {
            let payload: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
            let want = Message::Sync(SyncMessage::Update(payload.clone())).encode_v1();
            assert_eq!(update(&payload)[..], want[..], "update of {n} bytes");
            let want = Message::Sync(SyncMessage::SyncStep2(payload.clone())).encode_v1();
            assert_eq!(sync_step2(payload)[..], want[..], "sync step 2 of {n} bytes");
        }
    }

    #[test]
    fn round_trips_and_refusals() {
        let sv = StateVector::default();
        assert!(matches!(decode(&sync_step1(&sv)), Ok(Incoming::SyncStep1(_))));
        assert!(matches!(decode(&update(&[0, 0])), Ok(Incoming::Update(u)) if u == [0, 0]));
        let a = awareness([(7, 3, "{\"user\":{\"name\":\"A\"}}".into())]);
        assert!(matches!(decode(&a), Ok(Incoming::Awareness(e)) if e.len() == 1));
        // yrs asserts client ids fit in 53 bits; a larger one is a malformed frame, not a panic.
        let huge = [1u8, 12, 1, 255, 255, 255, 255, 255, 255, 255, 255, 255, 1];
        assert!(decode(&huge).is_err());
        assert_eq!(awareness_entries(&a)[0].0, 7);
        assert!(matches!(decode(&[]), Err(Refusal::Malformed(_))));
        assert!(
            matches!(decode(&[0, 2, 50, 1]), Err(Refusal::Malformed(_))),
            "truncated"
        );
        assert!(matches!(decode(&[9, 0]), Err(Refusal::UnknownType(9))));
        // Claims of more entries than bytes: refused before yrs reserves room for them
        // (this one made it fill 1 GB). Each kind of message that starts with a count.
        let bomb = [0xff, 0xff, 0xff, 0xff, 0x01];
        for (kind, frame) in [
            ("sync step 1", [&[0u8, 0, 5][..], &bomb].concat()),
            ("sync step 2", [&[0u8, 1, 5][..], &bomb].concat()),
            ("update", [&[0u8, 2, 5][..], &bomb].concat()),
            ("awareness", [&[1u8, 5][..], &bomb].concat()),
        ] {
            let Err(Refusal::Malformed(e)) = decode(&frame) else {
                panic!("{kind}: not refused")
            };
            assert_eq!(e, "it claims 536870911 entries in 0 bytes", "{kind}");
        }
        // As many as the bytes left is still yrs's to judge.
        let fits = update(&[2, 0, 0]);
        assert!(matches!(decode(&fits), Ok(Incoming::Update(_))));
        let mut two = update(&[0, 0]).to_vec();
        two.extend_from_slice(&update(&[0, 0]));
        assert!(matches!(decode(&two), Err(Refusal::Malformed(_))));
    }
}
