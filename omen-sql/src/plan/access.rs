//! Access paths: whether a table scan reads key ranges from the row store
//! (through the primary key or a secondary index) instead of the whole
//! table from the column store.
//!
//! Every table accepts all filters as *inexact* pushdown, so DataFusion
//! still applies them above the scan and a path only has to return a
//! superset of the matching rows. After optimization, each scan's filters
//! are matched against the table's keys:
//!
//! - `col = x`, `col IN (x, ...)`, `col IS NULL` and ORs of these on one
//!   column fix a key column; `<`, `<=`, `>`, `>=` and `BETWEEN` bound the next one;
//! - a literal is used only if it converts exactly to the column's type;
//! - the key with the most fixed leading columns wins (a full primary or
//!   unique key first), then one with a bound; the primary key wins ties.
//!
//! The chosen ranges are read at the transaction's snapshot with its own
//! writes, so the rows are what the column store would have shown. A path
//! that would read more than [`MAX_PROBED`] rows is abandoned for the full
//! scan: without statistics, that caps what a poorly selective predicate
//! costs.

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::logical_expr::utils::{split_binary, split_conjunction};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, LogicalPlan, Operator};
use omen_rowstore::{IndexDef, KeyRange, KeyedRows, TableSchema, Transaction, Value};

use crate::context::Context;
use crate::error::Result;
use crate::params::exact;
use crate::scan::provider::SnapshotTable;

/// Rows a probe may read before it gives way to a full scan.
pub(crate) const MAX_PROBED: usize = 10_000;

/// At most this many key ranges (the product of IN-list sizes).
const MAX_RANGES: usize = 256;

/// A chosen access path: the key (primary, or an index by name) and the
/// ranges to read along it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Path {
    pub(crate) index: Option<String>,
    pub(crate) ranges: Vec<KeyRange>,
}

/// What the filters say about one column.
#[derive(Debug, Default, Clone)]
struct Constraint {
    /// The column equals one of these.
    eq: Option<Vec<Value>>,
    lo: Option<Bound<Value>>,
    hi: Option<Bound<Value>>,
}

/// Replaces every scan of an OmenDB table in `plan` whose filters select a
/// key range with a scan of the rows read along it.
pub(crate) fn probe_scans(ctx: &Context, plan: LogicalPlan, txn: &Transaction) -> Result<LogicalPlan> {
    let mut failed = None;
    let rewritten = plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::TableScan(scan) = &node else { return Ok(Transformed::no(node)) };
        let provider = source_as_provider(&scan.source)?;
        let Some(table) = provider.downcast_ref::<SnapshotTable>() else { return Ok(Transformed::no(node)) };
        match probe(ctx, txn, table, &scan.filters) {
            Ok(Some(probed)) => {
                let mut scan = scan.clone();
                scan.source = provider_as_source(Arc::new(probed));
                Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
            }
            Ok(None) => {
                ctx.access.full.fetch_add(1, Ordering::Relaxed);
                Ok(Transformed::no(node))
            }
            Err(e) => {
                failed = Some(e);
                Ok(Transformed::no(node))
            }
        }
    })?;
    match failed {
        Some(e) => Err(e),
        None => Ok(rewritten.data),
    }
}

/// `table` restricted to the rows its best key path reads, or `None` if the
/// whole table must be scanned.
fn probe(ctx: &Context, txn: &Transaction, table: &SnapshotTable, filters: &[Expr]) -> Result<Option<SnapshotTable>> {
    if filters.is_empty() {
        return Ok(None);
    }
    let Some((_, schema)) = ctx.rows.table(table.name()).filter(|(id, _)| *id == table.id()) else { return Ok(None) };
    let Some(path) = choose(&schema, &ctx.rows.indexes(table.name()), filters) else { return Ok(None) };
    let Some(rows) = read(txn, table.id(), &path)? else { return Ok(None) };
    let counter = if path.index.is_some() { &ctx.access.index } else { &ctx.access.primary_key };
    counter.fetch_add(1, Ordering::Relaxed);
    Ok(Some(table.with_rows(&schema, rows)?))
}

