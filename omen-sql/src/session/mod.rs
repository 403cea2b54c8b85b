//! A session: the transaction state machine and statement dispatch.
//!
//! Layering: `prepared.rs` compiles a statement (over `write/` and
//! `plan/`); `wait.rs` is how a READ COMMITTED statement waits for held
//! rows; this file runs compiled statements in the session's transaction.
//! Only [`crate::Engine`] sits above.

pub(crate) mod prepared;
mod wait;

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::sql::sqlparser::ast::Ident;
use omen_rowstore::{Savepoint, Transaction, Value};

pub use prepared::PreparedStatement;
pub use wait::DEFAULT_DEADLOCK_TIMEOUT;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::params;
use crate::pg::settings::{Command, Isolation, Settings};
use crate::write::copy::CopyIn;
use crate::write::ddl;
use crate::write::txn::Txn::{self, Explicit, Implicit};
use prepared::{Compiled, SavepointCommand, first_words};
use wait::LockWait;

/// Where a session stands.
enum State {
    /// Each statement runs in its own transaction.
    Autocommit,
    /// Inside BEGIN .. COMMIT.
    InTransaction(Transaction),
    /// A statement failed inside a transaction; only COMMIT, ROLLBACK or
    /// ROLLBACK TO a savepoint end this state (as in PostgreSQL). The
    /// transaction is kept while savepoints can bring it back; otherwise
    /// it was rolled back at once.
    Aborted(Option<Transaction>),
}

/// How many warnings a session keeps for [`Session::take_warnings`].
const MAX_WARNINGS: usize = 16;

