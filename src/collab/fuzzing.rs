//! Checks for the fuzz targets (`fuzz/`) and for the tests that replay the inputs they
//! found: each takes arbitrary bytes and panics only on a bug.

use std::collections::HashMap;

use super::ConnId;
use super::awareness::{Awareness, REMOTE};
use super::protocol::{self, Incoming};

/// Awareness frames from a few connections (and another node) applied in turn, as a
/// room applies them. `data` is a sequence of `[conn, len_hi, len_lo, frame…]`; a conn
/// byte with its top bit set closes that connection instead. After every step:
/// - a connection never changed or removed a state another of this node's connections
///   set (the stock client's echoes and any spoof are dropped);
/// - what was relayed is exactly what changed, at clocks that only grow;
/// - no live state is a removal (`null`).
pub fn awareness(data: &[u8]) {
    let mut awareness = Awareness::default();
    let mut rest = data;
    while let [conn_byte, hi, lo, tail @ ..] = rest {
        let len = (usize::from(*hi) << 8 | usize::from(*lo)).min(tail.len());
        let (frame, next) = tail.split_at(len);
        rest = next;
        // Connections 1 to 3 of this node, and REMOTE (another node, through the bus).
        let conn: ConnId = u64::from(conn_byte & 0x03);
        let before: HashMap<u64, (u32, String, ConnId)> = awareness
            .iter()
            .map(|(id, s)| (*id, (s.clock, s.json.to_string(), s.conn)))
            .collect();
        if conn_byte & 0x80 != 0 && conn != REMOTE {
            let gone = awareness.remove_conn(conn);
            for (id, clock, json) in gone {
                let (was_clock, _, owner) = before.get(&id).expect("removed what was there");
                assert_eq!((*owner, &*json), (conn, "null"), "client {id}");
                assert!(clock > *was_clock, "a removal moves the clock on");
            }
            assert!(awareness.iter().all(|(_, s)| s.conn != conn));
            continue;
        }
        let Ok(Incoming::Awareness(entries)) = protocol::decode(frame) else {
            continue;
        };
        let relayed = awareness.apply(conn, entries);
        let after: HashMap<u64, (u32, String, ConnId)> = awareness
            .iter()
            .map(|(id, s)| (*id, (s.clock, s.json.to_string(), s.conn)))
            .collect();
        for (id, was) in &before {
            let owned_by_another = was.2 != conn && was.2 != REMOTE && conn != REMOTE;
            if owned_by_another {
                assert_eq!(
                    after.get(id),
                    Some(was),
                    "connection {conn} changed client {id}'s state"
                );
            }
        }
        for (id, clock, json) in &relayed {
            match after.get(id) {
                Some((c, j, _)) => assert_eq!((c, j.as_str()), (clock, &**json), "relayed what is held"),
                None => assert_eq!(&**json, "null", "relayed a removal of client {id}"),
            }
            if let Some((was_clock, _, _)) = before.get(id) {
                assert!(clock >= was_clock, "client {id}'s clock went back");
            }
        }
        for (id, now) in &after {
            assert_ne!(now.1, "null", "client {id} is live as a removal");
            if before.get(id) != Some(now) {
                assert!(
                    relayed.iter().any(|(r, _, _)| r == id),
                    "client {id} changed unannounced"
                );
            }
        }
        for id in before.keys().filter(|id| !after.contains_key(id)) {
            assert!(relayed.iter().any(|(r, _, _)| r == id), "client {id} left unannounced");
        }
    }
}
