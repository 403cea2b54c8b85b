//! ALTER TABLE: a table's definition changed by rewriting the table.
//!
//! An [`Alteration`] becomes a [`Reshape`]: the new schema, and for each new
//! column the old column it copies (or none: the new column's default).
//! [`rebuild`] makes a new table (a new id) holding every live row
//! reshaped, with the indexes that survive rebuilt, and the store swaps it
//! in for the old one in one catalog step, logged as one WAL record that
//! carries the reshape, so replay rebuilds the same table.
//!
//! Old versions are not carried over. A transaction whose snapshot
//! predates the alteration fails with [`Error::UnknownTable`] if it reads
//! or writes the table afterwards, rather than seeing it empty (which is
//! what PostgreSQL's table-rewriting ALTER TABLE shows such a snapshot).

use std::ops::Bound;
use std::sync::Arc;

use crate::changes::{ChangeOp, RowChange};
use crate::codec::key::encode_key;
use crate::codec::row::{decode_row, encode_row};
use crate::error::{Error, Result};
use crate::index::{Index, IndexDef};
use crate::schema::{ColumnDef, TableId, TableSchema};
use crate::snapshots::Ts;
use crate::table::{Encoded, Table, WriteKind};
use crate::value::Value;
use omen_files::codec::{Reader, put_varint};

/// A change to a table's definition, for [`crate::Store::alter_table`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Alteration {
    /// Appends a column. Existing rows get its default (NULL without one),
    /// so a NOT NULL column without a default fails on a table with rows.
    AddColumn(ColumnDef),
    /// Removes a column and every index on it. Primary-key columns cannot be
    /// dropped, nor a table's last column.
    DropColumn(String),
    /// Renames a column; indexes follow it.
    RenameColumn {
        /// The current name.
        from: String,
        /// The new name.
        to: String,
    },
    /// Renames the table.
    RenameTable(String),
    /// Makes these columns (in key order) the primary key of a table that
    /// has none, and NOT NULL. Fails on a NULL in them or a duplicate key.
    AddPrimaryKey(Vec<String>),
}

/// How a rewritten table is made from the old one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reshape {
    pub(crate) schema: TableSchema,
    /// For each new column, the old column it copies; `None` fills the new
    /// column's default.
    pub(crate) sources: Vec<Option<usize>>,
}

impl Alteration {
    /// The reshape that applies this alteration to a table of `old` schema.
    pub(crate) fn reshape(&self, old: &TableSchema) -> Result<Reshape> {
        let bad = |reason: String| Error::Schema { table: old.name.clone(), reason };
        let column =
            |name: &str| old.column_index(name).ok_or_else(|| Error::UnknownColumn { table: old.name.clone(), column: name.into() });
        let exists = |name: &str| Error::ColumnExists { table: old.name.clone(), column: name.into() };
        let mut schema = old.clone();
        let mut sources: Vec<Option<usize>> = (0..old.columns.len()).map(Some).collect();
        match self {
            Alteration::AddColumn(def) => {
                if old.column_index(&def.name).is_some() {
                    return Err(exists(&def.name));
                }
                schema.columns.push(def.clone());
                sources.push(None);
            }
            Alteration::DropColumn(name) => {
                let c = column(name)?;
                if old.primary_key.contains(&c) {
                    return Err(bad(format!("cannot drop column {name:?}: it is part of the primary key")));
                }
                if old.columns.len() == 1 {
                    return Err(bad(format!("cannot drop column {name:?}: it is the table's only column")));
                }
                schema.columns.remove(c);
                sources.remove(c);
                for k in &mut schema.primary_key {
                    *k -= usize::from(*k > c);
                }
            }
            Alteration::RenameColumn { from, to } => {
                let c = column(from)?;
                if from != to && old.column_index(to).is_some() {
                    return Err(exists(to));
                }
                schema.columns[c].name.clone_from(to);
            }
            Alteration::RenameTable(to) => schema.name.clone_from(to),
            Alteration::AddPrimaryKey(names) => {
                if !old.primary_key.is_empty() {
                    return Err(bad("multiple primary keys are not allowed".into()));
                }
                let key = names.iter().map(|n| column(n)).collect::<Result<Vec<_>>>()?;
                for &c in &key {
                    schema.columns[c].nullable = false;
                }
                schema.primary_key = key;
            }
        }
        schema.validate()?;
        Ok(Reshape { schema, sources })
    }
}

