//! A room's awareness states (who is here, their names and carets), with the rule that
//! decides what is worth relaying.
//!
//! The stock y-websocket client sends the server every awareness change it *applies*,
//! its own and everyone else's. Relaying every frame it receives would make each change
//! come back from every client and go out to every client again: N² messages per caret
//! move. So, as y-protocols' `Awareness` does on the reference server, an entry counts
//! only when its clock is newer than the one the room holds (or it removes a state at
//! the same clock), and the room relays just those. The clock of a removed state is kept
//! for a while, so the clients' echoes of a removal die here too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::protocol::AwarenessEntry;
use crate::collab::ConnId;

/// The connection id under which awareness states from other nodes are kept.
pub(super) const REMOTE: ConnId = 0;

/// How long the clock of a removed state is kept. Echoes of a removal come back within
/// a round trip; a client that reappears later with an older clock (it cannot, its own
/// clock only grows) would merely be shown again.
const TOMBSTONE_TTL: Duration = Duration::from_secs(60);
/// Removed states kept before old ones are swept.
const TOMBSTONES_BEFORE_SWEEP: usize = 256;

pub(super) struct State {
    pub clock: u32,
    pub json: Arc<str>,
    /// The connection that set it ([`REMOTE`] for another node's client).
    pub conn: ConnId,
}

#[derive(Default)]
pub(super) struct Awareness {
    live: HashMap<u64, State>,
    /// Removed states: their last clock and when they were removed.
    removed: HashMap<u64, (u32, Instant)>,
}

fn is_null(json: &str) -> bool {
    json == "null"
}

