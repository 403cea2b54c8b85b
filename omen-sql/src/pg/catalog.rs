//! PostgreSQL's system catalogs and session functions, for psql's `\d`
//! family and the introspection queries drivers send when they connect.
//!
//! The tables (`pg_class`, `pg_attribute`, `pg_namespace`, `pg_type`, ...)
//! and functions (`current_schema()`, `format_type`, `pg_get_expr`,
//! `has_table_privilege`, ...) come from the `datafusion-pg-catalog` crate;
//! this module points them at the row store's tables, and `pg_functions`
//! adds what it lacks.
//! Queries that mention the catalogs are parsed by that crate's
//! `PostgresCompatibilityParser`, which rewrites what DataFusion does not
//! plan as PostgreSQL spells it (`OPERATOR(pg_catalog.~)`, `'t'::regclass`,
//! `COLLATE`, `ANY(array)`).
//!
//! Limits: one database (`omendb`) and one user schema (`public`); no
//! roles; keys and indexes come from `pg_indexes.rs`. Catalog rows are computed per query, so they are
//! current, and OIDs stay fixed for a table's life.

use std::ops::ControlFlow;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::datasource::empty::EmptyTable;
use datafusion::error::DataFusionError;
use datafusion::execution::session_state::SessionState;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::{
    AccessExpr, BinaryOperator, CaseWhen, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments,
    GroupByExpr, Ident, JoinOperator, ObjectName, Query, Select, SelectItem, SetExpr, Subscript, TableFactor, Value, Visit, VisitMut,
    Visitor, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use omen_rowstore::Store;

use crate::error::{Error, Result};
use crate::pg::schemas::{DATABASE, PG_CATALOG, PUBLIC};

/// Installs the catalogs and functions into `state`, over the tables of
/// `rows`. Returns the new state and the `pg_catalog` schema, which
/// planning adds to each statement's catalog.
pub(crate) fn install(state: SessionState, rows: &Store) -> Result<(SessionState, Arc<dyn SchemaProvider>)> {
    let ctx = SessionContext::new_with_state(state);
    let catalog = ctx.catalog(DATABASE).ok_or_else(|| Error::Internal(format!("no catalog {DATABASE}")))?;
    // What pg_class and pg_attribute list; statements plan against their own
    // catalogs of snapshot tables (see `query::plan`).
    catalog.register_schema(PUBLIC, Arc::new(RowStoreSchema { rows: rows.clone() }))?;
    datafusion_pg_catalog::setup_pg_catalog(&ctx, DATABASE, EmptyContextProvider).map_err(|e| Error::from(*e))?;
    // Registered after the crate's: OmenDB's versions replace its own.
    for udf in crate::pg::functions::all().into_iter().chain(crate::pg::indexes::functions(rows)) {
        ctx.register_udf(udf);
    }
    let pg_catalog = catalog.schema(PG_CATALOG).ok_or_else(|| Error::Internal("pg_catalog was not installed".into()))?;
    let pg_catalog: Arc<dyn SchemaProvider> = Arc::new(crate::pg::indexes::PgCatalog::new(pg_catalog, rows.clone()));
    catalog.register_schema(PG_CATALOG, Arc::clone(&pg_catalog))?;
    Ok((ctx.state(), pg_catalog))
}

/// Whether `sql` reads the catalogs or PostgreSQL-only syntax the
/// compatibility parser rewrites: a word starting `pg_` (a catalog table or
/// function), `::reg...`, `OPERATOR(`, `information_schema` or the session
/// user and schema functions. Other statements skip its rewrites, which
/// are made for catalog queries: among them, a subquery in a projection
/// that DataFusion cannot run becomes NULL.
pub(crate) fn needs_rewrite(sql: &str) -> bool {
    const MARKERS: [&str; 6] = ["::reg", "information_schema", "current_schema", "current_user", "session_user", "operator("];
    let lower = sql.to_ascii_lowercase();
    let word_start = |i: usize| i == 0 || !matches!(lower.as_bytes()[i - 1], b'a'..=b'z' | b'0'..=b'9' | b'_' | b'$');
    lower.match_indices("pg_").any(|(i, _)| word_start(i)) || MARKERS.iter().any(|m| lower.contains(m))
}

/// Parses `sql` as the compatibility parser rewrites it.
pub(crate) fn parse(sql: &str) -> Result<Vec<DfStatement>> {
    static PARSER: LazyLock<PostgresCompatibilityParser> = LazyLock::new(PostgresCompatibilityParser::new);
    Ok(PARSER
        .parse(sql)?
        .into_iter()
        .map(|mut s| {
            // OmenDB's own rewrites change semantics in corners (see each):
            // only for statements that read the catalogs.
            if reads_catalogs(&s) {
                let _ = VisitMut::visit(&mut s, &mut AggregateScalarSubqueries::default());
                let _ = VisitMut::visit(&mut s, &mut SubscriptsAsRange);
                let _ = VisitMut::visit(&mut s, &mut ExpandArrayAsUnnest);
                let _ = VisitMut::visit(&mut s, &mut InlineLateralValues);
            }
            DfStatement::Statement(Box::new(s))
        })
        .collect())
}

/// JDBC's key metadata: `information_schema._pg_expandarray(a)`, a set of
/// `(x, n)` records, becomes `unnest(_pg_expandarray(a))` (see
/// `pg_functions`); a field of a parenthesized record, `(r).x`, becomes
/// `(r)['x']`, as DataFusion reads struct fields; `v[i]` becomes
/// `pg_subscript(v, i)`, which also indexes the catalogs' `int2vector`
/// text.
struct ExpandArrayAsUnnest;

impl VisitorMut for ExpandArrayAsUnnest {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let text = match expr {
            Expr::Function(f)
                if f.name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| i.value.eq_ignore_ascii_case("_pg_expandarray")) =>
            {
                let FunctionArguments::List(list) = &f.args else { return ControlFlow::Continue(()) };
                let [FunctionArg::Unnamed(FunctionArgExpr::Expr(array))] = list.args.as_slice() else {
                    return ControlFlow::Continue(());
                };
                format!("unnest(_pg_expandarray({array}))")
            }
            Expr::CompoundFieldAccess { root, access_chain } => match access_chain.as_slice() {
                [AccessExpr::Dot(Expr::Identifier(field))] if matches!(root.as_ref(), Expr::Nested(_)) => {
                    format!("{root}['{}']", field.value.to_ascii_lowercase())
                }
                // A last subscript by a number: see `pg_functions`'
                // pg_subscript.
                [before @ .., AccessExpr::Subscript(Subscript::Index { index })] if !matches!(index, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_))) =>
                {
                    let value = if before.is_empty() {
                        root.to_string()
                    } else {
                        Expr::CompoundFieldAccess { root: root.clone(), access_chain: before.to_vec() }.to_string()
                    };
                    format!("pg_subscript({value}, {index})")
                }
                _ => return ControlFlow::Continue(()),
            },
            _ => return ControlFlow::Continue(()),
        };
        if let Ok(replacement) = Parser::new(&PostgreSqlDialect {}).try_with_sql(&text).and_then(|mut p| p.parse_expr()) {
            *expr = replacement;
        }
        ControlFlow::Continue(())
    }
}

