//! Secondary indexes, and key ranges over them and over primary keys.
//!
//! An index is an internal table of *entries*, one per row, written in the
//! same transaction as the row: an insert adds the row's entry, an update
//! that changes an indexed value replaces it, a delete removes it. Entries
//! are rows like any other, with version chains, write slots and garbage
//! collection, so an index read at a snapshot sees exactly the rows that
//! snapshot sees, and a unique index is enforced by the same first-updater-
//! wins slots as primary keys. An update that leaves the indexed columns
//! alone touches no entry.
//!
//! ```text
//! entry key:  | per indexed column: 0x01 + memcomparable value, or 0x02 for NULL | [primary key] |
//! entry row:  | the row's primary key, as one BYTEA value |
//! ```
//!
//! NULL sorts after every value, as in PostgreSQL's default `ASC NULLS
//! LAST`. The primary key ends every entry key of a non-unique index, which
//! keeps entries of equal values apart. A unique index leaves it off when no
//! indexed value is NULL, so a second live row with the same values finds the
//! entry taken; with a NULL it is kept, because NULLs are never equal.
//!
//! Entries are not logged: the log holds the rows, and opening a store
//! rebuilds each index from them.

use std::ops::Bound;
use std::sync::Arc;

use crate::codec::key::encode_key_value;
use crate::error::{Error, Result};
use crate::schema::{ColumnDef, TableSchema};
use crate::snapshots::Ts;
use crate::table::Table;
use crate::value::{DataType, Value};
use omen_files::codec::{Reader, put_bytes, put_varint};

const VALUE: u8 = 0x01;
const NULL: u8 = 0x02;

/// A secondary index: which columns, and whether their values are unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDef {
    /// Index name, unique among the store's indexes.
    pub name: String,
    /// Indexes into the table's columns, in index-key order.
    pub columns: Vec<usize>,
    /// No two live rows may share the indexed values (rows with a NULL in
    /// them never conflict).
    pub unique: bool,
}

impl IndexDef {
    /// Checks the definition against its table's schema.
    pub(crate) fn validate(&self, schema: &TableSchema) -> Result<()> {
        let bad = |reason: String| Err(Error::Schema { table: schema.name.clone(), reason });
        if self.name.is_empty() {
            return bad("an index needs a name".into());
        }
        if self.columns.is_empty() {
            return bad(format!("index {:?} has no columns", self.name));
        }
        for (i, &c) in self.columns.iter().enumerate() {
            if c >= schema.columns.len() || self.columns[..i].contains(&c) {
                return bad(format!("index {:?}: invalid column index {c}", self.name));
            }
        }
        Ok(())
    }

    /// Appends the definition: `| name: var+bytes | n: var | n x column: var | unique: u8 |`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.name.as_bytes());
        put_varint(out, self.columns.len() as u64);
        for &c in &self.columns {
            put_varint(out, c as u64);
        }
        out.push(u8::from(self.unique));
    }

    /// Reads a definition written by [`IndexDef::encode`].
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let name = r.var_str()?.to_owned();
        let n = r.len()?;
        let columns = (0..n)
            .map(|_| {
                let c = r.varint()?;
                usize::try_from(c).map_err(|_| Error::Decode(format!("column index {c}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let unique = match r.u8()? {
            0 => false,
            1 => true,
            b => return Err(Error::Decode(format!("bad unique flag {b}"))),
        };
        Ok(Self { name, columns, unique })
    }

    /// The indexed values of `row`, formatted for error messages.
    pub(crate) fn values_text(&self, schema: &TableSchema, row: &[Value]) -> String {
        let names: Vec<&str> = self.columns.iter().map(|&c| schema.columns[c].name.as_str()).collect();
        let vals: Vec<String> = self.columns.iter().map(|&c| row.get(c).map_or_else(String::new, Value::to_string)).collect();
        format!("({})=({})", names.join(", "), vals.join(", "))
    }
}

/// A live index: its definition and its entries.
pub(crate) struct Index {
    pub(crate) def: IndexDef,
    pub(crate) entries: Arc<Table>,
    /// The first snapshot that may read the entries: a snapshot taken before
    /// the index was built sees none of them.
    pub(crate) ready: Ts,
}

impl Index {
    /// The entries table for an index named `name`.
    pub(crate) fn entries_schema(name: &str) -> TableSchema {
        TableSchema { name: name.to_owned(), columns: vec![ColumnDef::new("key", DataType::Bytes).not_null()], primary_key: Vec::new() }
    }

    /// The entry key of `row`, whose primary key is `key`.
    pub(crate) fn entry_key(&self, row: &[Value], key: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.def.columns.len() * 10 + key.len());
        let mut any_null = false;
        for &c in &self.def.columns {
            any_null |= row[c].is_null();
            push_tagged(&mut out, &row[c]);
        }
        if !self.def.unique || any_null {
            out.extend_from_slice(key);
        }
        out
    }
}

fn push_tagged(out: &mut Vec<u8>, v: &Value) {
    if v.is_null() {
        out.push(NULL);
    } else {
        out.push(VALUE);
        encode_key_value(out, v);
    }
}

/// The rows a read wants along a key (the primary key, or an index's
/// columns): equal to `eq` on the leading columns, then within `lo..hi` on
/// the next one. Values must have their column's exact type; range bounds
/// must not be NULL (no comparison with NULL holds).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRange {
    /// Values of the leading key columns; an index matches NULL here as
    /// `IS NULL` does.
    pub eq: Vec<Value>,
    /// Lower bound on the column after them.
    pub lo: Bound<Value>,
    /// Upper bound on the column after them.
    pub hi: Bound<Value>,
}