impl Awareness {
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&u64, &State)> {
        self.live.iter()
    }

    /// Every live state, as entries of one awareness message.
    pub fn entries(&self) -> impl Iterator<Item = AwarenessEntry> + '_ {
        self.live.iter().map(|(id, s)| (*id, s.clock, s.json.clone()))
    }

    /// Takes what is new in `entries`, sent by `conn`, and returns it: what the room
    /// relays (nothing if nothing was new). A state that one of this node's connections
    /// set is never changed by another of its connections (the stock client re-sends
    /// others' states, at clocks the room already holds; anything else is a spoof).
    pub fn apply(&mut self, conn: ConnId, entries: Vec<AwarenessEntry>) -> Vec<AwarenessEntry> {
        let mut fresh = Vec::new();
        for (client, clock, json) in entries {
            let null = is_null(&json);
            if let Some(s) = self.live.get_mut(&client) {
                let newer = clock > s.clock || (clock == s.clock && null);
                let foreign = conn != s.conn && conn != REMOTE && s.conn != REMOTE;
                if !newer || foreign {
                    continue;
                }
                if null {
                    self.live.remove(&client);
                    self.bury(client, clock);
                } else {
                    s.clock = clock;
                    s.json = json.clone();
                    if conn != REMOTE {
                        s.conn = conn;
                    }
                }
                fresh.push((client, clock, json));
                continue;
            }
            let buried = self.removed.get(&client).map(|(c, _)| *c);
            if buried.is_some_and(|c| clock <= c) {
                continue;
            }
            if null {
                // Removing what is already gone tells nobody anything.
                self.bury(client, clock);
                continue;
            }
            self.removed.remove(&client);
            self.live.insert(
                client,
                State {
                    clock,
                    json: json.clone(),
                    conn,
                },
            );
            fresh.push((client, clock, json));
        }
        fresh
    }

    /// Removes every state `conn` set; returns the removals to relay.
    pub fn remove_conn(&mut self, conn: ConnId) -> Vec<AwarenessEntry> {
        let gone: Vec<(u64, u32)> = self
            .live
            .iter()
            .filter(|(_, s)| s.conn == conn)
            .map(|(id, s)| (*id, s.clock + 1))
            .collect();
        gone.into_iter()
            .map(|(id, clock)| {
                self.live.remove(&id);
                self.bury(id, clock);
                (id, clock, Arc::from("null"))
            })
            .collect()
    }

    fn bury(&mut self, client: u64, clock: u32) {
        let now = Instant::now();
        if self.removed.len() >= TOMBSTONES_BEFORE_SWEEP {
            self.removed
                .retain(|_, (_, at)| now.duration_since(*at) < TOMBSTONE_TTL);
        }
        self.removed.insert(client, (clock, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(client: u64, clock: u32, json: &str) -> AwarenessEntry {
        (client, clock, Arc::from(json))
    }

    #[test]
    fn only_newer_entries_are_relayed() {
        let mut a = Awareness::default();
        assert_eq!(a.apply(1, vec![e(7, 1, "{}")]).len(), 1);
        // the echo of another client, at the clock the room holds: nothing to relay
        assert!(a.apply(2, vec![e(7, 1, "{}")]).is_empty());
        assert!(
            a.apply(1, vec![e(7, 1, "{\"x\":1}")]).is_empty(),
            "same clock, not newer"
        );
        // the 15 s renewal carries a newer clock, unchanged state: relayed
        assert_eq!(a.apply(1, vec![e(7, 2, "{}")]), vec![e(7, 2, "{}")]);
        // a frame with one new entry among old ones relays just the new one
        assert_eq!(a.apply(1, vec![e(7, 2, "{}"), e(8, 1, "{}")]), vec![e(8, 1, "{}")]);
    }

    #[test]
    fn removals_and_their_echoes() {
        let mut a = Awareness::default();
        a.apply(1, vec![e(7, 3, "{}")]);
        // removal at the same clock counts (y-protocols' rule)
        assert_eq!(a.apply(1, vec![e(7, 3, "null")]).len(), 1);
        assert!(a.is_empty());
        // everybody echoes the removal, and an old state still in flight: both die here
        assert!(a.apply(2, vec![e(7, 3, "null")]).is_empty());
        assert!(a.apply(2, vec![e(7, 3, "{}")]).is_empty());
        // a client's own timeout of a gone state (clock + 1, null): nothing to tell
        assert!(a.apply(2, vec![e(7, 4, "null")]).is_empty());
        // the client comes back with a newer clock
        assert_eq!(a.apply(1, vec![e(7, 5, "{}")]).len(), 1);
        // removing an unknown client relays nothing
        assert!(a.apply(1, vec![e(9, 1, "null")]).is_empty());
    }

    #[test]
    fn a_closed_connection_removes_its_states_once() {
        let mut a = Awareness::default();
        a.apply(1, vec![e(7, 3, "{}"), e(8, 1, "{}")]);
        a.apply(2, vec![e(9, 1, "{}")]);
        let mut gone = a.remove_conn(1);
        gone.sort();
        assert_eq!(gone, vec![e(7, 4, "null"), e(8, 2, "null")]);
        // the others echo the removal back: dropped
        assert!(a.apply(2, vec![e(7, 4, "null"), e(8, 2, "null")]).is_empty());
        assert_eq!(a.entries().count(), 1);
    }

    #[test]
    fn connections_cannot_change_each_others_states() {
        let mut a = Awareness::default();
        a.apply(1, vec![e(7, 1, "{\"user\":{\"name\":\"A\"}}")]);
        assert!(a.apply(2, vec![e(7, 9, "{\"user\":{\"name\":\"B\"}}")]).is_empty());
        assert!(a.apply(2, vec![e(7, 9, "null")]).is_empty());
        // another node may: its client is the same person seen through the bus
        assert_eq!(a.apply(REMOTE, vec![e(7, 2, "{}")]).len(), 1);
        assert_eq!(a.iter().next().unwrap().1.conn, 1, "the local owner is kept");
    }

    #[tokio::test(start_paused = true)]
    async fn tombstones_are_swept_once_old() {
        let mut a = Awareness::default();
        let n = TOMBSTONES_BEFORE_SWEEP as u64 * 2;
        for i in 0..n {
            a.apply(1, vec![e(i, 1, "{}")]);
            a.remove_conn(1);
        }
        // none is older than the TTL yet, so all are kept
        assert_eq!(a.removed.len(), n as usize);
        tokio::time::advance(TOMBSTONE_TTL).await;
        a.apply(1, vec![e(n, 1, "{}")]);
        a.remove_conn(1);
        assert_eq!(a.removed.len(), 1, "the old ones are swept at the next removal");
    }
}
