//! Row encoding, format version 1.
//!
//! ```text
//! +---------+------------+------------------------+---------------------------+
//! | ver: u8 | ncols: var | null bitmap: ncols/8 B | non-null values, in order |
//! +---------+------------+------------------------+---------------------------+
//! ```
//!
//! Bit `i % 8` of bitmap byte `i / 8` is set when column `i` is NULL. Values are
//! little-endian and fixed-width (BOOLEAN 1 byte, SMALLINT 2, INTEGER/DATE/REAL
//! 4, BIGINT/TIMESTAMP/DOUBLE 8, NUMERIC 16 unscaled), TEXT/BYTEA a varint
//! length and the bytes. A row written when the table had fewer columns decodes
//! with the missing trailing columns NULL, so ADD COLUMN needs no rewrite.

use crate::error::{Error, Result};
use crate::schema::TableSchema;
use crate::value::{DataType, Value};
use omen_files::codec::{Reader, put_bytes, put_varint};

const ROW_FORMAT_V1: u8 = 1;

/// Encodes a row that has passed [`TableSchema::check_row`].
pub fn encode_row(row: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + row.len() * 8);
    out.push(ROW_FORMAT_V1);
    put_varint(&mut out, row.len() as u64);
    let bitmap_at = out.len();
    out.resize(bitmap_at + row.len().div_ceil(8), 0);
    for (i, v) in row.iter().enumerate() {
        if v.is_null() {
            out[bitmap_at + i / 8] |= 1 << (i % 8);
        } else {
            encode_value(&mut out, v);
        }
    }
    out
}

/// Decodes a row of `schema` from untrusted bytes.
pub fn decode_row(bytes: &[u8], schema: &TableSchema) -> Result<Vec<Value>> {
    let mut r = Reader::new(bytes);
    let ver = r.u8()?;
    if ver != ROW_FORMAT_V1 {
        return Err(Error::Decode(format!("unknown row format version {ver}")));
    }
    // Not `r.len()`: NULL columns take no bytes past the bitmap, so the
    // count may exceed the bytes left. The schema bounds it instead.
    let ncols = r.varint()?;
    let ncols = usize::try_from(ncols)
        .ok()
        .filter(|&n| n <= schema.columns.len())
        .ok_or_else(|| Error::Decode(format!("row has {ncols} columns, table {:?} has {}", schema.name, schema.columns.len())))?;
    let bitmap = r.take(ncols.div_ceil(8))?;
    let mut row = Vec::with_capacity(schema.columns.len());
    for (i, col) in schema.columns.iter().enumerate() {
        let v = if i >= ncols || bitmap[i / 8] & (1 << (i % 8)) != 0 { Value::Null } else { decode_value(&mut r, &col.data_type)? };
        row.push(v);
    }
    if !r.is_empty() {
        return Err(Error::Decode("trailing bytes after row".into()));
    }
    Ok(row)
}

/// Appends one non-null value (NULL appends nothing: the bitmap carries it).
pub(crate) fn encode_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => {}
        Value::Bool(b) => out.push(u8::from(*b)),
        Value::Int16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Int32(x) | Value::Date(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Int64(x) | Value::Timestamp(x) | Value::TimestampTz(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Float32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Float64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Decimal { unscaled, .. } => out.extend_from_slice(&unscaled.to_le_bytes()),
        Value::Text(s) => put_bytes(out, s.as_bytes()),
        Value::Bytes(b) => put_bytes(out, b),
    }
}

