//! The engine: the stores, the sync worker and DataFusion's shared state.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionState;
use datafusion::prelude::SessionConfig;
use omen_colstore::ColumnStore;
use omen_rowstore::{Durability, Store, StoreOptions};
use omen_sync::{SyncOptions, Syncer};
use parking_lot::Mutex;

use crate::access::{AccessCounters, AccessStats};
use crate::error::{Error, Result};
use crate::prepared::PreparedStatement;
use crate::session::Session;

/// How to open an [`Engine`].
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Where the row store keeps its log; `None` for an in-memory database.
    pub dir: Option<PathBuf>,
    /// Where the column store keeps its files (see
    /// [`omen_colstore::ColumnStore::open`]); `None` keeps it in memory,
    /// rebuilt from the row store on each open.
    pub columns_dir: Option<PathBuf>,
    /// When commits reach stable storage.
    pub durability: Durability,
    /// Bytes DataFusion may use for query execution (sorts, joins,
    /// aggregates spill or fail past it); 0 means no limit, else at least
    /// [`MIN_MEMORY_BUDGET`].
    pub memory_budget: usize,
    /// Bytes one query execution may hold within the budget; 0 means only
    /// the budget binds, else at least [`MIN_MEMORY_BUDGET`].
    pub query_memory_limit: usize,
    /// Whether primary-key point statements and `INSERT ... VALUES` skip
    /// DataFusion when they run (default true).
    pub fast_path: bool,
    /// Log bytes that start a background checkpoint (see
    /// [`omen_rowstore::StoreOptions::checkpoint_wal_bytes`]); 0: no such trigger.
    pub checkpoint_wal_bytes: u64,
    /// The row store's memory budget for changed rows (see
    /// [`omen_rowstore::StoreOptions::memory_budget`]); 0: none.
    pub row_memory_budget: u64,
    /// How the row store's log writes and syncs.
    pub io_backend: omen_rowstore::IoBackend,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            dir: None,
            columns_dir: None,
            durability: Durability::default(),
            memory_budget: 0,
            query_memory_limit: 0,
            fast_path: true,
            checkpoint_wal_bytes: StoreOptions::default().checkpoint_wal_bytes,
            row_memory_budget: 0,
            io_backend: omen_rowstore::IoBackend::default(),
        }
    }
}

/// One open database: row store, column store, sync, SQL.
pub struct Engine {
    pub(crate) rows: Store,
    pub(crate) sync: Syncer,
    /// Functions, configuration and memory pool shared by every statement;
    /// each statement adds its own catalog of snapshot tables.
    pub(crate) state: SessionState,
    pub(crate) fast_path: bool,
    /// [`EngineOptions::query_memory_limit`].
    query_memory_limit: usize,
    /// PostgreSQL's system catalogs over this engine's tables.
    pub(crate) pg_catalog: Arc<dyn datafusion::catalog::SchemaProvider>,
    /// Plans of recently run statements, by SQL text.
    statements: Mutex<HashMap<String, Arc<PreparedStatement>>>,
    /// How table scans were served.
    pub(crate) access: AccessCounters,
    /// Wakes READ COMMITTED statements waiting for held rows.
    pub(crate) released: Arc<crate::session::Released>,
}

/// The smallest memory budget [`Engine::open`] accepts. A spilling sort
/// must hold a batch of every run it merges: below a few MiB per partition
/// DataFusion re-spills runs in ever smaller batches, which is correct but
/// can take minutes for a few MB of data.
pub const MIN_MEMORY_BUDGET: usize = 16 << 20;

