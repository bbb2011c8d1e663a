//! Opening a database (SQLite or PostgreSQL) with bounded pools and timeouts.

use std::path::Path;
use std::sync::{Arc, Once};
use std::time::Duration;

use std::ops::{Deref, DerefMut};

use sqlx::any::AnyPoolOptions;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Executor, TransactionManager};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::StoreError;
use crate::migrate::{MigrationFiles, run_migrations};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    /// The backend of an open connection (as handed to a projection inside a transaction).
    pub fn of(connection: &sqlx::AnyConnection) -> Backend {
        if connection.backend_name().eq_ignore_ascii_case("sqlite") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Pool bounds and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a query waits for a free connection before failing (and its batch being retried).
    pub acquire_timeout: Duration,
    /// SQLite's page cache per connection, in KiB (ignored on PostgreSQL). The writer's connection
    /// fills it under a backlog: a batch's upserts touch pages of every index. At SQLite's default
    /// of 2 MiB, re-reading them for every batch cost a quarter of the writer's time; from 8 MiB up,
    /// with the file memory-mapped and checkpointed four times a second, drains ran as fast at 8 as
    /// at 32 (docs/benchmarks.md).
    pub sqlite_cache_kib: u32,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            sqlite_cache_kib: DEFAULT_SQLITE_CACHE_KIB,
        }
    }
}

/// A service's database.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    /// On SQLite, one connection of its own for writing batches; on PostgreSQL, `pool` again.
    writer: AnyPool,
    backend: Backend,
    /// Stops the SQLite checkpoint task when the last clone of the database is dropped.
    _checkpoints: Option<Arc<DropGuard>>,
}

/// SQLite waits this long for another writer before reporting "database is locked".
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;
/// Page cache per connection unless configured ([`PoolSettings::sqlite_cache_kib`]).
const DEFAULT_SQLITE_CACHE_KIB: u32 = 8 * 1024;
/// Reads of the database file through a memory map instead of a `pread` per page. Address space,
/// not memory: the pages are the kernel's page cache, shared by every connection.
const SQLITE_MMAP_BYTES: u64 = 256 * 1024 * 1024;
/// How often a background task copies the WAL into the database file (a passive checkpoint, which
/// never blocks the writer or readers). SQLite's own checkpoint runs inside the commit that crosses
/// 1000 WAL pages: that was a tenth of the writer's time and, when made rarer, the p99 of webhook →
/// visible. Four times a second, off the commit path, a page is copied once however often it changed.
const SQLITE_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);
/// The commit still checkpoints when the WAL reaches this size (set as a count of the database's own
/// pages): only if the background checkpoints fall behind (or are not running, as in a tool that opens
/// the database briefly).
const SQLITE_AUTOCHECKPOINT_BYTES: i64 = 64 * 1024 * 1024;
/// A WAL that grew past this during a burst is truncated back to it after a checkpoint.
const SQLITE_WAL_SIZE_LIMIT_BYTES: u64 = 64 * 1024 * 1024;
/// The page size of a database created from now on. SQLite fixes it when it writes the first page,
/// so a database created with another size keeps it (`switchboard rebuild` makes a new file with this
/// one). A batch's commit appends every page it changed to the WAL; with 16 KiB pages instead of
/// SQLite's 4 KiB, sms drains on SQLite ran 1.13-1.18x as fast at 9 % less CPU per event, the other
/// services 1.02-1.07x (docs/benchmarks.md).
const SQLITE_PAGE_SIZE: i64 = 16 * 1024;

impl Database {
    /// Opens the database and applies `migrations`. SQLite files (and their directory) are created when
    /// missing; a PostgreSQL database must exist.
    pub async fn open(
        url: &str,
        settings: PoolSettings,
        migrations: &[MigrationFiles],
    ) -> Result<Database, StoreError> {
        let database = Database::connect(url, settings).await?;
        database.migrate(migrations).await?;
        Ok(database)
    }

