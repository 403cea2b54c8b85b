//! Table schemas: columns, types, NOT NULL, defaults and the primary key.

use crate::codec::row::{decode_value, encode_value};
use crate::error::{Error, Result};
use crate::value::{DataType, Value};
use omen_files::codec::{Reader, put_bytes, put_varint};

/// Id of a table, stable across renames; assigned by the store.
pub type TableId = u64;

/// One column of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    /// Column name (already case-normalized by the SQL layer).
    pub name: String,
    /// Its type.
    pub data_type: DataType,
    /// False for NOT NULL (and for primary-key columns).
    pub nullable: bool,
    /// Value used when an INSERT leaves the column out; `None` means NULL.
    pub default: Option<Value>,
}

impl ColumnDef {
    /// A nullable column without a default.
    pub fn new(name: impl Into<String>, data_type: DataType) -> Self {
        Self { name: name.into(), data_type, nullable: true, default: None }
    }

    /// The same column, NOT NULL.
    pub fn not_null(mut self) -> Self {
        self.nullable = false;
        self
    }
}

/// A table's definition.
///
/// Tables with an empty `primary_key` get a hidden, monotonically increasing
/// 64-bit row id as their key, encoded big-endian so ids sort as they grow.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    /// Table name.
    pub name: String,
    /// Columns in order.
    pub columns: Vec<ColumnDef>,
    /// Indexes into `columns` of the primary key, in key order.
    pub primary_key: Vec<usize>,
}

impl TableSchema {
    /// Checks the schema itself: at least one column, unique names, a primary
    /// key of distinct in-range columns, and defaults of the column's type.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::Schema { table: self.name.clone(), reason });
        if self.columns.is_empty() {
            return bad("a table needs at least one column".into());
        }
        for (i, c) in self.columns.iter().enumerate() {
            if self.columns[..i].iter().any(|o| o.name == c.name) {
                return bad(format!("column {:?} specified more than once", c.name));
            }
            if let Some(d) = &c.default
                && !d.fits(&c.data_type)
            {
                return bad(format!("default {d} does not fit column {:?} of type {}", c.name, c.data_type.sql_name()));
            }
        }
        for (i, &k) in self.primary_key.iter().enumerate() {
            if k >= self.columns.len() || self.primary_key[..i].contains(&k) {
                return bad(format!("invalid primary key column index {k}"));
            }
            if self.columns[k].nullable {
                return bad(format!("primary key column {:?} must be NOT NULL", self.columns[k].name));
            }
        }
        Ok(())
    }

    /// Index of the column named `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Checks a row against the schema: arity, value types, NOT NULL.
    pub fn check_row(&self, row: &[Value]) -> Result<()> {
        if row.len() != self.columns.len() {
            return Err(Error::Schema {
                table: self.name.clone(),
                reason: format!("expected {} values, got {}", self.columns.len(), row.len()),
            });
        }
        for (v, c) in row.iter().zip(&self.columns) {
            if v.is_null() && !c.nullable {
                return Err(Error::NotNull { table: self.name.clone(), column: c.name.clone() });
            }
            if !v.fits(&c.data_type) {
                return Err(Error::Schema {
                    table: self.name.clone(),
                    reason: format!("value {v} does not fit column {:?} of type {}", c.name, c.data_type.sql_name()),
                });
            }
        }
        Ok(())
    }

    /// The primary-key values of `row`, formatted for error messages.
    pub(crate) fn key_text(&self, row: &[Value]) -> String {
        let vals: Vec<String> = self.primary_key.iter().map(|&i| row.get(i).map_or_else(String::new, Value::to_string)).collect();
        let names: Vec<&str> = self.primary_key.iter().map(|&i| self.columns[i].name.as_str()).collect();
        format!("({})=({})", names.join(", "), vals.join(", "))
    }

    /// Serializes the schema (for the WAL and, later, the manifest).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.name.as_bytes());
        put_varint(out, self.columns.len() as u64);
        for c in &self.columns {
            put_bytes(out, c.name.as_bytes());
            encode_type(out, &c.data_type);
            out.push(u8::from(c.nullable));
            match &c.default {
                None => out.push(0),
                Some(v) => {
                    out.push(1);
                    let mut buf = Vec::new();
                    encode_value(&mut buf, v);
                    out.push(u8::from(v.is_null()));
                    put_bytes(out, &buf);
                }
            }
        }
        put_varint(out, self.primary_key.len() as u64);
        for &k in &self.primary_key {
            put_varint(out, k as u64);
        }
    }

    /// Reads a schema written by [`TableSchema::encode`].
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let name = r.var_str()?.to_owned();
        let ncols = r.len()?;
        let mut columns = Vec::with_capacity(ncols);
        for _ in 0..ncols {
            let cname = r.var_str()?.to_owned();
            let data_type = decode_type(r)?;
            let nullable = r.u8()? != 0;
            let default = match r.u8()? {
                0 => None,
                _ => {
                    let is_null = r.u8()? != 0;
                    let bytes = r.var_bytes()?;
                    Some(if is_null { Value::Null } else { decode_value(&mut Reader::new(bytes), &data_type)? })
                }
            };
            columns.push(ColumnDef { name: cname, data_type, nullable, default });
        }
        let nkey = r.len()?;
        let primary_key = (0..nkey).map(|_| Ok(r.varint()? as usize)).collect::<Result<Vec<_>>>()?;
        let schema = Self { name, columns, primary_key };
        schema.validate().map_err(|e| Error::Decode(e.to_string()))?;
        Ok(schema)
    }
}

