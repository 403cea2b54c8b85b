//! Expressions over rows a statement already holds: a RETURNING list, and
//! ON CONFLICT DO UPDATE's SET and WHERE.
//!
//! DataFusion plans them once, as `SELECT <exprs> FROM <table> AS <alias>`
//! (with `CROSS JOIN <table> AS excluded` for ON CONFLICT), which gives
//! name resolution, `*` expansion and types exactly as in a query. Each
//! execution binds the parameters and turns the projection into physical
//! expressions, evaluated on batches built from the rows written: no scan,
//! no optimizer, no physical plan.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::DFSchemaRef;
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use omen_rowstore::{ColumnDef, TableSchema, Value};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::names::quote;
use crate::params;
use crate::plan::query::{self, TableRef};

/// Expressions planned over one or more copies of a table's row.
#[derive(Debug)]
pub(crate) struct RowExprs {
    /// The planned `SELECT`, kept to find the types of `$n` parameters.
    plan: LogicalPlan,
    names: Vec<String>,
    /// What the expressions read: the table's columns, once per relation.
    input: DFSchemaRef,
    /// `input` as an Arrow schema.
    arrow: SchemaRef,
    /// The table's columns repeated once per relation, to build input batches.
    input_table: TableSchema,
}

/// [`RowExprs`] with parameters bound, ready to evaluate.
pub(crate) struct Bound<'a> {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    of: &'a RowExprs,
}

impl RowExprs {
    /// Plans `items` (a select list, as SQL text) over `target`, named
    /// `alias`, and, with `excluded`, a second copy of the row named so.
    /// `what` names the clause in errors.
    pub(crate) async fn plan(
        ctx: &Context,
        target: &TableRef,
        alias: &str,
        excluded: Option<&str>,
        items: &str,
        what: &str,
    ) -> Result<Self> {
        let table = quote(&target.name);
        let mut sql = format!("SELECT {items} FROM {table} AS {alias}");
        if let Some(excluded) = excluded {
            sql.push_str(&format!(" CROSS JOIN {table} AS {excluded}"));
        }
        let dialect = PostgreSqlDialect {};
        let statement = DFParserBuilder::new(sql.as_str())
            .with_dialect(&dialect)
            .build()?
            .parse_statement()
            .map_err(|e| Error::Internal(format!("{what} did not re-parse: {e}")))?;
        let planned = query::plan(ctx, statement_of(statement)?, None).await?;
        let LogicalPlan::Projection(projection) = &planned.plan else {
            return Err(Error::Unsupported(format!("aggregate or window functions in {what}")));
        };
        if !only_scans(&projection.input) {
            return Err(Error::Unsupported(format!("aggregate or window functions in {what}")));
        }
        if projection.expr.iter().any(has_subquery) {
            return Err(Error::Unsupported(format!("subqueries in {what}")));
        }
        let relations = if excluded.is_some() { 2 } else { 1 };
        let columns: Vec<ColumnDef> = (0..relations).flat_map(|_| target.schema.columns.iter().cloned()).collect();
        let input_table = TableSchema { name: target.name.clone(), columns, primary_key: Vec::new() };
        if projection.input.schema().fields().len() != input_table.columns.len() {
            return Err(Error::Internal(format!("{what} planned over an unexpected input")));
        }
        Ok(Self {
            names: projection.schema.fields().iter().map(|f| f.name().clone()).collect(),
            input: Arc::clone(projection.input.schema()),
            arrow: Arc::new(projection.input.schema().as_arrow().clone()),
            input_table,
            plan: planned.plan.clone(),
        })
    }

    /// Binds `params` and makes the physical expressions.
    /// The planned `SELECT` of the expressions (its schema is theirs).
    pub(crate) fn logical(&self) -> &LogicalPlan {
        &self.plan
    }

    pub(crate) fn bind(&self, ctx: &Context, bound_params: &[Value]) -> Result<Bound<'_>> {
        let exprs = match params::bind(self.plan.clone(), bound_params)? {
            LogicalPlan::Projection(p) => p.expr,
            other => return Err(Error::Internal(format!("row expressions bound into {}", other.display()))),
        };
        let exprs = exprs
            .into_iter()
            .map(|e| Ok(ctx.state.create_physical_expr(crate::plan::checked::expr(e, &self.input)?, &self.input)?))
            .collect::<Result<_>>()?;
        Ok(Bound { exprs, of: self })
    }
}

impl Bound<'_> {
    /// Evaluates the expressions on `rows`, each the concatenation of one
    /// row per relation.
    pub(crate) fn evaluate(&self, rows: &[&[Value]]) -> Result<RecordBatch> {
        let batch = omen_sync::convert::rows_to_batch(&self.of.input_table, &self.of.arrow, rows)?;
        let columns =
            self.exprs.iter().map(|e| Ok(e.evaluate(&batch)?.into_array(batch.num_rows())?)).collect::<Result<Vec<ArrayRef>>>()?;
        let fields: Vec<Field> =
            self.of.names.iter().zip(&columns).map(|(name, c)| Field::new(name, c.data_type().clone(), true)).collect();
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
    }
}

fn statement_of(statement: DfStatement) -> Result<DfStatement> {
    match statement {
        s @ DfStatement::Statement(_) => Ok(s),
        other => Err(Error::Internal(format!("not a query: {other}"))),
    }
}

/// Whether `plan` only names tables (aliases, scans, the cross join): no
/// aggregation or window step that would change what a row is.
fn only_scans(plan: &LogicalPlan) -> bool {
    let shape_ok = matches!(plan, LogicalPlan::SubqueryAlias(_) | LogicalPlan::TableScan(_))
        || matches!(plan, LogicalPlan::Join(j) if j.on.is_empty() && j.filter.is_none());
    shape_ok && plan.inputs().into_iter().all(only_scans)
}

fn has_subquery(e: &Expr) -> bool {
    e.exists(|e| Ok(matches!(e, Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)))).unwrap_or(true)
}
