//! Memcomparable primary-key encoding: byte order equals SQL order.
//!
//! Composite keys concatenate their columns' encodings; each encoding is
//! self-delimiting, so `(a, b) < (a, c)` exactly when `b < c`.
//!
//! - Integers, DATE, TIMESTAMP, NUMERIC: big-endian with the sign bit flipped.
//! - REAL / DOUBLE: IEEE bits; negative values have every bit inverted,
//!   non-negative ones only the sign bit. `-0.0` is stored as `0.0` (they are
//!   equal in SQL) and every NaN as the canonical NaN, which sorts last, as
//!   PostgreSQL orders it.
//! - BOOLEAN: one byte, 0 or 1.
//! - TEXT / BYTEA: each `0x00` byte escaped as `0x00 0xFF`, then the terminator
//!   `0x00 0x01`; a prefix therefore sorts before its extensions. TEXT compares
//!   by bytes (the C collation).
//!
//! Tables without a declared key use a hidden row id: 8 bytes big-endian.

use crate::value::Value;

/// Appends the memcomparable encoding of a non-null key value.
///
/// # Panics
///
/// Never: NULL is rejected before keys are built (primary-key columns are NOT
/// NULL), and encodes as nothing if it ever arrives.
pub(crate) fn encode_key_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => {}
        Value::Bool(b) => out.push(u8::from(*b)),
        Value::Int16(x) => out.extend_from_slice(&((*x as u16) ^ 0x8000).to_be_bytes()),
        Value::Int32(x) | Value::Date(x) => out.extend_from_slice(&((*x as u32) ^ (1 << 31)).to_be_bytes()),
        Value::Int64(x) | Value::Timestamp(x) | Value::TimestampTz(x) => {
            out.extend_from_slice(&((*x as u64) ^ (1 << 63)).to_be_bytes());
        }
        Value::Decimal { unscaled, .. } => out.extend_from_slice(&((*unscaled as u128) ^ (1 << 127)).to_be_bytes()),
        Value::Float32(x) => {
            let x = if *x == 0.0 {
                0.0
            } else if x.is_nan() {
                f32::NAN
            } else {
                *x
            };
            let bits = x.to_bits();
            let bits = if bits >> 31 == 1 { !bits } else { bits | (1 << 31) };
            out.extend_from_slice(&bits.to_be_bytes());
        }
        Value::Float64(x) => {
            let x = if *x == 0.0 {
                0.0
            } else if x.is_nan() {
                f64::NAN
            } else {
                *x
            };
            let bits = x.to_bits();
            let bits = if bits >> 63 == 1 { !bits } else { bits | (1 << 63) };
            out.extend_from_slice(&bits.to_be_bytes());
        }
        Value::Text(s) => encode_escaped(out, s.as_bytes()),
        Value::Bytes(b) => encode_escaped(out, b),
    }
}

fn encode_escaped(out: &mut Vec<u8>, b: &[u8]) {
    for &byte in b {
        out.push(byte);
        if byte == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 1]);
}

/// The key of a row of a table with declared primary-key columns `pk`.
pub fn encode_key(row: &[Value], pk: &[usize]) -> Vec<u8> {
    let mut out = Vec::with_capacity(pk.len() * 9);
    for &i in pk {
        encode_key_value(&mut out, &row[i]);
    }
    out
}

/// The key of a row in a table without a declared primary key.
pub fn encode_row_id(id: u64) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cmp::Ordering;

    fn key(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode_key_value(&mut out, v);
        out
    }

    proptest! {
        #[test]
        fn i64_order(a: i64, b: i64) {
            prop_assert_eq!(a.cmp(&b), key(&Value::Int64(a)).cmp(&key(&Value::Int64(b))));
        }

        #[test]
        fn i16_and_i32_order(a: i16, b: i16, c: i32, d: i32) {
            prop_assert_eq!(a.cmp(&b), key(&Value::Int16(a)).cmp(&key(&Value::Int16(b))));
            prop_assert_eq!(c.cmp(&d), key(&Value::Int32(c)).cmp(&key(&Value::Int32(d))));
        }

        #[test]
        fn decimal_order(a: i128, b: i128) {
            let k = |u| key(&Value::Decimal { unscaled: u, scale: 2 });
            prop_assert_eq!(a.cmp(&b), k(a).cmp(&k(b)));
        }

        #[test]
        fn f64_order(a in any::<f64>().prop_filter("nan", |f| !f.is_nan()), b in any::<f64>().prop_filter("nan", |f| !f.is_nan())) {
            let expect = a.partial_cmp(&b).unwrap_or(Ordering::Equal);
            prop_assert_eq!(expect, key(&Value::Float64(a)).cmp(&key(&Value::Float64(b))));
        }

        #[test]
        fn f32_order(a in any::<f32>().prop_filter("nan", |f| !f.is_nan()), b in any::<f32>().prop_filter("nan", |f| !f.is_nan())) {
            let expect = a.partial_cmp(&b).unwrap_or(Ordering::Equal);
            prop_assert_eq!(expect, key(&Value::Float32(a)).cmp(&key(&Value::Float32(b))));
        }

        #[test]
        fn bytes_order(a: Vec<u8>, b: Vec<u8>) {
            prop_assert_eq!(a.cmp(&b), key(&Value::Bytes(a.clone())).cmp(&key(&Value::Bytes(b.clone()))));
        }

        #[test]
        fn composite_order(a: (String, i32), b: (String, i32)) {
            let k = |(s, i): &(String, i32)| encode_key(&[Value::Text(s.clone()), Value::Int32(*i)], &[0, 1]);
            prop_assert_eq!(a.cmp(&b), k(&a).cmp(&k(&b)));
        }
    }

    #[test]
    fn float_edge_cases() {
        assert_eq!(key(&Value::Float64(-0.0)), key(&Value::Float64(0.0)));
        assert!(key(&Value::Float64(f64::NAN)) > key(&Value::Float64(f64::INFINITY)));
        assert!(key(&Value::Float64(f64::NEG_INFINITY)) < key(&Value::Float64(f64::MIN)));
    }

    #[test]
    fn embedded_zero_bytes_keep_order() {
        let a = key(&Value::Bytes(vec![1, 0]));
        let b = key(&Value::Bytes(vec![1]));
        let c = key(&Value::Bytes(vec![1, 0, 0]));
        assert!(b < a && a < c);
    }
}
