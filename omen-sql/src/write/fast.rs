//! The OLTP fast path: statements that touch rows by their full primary key,
//! and `INSERT ... VALUES`, run without DataFusion at execution time.
//!
//! When a statement is prepared, its logical plan is matched against these
//! shapes (`x` is a literal or a `$n` parameter):
//!
//! - `SELECT exprs FROM t WHERE pk = x [AND pk2 = y ...] [AND other]`
//! - `UPDATE t SET ... WHERE ...` and `DELETE FROM t WHERE ...`, same WHERE
//! - `INSERT INTO t [(columns)] VALUES (...), ...`
//!
//! Every expression (the SELECT list, the rest of the WHERE, SET values,
//! VALUES rows) is compiled once into a DataFusion physical expression over
//! a one-row batch holding the row and the parameters, so the results are
//! DataFusion's own. An execution then converts the key, reads the row from
//! the row store at the transaction's snapshot, evaluates and writes: no
//! planning, no column-store snapshot, no wait for sync.
//!
//! `now()`, `CURRENT_DATE` and other stable functions of no column become
//! extra parameters after `$1..$n`, computed once per execution, so they
//! are fixed for the statement as on the general path.
//!
//! A key value that does not convert exactly to the key column's type
//! (`$1 = 2.5` for an INT key, a NULL, an out-of-range number) sends that
//! execution down the general path, which gives SQL's answer.

use std::cell::Cell;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryArray, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow::compute::{cast, concat};
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::Placeholder;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, Filter, LogicalPlan, Operator, Volatility, WriteOp};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_plan::PhysicalExpr;
use datafusion::physical_plan::memory::MemoryStream;
use omen_rowstore::{ColumnDef, Transaction, Value, encode_key};
use omen_sync::convert::{array_to_values, rows_to_batch};

use crate::context::Context;
use crate::error::Result;
use crate::output::Output;
use crate::params;
use crate::plan::query::TableRef;

type Phys = Arc<dyn PhysicalExpr>;

/// A statement compiled for the fast path.
#[derive(Debug)]
pub(crate) struct FastPlan {
    table: TableRef,
    /// The table's Arrow schema.
    arrow: SchemaRef,
    /// Types of `$1..$n` (all known), then of the lifted stable functions.
    param_types: Vec<Option<ArrowType>>,
    /// Fields of the parameter columns, in order.
    param_fields: Vec<Arc<Field>>,
    /// Stable functions lifted out as parameters `$n+1..`.
    stable: Vec<Expr>,
    /// For the stable functions (their time zone).
    config: Arc<ConfigOptions>,
    /// Whether an expression reads a parameter (else no parameter columns
    /// are built: key parameters are read directly).
    uses_params: bool,
    /// `0..n` for the n key columns: where `encode_key` finds each key
    /// value in the converted key, kept to spare an allocation per run.
    key_positions: Vec<usize>,
    op: Op,
}

#[derive(Debug)]
enum Op {
    /// One row by its full primary key.
    Point {
        key: Vec<KeyPart>,
        /// What the expressions read: the scan's columns, then the parameters.
        input: SchemaRef,
        /// Whether the scan ends with the hidden key column.
        with_key: bool,
        /// The WHERE conjuncts besides the key equalities.
        filter: Option<Phys>,
        action: Action,
    },
    /// `INSERT ... VALUES`.
    Insert {
        /// Each VALUES row, over the parameters.
        rows: Vec<Vec<Phys>>,
        values_schema: SchemaRef,
        /// The table's columns computed from a VALUES row (casts, defaults).
        columns: Vec<Phys>,
    },
}

#[derive(Debug)]
enum Action {
    Select {
        exprs: Vec<Phys>,
        schema: SchemaRef,
    },
    /// The new value of each column.
    Update(Vec<Phys>),
    Delete,
}

#[derive(Debug)]
enum KeyPart {
    Value(Value),
    /// `$n`, 0-based.
    Param(usize),
}

fn param_name(i: usize) -> String {
    format!("__omen_param_{i}")
}

