//! Storage: the only module that knows SQL.
//!
//! One [`Store`] over either of two real backends, chosen by the URL scheme:
//! SQLite (the embedded default) and PostgreSQL. The schema is the same in both
//! (see `migrations/`), so each query is written once and compiled against both
//! drivers by [`on_db!`]; where the SQL differs, a method matches on the backend.
//! This keeps one implementation per query instead of two copies that drift.

mod collab;
mod documents;
mod health;
mod plugins;
mod search;
mod tokens;
mod users;
mod versions;

pub use collab::{FOLD_AT_ROWS, Fold, Folded, MOVE_ROWS, NewUpdate, SessionRow, StoredState};
pub use documents::{CursorKey, DocumentPage, ListQuery, MetadataChange, OrderField, UpdateOutcome};
pub use health::StoredPiece;
pub use plugins::PluginStateRow;
pub use search::{DocumentMeta, VersionText};
pub use versions::{NewVersion, Version};

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::config::{self, DatabaseConfig};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// SQLite lets one connection write at a time, and a writer that finds the lock
    /// taken sleeps in SQLite's busy handler (1, 2, 5, 10, ... ms) before it retries.
    /// The collaboration engine's writes (group commits, snapshots, session rows) take
    /// turns here instead, woken the moment the previous one ends (benches/HISTORY.md,
    /// change 15). Unused on PostgreSQL, which locks rows. The turn also guards what
    /// this process knows of the update log's recent rows ([`collab::LogTail`]).
    write_turns: Arc<tokio::sync::Mutex<collab::LogTail>>,
    /// SQLite: the page cache (KiB) of a connection taken for group commits, and the one
    /// it goes back to (`database.sqlite_commit_cache_kib`, `sqlite_cache_kib`).
    commit_cache: Option<(u32, u32)>,
    /// SQLite: the database file (`None` in memory, and on PostgreSQL).
    sqlite_file: Option<std::path::PathBuf>,
    /// SQLite: the lock that says a server is using the database
    /// ([`Store::lock_for_serving`]), held until [`Store::close`].
    serving: Arc<std::sync::Mutex<Option<std::fs::File>>>,
    /// Set once [`Store::migrate`] has run: from then on a new PostgreSQL connection is
    /// warmed up ([`warm_up`]) before its first use. Not before: a migration that changed
    /// a column would leave a statement prepared earlier failing ("cached plan must not
    /// change result type").
    migrated: Arc<AtomicBool>,
    /// The group commit last failed because the database could not be used (it is down,
    /// locked or full): `/readyz` then needs a real write ([`Store::probe_write`]) to
    /// say ready again, since reads may work while writes do not.
    writes_failing: Arc<AtomicBool>,
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A pooled connection kept by its holder across several writes
/// ([`Store::hold_connection`]); back to the pool when dropped. One taken with
/// [`Store::hold_commit_connection`] has a larger page cache on SQLite: give it back
/// with [`Store::release`], which restores the cache; dropped otherwise, it is closed
/// rather than left in the pool with the larger cache.
pub struct HeldConnection {
    held: Held,
    /// Its page cache is the commit cache, to be restored before it is pooled again.
    enlarged: bool,
}

impl Drop for HeldConnection {
    fn drop(&mut self) {
        if let (true, Held::Sqlite(c)) = (self.enlarged, &mut self.held) {
            c.close_on_drop();
        }
    }
}

