//! Filters a scan hands to the column store so it can skip segments by
//! their zone maps ([`omen_colstore::Predicate`]).
//!
//! Only conditions that are plainly about one column of the table are
//! passed: `column op literal` (either side), `BETWEEN`, `IN` lists and
//! `IS [NOT] NULL`, inside a conjunction. A literal is passed only if it
//! converts to the column's type and back unchanged, so no cast ever makes
//! pruning skip a row the query wants (`int_col < 2.5` is not passed: 2.5
//! does not survive a trip through an integer). Anything else is simply
//! not used for pruning; DataFusion applies every filter anyway.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef};
use arrow::compute::cast;
use arrow::datatypes::Schema;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use omen_colstore::{CmpOp, Predicate, Test};

/// The predicates `filters` give on the first `ncols` columns of `schema`.
pub(crate) fn predicates(filters: &[Expr], schema: &Schema, ncols: usize) -> Vec<Predicate> {
    let mut out = Vec::new();
    for f in filters {
        collect(f, schema, ncols, &mut out);
    }
    out
}

fn collect(e: &Expr, schema: &Schema, ncols: usize, out: &mut Vec<Predicate>) {
    let column = |e: &Expr| match e {
        Expr::Column(c) => schema.index_of(c.name()).ok().filter(|&i| i < ncols),
        _ => None,
    };
    let literal = |e: &Expr, col: usize| match e {
        Expr::Literal(v, _) => convert(v, schema.field(col).data_type()),
        _ => None,
    };
    let predicate = match e {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
            collect(left, schema, ncols, out);
            collect(right, schema, ncols, out);
            return;
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            // `literal op column` is `column op' literal`.
            let (col, lit, op) = match (column(left), column(right)) {
                (Some(c), None) => (c, right.as_ref(), *op),
                (None, Some(c)) => match op.swap() {
                    Some(swapped) => (c, left.as_ref(), swapped),
                    None => return,
                },
                _ => return,
            };
            let op = match op {
                Operator::Eq => CmpOp::Eq,
                Operator::Lt => CmpOp::Lt,
                Operator::LtEq => CmpOp::LtEq,
                Operator::Gt => CmpOp::Gt,
                Operator::GtEq => CmpOp::GtEq,
                _ => return,
            };
            literal(lit, col).map(|v| Predicate { column: col, test: Test::Cmp(op, v) })
        }
        Expr::Between(Between { expr, negated: false, low, high }) => {
            column(expr).and_then(|col| Some(Predicate { column: col, test: Test::Between(literal(low, col)?, literal(high, col)?) }))
        }
        Expr::InList(list) if !list.negated => column(&list.expr).and_then(|col| {
            let values: Vec<ArrayRef> = list.list.iter().map(|v| literal(v, col)).collect::<Option<_>>()?;
            let refs: Vec<&dyn Array> = values.iter().map(|v| v.as_ref()).collect();
            let all = arrow::compute::concat(&refs).ok()?;
            Some(Predicate { column: col, test: Test::In(all) })
        }),
        Expr::IsNull(inner) => column(inner).map(|col| Predicate { column: col, test: Test::IsNull }),
        Expr::IsNotNull(inner) => column(inner).map(|col| Predicate { column: col, test: Test::IsNotNull }),
        _ => None,
    };
    out.extend(predicate);
}

/// `v` as a one-element array of type `to`, if it is not NULL and the
/// conversion loses nothing.
fn convert(v: &ScalarValue, to: &arrow::datatypes::DataType) -> Option<ArrayRef> {
    if v.is_null() {
        return None;
    }
    let array = v.to_array().ok()?;
    if array.data_type() == to {
        return Some(array);
    }
    let converted = cast(&array, to).ok()?;
    let back = cast(&converted, array.data_type()).ok()?;
    (converted.null_count() == 0 && back.as_ref() == array.as_ref()).then(|| Arc::clone(&converted))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use arrow::datatypes::{DataType, Field};
    use datafusion::prelude::{col, lit};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("a", DataType::Int32, false),
            Field::new("s", DataType::Utf8, true),
            Field::new("k", DataType::Binary, false),
        ])
    }

    #[test]
    fn plain_conditions_become_predicates_and_lossy_ones_do_not() {
        let s = schema();
        let got = predicates(&[col("a").lt(lit(5i64)).and(lit(3i64).lt_eq(col("a"))), col("s").is_null()], &s, 2);
        assert_eq!(got.len(), 3);
        assert!(matches!(&got[0].test, Test::Cmp(CmpOp::Lt, v) if v.data_type() == &DataType::Int32));
        assert!(matches!(&got[1].test, Test::Cmp(CmpOp::GtEq, _)) && got[1].column == 0);
        assert!(matches!(&got[2].test, Test::IsNull) && got[2].column == 1);
        // 2.5 is no Int32; 1e10 overflows one; OR is not a conjunction;
        // the key column (past `ncols`) is not the table's.
        let none = [
            col("a").lt(lit(2.5f64)),
            col("a").eq(lit(10_000_000_000i64)),
            col("a").eq(lit(1)).or(col("a").eq(lit(2))),
            col("k").is_null(),
        ];
        assert!(predicates(&none, &s, 2).is_empty());
        let between = predicates(&[col("a").between(lit(1), lit(9)), col("s").in_list(vec![lit("x"), lit("y")], false)], &s, 2);
        assert!(matches!(&between[0].test, Test::Between(..)) && matches!(&between[1].test, Test::In(v) if v.len() == 2));
        assert!(predicates(&[col("a").not_between(lit(1), lit(9)), col("s").in_list(vec![lit("x")], true)], &s, 2).is_empty());
    }
}