/// Compiles `plan` for the fast path, or `None` if its shape is not one of
/// the module's.
pub(crate) fn compile(ctx: &Context, plan: &LogicalPlan, tables: &[TableRef], nparams: usize) -> Option<FastPlan> {
    if !ctx.fast_path {
        return None;
    }
    let mut param_types = params::types(plan, nparams).ok()?;
    let (lifted, stable) = lift_stable(plan, nparams)?;
    let plan = &lifted;
    for e in &stable {
        param_types.push(Some(e.get_type(&DFSchema::empty()).ok()?));
    }
    let mut param_fields = Vec::with_capacity(param_types.len());
    for (i, t) in param_types.iter().enumerate() {
        param_fields.push(Arc::new(Field::new(param_name(i + 1), t.clone()?, true)));
    }
    let params_schema = DFSchema::try_from(Schema::new(param_fields.clone())).ok()?;
    let compiler = Compiler { ctx, params_schema, uses_params: Cell::new(false) };
    let (table_name, op) = match plan {
        LogicalPlan::Projection(p) => {
            let (scan, filter) = filter_scan(&p.input)?;
            let schema = Arc::new(p.schema.as_arrow().clone());
            let table = find(tables, scan)?;
            let action = |input: &DFSchema| Some(Action::Select { exprs: compiler.exprs(&p.expr, input)?, schema });
            (scan, compiler.point(table, filter, action)?)
        }
        LogicalPlan::Dml(dml) => match (&dml.op, dml.input.as_ref()) {
            (WriteOp::Update, LogicalPlan::Projection(p)) => {
                let (scan, filter) = filter_scan(&p.input)?;
                let table = find(tables, scan)?;
                let ncols = table.schema.columns.len();
                let action = |input: &DFSchema| Some(Action::Update(compiler.exprs(p.expr.get(..ncols)?, input)?));
                (scan, compiler.point(table, filter, action)?)
            }
            (WriteOp::Delete, filter @ LogicalPlan::Filter(_)) => {
                let (scan, filter) = filter_scan(filter)?;
                (scan, compiler.point(find(tables, scan)?, filter, |_| Some(Action::Delete))?)
            }
            (WriteOp::Insert(_), LogicalPlan::Projection(p)) => match p.input.as_ref() {
                LogicalPlan::Values(v) => {
                    let rows = v.values.iter().map(|row| compiler.compile_over(row, &compiler.params_schema)).collect::<Option<_>>()?;
                    let columns = compiler.exprs(&p.expr, &v.schema)?;
                    (dml.table_name.table(), Op::Insert { rows, values_schema: Arc::new(v.schema.as_arrow().clone()), columns })
                }
                _ => return None,
            },
            _ => return None,
        },
        _ => return None,
    };
    let table = tables.iter().find(|t| t.name == table_name)?.clone();
    let arrow = omen_sync::convert::arrow_schema(&table.schema);
    let uses_params = compiler.uses_params.get();
    let op = match op {
        // No expression reads a parameter: rows carry no parameter columns.
        Op::Point { key, input, with_key, filter, action } if !uses_params => {
            let n = input.fields().len() - param_fields.len();
            Op::Point { key, input: Arc::new(Schema::new(input.fields()[..n].to_vec())), with_key, filter, action }
        }
        op => op,
    };
    let key_positions = (0..table.schema.primary_key.len()).collect();
    let config = Arc::clone(ctx.state.config_options());
    Some(FastPlan { table, arrow, param_types, param_fields, stable, config, uses_params, key_positions, op })
}

