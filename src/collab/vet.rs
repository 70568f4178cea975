//! Checks on an incoming v1 update that yrs does not make, run before it is applied.
//!
//! - **Clocks past `u32::MAX`.** yrs keeps clocks in `u32` and adds to them unchecked, so
//!   in a release build a struct near the end of the range wraps around to clock 0. It
//!   decodes and applies such updates, and then panics encoding the document, or reads
//!   freed memory while integrating (all found by `fuzz/`; see `fuzz/README.md`). No real
//!   client comes near: a clock counts one client's insertions, four billion of them. An
//!   update in which a struct or a deleted range would end past `u32::MAX` is refused.
//! - **Subdocuments.** A Yjs document can embed another (`ItemContent::Doc`); the embedded
//!   one refers back to its parent, so in yrs the pair is never freed: every unload or
//!   reload of a room whose document holds one leaks the whole document (found by
//!   `fuzz/` with LeakSanitizer). Vellum's documents are rich text edited through one
//!   y-websocket connection each, with no use for subdocuments, so an update that
//!   carries one is refused.
//!
//! The walk reads the update with yrs's own public decoder and content parser, exactly as
//! `Update::decode_v1` does, so both agree on every struct's length.

use std::collections::HashSet;

use yrs::block::ItemContent;
use yrs::encoding::read::Read;
use yrs::updates::decoder::{Decoder, DecoderV1};

/// Struct kinds and item flags in the v1 encoding (as in yrs and Yjs).
const GC: u8 = 0;
const SKIP: u8 = 10;
const HAS_ORIGIN: u8 = 0b1000_0000;
const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
const HAS_PARENT_SUB: u8 = 0b0010_0000;

/// What the walk learned about an update that passed.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Vetted {
    /// How many clocks its delete set covers. Deleting is the one part of integrating
    /// whose work does not follow from the update's size: a few bytes can delete a whole
    /// document.
    pub deleted: u64,
}

/// `Err` with the reason when a struct or deleted range of `data` (a v1 update) ends
/// past `u32::MAX`, a client's structs come in two runs, or a struct holds a
/// subdocument. Call it on an update that `Update::decode_v1` accepted: errors in the
/// encoding itself are reported too, but yrs's own decoder is the judge of those.
pub(super) fn update(data: &[u8]) -> Result<Vetted, String> {
    let mut d = DecoderV1::from(data);
    walk(&mut d).map_err(|e| match e {
        Walk::Wraps(what) => format!("{what} runs past the largest clock (2^32 - 1)"),
        Walk::Repeated => "a client's structs come in two runs".into(),
        Walk::Subdocument => "subdocuments are not supported".into(),
        Walk::Malformed(e) => format!("malformed update: {e}"),
    })
}

enum Walk {
    Wraps(&'static str),
    Repeated,
    Subdocument,
    Malformed(yrs::encoding::read::Error),
}

impl From<yrs::encoding::read::Error> for Walk {
    fn from(e: yrs::encoding::read::Error) -> Self {
        Walk::Malformed(e)
    }
}

fn ends_in_range(clock: u64, len: u64, what: &'static str) -> Result<u64, Walk> {
    let end = clock + len;
    if end > u64::from(u32::MAX) {
        Err(Walk::Wraps(what))
    } else {
        Ok(end)
    }
}

fn walk(d: &mut DecoderV1) -> Result<Vetted, Walk> {
    let clients: u32 = d.read_var()?;
    let mut seen = HashSet::new();
    for _ in 0..clients {
        let structs: u32 = d.read_var()?;
        let client = d.read_client()?;
        if !seen.insert(client) {
            return Err(Walk::Repeated);
        }
        let mut clock = u64::from(d.read_var::<u32>()?);
        for _ in 0..structs {
            let info = d.read_info()?;
            let len = match info {
                SKIP => d.read_var::<u32>()?,
                GC => d.read_len()?,
                info => {
                    let parent_inline = info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0;
                    if info & HAS_ORIGIN != 0 {
                        d.read_left_id()?;
                    }
                    if info & HAS_RIGHT_ORIGIN != 0 {
                        d.read_right_id()?;
                    }
                    if parent_inline {
                        if d.read_parent_info()? {
                            d.read_string()?;
                        } else {
                            d.read_left_id()?;
                        }
                        if info & HAS_PARENT_SUB != 0 {
                            d.read_string()?;
                        }
                    }
                    match ItemContent::decode(d, info)? {
                        ItemContent::Doc(..) => return Err(Walk::Subdocument),
                        content => content.len_utf16(),
                    }
                }
            };
            clock = ends_in_range(clock, u64::from(len), "a struct")?;
        }
    }
    let mut deleted = 0;
    let clients: u32 = d.read_var()?;
    for _ in 0..clients {
        d.reset_ds_cur_val();
        let _client: u64 = d.read_var()?;
        let ranges: u32 = d.read_var()?;
        for _ in 0..ranges {
            let clock = d.read_ds_clock()?;
            let len = d.read_ds_len()?;
            ends_in_range(u64::from(clock), u64::from(len), "a deleted range")?;
            deleted += u64::from(len);
        }
    }
    Ok(Vetted { deleted })
}

#[cfg(test)]
mod tests {
    use yrs::encoding::write::Write;
    use yrs::updates::decoder::Decode;
    use yrs::updates::encoder::{Encoder, EncoderV1};
    use yrs::{Array, Doc, GetString, Map, ReadTxn, StateVector, Text, Transact, Update, XmlFragment};

