//! [`Transaction`]: an explicit transaction on a [`Database`](crate::Database).

use arrow::array::RecordBatch;

use crate::Result;
use crate::connection::Connection;
use crate::statement::Statement;
use crate::value::{ToValue, to_values};

/// A transaction: every statement reads the snapshot taken at
/// [`Database::begin`](crate::Database::begin) plus the transaction's own
/// writes (snapshot isolation). Rolls back when dropped unless
/// [`Transaction::commit`] ran.
///
/// If a statement fails, the transaction is rolled back at once (as in
/// PostgreSQL) and later statements return [`Error::TransactionAborted`](crate::Error::TransactionAborted).
/// A [`Error::SerializationConflict`](crate::Error::SerializationConflict) means: start over with a new transaction.
///
/// ```
/// use omendb::{Database, Error, params};
///
/// let db = Database::open_in_memory()?;
/// db.execute("CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL)", params![])?;
/// db.execute("INSERT INTO accounts VALUES (1, 100), (2, 0)", params![])?;
///
/// // Retry the whole transaction when a concurrent writer got there first.
/// let transfer = |amount: i64| -> Result<(), Error> {
///     loop {
///         let mut txn = db.begin()?;
///         let attempt = txn
///             .execute("UPDATE accounts SET balance = balance - $1 WHERE id = 1", params![amount])
///             .and_then(|_| txn.execute("UPDATE accounts SET balance = balance + $1 WHERE id = 2", params![amount]));
///         match attempt.and_then(|_| txn.commit()) {
///             Err(e) if e.is_retryable() => continue,
///             other => return other,
///         }
///     }
/// };
/// transfer(30)?;
/// assert_eq!(db.execute("SELECT * FROM accounts WHERE balance = 70", params![])?, 1);
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug)]
pub struct Transaction {
    conn: Connection,
}

impl Transaction {
    pub(crate) fn new(conn: Connection) -> Self {
        Self { conn }
    }

    /// Runs one statement in the transaction; returns the rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[&dyn ToValue]) -> Result<u64> {
        Ok(self.conn.run_values(sql, to_values(params))?.rows())
    }

    /// Async [`Transaction::execute`].
    pub async fn execute_async(&mut self, sql: &str, params: &[&dyn ToValue]) -> Result<u64> {
        let fut = self.conn.statement(sql.to_owned(), to_values(params));
        Ok(self.conn.db().spawn(fut).await?.rows())
    }

    /// Runs one query in the transaction and returns its rows.
    pub fn query(&mut self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<RecordBatch>> {
        Ok(self.conn.run_values(sql, to_values(params))?.into_batches())
    }

    /// Async [`Transaction::query`].
    pub async fn query_async(&mut self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<RecordBatch>> {
        let fut = self.conn.statement(sql.to_owned(), to_values(params));
        Ok(self.conn.db().spawn(fut).await?.into_batches())
    }

    /// Runs a prepared statement in the transaction; returns the rows it
    /// changed (for a query, the rows it returned).
    pub fn execute_prepared(&mut self, statement: &Statement, params: &[&dyn ToValue]) -> Result<u64> {
        Ok(self.conn.run_prepared_values(statement, to_values(params))?.rows())
    }

    /// Runs a prepared query in the transaction and returns its rows.
    pub fn query_prepared(&mut self, statement: &Statement, params: &[&dyn ToValue]) -> Result<Vec<RecordBatch>> {
        Ok(self.conn.run_prepared_values(statement, to_values(params))?.into_batches())
    }

    /// Commits. Fails with [`Error::SerializationConflict`](crate::Error::SerializationConflict)
    /// (retryable) or [`Error::TransactionAborted`](crate::Error::TransactionAborted) if an earlier statement failed.
    pub fn commit(self) -> Result<()> {
        self.conn.db().block_on(self.conn.commit_future())
    }

    /// Async [`Transaction::commit`].
    pub async fn commit_async(self) -> Result<()> {
        self.conn.db().spawn(self.conn.commit_future()).await
    }

    /// Rolls back: nothing the transaction wrote becomes visible.
    pub fn rollback(self) {
        drop(self);
    }
}
