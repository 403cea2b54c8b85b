//! How an [`Engine`] opens: its options, the stores, the sync worker and
//! DataFusion's session state.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;
use omen_colstore::ColumnStore;
use omen_rowstore::{Durability, Store, StoreOptions};
use omen_sync::{SyncOptions, Syncer};

use super::Engine;
use super::cache::PlanCache;
use crate::context::{AccessCounters, Context, Released};
use crate::error::{Error, Result};
use crate::pg;
use crate::plan::CheckedArithmetic;

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
    /// Bytes the column store's decoded columns (and segment metadata) may
    /// hold; `None`: no limit (see
    /// [`omen_colstore::ColumnStoreOptions::memory_budget`]).
    pub column_memory_budget: Option<u64>,
    /// What decides which columns stay in memory under the budget.
    pub column_policy: omen_colstore::CachePolicy,
    /// A file every column access is recorded to, for the policy simulator.
    pub access_trace: Option<PathBuf>,
    /// Whether the column store loads what its policy predicts the next
    /// statements read (see
    /// [`omen_colstore::ColumnStoreOptions::predictive_warming`]).
    pub predictive_warming: bool,
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
            column_memory_budget: None,
            column_policy: omen_colstore::CachePolicy::default(),
            access_trace: None,
            predictive_warming: false,
        }
    }
}

/// The smallest memory budget [`Engine::open`] accepts. A spilling sort
/// must hold a batch of every run it merges: below a few MiB per partition
/// DataFusion re-spills runs in ever smaller batches, which is correct but
/// can take minutes for a few MB of data.
pub const MIN_MEMORY_BUDGET: usize = 16 << 20;

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
        let columns = omen_colstore::ColumnStoreOptions {
            dir: options.columns_dir,
            memory_budget: options.column_memory_budget,
            policy: options.column_policy,
            trace: options.access_trace,
            predictive_warming: options.predictive_warming,
            ..Default::default()
        };
        let sync = Syncer::start(rows.clone(), Arc::new(open_columns(columns)?), SyncOptions::default())?;
        let mut config = SessionConfig::new().with_information_schema(false).with_default_catalog_and_schema(pg::DATABASE, pg::PUBLIC);
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
            .with_analyzer_rule(Arc::new(CheckedArithmetic))
            .build();
        let (state, pg_catalog) = pg::install(state, &rows)?;
        let released = Arc::new(Released::default());
        let signal = Arc::clone(&released);
        rows.on_rows_released(move || signal.signal());
        let context = Context {
            released,
            pg_catalog,
            rows,
            sync,
            state,
            fast_path: options.fast_path,
            query_memory_limit: options.query_memory_limit,
            access: AccessCounters::default(),
        };
        Ok(Arc::new(Self { context, statements: PlanCache::default() }))
    }
}

/// Opens the column store in `dir` (in memory for `None`). Its files are
/// derived from the row store, which sync rebuilds them from: a column
/// store that does not open (a damaged manifest) is moved aside, to
/// `<dir>.damaged`, and a new one started, rather than keeping the
/// database closed.
fn open_columns(options: omen_colstore::ColumnStoreOptions) -> Result<ColumnStore> {
    use omen_colstore::Error as ColError;
    match ColumnStore::open(options.clone()) {
        Err(ColError::Corruption { .. }) if let Some(dir) = &options.dir => {
            let aside = dir.with_extension("damaged");
            let _ = std::fs::remove_dir_all(&aside);
            std::fs::rename(dir, &aside).map_err(Error::Io)?;
            Ok(ColumnStore::open(options).map_err(omen_sync::Error::from)?)
        }
        other => Ok(other.map_err(omen_sync::Error::from)?),
    }
}