    use super::update as check;

    /// The update inside a y-websocket update frame (`[0, 2, varint length, update]`).
    fn payload(frame: &[u8]) -> &[u8] {
        let mut at = 2;
        while frame[at] & 0x80 != 0 {
            at += 1;
        }
        &frame[at + 1..]
    }

    #[test]
    fn real_updates_pass() {
        let doc = Doc::with_client_id(7);
        let (text, map, array) = (
            doc.get_or_insert_text("t"),
            doc.get_or_insert_map("m"),
            doc.get_or_insert_array("a"),
        );
        let xml = doc.get_or_insert_xml_fragment("x");
        {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 0, "héllo 👋 wörld");
            text.remove_range(&mut txn, 0, 1);
            let bold = yrs::types::Attrs::from([("bold".into(), true.into())]);
            text.format(&mut txn, 0, 4, bold);
            text.insert_embed(&mut txn, 2, yrs::Any::from("an embed"));
            map.insert(&mut txn, "k", vec![1.5, 2.0]);
            map.insert(&mut txn, "nested", yrs::MapPrelim::from([("a", "b")]));
            array.insert_range(&mut txn, 0, ["x", "y", "z"]);
            array.insert(&mut txn, 1, yrs::ArrayPrelim::default());
            xml.insert(&mut txn, 0, yrs::XmlElementPrelim::empty("p"));
        }
        let state = doc.transact().encode_state_as_update_v1(&StateVector::default());
        check(&state).unwrap();
        // Every struct kind in the stored corpus of real frames passes too.
        let seed = include_bytes!("../../fuzz/seed_doc.bin");
        check(seed).unwrap();
        let copy = Doc::new();
        copy.transact_mut()
            .apply_update(Update::decode_v1(&state).unwrap())
            .unwrap();
        assert_eq!(
            copy.get_or_insert_text("t").get_string(&copy.transact()),
            text.get_string(&doc.transact())
        );
    }

