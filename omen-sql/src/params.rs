//! `$n` parameters: counting them in a statement and turning values into
//! DataFusion scalars of the types the plan expects.

use std::collections::HashMap;
use std::ops::ControlFlow;

use arrow::datatypes::DataType as ArrowType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{Expr, Value as SqlValue, visit_expressions};
use omen_rowstore::{ColumnDef, Value};
use omen_sync::convert::{array_to_values, arrow_type};

use crate::error::{Error, Result};

/// The highest `$n` in the statement (0 if none). `$0` or a non-numeric
/// placeholder is an error.
pub(crate) fn count<V: datafusion::sql::sqlparser::ast::Visit>(statement: &V) -> Result<usize> {
    let mut max = 0usize;
    let mut bad = None;
    let _ = visit_expressions(statement, |e| {
        if let Expr::Value(v) = e
            && let SqlValue::Placeholder(p) = &v.value
        {
            match p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()).filter(|&n| n > 0) {
                Some(n) => max = max.max(n),
                None => bad = Some(p.clone()),
            }
        }
        ControlFlow::<()>::Continue(())
    });
    match bad {
        Some(p) => Err(Error::Parameter(format!("unsupported placeholder {p:?}: use $1, $2, ..."))),
        None => Ok(max),
    }
}

/// Binds `params` into `plan`, casting each to the type the planner
/// inferred for its placeholder.
pub(crate) fn bind(plan: LogicalPlan, params: &[Value]) -> Result<LogicalPlan> {
    if params.is_empty() {
        return Ok(plan);
    }
    let scalars = typed(&types(&plan, params.len())?, params)?;
    Ok(plan.with_param_values(scalars)?)
}

/// The types the planner inferred for `$1..$n` (`None` where unknown).
pub(crate) fn types(plan: &LogicalPlan, n: usize) -> Result<Vec<Option<ArrowType>>> {
    let mut types: HashMap<String, Option<ArrowType>> = plan.get_parameter_types()?;
    Ok((1..=n).map(|i| types.remove(&format!("${i}")).flatten()).collect())
}

/// `params` as scalars of `types` (as they come where the type is unknown).
pub(crate) fn typed(types: &[Option<ArrowType>], params: &[Value]) -> Result<Vec<ScalarValue>> {
    params
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let s = scalar(v);
            match types.get(i) {
                Some(Some(t)) if &s.data_type() != t && !s.is_null() => {
                    s.cast_to(t).map_err(|e| Error::Parameter(format!("${} = {v} does not convert to {t}: {e}", i + 1)))
                }
                Some(Some(t)) if s.is_null() => ScalarValue::try_from(t).map_err(Error::from),
                _ => Ok(s),
            }
        })
        .collect()
}

pub(crate) fn check_count(expected: usize, params: &[Value]) -> Result<()> {
    if expected == params.len() {
        Ok(())
    } else {
        Err(Error::Parameter(format!("the statement has {expected} parameters ($1..${expected}), {} were given", params.len())))
    }
}

/// The DataFusion scalar of a value.
pub(crate) fn scalar(v: &Value) -> ScalarValue {
    match v {
        Value::Null => ScalarValue::Null,
        Value::Bool(x) => ScalarValue::Boolean(Some(*x)),
        Value::Int16(x) => ScalarValue::Int16(Some(*x)),
        Value::Int32(x) => ScalarValue::Int32(Some(*x)),
        Value::Int64(x) => ScalarValue::Int64(Some(*x)),
        Value::Float32(x) => ScalarValue::Float32(Some(*x)),
        Value::Float64(x) => ScalarValue::Float64(Some(*x)),
        Value::Decimal { unscaled, scale } => ScalarValue::Decimal128(Some(*unscaled), 38, *scale),
        Value::Text(x) => ScalarValue::Utf8(Some(x.clone())),
        Value::Bytes(x) => ScalarValue::Binary(Some(x.clone())),
        Value::Date(x) => ScalarValue::Date32(Some(*x)),
        Value::Timestamp(x) => ScalarValue::TimestampMicrosecond(Some(*x), None),
        Value::TimestampTz(x) => ScalarValue::TimestampMicrosecond(Some(*x), Some(omen_sync::convert::UTC.into())),
    }
}