/// The tables `plan` scans whole (from the column store), once each.
pub(crate) fn full_scans(plan: &LogicalPlan) -> Result<Vec<omen_rowstore::TableId>> {
    let mut ids = Vec::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Some(table) = source_as_provider(&scan.source)?.downcast_ref::<SnapshotTable>()
            && !table.is_probed()
            && !ids.contains(&table.id())
        {
            ids.push(table.id());
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(ids)
}

/// Reads the rows along `path`; `None` if there are more than
/// [`MAX_PROBED`], or the index cannot serve this snapshot.
fn read(txn: &Transaction, table: omen_rowstore::TableId, path: &Path) -> Result<Option<KeyedRows>> {
    let mut rows = KeyedRows::new();
    for range in &path.ranges {
        let room = MAX_PROBED + 1 - rows.len();
        let got = match &path.index {
            None => txn.scan_range(table, range, room)?,
            Some(index) => match txn.index_scan(table, index, range, room)? {
                Some(got) => got,
                None => return Ok(None),
            },
        };
        rows.extend(got);
        if rows.len() > MAX_PROBED {
            return Ok(None);
        }
    }
    Ok(Some(rows))
}

/// The best key range path the filters allow, if any.
pub(crate) fn choose(schema: &TableSchema, indexes: &[IndexDef], filters: &[Expr]) -> Option<Path> {
    let mut constraints = vec![Constraint::default(); schema.columns.len()];
    for f in filters.iter().flat_map(|f| split_conjunction(f)) {
        constrain(f, schema, &mut constraints);
    }
    let mut keys: Vec<(Option<&str>, &[usize], bool)> = Vec::with_capacity(indexes.len() + 1);
    if !schema.primary_key.is_empty() {
        keys.push((None, &schema.primary_key, true));
    }
    keys.extend(indexes.iter().map(|i| (Some(i.name.as_str()), i.columns.as_slice(), i.unique)));

    let mut best: Option<((bool, usize, bool), Path)> = None;
    for (index, columns, unique) in keys {
        let mut eqs: Vec<&[Value]> = columns.iter().map_while(|&c| constraints[c].eq.as_deref()).collect();
        let mut range = columns.get(eqs.len()).map(|&c| &constraints[c]).filter(|c| c.lo.is_some() || c.hi.is_some());
        while eqs.iter().map(|v| v.len()).product::<usize>() > MAX_RANGES {
            eqs.pop();
            range = None;
        }
        if eqs.is_empty() && range.is_none() {
            continue;
        }
        let score = (unique && eqs.len() == columns.len(), eqs.len(), range.is_some());
        if best.as_ref().is_some_and(|(s, _)| *s >= score) {
            continue;
        }
        let (lo, hi) = range.map_or((Bound::Unbounded, Bound::Unbounded), |c| {
            (c.lo.clone().unwrap_or(Bound::Unbounded), c.hi.clone().unwrap_or(Bound::Unbounded))
        });
        let mut ranges = vec![KeyRange { eq: Vec::new(), lo, hi }];
        for values in eqs {
            ranges = ranges
                .into_iter()
                .flat_map(|r| {
                    values.iter().map(move |v| {
                        let mut r = r.clone();
                        r.eq.push(v.clone());
                        r
                    })
                })
                .collect();
        }
        best = Some((score, Path { index: index.map(str::to_owned), ranges }));
    }
    best.map(|(_, path)| path)
}

/// Adds what `e` says about a column of `schema` to `constraints`.
fn constrain(e: &Expr, schema: &TableSchema, constraints: &mut [Constraint]) {
    if let Some((c, values)) = equalities(e, schema) {
        let mut seen = HashSet::new();
        let values: Vec<Value> = values.into_iter().filter(|v| seen.insert(v.to_string())).collect();
        if constraints[c].eq.is_none() {
            constraints[c].eq = Some(values);
        }
        return;
    }
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let Some((c, v, op)) = column_op_literal(left, *op, right, schema) else { return };
            let k = &mut constraints[c];
            match op {
                Operator::Lt if k.hi.is_none() => k.hi = Some(Bound::Excluded(v)),
                Operator::LtEq if k.hi.is_none() => k.hi = Some(Bound::Included(v)),
                Operator::Gt if k.lo.is_none() => k.lo = Some(Bound::Excluded(v)),
                Operator::GtEq if k.lo.is_none() => k.lo = Some(Bound::Included(v)),
                _ => {}
            }
        }
        Expr::Between(Between { expr, negated: false, low, high }) => {
            let Some(c) = column(expr, schema) else { return };
            if let (Some(lo), Some(hi)) = (literal(low, c, schema), literal(high, c, schema)) {
                let k = &mut constraints[c];
                if k.lo.is_none() && k.hi.is_none() {
                    k.lo = Some(Bound::Included(lo));
                    k.hi = Some(Bound::Included(hi));
                }
            }
        }
        _ => {}
    }
}

