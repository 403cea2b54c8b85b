//! Conversions between the row store's values and Arrow: the one place that
//! knows both formats.
//!
//! | SQL type                 | Arrow type                         |
//! |--------------------------|------------------------------------|
//! | BOOLEAN                  | Boolean                            |
//! | SMALLINT/INTEGER/BIGINT  | Int16/Int32/Int64                  |
//! | REAL/DOUBLE PRECISION    | Float32/Float64                    |
//! | NUMERIC(p,s)             | Decimal128(p,s)                    |
//! | TEXT, BYTEA              | Utf8, Binary                       |
//! | DATE                     | Date32                             |
//! | TIMESTAMP [WITH TZ]      | Timestamp(Microsecond, [Some("UTC")]) |

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, BooleanArray, BooleanBuilder, Date32Array, Date32Builder, Decimal128Array,
    Decimal128Builder, Float32Array, Float32Builder, Float64Array, Float64Builder, Int16Array, Int16Builder, Int32Array, Int32Builder,
    Int64Array, Int64Builder, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef, TimeUnit};
use omen_rowstore::{DataType, TableSchema, Value};

use crate::error::{Error, Result};

/// Time zone of TIMESTAMP WITH TIME ZONE columns.
pub const UTC: &str = "UTC";

/// The Arrow type a SQL type is held as.
pub fn arrow_type(t: &DataType) -> ArrowType {
    match t {
        DataType::Bool => ArrowType::Boolean,
        DataType::Int16 => ArrowType::Int16,
        DataType::Int32 => ArrowType::Int32,
        DataType::Int64 => ArrowType::Int64,
        DataType::Float32 => ArrowType::Float32,
        DataType::Float64 => ArrowType::Float64,
        DataType::Decimal { precision, scale } => ArrowType::Decimal128(*precision, *scale),
        DataType::Text => ArrowType::Utf8,
        DataType::Bytes => ArrowType::Binary,
        DataType::Date => ArrowType::Date32,
        DataType::Timestamp => ArrowType::Timestamp(TimeUnit::Microsecond, None),
        DataType::TimestampTz => ArrowType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
    }
}

/// The Arrow schema of a table: its columns in order, every field nullable.
///
/// NOT NULL is the row store's constraint, checked on every write with a
/// proper error; Arrow non-nullability would make DataFusion reject a NULL
/// with a generic execution error before the row store could.
pub fn arrow_schema(schema: &TableSchema) -> SchemaRef {
    Arc::new(Schema::new(schema.columns.iter().map(|c| Field::new(&c.name, arrow_type(&c.data_type), true)).collect::<Vec<_>>()))
}

/// Builds an Arrow batch of `arrow_schema` from rows that passed the table's
/// schema check.
pub fn rows_to_batch(table: &TableSchema, arrow_schema: &SchemaRef, rows: &[&[Value]]) -> Result<RecordBatch> {
    let columns =
        table.columns.iter().enumerate().map(|(i, c)| column(&c.data_type, rows.iter().map(|r| &r[i]))).collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(arrow_schema), columns)?)
}

fn mismatch(v: &Value, t: &DataType) -> Error {
    Error::Conversion(format!("value {v} in a {} column", t.sql_name()))
}

macro_rules! build {
    ($builder:expr, $values:expr, $t:expr, $pat:pat => $out:expr) => {{
        let mut b = $builder;
        for v in $values {
            match v {
                Value::Null => b.append_null(),
                $pat => b.append_value($out),
                other => return Err(mismatch(other, $t)),
            }
        }
        Arc::new(b.finish()) as ArrayRef
    }};
}

fn column<'a>(t: &DataType, values: impl ExactSizeIterator<Item = &'a Value>) -> Result<ArrayRef> {
    let n = values.len();
    Ok(match t {
        DataType::Bool => build!(BooleanBuilder::with_capacity(n), values, t, Value::Bool(x) => *x),
        DataType::Int16 => build!(Int16Builder::with_capacity(n), values, t, Value::Int16(x) => *x),
        DataType::Int32 => build!(Int32Builder::with_capacity(n), values, t, Value::Int32(x) => *x),
        DataType::Int64 => build!(Int64Builder::with_capacity(n), values, t, Value::Int64(x) => *x),
        DataType::Float32 => build!(Float32Builder::with_capacity(n), values, t, Value::Float32(x) => *x),
        DataType::Float64 => build!(Float64Builder::with_capacity(n), values, t, Value::Float64(x) => *x),
        DataType::Decimal { precision, scale } => {
            let b = Decimal128Builder::with_capacity(n).with_precision_and_scale(*precision, *scale)?;
            build!(b, values, t, Value::Decimal { unscaled, .. } => *unscaled)
        }
        DataType::Text => build!(StringBuilder::with_capacity(n, n * 8), values, t, Value::Text(x) => x),
        DataType::Bytes => build!(BinaryBuilder::with_capacity(n, n * 8), values, t, Value::Bytes(x) => x),
        DataType::Date => build!(Date32Builder::with_capacity(n), values, t, Value::Date(x) => *x),
        DataType::Timestamp => build!(TimestampMicrosecondBuilder::with_capacity(n), values, t, Value::Timestamp(x) => *x),
        DataType::TimestampTz => {
            build!(TimestampMicrosecondBuilder::with_capacity(n).with_timezone(UTC), values, t, Value::TimestampTz(x) => *x)
        }
    })
}

