//! Planning a statement through DataFusion over the transaction's snapshot.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemoryCatalogProviderList, MemorySchemaProvider, SchemaProvider};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{SendableRecordBatchStream, execute_stream};
use datafusion::sql::parser::Statement as DfStatement;
use omen_rowstore::{TableId, Transaction, Value};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::params;
use crate::provider::SnapshotTable;

/// A planned statement and the state to run it in.
pub(crate) struct Planned {
    pub(crate) state: SessionState,
    pub(crate) plan: LogicalPlan,
}

impl Planned {
    /// Runs the plan. Tables were scanned during physical planning, so the
    /// stream no longer needs the transaction.
    pub(crate) async fn execute(self) -> Result<SendableRecordBatchStream> {
        let physical = self.state.create_physical_plan(&self.plan).await?;
        Ok(execute_stream(physical, self.state.task_ctx())?)
    }
}

/// The table a reference names, if it exists: a bare name, or one qualified
/// by the only schema, `public`.
pub(crate) fn lookup(engine: &Engine, schema: Option<&str>, table: &str) -> Result<(TableId, Arc<omen_rowstore::TableSchema>)> {
    let qualified = || match schema {
        Some(s) => format!("{s}.{table}"),
        None => table.to_owned(),
    };
    if schema.is_some_and(|s| s != "public") {
        return Err(Error::UnknownTable(qualified()));
    }
    engine.rows.table(table).ok_or_else(|| Error::UnknownTable(qualified()))
}

/// Plans `statement` (a query, or EXPLAIN of one) against `txn`'s snapshot.
/// `with_keys` names the table whose scans carry the hidden key column.
/// The caller has checked the parameter count.
pub(crate) async fn plan(
    engine: &Engine,
    statement: DfStatement,
    txn: &Transaction,
    bound: &[Value],
    with_keys: Option<TableId>,
) -> Result<Planned> {
    let mut tables = HashMap::new();
    for r in engine.state.resolve_table_references(&statement)? {
        match lookup(engine, r.schema(), r.table()) {
            Ok(table) => {
                tables.insert(r.table().to_owned(), table);
            }
            // `FROM generate_series(...)`: DataFusion plans table functions itself.
            Err(_) if r.schema().is_none() && engine.state.table_functions().contains_key(r.table()) => {}
            Err(e) => return Err(e),
        }
    }
    let ids: Vec<TableId> = tables.values().map(|(id, _)| *id).collect();
    let mut snapshots = engine.sync.snapshot(txn, &ids).await?;
    let schema = MemorySchemaProvider::new();
    for (name, (id, table)) in &tables {
        let snap = snapshots.remove(id).ok_or_else(|| Error::Internal(format!("no snapshot of table {name}")))?;
        schema.register_table(name.clone(), Arc::new(SnapshotTable::new(snap, table, with_keys == Some(*id))))?;
    }
    let options = engine.state.config().options();
    let catalog = MemoryCatalogProvider::new();
    catalog.register_schema(&options.catalog.default_schema, Arc::new(schema))?;
    let list = MemoryCatalogProviderList::new();
    datafusion::catalog::CatalogProviderList::register_catalog(&list, options.catalog.default_catalog.clone(), Arc::new(catalog));
    let state = SessionStateBuilder::new_from_existing(engine.state.clone()).with_catalog_list(Arc::new(list)).build();
    let plan = state.statement_to_plan(statement).await?;
    let plan = params::bind(plan, bound)?;
    Ok(Planned { state, plan })
}