fn encode_type(out: &mut Vec<u8>, t: &DataType) {
    let tag = match t {
        DataType::Bool => 1,
        DataType::Int16 => 2,
        DataType::Int32 => 3,
        DataType::Int64 => 4,
        DataType::Float32 => 5,
        DataType::Float64 => 6,
        DataType::Decimal { .. } => 7,
        DataType::Text => 8,
        DataType::Bytes => 9,
        DataType::Date => 10,
        DataType::Timestamp => 11,
        DataType::TimestampTz => 12,
    };
    out.push(tag);
    if let DataType::Decimal { precision, scale } = t {
        out.push(*precision);
        out.push(scale.to_le_bytes()[0]);
    }
}

fn decode_type(r: &mut Reader<'_>) -> Result<DataType> {
    Ok(match r.u8()? {
        1 => DataType::Bool,
        2 => DataType::Int16,
        3 => DataType::Int32,
        4 => DataType::Int64,
        5 => DataType::Float32,
        6 => DataType::Float64,
        7 => {
            let precision = r.u8()?;
            let scale = i8::from_le_bytes([r.u8()?]);
            if !(1..=38).contains(&precision) {
                return Err(Error::Decode(format!("decimal precision {precision} out of range")));
            }
            DataType::Decimal { precision, scale }
        }
        8 => DataType::Text,
        9 => DataType::Bytes,
        10 => DataType::Date,
        11 => DataType::Timestamp,
        12 => DataType::TimestampTz,
        t => return Err(Error::Decode(format!("unknown type tag {t}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TableSchema {
        TableSchema {
            name: "orders".into(),
            columns: vec![
                ColumnDef::new("id", DataType::Int64).not_null(),
                ColumnDef { default: Some(Value::Text("new".into())), ..ColumnDef::new("status", DataType::Text) },
                ColumnDef::new("total", DataType::Decimal { precision: 12, scale: 2 }),
            ],
            primary_key: vec![0],
        }
    }

    #[test]
    fn schema_round_trip() {
        let s = sample();
        let mut buf = Vec::new();
        s.encode(&mut buf);
        assert_eq!(TableSchema::decode(&mut Reader::new(&buf)).unwrap(), s);
        for cut in 0..buf.len() {
            assert!(TableSchema::decode(&mut Reader::new(&buf[..cut])).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn check_row_rejects_bad_rows() {
        let s = sample();
        assert!(s.check_row(&[Value::Int64(1), Value::Null, Value::Null]).is_ok());
        assert!(matches!(s.check_row(&[Value::Null, Value::Null, Value::Null]), Err(Error::NotNull { .. })));
        assert!(matches!(s.check_row(&[Value::Int32(1), Value::Null, Value::Null]), Err(Error::Schema { .. })));
        assert!(matches!(s.check_row(&[Value::Int64(1)]), Err(Error::Schema { .. })));
    }

    #[test]
    fn validate_rejects_nullable_key_and_duplicates() {
        let mut s = sample();
        s.columns[0].nullable = true;
        assert!(s.validate().is_err());
        let mut s = sample();
        s.columns[1].name = "id".into();
        assert!(s.validate().is_err());
    }
}
