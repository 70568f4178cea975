//! Vellum's WebSocket frame reader against tungstenite's (the maintained library) on the
//! same client bytes: `fuzz/ws_differential.rs` says what must agree. Runs the committed
//! inputs (`fuzz/corpus/ws_frame/`, and crashers kept in `fuzz/regressions/ws_frame/`) and random ones: frames built
//! from every opcode, reserved bit, length encoding, mask, fragmentation and close code,
//! valid and not, then random bytes. Prints its seed (`VELLUM_SEED` replays it). The
//! fuzz target `ws_frame` runs the same check for as long as one likes.

mod common;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_tungstenite::tungstenite;

#[path = "../fuzz/ws_differential.rs"]
mod ws_differential;

use ws_differential::{MAX_MESSAGE, check};

/// A client frame with the header fields given; the mask is applied when present.
fn frame(first: u8, mask: Option<[u8; 4]>, len_form: u8, payload: &[u8]) -> Vec<u8> {
    let masked = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![first];
    let n = payload.len();
    match len_form {
        0 if n < 126 => out.push(masked | n as u8),
        0 | 1 if n <= u16::MAX as usize => {
            out.push(masked | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            out.push(masked | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if let Some(m) = mask {
        out.extend_from_slice(&m);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

fn random_payload(rng: &mut StdRng) -> Vec<u8> {
    let len = match rng.gen_range(0..10) {
        0 => 0,
        1 => rng.gen_range(120..130),
        2 => rng.gen_range(MAX_MESSAGE - 4..MAX_MESSAGE + 4),
        _ => rng.gen_range(0..64),
    };
    match rng.gen_range(0..4) {
        // Text-like: UTF-8, sometimes cut inside a character or broken.
        0 => {
            let s: String = (0..len).map(|_| ['a', 'é', '€', '😀'][rng.gen_range(0..4)]).collect();
            let mut b = s.into_bytes();
            b.truncate(len);
            if rng.gen_bool(0.2) && !b.is_empty() {
                let i = rng.gen_range(0..b.len());
                b[i] = 0xff;
            }
            b
        }
        // A close payload: a code (allowed or not) and a reason.
        1 => {
            let codes = [
                0u16, 999, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1011, 1012, 1013, 1014, 1015, 1016, 2999,
                3000, 4999, 5000, 65535,
            ];
            let mut b = codes[rng.gen_range(0..codes.len())].to_be_bytes().to_vec();
            b.extend_from_slice(if rng.gen_bool(0.8) { b"bye" } else { &[0xc3, 0x28] });
            b
        }
        _ => (0..len).map(|_| rng.r#gen()).collect(),
    }
}

/// A sequence of frames, mostly well-formed, each field sometimes wrong.
fn random_frames(rng: &mut StdRng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.gen_range(1..8) {
        let opcode = match rng.gen_range(0..20) {
            0 => rng.gen_range(3..8),
            1 => rng.gen_range(0xB..0x10),
            2..=4 => 0x0,
            5..=7 => 0x1,
            8..=12 => 0x2,
            13 | 14 => 0x8,
            15..=17 => 0x9,
            _ => 0xA,
        };
        let fin = if rng.gen_bool(0.75) { 0x80 } else { 0 };
        let rsv = if rng.gen_bool(0.05) {
            [0x40, 0x20, 0x10][rng.gen_range(0..3)]
        } else {
            0
        };
        let mask = rng.gen_bool(0.95).then(|| rng.r#gen());
        let len_form = if rng.gen_bool(0.85) { 0 } else { rng.gen_range(1..3) };
        let payload = random_payload(rng);
        out.extend(frame(fin | rsv | opcode, mask, len_form, &payload));
    }
    if rng.gen_bool(0.3) {
        let cut = rng.gen_range(0..=out.len());
        out.truncate(cut);
    }
    out
}

#[test]
fn the_frame_reader_agrees_with_tungstenite() {
    let seed = std::env::var("VELLUM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    let mut inputs = common::fuzz_inputs("ws_frame");
    assert!(
        !inputs.is_empty(),
        "no inputs in fuzz/corpus/ws_frame or fuzz/regressions/ws_frame"
    );
    for _ in 0..20_000 {
        inputs.push(random_frames(&mut rng));
    }
    for _ in 0..2_000 {
        let n = rng.gen_range(0..64);
        inputs.push((0..n).map(|_| rng.r#gen()).collect());
    }
    for input in &inputs {
        if let Err(e) = std::panic::catch_unwind(|| check(input)) {
            let why = e.downcast_ref::<String>().cloned().unwrap_or_else(|| "a panic".into());
            panic!("seed {seed}: {why}");
        }
    }
    let _ = tungstenite::Message::Pong(Default::default()); // the crate the check names
}
