//! Change feeds: a table's committed changes as Arrow batches, in commit
//! order, for an application to follow (in-process CDC).

use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::Result;

/// A table's committed changes (see
/// [`Database::changes`](crate::Database::changes) and
/// [`Database::changes_after`](crate::Database::changes_after)).
///
/// Each batch has the columns `op` (`"insert"`, `"update"` or `"delete"`),
/// `commit_ts`, `key` (the encoded primary key, which orders like the
/// key) and then the table's columns, all nullable: a delete carries its
/// key and nulls. A batch holds whole commits. [`ChangeFeed::position`]
/// is where a later feed resumes with nothing missed or repeated.
///
/// The feed reads the log until it has caught up, then follows commits as
/// they happen, giving each once it is visible (durable, under the default
/// durability). It never holds commits back: a feed that falls behind goes
/// back to the log, which it keeps from its position on while it lives (an
/// in-memory database has no log: its feed then fails). `next_batch`
/// blocks the calling thread; from async code, call it through
/// `tokio::task::spawn_blocking`.
#[derive(Debug)]
pub struct ChangeFeed {
    inner: omen_sync::ChangeFeed,
}

impl ChangeFeed {
    pub(crate) fn new(inner: omen_sync::ChangeFeed) -> Self {
        Self { inner }
    }

    /// The batches' schema.
    pub fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    /// Every commit at or below this timestamp has been delivered: pass it
    /// to [`Database::changes_after`](crate::Database::changes_after) to go
    /// on from here.
    pub fn position(&self) -> u64 {
        self.inner.position()
    }

    /// The next batch of changes, waiting up to `timeout` for one; `None`
    /// if none came. Fails with [`Error::FeedUnavailable`](crate::Error::FeedUnavailable)
    /// once the table is dropped or rewritten by ALTER TABLE (after the
    /// changes before it), and with [`Error::Closed`](crate::Error::Closed)
    /// once the database closes.
    pub fn next_batch(&mut self, timeout: Duration) -> Result<Option<RecordBatch>> {
        Ok(self.inner.next_batch(timeout)?)
    }
}
