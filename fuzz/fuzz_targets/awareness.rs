//! Awareness frames from several connections and another node, applied as a room
//! applies them: `vellum::collab::fuzzing::awareness` says what must hold (nobody
//! changes a state another connection owns; only changes are relayed). Inputs it found
//! are kept in fuzz/regressions/awareness/ and replayed by `tests/collab.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vellum::collab::fuzzing::awareness(data));
