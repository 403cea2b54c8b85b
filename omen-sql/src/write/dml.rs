//! INSERT, UPDATE and DELETE.
//!
//! DataFusion plans each into a `DmlStatement` whose input computes the rows
//! to write (INSERT: every column, defaults filled and values cast; UPDATE:
//! every column with the new values, plus the hidden key column; DELETE: the
//! matching rows with their keys) on the transaction's snapshot, own writes
//! included. OmenDB runs that input and applies the rows through the row
//! store, so constraints, conflicts and the change stream work as for any
//! other write.
//!
//! `UPDATE ... FROM` and `DELETE ... USING` (which DataFusion does not plan)
//! become a query OmenDB writes itself: the target joined with the other
//! tables, giving every column as the row will be (the new values cast to
//! the column types) and the key. A target row that joins several rows is
//! changed once, with the values of the first, as PostgreSQL does.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, BinaryArray, RecordBatch};
use datafusion::common::{Column, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{DmlStatement, Expr as DfExpr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, Projection, WriteOp};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::planner::object_name_to_table_reference;
use datafusion::sql::sqlparser::ast::{
    Assignment, AssignmentTarget, Expr as SqlExpr, FromTable, ObjectName, OnInsert, SelectItem, Statement as SqlStatement, TableFactor,
    TableObject, TableWithJoins, UpdateTableFromKind,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use futures::TryStreamExt;
use omen_rowstore::{TableSchema, Transaction, Value};
use omen_sync::convert::array_to_values;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::names::normalize_ident;
use crate::output::Output;
use crate::plan::query::{self, Plan, TableRef};
use crate::scan::provider::SnapshotTable;
use crate::write::conflict::OnConflict;
use crate::write::rowexpr::RowExprs;

/// Which write a DML statement makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Insert,
    Update,
    Delete,
}

impl Kind {
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Kind::Insert => "INSERT",
            Kind::Update => "UPDATE",
            Kind::Delete => "DELETE",
        }
    }
}

/// What a DML statement writes to, and the clauses OmenDB runs itself
/// rather than DataFusion.
pub(crate) struct Target {
    pub(crate) kind: Kind,
    pub(crate) table: ObjectName,
    /// The name the statement gives the table (its alias), as SQL text.
    pub(crate) alias: Option<String>,
    pub(crate) returning: Option<Vec<SelectItem>>,
    pub(crate) on_conflict: Option<OnInsert>,
    /// UPDATE ... FROM, DELETE ... USING: what the write's query joins.
    pub(crate) joined: Option<Joined>,
}

/// The clauses of an UPDATE ... FROM or DELETE ... USING.
pub(crate) struct Joined {
    /// The target as written (with its alias).
    target: TableWithJoins,
    /// The other tables (FROM or USING).
    tables: Vec<TableWithJoins>,
    selection: Option<SqlExpr>,
    /// UPDATE's SET; empty for DELETE.
    assignments: Vec<Assignment>,
}