/// Replaces each stable function call that reads no column or parameter
/// (`now()`, `CURRENT_DATE`, ...) by a parameter `$n+1..`; returns the plan
/// and the calls, in parameter order.
fn lift_stable(plan: &LogicalPlan, nparams: usize) -> Option<(LogicalPlan, Vec<Expr>)> {
    let stable_call = |e: &Expr| matches!(e, Expr::ScalarFunction(f) if f.func.signature().volatility == Volatility::Stable);
    let mut lifted: Vec<Expr> = Vec::new();
    let plan = plan
        .clone()
        .transform_up(|node| {
            node.map_expressions(|e| {
                e.transform_up(|e| {
                    let fixed = stable_call(&e)
                        && !e.any_column_refs()
                        && !e.exists(|e| {
                            Ok(matches!(e, Expr::Placeholder(_))
                                || matches!(e, Expr::ScalarFunction(f) if f.func.signature().volatility == Volatility::Volatile))
                        })?;
                    if !fixed {
                        return Ok(Transformed::no(e));
                    }
                    let j = lifted.iter().position(|x| x == &e).unwrap_or_else(|| {
                        lifted.push(e);
                        lifted.len() - 1
                    });
                    Ok(Transformed::yes(Expr::Placeholder(Placeholder::new_with_field(format!("${}", nparams + j + 1), None))))
                })
            })
        })
        .ok()?
        .data;
    Some((plan, lifted))
}

/// The Filter over a table scan under `plan`, and the scanned table's name.
fn filter_scan(plan: &LogicalPlan) -> Option<(&str, &Filter)> {
    let LogicalPlan::Filter(filter) = plan else { return None };
    let scan = match filter.input.as_ref() {
        LogicalPlan::SubqueryAlias(a) => a.input.as_ref(),
        other => other,
    };
    match scan {
        LogicalPlan::TableScan(s) if s.filters.is_empty() && s.fetch.is_none() && s.projection.is_none() => {
            Some((s.table_name.table(), filter))
        }
        _ => None,
    }
}

fn find<'a>(tables: &'a [TableRef], name: &str) -> Option<&'a TableRef> {
    tables.iter().find(|t| t.name == name).filter(|t| !t.schema.primary_key.is_empty())
}

struct Compiler<'a> {
    ctx: &'a Context,
    params_schema: DFSchema,
    uses_params: Cell<bool>,
}

impl Compiler<'_> {
    /// Physical expressions of `exprs` over `input` plus the parameters.
    fn exprs(&self, exprs: &[Expr], input: &DFSchema) -> Option<Vec<Phys>> {
        let schema = input.join(&self.params_schema).ok()?;
        self.compile_over(exprs, &schema)
    }

    /// Physical expressions of `exprs` over `schema`, `$n` read from the
    /// parameter columns.
    fn compile_over(&self, exprs: &[Expr], schema: &DFSchema) -> Option<Vec<Phys>> {
        exprs
            .iter()
            .map(|e| {
                // now() and friends are fixed when a physical expression is
                // made; the general path evaluates them per execution.
                let varies = e
                    .exists(|e| Ok(matches!(e, Expr::ScalarFunction(f) if f.func.signature().volatility != Volatility::Immutable)))
                    .unwrap_or(true);
                if varies {
                    return None;
                }
                let e = e
                    .clone()
                    .transform_up(|e| match e {
                        Expr::Placeholder(p) => {
                            self.uses_params.set(true);
                            let i: usize = p.id.strip_prefix('$').and_then(|n| n.parse().ok()).unwrap_or(0);
                            Ok(Transformed::yes(Expr::Column(Column::from_name(param_name(i)))))
                        }
                        other => Ok(Transformed::no(other)),
                    })
                    .ok()?
                    .data;
                self.ctx.state.create_physical_expr(crate::plan::checked::expr(e, schema).ok()?, schema).ok()
            })
            .collect()
    }

    /// A point operation: the WHERE must pin every primary-key column.
    fn point(&self, table: &TableRef, filter: &Filter, action: impl FnOnce(&DFSchema) -> Option<Action>) -> Option<Op> {
        let input = filter.input.schema();
        let mut rest: Vec<&Expr> = split_conjunction(&filter.predicate);
        let mut key = Vec::with_capacity(table.schema.primary_key.len());
        for &k in &table.schema.primary_key {
            let (j, part) =
                rest.iter().enumerate().find_map(|(j, e)| key_equality(e, input, k, &table.schema.columns[k]).map(|p| (j, p)))?;
            rest.remove(j);
            key.push(part);
        }
        let filter_expr = match conjunction(rest.into_iter().cloned()) {
            Some(e) => Some(self.exprs(&[e], input)?.pop()?),
            None => None,
        };
        let with_key = input.fields().len() > table.schema.columns.len();
        let mut fields: Vec<Arc<Field>> = input.fields().iter().cloned().collect();
        fields.extend(self.params_schema.fields().iter().cloned());
        Some(Op::Point { key, input: Arc::new(Schema::new(fields)), with_key, filter: filter_expr, action: action(input)? })
    }
}