/// `CROSS JOIN LATERAL (SELECT e1, ...) AS o(n1, ...)` with no FROM in the
/// subquery, which DataFusion cannot plan (its expressions read the outer
/// row), becomes those expressions in place of `o.n1`, ...: the same rows,
/// as such a subquery gives exactly one row per outer row. pgbench's
/// partition probe has this shape. Left alone when that might not hold or
/// the names might mean something else: aggregates, window, set-returning
/// or volatile calls, subqueries, LIMIT/FETCH/WITH in the lateral; the
/// alias bound again anywhere in the query; `*`; a column name used
/// unqualified.
struct InlineLateralValues;

/// Calls that make a FROM-less SELECT give other than one stable row.
const NOT_ONE_ROW: [&str; 9] = [
    "unnest",
    "generate_series",
    "generate_subscripts",
    "_pg_expandarray",
    "random",
    "nextval",
    "gen_random_uuid",
    "uuid",
    "clock_timestamp",
];

/// An inlinable lateral: its (from, join) position, its alias, and each
/// column's name and expression.
type Lateral = (usize, usize, String, Vec<(String, Expr)>);

impl InlineLateralValues {
    /// The first inlinable lateral of `select`.
    fn candidate(select: &Select) -> Option<Lateral> {
        for (f, from) in select.from.iter().enumerate() {
            for (j, join) in from.joins.iter().enumerate() {
                let (JoinOperator::CrossJoin(_), TableFactor::Derived { lateral: true, subquery, alias: Some(alias), .. }) =
                    (&join.join_operator, &join.relation)
                else {
                    continue;
                };
                let SetExpr::Select(inner) = subquery.body.as_ref() else { continue };
                let plain = inner.from.is_empty()
                    && inner.selection.is_none()
                    && inner.having.is_none()
                    && matches!(&inner.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
                    && subquery.limit_clause.is_none()
                    && subquery.fetch.is_none()
                    && subquery.with.is_none();
                if !plain || alias.columns.len() > inner.projection.len() {
                    continue;
                }
                let mut columns = Vec::new();
                for (i, item) in inner.projection.iter().enumerate() {
                    let (own, expr) = match item {
                        SelectItem::UnnamedExpr(e) => (None, e),
                        SelectItem::ExprWithAlias { expr, alias } => (Some(alias), expr),
                        _ => return None,
                    };
                    if aggregates(expr) || calls_any(expr, &NOT_ONE_ROW) {
                        return None;
                    }
                    if let Some(name) = alias.columns.get(i).map(|c| &c.name).or(own) {
                        columns.push((name.value.to_ascii_lowercase(), Expr::Nested(Box::new(expr.clone()))));
                    }
                }
                return Some((f, j, alias.name.value.to_ascii_lowercase(), columns));
            }
        }
        None
    }

    /// Whether `query` (the lateral's included) binds `alias` more than
    /// once, selects `*`, or names one of `columns` without a qualifier.
    fn ambiguous(query: &Query, alias: &str, columns: &[(String, Expr)]) -> bool {
        struct Check<'a> {
            alias: &'a str,
            columns: &'a [(String, Expr)],
            bindings: usize,
            bad: bool,
        }
        impl Visitor for Check<'_> {
            type Break = ();
            fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
                let bound = match factor {
                    TableFactor::Table { name, alias, .. } => alias
                        .as_ref()
                        .map(|a| a.name.value.to_ascii_lowercase())
                        .or_else(|| name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.to_ascii_lowercase())),
                    TableFactor::Derived { alias, .. } => alias.as_ref().map(|a| a.name.value.to_ascii_lowercase()),
                    _ => None,
                };
                self.bindings += usize::from(bound.as_deref() == Some(self.alias));
                ControlFlow::Continue(())
            }
            fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
                if let Expr::Identifier(i) = expr {
                    self.bad |= self.columns.iter().any(|(c, _)| i.value.eq_ignore_ascii_case(c));
                }
                ControlFlow::Continue(())
            }
            fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
                if let SetExpr::Select(select) = query.body.as_ref() {
                    self.bad |= select.projection.iter().any(|i| matches!(i, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)));
                }
                ControlFlow::Continue(())
            }
        }
        let mut check = Check { alias, columns, bindings: 0, bad: false };
        let _ = query.visit(&mut check);
        check.bad || check.bindings > 1
    }
}