/// The kind and target table of a DML statement, after refusing what this
/// version does not support; `None` if `statement` is not DML. RETURNING
/// and ON CONFLICT are taken out of the statement, which DataFusion then
/// plans as the plain write that computes the rows.
pub(crate) fn target(statement: &mut SqlStatement) -> Result<Option<Target>> {
    Ok(Some(match statement {
        SqlStatement::Insert(insert) => {
            if insert.source.is_none() {
                return Err(Error::Unsupported("INSERT without VALUES or SELECT (DEFAULT VALUES)".into()));
            }
            if insert.or.is_some() || insert.ignore || insert.replace_into {
                return Err(Error::Unsupported("INSERT OR ... / INSERT IGNORE / REPLACE (use ON CONFLICT)".into()));
            }
            match &insert.table {
                TableObject::TableName(name) => Target {
                    kind: Kind::Insert,
                    table: name.clone(),
                    // DataFusion plans no INSERT alias; only ON CONFLICT and RETURNING see it.
                    alias: insert.table_alias.take().map(|a| a.alias.to_string()),
                    returning: insert.returning.take(),
                    on_conflict: insert.on.take(),
                    joined: None,
                },
                other => return Err(Error::Unsupported(format!("INSERT INTO {other}"))),
            }
        }
        SqlStatement::Update(update) => {
            check_assignments(&update.assignments)?;
            let (table, alias) = table_name(&update.table)?;
            let joined = match update.from.take() {
                Some(UpdateTableFromKind::AfterSet(tables)) => Some(Joined {
                    target: update.table.clone(),
                    tables,
                    selection: update.selection.take(),
                    assignments: std::mem::take(&mut update.assignments),
                }),
                Some(UpdateTableFromKind::BeforeSet(_)) => {
                    return Err(Error::Unsupported("UPDATE FROM ... SET (FROM goes after SET)".into()));
                }
                None => None,
            };
            Target { kind: Kind::Update, table, alias, returning: update.returning.take(), on_conflict: None, joined }
        }
        SqlStatement::Delete(delete) => {
            if !delete.tables.is_empty() {
                return Err(Error::Unsupported("DELETE naming tables before FROM (use DELETE FROM t USING ...)".into()));
            }
            if delete.limit.is_some() || !delete.order_by.is_empty() {
                return Err(Error::Unsupported("DELETE ... ORDER BY / LIMIT".into()));
            }
            let one = match &delete.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => match t.as_slice() {
                    [one] => one.clone(),
                    _ => return Err(Error::Unsupported("DELETE from several tables".into())),
                },
            };
            let (table, alias) = table_name(&one)?;
            let joined = delete.using.take().map(|tables| Joined {
                target: one,
                tables,
                selection: delete.selection.take(),
                assignments: Vec::new(),
            });
            Target { kind: Kind::Delete, table, alias, returning: delete.returning.take(), on_conflict: None, joined }
        }
        _ => return Ok(None),
    }))
}

/// A planned INSERT, UPDATE or DELETE.
#[derive(Debug)]
pub(crate) struct Write {
    pub(crate) kind: Kind,
    pub(crate) plan: Plan,
    pub(crate) target: TableRef,
    returning: Option<RowExprs>,
    on_conflict: Option<OnConflict>,
    /// A join may give a target row more than once: change it once.
    once_per_row: bool,
}

impl Write {
    /// Plans `statement`, whose target is `spec` (see [`target`]).
    pub(crate) async fn plan(ctx: &Context, statement: SqlStatement, spec: Target) -> Result<Self> {
        let reference = object_name_to_table_reference(spec.table, true)?;
        let target = query::lookup(ctx, reference.schema(), reference.table())?;
        let with_keys = (spec.kind != Kind::Insert).then_some(target.id);
        let once_per_row = spec.joined.is_some();
        let plan = match &spec.joined {
            Some(joined) => joined.plan(ctx, &target, spec.kind).await?,
            None => query::plan(ctx, DfStatement::Statement(Box::new(statement)), with_keys).await?,
        };
        let alias = spec.alias.unwrap_or_else(|| crate::names::quote(&target.name));
        let returning = match &spec.returning {
            Some(items) => {
                let items: Vec<String> = items.iter().map(ToString::to_string).collect();
                Some(RowExprs::plan(ctx, &target, &alias, None, &items.join(", "), "RETURNING").await?)
            }
            None => None,
        };
        let on_conflict = match &spec.on_conflict {
            Some(on) => Some(OnConflict::compile(ctx, &target, &alias, on).await?),
            None => None,
        };
        Ok(Self { kind: spec.kind, plan, target, returning, on_conflict, once_per_row })
    }

    /// Every plan whose `$n` parameters the write binds: its own, RETURNING's
    /// and DO UPDATE's.
    pub(crate) fn plans(&self) -> Vec<&LogicalPlan> {
        let mut plans = vec![&self.plan.plan];
        plans.extend(self.returning.as_ref().map(RowExprs::logical));
        plans.extend(self.on_conflict.as_ref().and_then(OnConflict::plan));
        plans
    }