/// `column k = literal | $n` (either way round).
fn key_equality(e: &Expr, input: &DFSchema, k: usize, column: &ColumnDef) -> Option<KeyPart> {
    let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = e else { return None };
    let is_key = |e: &Expr| matches!(e, Expr::Column(c) if input.index_of_column(c).ok() == Some(k));
    let other = if is_key(left) {
        right.as_ref()
    } else if is_key(right) {
        left.as_ref()
    } else {
        return None;
    };
    match other {
        Expr::Literal(v, _) => params::exact(v, column).map(KeyPart::Value),
        Expr::Placeholder(p) => {
            p.id.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()).filter(|&n| n > 0).map(|n| KeyPart::Param(n - 1))
        }
        _ => None,
    }
}

impl FastPlan {
    /// Runs the statement in `txn`; `None` if this execution must take the
    /// general path (a key value that does not convert exactly, or
    /// parameters that need the general path's error message).
    pub(crate) fn execute(&self, txn: &mut Transaction, params: &[Value]) -> Option<Result<Output>> {
        // Parameters converted to their inferred types, made only if needed.
        let mut typed = None;
        let mut key_values = Vec::new();
        if let Op::Point { key, .. } = &self.op {
            key_values.reserve(key.len());
            for (part, &k) in key.iter().zip(&self.table.schema.primary_key) {
                let column = &self.table.schema.columns[k];
                key_values.push(match part {
                    KeyPart::Value(v) => v.clone(),
                    // A value of the column's own type is used as it is.
                    KeyPart::Param(i) => match params.get(*i)? {
                        v if !v.is_null() && !matches!(v, Value::Decimal { .. }) && v.fits(&column.data_type) => v.clone(),
                        _ => params::exact(self.typed(params, &mut typed)?.get(*i)?, column)?,
                    },
                });
            }
        }
        let param_columns = match self.uses_params {
            true => self.typed(params, &mut typed)?.iter().map(|s| s.to_array().ok()).collect::<Option<Vec<_>>>()?,
            false => Vec::new(),
        };
        match &self.op {
            Op::Point { input, with_key, filter, action, .. } => {
                let key = encode_key(&key_values, &self.key_positions);
                Some(self.point(txn, &key, input, *with_key, filter.as_ref(), action, param_columns))
            }
            Op::Insert { rows, values_schema, columns } => Some(self.insert(txn, rows, values_schema, columns, param_columns)),
        }
    }