impl VisitorMut for InlineLateralValues {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let SetExpr::Select(select) = query.body.as_ref() else { return ControlFlow::Continue(()) };
        let Some((f, j, alias, values)) = Self::candidate(select) else { return ControlFlow::Continue(()) };
        if Self::ambiguous(query, &alias, &values) {
            return ControlFlow::Continue(());
        }
        let SetExpr::Select(select) = query.body.as_mut() else { return ControlFlow::Continue(()) };
        select.from[f].joins.remove(j);
        // A bare reference in the projection keeps its column name.
        for item in &mut select.projection {
            if let SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) = item
                && let [table, column] = parts.as_slice()
                && table.value.eq_ignore_ascii_case(&alias)
                && values.iter().any(|(c, _)| column.value.eq_ignore_ascii_case(c))
            {
                *item = SelectItem::ExprWithAlias { expr: Expr::CompoundIdentifier(parts.clone()), alias: column.clone() };
            }
        }
        struct Replace<'a>(&'a str, &'a [(String, Expr)]);
        impl VisitorMut for Replace<'_> {
            type Break = ();
            fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
                if let Expr::CompoundIdentifier(parts) = expr
                    && let [table, column] = parts.as_slice()
                    && table.value.eq_ignore_ascii_case(self.0)
                    && let Some((_, value)) = self.1.iter().find(|(c, _)| column.value.eq_ignore_ascii_case(c))
                {
                    *expr = value.clone();
                }
                ControlFlow::Continue(())
            }
        }
        let _ = VisitMut::visit(query, &mut Replace(&alias, &values));
        ControlFlow::Continue(())
    }
}