    /// The rows RETURNING gives, if the write has the clause.
    pub(crate) fn returning(&self) -> Option<&LogicalPlan> {
        self.returning.as_ref().map(RowExprs::logical)
    }

    /// Whether the fast path may serve it: the clauses OmenDB runs itself
    /// need the general path.
    pub(crate) fn is_plain(&self) -> bool {
        self.returning.is_none() && self.on_conflict.is_none()
    }

    /// Runs the write: its input computes the rows on `txn`'s snapshot
    /// (INSERT: every column; UPDATE: every column plus the hidden key;
    /// DELETE: the rows and their keys), which are applied to the row store.
    pub(crate) async fn run(&self, ctx: &Context, txn: &mut Transaction, params: &[Value]) -> Result<Output> {
        let LogicalPlan::Dml(dml) = &self.plan.plan else {
            return Err(Error::Internal(format!("DML planned as {}", self.plan.plan.display())));
        };
        let rows: Vec<RecordBatch> = self.plan.execute(ctx, &dml.input, txn, params).await?.try_collect().await?;
        let (id, schema) = (self.target.id, &self.target.schema);
        // RETURNING needs the rows as written.
        let keep = self.returning.is_some();
        let mut written: Vec<Vec<Value>> = Vec::new();
        let mut n = 0;
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut first = |key: &[u8]| !self.once_per_row || seen.insert(key.to_vec());
        for batch in &rows {
            match self.kind {
                Kind::Insert => {
                    let proposed = batch_rows(batch, schema)?;
                    if let Some(on_conflict) = &self.on_conflict {
                        let applied = on_conflict.apply(ctx, &self.target, txn, proposed, params, keep)?;
                        n += applied.count;
                        written.extend(applied.written);
                        continue;
                    }
                    for row in proposed {
                        let copy = keep.then(|| row.clone());
                        txn.insert(id, row)?;
                        written.extend(copy);
                        n += 1;
                    }
                }
                Kind::Update => {
                    let keys = key_column(batch, schema)?;
                    for (i, row) in batch_rows(batch, schema)?.into_iter().enumerate() {
                        let copy = keep.then(|| row.clone());
                        if first(keys.value(i)) && txn.update(id, keys.value(i), row)? {
                            written.extend(copy);
                            n += 1;
                        }
                    }
                }
                Kind::Delete => {
                    let keys = key_column(batch, schema)?;
                    let old = if keep { batch_rows(batch, schema)? } else { Vec::new() };
                    for i in 0..keys.len() {
                        if first(keys.value(i)) && txn.delete(id, keys.value(i))? {
                            written.extend(old.get(i).cloned());
                            n += 1;
                        }
                    }
                }
            }
        }
        let tag = self.kind.tag();
        let Some(returning) = &self.returning else { return Ok(Output::Affected { tag, rows: n }) };
        let rows: Vec<&[Value]> = written.iter().map(Vec::as_slice).collect();
        let batch = returning.bind(ctx, params)?.evaluate(&rows)?;
        let stream = MemoryStream::try_new(vec![batch.clone()], batch.schema(), None)?;
        Ok(Output::Rows { tag, stream: Box::pin(stream) })
    }
}

