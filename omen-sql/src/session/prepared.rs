//! Prepared statements: parsed, checked and planned once, run many times.
//!
//! A [`PreparedStatement`] keeps its logical plan (and, for primary-key
//! point statements and `INSERT ... VALUES`, its fast-path form). Tables are
//! bound to rows only when it runs, so one plan serves every transaction.
//! If DDL changes or replaces a table the plan read, the next execution
//! plans again from the parsed statement, as PostgreSQL re-plans cached
//! plans.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType as ArrowType, SchemaRef};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Statement as SqlStatement, TransactionAccessMode, TransactionMode};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use futures::StreamExt;
use parking_lot::RwLock;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::params;
use crate::pg::settings::Isolation;
use crate::plan::query::{self, Plan};
use crate::write::dml;
use crate::write::fast::{self, FastPlan};

/// A statement parsed and planned once; run it with
/// [`Session::execute_prepared`](crate::Session::execute_prepared). Cheap to
/// share between sessions and threads (`Arc`).
pub struct PreparedStatement {
    sql: String,
    /// Kept to plan again when a table the plan read changes.
    statement: Option<DfStatement>,
    params: usize,
    compiled: RwLock<Arc<Compiled>>,
    /// PostgreSQL's names for a query's result columns ([`crate::names`]).
    names: Option<Vec<Option<String>>>,
}

impl std::fmt::Debug for PreparedStatement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedStatement").field("sql", &self.sql).field("params", &self.params).finish_non_exhaustive()
    }
}

/// What a statement was compiled into.
#[derive(Debug)]
pub(crate) enum Compiled {
    /// Only whitespace or comments.
    Empty,
    /// `BEGIN`, with the isolation level it names.
    Begin(Option<Isolation>),
    Commit,
    Rollback,
    /// `SAVEPOINT`, `ROLLBACK TO` or `RELEASE`, by savepoint name.
    Savepoint(SavepointCommand),
    /// Runs when executed (commits on its own).
    Ddl(Box<SqlStatement>),
    /// `SET`, `RESET` or `SHOW`: the session's settings.
    Settings(crate::pg::settings::Command),
    /// `COPY ... FROM STDIN`: runs through [`crate::Session::copy_from`].
    CopyFrom(crate::write::copy::CopyFrom),
    /// A statement accepted for PostgreSQL clients that has nothing to do
    /// here, by its command tag: `DEALLOCATE` (SQL-level prepared
    /// statements do not exist; protocol-level ones are replaced when a
    /// client parses the name again).
    NoOp(&'static str),
    /// `VACUUM`, `ANALYZE` or `CHECKPOINT`.
    Maintenance(crate::write::maintenance::Maintenance),
    /// `TRUNCATE`: these tables emptied in the statement's transaction.
    Truncate(Vec<String>),
    Query {
        plan: Plan,
        fast: Option<FastPlan>,
    },
    Dml {
        write: Box<dml::Write>,
        fast: Option<FastPlan>,
    },
}

/// A savepoint statement (PostgreSQL's semantics: names may repeat, and
/// each command finds the newest savepoint of its name).
#[derive(Debug)]
pub(crate) enum SavepointCommand {
    /// `SAVEPOINT name`.
    Define(String),
    /// `ROLLBACK TO [SAVEPOINT] name`: undoes what followed it, keeps it.
    RollbackTo(String),
    /// `RELEASE [SAVEPOINT] name`: forgets it and every later one.
    Release(String),
}

impl Compiled {
    fn is_current(&self, ctx: &Context) -> bool {
        match self {
            Compiled::Query { plan, .. } => plan.is_current(ctx),
            Compiled::Dml { write, .. } => write.plan.is_current(ctx),
            _ => true,
        }
    }