/// Whether `expr` calls one of `names` (outside nested subqueries too).
fn calls_any(expr: &Expr, names: &[&str]) -> bool {
    struct Find<'a>(&'a [&'a str], bool);
    impl Visitor for Find<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => self.1 = true,
                Expr::Function(f) => {
                    self.1 |=
                        f.name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| self.0.iter().any(|n| i.value.eq_ignore_ascii_case(n)));
                }
                _ => {}
            }
            if self.1 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        }
    }
    let mut find = Find(names, false);
    let _ = expr.visit(&mut find);
    find.1
}

/// `generate_subscripts(array, dim)`, which DataFusion lacks, as an
/// unnested `range`: 1 to the array's length for dimension 1, the only one
/// OmenDB's (one-dimensional) catalog arrays have, and nothing for others.
/// Unlike PostgreSQL it also starts at 1 for `indkey`/`indclass`, whose
/// subscripts start at 0 (SQLAlchemy only orders by it). SQLAlchemy numbers key columns with it next to `unnest(indkey)`.
struct SubscriptsAsRange;

impl VisitorMut for SubscriptsAsRange {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Function(f) = expr else { return ControlFlow::Continue(()) };
        let named = f.name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| i.value.eq_ignore_ascii_case("generate_subscripts"));
        let FunctionArguments::List(list) = &f.args else { return ControlFlow::Continue(()) };
        let [FunctionArg::Unnamed(FunctionArgExpr::Expr(array)), FunctionArg::Unnamed(FunctionArgExpr::Expr(dim))] = list.args.as_slice()
        else {
            return ControlFlow::Continue(());
        };
        if !named {
            return ControlFlow::Continue(());
        }
        // No rows for another dimension, as PostgreSQL gives for an array
        // without it.
        let text = format!("unnest(range(1, CASE WHEN {dim} = 1 THEN CAST(cardinality({array}) AS BIGINT) + 1 ELSE 1 END))");
        if let Ok(replacement) = Parser::new(&PostgreSqlDialect {}).try_with_sql(&text).and_then(|mut p| p.parse_expr()) {
            *expr = replacement;
        }
        ControlFlow::Continue(())
    }
}

/// Whether `statement` names a table in `pg_catalog` or
/// `information_schema` (the compatibility parser qualifies the catalog
/// tables it knows).
fn reads_catalogs(statement: &datafusion::sql::sqlparser::ast::Statement) -> bool {
    struct Find(bool);
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
            let parts: Vec<String> = relation.0.iter().filter_map(|p| p.as_ident()).map(|i| i.value.to_ascii_lowercase()).collect();
            self.0 |= parts.len() >= 2 && [PG_CATALOG, crate::pg::schemas::INFORMATION_SCHEMA].contains(&parts[parts.len() - 2].as_str());
            if self.0 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        }
    }
    let mut find = Find(false);
    let _ = statement.visit(&mut find);
    find.0
}

/// Wraps the one column of each scalar subquery that does not aggregate
/// in `max(...)`: DataFusion runs a correlated scalar subquery only if it
/// aggregates, and catalog queries (SQLAlchemy's reflection) use them to
/// look up at most one row (a column's default, its identity options).
/// Unlike PostgreSQL, a subquery that finds several rows gives their
/// maximum instead of an error; only catalog queries are rewritten.
///
/// Conditions of such a subquery that read only the outer query's columns
/// (`WHERE outer.atthasdef AND ...`), which DataFusion cannot decorrelate,
/// move out to `CASE WHEN condition THEN (subquery) END`: the same value,
/// as the aggregate of no rows is NULL. The subquery of `op ANY (...)` and
/// `op ALL (...)` is a set, not a scalar, and is left alone.
#[derive(Default)]
struct AggregateScalarSubqueries {
    /// The sets of `ANY`/`ALL` comparisons met so far.
    sets: std::collections::HashSet<*const Query>,
}

