//! [`Statement`]: a prepared statement.

use std::sync::Arc;

use arrow::array::RecordBatch;
use omen_sql::PreparedStatement;

use crate::Result;
use crate::handle::Handle;
use crate::value::{ToValue, to_values};

/// A statement parsed and planned once, from [`Database::prepare`](crate::Database::prepare); run it
/// with new `$n` parameters as often as needed, from any thread.
///
/// Primary-key point statements (`SELECT ... WHERE pk = $1`, `UPDATE` and
/// `DELETE` of one key) and `INSERT ... VALUES` skip DataFusion when they
/// run and execute on the calling thread. If DDL changes a table the
/// statement reads, the next run plans it again.
///
/// ```
/// use omendb::{Database, params};
///
/// let db = Database::open_in_memory()?;
/// db.execute("CREATE TABLE kv (k BIGINT PRIMARY KEY, v TEXT)", params![])?;
/// let insert = db.prepare("INSERT INTO kv VALUES ($1, $2)")?;
/// let get = db.prepare("SELECT v FROM kv WHERE k = $1")?;
/// for k in 0..10 {
///     insert.execute(params![k, format!("value {k}")])?;
/// }
/// assert_eq!(get.query(params![7])?[0].num_rows(), 1);
/// # Ok::<(), omendb::Error>(())
/// ```
#[derive(Clone)]
pub struct Statement {
    db: Handle,
    prepared: Arc<PreparedStatement>,
}

impl std::fmt::Debug for Statement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Statement").field("sql", &self.prepared.sql()).finish_non_exhaustive()
    }
}

impl Statement {
    pub(crate) fn new(db: Handle, prepared: Arc<PreparedStatement>) -> Self {
        Self { db, prepared }
    }

    pub(crate) fn prepared(&self) -> &Arc<PreparedStatement> {
        &self.prepared
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        self.prepared.sql()
    }

    /// How many `$n` parameters the statement takes.
    pub fn param_count(&self) -> usize {
        self.prepared.param_count()
    }

    /// Whether the statement takes the fast path (see above).
    pub fn is_fast_path(&self) -> bool {
        self.prepared.is_fast_path()
    }

    /// Runs the statement outside any transaction (autocommit) and returns
    /// the rows it changed (for a query, the rows it returned).
    pub fn execute(&self, params: &[&dyn ToValue]) -> Result<u64> {
        Ok(self.db.autocommit(&self.prepared, to_values(params))?.rows())
    }

    /// Runs the query (autocommit) and returns its rows.
    pub fn query(&self, params: &[&dyn ToValue]) -> Result<Vec<RecordBatch>> {
        Ok(self.db.autocommit(&self.prepared, to_values(params))?.into_batches())
    }
}
