//! Arbitrary bytes as one client frame: `vellum::collab::apply_frame` decodes it exactly
//! like a room does and, for a sync step 2 or an update, applies it under the room's
//! checks; for a sync step 1 it encodes the reply to the client's state vector (a panic
//! there would reload a whole room, so it escapes). Errors are fine (the room closes
//! that socket). A panic that escapes
//! `apply_frame`, an abort, a memory blow-up or a hang is a bug. A document that accepted
//! the frame must still encode, as the room's snapshots and sync replies do next.
//!
//! Panics that vellum itself catches (it guards the third-party decoder with
//! `catch_unwind` and turns a panic there into a refused frame) are allowed: libfuzzer-sys'
//! hook would abort on them, so this target installs its own and aborts only when a panic
//! reaches it.

#![no_main]

use std::backtrace::Backtrace;
use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use libfuzzer_sys::fuzz_target;
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

/// The document every input is applied to: the state after the automerge-paper trace's
/// first updates (written by `seed_corpus.rs`), so that seed updates following it
/// integrate rather than all waiting as pending structs.
static SEED_DOC: &[u8] = include_bytes!("../seed_doc.bin");

/// Well below the server's default (1 MiB), so inputs reach the limit's path as well.
const MAX_PENDING_BYTES: usize = 16 * 1024;

thread_local! {
    /// The latest panic on this thread: its message and where it happened.
    static LAST_PANIC: RefCell<Option<(String, Backtrace)>> = const { RefCell::new(None) };
}

fn seeded() -> Doc {
    let doc = Doc::with_client_id(0xF022);
    let update = Update::decode_v1(SEED_DOC).expect("seed_doc.bin decodes");
    doc.transact_mut().apply_update(update).expect("seed_doc.bin applies");
    doc
}

fn run(data: &[u8]) {
    let doc = seeded();
    if vellum::collab::apply_frame(&doc, data, MAX_PENDING_BYTES).is_ok() {
        let txn = doc.transact();
        let _ = txn.encode_state_as_update_v1(&StateVector::default());
        let _ = txn.state_vector();
    }
}

fuzz_target!(
    init: {
        // Replaces libfuzzer-sys' abort-on-any-panic hook: remember the panic, and decide
        // below whether it escaped.
        std::panic::set_hook(Box::new(|info| {
            let message = info.to_string();
            LAST_PANIC.with(|p| *p.borrow_mut() = Some((message, Backtrace::force_capture())));
        }));
    },
    |data: &[u8]| {
        if catch_unwind(AssertUnwindSafe(|| run(data))).is_err() {
            let (message, backtrace) = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| ("(no message)".into(), Backtrace::disabled()));
            eprintln!("a panic escaped apply_frame: {message}\n{backtrace}");
            std::process::abort();
        }
    }
);
