//! `INSERT ... ON CONFLICT`: which unique constraints arbitrate, and what
//! becomes of a row that collides with one.
//!
//! Rows are taken one at a time, in order, as PostgreSQL takes them: each
//! is checked against the arbiters at the transaction's snapshot (its own
//! writes included, so a row can collide with one the same statement
//! inserted), then inserted, skipped (`DO NOTHING`) or turned into an
//! update of the row it collides with (`DO UPDATE`). A collision with a
//! row committed after the snapshot surfaces as a serialization conflict
//! from the insert, as under PostgreSQL's REPEATABLE READ.

use std::collections::HashSet;

use arrow::array::Array;
use datafusion::sql::sqlparser::ast::{self, AssignmentTarget, ConflictTarget, OnConflictAction, OnInsert};
use omen_rowstore::{IndexDef, KeyRange, Transaction, Value, encode_key};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::names::normalize_ident;
use crate::plan::query::TableRef;
use crate::write::rowexpr::RowExprs;
use datafusion::logical_expr::LogicalPlan;

/// A compiled `ON CONFLICT` clause.
#[derive(Debug)]
pub(crate) struct OnConflict {
    target: Target,
    action: Action,
}

/// What the clause names as its conflict target.
#[derive(Debug)]
enum Target {
    /// No target: every unique constraint (DO NOTHING only).
    Any,
    /// `(columns)`: the unique constraints on exactly these columns.
    Columns(Vec<usize>),
    /// `ON CONSTRAINT name`.
    Constraint(String),
}

#[derive(Debug)]
enum Action {
    Nothing,
    /// `DO UPDATE SET columns = exprs [WHERE]`: `exprs` holds the new
    /// values, then the condition if there is one, over the existing row and
    /// the proposed one (`excluded`).
    Update {
        columns: Vec<usize>,
        exprs: Box<RowExprs>,
        condition: bool,
    },
}

/// A unique constraint that decides whether a row collides.
enum Arbiter {
    PrimaryKey,
    Index(IndexDef),
}

/// What running the clause over a statement's rows did.
pub(crate) struct Applied {
    /// Rows inserted or updated.
    pub(crate) count: u64,
    /// Those rows as written, when RETURNING wants them.
    pub(crate) written: Vec<Vec<Value>>,
}

/// The PostgreSQL message for a conflict target no constraint matches.
const NO_MATCH: &str = "there is no unique or exclusion constraint matching the ON CONFLICT specification";

impl OnConflict {
    /// The plan of the DO UPDATE expressions, if any.
    pub(crate) fn plan(&self) -> Option<&LogicalPlan> {
        match &self.action {
            Action::Update { exprs, .. } => Some(exprs.logical()),
            Action::Nothing => None,
        }
    }

    /// Compiles `on` for rows inserted into `target`, called `alias` in
    /// the clause's expressions.
    pub(crate) async fn compile(ctx: &Context, target: &TableRef, alias: &str, on: &OnInsert) -> Result<Self> {
        let OnInsert::OnConflict(on) = on else {
            return Err(Error::Unsupported("ON DUPLICATE KEY UPDATE (use ON CONFLICT ... DO UPDATE)".into()));
        };
        let schema = &target.schema;
        let column = |ident: &ast::Ident| {
            let name = normalize_ident(ident.clone());
            schema.column_index(&name).ok_or(Error::UnknownColumn(name))
        };
        let target_spec = match &on.conflict_target {
            None => Target::Any,
            Some(ConflictTarget::Columns(names)) => {
                let mut columns = names.iter().map(column).collect::<Result<Vec<_>>>()?;
                columns.sort_unstable();
                columns.dedup();
                Target::Columns(columns)
            }
            Some(ConflictTarget::OnConstraint(name)) => Target::Constraint(crate::names::table_name(name)?),
        };
        let action = match &on.action {
            OnConflictAction::DoNothing => Action::Nothing,
            OnConflictAction::DoUpdate(update) => {
                if matches!(target_spec, Target::Any) {
                    return Err(Error::Plan("ON CONFLICT DO UPDATE requires inference specification or constraint name".into()));
                }
                let mut columns = Vec::with_capacity(update.assignments.len());
                let mut items = Vec::with_capacity(update.assignments.len() + 1);
                for a in &update.assignments {
                    let AssignmentTarget::ColumnName(name) = &a.target else {
                        return Err(Error::Unsupported("SET (a, b) = (...) in ON CONFLICT DO UPDATE".into()));
                    };
                    let ident = match name.0.as_slice() {
                        [part] => part.as_ident().cloned(),
                        _ => None,
                    }
                    .ok_or_else(|| Error::Plan(format!("column {name} of ON CONFLICT DO UPDATE SET must be unqualified")))?;
                    let c = column(&ident)?;
                    if columns.contains(&c) {
                        return Err(Error::Plan(format!("multiple assignments to the same column {:?}", schema.columns[c].name)));
                    }
                    columns.push(c);
                    items.push(a.value.to_string());
                }
                if let Some(condition) = &update.selection {
                    items.push(condition.to_string());
                }
                let exprs = RowExprs::plan(ctx, target, alias, Some("excluded"), &items.join(", "), "ON CONFLICT DO UPDATE").await?;
                Action::Update { columns, exprs: Box::new(exprs), condition: update.selection.is_some() }
            }
        };
        Ok(Self { target: target_spec, action })
    }