    pub(crate) fn fast(&self) -> Option<&FastPlan> {
        match self {
            Compiled::Query { fast, .. } | Compiled::Dml { fast, .. } => fast.as_ref(),
            _ => None,
        }
    }
}

impl PreparedStatement {
    /// Parses and plans `sql` (one statement) against the current catalog.
    pub(crate) async fn new(ctx: &Context, sql: &str) -> Result<Self> {
        // Statements DataFusion's parser does not take as PostgreSQL spells them.
        let special = match leading_word(sql).as_str() {
            "copy" => crate::write::copy::CopyFrom::parse(sql)?.map(Compiled::CopyFrom),
            "vacuum" | "analyze" | "checkpoint" => crate::write::maintenance::Maintenance::parse(sql)?.map(Compiled::Maintenance),
            _ => None,
        };
        if let Some(compiled) = special {
            return Ok(Self { sql: sql.to_owned(), statement: None, params: 0, compiled: RwLock::new(Arc::new(compiled)), names: None });
        }
        let statement = parse(sql)?;
        let params = match &statement {
            Some(DfStatement::Statement(s)) => params::count(s.as_ref())?,
            _ => 0,
        };
        let compiled = match &statement {
            Some(s) => compile(ctx, s.clone(), params).await?,
            None => Compiled::Empty,
        };
        let names = statement.as_ref().and_then(crate::names::of_statement);
        Ok(Self { sql: sql.to_owned(), statement, params, compiled: RwLock::new(Arc::new(compiled)), names })
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Whether this is `COPY ... FROM STDIN`, which runs through
    /// [`Session::copy_from`](crate::Session::copy_from) rather than
    /// `execute`.
    pub fn is_copy_from(&self) -> bool {
        matches!(self.compiled.read().as_ref(), Compiled::CopyFrom(_))
    }

    /// Whether running it may wait for the log to reach the disk: COMMIT,
    /// DDL (which commits on its own, and may wait for a table's writers),
    /// or a write outside an explicit transaction. A server runs such a
    /// statement where the wait blocks no other session's work.
    pub fn commits(&self, in_transaction: bool) -> bool {
        match self.compiled.read().as_ref() {
            Compiled::Commit | Compiled::Ddl(_) => true,
            Compiled::Dml { .. } | Compiled::Truncate(_) | Compiled::CopyFrom(_) => !in_transaction,
            _ => false,
        }
    }

    /// How many `$n` parameters the statement takes.
    pub fn param_count(&self) -> usize {
        self.params
    }

    /// The types the statement's `$1..$n` take, as planned (`None` where
    /// nothing in the statement fixes one: the value is used as given).
    pub fn param_types(&self) -> Vec<Option<ArrowType>> {
        let compiled = Arc::clone(&self.compiled.read());
        let plans: Vec<&LogicalPlan> = match compiled.as_ref() {
            Compiled::Query { plan, .. } => vec![&plan.plan],
            Compiled::Dml { write, .. } => write.plans(),
            _ => Vec::new(),
        };
        let mut types = vec![None; self.params];
        for plan in plans {
            let Ok(found) = params::types(plan, self.params) else { continue };
            for (t, f) in types.iter_mut().zip(found) {
                if t.is_none() {
                    *t = f;
                }
            }
        }
        types
    }

    /// The schema of the rows the statement returns (a query's, RETURNING's,
    /// SHOW's); `None` if it returns none.
    pub fn result_schema(&self) -> Option<SchemaRef> {
        let compiled = Arc::clone(&self.compiled.read());
        match compiled.as_ref() {
            Compiled::Query { plan, .. } => Some(self.named(plan.plan.schema().inner())),
            Compiled::Dml { write, .. } => write.returning().map(|p| Arc::clone(p.schema().inner())),
            Compiled::Settings(command) => command.schema(),
            _ => None,
        }
    }

    /// A query's result schema under PostgreSQL's column names.
    fn named(&self, schema: &SchemaRef) -> SchemaRef {
        match &self.names {
            Some(names) => crate::names::rename(schema, names),
            None => Arc::clone(schema),
        }
    }

    /// A query's rows under PostgreSQL's column names.
    pub(crate) fn present(&self, output: Output) -> Output {
        match output {
            Output::Rows { tag: "SELECT", stream } if self.names.is_some() => {
                let schema = self.named(&stream.schema());
                let batches = Arc::clone(&schema);
                let renamed = stream.map(move |b| {
                    b.and_then(|b| RecordBatch::try_new(Arc::clone(&batches), b.columns().to_vec()).map_err(DataFusionError::from))
                });
                Output::Rows { tag: "SELECT", stream: Box::pin(RecordBatchStreamAdapter::new(schema, renamed)) }
            }
            other => other,
        }
    }

    /// Whether the statement runs on the fast path: primary-key point
    /// statements and `INSERT ... VALUES`, which skip DataFusion when they
    /// run (an execution whose key does not convert exactly still plans).
    pub fn is_fast_path(&self) -> bool {
        self.compiled.read().fast().is_some()
    }

    /// The compiled form, if the tables it read are unchanged.
    pub(crate) fn current(&self, ctx: &Context) -> Option<Arc<Compiled>> {
        let c = Arc::clone(&self.compiled.read());
        c.is_current(ctx).then_some(c)
    }

    /// The compiled form, planned again if a table it read has changed.
    pub(crate) async fn compiled(&self, ctx: &Context) -> Result<Arc<Compiled>> {
        if let Some(c) = self.current(ctx) {
            return Ok(c);
        }
        let statement = self.statement.clone().ok_or_else(|| Error::Internal("an empty statement has no plan".into()))?;
        let c = Arc::new(compile(ctx, statement, self.params).await?);
        *self.compiled.write() = Arc::clone(&c);
        Ok(c)
    }
}

/// The first word of `sql`, lower-cased (comments are not skipped: a
/// statement behind one takes the general parser, which refuses it).
fn leading_word(sql: &str) -> String {
    sql.trim_start().chars().take_while(char::is_ascii_alphabetic).take(10).collect::<String>().to_ascii_lowercase()
}

fn parse(sql: &str) -> Result<Option<DfStatement>> {
    let mut statements: std::collections::VecDeque<DfStatement> = if crate::pg::catalog::needs_rewrite(sql) {
        crate::pg::catalog::parse(sql)?.into()
    } else {
        let dialect = PostgreSqlDialect {};
        DFParserBuilder::new(sql).with_dialect(&dialect).build()?.parse_statements()?
    };
    match statements.len() {
        0 => Ok(None),
        1 => Ok(statements.pop_front()),
        n => Err(Error::Unsupported(format!("{n} statements in one call: run them one at a time"))),
    }
}

async fn compile(ctx: &Context, statement: DfStatement, params: usize) -> Result<Compiled> {
    let s = match statement {
        DfStatement::Statement(s) => *s,
        explain @ DfStatement::Explain(_) => {
            if params > 0 {
                return Err(Error::Unsupported("parameters in EXPLAIN".into()));
            }
            return Ok(Compiled::Query { plan: query::plan(ctx, explain, None).await?, fast: None });
        }
        DfStatement::Reset(datafusion::sql::parser::ResetStatement::Variable(name)) => {
            return Ok(Compiled::Settings(crate::pg::settings::Command::reset(&name)));
        }
        other => return Err(Error::Unsupported(first_words(&other.to_string()))),
    };
    Ok(match s {
        SqlStatement::StartTransaction { ref modes, .. } => Compiled::Begin(check_modes(modes)?),
        SqlStatement::Commit { chain: false, .. } => Compiled::Commit,
        SqlStatement::Rollback { chain: false, savepoint: None } => Compiled::Rollback,
        SqlStatement::Rollback { chain: false, savepoint: Some(name) } => {
            Compiled::Savepoint(SavepointCommand::RollbackTo(crate::names::normalize_ident(name)))
        }
        SqlStatement::Savepoint { name } => Compiled::Savepoint(SavepointCommand::Define(crate::names::normalize_ident(name))),
        SqlStatement::ReleaseSavepoint { name } => Compiled::Savepoint(SavepointCommand::Release(crate::names::normalize_ident(name))),
        s @ (SqlStatement::Set(_) | SqlStatement::Reset(_) | SqlStatement::ShowVariable { .. }) => {
            match crate::pg::settings::Command::compile(&s)? {
                Some(command) => Compiled::Settings(command),
                None => return Err(Error::Unsupported(first_words(&s.to_string()))),
            }
        }
        q @ (SqlStatement::Query(_) | SqlStatement::Explain { .. }) => {
            let plan = query::plan(ctx, DfStatement::Statement(Box::new(q)), None).await?;
            let fast = fast::compile(ctx, &plan.plan, &plan.tables, params);
            Compiled::Query { plan, fast }
        }
        SqlStatement::Deallocate { .. } => Compiled::NoOp("DEALLOCATE"),
        SqlStatement::Truncate(t) => {
            let tables = t.table_names.iter().map(|t| crate::names::table_name(&t.name)).collect::<Result<Vec<_>>>()?;
            if t.partitions.is_some() || t.if_exists || t.on_cluster.is_some() {
                return Err(Error::Unsupported("TRUNCATE options other than TABLE, ONLY, RESTART IDENTITY and CASCADE".into()));
            }
            Compiled::Truncate(tables)
        }
        ddl @ (SqlStatement::CreateTable(_) | SqlStatement::CreateIndex(_) | SqlStatement::AlterTable(_) | SqlStatement::Drop { .. }) => {
            Compiled::Ddl(Box::new(ddl))
        }
        mut other => match dml::target(&mut other)? {
            Some(spec) => {
                let write = dml::Write::plan(ctx, other, spec).await?;
                let fast = if write.is_plain() { fast::compile(ctx, &write.plan.plan, &write.plan.tables, params) } else { None };
                Compiled::Dml { write: Box::new(write), fast }
            }
            None => return Err(Error::Unsupported(first_words(&other.to_string()))),
        },
    })
}

/// The isolation level `BEGIN` names, if any; READ ONLY is refused.
fn check_modes(modes: &[TransactionMode]) -> Result<Option<Isolation>> {
    let mut level = None;
    for m in modes {
        match m {
            TransactionMode::IsolationLevel(l) => level = Some(crate::pg::settings::level_of(l)?),
            TransactionMode::AccessMode(TransactionAccessMode::ReadOnly) => {
                return Err(Error::Unsupported("READ ONLY transactions".into()));
            }
            TransactionMode::AccessMode(_) => {}
        }
    }
    Ok(level)
}

/// The statement's leading keywords, to name what is unsupported.
pub(crate) fn first_words(sql: &str) -> String {
    let words: Vec<&str> = sql.split_whitespace().take(2).collect();
    format!("the statement {}", words.join(" "))
}