/// Converts an Arrow column to SQL values of type `t`, casting first (an
/// overflow or unparsable value is an error, never a silent NULL).
pub fn array_to_values(array: &dyn Array, t: &DataType) -> Result<Vec<Value>> {
    let target = arrow_type(t);
    let cast;
    let array = if array.data_type() == &target {
        array
    } else {
        let options = CastOptions { safe: false, ..Default::default() };
        cast = cast_with_options(array, &target, &options)
            .map_err(|e| Error::Conversion(format!("cannot convert {} to {}: {e}", array.data_type(), t.sql_name())))?;
        cast.as_ref()
    };
    macro_rules! values {
        ($arr:ty, |$x:ident| $out:expr) => {{
            let a = array.as_any().downcast_ref::<$arr>().ok_or_else(|| Error::Conversion(format!("expected {}", t.sql_name())))?;
            (0..a.len())
                .map(|i| {
                    if a.is_null(i) {
                        Value::Null
                    } else {
                        let $x = a.value(i);
                        $out
                    }
                })
                .collect()
        }};
    }
    Ok(match t {
        DataType::Bool => values!(BooleanArray, |x| Value::Bool(x)),
        DataType::Int16 => values!(Int16Array, |x| Value::Int16(x)),
        DataType::Int32 => values!(Int32Array, |x| Value::Int32(x)),
        DataType::Int64 => values!(Int64Array, |x| Value::Int64(x)),
        DataType::Float32 => values!(Float32Array, |x| Value::Float32(x)),
        DataType::Float64 => values!(Float64Array, |x| Value::Float64(x)),
        DataType::Decimal { scale, .. } => values!(Decimal128Array, |x| Value::Decimal { unscaled: x, scale: *scale }),
        DataType::Text => values!(StringArray, |x| Value::Text(x.to_owned())),
        DataType::Bytes => values!(BinaryArray, |x| Value::Bytes(x.to_vec())),
        DataType::Date => values!(Date32Array, |x| Value::Date(x)),
        DataType::Timestamp => values!(TimestampMicrosecondArray, |x| Value::Timestamp(x)),
        DataType::TimestampTz => values!(TimestampMicrosecondArray, |x| Value::TimestampTz(x)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use omen_rowstore::ColumnDef;

    #[test]
    fn rows_round_trip_through_arrow_for_every_type() {
        let row = vec![
            Value::Bool(true),
            Value::Int16(-2),
            Value::Int32(3),
            Value::Int64(-4),
            Value::Float32(1.5),
            Value::Float64(-2.25),
            Value::Decimal { unscaled: 12345, scale: 2 },
            Value::Text("héllo".into()),
            Value::Bytes(vec![0, 255]),
            Value::Date(19000),
            Value::Timestamp(1_700_000_000_000_000),
            Value::TimestampTz(-1),
        ];
        let types: Vec<DataType> = vec![
            DataType::Bool,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::Float32,
            DataType::Float64,
            DataType::Decimal { precision: 10, scale: 2 },
            DataType::Text,
            DataType::Bytes,
            DataType::Date,
            DataType::Timestamp,
            DataType::TimestampTz,
        ];
        let table = TableSchema {
            name: "t".into(),
            columns: types.iter().enumerate().map(|(i, t)| ColumnDef::new(format!("c{i}"), *t)).collect(),
            primary_key: vec![],
        };
        let nulls = vec![Value::Null; row.len()];
        let schema = arrow_schema(&table);
        let batch = rows_to_batch(&table, &schema, &[&row, &nulls]).unwrap();
        for (i, t) in types.iter().enumerate() {
            assert_eq!(array_to_values(batch.column(i).as_ref(), t).unwrap(), vec![row[i].clone(), Value::Null]);
        }
    }

    #[test]
    fn lossy_casts_are_errors() {
        let big = Int64Array::from(vec![i64::MAX]);
        assert!(array_to_values(&big, &DataType::Int32).is_err());
        let text = StringArray::from(vec!["abc"]);
        assert!(array_to_values(&text, &DataType::Int64).is_err());
        let ok = StringArray::from(vec!["42"]);
        assert_eq!(array_to_values(&ok, &DataType::Int64).unwrap(), vec![Value::Int64(42)]);
    }
}
