//! INSERT, UPDATE and DELETE.
//!
//! DataFusion plans each into a `DmlStatement` whose input computes the rows
//! to write (INSERT: every column, defaults filled and values cast; UPDATE:
//! every column with the new values, plus the hidden key column; DELETE: the
//! matching rows with their keys) on the transaction's snapshot, own writes
//! included. OmenDB runs that input and applies the rows through the row
//! store, so constraints, conflicts and the change stream work as for any
//! other write.

use arrow::array::{Array, BinaryArray, RecordBatch};
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{
    Assignment, AssignmentTarget, FromTable, ObjectName, Statement as SqlStatement, TableFactor, TableObject, TableWithJoins,
};
use futures::TryStreamExt;
use omen_rowstore::{TableSchema, Transaction, Value};
use omen_sync::convert::array_to_values;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::query::{Plan, TableRef};

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

/// The kind and target table of a DML statement, after refusing what this
/// version does not support; `None` if `statement` is not DML.
pub(crate) fn target(statement: &SqlStatement) -> Result<Option<(Kind, ObjectName)>> {
    Ok(Some(match statement {
        SqlStatement::Insert(insert) => {
            if insert.on.is_some() {
                return Err(Error::Unsupported("INSERT ... ON CONFLICT".into()));
            }
            if insert.returning.is_some() {
                return Err(Error::Unsupported("INSERT ... RETURNING".into()));
            }
            if insert.source.is_none() {
                return Err(Error::Unsupported("INSERT without VALUES or SELECT (DEFAULT VALUES)".into()));
            }
            match &insert.table {
                TableObject::TableName(name) => (Kind::Insert, name.clone()),
                other => return Err(Error::Unsupported(format!("INSERT INTO {other}"))),
            }
        }
        SqlStatement::Update(update) => {
            if update.returning.is_some() {
                return Err(Error::Unsupported("UPDATE ... RETURNING".into()));
            }
            if update.from.is_some() {
                return Err(Error::Unsupported("UPDATE ... FROM".into()));
            }
            check_assignments(&update.assignments)?;
            (Kind::Update, table_name(&update.table)?)
        }
        SqlStatement::Delete(delete) => {
            if delete.returning.is_some() {
                return Err(Error::Unsupported("DELETE ... RETURNING".into()));
            }
            if delete.using.is_some() || !delete.tables.is_empty() {
                return Err(Error::Unsupported("DELETE ... USING".into()));
            }
            if delete.limit.is_some() || !delete.order_by.is_empty() {
                return Err(Error::Unsupported("DELETE ... ORDER BY / LIMIT".into()));
            }
            match &delete.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => match t.as_slice() {
                    [one] => (Kind::Delete, table_name(one)?),
                    _ => return Err(Error::Unsupported("DELETE from several tables".into())),
                },
            }
        }
        _ => return Ok(None),
    }))
}

/// Runs a planned DML statement: its input computes the rows to write on
/// `txn`'s snapshot (INSERT: every column; UPDATE: every column plus the
/// hidden key; DELETE: the hidden key), which are applied to the row store.
pub(crate) async fn run(
    engine: &Engine,
    kind: Kind,
    plan: &Plan,
    target: &TableRef,
    txn: &mut Transaction,
    params: &[Value],
) -> Result<u64> {
    let LogicalPlan::Dml(dml) = &plan.plan else {
        return Err(Error::Internal(format!("DML planned as {}", plan.plan.display())));
    };
    let rows: Vec<RecordBatch> = plan.execute(engine, &dml.input, txn, params).await?.try_collect().await?;
    let (id, schema) = (target.id, &target.schema);
    let mut n = 0;
    for batch in &rows {
        match kind {
            Kind::Insert => {
                for row in batch_rows(batch, schema)? {
                    txn.insert(id, row)?;
                    n += 1;
                }
            }
            Kind::Update => {
                let keys = key_column(batch, schema)?;
                for (i, row) in batch_rows(batch, schema)?.into_iter().enumerate() {
                    n += u64::from(txn.update(id, keys.value(i), row)?);
                }
            }
            Kind::Delete => {
                let keys = key_column(batch, schema)?;
                for i in 0..keys.len() {
                    n += u64::from(txn.delete(id, keys.value(i))?);
                }
            }
        }
    }
    Ok(n)
}

/// The table a DML statement targets: a plain table, no joins.
fn table_name(t: &TableWithJoins) -> Result<ObjectName> {
    match &t.relation {
        TableFactor::Table { name, args: None, .. } if t.joins.is_empty() => Ok(name.clone()),
        _ => Err(Error::Unsupported(format!("DML on {t}: only a single table can be changed"))),
    }
}

/// The hidden key column cannot be assigned: it is the row's identity.
fn check_assignments(assignments: &[Assignment]) -> Result<()> {
    for a in assignments {
        match &a.target {
            AssignmentTarget::ColumnName(name) => {
                if name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| i.value == omen_colstore::KEY_COLUMN) {
                    return Err(Error::UnknownColumn(omen_colstore::KEY_COLUMN.into()));
                }
            }
            AssignmentTarget::Tuple(_) => return Err(Error::Unsupported("UPDATE SET (a, b) = (...)".into())),
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