/// The column `e` fixes and the values it may take: `col = x`,
/// `col IN (x, ...)`, `col IS NULL`, or an OR of those on one column.
fn equalities(e: &Expr, schema: &TableSchema) -> Option<(usize, Vec<Value>)> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => {
            column_op_literal(left, Operator::Eq, right, schema).map(|(c, v, _)| (c, vec![v]))
        }
        Expr::BinaryExpr(BinaryExpr { op: Operator::Or, .. }) => {
            let mut out: Option<(usize, Vec<Value>)> = None;
            for d in split_binary(e, Operator::Or) {
                // `OR NULL` and `OR false` add no row (`a IN (1, NULL)` arrives so).
                if matches!(d, Expr::Literal(v, _) if v.is_null() || *v == ScalarValue::Boolean(Some(false))) {
                    continue;
                }
                let (c, values) = equalities(d, schema)?;
                match &mut out {
                    None => out = Some((c, values)),
                    Some((oc, all)) if *oc == c => all.extend(values),
                    Some(_) => return None,
                }
            }
            out
        }
        Expr::InList(list) if !list.negated => {
            let c = column(&list.expr, schema)?;
            let mut values = Vec::with_capacity(list.list.len());
            for item in &list.list {
                match item {
                    // NULL matches nothing in IN.
                    Expr::Literal(v, _) if v.is_null() => {}
                    item => values.push(literal(item, c, schema)?),
                }
            }
            Some((c, values))
        }
        Expr::IsNull(inner) => column(inner, schema).map(|c| (c, vec![Value::Null])),
        _ => None,
    }
}

/// `col op x` or `x op col`, as `(col, x, op)` with `op` facing the column.
fn column_op_literal(left: &Expr, op: Operator, right: &Expr, schema: &TableSchema) -> Option<(usize, Value, Operator)> {
    let (c, v, op) = match (column(left, schema), column(right, schema)) {
        (Some(c), None) => (c, right, op),
        (None, Some(c)) => (c, left, op.swap()?),
        _ => return None,
    };
    Some((c, literal(v, c, schema)?, op))
}

fn column(e: &Expr, schema: &TableSchema) -> Option<usize> {
    match e {
        Expr::Column(c) => schema.column_index(&c.name),
        _ => None,
    }
}

