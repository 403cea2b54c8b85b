//! Planning a statement through DataFusion once, and running the plan on a
//! transaction's snapshot as often as needed.
//!
//! Tables in a plan are [`SnapshotTable`]s bound to no rows: each execution
//! takes the snapshots of its transaction and hands them to physical
//! planning as a config extension ([`Snapshots`]).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemoryCatalogProviderList, MemorySchemaProvider, SchemaProvider};
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{SendableRecordBatchStream, execute_stream};
use datafusion::sql::parser::Statement as DfStatement;
use omen_rowstore::{TableId, TableSchema, Transaction, Value};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::params;
use crate::pg::information_schema::InformationSchema;
use crate::pg::schemas::INFORMATION_SCHEMA;
use crate::plan::memory::task_ctx;
use crate::scan::provider::{SnapshotTable, Snapshots};

/// A table a plan reads, as it was when the plan was made.
#[derive(Debug, Clone)]
pub(crate) struct TableRef {
    pub(crate) name: String,
    pub(crate) id: TableId,
    pub(crate) schema: Arc<TableSchema>,
}

impl TableRef {
    /// Whether the table still exists with the schema the plan was made for.
    pub(crate) fn is_current(&self, ctx: &Context) -> bool {
        ctx.rows.table(&self.name).is_some_and(|(id, schema)| id == self.id && Arc::ptr_eq(&schema, &self.schema))
    }
}

/// A logical plan and the tables it reads.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) plan: LogicalPlan,
    pub(crate) tables: Vec<TableRef>,
}

/// The table a reference names, if it exists: a bare name, or one qualified
/// by the only schema, `public`.
pub(crate) fn lookup(ctx: &Context, schema: Option<&str>, table: &str) -> Result<TableRef> {
    let qualified = || match schema {
        Some(s) => format!("{s}.{table}"),
        None => table.to_owned(),
    };
    if schema.is_some_and(|s| s != "public") {
        return Err(Error::UnknownTable(qualified()));
    }
    let (id, schema) = ctx.rows.table(table).ok_or_else(|| Error::UnknownTable(qualified()))?;
    Ok(TableRef { name: table.to_owned(), id, schema })
}

/// Plans `statement` (a query, DML, or EXPLAIN of one) against the current
/// catalog. `with_keys` names the table whose scans carry the hidden key
/// column.
pub(crate) async fn plan(ctx: &Context, statement: DfStatement, with_keys: Option<TableId>) -> Result<Plan> {
    let mut tables: HashMap<String, TableRef> = HashMap::new();
    let information_schema: Arc<dyn SchemaProvider> = Arc::new(InformationSchema::new(ctx.rows.clone()));
    for r in ctx.state.resolve_table_references(&statement)? {
        let system = match r.schema() {
            Some(crate::pg::schemas::PG_CATALOG) => Some(&ctx.pg_catalog),
            Some(INFORMATION_SCHEMA) => Some(&information_schema),
            _ => None,
        };
        if let Some(system) = system {
            if !system.table_exist(r.table()) {
                return Err(Error::UnknownTable(r.to_string()));
            }
            continue;
        }
        match lookup(ctx, r.schema(), r.table()) {
            Ok(table) => {
                tables.insert(table.name.clone(), table);
            }
            // `FROM generate_series(...)`: DataFusion plans table functions itself.
            Err(_) if r.schema().is_none() && ctx.state.table_functions().contains_key(r.table()) => {}
            Err(e) => return Err(e),
        }
    }
    let schema = MemorySchemaProvider::new();
    for t in tables.values() {
        schema.register_table(t.name.clone(), Arc::new(SnapshotTable::new(t.id, &t.schema, with_keys == Some(t.id))))?;
    }
    let options = ctx.state.config().options();
    let catalog = MemoryCatalogProvider::new();
    catalog.register_schema(&options.catalog.default_schema, Arc::new(schema))?;
    catalog.register_schema(crate::pg::schemas::PG_CATALOG, Arc::clone(&ctx.pg_catalog))?;
    catalog.register_schema(INFORMATION_SCHEMA, information_schema)?;
    let list = MemoryCatalogProviderList::new();
    datafusion::catalog::CatalogProviderList::register_catalog(&list, options.catalog.default_catalog.clone(), Arc::new(catalog));
    let state = SessionStateBuilder::new_from_existing(ctx.state.clone()).with_catalog_list(Arc::new(list)).build();
    let plan = state.statement_to_plan(statement).await?;
    Ok(Plan { plan, tables: tables.into_values().collect() })
}

impl Plan {
    /// Whether every table still is what the plan was made for.
    pub(crate) fn is_current(&self, ctx: &Context) -> bool {
        self.tables.iter().all(|t| t.is_current(ctx))
    }

    /// Runs `plan` (this plan's, or a part of it) with `params` bound, on
    /// `txn`'s snapshot and own writes. Tables are scanned during physical
    /// planning, so the stream no longer needs the transaction.
    pub(crate) async fn execute(
        &self,
        ctx: &Context,
        plan: &LogicalPlan,
        txn: &Transaction,
        bound: &[Value],
    ) -> Result<SendableRecordBatchStream> {
        let mut state = ctx.state.clone();
        // now() and friends are fixed at this instant, for the whole statement.
        let config = Arc::clone(state.config_options());
        state.execution_props_mut().mark_start_execution(config);
        let plan = params::bind(plan.clone(), bound)?;
        let optimized = crate::plan::access::probe_scans(ctx, state.optimize(&plan)?, txn)?;
        // Only whole-table scans read the column store, and wait for sync.
        let ids = crate::plan::access::full_scans(&optimized)?;
        let snapshots = ctx.sync.snapshot(txn, &ids).await?;
        state.config_mut().set_extension(Arc::new(Snapshots::new(snapshots)));
        let physical = state.query_planner().create_physical_plan(&optimized, &state).await?;
        Ok(execute_stream(physical, task_ctx(ctx, &state))?)
    }
}