impl Reshape {
    /// The reshape that applies `alterations`, in order, to a table of `old`
    /// schema.
    pub(crate) fn of(old: &TableSchema, alterations: &[Alteration]) -> Result<Self> {
        let mut all = Reshape { schema: old.clone(), sources: (0..old.columns.len()).map(Some).collect() };
        for a in alterations {
            let step = a.reshape(&all.schema)?;
            all = Reshape { sources: step.sources.iter().map(|s| s.and_then(|i| all.sources[i])).collect(), schema: step.schema };
        }
        Ok(all)
    }

    /// The new table's row for an old row.
    fn row(&self, old: &[Value]) -> Vec<Value> {
        self.sources
            .iter()
            .zip(&self.schema.columns)
            .map(|(source, c)| match source {
                Some(i) => old[*i].clone(),
                None => c.default.clone().unwrap_or(Value::Null),
            })
            .collect()
    }

    /// The index `def` on the new table; `None` if a column it covers is gone.
    pub(crate) fn index(&self, def: &IndexDef) -> Option<IndexDef> {
        let columns = def.columns.iter().map(|c| self.sources.iter().position(|s| *s == Some(*c))).collect::<Option<Vec<_>>>()?;
        Some(IndexDef { name: def.name.clone(), columns, unique: def.unique })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        self.schema.encode(out);
        for s in &self.sources {
            // 0 for a new column, else the old column's index + 1.
            put_varint(out, s.map_or(0, |i| i as u64 + 1));
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let schema = TableSchema::decode(r)?;
        let sources = (0..schema.columns.len())
            .map(|_| {
                let v = r.varint()?;
                v.checked_sub(1).map(|i| usize::try_from(i).map_err(|_| Error::Decode(format!("column index {i}")))).transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { schema, sources })
    }
}

/// A rewritten table, before it replaces the old one.
pub(crate) struct Rebuilt {
    pub(crate) table: Arc<Table>,
    /// Its indexes, with empty entries (ids after the table's).
    pub(crate) indexes: Vec<Index>,
    /// Its rows as inserts, for the change stream (when `changes` was asked).
    pub(crate) changes: Vec<RowChange>,
}

/// Builds table `id` from `old` as of `ts`: every live row reshaped and
/// installed at `ts`, under its new primary key (or its old row id if the
/// table stays keyless). Fails, changing nothing, if a row does not fit the
/// new schema (a NOT NULL column added without a default), two rows share a
/// new key, or a row is undecodable.
pub(crate) fn rebuild(old: &Table, reshape: &Reshape, id: TableId, ts: Ts, changes: bool) -> Result<Rebuilt> {
    let table = Arc::new(Table::new(id, reshape.schema.clone(), false));
    table.next_row_id.store(old.next_row_id.load(std::sync::atomic::Ordering::Relaxed), std::sync::atomic::Ordering::Relaxed);
    let mut failed = None;
    let mut out = Vec::new();
    old.visit(Bound::Unbounded, Bound::Unbounded, ts, |key, bytes| {
        let row = match decode_row(bytes, &old.schema).map(|r| reshape.row(&r)) {
            Ok(row) => row,
            Err(e) => {
                failed = Some(e);
                return false;
            }
        };
        if let Err(e) = table.schema.check_row(&row) {
            failed = Some(e);
            return false;
        }
        let pk = &table.schema.primary_key;
        let key = if pk.is_empty() { key.to_vec() } else { encode_key(&row, pk) };
        match table.lock(&key, 0, ts, WriteKind::Insert) {
            Ok((chain, _)) => {
                chain.install(ts, Some(Encoded::Owned(encode_row(&row))), ts);
            }
            Err(_) => {
                failed = Some(Error::DuplicateKey { table: table.schema.name.clone(), key: table.schema.key_text(&row) });
                return false;
            }
        }
        if changes {
            out.push(RowChange { table: id, op: ChangeOp::Insert, key, row: Some(row) });
        }
        true
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let mut next = id;
    let indexes = old
        .indexes()
        .iter()
        .filter_map(|ix| reshape.index(&ix.def))
        .map(|def| {
            next += 1;
            Index { entries: Arc::new(Table::new(next, Index::entries_schema(&def.name), true)), def, ready: 0 }
        })
        .collect();
    Ok(Rebuilt { table, indexes, changes: out })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::DataType;

    fn schema() -> TableSchema {
        TableSchema {
            name: "t".into(),
            columns: vec![
                ColumnDef::new("a", DataType::Int64).not_null(),
                ColumnDef::new("b", DataType::Text),
                ColumnDef::new("c", DataType::Int32).not_null(),
            ],
            primary_key: vec![2],
        }
    }

    #[test]
    fn drop_shifts_the_key_and_indexes_and_drops_indexes_on_the_column() {
        let r = Alteration::DropColumn("b".into()).reshape(&schema()).unwrap();
        assert_eq!(r.schema.primary_key, vec![1]);
        assert_eq!(r.sources, vec![Some(0), Some(2)]);
        assert_eq!(r.row(&[Value::Int64(1), Value::Text("x".into()), Value::Int32(3)]), vec![Value::Int64(1), Value::Int32(3)]);
        let on = |columns: Vec<usize>| IndexDef { name: "i".into(), columns, unique: false };
        assert_eq!(r.index(&on(vec![2, 0])).map(|d| d.columns), Some(vec![1, 0]));
        assert_eq!(r.index(&on(vec![0, 1])), None);
    }

    #[test]
    fn add_fills_the_default_and_refuses_a_taken_name() {
        let mut def = ColumnDef::new("d", DataType::Int32);
        def.default = Some(Value::Int32(7));
        let r = Alteration::AddColumn(def).reshape(&schema()).unwrap();
        assert_eq!(r.row(&[Value::Int64(1), Value::Null, Value::Int32(3)])[3], Value::Int32(7));
        assert!(Alteration::AddColumn(ColumnDef::new("a", DataType::Int32)).reshape(&schema()).is_err());
    }

    #[test]
    fn refusals() {
        let s = schema();
        assert!(Alteration::DropColumn("c".into()).reshape(&s).is_err(), "primary-key column");
        assert!(Alteration::DropColumn("zz".into()).reshape(&s).is_err());
        assert!(Alteration::RenameColumn { from: "a".into(), to: "b".into() }.reshape(&s).is_err());
        let one = TableSchema { name: "u".into(), columns: vec![ColumnDef::new("x", DataType::Int32)], primary_key: vec![] };
        assert!(Alteration::DropColumn("x".into()).reshape(&one).is_err(), "last column");
    }

    #[test]
    fn alterations_compose() {
        let mut def = ColumnDef::new("d", DataType::Int32);
        def.default = Some(Value::Int32(7));
        let steps =
            [Alteration::AddColumn(def), Alteration::DropColumn("a".into()), Alteration::RenameColumn { from: "d".into(), to: "e".into() }];
        let r = Reshape::of(&schema(), &steps).unwrap();
        assert_eq!(r.sources, vec![Some(1), Some(2), None]);
        assert_eq!(r.schema.primary_key, vec![1]);
        assert_eq!(
            r.row(&[Value::Int64(1), Value::Text("x".into()), Value::Int32(3)]),
            vec![Value::Text("x".into()), Value::Int32(3), Value::Int32(7)]
        );
        assert!(matches!(Reshape::of(&schema(), &[Alteration::DropColumn("q".into())]), Err(Error::UnknownColumn { .. })));
    }

    #[test]
    fn reshape_round_trips_through_its_encoding() {
        let r = Alteration::DropColumn("b".into()).reshape(&schema()).unwrap();
        let mut buf = Vec::new();
        r.encode(&mut buf);
        assert_eq!(Reshape::decode(&mut Reader::new(&buf)).unwrap(), r);
    }
}