impl KeyRange {
    /// Rows whose leading key columns equal `eq`.
    pub fn prefix(eq: Vec<Value>) -> Self {
        Self { eq, lo: Bound::Unbounded, hi: Bound::Unbounded }
    }

    /// The byte range of keys this selects, or `None` if it selects nothing.
    /// `columns` are the key's column types; `tagged` selects the index
    /// encoding (with NULL tags) over the primary-key one.
    pub(crate) fn bytes(&self, schema: &TableSchema, columns: &[usize], tagged: bool) -> Result<Option<ByteRange>> {
        let ranged = !matches!((&self.lo, &self.hi), (Bound::Unbounded, Bound::Unbounded));
        if self.eq.len() + usize::from(ranged) > columns.len() {
            return Err(Error::Schema { table: schema.name.clone(), reason: "key range names more columns than the key has".into() });
        }
        let check = |v: &Value, c: usize| {
            let col = &schema.columns[columns[c]];
            if v.fits(&col.data_type) {
                Ok(())
            } else {
                Err(Error::Schema {
                    table: schema.name.clone(),
                    reason: format!("key range value {v} does not fit column {:?} of type {}", col.name, col.data_type.sql_name()),
                })
            }
        };
        let mut prefix = Vec::new();
        for (i, v) in self.eq.iter().enumerate() {
            check(v, i)?;
            if v.is_null() && !tagged {
                return Ok(None);
            }
            if tagged {
                push_tagged(&mut prefix, v);
            } else {
                encode_key_value(&mut prefix, v);
            }
        }
        let at = self.eq.len();
        let extend = |v: &Value| -> Result<Option<Vec<u8>>> {
            check(v, at)?;
            if v.is_null() {
                return Ok(None);
            }
            let mut k = prefix.clone();
            if tagged {
                k.push(VALUE);
            }
            encode_key_value(&mut k, v);
            Ok(Some(k))
        };
        let lo = match &self.lo {
            Bound::Unbounded => Bound::Included(prefix.clone()),
            Bound::Included(v) => match extend(v)? {
                Some(k) => Bound::Included(k),
                None => return Ok(None),
            },
            Bound::Excluded(v) => match extend(v)? {
                Some(k) => successor(k).map_or(Bound::Unbounded, Bound::Included),
                None => return Ok(None),
            },
        };
        let after_prefix = || successor(prefix.clone()).map_or(Bound::Unbounded, Bound::Excluded);
        let hi = match &self.hi {
            // A range on the column stops before its NULLs.
            Bound::Unbounded if ranged && tagged => Bound::Excluded([prefix.as_slice(), &[NULL]].concat()),
            Bound::Unbounded => after_prefix(),
            Bound::Included(v) => match extend(v)? {
                Some(k) => successor(k).map_or(Bound::Unbounded, Bound::Excluded),
                None => return Ok(None),
            },
            Bound::Excluded(v) => match extend(v)? {
                Some(k) => Bound::Excluded(k),
                None => return Ok(None),
            },
        };
        Ok(Some((lo, hi)))
    }
}