    /// Every update in the fuzz seed corpus (real frames: the automerge-paper trace, and
    /// another client's text, format, map, array and XML edits) that yrs decodes passes.
    #[test]
    fn corpus_updates_pass() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/frame");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let frame = std::fs::read(&path).unwrap();
            // Sync step 2 (0, 1) and update (0, 2) frames carry an update.
            if frame.len() < 3 || frame[0] != 0 || !(1..=2).contains(&frame[1]) {
                continue;
            }
            let update = payload(&frame);
            if Update::decode_v1(update).is_ok() {
                check(update).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                checked += 1;
            }
        }
        assert!(checked >= 40, "only {checked} updates in {}", dir.display());
    }

    /// Four of the fuzz regressions are clocks that wrap; the other two are pending states
    /// yrs cannot merge (the room's encode after applying catches those).
    #[test]
    fn wrapped_clocks_are_refused() {
        let regressions = |name: &str| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/regressions/frame")
                .join(name);
            std::fs::read(path).unwrap()
        };
        for name in [
            "wrapped-clock-encode-panic",
            "wrapped-clock-use-after-free",
            "committed-pending-encode-panic",
            "apply-skip-block-panic",
        ] {
            let frame = regressions(name);
            let update = payload(&frame);
            assert!(Update::decode_v1(update).is_ok(), "{name}: yrs decodes it");
            let err = check(update).unwrap_err();
            assert!(err.contains("a struct runs past the largest clock"), "{name}: {err}");
        }
        for name in ["pending-state-encode-panic", "state-encode-panic"] {
            let frame = regressions(name);
            assert!(check(payload(&frame)).is_ok(), "{name}");
        }
    }

    /// A subdocument anywhere (a map value, an array element) is refused; so is the
    /// fuzzer's input that leaked a document through one.
    #[test]
    fn subdocuments_are_refused() {
        let doc = Doc::with_client_id(9);
        let (map, array) = (doc.get_or_insert_map("m"), doc.get_or_insert_array("a"));
        let sv = doc.transact().state_vector();
        map.insert(&mut doc.transact_mut(), "sub", Doc::new());
        let in_map = doc.transact().encode_diff_v1(&sv);
        let sv = doc.transact().state_vector();
        array.insert(&mut doc.transact_mut(), 0, Doc::new());
        let in_array = doc.transact().encode_diff_v1(&sv);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/frame/subdocument-leak");
        let fuzzed = std::fs::read(path).unwrap();
        for (what, update) in [
            ("map", &in_map[..]),
            ("array", &in_array[..]),
            ("fuzzed", payload(&fuzzed)),
        ] {
            assert!(Update::decode_v1(update).is_ok(), "{what}: yrs decodes it");
            assert_eq!(check(update), Err("subdocuments are not supported".into()), "{what}");
        }
    }

    /// A v1 update written by hand: `structs` as (client, clock, [GC lengths]), then
    /// `deleted` as (client, [(clock, len)]).
    fn handmade(structs: &[(u64, u32, &[u32])], deleted: &[(u64, &[(u32, u32)])]) -> Vec<u8> {
        let mut e = EncoderV1::new();
        e.write_var(structs.len());
        for (client, clock, gcs) in structs {
            e.write_var(gcs.len());
            e.write_var(*client);
            e.write_var(*clock);
            for len in *gcs {
                e.write_u8(0);
                e.write_var(*len);
            }
        }
        e.write_var(deleted.len());
        for (client, ranges) in deleted {
            e.write_var(*client);
            e.write_var(ranges.len());
            for (clock, len) in *ranges {
                e.write_var(*clock);
                e.write_var(*len);
            }
        }
        e.to_vec()
    }

    #[test]
    fn edges() {
        let max = u32::MAX;
        check(&handmade(&[(5, 0, &[10, 20])], &[])).unwrap();
        check(&handmade(&[(5, max - 30, &[10, 20])], &[])).unwrap();
        let err = check(&handmade(&[(5, max - 30, &[10, 21])], &[])).unwrap_err();
        assert!(err.contains("a struct runs past"), "{err}");
        assert!(check(&handmade(&[(5, max, &[1])], &[])).is_err());
        check(&handmade(&[(5, 0, &[1]), (6, 0, &[1])], &[])).unwrap();
        let err = check(&handmade(&[(5, 0, &[1]), (5, 4, &[1])], &[])).unwrap_err();
        assert!(err.contains("two runs"), "{err}");

        let deletes = handmade(&[], &[(3, &[(0, 2), (max - 2, 2)]), (4, &[(7, 5)])]);
        assert_eq!(check(&deletes), Ok(super::Vetted { deleted: 9 }));
        let err = check(&handmade(&[], &[(3, &[(0, 2), (max - 2, 3)])])).unwrap_err();
        assert!(err.contains("a deleted range runs past"), "{err}");
        // Every handmade update above is one yrs decodes.
        assert!(Update::decode_v1(&handmade(&[(5, max, &[1])], &[(3, &[(max, 9)])])).is_ok());
        // Truncated: reported, not a panic.
        let whole = handmade(&[(5, 0, &[10])], &[]);
        assert!(check(&whole[..whole.len() - 2]).unwrap_err().contains("malformed"));
    }
}
