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
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::planner::object_name_to_table_reference;
use datafusion::sql::sqlparser::ast::{
    Assignment, AssignmentTarget, Delete, FromTable, Insert, ObjectName, Statement as SqlStatement, TableFactor, TableObject,
    TableWithJoins, Update,
};
use futures::TryStreamExt;
use omen_rowstore::{TableSchema, Transaction, Value};
use omen_sync::convert::array_to_values;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::query::{self, Planned};

pub(crate) async fn insert(engine: &Engine, insert: Insert, txn: &mut Transaction, params: &[Value]) -> Result<u64> {
    if insert.on.is_some() {
        return Err(Error::Unsupported("INSERT ... ON CONFLICT".into()));
    }
    if insert.returning.is_some() {
        return Err(Error::Unsupported("INSERT ... RETURNING".into()));
    }
    if insert.source.is_none() {
        return Err(Error::Unsupported("INSERT without VALUES or SELECT (DEFAULT VALUES)".into()));
    }
    let table = match &insert.table {
        TableObject::TableName(name) => name.clone(),
        other => return Err(Error::Unsupported(format!("INSERT INTO {other}"))),
    };
    let (rows, schema, id) = dml_rows(engine, SqlStatement::Insert(insert), &table, txn, params, false).await?;
    let mut n = 0;
    for batch in &rows {
        for row in batch_rows(batch, &schema)? {
            txn.insert(id, row)?;
            n += 1;
        }
    }
    Ok(n)
}

pub(crate) async fn update(engine: &Engine, update: Update, txn: &mut Transaction, params: &[Value]) -> Result<u64> {
    if update.returning.is_some() {
        return Err(Error::Unsupported("UPDATE ... RETURNING".into()));
    }
    if update.from.is_some() {
        return Err(Error::Unsupported("UPDATE ... FROM".into()));
    }
    check_assignments(&update.assignments)?;
    let table = table_name(&update.table)?;
    let (rows, schema, id) = dml_rows(engine, SqlStatement::Update(update), &table, txn, params, true).await?;
    let mut n = 0;
    for batch in &rows {
        let keys = key_column(batch, &schema)?;
        for (i, row) in batch_rows(batch, &schema)?.into_iter().enumerate() {
            if txn.update(id, keys.value(i), row)? {
                n += 1;
            }
        }
    }
    Ok(n)
}

pub(crate) async fn delete(engine: &Engine, delete: Delete, txn: &mut Transaction, params: &[Value]) -> Result<u64> {
    if delete.returning.is_some() {
        return Err(Error::Unsupported("DELETE ... RETURNING".into()));
    }
    if delete.using.is_some() || !delete.tables.is_empty() {
        return Err(Error::Unsupported("DELETE ... USING".into()));
    }
    if delete.limit.is_some() || !delete.order_by.is_empty() {
        return Err(Error::Unsupported("DELETE ... ORDER BY / LIMIT".into()));
    }
    let table = match &delete.from {
        FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => match t.as_slice() {
            [one] => table_name(one)?,
            _ => return Err(Error::Unsupported("DELETE from several tables".into())),
        },
    };
    let (rows, schema, id) = dml_rows(engine, SqlStatement::Delete(delete), &table, txn, params, true).await?;
    let mut n = 0;
    for batch in &rows {
        let keys = key_column(batch, &schema)?;
        for i in 0..keys.len() {
            if txn.delete(id, keys.value(i))? {
                n += 1;
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

/// Plans a DML statement and runs its input: the rows to write.
async fn dml_rows(
    engine: &Engine,
    statement: SqlStatement,
    table: &ObjectName,
    txn: &Transaction,
    params: &[Value],
    with_keys: bool,
) -> Result<(Vec<RecordBatch>, std::sync::Arc<TableSchema>, omen_rowstore::TableId)> {
    let reference = object_name_to_table_reference(table.clone(), true)?;
    let (id, schema) = query::lookup(engine, reference.schema(), reference.table())?;
    let mut planned = query::plan(engine, DfStatement::Statement(Box::new(statement)), txn, params, with_keys.then_some(id)).await?;
    planned = match planned.plan {
        LogicalPlan::Dml(dml) => Planned { plan: dml.input.as_ref().clone(), ..planned },
        other => return Err(Error::Internal(format!("DML planned as {}", other.display()))),
    };
    let rows: Vec<RecordBatch> = planned.execute().await?.try_collect().await?;
    Ok((rows, schema, id))
}

/// The table's columns of each row of `batch`, as SQL values.
fn batch_rows(batch: &RecordBatch, schema: &TableSchema) -> Result<Vec<Vec<Value>>> {
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