enum Held {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `$body` with `$pool` bound to the concrete pool, once per backend.
/// The body is type-checked against both drivers, so a query that does not
/// work on one of them fails to compile or fails the shared test suite.
macro_rules! on_db {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_db;

/// Pool sizes when `database.max_connections` is 0 (automatic). SQLite lets one
/// connection write at a time, and each of its connections lives in this process with a
/// worker thread and a page cache: past a few, they add memory and no throughput
/// (BENCHMARKS.md, "many documents").
const SQLITE_POOL: u32 = 4;
const PG_POOL: u32 = 10;

/// A pooled PostgreSQL connection idle at least this long is pinged before it is used,
/// and replaced if the server has dropped it (a restart, a failover, a proxy's idle
/// timeout). Busier connections skip the round trip; if the server goes away between
/// two of their queries, the next query on each fails and the pool opens a new one.
pub const PG_PING_AFTER_IDLE: Duration = Duration::from_secs(1);

fn pool_size(configured: u32, automatic: u32) -> u32 {
    if configured == 0 { automatic } else { configured }
}

/// Runs on a new PostgreSQL connection what every connect to a document asks of the
/// database (its user, the document with the user's grant, the room's load), each for a
/// nil id that matches nothing. The first run of a statement on a connection costs about
/// 2 ms more than the next: sqlx prepares it, and the new backend fills its catalog
/// caches. Without this, the first opens of documents after a start, and after the pool
/// replaces a connection (`max_lifetime`, 30 minutes), paid it (benches/HISTORY.md, change
/// 45). Errors are left to the statements' real uses.
async fn warm_up(conn: &mut PgConnection) {
    let nil = uuid::Uuid::nil();
    let started = std::time::Instant::now();
    let user = sqlx::query(&users::user_by_id_sql())
        .bind(nil)
        .fetch_optional(&mut *conn)
        .await;
    let document = sqlx::query(&documents::document_where_sql("d.id = $1"))
        .bind(nil)
        .bind(None::<uuid::Uuid>)
        .fetch_optional(&mut *conn)
        .await;
    let load = sqlx::query(collab::LOAD_POSTGRES).bind(nil).fetch_all(&mut *conn).await;
    let failed = [user.err(), document.err(), load.err()].into_iter().flatten().next();
    tracing::debug!(took = ?started.elapsed(), error = ?failed, "warmed up a PostgreSQL connection");
}

impl Store {
    /// Connects to `database.url` (empty: SQLite at `<data_dir>/vellum.db`).
    /// Does not migrate; call [`Store::migrate`].
    pub async fn connect(db: &DatabaseConfig, data_dir: &std::path::Path) -> anyhow::Result<Self> {
        let url = db.url.expose();
        let migrated = Arc::new(AtomicBool::new(false));
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url).context("invalid PostgreSQL URL")?;
            let pool = PgPoolOptions::new()
                .max_connections(pool_size(db.max_connections, PG_POOL))
                // sqlx pings every pooled connection before handing it out, in case the
                // server went away: a round trip before every query, each group commit's
                // included (benches/HISTORY.md, change 31). Only a connection left idle for a
                // while is pinged now; one used moments ago is as good as its last query.
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= PG_PING_AFTER_IDLE {
                            conn.ping().await?;
                        }
                        Ok(true)
                    })
                })
                .after_connect({
                    let migrated = migrated.clone();
                    move |conn, _| {
                        let migrated = migrated.load(Ordering::Acquire);
                        Box::pin(async move {
                            if migrated {
                                warm_up(conn).await;
                            }
                            Ok(())
                        })
                    }
                })
                .acquire_timeout(Duration::from_millis(db.busy_timeout_ms.max(1000)))
                .connect_with(opts)
                .await
                .context("connecting to PostgreSQL")?;
            return Ok(Self {
                pool: Pool::Postgres(pool),
                write_turns: Arc::default(),
                commit_cache: None,
                sqlite_file: None,
                serving: Arc::default(),
                migrated,
                writes_failing: Arc::default(),
            });
        }
        let opts = if url.is_empty() {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("creating data directory {}", data_dir.display()))?;
            SqliteConnectOptions::new().filename(data_dir.join("vellum.db"))
        } else if url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url).context("invalid SQLite URL")?
        } else {
            anyhow::bail!("database.url must start with postgres://, postgresql:// or sqlite:");
        };
        let synchronous = match db.sqlite_synchronous {
            config::SqliteSynchronous::Full => SqliteSynchronous::Full,
            config::SqliteSynchronous::Normal => SqliteSynchronous::Normal,
        };
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .foreign_keys(true)
            .pragma("cache_size", format!("-{}", db.sqlite_cache_kib))
            .busy_timeout(Duration::from_millis(db.busy_timeout_ms));
        let file = opts.get_filename().to_path_buf();
        let pool = SqlitePoolOptions::new()
            .max_connections(pool_size(db.max_connections, SQLITE_POOL))
            // sqlx pings a pooled connection before handing it out, in case its server
            // went away; an SQLite connection is a handle in this process and cannot go
            // stale, so the ping would only cost a round trip to its worker thread.
            .test_before_acquire(false)
            .after_release(|conn, _| Box::pin(sqlite_outside_transaction(conn)))
            .connect_with(opts)
            .await
            .context("opening SQLite database")?;
        let commit_cache = (db.sqlite_commit_cache_kib != 0 && db.sqlite_commit_cache_kib != db.sqlite_cache_kib)
            .then_some((db.sqlite_commit_cache_kib, db.sqlite_cache_kib));
        Ok(Self {
            pool: Pool::Sqlite(pool),
            write_turns: Arc::default(),
            commit_cache,
            sqlite_file: (file != std::path::Path::new(":memory:")).then_some(file),
            serving: Arc::default(),
            migrated,
            writes_failing: Arc::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// On SQLite, takes an exclusive lock on `<database file>.serving` for this process
    /// until [`Store::close`] (or its exit), and fails if another process holds it: two
    /// servers on one SQLite database would give out the same documents' sequence
    /// numbers, and this process's knowledge of the update log's recent rows
    /// (`collab::LogTail`) assumes it is the only writer. Commands such as `vellum user
    /// create` do not take it. Nothing on PostgreSQL, where several nodes share one
    /// database.
    pub fn lock_for_serving(&self) -> anyhow::Result<()> {
        let Some(file) = &self.sqlite_file else {
            return Ok(());
        };
        let mut name = file.clone().into_os_string();
        name.push(".serving");
        let path = std::path::PathBuf::from(name);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match lock.try_lock() {
            Ok(()) => {
                *self.serving.lock().unwrap_or_else(|e| e.into_inner()) = Some(lock);
                Ok(())
            }
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "another Vellum server is using the SQLite database {} (it holds {}); SQLite serves one \
                 process: stop the other, or use PostgreSQL (database.url) to run several nodes",
                file.display(),
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
        }
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.pool {
            Pool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await.context("running migrations")?,
            Pool::Postgres(p) => {
                // On a connection held here, so that it can be warmed up after: it was
                // opened before the flag below was set.
                let mut conn = p.acquire().await?;
                POSTGRES_MIGRATIONS
                    .run(&mut *conn)
                    .await
                    .context("running migrations")?;
                self.migrated.store(true, Ordering::Release);
                warm_up(&mut conn).await;
            }
        }
        Ok(())
    }

    /// Readiness: the database answers a query.
    pub async fn ping(&self) -> anyhow::Result<()> {
        on_db!(self, p => sqlx::query("select 1").execute(p).await.map(drop))?;
        Ok(())
    }

    /// Waits for this process's turn to write, on SQLite (see `write_turns`); `None`
    /// at once on PostgreSQL. Hold the guard until the write has committed.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, collab::LogTail>> {
        match self.pool {
            Pool::Sqlite(_) => Some(self.write_turns.lock().await),
            Pool::Postgres(_) => None,
        }
    }

    /// Takes a connection from the pool until the returned handle is dropped.
    pub async fn hold_connection(&self) -> anyhow::Result<HeldConnection> {
        let held = match &self.pool {
            Pool::Sqlite(p) => Held::Sqlite(p.acquire().await?),
            Pool::Postgres(p) => Held::Postgres(p.acquire().await?),
        };
        Ok(HeldConnection { held, enlarged: false })
    }

    /// [`Store::hold_connection`] for a run of group commits: on SQLite its page cache
    /// grows to `database.sqlite_commit_cache_kib` until [`Store::release`].
    pub async fn hold_commit_connection(&self) -> anyhow::Result<HeldConnection> {
        let mut conn = self.hold_connection().await?;
        if let (Some((busy, _)), Held::Sqlite(c)) = (self.commit_cache, &mut conn.held) {
            conn.enlarged = true;
            sqlx::query(&format!("pragma cache_size = -{busy}"))
                .execute(&mut **c)
                .await?;
        }
        Ok(conn)
    }

    /// Gives a held connection back to the pool, with its usual page cache (one whose
    /// cache cannot be restored is closed instead).
    pub async fn release(&self, mut conn: HeldConnection) {
        if let (true, Some((_, usual)), Held::Sqlite(c)) = (conn.enlarged, self.commit_cache, &mut conn.held) {
            match sqlx::query(&format!("pragma cache_size = -{usual}"))
                .execute(&mut **c)
                .await
            {
                Ok(_) => conn.enlarged = false,
                Err(e) => tracing::warn!(error = %e, "could not restore a connection's page cache; closing it"),
            }
            drop(conn);
            // The pages SQLite just freed are scattered over its worker thread's malloc
            // arena, which keeps them; give them back to the system. Trimming walks
            // every arena, so off the executor.
            tokio::task::spawn_blocking(crate::memory::trim);
        }
    }

    /// The most connections the pool opens (`database.max_connections`, or the
    /// backend's automatic size when that is 0).
    pub fn pool_size(&self) -> u32 {
        on_db!(self, p => p.options().get_max_connections())
    }

    /// The page cache of a held SQLite connection, in KiB (`None` on PostgreSQL), for tests.
    #[doc(hidden)]
    pub async fn page_cache_kib(&self, conn: &mut HeldConnection) -> anyhow::Result<Option<i64>> {
        match &mut conn.held {
            Held::Sqlite(c) => {
                let size: i64 = sqlx::query_scalar("pragma cache_size").fetch_one(&mut **c).await?;
                Ok(Some(-size))
            }
            Held::Postgres(_) => Ok(None),
        }
    }

    /// The statements prepared on a held PostgreSQL connection (empty on SQLite), for tests.
    #[doc(hidden)]
    pub async fn prepared_statements(&self, conn: &mut HeldConnection) -> anyhow::Result<Vec<String>> {
        match &mut conn.held {
            Held::Postgres(c) => Ok(sqlx::query_scalar("select statement from pg_prepared_statements")
                .fetch_all(&mut **c)
                .await?),
            Held::Sqlite(_) => Ok(Vec::new()),
        }
    }

    /// Pooled connections open, busy or idle, for tests.
    #[doc(hidden)]
    pub fn open_connections(&self) -> u32 {
        on_db!(self, p => p.size())
    }

    /// Pooled connections open and not idle in the pool, for tests.
    #[doc(hidden)]
    pub fn connections_in_use(&self) -> usize {
        on_db!(self, p => (p.size() as usize).saturating_sub(p.num_idle()))
    }

    pub async fn close(&self) {
        on_db!(self, p => p.close().await);
        // Unlocked as the file closes.
        self.serving.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// The current time at millisecond precision, so that values read back from
/// either backend compare equal to what was written.
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// True when `e` is a unique-constraint violation (on either backend).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Whether an SQLite connection coming back to the pool is outside any transaction, as
/// every user leaves it; one that is not (a statement or COMMIT that failed on a full
/// disk can leave SQLite holding the write lock) is closed instead of kept, since idle in
/// the pool it would keep every other connection from writing.
/// Checked only for a minute after the database was last unavailable
/// ([`crate::error::database_unavailable`]): the check costs a round trip to the
/// connection's worker thread, and only a failure leaves a connection so.
async fn sqlite_outside_transaction(conn: &mut sqlx::SqliteConnection) -> Result<bool, sqlx::Error> {
    if !crate::error::unavailable_within(Duration::from_secs(60)) {
        return Ok(true);
    }
    let mut handle = conn.lock_handle().await?;
    // SAFETY: the handle is locked for the call; a null schema asks about every schema.
    let state = unsafe { libsqlite3_sys::sqlite3_txn_state(handle.as_raw_handle().as_ptr(), std::ptr::null()) };
    if state != libsqlite3_sys::SQLITE_TXN_NONE {
        tracing::warn!(
            state,
            "an SQLite connection came back to the pool inside a transaction; closing it"
        );
        return Ok(false);
    }
    Ok(true)
}
