//! The engine: the stores, the sync worker and DataFusion's shared state.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::prelude::SessionConfig;
use omen_colstore::ColumnStore;
use omen_rowstore::{Durability, Store, StoreOptions};
use omen_sync::{SyncOptions, Syncer};

use crate::error::Result;
use crate::session::Session;

/// How to open an [`Engine`].
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Where the row store keeps its log; `None` for an in-memory database.
    pub dir: Option<PathBuf>,
    /// When commits reach stable storage.
    pub durability: Durability,
    /// Bytes DataFusion may use for query execution (sorts, joins,
    /// aggregates spill or fail past it); 0 means no limit.
    pub memory_budget: usize,
}

/// One open database: row store, column store, sync, SQL.
pub struct Engine {
    pub(crate) rows: Store,
    pub(crate) sync: Syncer,
    /// Functions, configuration and memory pool shared by every statement;
    /// each statement adds its own catalog of snapshot tables.
    pub(crate) state: SessionState,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("rows", &self.rows).finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens (or creates) a database and starts its sync worker.
    pub fn open(options: EngineOptions) -> Result<Arc<Self>> {
        let rows = Store::open(StoreOptions { dir: options.dir, durability: options.durability, ..StoreOptions::default() })?;
        let sync = Syncer::start(rows.clone(), Arc::new(ColumnStore::new()), SyncOptions::default())?;
        let mut config = SessionConfig::new().with_information_schema(false);
        // Text stays Utf8 end to end, as the column store holds it.
        config.options_mut().sql_parser.map_string_types_to_utf8view = false;
        config.options_mut().execution.target_partitions = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut runtime = RuntimeEnvBuilder::new();
        if options.memory_budget > 0 {
            runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(options.memory_budget)));
        }
        let state = SessionStateBuilder::new().with_config(config).with_runtime_env(runtime.build_arc()?).with_default_features().build();
        Ok(Arc::new(Self { rows, sync, state }))
    }

    /// A new session (autocommit until it runs BEGIN).
    pub fn session(self: &Arc<Self>) -> Session {
        Session::new(Arc::clone(self))
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
