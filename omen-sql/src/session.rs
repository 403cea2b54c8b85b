//! A session: the transaction state machine and statement dispatch.

use std::sync::Arc;

use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    Statement as SqlStatement, TransactionAccessMode, TransactionIsolationLevel as IsolationLevel, TransactionMode,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use omen_rowstore::{Transaction, Value};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::{ddl, dml, params, query};

/// What a statement produced.
pub enum Output {
    /// The rows of a query, as a stream of Arrow batches.
    Rows(SendableRecordBatchStream),
    /// Rows changed by INSERT, UPDATE or DELETE.
    Affected {
        /// The command: `INSERT`, `UPDATE` or `DELETE`.
        tag: &'static str,
        /// How many rows.
        rows: u64,
    },
    /// A statement without rows (DDL, BEGIN, COMMIT, ...), by its command tag.
    Command(&'static str),
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Rows(s) => f.debug_tuple("Rows").field(&s.schema()).finish(),
            Output::Affected { tag, rows } => write!(f, "Affected({tag} {rows})"),
            Output::Command(tag) => write!(f, "Command({tag})"),
        }
    }
}

/// Where a session stands.
enum State {
    /// Each statement runs in its own transaction.
    Autocommit,
    /// Inside BEGIN .. COMMIT.
    InTransaction(Transaction),
    /// A statement failed inside a transaction, which was rolled back; only
    /// COMMIT or ROLLBACK end this state (as in PostgreSQL).
    Aborted,
}

/// A connection-like context: runs statements, autocommit or inside an
/// explicit transaction. Not shared between threads; open one per worker.
pub struct Session {
    engine: Arc<Engine>,
    state: State,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("in_transaction", &self.in_transaction()).finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(engine: Arc<Engine>) -> Self {
        Self { engine, state: State::Autocommit }
    }

    /// Whether an explicit transaction is open (or aborted, awaiting its end).
    pub fn in_transaction(&self) -> bool {
        !matches!(self.state, State::Autocommit)
    }

    /// Starts an explicit transaction (like `BEGIN`). A no-op if one is open.
    pub fn begin(&mut self) -> Result<()> {
        if matches!(self.state, State::Autocommit) {
            self.state = State::InTransaction(self.engine.rows.begin()?);
        }
        Ok(())
    }

    /// Commits the explicit transaction. If a statement in it failed, the
    /// transaction was already rolled back: this ends it and returns
    /// [`Error::TransactionAborted`]. Without a transaction, a no-op.
    pub fn commit(&mut self) -> Result<()> {
        match std::mem::replace(&mut self.state, State::Autocommit) {
            State::InTransaction(txn) => txn.commit().map(drop).map_err(Error::from),
            State::Aborted => Err(Error::TransactionAborted),
            State::Autocommit => Ok(()),
        }
    }

    /// Rolls back the explicit transaction, if any.
    pub fn rollback(&mut self) {
        self.state = State::Autocommit;
    }

    /// Runs one SQL statement with `$1..$n` bound to `params`.
    pub async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<Output> {
        let statement = match parse(sql) {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(Output::Command("")),
            Err(e) => return Err(self.fail(e)),
        };
        if let DfStatement::Statement(s) = &statement {
            match s.as_ref() {
                SqlStatement::StartTransaction { modes, .. } => {
                    check_modes(modes).map_err(|e| self.fail(e))?;
                    self.begin()?;
                    return Ok(Output::Command("BEGIN"));
                }
                SqlStatement::Commit { chain: false, .. } => {
                    let aborted = matches!(self.state, State::Aborted);
                    self.commit()?;
                    return Ok(Output::Command(if aborted { "ROLLBACK" } else { "COMMIT" }));
                }
                SqlStatement::Rollback { chain: false, savepoint: None } => {
                    self.rollback();
                    return Ok(Output::Command("ROLLBACK"));
                }
                _ => {}
            }
        }
        let mut txn = match std::mem::replace(&mut self.state, State::Autocommit) {
            State::Aborted => {
                self.state = State::Aborted;
                return Err(Error::TransactionAborted);
            }
            State::InTransaction(txn) => Explicit(txn),
            State::Autocommit => Implicit(self.engine.rows.begin()?),
        };
        let explicit = matches!(txn, Explicit(_));
        let result = run(&self.engine, statement, txn.get(), explicit, params).await;
        match (result, txn) {
            (Ok(out), Explicit(txn)) => {
                self.state = State::InTransaction(txn);
                Ok(out)
            }
            (Ok(out), Implicit(txn)) => {
                txn.commit()?;
                Ok(out)
            }
            // Dropping the transaction rolls it back; the session waits for
            // COMMIT or ROLLBACK.
            (Err(e), Explicit(_)) => {
                self.state = State::Aborted;
                Err(e)
            }
            (Err(e), Implicit(_)) => Err(e),
        }
    }

