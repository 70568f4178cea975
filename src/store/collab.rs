//! The CRDT log: snapshots, incremental updates, and active sessions.

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Held, HeldConnection, Pool, Store, now, on_db};

/// One update to append, as part of a group commit. Its sequence number is given out
/// by the append ([`Store::append_updates`]).
#[derive(Clone, Copy)]
pub struct NewUpdate<'a> {
    pub document_id: Uuid,
    pub data: &'a [u8],
    pub author_id: Option<Uuid>,
}

/// What a room loads: the latest snapshot and the updates after it, in order.
pub struct StoredState {
    pub snapshot: Option<(Vec<u8>, i64)>,
    pub updates: Vec<(i64, Vec<u8>)>,
}

impl StoredState {
    /// The highest sequence number stored for the document (0 when none).
    pub fn last_seq(&self) -> i64 {
        let snap = self.snapshot.as_ref().map_or(0, |(_, s)| *s);
        self.updates.last().map_or(snap, |(s, _)| (*s).max(snap))
    }
}

/// SQLite: what this process knows of `document_updates_recent`, the update log's newest
/// rows (migration 0005), kept under the write turn, which every write of the table
/// takes. It assumes this process is the database's only writer, as the write turn and
/// the rooms' sequence numbers already do.
#[derive(Default)]
pub struct LogTail {
    /// Read from the table at the first write (`false` until then).
    known: bool,
    /// Rows in the table.
    rows: u64,
    /// The last sequence number appended for each document with recent rows (and maybe
    /// others appended to lately): an append must go past it. The table has no unique
    /// key, so this check stands in for `document_updates`' primary key.
    last_seq: HashMap<Uuid, i64>,
    /// No move before the table holds this many rows (raised after a failed move).
    fold_at: u64,
    /// The move under way, if any.
    moving: Option<Moving>,
}

/// A move of the recent rows under way ([`Store::fold_update_log_on`]).
struct Moving {
    /// It moves the rows up to this id, the last there was when it began.
    upto: i64,
    /// The ranges of rows still to be copied, from (document, sequence number) to
    /// (document, sequence number), the next one last.
    ranges: Vec<((Uuid, i64), (Uuid, i64))>,
}

/// The update log's recent rows are moved into `document_updates` once there are this
/// many on SQLite (or once the writer has been idle a moment). Each document's page of
/// `document_updates` is written once per move for all its rows in it; and readers scan
/// the recent rows, unindexed, so they must stay few (benches/HISTORY.md, change 42).
pub const FOLD_AT_ROWS: u64 = 4096;
/// A group commit of at most this many documents goes straight into `document_updates`
/// on SQLite: it writes a page of the log per document either way, and has nothing to
/// move later (the single-document ceiling fell by a quarter through the recent rows).
const DIRECT_MAX_DOCUMENTS: usize = 2;
/// About how many rows a step of a move copies: one statement, a few milliseconds, so
/// the group commits waiting for the write turn meanwhile are not held up for long.
pub const MOVE_ROWS: u64 = 512;
/// Past this many documents in [`LogTail::last_seq`], an append forgets those with no
/// recent rows; each is read back from the database at its next append.
const LAST_SEQ_KEPT: usize = 16_384;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub node_id: String,
    pub user_id: Option<Uuid>,
    pub document_id: Uuid,
    pub connected_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

/// A document's state: the snapshot (kind 0) if any, then the updates after it (kind 1)
/// in order. A snapshot deletes the updates it covers.
pub(super) const LOAD_POSTGRES: &str = "select 0 as kind, seq, state as data from document_snapshots where document_id = $1 \
     union all select 1 as kind, seq, data from document_updates where document_id = $1 \
     and seq > (select coalesce(max(seq), 0) from document_snapshots where document_id = $1) \
     order by kind, seq";
/// With the recent rows (migration 0005) not covered by a snapshot (which deletes from
/// `document_updates` only) and not copied into `document_updates` yet (a move copies a
/// range at a time and deletes them all at its end).
const LOAD_SQLITE: &str = "select 0 as kind, seq, state as data from document_snapshots where document_id = $1 \
     union all select 1 as kind, seq, data from document_updates where document_id = $1 \
     and seq > (select coalesce(max(seq), 0) from document_snapshots where document_id = $1) \
     union all select 1 as kind, seq, data from document_updates_recent r where document_id = $1 \
     and seq > (select coalesce(max(seq), 0) from document_snapshots where document_id = $1) \
     and not exists (select 1 from document_updates u where u.document_id = $1 and u.seq = r.seq) \
     order by kind, seq";

