//! [`Engine`]: the entry point. One open database: it owns the
//! [`Context`] every statement runs in (`open.rs` builds it) and the plan
//! cache (`cache.rs`), and hands out sessions.

mod cache;
mod open;

use std::sync::Arc;

use arrow::array::RecordBatch;

pub use open::{EngineOptions, MIN_MEMORY_BUDGET};

use crate::context::{AccessStats, Context};
use crate::error::Result;
use crate::session::{PreparedStatement, Session};
use crate::write::insert_batches;

/// One open database: row store, column store, sync, SQL.
pub struct Engine {
    context: Context,
    /// Plans of recently run statements, by SQL text.
    statements: cache::PlanCache,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("rows", &self.context.rows).finish_non_exhaustive()
    }
}

impl Engine {
    /// What the layers below the engine run statements in.
    pub(crate) fn context(&self) -> &Context {
        &self.context
    }

    /// A new session (autocommit until it runs BEGIN).
    pub fn session(self: &Arc<Self>) -> Session {
        Session::new(Arc::clone(self))
    }

    /// The cached plan of `sql`, if a session ran or prepared that text
    /// recently. Lets a caller try [`Session::execute_fast`] without awaiting.
    pub fn cached_statement(&self, sql: &str) -> Option<Arc<PreparedStatement>> {
        self.statements.get(sql)
    }

    /// The plan of `sql`: the cached one if a session ran or prepared that
    /// text recently, else planned now (and cached for the next caller).
    pub async fn prepare(&self, sql: &str) -> Result<Arc<PreparedStatement>> {
        if let Some(s) = self.cached_statement(sql) {
            return Ok(s);
        }
        let statement = Arc::new(PreparedStatement::new(&self.context, sql).await?);
        self.statements.insert(sql, Arc::clone(&statement));
        Ok(statement)
    }

    /// Inserts the rows of `batches` into the table named `table`, in one
    /// transaction: a bulk load without SQL. Columns match by position;
    /// values are cast to the column types. A value that does not convert,
    /// a NULL in a NOT NULL column or a duplicate key fails the whole load,
    /// which then writes nothing. Returns the rows inserted.
    pub fn insert_batches(&self, table: &str, batches: &[RecordBatch]) -> Result<u64> {
        insert_batches(&self.context, table, batches)
    }

    /// How the table scans of statements run so far were served: key ranges
    /// read from the row store, or the whole table from the column store.
    pub fn access_stats(&self) -> AccessStats {
        self.context.access.snapshot()
    }

    /// The sync worker's watermark, batches and records applied, and its
    /// commit-to-applied lag histogram.
    pub fn sync_metrics(&self) -> omen_sync::SyncMetrics {
        self.context.sync.metrics()
    }

    /// What the column store's hot tier holds and has done.
    pub fn column_metrics(&self) -> omen_colstore::HotMetrics {
        self.context.sync.columns().hot_metrics()
    }

    /// How far the column store trails the row store: commit timestamps
    /// issued that sync has yet to apply (0 when analytics are current).
    pub fn sync_backlog(&self) -> u64 {
        self.context.rows.current_ts().saturating_sub(self.context.sync.watermark())
    }

    /// The newest commit timestamp.
    pub fn current_ts(&self) -> u64 {
        self.context.rows.current_ts()
    }

    /// A feed of the committed changes to `table` after `after` (from
    /// the next commit with `None`; see [`omen_sync::ChangeFeed`]).
    pub fn changes(
        &self,
        table: &str,
        after: Option<u64>,
        options: omen_sync::ChangeFeedOptions,
    ) -> omen_sync::Result<omen_sync::ChangeFeed> {
        omen_sync::ChangeFeed::open(&self.context.rows, table, after, options)
    }

    /// Writes a consistent copy of the row store into `dir` while commits
    /// go on (see [`omen_rowstore::Store::backup_to`]).
    pub fn backup_to(&self, dir: &std::path::Path) -> Result<u64> {
        Ok(self.context.rows.backup_to(dir)?)
    }

    /// Writes a row-store checkpoint now (see [`omen_rowstore::Store::checkpoint`]).
    pub fn checkpoint(&self) -> Result<omen_rowstore::CheckpointInfo> {
        Ok(self.context.rows.checkpoint()?)
    }

    /// Merges each table's row-store runs into one ([`omen_rowstore::Store::compact`]).
    pub fn compact(&self) -> Result<omen_rowstore::CheckpointInfo> {
        Ok(self.context.rows.compact()?)
    }

    /// The row store log's I/O backend; `None` in memory.
    pub fn io_backend(&self) -> Option<&'static str> {
        self.context.rows.io_backend()
    }

    /// What the row store's latest checkpoint holds.
    pub fn checkpoint_info(&self) -> omen_rowstore::CheckpointInfo {
        self.context.rows.checkpoint_info()
    }

    /// Stops sync and closes the row store (syncing its log). Idempotent;
    /// sessions get [`crate::Error::Closed`] afterwards.
    pub fn close(&self) -> Result<()> {
        self.context.sync.stop();
        Ok(self.context.rows.close()?)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
