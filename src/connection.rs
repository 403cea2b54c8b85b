//! [`Connection`]: a session that runs SQL text, transaction control
//! included, like a PostgreSQL connection.

use std::sync::Arc;

use arrow::array::RecordBatch;
use omen_sql::Session;
use tokio::sync::Mutex;

use crate::handle::Handle;
use crate::output::Output;
use crate::statement::Statement;
use crate::value::{ToValue, Value, to_values};
use crate::{Error, Result};

/// A session on a [`Database`](crate::Database): statements run one at a time, in autocommit
/// unless SQL `BEGIN` opened a transaction, which SQL `COMMIT` or
/// `ROLLBACK` ends. After an error inside a transaction, statements fail
/// with [`Error::TransactionAborted`] until it ends (as in PostgreSQL).
/// Dropping the connection rolls back an open transaction.
///
/// ```
/// use omendb::{Database, Output, params};
///
/// let db = Database::open_in_memory()?;
/// let mut conn = db.connect()?;
/// conn.execute("CREATE TABLE t (id INT PRIMARY KEY)", params![])?;
/// conn.execute("BEGIN", params![])?;
/// conn.execute("INSERT INTO t VALUES (1), (2)", params![])?;
/// conn.execute("ROLLBACK", params![])?;
/// assert_eq!(conn.run("SELECT * FROM t", params![])?.rows(), 0);
/// # Ok::<(), omendb::Error>(())
/// ```
pub struct Connection {
    db: Handle,
    session: Arc<Mutex<Session>>,
    /// Serves a [`crate::Transaction`]: statements need the transaction open
    /// and may not end it.
    transaction: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

impl Connection {
    pub(crate) fn new(db: Handle, session: Session, transaction: bool) -> Self {
        Self { db, session: Arc::new(Mutex::new(session)), transaction }
    }

    /// Runs one statement and returns what it produced.
    pub fn run(&mut self, sql: &str, params: &[&dyn ToValue]) -> Result<Output> {
        self.run_values(sql, to_values(params))
    }

    /// Async [`Connection::run`].
    pub async fn run_async(&mut self, sql: &str, params: &[&dyn ToValue]) -> Result<Output> {
        let fut = self.statement(sql.to_owned(), to_values(params));
        self.db.spawn(fut).await
    }

    /// Runs one statement; returns the rows it changed (or returned).
    pub fn execute(&mut self, sql: &str, params: &[&dyn ToValue]) -> Result<u64> {
        Ok(self.run(sql, params)?.rows())
    }

    /// Runs one query and returns its rows.
    pub fn query(&mut self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<RecordBatch>> {
        Ok(self.run(sql, params)?.into_batches())
    }

    /// Runs a prepared statement. A primary-key point statement runs on the
    /// calling thread; others on the database's runtime.
    pub fn run_prepared(&mut self, statement: &Statement, params: &[&dyn ToValue]) -> Result<Output> {
        self.run_prepared_values(statement, to_values(params))
    }

    /// Takes the warnings statements left since the last call, as the
    /// server sends them as notices: today DDL inside a transaction block,
    /// which takes effect at once and which ROLLBACK does not undo.
    pub fn take_warnings(&mut self) -> Vec<String> {
        self.session.try_lock().map(|mut s| s.take_warnings()).unwrap_or_default()
    }

    /// Whether a transaction is open (or aborted, awaiting COMMIT or ROLLBACK).
    pub fn in_transaction(&self) -> bool {
        self.session.try_lock().is_ok_and(|s| s.in_transaction())
    }

    pub(crate) fn run_values(&mut self, sql: &str, params: Vec<Value>) -> Result<Output> {
        if let Some(statement) = self.db.engine().cached_statement(sql) {
            return self.run_prepared_values(&Statement::new(self.db.clone(), statement), params);
        }
        let fut = self.statement(sql.to_owned(), params);
        self.db.block_on(fut)
    }

    pub(crate) fn run_prepared_values(&mut self, statement: &Statement, params: Vec<Value>) -> Result<Output> {
        self.db.check_open()?;
        let transaction = self.transaction;
        if let Ok(mut session) = self.session.try_lock() {
            check_before(transaction, &session)?;
            if let Some(out) = session.execute_fast(statement.prepared(), &params) {
                let out = Output::collect_ready(out?).inspect_err(|_| session.fail_statement())?;
                check_after(transaction, &session)?;
                return Ok(out);
            }
        }
        let session = Arc::clone(&self.session);
        let prepared = Arc::clone(statement.prepared());
        self.db.block_on(async move {
            let mut session = session.lock().await;
            check_before(transaction, &session)?;
            let out = session.execute_prepared(&prepared, &params).await?;
            let out = collect(&mut session, out).await?;
            check_after(transaction, &session)?;
            Ok(out)
        })
    }

    /// Runs `sql` on the session; for the runtime.
    pub(crate) fn statement(&self, sql: String, params: Vec<Value>) -> impl Future<Output = Result<Output>> + Send + 'static {
        let session = Arc::clone(&self.session);
        let transaction = self.transaction;
        async move {
            let mut session = session.lock().await;
            check_before(transaction, &session)?;
            let out = session.execute(&sql, &params).await?;
            let out = collect(&mut session, out).await?;
            check_after(transaction, &session)?;
            Ok(out)
        }
    }

    /// Commits the open transaction (see [`omen_sql::Session::commit`]).
    pub(crate) fn commit_future(&self) -> impl Future<Output = Result<()>> + Send + 'static {
        let session = Arc::clone(&self.session);
        async move { session.lock().await.commit() }
    }

    pub(crate) fn db(&self) -> &Handle {
        &self.db
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Uncontended unless an async call was abandoned mid-statement; then
        // the session rolls back when that statement's task drops it.
        if let Ok(mut s) = self.session.try_lock() {
            s.rollback();
        }
    }
}

/// Collects a statement's rows. An error while they stream (a division by
/// zero met in the fifth batch) fails the statement as one before them
/// does: inside a transaction block, the transaction is aborted.
async fn collect(session: &mut Session, out: omen_sql::Output) -> Result<Output> {
    Output::collect(out).await.inspect_err(|_| session.fail_statement())
}

/// A [`crate::Transaction`]'s statements need its transaction open.
fn check_before(transaction: bool, session: &Session) -> Result<()> {
    if transaction && !session.in_transaction() { Err(Error::Closed) } else { Ok(()) }
}

/// A [`crate::Transaction`] refuses SQL COMMIT and ROLLBACK, which would end
/// it behind its back.
fn check_after(transaction: bool, session: &Session) -> Result<()> {
    if transaction && !session.in_transaction() {
        Err(Error::Unsupported("COMMIT/ROLLBACK as SQL inside a Transaction: call commit() or rollback()".into()))
    } else {
        Ok(())
    }
}