    /// Opens the database without migrating it. The URL may hold a password: it is never logged
    /// nor part of an error.
    pub async fn connect(url: &str, settings: PoolSettings) -> Result<Database, StoreError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let backend = Backend::of_url(url).ok_or(StoreError::UnsupportedUrl)?;
        if backend == Backend::Sqlite {
            create_sqlite_directory(url)?;
        }
        let connect = async |max_connections: u32| {
            pool_options(backend, max_connections, settings)
                .connect(url)
                .await
                .map_err(|source| StoreError::Connect { backend, source })
        };
        let pool = connect(settings.max_connections).await?;
        let writer = match backend {
            Backend::Sqlite => connect(1).await?,
            Backend::Postgres => pool.clone(),
        };
        let checkpoints = (backend == Backend::Sqlite).then(|| {
            let stop = CancellationToken::new();
            tokio::spawn(checkpoint_periodically(pool.clone(), stop.clone()));
            Arc::new(stop.drop_guard())
        });
        Ok(Database { pool, writer, backend, _checkpoints: checkpoints })
    }

    pub async fn migrate(&self, migrations: &[MigrationFiles]) -> Result<(), StoreError> {
        run_migrations(&self.pool, self.backend, migrations).await
    }

    /// The pool for queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Begins a transaction for writing a batch, on a connection of [`Database::writer`]. See
    /// [`WriteTransaction`]: its connection is reused only after a commit that succeeded.
    pub async fn begin_write(&self) -> Result<WriteTransaction, sqlx::Error> {
        let connection = self.writer.acquire().await?;
        let mut transaction = WriteTransaction { connection, committed: false };
        <Any as sqlx::Database>::TransactionManager::begin(&mut transaction.connection, None).await?;
        Ok(transaction)
    }

    /// The pool for writing batches (consumers, retention); batches are written through
    /// [`Database::begin_write`], never through `writer().begin()`. On SQLite it holds a single
    /// connection: SQLite lets one connection write at a time anyway, and a connection's page cache
    /// is emptied whenever another connection has written since its last transaction. With writers
    /// taking turns over a pool, every batch began with a cold cache and read its index pages back from the WAL
    /// (and a writer waiting for the lock sleeps in SQLite's busy handler; waiting for the
    /// connection wakes it as soon as the last batch commits). On PostgreSQL, the same pool as
    /// [`Database::pool`].
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<(), String> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(|error| error.to_string())
    }

    /// Waits for connections in use to be returned, then closes them.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// A transaction for writing, begun by [`Database::begin_write`]; statements run on it through
/// `Deref<Target = AnyConnection>`.
///
/// Its connection goes back to the pool only after [`WriteTransaction::commit`] succeeded. After any
/// failure (of `BEGIN`, a statement or `COMMIT`), or when it is dropped uncommitted (a timeout, a
/// panic, an error returned early), the connection is closed instead, which ends whatever the
/// server still holds of the transaction. A connection that saw a failed transaction is never used
/// again: when `COMMIT` fails with SQLite's "database or disk is full" (or an I/O error) in WAL
/// mode, SQLite has already rolled the transaction back by itself, but sqlx still counts it as
/// open; on that connection every later `BEGIN` would become a `SAVEPOINT` of a transaction that
/// no longer exists, every later `COMMIT` a `RELEASE` that succeeds, and the batches written that
/// way would be acknowledged and lost with the connection.
#[derive(Debug)]
pub struct WriteTransaction {
    connection: PoolConnection<Any>,
    committed: bool,
}

impl WriteTransaction {
    /// Commits. On an error the transaction is not committed (whatever the database did with it)
    /// and the connection is closed.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        <Any as sqlx::Database>::TransactionManager::commit(&mut self.connection).await?;
        self.committed = true;
        Ok(())
    }
}

impl Deref for WriteTransaction {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.connection
    }
}

impl DerefMut for WriteTransaction {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.connection
    }
}

impl Drop for WriteTransaction {
    fn drop(&mut self) {
        if !self.committed {
            // Closing ends the transaction on the server (SQLite rolls back what a closed
            // connection left open; PostgreSQL aborts it) without trusting the client's idea of
            // where the connection stands. The pool opens a new connection when one is needed.
            self.connection.close_on_drop();
        }
    }
}

