//! [`Transaction`]: an explicit transaction on a [`Database`].

use std::sync::Arc;

use arrow::array::RecordBatch;
use omen_sql::{Output, Session};
use tokio::sync::Mutex;

use crate::database::{Database, collect};
use crate::error::{Error, Result};
use crate::value::{ToValue, to_values};

/// A transaction: every statement reads the snapshot taken at
/// [`Database::begin`] plus the transaction's own writes (snapshot
/// isolation). Rolls back when dropped unless [`Transaction::commit`] ran.
///
/// If a statement fails, the transaction is rolled back at once (as in
/// PostgreSQL) and later statements return [`Error::TransactionAborted`].
/// A [`Error::SerializationConflict`] means: start over with a new transaction.
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
pub struct Transaction {
    db: Database,
    session: Arc<Mutex<Session>>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").finish_non_exhaustive()
    }
}

impl Transaction {
    pub(crate) fn new(db: Database, session: Session) -> Self {
        Self { db, session: Arc::new(Mutex::new(session)) }
    }

    fn run(&self, sql: &str, params: &[&dyn ToValue]) -> impl Future<Output = Result<Output>> + Send + 'static {
        let session = Arc::clone(&self.session);
        let (sql, params) = (sql.to_owned(), to_values(params));
        async move {
            let mut session = session.lock().await;
            if !session.in_transaction() {
                return Err(Error::Closed);
            }
            let out = session.execute(&sql, &params).await?;
            if !session.in_transaction() {
                return Err(Error::Unsupported("COMMIT/ROLLBACK as SQL inside a Transaction: call commit() or rollback()".into()));
            }
            Ok(out)
        }
    }

    /// Runs one statement in the transaction; returns the rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[&dyn ToValue]) -> Result<u64> {
        let fut = self.run(sql, params);
        self.db.block_on(async move { affected(fut.await?).await })
    }

    /// Async [`Transaction::execute`].
    pub async fn execute_async(&mut self, sql: &str, params: &[&dyn ToValue]) -> Result<u64> {
        let fut = self.run(sql, params);
        self.db.spawn(async move { affected(fut.await?).await }).await
    }

    /// Runs one query in the transaction and returns its rows.
    pub fn query(&mut self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<RecordBatch>> {
        let fut = self.run(sql, params);
        self.db.block_on(async move { collect(fut.await?).await })
    }

    /// Async [`Transaction::query`].
    pub async fn query_async(&mut self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<RecordBatch>> {
        let fut = self.run(sql, params);
        self.db.spawn(async move { collect(fut.await?).await }).await
    }

    /// Commits. Fails with [`Error::SerializationConflict`] (retryable) or
    /// [`Error::TransactionAborted`] if an earlier statement failed.
    pub fn commit(self) -> Result<()> {
        let session = Arc::clone(&self.session);
        self.db.block_on(async move { Ok(session.lock().await.commit()?) })
    }

    /// Async [`Transaction::commit`].
    pub async fn commit_async(self) -> Result<()> {
        let session = Arc::clone(&self.session);
        self.db.spawn(async move { Ok(session.lock().await.commit()?) }).await
    }

    /// Rolls back: nothing the transaction wrote becomes visible.
    pub fn rollback(self) {
        drop(self);
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        // Uncontended unless an async call was abandoned mid-statement; then
        // the session rolls back when that statement's task drops it.
        if let Ok(mut s) = self.session.try_lock() {
            s.rollback();
        }
    }
}

async fn affected(out: Output) -> Result<u64> {
    match out {
        Output::Affected { rows, .. } => Ok(rows),
        Output::Command(_) => Ok(0),
        rows @ Output::Rows(_) => Ok(collect(rows).await?.iter().map(|b| b.num_rows() as u64).sum()),
    }
}