/// [`LOAD_POSTGRES`] past update `$2`.
const LOAD_AFTER_POSTGRES: &str = "select 0 as kind, seq, state as data from document_snapshots \
     where document_id = $1 and seq > $2 \
     union all select 1 as kind, seq, data from document_updates where document_id = $1 and seq > $2 \
     order by kind, seq";
/// [`LOAD_SQLITE`] past update `$2` (a recent row a snapshot covers may come too: it is
/// in the snapshot already, and applying it again changes nothing).
const LOAD_AFTER_SQLITE: &str = "select 0 as kind, seq, state as data from document_snapshots \
     where document_id = $1 and seq > $2 \
     union all select 1 as kind, seq, data from document_updates where document_id = $1 and seq > $2 \
     union all select 1 as kind, seq, data from document_updates_recent r where document_id = $1 and seq > $2 \
     and not exists (select 1 from document_updates u where u.document_id = $1 and u.seq = r.seq) \
     order by kind, seq";

/// Rows per insert statement of a group commit on SQLite: 5 parameters each stays far
/// below its limit.
const ROWS_PER_STATEMENT: usize = 100;
/// The longest run of session rows in one statement on SQLite ([`power_of_two_chunks`]).
const MAX_RUN: usize = 64;

impl Store {
    /// The snapshot and the updates after it, read by one statement, so both come from
    /// the same view of the database (a statement reads one snapshot of it on both
    /// engines) in one round trip.
    pub async fn load_document_state(&self, document_id: Uuid) -> anyhow::Result<StoredState> {
        // Only the updates after the snapshot: compaction deletes the ones it covers, and
        // on PostgreSQL the deleted rows stay in the index until a vacuum, so an unbounded
        // scan walked tens of thousands of dead rows on every load (benches/HISTORY.md, change
        // 11). Rows: the snapshot (kind 0) if any, then the updates (kind 1) in order.
        // On SQLite many documents' newest updates are in a table of their own until the
        // writer moves them (migration 0005), and a move under way has copied some of
        // them into the log already: each row is read once.
        let sql = match self.pool {
            Pool::Postgres(_) => LOAD_POSTGRES,
            Pool::Sqlite(_) => LOAD_SQLITE,
        };
        let rows: Vec<(i32, i64, Vec<u8>)> =
            on_db!(self, p => sqlx::query_as(sql).bind(document_id).fetch_all(p).await)?;
        let mut state = StoredState {
            snapshot: None,
            updates: Vec::with_capacity(rows.len()),
        };
        for (kind, seq, data) in rows {
            if kind == 0 {
                state.snapshot = Some((data, seq));
            } else {
                state.updates.push((seq, data));
            }
        }
        Ok(state)
    }

    /// What the database holds of a document past update `after`: the snapshot if it
    /// covers more, and the updates after `after` (what a room that holds an unbroken
    /// run up to `after` lacks). One statement, as [`Store::load_document_state`].
    pub async fn load_document_state_after(&self, document_id: Uuid, after: i64) -> anyhow::Result<StoredState> {
        let sql = match self.pool {
            Pool::Postgres(_) => LOAD_AFTER_POSTGRES,
            Pool::Sqlite(_) => LOAD_AFTER_SQLITE,
        };
        let rows: Vec<(i32, i64, Vec<u8>)> =
            on_db!(self, p => sqlx::query_as(sql).bind(document_id).bind(after).fetch_all(p).await)?;
        let mut state = StoredState {
            snapshot: None,
            updates: Vec::with_capacity(rows.len()),
        };
        for (kind, seq, data) in rows {
            if kind == 0 {
                state.snapshot = Some((data, seq));
            } else {
                state.updates.push((seq, data));
            }
        }
        Ok(state)
    }

    /// The last sequence number given out for each of `documents` (PostgreSQL; what the
    /// rooms' probe compares with). Empty on SQLite, where this process is the only writer.
    pub async fn last_seqs(&self, documents: &[Uuid]) -> anyhow::Result<Vec<(Uuid, i64)>> {
        match &self.pool {
            Pool::Postgres(p) if !documents.is_empty() => Ok(sqlx::query_as(
                "select document_id, last_seq from document_seqs where document_id = any($1)",
            )
            .bind(documents)
            .fetch_all(p)
            .await?),
            _ => Ok(Vec::new()),
        }
    }