impl VisitorMut for AggregateScalarSubqueries {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::AnyOp { right, .. } | Expr::AllOp { right, .. } = expr
            && let Expr::Subquery(set) = right.as_ref()
        {
            self.sets.insert(std::ptr::from_ref(set.as_ref()));
        }
        let Expr::Subquery(query) = expr else { return ControlFlow::Continue(()) };
        if self.sets.contains(&std::ptr::from_ref(query.as_ref())) {
            return ControlFlow::Continue(());
        }
        let SetExpr::Select(select) = query.body.as_mut() else { return ControlFlow::Continue(()) };
        let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty()) || select.having.is_some();
        let limited = query.limit_clause.is_some() || query.fetch.is_some() || query.order_by.is_some();
        if grouped || limited || select.projection.len() != 1 {
            return ControlFlow::Continue(());
        }
        match &select.projection[0] {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } if !aggregates(e) => {}
            _ => return ControlFlow::Continue(()),
        }
        if reads_only_empty_catalogs(select) {
            // NULL, whatever it correlates with (DataFusion cannot run some
            // of these: SQLAlchemy's identity lookup nests a `::regclass`).
            *expr = Expr::Value(Value::Null.with_empty_span());
            return ControlFlow::Continue(());
        }
        let (SelectItem::UnnamedExpr(column) | SelectItem::ExprWithAlias { expr: column, .. }) = &mut select.projection[0] else {
            return ControlFlow::Continue(());
        };
        let inner = std::mem::replace(column, Expr::Value(Value::Null.with_empty_span()));
        *column = Expr::Function(Function {
            name: ObjectName::from(vec![Ident::new("max")]),
            uses_odbc_syntax: false,
            parameters: FunctionArguments::None,
            args: FunctionArguments::List(FunctionArgumentList {
                duplicate_treatment: None,
                args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(inner))],
                clauses: vec![],
            }),
            filter: None,
            null_treatment: None,
            over: None,
            within_group: vec![],
        });
        if let Some(condition) = take_outer_conditions(select) {
            let subquery = std::mem::replace(expr, Expr::Value(Value::Null.with_empty_span()));
            *expr = Expr::Case {
                case_token: AttachedToken::empty(),
                end_token: AttachedToken::empty(),
                operand: None,
                conditions: vec![CaseWhen { condition, result: subquery }],
                else_result: None,
            };
        }
        ControlFlow::Continue(())
    }
}

/// Catalogs that never hold a row in OmenDB: it has no sequences,
/// inheritance, partitioning, triggers or row security
/// (`tests::catalogs_said_empty_are` checks).
const EMPTY_CATALOGS: [&str; 5] = ["pg_sequence", "pg_inherits", "pg_partitioned_table", "pg_trigger", "pg_policy"];

/// Whether `select` reads only from [`EMPTY_CATALOGS`].
fn reads_only_empty_catalogs(select: &Select) -> bool {
    !select.from.is_empty()
        && select.from.iter().all(|from| {
            std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation)).all(|factor| {
                matches!(factor, TableFactor::Table { name, .. }
                    if name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| EMPTY_CATALOGS.contains(&i.value.to_ascii_lowercase().as_str())))
            })
        })
}

/// Removes from `select`'s WHERE the conjuncts that name only columns of
/// other (outer) tables, and returns them joined by AND.
fn take_outer_conditions(select: &mut Select) -> Option<Expr> {
    let mut local = Vec::new();
    for from in &select.from {
        for factor in std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation)) {
            let TableFactor::Table { name, alias, .. } = factor else { return None };
            let named = alias.as_ref().map(|a| a.name.value.clone()).or_else(|| name.0.last()?.as_ident().map(|i| i.value.clone()))?;
            local.push(named.to_ascii_lowercase());
        }
    }
    let mut conjuncts = Vec::new();
    split_and(select.selection.take()?, &mut conjuncts);
    let (outer, own): (Vec<Expr>, Vec<Expr>) = conjuncts.into_iter().partition(|c| reads_only_outer(c, &local));
    select.selection = own.into_iter().reduce(and);
    outer.into_iter().reduce(and)
}

fn and(left: Expr, right: Expr) -> Expr {
    Expr::BinaryOp { left: Box::new(left), op: BinaryOperator::And, right: Box::new(right) }
}

fn split_and(expr: Expr, out: &mut Vec<Expr>) {
    match expr {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            split_and(*left, out);
            split_and(*right, out);
        }
        Expr::Nested(inner) => split_and(*inner, out),
        other => out.push(other),
    }
}

