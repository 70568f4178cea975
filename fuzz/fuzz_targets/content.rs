//! A body as a caller sends it (HTML, Markdown or ProseMirror JSON, by the first byte):
//! `vellum::content::fuzzing::content` says what must hold. Inputs it found are kept in
//! fuzz/regressions/content/ and replayed by `tests/content.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vellum::content::fuzzing::content(data));
