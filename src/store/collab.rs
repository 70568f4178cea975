//! The CRDT log: snapshots, incremental updates, and active sessions.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Held, HeldConnection, Pool, Store, now, on_db};

/// One update to append, as part of a group commit.
#[derive(Clone, Copy)]
pub struct NewUpdate<'a> {
    pub document_id: Uuid,
    pub seq: i64,
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

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub node_id: String,
    pub user_id: Option<Uuid>,
    pub document_id: Uuid,
    pub connected_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

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
        // scan walked tens of thousands of dead rows on every load (BENCHMARKS.md, change
        // 11). Rows: the snapshot (kind 0) if any, then the updates (kind 1) in order.
        let sql = "select 0 as kind, seq, state as data from document_snapshots where document_id = $1 \
             union all \
             select 1 as kind, seq, data from document_updates where document_id = $1 and seq > \
             (select coalesce(max(seq), 0) from document_snapshots where document_id = $1) \
             order by kind, seq";
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

    /// Appends `updates` (of any documents) in one transaction: the group commit, one
    /// commit per batch whatever its size. PostgreSQL takes the whole batch in one
    /// statement, as arrays; SQLite in multi-row inserts of up to 100 rows.
    pub async fn append_updates(&self, updates: &[NewUpdate<'_>]) -> anyhow::Result<()> {
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
    ) -> anyhow::Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let _turn = self.write_turn().await;
        let mut conn = match held.take() {
            Some(c) => c,
            None => self.hold_connection().await?,
        };
        let result = self.append_updates_held(&mut conn, updates).await;
        if result.is_ok() {
            *held = Some(conn);
        }
        result
    }

    async fn append_updates_held(&self, conn: &mut HeldConnection, updates: &[NewUpdate<'_>]) -> anyhow::Result<()> {
        let created = now();
        let c = match &mut conn.held {
            Held::Postgres(c) => {
                // One statement for any batch, its rows as arrays: multi-row VALUES made
                // every batch size a statement of its own, parsed and planned again and
                // again by the database server (BENCHMARKS.md, change 29).
                let sql = "insert into document_updates (document_id, seq, data, author_id, created_at) \
                           select d, s, x, a, $5 from unnest($1::uuid[], $2::int8[], $3::bytea[], $4::uuid[]) as t(d, s, x, a)";
                sqlx::query(sql)
                    .bind(updates.iter().map(|u| u.document_id).collect::<Vec<_>>())
                    .bind(updates.iter().map(|u| u.seq).collect::<Vec<_>>())
                    .bind(updates.iter().map(|u| u.data).collect::<Vec<_>>())
                    .bind(updates.iter().map(|u| u.author_id).collect::<Vec<_>>())
                    .bind(created)
                    .execute(&mut **c)
                    .await?;
                return Ok(());
            }
            Held::Sqlite(c) => c,
        };
        if updates.len() <= ROWS_PER_STATEMENT {
            // One statement is atomic on its own: without BEGIN and COMMIT the batch costs
            // one round trip to SQLite's worker thread instead of three, with the same
            // single commit (BENCHMARKS.md, "fan-out").
            let sql = update_rows(updates.len());
            bind_updates(&sql, updates, created).execute(&mut **c).await?;
            return Ok(());
        }
        let mut tx = sqlx::Connection::begin(&mut **c).await?;
        for chunk in updates.chunks(ROWS_PER_STATEMENT) {
            let sql = update_rows(chunk.len());
            bind_updates(&sql, chunk, created).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the snapshot with `state` covering updates up to `seq`, and deletes
    /// those updates, in one transaction. A snapshot never moves backwards.
    pub async fn write_snapshot(&self, document_id: Uuid, state: &[u8], seq: i64) -> anyhow::Result<()> {
        // Even an empty Yjs document encodes to two bytes; nothing shorter is a state,
        // and storing it would delete the updates it claims to cover.
        anyhow::ensure!(state.len() >= 2, "refusing to store a {}-byte snapshot", state.len());
        let upsert = "insert into document_snapshots (document_id, state, seq, created_at)
                      values ($1, $2, $3, $4)
                      on conflict (document_id) do update
                      set state = excluded.state, seq = excluded.seq, created_at = excluded.created_at
                      where document_snapshots.seq < excluded.seq";
        let delete = "delete from document_updates where document_id = $1 and seq <= $2";
        let _turn = self.write_turn().await;
        on_db!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(upsert).bind(document_id).bind(state).bind(seq).bind(now()).execute(&mut *tx).await?;
            sqlx::query(delete).bind(document_id).bind(seq).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Number and total size of logged updates (tests and metrics).
    pub async fn update_log_stats(&self, document_id: Uuid) -> anyhow::Result<(i64, i64)> {
        let sql = "select count(*), coalesce(sum(length(data)), 0) from document_updates where document_id = $1";
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

/// SQLite's multi-row insert of `rows` updates.
fn update_rows(rows: usize) -> String {
    sqlite_rows(
        "insert into document_updates (document_id, seq, data, author_id, created_at) values ",
        rows,
        5,
    )
}

/// `updates` bound to `sql` (from [`update_rows`]), all stored at `created`.
fn bind_updates<'q>(
    sql: &'q str,
    updates: &'q [NewUpdate<'q>],
    created: DateTime<Utc>,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    let mut q = sqlx::query(sql);
    for u in updates {
        q = q
            .bind(u.document_id)
            .bind(u.seq)
            .bind(u.data)
            .bind(u.author_id)
            .bind(created);
    }
    q
}

/// `rows` in runs whose lengths are powers of two, largest first, at most [`MAX_RUN`]
/// (100 → 64, 32, 4): seven statement texts for any batch of session rows, where a
/// statement per batch size kept up to a hundred (each text is prepared and kept on
/// every pooled connection that runs it; BENCHMARKS.md, change 29). Not for the group
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
/// server's time while a big document loaded (BENCHMARKS.md, change 14). Anonymous `?`
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
                    seq: 1,
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
