//! SQL values and their types, as the row store holds them.

use std::fmt;

/// The SQL column types OmenDB stores. Each maps to one Arrow type (see omen-sync's `convert.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// BOOLEAN.
    Bool,
    /// SMALLINT.
    Int16,
    /// INTEGER.
    Int32,
    /// BIGINT.
    Int64,
    /// REAL.
    Float32,
    /// DOUBLE PRECISION.
    Float64,
    /// NUMERIC(precision, scale), held as an unscaled `i128`.
    Decimal {
        /// Total digits, 1..=38.
        precision: u8,
        /// Digits after the point.
        scale: i8,
    },
    /// TEXT / VARCHAR (UTF-8).
    Text,
    /// BYTEA.
    Bytes,
    /// DATE: days since 1970-01-01.
    Date,
    /// TIMESTAMP (without time zone): microseconds since 1970-01-01 00:00.
    Timestamp,
    /// TIMESTAMP WITH TIME ZONE: microseconds since the Unix epoch, UTC.
    TimestampTz,
}

impl DataType {
    /// The SQL spelling, for messages.
    pub fn sql_name(&self) -> String {
        match self {
            DataType::Bool => "BOOLEAN".into(),
            DataType::Int16 => "SMALLINT".into(),
            DataType::Int32 => "INTEGER".into(),
            DataType::Int64 => "BIGINT".into(),
            DataType::Float32 => "REAL".into(),
            DataType::Float64 => "DOUBLE PRECISION".into(),
            DataType::Decimal { precision, scale } => format!("NUMERIC({precision},{scale})"),
            DataType::Text => "TEXT".into(),
            DataType::Bytes => "BYTEA".into(),
            DataType::Date => "DATE".into(),
            DataType::Timestamp => "TIMESTAMP".into(),
            DataType::TimestampTz => "TIMESTAMP WITH TIME ZONE".into(),
        }
    }
}

/// One SQL value.
///
/// A value's variant must match its column's [`DataType`]; the store checks this
/// on every write ([`crate::TableSchema::check_row`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// BOOLEAN.
    Bool(bool),
    /// SMALLINT.
    Int16(i16),
    /// INTEGER.
    Int32(i32),
    /// BIGINT.
    Int64(i64),
    /// REAL.
    Float32(f32),
    /// DOUBLE PRECISION.
    Float64(f64),
    /// NUMERIC: the unscaled value and its scale (value = unscaled * 10^-scale).
    Decimal {
        /// Unscaled value.
        unscaled: i128,
        /// Digits after the point.
        scale: i8,
    },
    /// TEXT.
    Text(String),
    /// BYTEA.
    Bytes(Vec<u8>),
    /// DATE, days since 1970-01-01.
    Date(i32),
    /// TIMESTAMP, microseconds since 1970-01-01 00:00.
    Timestamp(i64),
    /// TIMESTAMP WITH TIME ZONE, microseconds since the epoch (UTC).
    TimestampTz(i64),
}

impl Value {
    /// Whether this value may be stored in a column of type `ty` (NULL fits every type).
    pub fn fits(&self, ty: &DataType) -> bool {
        matches!(
            (self, ty),
            (Value::Null, _)
                | (Value::Bool(_), DataType::Bool)
                | (Value::Int16(_), DataType::Int16)
                | (Value::Int32(_), DataType::Int32)
                | (Value::Int64(_), DataType::Int64)
                | (Value::Float32(_), DataType::Float32)
                | (Value::Float64(_), DataType::Float64)
                | (Value::Text(_), DataType::Text)
                | (Value::Bytes(_), DataType::Bytes)
                | (Value::Date(_), DataType::Date)
                | (Value::Timestamp(_), DataType::Timestamp)
                | (Value::TimestampTz(_), DataType::TimestampTz)
        ) || matches!((self, ty), (Value::Decimal { scale, .. }, DataType::Decimal { scale: s, .. }) if scale == s)
    }

    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Int16(v) => write!(f, "{v}"),
            Value::Int32(v) => write!(f, "{v}"),
            Value::Int64(v) => write!(f, "{v}"),
            Value::Float32(v) => write!(f, "{v}"),
            Value::Float64(v) => write!(f, "{v}"),
            Value::Decimal { unscaled, scale } => fmt_decimal(f, *unscaled, *scale),
            Value::Text(v) => write!(f, "{v:?}"),
            Value::Bytes(v) => {
                f.write_str("\\x")?;
                v.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
            Value::Date(v) => write!(f, "date({v})"),
            Value::Timestamp(v) | Value::TimestampTz(v) => write!(f, "timestamp({v})"),
        }
    }
}

fn fmt_decimal(f: &mut fmt::Formatter<'_>, unscaled: i128, scale: i8) -> fmt::Result {
    if scale <= 0 {
        return write!(f, "{unscaled}{}", "0".repeat(usize::from(scale.unsigned_abs())));
    }
    let digits = unscaled.unsigned_abs().to_string();
    let scale = usize::from(scale.unsigned_abs());
    let sign = if unscaled < 0 { "-" } else { "" };
    if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        write!(f, "{sign}{int}.{frac}")
    } else {
        write!(f, "{sign}0.{}{digits}", "0".repeat(scale - digits.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_display() {
        let d = |unscaled, scale| Value::Decimal { unscaled, scale }.to_string();
        assert_eq!(d(12345, 2), "123.45");
        assert_eq!(d(-5, 3), "-0.005");
        assert_eq!(d(7, 0), "7");
        assert_eq!(d(7, -2), "700");
    }

    #[test]
    fn fits_checks_decimal_scale() {
        let v = Value::Decimal { unscaled: 1, scale: 2 };
        assert!(v.fits(&DataType::Decimal { precision: 10, scale: 2 }));
        assert!(!v.fits(&DataType::Decimal { precision: 10, scale: 3 }));
        assert!(Value::Null.fits(&DataType::Text));
        assert!(!Value::Int32(1).fits(&DataType::Int64));
    }
}