/// Bounded pools with timeouts; SQLite connections get the settings above.
fn pool_options(backend: Backend, max_connections: u32, settings: PoolSettings) -> AnyPoolOptions {
    let cache_kib = settings.sqlite_cache_kib.max(1);
    let options = AnyPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(settings.acquire_timeout)
        .idle_timeout(Some(Duration::from_secs(300)))
        .test_before_acquire(true);
    match backend {
        Backend::Sqlite => options.after_connect(move |connection, _| {
            Box::pin(async move {
                // WAL lets readers (gRPC queries) run while the consumer writes; NORMAL sync is
                // durable against process crashes, and the stream keeps every event anyway.
                // The page size first: it only takes on a database that has no page yet, and
                // switching to WAL writes the first one.
                connection
                    .execute(
                        format!(
                            "PRAGMA page_size = {SQLITE_PAGE_SIZE}; \
                                 PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA foreign_keys = ON; \
                                 PRAGMA cache_size = -{cache_kib}; PRAGMA mmap_size = {SQLITE_MMAP_BYTES}; \
                                 PRAGMA temp_store = MEMORY; \
                                 PRAGMA journal_size_limit = {SQLITE_WAL_SIZE_LIMIT_BYTES};"
                        )
                        .as_str(),
                    )
                    .await?;
                let (page_size,): (i64,) =
                    sqlx::query_as("PRAGMA page_size").fetch_one(&mut *connection).await?;
                let pages = SQLITE_AUTOCHECKPOINT_BYTES / page_size.max(512);
                connection.execute(format!("PRAGMA wal_autocheckpoint = {pages}").as_str()).await?;
                Ok(())
            })
        }),
        Backend::Postgres => options,
    }
}

/// Passive WAL checkpoints every [`SQLITE_CHECKPOINT_INTERVAL`] until `stop` or the pool is closed.
/// A failed checkpoint is only logged: the next one (or the commit's own, past the WAL limit)
/// catches up.
async fn checkpoint_periodically(pool: AnyPool, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(SQLITE_CHECKPOINT_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if pool.is_closed() {
            return;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            if pool.is_closed() {
                return;
            }
            tracing::debug!(%error, "WAL checkpoint failed");
        }
    }
}

fn create_sqlite_directory(url: &str) -> Result<(), StoreError> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(parent) = Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|source| StoreError::DataDirectory { path: parent.display().to_string(), source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_connections_get_the_configured_page_cache() -> Result<(), Box<dyn std::error::Error>> {
        let directory = tempfile::tempdir()?;
        let url = format!("sqlite://{}?mode=rwc", directory.path().join("cache.db").display());
        let settings = PoolSettings { sqlite_cache_kib: 3 * 1024, ..PoolSettings::default() };
        let database = Database::connect(&url, settings).await?;
        for pool in [database.pool(), database.writer()] {
            let (cache_size,): (i64,) = sqlx::query_as("PRAGMA cache_size").fetch_one(pool).await?;
            assert_eq!(cache_size, -3 * 1024, "a negative cache_size is KiB");
        }
        Ok(())
    }

    async fn pragma(pool: &AnyPool, name: &str) -> Result<i64, sqlx::Error> {
        let (value,): (i64,) = sqlx::query_as(&format!("PRAGMA {name}")).fetch_one(pool).await?;
        Ok(value)
    }

    #[tokio::test]
    async fn a_new_sqlite_database_gets_16_kib_pages() -> Result<(), Box<dyn std::error::Error>> {
        let directory = tempfile::tempdir()?;
        let url = format!("sqlite://{}?mode=rwc", directory.path().join("new.db").display());
        let database = Database::connect(&url, PoolSettings::default()).await?;
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)").execute(database.writer()).await?;
        for pool in [database.pool(), database.writer()] {
            assert_eq!(pragma(pool, "page_size").await?, 16 * 1024);
            assert_eq!(pragma(pool, "wal_autocheckpoint").await?, 4096, "64 MiB of 16 KiB pages");
        }
        Ok(())
    }

    /// SQLite fixes the page size when it writes the first page: a database made with SQLite's
    /// default keeps it, and is used as before.
    #[tokio::test]
    async fn an_existing_sqlite_database_keeps_its_page_size() -> Result<(), Box<dyn std::error::Error>> {
        use sqlx::Connection as _;
        let directory = tempfile::tempdir()?;
        let url = format!("sqlite://{}?mode=rwc", directory.path().join("old.db").display());
        sqlx::any::install_default_drivers();
        let mut old = AnyConnection::connect(&url).await?;
        old.execute("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
            .await?;
        old.close().await?;

        let database = Database::connect(&url, PoolSettings::default()).await?;
        let body = "x".repeat(10_000);
        for id in 0..100 {
            sqlx::query("INSERT INTO t (id, body) VALUES ($1, $2)")
                .bind(id)
                .bind(&body)
                .execute(database.writer())
                .await?;
        }
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM t").fetch_one(database.pool()).await?;
        assert_eq!(count, 100);
        for pool in [database.pool(), database.writer()] {
            assert_eq!(pragma(pool, "page_size").await?, 4096);
            assert_eq!(pragma(pool, "wal_autocheckpoint").await?, 16_384, "64 MiB of 4 KiB pages");
        }
        Ok(())
    }
}