    /// Appends `updates` (of any documents) in one transaction: the group commit, one
    /// commit per batch whatever its size. Returns the sequence number each got, in
    /// order: per document the next ones after everything stored, in the order given.
    /// PostgreSQL gives them out in the database (migration 0007: several nodes may
    /// append to one document), in one statement taking the batch as arrays; on SQLite
    /// this process is the only writer and gives them out under the write turn, in
    /// multi-row inserts of up to 100 rows.
    pub async fn append_updates(&self, updates: &[NewUpdate<'_>]) -> anyhow::Result<Vec<i64>> {
        self.append_updates_on(&mut None, updates).await
    }

    /// [`Store::append_updates`] on the connection in `held`, or on one taken from the
    /// pool and left there for the next call. After an error `held` is emptied (the
    /// connection goes back for the pool's check). The write turn comes first, then
    /// the connection: a snapshot holding the turn may be waiting for one.
    pub async fn append_updates_on(
        &self,
        held: &mut Option<HeldConnection>,
        updates: &[NewUpdate<'_>],
    ) -> anyhow::Result<Vec<i64>> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let mut turn = self.write_turn().await;
        let mut conn = match held.take() {
            Some(c) => c,
            None => self.hold_connection().await?,
        };
        let result = self.append_updates_held(&mut conn, turn.as_deref_mut(), updates).await;
        if result.is_ok() {
            *held = Some(conn);
        }
        result
    }

    async fn append_updates_held(
        &self,
        conn: &mut HeldConnection,
        tail: Option<&mut LogTail>,
        updates: &[NewUpdate<'_>],
    ) -> anyhow::Result<Vec<i64>> {
        let created = now();
        let c = match &mut conn.held {
            Held::Postgres(c) => {
                // One statement for any batch, its rows as arrays: multi-row VALUES made
                // every batch size a statement of its own, parsed and planned again and
                // again by the database server (benches/HISTORY.md, change 29).
                let seqs: Vec<i64> = sqlx::query_scalar("select vellum_append_updates($1, $2, $3, $4)")
                    .bind(updates.iter().map(|u| u.document_id).collect::<Vec<_>>())
                    .bind(updates.iter().map(|u| u.data).collect::<Vec<_>>())
                    .bind(updates.iter().map(|u| u.author_id).collect::<Vec<_>>())
                    .bind(created)
                    .fetch_one(&mut **c)
                    .await?;
                anyhow::ensure!(
                    seqs.len() == updates.len(),
                    "the database numbered {} of {} updates",
                    seqs.len(),
                    updates.len()
                );
                return Ok(seqs);
            }
            Held::Sqlite(c) => c,
        };
        let tail = tail.context("an SQLite write without the write turn")?;
        know_tail(c, tail).await?;
        let (seqs, last) = next_seqs(c, tail, updates).await?;
        // A batch of one or two documents writes a page of the log per document either
        // way: straight into it, with nothing to move later.
        let direct = last.len() <= DIRECT_MAX_DOCUMENTS;
        if updates.len() <= ROWS_PER_STATEMENT {
            // One statement is atomic on its own: without BEGIN and COMMIT the batch costs
            // one round trip to SQLite's worker thread instead of three, with the same
            // single commit (BENCHMARKS.md, "fan-out").
            let sql = update_rows(updates.len(), direct);
            bind_updates(&sql, updates, &seqs, created).execute(&mut **c).await?;
        } else {
            let mut tx = sqlx::Connection::begin(&mut **c).await?;
            for (chunk, seqs) in updates.chunks(ROWS_PER_STATEMENT).zip(seqs.chunks(ROWS_PER_STATEMENT)) {
                let sql = update_rows(chunk.len(), direct);
                bind_updates(&sql, chunk, seqs, created).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
        if !direct {
            tail.rows += updates.len() as u64;
        }
        tail.last_seq.extend(last);
        if tail.last_seq.len() > LAST_SEQ_KEPT {
            // Forget the documents with no recent rows; each is read back from the
            // database at its next append.
            let recent: std::collections::HashSet<Uuid> =
                sqlx::query_scalar("select distinct document_id from document_updates_recent")
                    .fetch_all(&mut **c)
                    .await?
                    .into_iter()
                    .collect();
            tail.last_seq.retain(|d, _| recent.contains(d));
        }
        Ok(seqs)
    }

    /// Moves the update log's recent rows into `document_updates` on SQLite (migration
    /// 0005); nothing on PostgreSQL. A move copies the rows there were when it began,
    /// a range of documents at a time (about [`MOVE_ROWS`] rows, one statement each), then
    /// deletes them from the recent table in one statement: a step per call with
    /// `Fold::IfDue` or `Fold::Step` ([`Fold`]), so group commits go between the steps; a
    /// whole move (finishing one under way first) with `Fold::Any`. Rows a snapshot
    /// covers are not copied. Uses the connection in `held`, or one taken from the pool
    /// and left there (emptied after an error, as [`Store::append_updates_on`]).
    pub async fn fold_update_log_on(&self, held: &mut Option<HeldConnection>, when: Fold) -> anyhow::Result<Folded> {
        let Some(mut tail) = self.write_turn().await else {
            return Ok(Folded::default());
        };
        let due = |t: &LogTail| t.moving.is_some() || (t.rows > 0 && (when != Fold::IfDue || t.rows >= t.fold_at));
        let more = |t: &LogTail| t.moving.is_some() || t.rows > 0;
        if tail.known && !due(&tail) {
            return Ok(Folded {
                deleted: 0,
                more: more(&tail),
            });
        }
        let mut conn = match held.take() {
            Some(c) => c,
            None => self.hold_connection().await?,
        };
        let Held::Sqlite(c) = &mut conn.held else {
            anyhow::bail!("an SQLite write turn on PostgreSQL");
        };
        know_tail(c, &mut tail).await?;
        let mut deleted = 0;
        if !due(&tail) {
            *held = Some(conn);
            return Ok(Folded {
                deleted,
                more: more(&tail),
            });
        }
        match when {
            Fold::IfDue | Fold::Step => deleted += step(c, &mut tail).await?,
            Fold::Any => {
                // The move under way, if any, then one of every row there is now.
                while tail.moving.is_some() {
                    deleted += step(c, &mut tail).await?;
                }
                if tail.rows > 0 {
                    deleted += step(c, &mut tail).await?;
                    while tail.moving.is_some() {
                        deleted += step(c, &mut tail).await?;
                    }
                }
            }
        }
        *held = Some(conn);
        Ok(Folded {
            deleted,
            more: more(&tail),
        })
    }

    /// Rows in the update log's recent table (SQLite; 0 on PostgreSQL), for tests.
    #[doc(hidden)]
    pub async fn recent_update_rows(&self) -> anyhow::Result<i64> {
        Ok(match &self.pool {
            Pool::Sqlite(p) => {
                sqlx::query_scalar("select count(*) from document_updates_recent")
                    .fetch_one(p)
                    .await?
            }
            Pool::Postgres(_) => 0,
        })
    }

    /// [`Store::fold_update_log_on`] with any recent rows, on a pooled connection: the
    /// rows deleted from the recent table.
    pub async fn fold_update_log(&self) -> anyhow::Result<u64> {
        Ok(self.fold_update_log_on(&mut None, Fold::Any).await?.deleted)
    }

    /// Replaces the snapshot with `state` covering updates up to `seq`, and deletes
    /// those updates, in one transaction. The database guards the range, whichever node
    /// writes: a snapshot never moves backwards (one covering less than the stored one is
    /// not stored, and deletes nothing the stored one does not cover), and on PostgreSQL
    /// it cannot cover a sequence number not yet given out. That the state holds every
    /// update up to `seq` is the writer's part (a room covers only the unbroken run of
    /// updates it has applied: `collab::room`, `SeqLog`).
    pub async fn write_snapshot(&self, document_id: Uuid, state: &[u8], seq: i64) -> anyhow::Result<()> {
        // Even an empty Yjs document encodes to two bytes; nothing shorter is a state,
        // and storing it would delete the updates it claims to cover.
        anyhow::ensure!(state.len() >= 2, "refusing to store a {}-byte snapshot", state.len());
        let upsert = "insert into document_snapshots (document_id, state, seq, created_at)
                      values ($1, $2, $3, $4)
                      on conflict (document_id) do update
                      set state = excluded.state, seq = excluded.seq, created_at = excluded.created_at
                      where document_snapshots.seq < excluded.seq";
        let delete = "delete from document_updates where document_id = $1 \
                      and seq <= (select seq from document_snapshots where document_id = $1)";
        let _turn = self.write_turn().await;
        on_db!(self, p => {
            let mut tx = p.begin().await?;
            if matches!(self.pool, Pool::Postgres(_)) {
                let given: i64 = sqlx::query_scalar("select coalesce(max(last_seq), 0) from document_seqs where document_id = $1")
                    .bind(document_id)
                    .fetch_one(&mut *tx)
                    .await?;
                anyhow::ensure!(seq <= given, "a snapshot covering update {seq} of {document_id}, of which only {given} were given out");
            }
            sqlx::query(upsert).bind(document_id).bind(state).bind(seq).bind(now()).execute(&mut *tx).await?;
            sqlx::query(delete).bind(document_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Number and total size of logged updates (tests and metrics).
    pub async fn update_log_stats(&self, document_id: Uuid) -> anyhow::Result<(i64, i64)> {
        let sql = match self.pool {
            Pool::Postgres(_) => {
                "select count(*), coalesce(sum(length(data)), 0) from document_updates where document_id = $1"
            }
            Pool::Sqlite(_) => {
                "select count(*), coalesce(sum(length(data)), 0) from \
                 (select data from document_updates where document_id = $1 union all \
                  select data from document_updates_recent r where document_id = $1 and seq > \
                  (select coalesce(max(seq), 0) from document_snapshots where document_id = $1) \
                  and not exists (select 1 from document_updates u where u.document_id = $1 and u.seq = r.seq))"
            }
        };
        let (n, bytes): (i64, i64) = on_db!(self, p => sqlx::query_as(sql).bind(document_id).fetch_one(p).await)?;
        Ok((n, bytes))
    }

    pub async fn insert_session(&self, row: &SessionRow) -> anyhow::Result<()> {
        self.write_sessions(std::slice::from_ref(row), &[]).await
    }

    pub async fn delete_session(&self, id: Uuid) -> anyhow::Result<()> {
        self.write_sessions(&[], &[id]).await
    }

    /// Inserts `inserts` and deletes the sessions `deletes` names, in one transaction:
    /// one commit for a whole batch of connects and disconnects.
    pub async fn write_sessions(&self, inserts: &[SessionRow], deletes: &[Uuid]) -> anyhow::Result<()> {
        if inserts.is_empty() && deletes.is_empty() {
            return Ok(());
        }
        let _turn = self.write_turn().await;
        match &self.pool {
            Pool::Postgres(p) => {
                // As the group commit: a batch of any size is one statement over arrays.
                let mut tx = p.begin().await?;
                if !inserts.is_empty() {
                    sqlx::query(
                        "insert into active_sessions (id, node_id, user_id, document_id, connected_at, heartbeat_at) \
                         select * from unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::timestamptz[], $6::timestamptz[])",
                    )
                    .bind(inserts.iter().map(|r| r.id).collect::<Vec<_>>())
                    .bind(inserts.iter().map(|r| r.node_id.as_str()).collect::<Vec<_>>())
                    .bind(inserts.iter().map(|r| r.user_id).collect::<Vec<_>>())
                    .bind(inserts.iter().map(|r| r.document_id).collect::<Vec<_>>())
                    .bind(inserts.iter().map(|r| r.connected_at).collect::<Vec<_>>())
                    .bind(inserts.iter().map(|r| r.heartbeat_at).collect::<Vec<_>>())
                    .execute(&mut *tx)
                    .await?;
                }
                if !deletes.is_empty() {
                    sqlx::query("delete from active_sessions where id = any($1)")
                        .bind(deletes)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
            Pool::Sqlite(p) => {
                let mut tx = p.begin().await?;
                for chunk in power_of_two_chunks(inserts) {
                    let sql = sqlite_rows(
                        "insert into active_sessions (id, node_id, user_id, document_id, connected_at, heartbeat_at) values ",
                        chunk.len(),
                        6,
                    );
                    let mut q = sqlx::query(&sql);
                    for r in chunk {
                        q = q
                            .bind(r.id)
                            .bind(&r.node_id)
                            .bind(r.user_id)
                            .bind(r.document_id)
                            .bind(r.connected_at)
                            .bind(r.heartbeat_at);
                    }
                    q.execute(&mut *tx).await?;
                }
                for chunk in power_of_two_chunks(deletes) {
                    let sql = format!(
                        "delete from active_sessions where id in ({})",
                        vec!["?"; chunk.len()].join(", ")
                    );
                    let mut q = sqlx::query(&sql);
                    for id in chunk {
                        q = q.bind(id);
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Refreshes the heartbeat of every session of this node.
    pub async fn heartbeat_sessions(&self, node_id: &str) -> anyhow::Result<()> {
        let sql = "update active_sessions set heartbeat_at = $1 where node_id = $2";
        let _turn = self.write_turn().await;
        on_db!(self, p => sqlx::query(sql).bind(now()).bind(node_id).execute(p).await.map(drop))?;
        Ok(())
    }

    /// Clears sessions of this node (at start: left by a previous run) and of any node
    /// whose heartbeat is older than `stale_before` (a node that died).
    pub async fn clear_stale_sessions(&self, node_id: &str, stale_before: DateTime<Utc>) -> anyhow::Result<u64> {
        let sql = "delete from active_sessions where node_id = $1 or heartbeat_at < $2";
        let _turn = self.write_turn().await;
        let n = on_db!(self, p => sqlx::query(sql).bind(node_id).bind(stale_before).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n)
    }

    /// Clears every session of this node (at shutdown).
    pub async fn clear_node_sessions(&self, node_id: &str) -> anyhow::Result<u64> {
        let sql = "delete from active_sessions where node_id = $1";
        let _turn = self.write_turn().await;
        Ok(on_db!(self, p => sqlx::query(sql).bind(node_id).execute(p).await.map(|r| r.rows_affected()))?)
    }

    pub async fn sessions_of(&self, document_id: Uuid) -> anyhow::Result<Vec<SessionRow>> {
        let sql = "select id, node_id, user_id, document_id, connected_at, heartbeat_at
                   from active_sessions where document_id = $1 order by connected_at";
        Ok(on_db!(self, p => sqlx::query_as::<_, SessionRow>(sql).bind(document_id).fetch_all(p).await)?)
    }
}

/// How much [`Store::fold_update_log_on`] moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// A step, of a move under way or of one begun once there are [`FOLD_AT_ROWS`]
    /// recent rows (after each group commit).
    IfDue,
    /// A step, of a move under way or of one begun if there are any (the writer idle).
    Step,
    /// A whole move of every recent row (at start, tests).
    Any,
}

/// What [`Store::fold_update_log_on`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Folded {
    /// Rows deleted from the recent table (a move's last step).
    pub deleted: u64,
    /// Whether a move is under way or recent rows are left.
    pub more: bool,
}

/// One step of a move of the recent rows (beginning one if none is under way): the
/// rows up to the move's end, of the next range of documents, copied into
/// `document_updates`; after the last range, those rows deleted from the recent table.
/// Returns the rows deleted. After an error the move begins again from the start, once
/// as many rows more have come (not after every commit); what it had copied is skipped.
async fn step(c: &mut sqlx::SqliteConnection, tail: &mut LogTail) -> anyhow::Result<u64> {
    let result = async {
        if tail.moving.is_none() {
            tail.moving = Some(plan_move(c).await?);
        }
        let Some(moving) = tail.moving.as_mut() else {
            return Ok(0);
        };
        if let Some(((first_doc, first_seq), (last_doc, last_seq))) = moving.ranges.pop() {
            // One statement: atomic on its own. The rows of the range not covered by a
            // snapshot nor copied yet (by a move that stopped midway); sorted, so each
            // document's page of the log is reached once, in key order.
            sqlx::query(
                "insert into document_updates (document_id, seq, data, author_id, created_at) \
                 select r.document_id, r.seq, r.data, r.author_id, r.created_at from document_updates_recent r \
                 where r.id <= ?1 and (r.document_id, r.seq) >= (?2, ?3) and (r.document_id, r.seq) <= (?4, ?5) \
                 and r.seq > (select coalesce(max(s.seq), 0) from document_snapshots s where s.document_id = r.document_id) \
                 and not exists (select 1 from document_updates u where u.document_id = r.document_id and u.seq = r.seq) \
                 order by r.document_id, r.seq",
            )
            .bind(moving.upto)
            .bind(first_doc)
            .bind(first_seq)
            .bind(last_doc)
            .bind(last_seq)
            .execute(&mut *c)
            .await?;
            return Ok(0);
        }
        let deleted = sqlx::query("delete from document_updates_recent where id <= ?1")
            .bind(moving.upto)
            .execute(&mut *c)
            .await?
            .rows_affected();
        tail.moving = None;
        tail.rows = tail.rows.saturating_sub(deleted);
        tail.fold_at = FOLD_AT_ROWS;
        anyhow::Ok(deleted)
    }
    .await;
    result.map_err(|e| {
        tail.moving = None;
        tail.fold_at = tail.rows + FOLD_AT_ROWS;
        e.context("moving the update log's recent rows")
    })
}

/// A move's plan: the recent rows there are now, in ranges of (document, sequence
/// number) of about [`MOVE_ROWS`] rows, last range first. A document's recent rows have
/// consecutive sequence numbers, but for those its small group commits wrote straight
/// into the log, so one with more rows than that is split by sequence number.
async fn plan_move(c: &mut sqlx::SqliteConnection) -> anyhow::Result<Moving> {
    let upto: i64 = sqlx::query_scalar("select coalesce(max(id), 0) from document_updates_recent")
        .fetch_one(&mut *c)
        .await?;
    let docs: Vec<(Uuid, i64, i64, i64)> = sqlx::query_as(
        "select document_id, min(seq), max(seq), count(*) from document_updates_recent where id <= ?1 \
         group by document_id order by document_id",
    )
    .bind(upto)
    .fetch_all(&mut *c)
    .await?;
    let step = MOVE_ROWS as i64;
    let mut ranges: Vec<((Uuid, i64), (Uuid, i64))> = Vec::new();
    let mut in_range = step; // none open
    for (doc, first, last, rows) in docs {
        if in_range + rows <= step
            && let Some(range) = ranges.last_mut()
        {
            range.1 = (doc, last);
            in_range += rows;
            continue;
        }
        let mut from = first;
        while last - from >= step {
            ranges.push(((doc, from), (doc, from + step - 1)));
            from += step;
        }
        ranges.push(((doc, from), (doc, last)));
        in_range = last - from + 1;
    }
    ranges.reverse();
    Ok(Moving { upto, ranges })
}

/// Reads the recent rows' count and last sequence numbers, once per process.
async fn know_tail(c: &mut sqlx::SqliteConnection, tail: &mut LogTail) -> anyhow::Result<()> {
    if tail.known {
        return Ok(());
    }
    let rows: Vec<(Uuid, i64, i64)> =
        sqlx::query_as("select document_id, max(seq), count(*) from document_updates_recent group by document_id")
            .fetch_all(&mut *c)
            .await?;
    tail.rows = rows.iter().map(|(_, _, n)| *n as u64).sum();
    tail.last_seq = rows.into_iter().map(|(d, seq, _)| (d, seq)).collect();
    tail.fold_at = FOLD_AT_ROWS;
    tail.known = true;
    Ok(())
}

/// Gives each update the next sequence number of its document, past the last one stored
/// (read from the database for documents the tail does not know), in order within the
/// batch; returns them, and each document's last one after the batch (for the tail
/// once the batch is stored).
async fn next_seqs(
    c: &mut sqlx::SqliteConnection,
    tail: &LogTail,
    updates: &[NewUpdate<'_>],
) -> anyhow::Result<(Vec<i64>, HashMap<Uuid, i64>)> {
    let mut last: HashMap<Uuid, i64> = HashMap::new();
    let mut unknown: Vec<Uuid> = updates
        .iter()
        .map(|u| u.document_id)
        .filter(|d| !tail.last_seq.contains_key(d))
        .collect();
    unknown.sort_unstable();
    unknown.dedup();
    // The last update stored, or what the snapshot covers (its updates are deleted).
    for chunk in power_of_two_chunks(&unknown) {
        let sql = format!(
            "with ids(id) as (values {}) select id, max( \
             coalesce((select max(seq) from document_updates u where u.document_id = ids.id), 0), \
             coalesce((select seq from document_snapshots s where s.document_id = ids.id), 0)) from ids",
            vec!["(?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query_as::<_, (Uuid, i64)>(&sql);
        for id in chunk {
            q = q.bind(id);
        }
        last.extend(q.fetch_all(&mut *c).await?);
    }
    let mut seqs = Vec::with_capacity(updates.len());
    for u in updates {
        let before = last
            .get(&u.document_id)
            .or_else(|| tail.last_seq.get(&u.document_id))
            .copied()
            .unwrap_or(0);
        seqs.push(before + 1);
        last.insert(u.document_id, before + 1);
    }
    Ok((seqs, last))
}

/// SQLite's multi-row insert of `rows` updates, into the recent rows (migration 0005)
/// or, `direct`, into the log proper.
fn update_rows(rows: usize, direct: bool) -> String {
    sqlite_rows(
        if direct {
            "insert into document_updates (document_id, seq, data, author_id, created_at) values "
        } else {
            "insert into document_updates_recent (document_id, seq, data, author_id, created_at) values "
        },
        rows,
        5,
    )
}

/// `updates` bound to `sql` (from [`update_rows`]), all stored at `created`.
fn bind_updates<'q>(
    sql: &'q str,
    updates: &'q [NewUpdate<'q>],
    seqs: &[i64],
    created: DateTime<Utc>,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    let mut q = sqlx::query(sql);
    for (u, seq) in updates.iter().zip(seqs) {
        q = q
            .bind(u.document_id)
            .bind(*seq)
            .bind(u.data)
            .bind(u.author_id)
            .bind(created);
    }
    q
}

/// `rows` in runs whose lengths are powers of two, largest first, at most [`MAX_RUN`]
/// (100 → 64, 32, 4): seven statement texts for any batch of session rows, where a
/// statement per batch size kept up to a hundred (each text is prepared and kept on
/// every pooled connection that runs it; benches/HISTORY.md, change 29). Not for the group
/// commit: there, several statements cost a transaction's round trips, and the
/// throughput ceiling fell by 8%.
fn power_of_two_chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let (run, rest) = rows.split_at(1 << rows.len().min(MAX_RUN).ilog2());
        rows = rest;
        Some(run)
    })
}

/// `head` followed by `rows` tuples of `columns` anonymous parameters, `(?, ?), (?, ?)`
/// for 2 × 2: SQLite's multi-row inserts (PostgreSQL takes arrays). SQLite looks a
/// numbered parameter's name up by walking a list of all of them, and sqlx asks for
/// every parameter's name when binding: with 500 parameters that walk took 8% of the
/// server's time while a big document loaded (benches/HISTORY.md, change 14). Anonymous `?`
/// have no names to walk.
fn sqlite_rows(head: &str, rows: usize, columns: usize) -> String {
    let tuple = format!("({})", vec!["?"; columns].join(", "));
    let mut sql = String::from(head);
    sql.push_str(&vec![tuple.as_str(); rows].join(","));
    sql
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn runs_are_powers_of_two_largest_first() {
        let sizes = |n: usize| power_of_two_chunks(&vec![0u8; n]).map(<[u8]>::len).collect::<Vec<_>>();
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(100), [64, 32, 4]);
        assert_eq!(sizes(150), [64, 64, 16, 4, 2]);
        assert_eq!(sizes(127), [64, 32, 16, 8, 4, 2, 1]);
    }

    /// On SQLite a group commit waits for the write turn another write holds, and goes
    /// through the moment it is released (instead of meeting SQLite's busy handler).
    #[tokio::test]
    async fn sqlite_writes_take_turns() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&Config::defaults().database, dir.path()).await.unwrap();
        store.migrate().await.unwrap();
        let owner = store
            .create_user("o@example.com", "O", "not-a-hash", None, crate::auth::Role::Author)
            .await
            .unwrap()
            .unwrap();
        let doc = store.create_document(owner.id, "T", "t").await.unwrap().unwrap().id;
        let turn = store.write_turn().await.expect("SQLite has write turns");
        let append = tokio::spawn({
            let store = store.clone();
            async move {
                let row = NewUpdate {
                    document_id: doc,
                    data: &[0, 0],
                    author_id: None,
                };
                store.append_updates(&[row]).await
            }
        });
        let waited = tokio::time::timeout(std::time::Duration::from_millis(100), async {
            while !append.is_finished() {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(waited.is_err(), "the append went ahead of the held turn");
        drop(turn);
        append.await.unwrap().unwrap();
        assert_eq!(store.update_log_stats(doc).await.unwrap().0, 1);
    }
}