/// Bounds on encoded keys.
pub(crate) type ByteRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// The least byte string greater than every string starting with `prefix`;
/// `None` when there is none (empty, or all 0xFF).
fn successor(mut prefix: Vec<u8>) -> Option<Vec<u8>> {
    while let Some(last) = prefix.pop() {
        if last < 0xFF {
            prefix.push(last + 1);
            return Some(prefix);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn schema() -> TableSchema {
        TableSchema {
            name: "t".into(),
            columns: vec![ColumnDef::new("a", DataType::Int64), ColumnDef::new("b", DataType::Text)],
            primary_key: Vec::new(),
        }
    }

    fn index(unique: bool) -> Index {
        let def = IndexDef { name: "i".into(), columns: vec![0, 1], unique };
        Index { def, entries: Arc::new(Table::new(1, Index::entries_schema("i"), true)), ready: 0 }
    }

    fn contains(range: &ByteRange, k: &[u8]) -> bool {
        use std::ops::RangeBounds;
        (range.0.as_ref().map(Vec::as_slice), range.1.as_ref().map(Vec::as_slice)).contains(k)
    }

    fn value(v: &Option<i64>) -> Value {
        v.map_or(Value::Null, Value::Int64)
    }

    proptest! {
        /// A key range selects an entry exactly when its values satisfy it:
        /// the byte encoding of the bounds agrees with SQL comparison.
        #[test]
        fn key_range_matches_model(
            a in proptest::option::of(-3i64..3), b in proptest::option::of("[ab]{0,2}"),
            eq in proptest::option::of(proptest::option::of(-3i64..3)),
            lo in proptest::option::of((-3i64..3, any::<bool>())), hi in proptest::option::of((-3i64..3, any::<bool>())),
            unique: bool,
        ) {
            let ix = index(unique);
            let row = vec![value(&a), b.clone().map_or(Value::Null, Value::Text)];
            let key = ix.entry_key(&row, &[9, 9]);
            let bound = |b: Option<(i64, bool)>| match b {
                None => Bound::Unbounded,
                Some((v, true)) => Bound::Included(Value::Int64(v)),
                Some((v, false)) => Bound::Excluded(Value::Int64(v)),
            };
            let (range, expected) = match eq {
                // Equality on `a`; the range (if any) on `b` is not tested here.
                Some(e) => (KeyRange::prefix(vec![value(&e)]), a == e),
                None => {
                    let r = KeyRange { eq: vec![], lo: bound(lo), hi: bound(hi) };
                    let ranged = lo.is_some() || hi.is_some();
                    let ok = match a {
                        None => !ranged,
                        Some(a) => lo.is_none_or(|(v, inc)| if inc { a >= v } else { a > v })
                            && hi.is_none_or(|(v, inc)| if inc { a <= v } else { a < v }),
                    };
                    (r, ok)
                }
            };
            let selected = range.bytes(&schema(), &[0, 1], true).unwrap().is_some_and(|r| contains(&r, &key));
            prop_assert_eq!(selected, expected);
        }

        /// Primary-key ranges (no tags) select the same way.
        #[test]
        fn primary_key_range_matches_model(a in -5i64..5, lo in proptest::option::of((-5i64..5, any::<bool>())), hi in proptest::option::of((-5i64..5, any::<bool>()))) {
            let mut key = Vec::new();
            encode_key_value(&mut key, &Value::Int64(a));
            let bound = |b: Option<(i64, bool)>| match b {
                None => Bound::Unbounded,
                Some((v, true)) => Bound::Included(Value::Int64(v)),
                Some((v, false)) => Bound::Excluded(Value::Int64(v)),
            };
            let r = KeyRange { eq: vec![], lo: bound(lo), hi: bound(hi) };
            let expected = lo.is_none_or(|(v, inc)| if inc { a >= v } else { a > v }) && hi.is_none_or(|(v, inc)| if inc { a <= v } else { a < v });
            let selected = r.bytes(&schema(), &[0], false).unwrap().is_some_and(|r| contains(&r, &key));
            prop_assert_eq!(selected, expected);
        }
    }

    #[test]
    fn unique_entries_drop_the_key_unless_a_value_is_null() {
        let ix = index(true);
        let k1 = ix.entry_key(&[Value::Int64(1), Value::Text("x".into())], &[1]);
        let k2 = ix.entry_key(&[Value::Int64(1), Value::Text("x".into())], &[2]);
        assert_eq!(k1, k2, "equal values collide in a unique index");
        let n1 = ix.entry_key(&[Value::Int64(1), Value::Null], &[1]);
        let n2 = ix.entry_key(&[Value::Int64(1), Value::Null], &[2]);
        assert_ne!(n1, n2, "NULLs never collide");
        let plain = index(false);
        assert_ne!(plain.entry_key(&[Value::Int64(1), Value::Null], &[1]), plain.entry_key(&[Value::Int64(1), Value::Null], &[2]));
    }

    #[test]
    fn mistyped_range_values_are_refused() {
        let r = KeyRange::prefix(vec![Value::Int32(1)]);
        assert!(matches!(r.bytes(&schema(), &[0], true), Err(Error::Schema { .. })));
        let too_long = KeyRange::prefix(vec![Value::Int64(1), Value::Null, Value::Null]);
        assert!(too_long.bytes(&schema(), &[0, 1], true).is_err());
    }

    #[test]
    fn successor_skips_trailing_ff() {
        assert_eq!(successor(vec![1, 0xFF]), Some(vec![2]));
        assert_eq!(successor(vec![0xFF, 0xFF]), None);
        assert_eq!(successor(vec![]), None);
    }
}
