//! [`Database`]: the handle an application opens.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::{Stream, StreamExt};
use omen_sql::{Engine, EngineOptions, Output as SqlOutput};
use tokio::sync::mpsc;

use crate::connection::Connection;
use crate::dir;
use crate::handle::{Handle, autocommit};
use crate::options::Options;
use crate::output::Output;
use crate::statement::Statement;
use crate::transaction::Transaction;
use crate::value::{ToValue, Value, to_values};
use crate::{Error, Result};

/// An async stream of query results.
pub type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send>>;

/// An open OmenDB database. Cheap to clone; `Send + Sync`: share it across
/// threads. See the crate docs for an example.
///
/// Every blocking method works from any thread, inside a tokio runtime or
/// not: statements run on the database's own runtime and the caller waits
/// for the result. Each has an `_async` twin for async code.
#[derive(Clone)]
pub struct Database {
    handle: Handle,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("closed", &self.handle.is_closed()).finish_non_exhaustive()
    }
}

impl Database {
    /// Opens the database in `dir`, creating it if needed, with default [`Options`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, Options::default())
    }

    /// Opens the database in `dir` with `options`. Fails with
    /// [`Error::Locked`] if another handle has it open.
    pub fn open_with(dir: impl AsRef<Path>, options: Options) -> Result<Self> {
        let (lock, rows_dir) = dir::open(dir.as_ref(), options.layout_version)?;
        Ok(Self { handle: Handle::start(engine_options(Some(rows_dir), &options), Some(lock))? })
    }

    /// A database that lives in memory only and is gone when closed.
    pub fn open_in_memory() -> Result<Self> {
        Self::open_in_memory_with(Options::default())
    }

    /// [`Database::open_in_memory`] with `options` (the layout version and
    /// durability do not apply).
    pub fn open_in_memory_with(options: Options) -> Result<Self> {
        Ok(Self { handle: Handle::start(engine_options(None, &options), None)? })
    }

    /// Writes a consistent copy of the database into `dir` while reads and
    /// writes go on: every commit up to some point of the commit order, none
    /// after. Under [`Durability::Full`](crate::Durability::Full) only
    /// durable commits; under `Normal` and `Off` every acknowledged one,
    /// which the source itself may still lose to a power failure.
    /// [`Database::open`] on `dir` opens it. `dir` must be missing or empty.
    /// A missing `dir` is built beside it and renamed into place, so a
    /// failed or interrupted backup leaves no half-made database there; an
    /// existing empty one is filled in place (emptied again on failure). An in-memory database has
    /// nothing on disk to copy ([`Error::Unsupported`]).
    pub fn backup_to(&self, dir: impl AsRef<Path>) -> Result<()> {
        self.handle.check_open()?;
        if self.handle.in_memory() {
            return Err(Error::Unsupported("a backup of an in-memory database".into()));
        }
        crate::dir::backup(dir.as_ref(), |rows| self.handle.engine().backup_to(rows).map(drop))
    }

    /// Writes a checkpoint now: what changed since the last one, a run
    /// file per table beside the log, which is then cut behind them, so
    /// reopening maps the runs and replays only later commits; then merges
    /// similar-sized runs. Commits go on meanwhile. A background thread
    /// does this as the log grows (see [`Options::checkpoint_wal_bytes`]);
    /// SQL `CHECKPOINT` does the same. An in-memory database has nothing
    /// to write and returns the default.
    pub fn checkpoint(&self) -> Result<crate::CheckpointInfo> {
        self.handle.check_open()?;
        self.handle.engine().checkpoint()
    }

    /// Merges each table's checkpoint runs into one, dropping deleted
    /// rows, so reads that miss memory probe one run (after a bulk load or
    /// a mass delete, say). Commits go on meanwhile. SQL `VACUUM FULL`
    /// does the same. An in-memory database has nothing to merge.
    pub fn compact(&self) -> Result<crate::CheckpointInfo> {
        self.handle.check_open()?;
        self.handle.engine().compact()
    }

    /// The log's I/O backend in use ("io_uring" or "pwrite+fdatasync");
    /// `None` for an in-memory database.
    pub fn io_backend(&self) -> Option<&'static str> {
        self.handle.engine().io_backend()
    }

    /// What the latest checkpoint holds and how much log there is now.
    pub fn checkpoint_info(&self) -> crate::CheckpointInfo {
        self.handle.engine().checkpoint_info()
    }

    /// Closes the database: stops background work, syncs the log, releases
    /// the directory. Other clones then return [`Error::Closed`]. Dropping
    /// the last clone closes it too.
    pub fn close(self) -> Result<()> {
        self.handle.close()
    }

    /// Runs one statement outside any transaction (autocommit) and returns
    /// the rows it changed (0 for DDL; for a query, the rows it returned).
    /// Use [`Database::begin`] for transactions: `BEGIN` here is an error.
    pub fn execute(&self, sql: &str, params: &[&dyn ToValue]) -> Result<u64> {
        match self.autocommit_cached(sql, params) {
            Some(out) => Ok(out?.rows()),
            None => self.handle.block_on(self.execute_future(sql, params)),
        }
    }

    /// Async [`Database::execute`].
    pub async fn execute_async(&self, sql: &str, params: &[&dyn ToValue]) -> Result<u64> {
        self.handle.spawn(self.execute_future(sql, params)).await
    }

    /// Runs one query (autocommit) and returns all its rows.
    pub fn query(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<RecordBatch>> {
        match self.autocommit_cached(sql, params) {
            Some(out) => Ok(out?.into_batches()),
            None => self.handle.block_on(self.query_future(sql, params)),
        }
    }

    /// Async [`Database::query`].
    pub async fn query_async(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<RecordBatch>> {
        self.handle.spawn(self.query_future(sql, params)).await
    }

    /// Runs one query (autocommit) and returns its rows batch by batch.
    /// Errors in the statement itself are returned here; errors while
    /// producing rows come from the iterator.
    ///
    /// ```
    /// # use omendb::{Database, params};
    /// let db = Database::open_in_memory()?;
    /// db.execute("CREATE TABLE n (i BIGINT PRIMARY KEY)", params![])?;
    /// db.execute("INSERT INTO n SELECT value FROM generate_series(1, 1000)", params![])?;
    /// let mut rows = 0;
    /// for batch in db.query_iter("SELECT i FROM n WHERE i > $1", params![900])? {
    ///     rows += batch?.num_rows();
    /// }
    /// assert_eq!(rows, 100);
    /// # Ok::<(), omendb::Error>(())
    /// ```
    pub fn query_iter(&self, sql: &str, params: &[&dyn ToValue]) -> Result<RecordBatchIter> {
        let (schema, rx) = self.handle.block_on(self.stream_future(sql, params))?;
        Ok(RecordBatchIter { schema, rx })
    }

    /// Async [`Database::query_iter`]: a stream of batches.
    pub async fn query_stream(&self, sql: &str, params: &[&dyn ToValue]) -> Result<BatchStream> {
        let (_, rx) = self.handle.spawn(self.stream_future(sql, params)).await?;
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })))
    }

    /// Inserts the rows of Arrow `batches` into `table` in one transaction:
    /// a bulk load without SQL. Columns match by position and are cast to
    /// the column types; any failure (a value that does not convert, a NULL
    /// in a NOT NULL column, a duplicate key) writes nothing. Returns the
    /// rows inserted.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use omendb::arrow::array::{Int64Array, RecordBatch, StringArray};
    /// # use omendb::{Database, params};
    /// let db = Database::open_in_memory()?;
    /// db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT)", params![])?;
    /// let batch = RecordBatch::try_from_iter([
    ///     ("id", Arc::new(Int64Array::from(vec![1, 2])) as _),
    ///     ("name", Arc::new(StringArray::from(vec!["a", "b"])) as _),
    /// ])?;
    /// assert_eq!(db.insert_batches("t", &[batch])?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert_batches(&self, table: &str, batches: &[RecordBatch]) -> Result<u64> {
        self.handle.check_open()?;
        self.handle.engine().insert_batches(table, batches)
    }

    /// Starts a transaction. It reads one snapshot, sees its own writes, and
    /// rolls back unless committed.
    pub fn begin(&self) -> Result<Transaction> {
        self.handle.check_open()?;
        let mut session = self.handle.engine().session();
        // A Transaction rolls back whole; DDL would commit apart from it.
        session.set_ddl_in_blocks(false);
        session.begin()?;
        Ok(Transaction::new(Connection::new(self.handle.clone(), session, true)))
    }

    /// Opens a [`Connection`]: a session that takes SQL `BEGIN`, `COMMIT`
    /// and `ROLLBACK`, as a PostgreSQL client would use it.
    pub fn connect(&self) -> Result<Connection> {
        self.handle.check_open()?;
        Ok(Connection::new(self.handle.clone(), self.handle.engine().session(), false))
    }

    /// Parses and plans `sql` once; see [`Statement`].
    pub fn prepare(&self, sql: &str) -> Result<Statement> {
        let engine = Arc::clone(self.handle.engine());
        let sql = sql.to_owned();
        let prepared = self.handle.block_on(async move { engine.session().prepare(&sql).await })?;
        Ok(Statement::new(self.handle.clone(), prepared))
    }

    /// Async [`Database::prepare`].
    pub async fn prepare_async(&self, sql: &str) -> Result<Statement> {
        let engine = Arc::clone(self.handle.engine());
        let sql = sql.to_owned();
        let prepared = self.handle.spawn(async move { engine.session().prepare(&sql).await }).await?;
        Ok(Statement::new(self.handle.clone(), prepared))
    }

    /// The newest commit timestamp.
    pub fn current_ts(&self) -> u64 {
        self.handle.engine().current_ts()
    }

    /// A feed of the committed changes to `table` (see
    /// [`ChangeFeed`](crate::ChangeFeed)) from the next commit on, read
    /// live. To resume an earlier feed, see [`Database::changes_after`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use omendb::{Database, params};
    ///
    /// let db = Database::open_in_memory()?;
    /// db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT)", params![])?;
    /// let mut feed = db.changes("t")?;
    /// db.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')", params![])?;
    /// db.execute("DELETE FROM t WHERE id = 1", params![])?;
    /// let mut ops = Vec::new();
    /// while ops.len() < 3 {
    ///     let batch = feed.next_batch(Duration::from_secs(5))?.expect("the commits arrive");
    ///     let op = arrow::array::AsArray::as_string::<i32>(batch.column(0));
    ///     ops.extend(op.iter().flatten().map(str::to_owned));
    /// }
    /// assert_eq!(ops, ["insert", "insert", "delete"]);
    /// # Ok::<(), omendb::Error>(())
    /// ```
    pub fn changes(&self, table: &str) -> Result<crate::ChangeFeed> {
        self.open_feed(table, None)
    }

    /// A feed of the committed changes to `table` after the commit
    /// timestamp `after`: an earlier feed's
    /// [`position`](crate::ChangeFeed::position), or a
    /// [`Database::current_ts`]. It reads the log until it has caught up.
    /// Checkpoints drop the log before the oldest open feed's position, so
    /// an older `after` (after a reopen, say) may be gone: that fails with
    /// [`Error::FeedUnavailable`](crate::Error::FeedUnavailable). An
    /// in-memory database keeps no log: only the newest commit works.
    pub fn changes_after(&self, table: &str, after: u64) -> Result<crate::ChangeFeed> {
        self.open_feed(table, Some(after))
    }

    fn open_feed(&self, table: &str, after: Option<u64>) -> Result<crate::ChangeFeed> {
        self.handle.check_open()?;
        let feed = self.handle.engine().changes(table, after, omen_sync::ChangeFeedOptions::default())?;
        Ok(crate::ChangeFeed::new(feed))
    }

    /// How far the column store trails transactions right now: commit
    /// timestamps it has yet to apply (0: current). A query never sees
    /// stale data: it overlays the commits not applied yet.
    pub fn sync_backlog(&self) -> u64 {
        self.handle.engine().sync_backlog()
    }

    /// The sync worker's figures: its watermark, what it has applied, and
    /// a histogram of the lag from each commit to its arrival in the column
    /// store (take two and [`LagSnapshot::since`](crate::LagSnapshot::since)
    /// for an interval).
    pub fn sync_metrics(&self) -> crate::SyncMetrics {
        self.handle.engine().sync_metrics()
    }

    /// Where the column store's memory goes and how its hot tier does:
    /// bytes of decoded columns in memory (evictable, and not yet written),
    /// of segment metadata and of files on disk; column reads served from
    /// memory and from files, evictions and read-aheads.
    pub fn metrics(&self) -> crate::Metrics {
        crate::Metrics { columns: self.handle.engine().column_metrics() }
    }

    pub(crate) fn engine(&self) -> &Arc<Engine> {
        self.handle.engine()
    }

    #[cfg(feature = "server")]
    pub(crate) fn check_open(&self) -> Result<()> {
        self.handle.check_open()
    }

    /// The runtime statements run on (the server's connections run there too).
    #[cfg(feature = "server")]
    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        self.handle.runtime()
    }

    /// `sql` run in autocommit, if its plan is cached.
    fn autocommit_cached(&self, sql: &str, params: &[&dyn ToValue]) -> Option<Result<Output>> {
        let statement = self.handle.engine().cached_statement(sql)?;
        Some(self.handle.autocommit(&statement, to_values(params)))
    }

    fn statement(&self, sql: &str, params: &[&dyn ToValue]) -> (Arc<Engine>, String, Vec<Value>) {
        (Arc::clone(self.handle.engine()), sql.to_owned(), to_values(params))
    }

    fn execute_future(&self, sql: &str, params: &[&dyn ToValue]) -> impl Future<Output = Result<u64>> + Send + 'static {
        let (engine, sql, params) = self.statement(sql, params);
        async move { Ok(Output::collect(autocommit(&engine, &sql, &params).await?).await?.rows()) }
    }

    fn query_future(&self, sql: &str, params: &[&dyn ToValue]) -> impl Future<Output = Result<Vec<RecordBatch>>> + Send + 'static {
        let (engine, sql, params) = self.statement(sql, params);
        async move { Ok(Output::collect(autocommit(&engine, &sql, &params).await?).await?.into_batches()) }
    }

    fn stream_future(
        &self,
        sql: &str,
        params: &[&dyn ToValue],
    ) -> impl Future<Output = Result<(SchemaRef, mpsc::Receiver<Result<RecordBatch>>)>> + Send + 'static {
        let (engine, sql, params) = self.statement(sql, params);
        async move {
            let (tx, rx) = mpsc::channel(2);
            let schema = match autocommit(&engine, &sql, &params).await? {
                SqlOutput::Rows { mut stream, .. } => {
                    let schema = stream.schema();
                    tokio::spawn(async move {
                        while let Some(item) = stream.next().await {
                            let item = item.map_err(Error::from);
                            if tx.send(item).await.is_err() {
                                break;
                            }
                        }
                    });
                    schema
                }
                _ => Arc::new(arrow::datatypes::Schema::empty()),
            };
            Ok((schema, rx))
        }
    }
}

fn engine_options(dir: Option<std::path::PathBuf>, options: &Options) -> EngineOptions {
    EngineOptions {
        columns_dir: dir.as_ref().and_then(|rows| Some(rows.parent()?.join(crate::dir::COLUMNS_DIR))),
        dir,
        durability: options.durability,
        memory_budget: options.memory_budget,
        query_memory_limit: options.query_memory_limit,
        fast_path: options.fast_path,
        checkpoint_wal_bytes: options.checkpoint_wal_bytes,
        row_memory_budget: options.row_memory_budget,
        io_backend: options.io_backend,
        column_memory_budget: options.column_memory_budget,
        column_policy: options.cache_policy,
        access_trace: options.access_trace.clone(),
        predictive_warming: options.predictive_warming,
    }
}

/// Batches of a query, from [`Database::query_iter`].
#[derive(Debug)]
pub struct RecordBatchIter {
    schema: SchemaRef,
    rx: mpsc::Receiver<Result<RecordBatch>>,
}

impl RecordBatchIter {
    /// The schema of every batch.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

impl Iterator for RecordBatchIter {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        // A plain executor: never tokio's block_on, so safe in any context.
        futures::executor::block_on(self.rx.recv())
    }
}