impl Joined {
    /// The write's input: a query of the target joined with the other
    /// tables, giving the target's columns as they will be written, then its
    /// key; wrapped as the DML statement DataFusion would have made.
    async fn plan(&self, ctx: &Context, target: &TableRef, kind: Kind) -> Result<Plan> {
        let name = match &self.target.relation {
            TableFactor::Table { alias: Some(alias), .. } => crate::names::quote(&normalize_ident(alias.name.clone())),
            _ => crate::names::quote(&target.name),
        };
        let mut assigned: HashMap<String, &SqlExpr> = HashMap::new();
        for a in &self.assignments {
            let column = match &a.target {
                AssignmentTarget::ColumnName(ObjectName(parts)) => match parts.as_slice() {
                    [one] => one.as_ident().map(|i| normalize_ident(i.clone())).unwrap_or_default(),
                    _ => return Err(Error::Internal("a qualified SET column passed check_assignments".into())),
                },
                AssignmentTarget::Tuple(_) => return Err(Error::Internal("SET (a, b) passed check_assignments".into())),
            };
            if !target.schema.columns.iter().any(|c| c.name == column) {
                return Err(Error::UnknownColumn(format!("{column} (of table {})", target.name)));
            }
            if assigned.insert(column.clone(), &a.value).is_some() {
                return Err(Error::Plan(format!("multiple assignments to same column \"{column}\"")));
            }
        }
        let mut items: Vec<String> = target
            .schema
            .columns
            .iter()
            .map(|c| match assigned.get(&c.name) {
                Some(value) => format!("({value}) AS {}", crate::names::quote(&c.name)),
                None => format!("{name}.{}", crate::names::quote(&c.name)),
            })
            .collect();
        items.push(format!("{name}.{}", crate::names::quote(omen_colstore::KEY_COLUMN)));
        let tables: Vec<String> = std::iter::once(&self.target).chain(&self.tables).map(ToString::to_string).collect();
        let mut sql = format!("SELECT {} FROM {}", items.join(", "), tables.join(", "));
        if let Some(selection) = &self.selection {
            sql += &format!(" WHERE {selection}");
        }
        let statement = DFParser::parse_sql_with_dialect(&sql, &PostgreSqlDialect {})?.pop_front().ok_or_else(|| {
            Error::Internal(format!("{} ... {}: no query", kind.tag(), if kind == Kind::Update { "FROM" } else { "USING" }))
        })?;
        let Plan { plan, tables } = query::plan(ctx, statement, Some(target.id)).await?;
        let arrow = omen_sync::convert::arrow_schema(&target.schema);
        let plan = type_placeholders(plan, &arrow)?;
        // Cast the new values to the column types; the key passes as it is.
        let input_schema = Arc::clone(plan.schema());
        let mut exprs = Vec::with_capacity(items.len());
        for (i, (qualifier, field)) in input_schema.iter().enumerate() {
            let column = DfExpr::Column(Column::from((qualifier, field)));
            exprs.push(match arrow.fields().get(i) {
                Some(to) => column.cast_to(to.data_type(), &input_schema)?.alias(to.name()),
                None => column,
            });
        }
        let input = LogicalPlanBuilder::from(plan).project(exprs)?.build()?;
        let reference = TableReference::bare(target.name.clone());
        let source = provider_as_source(Arc::new(SnapshotTable::new(target.id, &target.schema, true)));
        let op = if kind == Kind::Update { WriteOp::Update } else { WriteOp::Delete };
        Ok(Plan { plan: LogicalPlan::Dml(DmlStatement::new(reference, source, op, Arc::new(input))), tables })
    }
}

/// `plan` (the joined query's projection) with each `SET column = $n` given
/// the column's type, as DataFusion's own UPDATE planning does, so a
/// prepared statement reports it and binds values of that type.
fn type_placeholders(plan: LogicalPlan, columns: &arrow::datatypes::Schema) -> Result<LogicalPlan> {
    let LogicalPlan::Projection(projection) = plan else { return Ok(plan) };
    let exprs = projection
        .expr
        .into_iter()
        .zip(columns.fields().iter().map(Some).chain(std::iter::repeat(None)))
        .map(|(e, field)| match (e, field) {
            (DfExpr::Alias(mut alias), Some(field)) => {
                if let DfExpr::Placeholder(p) = alias.expr.as_mut()
                    && p.field.is_none()
                {
                    p.field = Some(Arc::clone(field));
                }
                DfExpr::Alias(alias)
            }
            (e, _) => e,
        })
        .collect();
    Ok(LogicalPlan::Projection(Projection::try_new(exprs, projection.input)?))
}