/// Whether `expr` names columns, each qualified by a table not in `local`,
/// and holds no subquery.
fn reads_only_outer(expr: &Expr, local: &[String]) -> bool {
    struct Check<'a> {
        local: &'a [String],
        columns: usize,
        outer: bool,
    }
    impl Visitor for Check<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } | Expr::Identifier(_) => self.outer = false,
                Expr::CompoundIdentifier(parts) => {
                    self.columns += 1;
                    let table = parts.len().checked_sub(2).map(|i| parts[i].value.to_ascii_lowercase());
                    self.outer &= table.is_some_and(|t| !self.local.contains(&t));
                }
                _ => {}
            }
            if self.outer { ControlFlow::Continue(()) } else { ControlFlow::Break(()) }
        }
    }
    let mut check = Check { local, columns: 0, outer: true };
    let _ = expr.visit(&mut check);
    check.outer && check.columns > 0
}

/// Whether `expr` calls an aggregate or window function (outside a nested
/// subquery): PostgreSQL's aggregates by name.
fn aggregates(expr: &Expr) -> bool {
    const AGGREGATES: [&str; 26] = [
        "array_agg",
        "avg",
        "bit_and",
        "bit_or",
        "bit_xor",
        "bool_and",
        "bool_or",
        "count",
        "corr",
        "covar_pop",
        "covar_samp",
        "every",
        "json_agg",
        "json_object_agg",
        "jsonb_agg",
        "max",
        "min",
        "mode",
        "percentile_cont",
        "percentile_disc",
        "stddev",
        "stddev_pop",
        "stddev_samp",
        "string_agg",
        "sum",
        "variance",
    ];
    struct Find(bool);
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {}
                Expr::Function(f) => {
                    let name = f.name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.to_ascii_lowercase());
                    self.0 |= f.over.is_some() || name.is_some_and(|n| AGGREGATES.contains(&n.as_str()));
                }
                _ => {}
            }
            if self.0 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        }
    }
    let mut find = Find(false);
    let _ = expr.visit(&mut find);
    find.0
}

/// The row store's tables as DataFusion sees a schema, for the catalogs.
#[derive(Debug)]
struct RowStoreSchema {
    rows: Store,
}

