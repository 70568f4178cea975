//! Vellum's WebSocket frame reader against tungstenite's on arbitrary client bytes:
//! see `fuzz/ws_differential.rs`. A disagreement panics.

#![no_main]

use libfuzzer_sys::fuzz_target;

// The shared check names the crate `crate::tungstenite`, as the test does.
#[allow(unused_imports)]
use ::tungstenite;

#[path = "../ws_differential.rs"]
mod ws_differential;

fuzz_target!(|data: &[u8]| ws_differential::check(data));
