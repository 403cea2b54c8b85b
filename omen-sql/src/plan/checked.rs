//! Integer arithmetic that fails on overflow, as PostgreSQL's does.
//!
//! DataFusion 55 plans `+`, `-` and `*` on integers with wrapping kernels:
//! `UPDATE t SET b = b * 2` on a BIGINT of 2^62 would write a negative
//! number. [`CheckedArithmetic`] (an analyzer rule, after type coercion)
//! and [`expr`] (for the expressions OmenDB compiles itself: the fast path,
//! RETURNING, ON CONFLICT) replace such an operation on two integers of one
//! type with a function that fails with PostgreSQL's "bigint out of range".
//! Output names are kept, so nothing above notices the change.

use std::sync::Arc;

use arrow::compute::kernels::numeric;
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, DataFusionError, Result};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr_common::datum::apply;

/// The analyzer rule: every plan's integer `+`, `-`, `*` become checked.
#[derive(Debug, Default)]
pub(crate) struct CheckedArithmetic;

impl AnalyzerRule for CheckedArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            // Every statement runs this; most plan nodes hold no arithmetic
            // and need no schema built.
            let mut any = false;
            plan.apply_expressions(|e| {
                any = e.exists(|e| Ok(matches!(e, Expr::BinaryExpr(b) if checked_name(b.op).is_some())))?;
                Ok(if any { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
            })?;
            if !any {
                return Ok(Transformed::no(plan));
            }
            let schema = input_schema(&plan);
            let names = NamePreserver::new(&plan);
            plan.map_expressions(|e| {
                let saved = names.save(&e);
                let rewritten = rewrite(e, &schema)?;
                Ok(if rewritten.transformed { rewritten.update_data(|e| saved.restore(e)) } else { rewritten })
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "omendb_checked_arithmetic"
    }
}

/// `e`, over `schema`, with its integer `+`, `-`, `*` checked.
pub(crate) fn expr(e: Expr, schema: &DFSchema) -> Result<Expr> {
    rewrite(e, schema).data()
}

/// The columns a plan node's expressions may name: its inputs' together
/// (a join's two sides), or its own for a leaf.
fn input_schema(plan: &LogicalPlan) -> DFSchema {
    let inputs = plan.inputs();
    let Some((first, rest)) = inputs.split_first() else { return plan.schema().as_ref().clone() };
    let mut schema = first.schema().as_ref().clone();
    for input in rest {
        schema.merge(input.schema());
    }
    schema
}

fn rewrite(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    e.transform_up(|e| {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else { return Ok(Transformed::no(e)) };
        // A type that cannot be worked out here (a column of another scope)
        // keeps DataFusion's operator.
        let same_integer = || matches!((left.get_type(schema), right.get_type(schema)), (Ok(l), Ok(r)) if l == r && l.is_integer());
        match checked_name(op) {
            Some(name) if same_integer() => {
                let udf = Arc::new(ScalarUDF::from(Checked { name, op, signature: Signature::any(2, Volatility::Immutable) }));
                Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(udf, vec![*left, *right]))))
            }
            _ => Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right }))),
        }
    })
}

fn checked_name(op: Operator) -> Option<&'static str> {
    match op {
        Operator::Plus => Some("int_checked_add"),
        Operator::Minus => Some("int_checked_sub"),
        Operator::Multiply => Some("int_checked_mul"),
        _ => None,
    }
}

/// PostgreSQL's name of an integer type, for the overflow error.
fn pg_name(t: &DataType) -> &'static str {
    match t {
        DataType::Int16 => "smallint",
        DataType::Int32 => "integer",
        DataType::Int64 => "bigint",
        _ => "integer",
    }
}

/// `left op right` on two integers of one type, failing on overflow.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Checked {
    name: &'static str,
    op: Operator,
    signature: Signature,
}

impl ScalarUDFImpl for Checked {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    /// As DataFusion's own operator does (`datum::apply`: a scalar operand
    /// is never expanded into an array), with arrow's checked kernels.
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [left, right] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(format!("{} takes two arguments", self.name)));
        };
        let kernel = match self.op {
            Operator::Plus => numeric::add,
            Operator::Minus => numeric::sub,
            _ => numeric::mul,
        };
        apply(left, right, kernel).map_err(|e| match e {
            // Kept an overflow (not an Execution error), so it maps to
            // Error::NumericOutOfRange, with PostgreSQL's message.
            DataFusionError::ArrowError(e, _) if matches!(*e, ArrowError::ArithmeticOverflow(_)) => DataFusionError::ArrowError(
                Box::new(ArrowError::ArithmeticOverflow(format!("{} out of range", pg_name(&left.data_type())))),
                None,
            ),
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{Engine, EngineOptions, Error};

    #[tokio::test]
    async fn integer_overflow_is_an_error_and_writes_nothing() {
        let engine = Engine::open(EngineOptions::default()).unwrap();
        let mut s = engine.session();
        s.execute("CREATE TABLE t (k INT PRIMARY KEY, b BIGINT, i INT)", &[]).await.unwrap();
        s.execute("INSERT INTO t VALUES (1, 4611686018427387904, 1073741824), (2, 1, 1)", &[]).await.unwrap();
        for sql in [
            "UPDATE t SET b = b * 2 WHERE k = 1",                     // the fast path
            "UPDATE t SET b = b + b WHERE k > 0",                     // the general path
            "UPDATE t SET i = i * 2 WHERE i > 0",                     // INT, not widened
            "SELECT b * 4 FROM t",                                    // a query
            "SELECT -9223372036854775807 - b - b FROM t WHERE k = 2", // minus
        ] {
            // A query fails as its rows are read.
            let e = match s.execute(sql, &[]).await {
                Ok(crate::Output::Rows { stream, .. }) => Error::from(
                    futures::TryStreamExt::try_collect::<Vec<_>>(stream).await.err().unwrap_or_else(|| panic!("{sql}: succeeded")),
                ),
                Ok(_) => panic!("{sql}: succeeded"),
                Err(e) => e,
            };
            assert!(matches!(e, Error::NumericOutOfRange(_)), "{sql}: {e:?}");
            assert_eq!(e.sqlstate(), "22003");
        }
        // Nothing was written; inside the range, arithmetic works as before.
        s.execute("UPDATE t SET b = b * 2 - 1, i = i + 1 WHERE k = 2", &[]).await.unwrap();
        let Ok(crate::Output::Rows { stream, .. }) = s.execute("SELECT b, i FROM t ORDER BY k", &[]).await else { panic!("no rows") };
        let batches: Vec<arrow::array::RecordBatch> = futures::TryStreamExt::try_collect(stream).await.unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
        assert!(text.contains("4611686018427387904") && text.contains("1073741824") && text.contains("| 1 "), "{text}");
    }
}