#[async_trait]
impl SchemaProvider for RowStoreSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.rows.tables().into_iter().map(|(_, s)| s.name.clone()).collect();
        names.sort();
        names
    }

    /// A table with the table's columns and no rows: the catalogs read only
    /// its schema, where (unlike in scans) NOT NULL columns are not nullable.
    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        Ok(self.rows.table(name).map(|(_, schema)| {
            let fields: Vec<_> = omen_sync::convert::arrow_schema(&schema)
                .fields()
                .iter()
                .zip(&schema.columns)
                .map(|(f, c)| f.as_ref().clone().with_nullable(c.nullable))
                .collect();
            Arc::new(EmptyTable::new(Arc::new(arrow::datatypes::Schema::new(fields)))) as _
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.rows.table(name).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_catalog_queries_take_the_rewriting_parser() {
        assert!(needs_rewrite("SELECT c.relname FROM pg_catalog.pg_class c"));
        assert!(needs_rewrite("select 'orders'::regclass::oid"));
        assert!(needs_rewrite("SELECT current_schema()"));
        assert!(!needs_rewrite("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2"));
        assert!(!needs_rewrite("SELECT abalance FROM accounts WHERE aid = $1"));
        assert!(!needs_rewrite("SELECT img_pg_size FROM t"), "pg_ inside a word");
        assert!(needs_rewrite("select * from pg_tables"));
    }

    #[test]
    fn scalar_subqueries_in_catalog_queries_aggregate() {
        let sql = "SELECT CASE WHEN a.atthasdef THEN (SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d \
                   WHERE d.adrelid = a.attrelid) END, (SELECT count(*) FROM pg_class), \
                   (SELECT relname FROM pg_class LIMIT 1) FROM pg_attribute a";
        let text = parse(sql).unwrap()[0].to_string();
        assert!(text.contains("(SELECT max(pg_get_expr("), "{text}");
        assert!(!text.contains("max(count("), "an aggregate stays as it is: {text}");
        assert!(!text.contains("max(relname)"), "a limited subquery stays as it is: {text}");
        let text = parse("SELECT relname FROM pg_catalog.pg_class WHERE oid > ANY (SELECT attrelid FROM pg_catalog.pg_attribute)").unwrap()
            [0]
        .to_string();
        assert!(!text.contains("max("), "the set of ANY stays a set: {text}");

        let sql = "SELECT CASE WHEN true THEN (SELECT d.adbin FROM pg_catalog.pg_attrdef d WHERE pg_catalog.pg_attribute.atthasdef \
                   AND d.adrelid = pg_catalog.pg_attribute.attrelid) END FROM pg_catalog.pg_attribute";
        let text = parse(sql).unwrap()[0].to_string();
        assert!(text.contains("CASE WHEN pg_catalog.pg_attribute.atthasdef THEN (SELECT max(d.adbin)"), "{text}");
        assert!(text.contains("WHERE d.adrelid = pg_catalog.pg_attribute.attrelid)"), "{text}");
    }

    #[test]
    fn expandarray_becomes_an_unnest_and_record_fields_subscripts() {
        let sql = "SELECT (information_schema._pg_expandarray(i.indkey)).n AS key_seq, information_schema._pg_expandarray(i.indkey) AS keys \
                   FROM pg_catalog.pg_index i";
        let text = parse(sql).unwrap()[0].to_string();
        assert!(text.contains("(unnest(_pg_expandarray(i.indkey)))['n'] AS key_seq"), "{text}");
        assert!(text.contains("unnest(_pg_expandarray(i.indkey)) AS keys"), "{text}");
        let text = parse("SELECT * FROM (SELECT relnatts AS k FROM pg_catalog.pg_class) r WHERE r.k = (r.keys).x").unwrap()[0].to_string();
        assert!(text.contains("(r.keys)['x']"), "{text}");
        // Statements that read no catalog keep their meaning.
        let text = parse("SELECT (r.keys).x, v[1] FROM r WHERE current_user = 'pg_admin'").unwrap()[0].to_string();
        assert!(!text.contains("['x']") && !text.contains("pg_subscript"), "{text}");
        let text = parse("SELECT i.indoption[t.n - 1] FROM pg_catalog.pg_index i, t").unwrap()[0].to_string();
        assert!(text.contains("pg_subscript(i.indoption, t.n - 1)"), "{text}");
    }

    #[test]
    fn lateral_values_inline_only_when_one_row_and_unambiguous() {
        let probe = "SELECT o.n FROM pg_catalog.pg_class c CROSS JOIN LATERAL (SELECT array_position(current_schemas(true), c.relname)) AS o(n) \
                     WHERE o.n IS NOT NULL";
        let text = parse(probe).unwrap()[0].to_string();
        assert!(!text.contains("LATERAL") && text.contains("(array_position(current_schemas(true), c.relname)) AS n"), "{text}");
        for kept in [
            "SELECT o.n FROM pg_catalog.pg_class c CROSS JOIN LATERAL (SELECT unnest(ARRAY[1, 2])) AS o(n)",
            "SELECT o.n FROM pg_catalog.pg_class c CROSS JOIN LATERAL (SELECT count(*)) AS o(n)",
            "SELECT * FROM pg_catalog.pg_class c CROSS JOIN LATERAL (SELECT 1) AS o(n)",
            "SELECT o.n FROM pg_catalog.pg_class c CROSS JOIN LATERAL (SELECT 1) AS o(n) \
             WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class o WHERE o.relname = c.relname)",
        ] {
            assert!(parse(kept).unwrap()[0].to_string().contains("LATERAL"), "{kept}");
        }
    }

    #[test]
    fn generate_subscripts_becomes_an_unnested_range() {
        let text =
            parse("SELECT unnest(i.indkey), generate_subscripts(i.indkey, $1::INTEGER) FROM pg_catalog.pg_index i").unwrap()[0].to_string();
        assert!(
            text.contains("unnest(range(1, CASE WHEN $1::INTEGER = 1 THEN CAST(cardinality(i.indkey) AS BIGINT) + 1 ELSE 1 END))"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn catalogs_said_empty_are() {
        let store = Store::open(omen_rowstore::StoreOptions::default()).unwrap();
        let config = datafusion::prelude::SessionConfig::new().with_default_catalog_and_schema(DATABASE, PUBLIC);
        let (state, _) = install(SessionContext::new_with_config(config).state(), &store).unwrap();
        let ctx = SessionContext::new_with_state(state);
        for table in EMPTY_CATALOGS {
            let batches = ctx.sql(&format!("SELECT count(*) FROM {DATABASE}.{PG_CATALOG}.{table}")).await.unwrap().collect().await.unwrap();
            let count = datafusion::common::cast::as_int64_array(batches[0].column(0)).unwrap().value(0);
            assert_eq!(count, 0, "{table} has rows");
        }
    }
}