    /// Records a failure: inside a transaction, the transaction is rolled
    /// back and the session waits for COMMIT or ROLLBACK.
    fn fail(&mut self, e: Error) -> Error {
        if self.in_transaction() {
            self.state = State::Aborted;
        }
        e
    }
}

/// The transaction a statement runs in, and whether the session owns it.
enum Txn {
    Explicit(Transaction),
    Implicit(Transaction),
}
use Txn::{Explicit, Implicit};

impl Txn {
    fn get(&mut self) -> &mut Transaction {
        match self {
            Explicit(t) | Implicit(t) => t,
        }
    }
}

fn parse(sql: &str) -> Result<Option<DfStatement>> {
    let dialect = PostgreSqlDialect {};
    let mut statements = DFParserBuilder::new(sql).with_dialect(&dialect).build()?.parse_statements()?;
    match statements.len() {
        0 => Ok(None),
        1 => Ok(statements.pop_front()),
        n => Err(Error::Unsupported(format!("{n} statements in one call: run them one at a time"))),
    }
}

/// OmenDB runs snapshot isolation (PostgreSQL's REPEATABLE READ), which is
/// at least what READ COMMITTED promises; SERIALIZABLE is not offered yet.
fn check_modes(modes: &[TransactionMode]) -> Result<()> {
    for m in modes {
        match m {
            TransactionMode::IsolationLevel(IsolationLevel::Serializable) => {
                return Err(Error::Unsupported(
                    "ISOLATION LEVEL SERIALIZABLE (OmenDB provides REPEATABLE READ, snapshot isolation)".into(),
                ));
            }
            TransactionMode::AccessMode(TransactionAccessMode::ReadOnly) => {
                return Err(Error::Unsupported("READ ONLY transactions".into()));
            }
            _ => {}
        }
    }
    Ok(())
}

async fn run(engine: &Engine, statement: DfStatement, txn: &mut Transaction, explicit: bool, params: &[Value]) -> Result<Output> {
    let statement = match statement {
        DfStatement::Statement(s) => *s,
        explain @ DfStatement::Explain(_) => {
            params::check_count(0, params)?;
            return Ok(Output::Rows(query::plan(engine, explain, txn, params, None).await?.execute().await?));
        }
        other => return Err(Error::Unsupported(first_words(&other.to_string()))),
    };
    params::check_count(params::count(&statement)?, params)?;
    match statement {
        q @ (SqlStatement::Query(_) | SqlStatement::Explain { .. }) => {
            let planned = query::plan(engine, DfStatement::Statement(Box::new(q)), txn, params, None).await?;
            Ok(Output::Rows(planned.execute().await?))
        }
        SqlStatement::Insert(insert) => Ok(Output::Affected { tag: "INSERT", rows: dml::insert(engine, insert, txn, params).await? }),
        SqlStatement::Update(update) => Ok(Output::Affected { tag: "UPDATE", rows: dml::update(engine, update, txn, params).await? }),
        SqlStatement::Delete(delete) => Ok(Output::Affected { tag: "DELETE", rows: dml::delete(engine, delete, txn, params).await? }),
        ddl @ (SqlStatement::CreateTable(_) | SqlStatement::Drop { .. }) => {
            // DDL commits on its own; inside BEGIN it would escape ROLLBACK.
            if explicit {
                return Err(Error::Unsupported(format!("{} inside a transaction block", first_words(&ddl.to_string()))));
            }
            ddl::run(engine, ddl).await
        }
        other => Err(Error::Unsupported(first_words(&other.to_string()))),
    }
}

/// The statement's leading keywords, to name what is unsupported.
fn first_words(sql: &str) -> String {
    let words: Vec<&str> = sql.split_whitespace().take(2).collect();
    format!("the statement {}", words.join(" "))
}