    /// `params` in their inferred types, then the stable functions' values,
    /// made once into `cache`; `None` if one does not convert (the general
    /// path reports it).
    fn typed<'a>(&self, params: &[Value], cache: &'a mut Option<Vec<ScalarValue>>) -> Option<&'a [ScalarValue]> {
        if cache.is_none() {
            let mut t = params::typed(&self.param_types, params).ok()?;
            if !self.stable.is_empty() {
                let context = SimplifyContext::builder().with_config_options(Arc::clone(&self.config)).with_current_time().build();
                let simplifier = ExprSimplifier::new(context);
                for e in &self.stable {
                    match simplifier.simplify(e.clone()).ok()? {
                        Expr::Literal(v, _) => t.push(v),
                        _ => return None,
                    }
                }
            }
            if t.len() != self.param_fields.len() || t.iter().zip(&self.param_fields).any(|(s, f)| s.data_type() != *f.data_type()) {
                return None;
            }
            *cache = Some(t);
        }
        cache.as_deref()
    }

    #[allow(clippy::too_many_arguments)]
    fn point(
        &self,
        txn: &mut Transaction,
        key: &[u8],
        input: &SchemaRef,
        with_key: bool,
        filter: Option<&Phys>,
        action: &Action,
        params: Vec<ArrayRef>,
    ) -> Result<Output> {
        let id = self.table.id;
        let found = txn.get(id, key)?;
        let batch = match &found {
            Some(row) => {
                let row_batch = rows_to_batch(&self.table.schema, &self.arrow, &[row.as_slice()])?;
                let mut columns = row_batch.columns().to_vec();
                if with_key {
                    columns.push(Arc::new(BinaryArray::from_iter_values([key])));
                }
                columns.extend(params);
                let batch = RecordBatch::try_new(Arc::clone(input), columns)?;
                match filter {
                    Some(f) if !is_true(f.evaluate(&batch)?.into_array(1)?.as_ref()) => None,
                    _ => Some(batch),
                }
            }
            None => None,
        };
        let tag = match action {
            Action::Select { exprs, schema } => {
                let out = match &batch {
                    Some(b) => evaluate(exprs, b, schema)?,
                    None => RecordBatch::new_empty(Arc::clone(schema)),
                };
                return Ok(Output::Rows { tag: "SELECT", stream: Box::pin(MemoryStream::try_new(vec![out], Arc::clone(schema), None)?) });
            }
            Action::Update(_) => "UPDATE",
            Action::Delete => "DELETE",
        };
        let Some(batch) = batch else { return Ok(Output::Affected { tag, rows: 0 }) };
        let changed = match action {
            Action::Update(exprs) => {
                let mut row = Vec::with_capacity(exprs.len());
                for (e, c) in exprs.iter().zip(&self.table.schema.columns) {
                    let array = e.evaluate(&batch)?.into_array(1)?;
                    row.push(array_to_values(array.as_ref(), &c.data_type)?.pop().unwrap_or(Value::Null));
                }
                txn.update(id, key, row)?
            }
            _ => txn.delete(id, key)?,
        };
        Ok(Output::Affected { tag, rows: u64::from(changed) })
    }

    fn insert(
        &self,
        txn: &mut Transaction,
        rows: &[Vec<Phys>],
        values_schema: &SchemaRef,
        columns: &[Phys],
        params: Vec<ArrayRef>,
    ) -> Result<Output> {
        let fields: Vec<Arc<Field>> = if self.uses_params { self.param_fields.clone() } else { Vec::new() };
        let options = RecordBatchOptions::new().with_row_count(Some(1));
        let param_batch = RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), params, &options)?;
        // VALUES, column by column, in the types the planner unified them to.
        let mut cells: Vec<Vec<ArrayRef>> = vec![Vec::with_capacity(rows.len()); values_schema.fields().len()];
        for row in rows {
            for ((e, out), f) in row.iter().zip(&mut cells).zip(values_schema.fields()) {
                let a = e.evaluate(&param_batch)?.into_array(1)?;
                out.push(if a.data_type() == f.data_type() { a } else { cast(&a, f.data_type())? });
            }
        }
        let values_columns =
            cells.iter().map(|c| concat(&c.iter().map(|a| a.as_ref()).collect::<Vec<_>>())).collect::<Result<Vec<_>, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
        let values = RecordBatch::try_new_with_options(Arc::clone(values_schema), values_columns, &options)?;
        let table = evaluate(columns, &values, &self.arrow)?;
        let rows = crate::write::dml::batch_rows(&table, &self.table.schema)?;
        let n = rows.len() as u64;
        for row in rows {
            txn.insert(self.table.id, row)?;
        }
        Ok(Output::Affected { tag: "INSERT", rows: n })
    }
}

/// Evaluates `exprs` over `input` into a batch of `schema`.
fn evaluate(exprs: &[Phys], input: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let n = input.num_rows();
    let columns = exprs
        .iter()
        .zip(schema.fields())
        .map(|(e, f)| {
            let a = e.evaluate(input)?.into_array(n)?;
            Ok(if a.data_type() == f.data_type() { a } else { cast(&a, f.data_type())? })
        })
        .collect::<Result<Vec<_>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(n));
    Ok(RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)?)
}

fn is_true(a: &dyn Array) -> bool {
    a.as_any().downcast_ref::<BooleanArray>().is_some_and(|b| b.is_valid(0) && b.value(0))
}