/// Reads one non-null value of type `ty`.
pub(crate) fn decode_value(r: &mut Reader<'_>, ty: &DataType) -> Result<Value> {
    Ok(match ty {
        DataType::Bool => match r.u8()? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            b => return Err(Error::Decode(format!("invalid boolean byte {b}"))),
        },
        DataType::Int16 => Value::Int16(i16::from_le_bytes(r.array()?)),
        DataType::Int32 => Value::Int32(i32::from_le_bytes(r.array()?)),
        DataType::Date => Value::Date(i32::from_le_bytes(r.array()?)),
        DataType::Int64 => Value::Int64(i64::from_le_bytes(r.array()?)),
        DataType::Timestamp => Value::Timestamp(i64::from_le_bytes(r.array()?)),
        DataType::TimestampTz => Value::TimestampTz(i64::from_le_bytes(r.array()?)),
        DataType::Float32 => Value::Float32(f32::from_le_bytes(r.array()?)),
        DataType::Float64 => Value::Float64(f64::from_le_bytes(r.array()?)),
        DataType::Decimal { scale, .. } => Value::Decimal { unscaled: i128::from_le_bytes(r.array()?), scale: *scale },
        DataType::Text => Value::Text(r.var_str()?.to_owned()),
        DataType::Bytes => Value::Bytes(r.var_bytes()?.to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ColumnDef;
    use proptest::prelude::*;

    pub(crate) fn all_types_schema() -> TableSchema {
        let types = [
            DataType::Bool,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::Float32,
            DataType::Float64,
            DataType::Decimal { precision: 20, scale: 4 },
            DataType::Text,
            DataType::Bytes,
            DataType::Date,
            DataType::Timestamp,
            DataType::TimestampTz,
        ];
        TableSchema {
            name: "t".into(),
            columns: types.iter().enumerate().map(|(i, t)| ColumnDef::new(format!("c{i}"), *t)).collect(),
            primary_key: vec![],
        }
    }

    fn arb_value(ty: DataType) -> BoxedStrategy<Value> {
        let v = match ty {
            DataType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
            DataType::Int16 => any::<i16>().prop_map(Value::Int16).boxed(),
            DataType::Int32 => any::<i32>().prop_map(Value::Int32).boxed(),
            DataType::Int64 => any::<i64>().prop_map(Value::Int64).boxed(),
            DataType::Float32 => any::<f32>().prop_filter("nan", |f| !f.is_nan()).prop_map(Value::Float32).boxed(),
            DataType::Float64 => any::<f64>().prop_filter("nan", |f| !f.is_nan()).prop_map(Value::Float64).boxed(),
            DataType::Decimal { scale, .. } => any::<i64>().prop_map(move |u| Value::Decimal { unscaled: i128::from(u), scale }).boxed(),
            DataType::Text => ".{0,20}".prop_map(Value::Text).boxed(),
            DataType::Bytes => proptest::collection::vec(any::<u8>(), 0..20).prop_map(Value::Bytes).boxed(),
            DataType::Date => any::<i32>().prop_map(Value::Date).boxed(),
            DataType::Timestamp => any::<i64>().prop_map(Value::Timestamp).boxed(),
            DataType::TimestampTz => any::<i64>().prop_map(Value::TimestampTz).boxed(),
        };
        // Even odds: NULL-heavy rows are where the bitmap logic gets exercised.
        prop_oneof![1 => Just(Value::Null), 1 => v].boxed()
    }

    fn arb_row() -> impl Strategy<Value = Vec<Value>> {
        all_types_schema().columns.iter().map(|c| arb_value(c.data_type)).collect::<Vec<_>>()
    }

    proptest! {
        #[test]
        fn row_round_trip(row in arb_row()) {
            let schema = all_types_schema();
            let bytes = encode_row(&row);
            prop_assert_eq!(decode_row(&bytes, &schema).unwrap(), row);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_row(&bytes, &all_types_schema());
        }
    }

    /// Found by the facade's reopen test: a row mostly NULL has fewer bytes
    /// after its column count than columns, and was rejected as corrupt.
    #[test]
    fn regression_mostly_null_row_decodes() {
        let schema = all_types_schema();
        let mut row = vec![Value::Null; schema.columns.len()];
        assert_eq!(decode_row(&encode_row(&row), &schema).unwrap(), row);
        row[2] = Value::Int32(2);
        assert_eq!(decode_row(&encode_row(&row), &schema).unwrap(), row);
    }

    #[test]
    fn added_columns_decode_as_null() {
        let mut schema = all_types_schema();
        schema.columns.truncate(2);
        let bytes = encode_row(&[Value::Bool(true), Value::Int16(7)]);
        schema.columns.push(ColumnDef::new("new", DataType::Text));
        assert_eq!(decode_row(&bytes, &schema).unwrap(), vec![Value::Bool(true), Value::Int16(7), Value::Null]);
    }

    #[test]
    fn truncated_rows_fail() {
        let schema = all_types_schema();
        let row: Vec<Value> = vec![
            Value::Bool(true),
            Value::Int16(1),
            Value::Int32(2),
            Value::Int64(3),
            Value::Float32(1.5),
            Value::Float64(2.5),
            Value::Decimal { unscaled: 12345, scale: 4 },
            Value::Text("héllo".into()),
            Value::Bytes(vec![0, 1, 2]),
            Value::Date(19000),
            Value::Timestamp(1),
            Value::TimestampTz(-1),
        ];
        let bytes = encode_row(&row);
        for cut in 0..bytes.len() {
            assert!(decode_row(&bytes[..cut], &schema).is_err(), "cut at {cut}");
        }
    }
}