/// The value of a DataFusion scalar (the inverse of how parameters become scalars), for callers
/// that receive parameters as scalars (the wire protocol decodes them so).
/// Other integer widths, text and binary encodings and timestamp units are
/// converted to the nearest OmenDB type; a type OmenDB has no value for
/// (intervals, lists, ...) is a [`Error::Parameter`].
pub fn value_of_scalar(s: &ScalarValue) -> Result<Value> {
    use arrow::datatypes::TimeUnit;
    if s.is_null() {
        return Ok(Value::Null);
    }
    Ok(match s {
        ScalarValue::Boolean(Some(x)) => Value::Bool(*x),
        ScalarValue::Int8(Some(x)) => Value::Int16(i16::from(*x)),
        ScalarValue::UInt8(Some(x)) => Value::Int16(i16::from(*x)),
        ScalarValue::Int16(Some(x)) => Value::Int16(*x),
        ScalarValue::UInt16(Some(x)) => Value::Int32(i32::from(*x)),
        ScalarValue::Int32(Some(x)) => Value::Int32(*x),
        ScalarValue::UInt32(Some(x)) => Value::Int64(i64::from(*x)),
        ScalarValue::Int64(Some(x)) => Value::Int64(*x),
        ScalarValue::Float32(Some(x)) => Value::Float32(*x),
        ScalarValue::Float64(Some(x)) => Value::Float64(*x),
        ScalarValue::Decimal128(Some(x), _, scale) => Value::Decimal { unscaled: *x, scale: *scale },
        ScalarValue::Utf8(Some(x)) | ScalarValue::LargeUtf8(Some(x)) | ScalarValue::Utf8View(Some(x)) => Value::Text(x.clone()),
        ScalarValue::Binary(Some(x)) | ScalarValue::LargeBinary(Some(x)) | ScalarValue::BinaryView(Some(x)) => Value::Bytes(x.clone()),
        ScalarValue::Date32(Some(x)) => Value::Date(*x),
        ScalarValue::TimestampMicrosecond(Some(x), tz) => {
            if tz.is_some() {
                Value::TimestampTz(*x)
            } else {
                Value::Timestamp(*x)
            }
        }
        s @ (ScalarValue::TimestampSecond(_, tz) | ScalarValue::TimestampMillisecond(_, tz) | ScalarValue::TimestampNanosecond(_, tz)) => {
            let micros = s
                .cast_to(&ArrowType::Timestamp(TimeUnit::Microsecond, tz.clone()))
                .map_err(|e| Error::Parameter(format!("timestamp {s} out of range: {e}")))?;
            return value_of_scalar(&micros);
        }
        other => return Err(Error::Parameter(format!("a parameter of type {} (OmenDB has no such column type)", other.data_type()))),
    })
}

/// `v` as a value of `column`'s type, if it converts without loss.
pub(crate) fn exact(v: &ScalarValue, column: &ColumnDef) -> Option<Value> {
    if v.is_null() {
        return None;
    }
    let target = arrow_type(&column.data_type);
    let converted = if v.data_type() == target {
        v.clone()
    } else {
        let c = v.cast_to(&target).ok()?;
        if c.is_null() || c.cast_to(&v.data_type()).ok()? != *v {
            return None;
        }
        c
    };
    array_to_values(&converted.to_array().ok()?, &column.data_type).ok()?.pop()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn scalars_and_values_round_trip() {
        let values = [
            Value::Null,
            Value::Bool(true),
            Value::Int16(-3),
            Value::Int32(7),
            Value::Int64(i64::MIN),
            Value::Float32(1.5),
            Value::Float64(-2.25),
            Value::Decimal { unscaled: 12345, scale: 2 },
            Value::Text("héllo".into()),
            Value::Bytes(vec![0, 255]),
            Value::Date(-1),
            Value::Timestamp(1_700_000_000_000_000),
            Value::TimestampTz(-5),
        ];
        for v in values {
            assert_eq!(value_of_scalar(&scalar(&v)).unwrap(), v);
        }
        assert_eq!(value_of_scalar(&ScalarValue::TimestampSecond(Some(2), None)).unwrap(), Value::Timestamp(2_000_000));
        assert!(matches!(value_of_scalar(&ScalarValue::new_interval_dt(1, 2)), Err(Error::Parameter(_))));
    }
}
