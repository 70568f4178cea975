//! The database's health as the server sees it (is it writable?), and the rows
//! `vellum doctor --repair` sets aside from a damaged document.

use std::sync::atomic::Ordering;

use uuid::Uuid;

use super::{Pool, Store, now, on_db};

/// How much `probe_write` writes: more than a busy group commit.
pub const PROBE_BYTES: usize = 256 * 1024;

/// A stored piece of a document's state, as `vellum doctor` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredPiece {
    /// The snapshot, which covers updates up to this sequence number.
    Snapshot(i64),
    /// The update with this sequence number.
    Update(i64),
}

impl Store {
    /// Whether the last group commit failed for want of the database (see
    /// [`crate::error::database_unavailable`]).
    pub fn writes_failing(&self) -> bool {
        self.writes_failing.load(Ordering::Relaxed)
    }

    /// Recorded by the group commit after each batch.
    pub fn note_writes_failing(&self, failing: bool) {
        self.writes_failing.store(failing, Ordering::Relaxed);
    }

    /// A real write (this node's heartbeat row), for `/readyz` once writes have failed:
    /// succeeds only when the database takes writes again. Clears
    /// [`Store::writes_failing`] when it does. The row carries [`PROBE_BYTES`] for the
    /// moment (then cleared): on a full disk SQLite still fits a small write into log
    /// space it already has, while the group commit's next batch fails.
    pub async fn probe_write(&self, node_id: &str) -> anyhow::Result<()> {
        let write = "insert into node_heartbeats (node_id, beat_at, probe) values ($1, $2, $3)
                     on conflict (node_id) do update set beat_at = excluded.beat_at, probe = excluded.probe";
        let clear = "update node_heartbeats set probe = null where node_id = $1";
        // Bytes that do not compress (PostgreSQL compresses large values).
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let probe: Vec<u8> = (0..PROBE_BYTES)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        {
            let _turn = self.write_turn().await;
            on_db!(self, p => sqlx::query(write).bind(node_id).bind(now()).bind(&probe).execute(p).await.map(|_| ()))?;
            on_db!(self, p => sqlx::query(clear).bind(node_id).execute(p).await.map(|_| ()))?;
        }
        self.note_writes_failing(false);
        Ok(())
    }

    /// Every document's id, deleted ones included, oldest first (what `vellum doctor`
    /// walks).
    pub async fn all_document_ids(&self) -> anyhow::Result<Vec<Uuid>> {
        let sql = "select id from documents order by created_at, id";
        Ok(on_db!(self, p => sqlx::query_scalar(sql).fetch_all(p).await)?)
    }

    /// Moves one stored piece of a document's state into `set_aside_rows` (kept, never
    /// deleted), in one transaction: `data` is what was read and found damaged. A
    /// snapshot is replaced by `replacement` (a state that covers as much as it can,
    /// such as the newest version's) or, without one, removed.
    pub async fn set_aside(
        &self,
        document_id: Uuid,
        piece: StoredPiece,
        data: &[u8],
        reason: &str,
        replacement: Option<&[u8]>,
    ) -> anyhow::Result<()> {
        let (kind, seq) = match piece {
            StoredPiece::Snapshot(seq) => ("snapshot", seq),
            StoredPiece::Update(seq) => ("update", seq),
        };
        let keep = "insert into set_aside_rows (document_id, kind, seq, data, reason, set_aside_at)
                    values ($1, $2, $3, $4, $5, $6)";
        let sqlite = matches!(self.pool, Pool::Sqlite(_));
        let _turn = self.write_turn().await;
        on_db!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(keep)
                .bind(document_id)
                .bind(kind)
                .bind(seq)
                .bind(data)
                .bind(reason)
                .bind(now())
                .execute(&mut *tx)
                .await?;
            match (piece, replacement) {
                (StoredPiece::Update(seq), _) => {
                    sqlx::query("delete from document_updates where document_id = $1 and seq = $2")
                        .bind(document_id)
                        .bind(seq)
                        .execute(&mut *tx)
                        .await?;
                    if sqlite {
                        sqlx::query("delete from document_updates_recent where document_id = $1 and seq = $2")
                            .bind(document_id)
                            .bind(seq)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                (StoredPiece::Snapshot(_), Some(state)) => {
                    sqlx::query("update document_snapshots set state = $2, created_at = $3 where document_id = $1")
                        .bind(document_id)
                        .bind(state)
                        .bind(now())
                        .execute(&mut *tx)
                        .await?;
                }
                (StoredPiece::Snapshot(_), None) => {
                    sqlx::query("delete from document_snapshots where document_id = $1")
                        .bind(document_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// How many rows have been set aside for a document (tests, `vellum doctor`).
    pub async fn set_aside_count(&self, document_id: Uuid) -> anyhow::Result<i64> {
        let sql = "select count(*) from set_aside_rows where document_id = $1";
        Ok(on_db!(self, p => sqlx::query_scalar(sql).bind(document_id).fetch_one(p).await)?)
    }

    /// Damages a stored piece on purpose (tests of `vellum doctor` and the quarantine):
    /// overwrites its bytes with `data`.
    #[doc(hidden)]
    pub async fn overwrite_stored_piece(
        &self,
        document_id: Uuid,
        piece: StoredPiece,
        data: &[u8],
    ) -> anyhow::Result<u64> {
        let sqlite = matches!(self.pool, Pool::Sqlite(_));
        let _turn = self.write_turn().await;
        on_db!(self, p => {
            let n = match piece {
                StoredPiece::Snapshot(_) => {
                    sqlx::query("update document_snapshots set state = $2 where document_id = $1")
                        .bind(document_id)
                        .bind(data)
                        .execute(p)
                        .await?
                        .rows_affected()
                }
                StoredPiece::Update(seq) => {
                    // On SQLite an update may still be in the recent rows (migration 0005).
                    let tables: &[&str] = if sqlite {
                        &["document_updates", "document_updates_recent"]
                    } else {
                        &["document_updates"]
                    };
                    let mut n = 0;
                    for table in tables {
                        n += sqlx::query(&format!("update {table} set data = $3 where document_id = $1 and seq = $2"))
                            .bind(document_id)
                            .bind(seq)
                            .bind(data)
                            .execute(p)
                            .await?
                            .rows_affected();
                    }
                    n
                }
            };
            Ok(n)
        })
    }
}