/// A literal, converted exactly to column `c`'s type.
fn literal(e: &Expr, c: usize, schema: &TableSchema) -> Option<Value> {
    match e {
        Expr::Literal(v, _) => exact(v, &schema.columns[c]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};
    use omen_rowstore::{ColumnDef, DataType};

    fn schema() -> TableSchema {
        TableSchema {
            name: "t".into(),
            columns: vec![
                ColumnDef::new("id", DataType::Int64).not_null(),
                ColumnDef::new("a", DataType::Int32),
                ColumnDef::new("b", DataType::Text),
            ],
            primary_key: vec![0],
        }
    }

    fn indexes() -> Vec<IndexDef> {
        vec![
            IndexDef { name: "t_a_b".into(), columns: vec![1, 2], unique: false },
            IndexDef { name: "t_b".into(), columns: vec![2], unique: true },
        ]
    }

    #[test]
    fn a_full_primary_key_beats_an_index() {
        let p = choose(&schema(), &indexes(), &[col("a").eq(lit(1i32)), col("id").eq(lit(5i64))]).unwrap();
        assert_eq!(p.index, None);
        assert_eq!(p.ranges, vec![KeyRange::prefix(vec![Value::Int64(5)])]);
    }

    #[test]
    fn the_longest_fixed_prefix_wins_and_in_lists_multiply() {
        let f = [col("a").in_list(vec![lit(1i32), lit(2i32), lit(1i32)], false), col("b").gt(lit("m"))];
        let p = choose(&schema(), &indexes(), &f).unwrap();
        assert_eq!(p.index.as_deref(), Some("t_a_b"));
        assert_eq!(p.ranges.len(), 2, "duplicates in the IN list are read once");
        assert_eq!(p.ranges[1].eq, vec![Value::Int32(2)]);
        assert_eq!(p.ranges[1].lo, Bound::Excluded(Value::Text("m".into())));
        // A unique index with every column fixed beats a longer prefix.
        let p = choose(&schema(), &indexes(), &[col("b").eq(lit("x")), col("a").eq(lit(1i32))]).unwrap();
        assert_eq!(p.index.as_deref(), Some("t_b"));
    }

    #[test]
    fn inexact_literals_and_other_shapes_choose_nothing() {
        assert_eq!(choose(&schema(), &indexes(), &[col("a").eq(lit(1.5f64))]), None);
        assert_eq!(choose(&schema(), &indexes(), &[col("a").not_eq(lit(1i32))]), None);
        assert_eq!(choose(&schema(), &indexes(), &[(col("a") + lit(1i32)).eq(lit(2i32))]), None);
        assert_eq!(choose(&schema(), &[], &[col("b").eq(lit("x"))]), None);
        // Literal first: 5 > id is id < 5.
        let p = choose(&schema(), &[], &[lit(5i64).gt(col("id"))]).unwrap();
        assert_eq!(p.ranges[0].hi, Bound::Excluded(Value::Int64(5)));
        // An integer literal converts to an INT column exactly.
        assert!(choose(&schema(), &indexes(), &[col("a").eq(lit(1i64))]).is_some());
    }

    mod engine {
        use crate::{Engine, EngineOptions, Output, Session};
        use arrow::array::{Array, Int64Array};
        use futures::TryStreamExt;

        async fn ids(s: &mut Session, sql: &str) -> Vec<i64> {
            let Output::Rows { stream, .. } = s.execute(sql, &[]).await.unwrap() else { panic!("{sql}: no rows") };
            let batches: Vec<_> = stream.try_collect().await.unwrap();
            let mut out = Vec::new();
            for b in batches {
                let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                out.extend((0..col.len()).map(|i| col.value(i)));
            }
            out
        }

        /// `a` of row `id` (NULL every 13th row).
        fn a(id: i64) -> Option<i64> {
            (id % 13 != 0).then_some(id % 10)
        }

        #[tokio::test]
        async fn scans_read_key_ranges_and_indexes_and_return_what_a_full_scan_would() {
            let engine = Engine::open(EngineOptions::default()).unwrap();
            let mut s = engine.session();
            s.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, a INT, b TEXT UNIQUE)", &[]).await.unwrap();
            for id in 0..200 {
                let a = a(id).map_or("NULL".to_owned(), |a| a.to_string());
                s.execute(&format!("INSERT INTO t VALUES ({id}, {a}, 'v{id}')"), &[]).await.unwrap();
            }
            s.execute("CREATE INDEX ON t (a)", &[]).await.unwrap();
            let all: Vec<i64> = (0..200).collect();
            let pick = |f: &dyn Fn(i64) -> bool| all.iter().copied().filter(|&id| f(id)).collect::<Vec<_>>();
            let cases: Vec<(&str, Vec<i64>, &str)> = vec![
                ("SELECT id FROM t WHERE id BETWEEN 10 AND 20 ORDER BY id", pick(&|id| (10..=20).contains(&id)), "pk"),
                ("SELECT id FROM t WHERE id > 150 AND id <= 152 ORDER BY id", vec![151, 152], "pk"),
                ("SELECT id FROM t WHERE id BETWEEN 20 AND 10", vec![], "pk"),
                ("SELECT id FROM t WHERE a = 3 ORDER BY id", pick(&|id| a(id) == Some(3)), "index"),
                ("SELECT id FROM t WHERE a IS NULL ORDER BY id", pick(&|id| a(id).is_none()), "index"),
                (
                    "SELECT id FROM t WHERE a IN (1, 2, NULL) AND id < 50 ORDER BY id",
                    pick(&|id| matches!(a(id), Some(1 | 2)) && id < 50),
                    "index",
                ),
                ("SELECT id FROM t WHERE a > 7 ORDER BY id", pick(&|id| a(id).is_some_and(|a| a > 7)), "index"),
                ("SELECT id FROM t WHERE b = 'v17'", vec![17], "index"),
                ("SELECT id FROM t WHERE a = 2.5", vec![], "full"),
                ("SELECT id FROM t WHERE a + 1 = 3 ORDER BY id", pick(&|id| a(id) == Some(2)), "full"),
            ];
            for (sql, want, path) in cases {
                let before = engine.access_stats();
                assert_eq!(ids(&mut s, sql).await, want, "{sql}");
                let after = engine.access_stats();
                let used = if after.index > before.index {
                    "index"
                } else if after.primary_key > before.primary_key {
                    "pk"
                } else {
                    "full"
                };
                assert_eq!(used, path, "{sql}");
            }

            // DML finds its rows the same way, and keeps the indexes in step.
            let before = engine.access_stats();
            s.execute("UPDATE t SET b = b || 'x', a = 11 WHERE a = 5", &[]).await.unwrap();
            assert!(engine.access_stats().index > before.index);
            assert_eq!(ids(&mut s, "SELECT id FROM t WHERE a = 5",).await, Vec::<i64>::new());
            assert_eq!(ids(&mut s, "SELECT id FROM t WHERE a = 11 ORDER BY id").await, pick(&|id| a(id) == Some(5)));
            assert_eq!(ids(&mut s, "SELECT id FROM t WHERE b = 'v15x'").await, vec![15]);
            let e = s.execute("INSERT INTO t VALUES (1000, 1, 'v15x')", &[]).await.unwrap_err();
            assert!(matches!(e, crate::Error::UniqueViolation(ref m) if m.contains("t_b_key")), "{e}");
            s.execute("DELETE FROM t WHERE b = 'v15x'", &[]).await.unwrap();
            s.execute("INSERT INTO t VALUES (1000, 1, 'v15x')", &[]).await.unwrap();
            assert_eq!(ids(&mut s, "SELECT id FROM t WHERE b = 'v15x'").await, vec![1000]);

            // A transaction older than an index scans the table instead.
            s.execute("DROP INDEX t_b_key", &[]).await.unwrap();
            let mut other = engine.session();
            other.execute("BEGIN", &[]).await.unwrap();
            assert_eq!(ids(&mut other, "SELECT id FROM t WHERE id = 3").await, vec![3]);
            s.execute("CREATE UNIQUE INDEX t_b2 ON t (b)", &[]).await.unwrap();
            let before = engine.access_stats();
            assert_eq!(ids(&mut other, "SELECT id FROM t WHERE b = 'v3'").await, vec![3]);
            assert_eq!(engine.access_stats().index, before.index, "built after the snapshot");
            other.execute("COMMIT", &[]).await.unwrap();
            assert_eq!(ids(&mut other, "SELECT id FROM t WHERE b = 'v3'").await, vec![3]);
            assert!(engine.access_stats().index > before.index);
        }
    }
}