/// How many statements the plan cache holds before it starts over.
const STATEMENT_CACHE: usize = 1024;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("rows", &self.rows).finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens (or creates) a database and starts its sync worker.
    pub fn open(options: EngineOptions) -> Result<Arc<Self>> {
        for (what, bytes) in [("memory budget", options.memory_budget), ("query memory limit", options.query_memory_limit)] {
            if bytes != 0 && bytes < MIN_MEMORY_BUDGET {
                return Err(Error::Unsupported(format!(
                    "a {what} of {bytes} bytes: the smallest is {MIN_MEMORY_BUDGET} bytes (16 MiB), 0 means no limit"
                )));
            }
        }
        let rows = Store::open(StoreOptions {
            dir: options.dir,
            durability: options.durability,
            checkpoint_wal_bytes: options.checkpoint_wal_bytes,
            io_backend: options.io_backend,
            memory_budget: options.row_memory_budget,
            ..StoreOptions::default()
        })?;
        let sync = Syncer::start(rows.clone(), Arc::new(open_columns(options.columns_dir)?), SyncOptions::default())?;
        let mut config = SessionConfig::new()
            .with_information_schema(false)
            .with_default_catalog_and_schema(crate::pg_catalog::DATABASE, crate::pg_catalog::PUBLIC);
        // Text stays Utf8 end to end, as the column store holds it.
        config.options_mut().sql_parser.map_string_types_to_utf8view = false;
        let partitions = std::thread::available_parallelism().map_or(2, |n| n.get());
        config.options_mut().execution.target_partitions = partitions;
        let mut runtime = RuntimeEnvBuilder::new();
        // What one query may hold: the smaller limit that is set.
        let per_query = [options.memory_budget, options.query_memory_limit].into_iter().filter(|&b| b > 0).min();
        if let Some(per_query) = per_query {
            // Each partition's sort sets this much aside to merge its spilled
            // runs; DataFusion's 10 MiB default would take a small budget whole.
            let execution = &mut config.options_mut().execution;
            execution.sort_spill_reservation_bytes = execution.sort_spill_reservation_bytes.min(per_query / (4 * partitions));
        }
        if options.memory_budget > 0 {
            runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(options.memory_budget)));
        }
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime.build_arc()?)
            .with_default_features()
            // After DataFusion's own rules (type coercion first).
            .with_analyzer_rule(Arc::new(crate::checked::CheckedArithmetic))
            .build();
        let (state, pg_catalog) = crate::pg_catalog::install(state, &rows)?;
        let released = Arc::new(crate::session::Released::default());
        let signal = Arc::clone(&released);
        rows.on_rows_released(move || signal.signal());
        Ok(Arc::new(Self {
            released,
            pg_catalog,
            rows,
            sync,
            state,
            fast_path: options.fast_path,
            query_memory_limit: options.query_memory_limit,
            statements: Mutex::new(HashMap::new()),
            access: AccessCounters::default(),
        }))
    }

    /// The context one query execution runs in: `state`'s, with a memory
    /// pool of its own under the per-query limit, if one is set.
    pub(crate) fn task_ctx(&self, state: &SessionState) -> Arc<TaskContext> {
        if self.query_memory_limit == 0 {
            return state.task_ctx();
        }
        let runtime = state.runtime_env();
        let pool = crate::memory::QueryPool::new(Arc::clone(&runtime.memory_pool), self.query_memory_limit);
        let runtime = RuntimeEnv { memory_pool: Arc::new(pool), ..runtime.as_ref().clone() };
        Arc::new(TaskContext::from(state).with_runtime(Arc::new(runtime)))
    }

    /// A new session (autocommit until it runs BEGIN).
    pub fn session(self: &Arc<Self>) -> Session {
        Session::new(Arc::clone(self))
    }

    /// The cached plan of `sql`, if a session ran or prepared that text
    /// recently. Lets a caller try [`Session::execute_fast`] without awaiting.
    pub fn cached_statement(&self, sql: &str) -> Option<Arc<PreparedStatement>> {
        self.statements.lock().get(sql).cloned()
    }

    /// The plan of `sql`: the cached one if a session ran or prepared that
    /// text recently, else planned now (and cached for the next caller).
    pub async fn prepare(&self, sql: &str) -> Result<Arc<PreparedStatement>> {
        if let Some(s) = self.cached_statement(sql) {
            return Ok(s);
        }
        let statement = Arc::new(PreparedStatement::new(self, sql).await?);
        let mut cache = self.statements.lock();
        if cache.len() >= STATEMENT_CACHE {
            // Cheaper than LRU bookkeeping on every hit; hot statements come back at once.
            cache.clear();
        }
        cache.insert(sql.to_owned(), Arc::clone(&statement));
        Ok(statement)
    }

    /// Inserts the rows of `batches` into the table named `table`, in one
    /// transaction: a bulk load without SQL. Columns match by position;
    /// values are cast to the column types. A value that does not convert,
    /// a NULL in a NOT NULL column or a duplicate key fails the whole load,
    /// which then writes nothing. Returns the rows inserted.
    pub fn insert_batches(&self, table: &str, batches: &[RecordBatch]) -> Result<u64> {
        let (id, schema) = self.rows.table(table).ok_or_else(|| Error::UnknownTable(table.into()))?;
        if let Some(b) = batches.iter().find(|b| b.num_columns() != schema.columns.len()) {
            return Err(Error::Plan(format!("table {table:?} has {} columns, a batch {}", schema.columns.len(), b.num_columns())));
        }
        let mut txn = self.rows.begin()?;
        let mut n = 0;
        for batch in batches {
            for row in crate::dml::batch_rows(batch, &schema)? {
                txn.insert(id, row)?;
                n += 1;
            }
        }
        txn.commit()?;
        Ok(n)
    }

    /// How the table scans of statements run so far were served: key ranges
    /// read from the row store, or the whole table from the column store.
    pub fn access_stats(&self) -> AccessStats {
        self.access.snapshot()
    }

    /// The sync worker's watermark, batches and records applied, and its
    /// commit-to-applied lag histogram.
    pub fn sync_metrics(&self) -> omen_sync::SyncMetrics {
        self.sync.metrics()
    }

    /// How far the column store trails the row store: commit timestamps
    /// issued that sync has yet to apply (0 when analytics are current).
    pub fn sync_backlog(&self) -> u64 {
        self.rows.current_ts().saturating_sub(self.sync.watermark())
    }

    /// The newest commit timestamp.
    pub fn current_ts(&self) -> u64 {
        self.rows.current_ts()
    }

    /// A feed of the committed changes to `table` after `after` (from
    /// the next commit with `None`; see [`omen_sync::ChangeFeed`]).
    pub fn changes(
        &self,
        table: &str,
        after: Option<u64>,
        options: omen_sync::ChangeFeedOptions,
    ) -> omen_sync::Result<omen_sync::ChangeFeed> {
        omen_sync::ChangeFeed::open(&self.rows, table, after, options)
    }

    /// Writes a consistent copy of the row store into `dir` while commits
    /// go on (see [`omen_rowstore::Store::backup_to`]).
    pub fn backup_to(&self, dir: &std::path::Path) -> Result<u64> {
        Ok(self.rows.backup_to(dir)?)
    }

    /// Writes a row-store checkpoint now (see [`omen_rowstore::Store::checkpoint`]).
    pub fn checkpoint(&self) -> Result<omen_rowstore::CheckpointInfo> {
        Ok(self.rows.checkpoint()?)
    }

    /// Merges each table's row-store runs into one ([`omen_rowstore::Store::compact`]).
    pub fn compact(&self) -> Result<omen_rowstore::CheckpointInfo> {
        Ok(self.rows.compact()?)
    }

    /// The row store log's I/O backend; `None` in memory.
    pub fn io_backend(&self) -> Option<&'static str> {
        self.rows.io_backend()
    }

    /// What the row store's latest checkpoint holds.
    pub fn checkpoint_info(&self) -> omen_rowstore::CheckpointInfo {
        self.rows.checkpoint_info()
    }

    /// Stops sync and closes the row store (syncing its log). Idempotent;
    /// sessions get [`crate::Error::Closed`] afterwards.
    pub fn close(&self) -> Result<()> {
        self.sync.stop();
        Ok(self.rows.close()?)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Opens the column store in `dir` (in memory for `None`). Its files are
/// derived from the row store, which sync rebuilds them from: a column
/// store that does not open (a damaged manifest) is moved aside, to
/// `<dir>.damaged`, and a new one started, rather than keeping the
/// database closed.
fn open_columns(dir: Option<PathBuf>) -> Result<ColumnStore> {
    use omen_colstore::{ColumnStoreOptions, Error as ColError};
    let options = ColumnStoreOptions { dir: dir.clone(), ..ColumnStoreOptions::default() };
    match ColumnStore::open(options.clone()) {
        Err(ColError::Corruption { .. }) if let Some(dir) = &dir => {
            let aside = dir.with_extension("damaged");
            let _ = std::fs::remove_dir_all(&aside);
            std::fs::rename(dir, &aside).map_err(|e| Error::Io(e.to_string()))?;
            Ok(ColumnStore::open(options).map_err(omen_sync::Error::from)?)
        }
        other => Ok(other.map_err(omen_sync::Error::from)?),
    }
}