    /// The constraints that arbitrate, resolved against the table's current
    /// indexes.
    fn arbiters(&self, ctx: &Context, target: &TableRef) -> Result<Vec<Arbiter>> {
        let schema = &target.schema;
        let has_key = !schema.primary_key.is_empty();
        let uniques = ctx.rows.indexes(&target.name).into_iter().filter(|i| i.unique);
        let arbiters: Vec<Arbiter> = match &self.target {
            Target::Any => has_key.then_some(Arbiter::PrimaryKey).into_iter().chain(uniques.map(Arbiter::Index)).collect(),
            Target::Columns(columns) => {
                let same = |cs: &[usize]| {
                    let mut cs = cs.to_vec();
                    cs.sort_unstable();
                    cs.dedup();
                    &cs == columns
                };
                let key = (has_key && same(&schema.primary_key)).then_some(Arbiter::PrimaryKey);
                key.into_iter().chain(uniques.filter(|i| same(&i.columns)).map(Arbiter::Index)).collect()
            }
            Target::Constraint(name) => {
                if has_key && *name == format!("{}_pkey", target.name) {
                    vec![Arbiter::PrimaryKey]
                } else {
                    match uniques.into_iter().find(|i| i.name == *name) {
                        Some(index) => vec![Arbiter::Index(index)],
                        None => return Err(Error::Plan(format!("constraint {name:?} for table {:?} does not exist", target.name))),
                    }
                }
            }
        };
        if arbiters.is_empty() && !matches!(self.target, Target::Any) {
            return Err(Error::Plan(NO_MATCH.into()));
        }
        Ok(arbiters)
    }

    /// Inserts `rows` into `target`, resolving collisions as the clause says.
    pub(crate) fn apply(
        &self,
        ctx: &Context,
        target: &TableRef,
        txn: &mut Transaction,
        rows: Vec<Vec<Value>>,
        params: &[Value],
        keep: bool,
    ) -> Result<Applied> {
        let arbiters = self.arbiters(ctx, target)?;
        let bound = match &self.action {
            Action::Update { exprs, .. } => Some(exprs.bind(ctx, params)?),
            Action::Nothing => None,
        };
        let pk = &target.schema.primary_key;
        // Rows this statement inserted or updated: DO UPDATE may not touch
        // one twice (PostgreSQL's rule; the outcome would depend on order).
        let mut touched: HashSet<Vec<u8>> = HashSet::new();
        let mut applied = Applied { count: 0, written: Vec::new() };
        for row in rows {
            let Some((key, existing)) = collision(txn, target, &arbiters, &row)? else {
                let written = keep.then(|| row.clone());
                let key = txn.insert(target.id, row)?;
                touched.insert(key);
                applied.count += 1;
                applied.written.extend(written);
                continue;
            };
            let (Action::Update { columns, condition, .. }, Some(bound)) = (&self.action, &bound) else { continue };
            if !touched.insert(key.clone()) {
                return Err(Error::Execution(
                    "ON CONFLICT DO UPDATE command cannot affect row a second time: \
                     ensure that no rows proposed for insertion within the same command have duplicate constrained values"
                        .into(),
                ));
            }
            let pair: Vec<Value> = existing.iter().chain(&row).cloned().collect();
            let out = bound.evaluate(&[&pair])?;
            if *condition && !is_true(out.column(columns.len()).as_ref())? {
                continue;
            }
            let mut new = existing;
            for (i, &c) in columns.iter().enumerate() {
                let column = &target.schema.columns[c];
                let mut v = omen_sync::convert::array_to_values(out.column(i).as_ref(), &column.data_type)?;
                new[c] = v.pop().ok_or_else(|| Error::Internal("SET produced no value".into()))?;
            }
            if !pk.is_empty() {
                touched.insert(encode_key(&new, pk));
            }
            let written = keep.then(|| new.clone());
            if txn.update(target.id, &key, new)? {
                applied.count += 1;
                applied.written.extend(written);
            }
        }
        Ok(applied)
    }
}

/// The row `row` would collide with under `arbiters`, with its key, as
/// `txn` sees it. A NULL in a unique index's columns collides with
/// nothing. An index younger than the snapshot cannot be read; the insert
/// itself then reports any violation of it.
fn collision(txn: &Transaction, target: &TableRef, arbiters: &[Arbiter], row: &[Value]) -> Result<Option<(Vec<u8>, Vec<Value>)>> {
    for arbiter in arbiters {
        match arbiter {
            Arbiter::PrimaryKey => {
                let key = encode_key(row, &target.schema.primary_key);
                if let Some(existing) = txn.get(target.id, &key)? {
                    return Ok(Some((key, existing)));
                }
            }
            Arbiter::Index(index) => {
                let values: Vec<Value> = index.columns.iter().map(|&c| row[c].clone()).collect();
                if values.iter().any(Value::is_null) {
                    continue;
                }
                if let Some(found) = txn.index_scan(target.id, &index.name, &KeyRange::prefix(values), 1)?
                    && let Some(hit) = found.into_iter().next()
                {
                    return Ok(Some(hit));
                }
            }
        }
    }
    Ok(None)
}

/// Whether a one-row boolean column holds true (NULL is not true).
fn is_true(column: &dyn Array) -> Result<bool> {
    let b = column
        .as_any()
        .downcast_ref::<arrow::array::BooleanArray>()
        .ok_or_else(|| Error::Plan(format!("argument of WHERE must be type boolean, not {}", column.data_type())))?;
    Ok(b.len() == 1 && b.is_valid(0) && b.value(0))
}