/// A connection-like context: runs statements, autocommit or inside an
/// explicit transaction. Not shared between threads; open one per worker.
pub struct Session {
    engine: Arc<Engine>,
    state: State,
    /// The open transaction's savepoints by name, oldest first.
    savepoints: Vec<(String, Savepoint)>,
    settings: Settings,
    /// Warnings for the client about statements that succeeded, oldest
    /// first (see [`Session::take_warnings`]).
    warnings: Vec<String>,
    /// Whether DDL may run inside a transaction block (committing at once).
    ddl_in_blocks: bool,
    /// Whether the open block has run a statement that read or wrote rows:
    /// a REPEATABLE READ block then takes no DDL, as it would move the
    /// block's snapshot.
    block_used: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("in_transaction", &self.in_transaction()).finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            state: State::Autocommit,
            savepoints: Vec::new(),
            settings: Settings::default(),
            warnings: Vec::new(),
            ddl_in_blocks: true,
            block_used: false,
        }
    }

    /// Whether a statement failed inside the open transaction, which then
    /// accepts only COMMIT or ROLLBACK.
    pub fn is_failed(&self) -> bool {
        matches!(self.state, State::Aborted(_))
    }

    /// Takes the warnings statements left since the last call: what
    /// PostgreSQL would send as a WARNING notice (the server does). Today
    /// only DDL inside a transaction block leaves one, as ROLLBACK does not
    /// undo it.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Whether DDL may run inside a transaction block, committing at once
    /// (default true, as drivers wrap migrations in BEGIN ... COMMIT). A
    /// session refuses it when off, for APIs that promise the block's
    /// statements all roll back.
    pub fn set_ddl_in_blocks(&mut self, allowed: bool) {
        self.ddl_in_blocks = allowed;
    }

    /// The session's settings (`SET` changes them, `SHOW` reads them).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Changes a setting as `SET name = value` would (`None`: its default).
    pub fn set(&mut self, name: &str, value: Option<String>) -> Result<()> {
        self.settings.set(name, value)
    }

    /// Sets the level new transactions start at (`SET
    /// default_transaction_isolation`); sessions start at
    /// [`Isolation::RepeatableRead`].
    pub fn set_default_isolation(&mut self, level: Isolation) {
        self.settings.set_default_isolation(level);
    }

    /// Whether an explicit transaction is open (or aborted, awaiting its end).
    pub fn in_transaction(&self) -> bool {
        !matches!(self.state, State::Autocommit)
    }

    /// Starts an explicit transaction (like `BEGIN`) at the session's
    /// default isolation level. A no-op if one is open.
    pub fn begin(&mut self) -> Result<()> {
        self.begin_at(None)
    }

    /// `BEGIN [ISOLATION LEVEL level]`: the level lasts until the
    /// transaction ends.
    fn begin_at(&mut self, level: Option<Isolation>) -> Result<()> {
        if matches!(self.state, State::Autocommit) {
            self.state = State::InTransaction(self.engine.context().rows.begin()?);
            // Fixed for the block, as in PostgreSQL: a later change of the
            // session default does not reach it.
            self.settings.set_transaction_isolation(Some(level.unwrap_or_else(|| self.settings.isolation())));
            self.block_used = false;
        }
        Ok(())
    }

    /// Commits the explicit transaction. If a statement in it failed, the
    /// transaction was already rolled back: this ends it and returns
    /// [`Error::TransactionAborted`]. Without a transaction, a no-op.
    pub fn commit(&mut self) -> Result<()> {
        match self.end() {
            State::InTransaction(txn) => txn.commit().map(drop).map_err(Error::from),
            State::Aborted(_) => Err(Error::TransactionAborted),
            State::Autocommit => Ok(()),
        }
    }

    /// Rolls back the explicit transaction, if any.
    pub fn rollback(&mut self) {
        self.end();
    }

    /// Back to autocommit; returns the state the transaction left.
    fn end(&mut self) -> State {
        self.settings.set_transaction_isolation(None);
        self.savepoints.clear();
        std::mem::replace(&mut self.state, State::Autocommit)
    }

    /// Whether statements run at READ COMMITTED now.
    fn read_committed(&self) -> bool {
        self.settings.isolation() == Isolation::ReadCommitted
    }

    /// Parses and plans `sql` once, for [`Session::execute_prepared`].
    /// Fails if it is not valid SQL or names a table that does not exist.
    pub async fn prepare(&self, sql: &str) -> Result<Arc<PreparedStatement>> {
        Ok(Arc::new(PreparedStatement::new(self.engine.context(), sql).await?))
    }

    /// Runs one SQL statement with `$1..$n` bound to `params`. The engine
    /// caches the plans of recent statements by their text, so running the
    /// same text again skips parsing and planning.
    pub async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<Output> {
        match self.engine.prepare(sql).await {
            Ok(statement) => self.execute_prepared(&statement, params).await,
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Runs a prepared statement with `$1..$n` bound to `params`.
    ///
    /// At READ COMMITTED a statement that meets a row another transaction
    /// holds (or committed after the statement's snapshot) is undone, waits
    /// for the holder, and runs again on a fresh snapshot; after
    /// `deadlock_timeout` (default [`DEFAULT_DEADLOCK_TIMEOUT`]) of waiting it
    /// fails with [`Error::Deadlock`], or after `lock_timeout` (if set) with
    /// [`Error::LockNotAvailable`].
    pub async fn execute_prepared(&mut self, statement: &PreparedStatement, params: &[Value]) -> Result<Output> {
        let mut wait = LockWait::new(&self.engine.context().released);
        loop {
            match self.try_fast(statement, params) {
                Fast::Done(out) => return out.map(|o| statement.present(o)),
                Fast::Conflict => wait.pause(&self.settings).await.map_err(|e| self.fail(e))?,
                Fast::Slow => break,
            }
        }
        let compiled = match statement.compiled(self.engine.context()).await {
            Ok(c) => c,
            Err(e) => return Err(self.fail(e)),
        };
        match compiled.as_ref() {
            Compiled::Empty => return Ok(Output::Command("")),
            Compiled::Begin(level) => {
                if self.is_failed() {
                    return Err(Error::TransactionAborted);
                }
                self.begin_at(*level)?;
                return Ok(Output::Command("BEGIN"));
            }
            Compiled::Commit => {
                // As in PostgreSQL: COMMIT of a failed transaction rolls it
                // back and says so in its tag, without an error.
                if self.is_failed() {
                    self.end();
                    return Ok(Output::Command("ROLLBACK"));
                }
                self.commit()?;
                return Ok(Output::Command("COMMIT"));
            }
            Compiled::Rollback => {
                self.rollback();
                return Ok(Output::Command("ROLLBACK"));
            }
            Compiled::Savepoint(command) => return self.savepoint_command(command),
            Compiled::NoOp(tag) => {
                if self.is_failed() {
                    return Err(Error::TransactionAborted);
                }
                return Ok(Output::Command(tag));
            }
            Compiled::Settings(command) => {
                if self.is_failed() {
                    return Err(Error::TransactionAborted);
                }
                return self.settings_command(command).map_err(|e| self.fail(e));
            }
            _ => {}
        }
        if let Err(e) = params::check_count(statement.param_count(), params) {
            return Err(self.fail(e));
        }
        let read_committed = self.read_committed();
        let mut txn = self.take_txn()?;
        let explicit = matches!(txn, Explicit(_));
        if explicit {
            if let Compiled::Ddl(ddl) = compiled.as_ref() {
                let refusal = if !self.ddl_in_blocks {
                    Some("inside a transaction block of this API (it would commit at once, apart from the block)")
                } else if self.block_used && !read_committed {
                    Some("after other statements in a REPEATABLE READ transaction block (it would move the block's snapshot)")
                } else {
                    None
                };
                if let Some(refusal) = refusal {
                    return self.finish(Err(Error::Unsupported(format!("{} {refusal}", first_words(&ddl.to_string())))), txn);
                }
            } else {
                self.block_used = true;
            }
        }
        loop {
            let savepoint = match read_committed.then(|| txn.statement_start()).transpose() {
                Ok(savepoint) => savepoint,
                Err(e) => return self.finish(Err(e), txn),
            };
            let result = run(&self.engine, &compiled, txn.get(), explicit, params).await;
            match (result, savepoint) {
                (Err(e), Some(savepoint)) if is_conflict(&e) => {
                    txn.get().rollback_to(savepoint);
                    if let Err(e) = wait.pause(&self.settings).await {
                        return self.finish(Err(e), txn);
                    }
                }
                (result, savepoint) => {
                    if let Some(savepoint) = savepoint {
                        txn.get().release_savepoint(savepoint);
                    }
                    if explicit && result.is_ok() && matches!(compiled.as_ref(), Compiled::Ddl(_)) {
                        // Kept for a caller that may never take them: the newest few.
                        if self.warnings.len() >= MAX_WARNINGS {
                            self.warnings.remove(0);
                        }
                        self.warnings.push(format!(
                            "{} took effect at once: DDL inside a transaction block is not undone by ROLLBACK in OmenDB",
                            first_words(statement.sql())
                        ));
                    }
                    return self.finish(result.map(|o| statement.present(o)), txn);
                }
            }
        }
    }

    /// Starts `COPY table [(columns)] FROM STDIN [options]`: feed the data
    /// to the returned [`CopyIn`], then end the load with
    /// [`Session::finish_copy`]. The rows go into the open transaction, or
    /// into one of the load's own that `finish_copy` commits. Until then the
    /// session's transaction belongs to the load: other statements fail with
    /// [`Error::TransactionAborted`], and dropping the `CopyIn` abandons the
    /// load and aborts that transaction.
    pub async fn copy_from(&mut self, statement: &PreparedStatement) -> Result<CopyIn> {
        let compiled = match statement.compiled(self.engine.context()).await {
            Ok(c) => c,
            Err(e) => return Err(self.fail(e)),
        };
        let Compiled::CopyFrom(copy) = compiled.as_ref() else {
            return Err(self.fail(Error::Plan(format!("not a COPY ... FROM STDIN statement: {}", first_words(statement.sql())))));
        };
        if self.is_failed() {
            return Err(Error::TransactionAborted);
        }
        let Some((id, schema)) = self.engine.context().rows.table(&copy.table) else {
            return Err(self.fail(Error::UnknownTable(copy.table.clone())));
        };
        let targets = CopyIn::targets(copy, &schema).map_err(|e| self.fail(e))?;
        if self.in_transaction() {
            self.block_used = true;
        }
        Ok(CopyIn::new(copy, id, schema, targets, self.take_txn()?))
    }

    /// The transaction a statement runs in: the open one, or a new one of
    /// its own. The session counts as aborted until [`Session::finish`]
    /// gives an open one back: if the statement's future is dropped (a
    /// cancelled query) or a load is abandoned, the transaction it holds
    /// rolls back and the session must say so.
    fn take_txn(&mut self) -> Result<Txn> {
        Ok(match std::mem::replace(&mut self.state, State::Autocommit) {
            aborted @ State::Aborted(_) => {
                self.state = aborted;
                return Err(Error::TransactionAborted);
            }
            State::InTransaction(txn) => {
                self.state = State::Aborted(None);
                Explicit(txn)
            }
            State::Autocommit => Implicit(self.engine.context().rows.begin()?),
        })
    }

    /// Ends a load [`Session::copy_from`] started: decodes and inserts what
    /// is left, then commits the load's own transaction or gives the
    /// session's back. Returns `COPY` and the rows loaded, or the first
    /// error the data met (which aborts an open transaction).
    pub fn finish_copy(&mut self, mut copy: CopyIn) -> Result<Output> {
        let result = copy.finish().map(|rows| Output::Affected { tag: "COPY", rows });
        self.finish(result, copy.txn)
    }

    /// The fast path of [`Session::execute_prepared`], run on the calling
    /// thread without awaiting: `Some` if the statement has a fast-path form
    /// and this execution could use it, `None` if it must take the general
    /// path (which `execute_prepared` does by itself), or if it must wait
    /// for a row another transaction holds (which needs `execute_prepared`
    /// too).
    pub fn execute_fast(&mut self, statement: &PreparedStatement, params: &[Value]) -> Option<Result<Output>> {
        match self.try_fast(statement, params) {
            Fast::Done(out) => Some(out.map(|o| statement.present(o))),
            Fast::Slow | Fast::Conflict => None,
        }
    }

    fn try_fast(&mut self, statement: &PreparedStatement, params: &[Value]) -> Fast {
        if params.len() != statement.param_count() || self.is_failed() {
            return Fast::Slow;
        }
        let Some(compiled) = statement.current(self.engine.context()) else { return Fast::Slow };
        let Some(fast) = compiled.fast() else { return Fast::Slow };
        let read_committed = self.read_committed();
        let mut txn = match std::mem::replace(&mut self.state, State::Autocommit) {
            State::InTransaction(txn) => {
                self.block_used = true;
                Explicit(txn)
            }
            _ => match self.engine.context().rows.begin() {
                Ok(txn) => Implicit(txn),
                Err(e) => return Fast::Done(Err(e.into())),
            },
        };
        let savepoint = match read_committed.then(|| txn.statement_start()).transpose() {
            Ok(savepoint) => savepoint,
            Err(e) => return Fast::Done(self.finish(Err(e), txn)),
        };
        let result = fast.execute(txn.get(), params);
        let outcome = match (result, savepoint) {
            // Waiting needs an executor: undo the statement and let
            // execute_prepared wait and run it again.
            (Some(Err(e)), Some(savepoint)) if is_conflict(&e) => {
                txn.get().rollback_to(savepoint);
                Fast::Conflict
            }
            (Some(result), savepoint) => {
                if let Some(savepoint) = savepoint {
                    txn.get().release_savepoint(savepoint);
                }
                return Fast::Done(self.finish(result, txn));
            }
            (None, savepoint) => {
                if let Some(savepoint) = savepoint {
                    txn.get().release_savepoint(savepoint);
                }
                Fast::Slow
            }
        };
        // Nothing was written: give an explicit transaction back (an
        // implicit one rolls back as it drops).
        if let Explicit(txn) = txn {
            self.state = State::InTransaction(txn);
        }
        outcome
    }

    fn settings_command(&mut self, command: &Command) -> Result<Output> {
        let columns: Vec<Vec<String>> = match command {
            Command::Set(assignments) => {
                // All or nothing, as one statement.
                let mut settings = self.settings.clone();
                for (name, value) in assignments {
                    // As PostgreSQL (which warns): SET TRANSACTION outside a
                    // transaction block has no effect.
                    if name.eq_ignore_ascii_case("transaction_isolation") {
                        if !self.in_transaction() {
                            continue;
                        }
                        // The block's snapshot rules are fixed by its first
                        // query (and not changed inside a savepoint).
                        if self.block_used || !self.savepoints.is_empty() {
                            return Err(Error::ActiveTransaction("SET TRANSACTION ISOLATION LEVEL must be called before any query"));
                        }
                    }
                    settings.set(name, value.clone())?;
                }
                self.settings = settings;
                return Ok(Output::Command(command.tag()));
            }
            Command::ResetAll => {
                self.settings.reset_all();
                return Ok(Output::Command(command.tag()));
            }
            Command::Show(name) => vec![vec![self.settings.get(name).ok_or_else(|| Error::UnknownSetting(name.clone()))?]],
            Command::ShowAll => {
                let (names, values) = self.settings.all().into_iter().unzip();
                vec![names, values]
            }
        };
        let schema = command.schema().ok_or_else(|| Error::Internal("SHOW without a schema".into()))?;
        let rows = RecordBatch::try_new(Arc::clone(&schema), columns.into_iter().map(|c| Arc::new(StringArray::from(c)) as _).collect())?;
        Ok(Output::Rows { tag: command.tag(), stream: Box::pin(MemoryStream::try_new(vec![rows], schema, None)?) })
    }

    /// Ends a statement: an implicit transaction commits if it succeeded; a
    /// failure aborts an explicit one.
    fn finish(&mut self, result: Result<Output>, txn: Txn) -> Result<Output> {
        match (result, txn) {
            (Ok(out), Explicit(txn)) => {
                self.state = State::InTransaction(txn);
                Ok(out)
            }
            (Ok(out), Implicit(txn)) => {
                txn.commit()?;
                Ok(out)
            }
            (Err(e), Explicit(txn)) => {
                self.abort(txn);
                Err(e)
            }
            (Err(e), Implicit(_)) => Err(e),
        }
    }

    /// Records that a statement failed before it could run (it did not
    /// parse or plan, or its parameters did not decode): an open
    /// transaction is aborted, as if the statement had run and failed.
    pub fn fail_statement(&mut self) {
        match std::mem::replace(&mut self.state, State::Autocommit) {
            State::InTransaction(txn) => self.abort(txn),
            other => self.state = other,
        }
    }

    /// A statement failed in the open transaction: it is kept for ROLLBACK
    /// TO while it has savepoints, else rolled back now (dropped).
    fn abort(&mut self, txn: Transaction) {
        self.state = State::Aborted((!self.savepoints.is_empty()).then_some(txn));
    }

    /// `SAVEPOINT`, `ROLLBACK TO` and `RELEASE`, with PostgreSQL's rules:
    /// only inside a transaction block; ROLLBACK TO also recovers a failed
    /// transaction; an unknown name is an error that aborts the transaction.
    fn savepoint_command(&mut self, command: &SavepointCommand) -> Result<Output> {
        let (statement, tag, name) = match command {
            SavepointCommand::Define(name) => ("SAVEPOINT", "SAVEPOINT", name),
            SavepointCommand::RollbackTo(name) => ("ROLLBACK TO SAVEPOINT", "ROLLBACK", name),
            SavepointCommand::Release(name) => ("RELEASE SAVEPOINT", "RELEASE", name),
        };
        let mut txn = match (std::mem::replace(&mut self.state, State::Autocommit), command) {
            (State::Autocommit, _) => return Err(Error::NoTransaction(statement)),
            (State::InTransaction(txn), _) | (State::Aborted(Some(txn)), SavepointCommand::RollbackTo(_)) => txn,
            (aborted, command) => {
                self.state = aborted;
                // As PostgreSQL: an unknown name is named even here.
                if let SavepointCommand::RollbackTo(name) = command
                    && !self.savepoints.iter().any(|(n, _)| n == name)
                {
                    return Err(Error::UnknownSavepoint(name.clone()));
                }
                return Err(Error::TransactionAborted);
            }
        };
        if let SavepointCommand::Define(_) = command {
            let savepoint = txn.savepoint();
            self.savepoints.push((name.clone(), savepoint));
            self.state = State::InTransaction(txn);
            return Ok(Output::Command(tag));
        }
        let Some(at) = self.savepoints.iter().rposition(|(n, _)| n == name) else {
            self.abort(txn);
            return Err(Error::UnknownSavepoint(name.clone()));
        };
        let mut ended = self.savepoints.split_off(at);
        if let SavepointCommand::RollbackTo(_) = command {
            // The later savepoints' marks lie past this one's: they end
            // with it. It stays, as a fresh savepoint at the same point.
            let (name, savepoint) = ended.swap_remove(0);
            ended.clear();
            txn.rollback_to(savepoint);
            let again = txn.savepoint();
            self.savepoints.push((name, again));
        } else {
            for (_, savepoint) in ended.into_iter().rev() {
                txn.release_savepoint(savepoint);
            }
        }
        self.state = State::InTransaction(txn);
        Ok(Output::Command(tag))
    }

    /// Records a failure: inside a transaction, the transaction is rolled
    /// back and the session waits for COMMIT or ROLLBACK.
    fn fail(&mut self, e: Error) -> Error {
        self.fail_statement();
        e
    }
}

/// How a fast-path attempt ended.
enum Fast {
    Done(Result<Output>),
    /// No fast form for this statement or these parameters.
    Slow,
    /// A READ COMMITTED write met a held or newer row; nothing was written.
    Conflict,
}

fn is_conflict(e: &Error) -> bool {
    matches!(e, Error::SerializationConflict(_))
}

async fn run(engine: &Engine, compiled: &Compiled, txn: &mut Transaction, explicit: bool, params: &[Value]) -> Result<Output> {
    let ctx = engine.context();
    match compiled {
        Compiled::Query { plan, .. } => Ok(Output::Rows { tag: "SELECT", stream: plan.execute(ctx, &plan.plan, txn, params).await? }),
        Compiled::Dml { write, .. } => write.run(ctx, txn, params).await,
        Compiled::Ddl(ddl) => {
            if !explicit {
                return ddl::run(ctx, ddl.as_ref().clone()).await;
            }
            // The catalog is not transactional: DDL commits on its own, at
            // once. Inside a block it is taken only before the block writes
            // (drivers wrap migrations in BEGIN ... COMMIT), and the session
            // warns that ROLLBACK will not undo it. Writes first would make
            // the block's commit and the DDL's two separate steps, and a
            // table the block wrote would wait for the block.
            if !txn.is_read_only() || txn.holds_write_gates() {
                return Err(Error::Unsupported(format!(
                    "{} after writes in the same transaction block (OmenDB's DDL is not transactional: commit the writes first)",
                    first_words(&ddl.to_string())
                )));
            }
            let out = ddl::run(ctx, ddl.as_ref().clone()).await?;
            // The block's later statements see the new catalog's rows (an
            // ALTER TABLE rewrites them after the block's snapshot).
            txn.refresh_snapshot()?;
            Ok(out)
        }
        Compiled::Maintenance(m) => m.run(ctx, explicit),
        Compiled::Truncate(tables) => {
            for table in tables {
                if ctx.rows.table(table).is_none() {
                    return Err(Error::UnknownTable(table.clone()));
                }
                // Transactional, as PostgreSQL's: every row deleted in `txn`.
                let delete = engine.prepare(&format!("DELETE FROM {}", Ident::with_quote('"', table.as_str()))).await?;
                match delete.compiled(ctx).await?.as_ref() {
                    Compiled::Dml { write, .. } => write.run(ctx, txn, &[]).await?,
                    _ => return Err(Error::Internal("DELETE did not compile to a write".into())),
                };
            }
            Ok(Output::Command("TRUNCATE TABLE"))
        }
        Compiled::CopyFrom(_) => Err(Error::Unsupported(
            "COPY ... FROM STDIN without its data: send it with Session::copy_from, or use Database::insert_batches".into(),
        )),
        Compiled::NoOp(_)
        | Compiled::Empty
        | Compiled::Begin(_)
        | Compiled::Commit
        | Compiled::Rollback
        | Compiled::Savepoint(_)
        | Compiled::Settings(_) => Err(Error::Internal("transaction control reached statement execution".into())),
    }
}