/// The table a DML statement targets (a plain table, no joins), and its
/// alias if it has one.
fn table_name(t: &TableWithJoins) -> Result<(ObjectName, Option<String>)> {
    match &t.relation {
        TableFactor::Table { name, args: None, alias, .. } if t.joins.is_empty() => {
            if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
                return Err(Error::Unsupported("column aliases on the target of UPDATE or DELETE".into()));
            }
            Ok((name.clone(), alias.as_ref().map(|a| a.name.to_string())))
        }
        _ => Err(Error::Unsupported(format!("DML on {t}: only a single table can be changed"))),
    }
}

/// What SET may name: a column of the target, unqualified (as in
/// PostgreSQL), never the hidden key column (the row's identity); and a
/// value, not DEFAULT.
fn check_assignments(assignments: &[Assignment]) -> Result<()> {
    for a in assignments {
        match &a.target {
            AssignmentTarget::ColumnName(name) => {
                if name.0.len() != 1 {
                    return Err(Error::Plan(format!("SET {name}: name the column without a table (UPDATE ... SET column = value)")));
                }
                if name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| i.value == omen_colstore::KEY_COLUMN) {
                    return Err(Error::UnknownColumn(omen_colstore::KEY_COLUMN.into()));
                }
            }
            AssignmentTarget::Tuple(_) => return Err(Error::Unsupported("UPDATE SET (a, b) = (...)".into())),
        }
        if matches!(&a.value, SqlExpr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default")) {
            return Err(Error::Unsupported("UPDATE ... SET column = DEFAULT".into()));
        }
    }
    Ok(())
}

/// The table's columns of each row of `batch`, as SQL values.
pub(crate) fn batch_rows(batch: &RecordBatch, schema: &TableSchema) -> Result<Vec<Vec<Value>>> {
    let mut rows = vec![Vec::with_capacity(schema.columns.len()); batch.num_rows()];
    for (i, c) in schema.columns.iter().enumerate() {
        for (row, v) in rows.iter_mut().zip(array_to_values(batch.column(i).as_ref(), &c.data_type)?) {
            row.push(v);
        }
    }
    Ok(rows)
}

fn key_column<'a>(batch: &'a RecordBatch, schema: &TableSchema) -> Result<&'a BinaryArray> {
    batch
        .column(schema.columns.len())
        .as_any()
        .downcast_ref::<BinaryArray>()
        .ok_or_else(|| Error::Internal("DML input lacks the key column".into()))
}

/// [`crate::Engine::insert_batches`].
pub(crate) fn insert_batches(ctx: &Context, table: &str, batches: &[RecordBatch]) -> Result<u64> {
    let (id, schema) = ctx.rows.table(table).ok_or_else(|| Error::UnknownTable(table.into()))?;
    if let Some(b) = batches.iter().find(|b| b.num_columns() != schema.columns.len()) {
        return Err(Error::Plan(format!("table {table:?} has {} columns, a batch {}", schema.columns.len(), b.num_columns())));
    }
    let mut txn = ctx.rows.begin()?;
    let mut n = 0;
    for batch in batches {
        for row in batch_rows(batch, &schema)? {
            txn.insert(id, row)?;
            n += 1;
        }
    }
    txn.commit()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use crate::{Engine, EngineOptions};
    use arrow::datatypes::DataType;

    #[tokio::test]
    async fn parameters_of_update_from_take_the_types_of_what_they_meet() {
        let engine = Engine::open(EngineOptions::default()).unwrap();
        let mut s = engine.session();
        s.execute("CREATE TABLE t (k INT PRIMARY KEY, v BIGINT, b BYTEA)", &[]).await.unwrap();
        s.execute("CREATE TABLE o (k INT PRIMARY KEY, tag TEXT)", &[]).await.unwrap();
        let update = engine.prepare("UPDATE t SET v = $1, b = $2 FROM o WHERE o.k = t.k AND o.tag = $3").await.unwrap();
        assert_eq!(update.param_types(), [Some(DataType::Int64), Some(DataType::Binary), Some(DataType::Utf8)]);
        let delete = engine.prepare("DELETE FROM t USING o WHERE o.k = t.k AND o.tag = $1").await.unwrap();
        assert_eq!(delete.param_types(), [Some(DataType::Utf8)]);
    }
}
