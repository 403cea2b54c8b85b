//! Log records: what each says, and its payload's bytes (a segment frames
//! each payload with its length and checksum, see [`super::segment`]).
//!
//! ```text
//! payload:
//!   1 = commit       | ts: u64 | n: var | n x (table: u64 | key: var+bytes | op: u8 | [row: var+bytes]) |
//!   2 = create table | ts: u64 | table: u64 | schema |
//!   3 = drop table   | ts: u64 | table: u64 |
//!   4 = create index | ts: u64 | index: u64 | table: u64 | name: var+bytes | n: var | n x column: var | unique: u8 |
//!   5 = drop index   | ts: u64 | index: u64 |
//!   6 = alter table  | ts: u64 | table: u64 | new table: u64 | reshape |
//! ```
//!
//! Index entries are not logged: replay rebuilds each index from its rows.
//!
//! op 0 deletes the key, 1 inserts a new key, 2 replaces the row of a live key;
//! rows use the format of [`crate::codec::row`].

use std::sync::Arc;

use crate::alter::Reshape;
use crate::error::{Error, Result};
use crate::index::IndexDef;
use crate::schema::{TableId, TableSchema};
use omen_files::codec::{Reader, put_bytes, put_varint};

/// One row change in a commit record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WalWrite {
    pub table: TableId,
    pub key: Vec<u8>,
    pub op: WalOp,
}

/// What a commit did to a key. Rows are shared with the version chain, so
/// logging a commit copies no row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WalOp {
    Delete,
    Insert(Arc<[u8]>),
    Update(Arc<[u8]>),
}

impl WalOp {
    /// The change-stream op it stands for.
    pub(crate) fn change_op(&self) -> crate::changes::ChangeOp {
        match self {
            WalOp::Delete => crate::changes::ChangeOp::Delete,
            WalOp::Insert(_) => crate::changes::ChangeOp::Insert,
            WalOp::Update(_) => crate::changes::ChangeOp::Update,
        }
    }

    /// The new row; `None` for a delete.
    pub(crate) fn into_row(self) -> Option<Arc<[u8]>> {
        match self {
            WalOp::Delete => None,
            WalOp::Insert(r) | WalOp::Update(r) => Some(r),
        }
    }
}

/// A replayed log record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WalRecord {
    Commit {
        ts: u64,
        writes: Vec<WalWrite>,
    },
    CreateTable {
        ts: u64,
        id: TableId,
        schema: TableSchema,
    },
    DropTable {
        ts: u64,
        id: TableId,
    },
    CreateIndex {
        ts: u64,
        id: TableId,
        table: TableId,
        def: IndexDef,
    },
    DropIndex {
        ts: u64,
        id: TableId,
    },
    /// Table `id` rewritten as table `new_id` (its indexes get the ids
    /// after `new_id`); see [`crate::alter`].
    AlterTable {
        ts: u64,
        id: TableId,
        new_id: TableId,
        reshape: Reshape,
    },
}

impl WalRecord {
    /// The commit timestamp the record was logged at.
    pub(crate) fn ts(&self) -> u64 {
        match self {
            WalRecord::Commit { ts, .. }
            | WalRecord::CreateTable { ts, .. }
            | WalRecord::DropTable { ts, .. }
            | WalRecord::CreateIndex { ts, .. }
            | WalRecord::DropIndex { ts, .. }
            | WalRecord::AlterTable { ts, .. } => *ts,
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            WalRecord::Commit { ts, writes } => {
                out.push(1);
                out.extend_from_slice(&ts.to_le_bytes());
                put_varint(&mut out, writes.len() as u64);
                for w in writes {
                    out.extend_from_slice(&w.table.to_le_bytes());
                    put_bytes(&mut out, &w.key);
                    match &w.op {
                        WalOp::Delete => out.push(0),
                        WalOp::Insert(row) => {
                            out.push(1);
                            put_bytes(&mut out, row);
                        }
                        WalOp::Update(row) => {
                            out.push(2);
                            put_bytes(&mut out, row);
                        }
                    }
                }
            }
            WalRecord::CreateTable { ts, id, schema } => {
                out.push(2);
                out.extend_from_slice(&ts.to_le_bytes());
                out.extend_from_slice(&id.to_le_bytes());
                schema.encode(&mut out);
            }
            WalRecord::DropTable { ts, id } => {
                out.push(3);
                out.extend_from_slice(&ts.to_le_bytes());
                out.extend_from_slice(&id.to_le_bytes());
            }
            WalRecord::CreateIndex { ts, id, table, def } => {
                out.push(4);
                out.extend_from_slice(&ts.to_le_bytes());
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(&table.to_le_bytes());
                def.encode(&mut out);
            }
            WalRecord::DropIndex { ts, id } => {
                out.push(5);
                out.extend_from_slice(&ts.to_le_bytes());
                out.extend_from_slice(&id.to_le_bytes());
            }
            WalRecord::AlterTable { ts, id, new_id, reshape } => {
                out.push(6);
                out.extend_from_slice(&ts.to_le_bytes());
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(&new_id.to_le_bytes());
                reshape.encode(&mut out);
            }
        }
        out
    }

    pub(super) fn decode(payload: &[u8]) -> Result<Self> {
        let mut r = Reader::new(payload);
        let rec = match r.u8()? {
            1 => {
                let ts = r.u64()?;
                let n = r.len()?;
                let mut writes = Vec::with_capacity(n);
                for _ in 0..n {
                    let table = r.u64()?;
                    let key = r.var_bytes()?.to_vec();
                    let op = match r.u8()? {
                        0 => WalOp::Delete,
                        1 => WalOp::Insert(Arc::from(r.var_bytes()?)),
                        2 => WalOp::Update(Arc::from(r.var_bytes()?)),
                        op => return Err(Error::Decode(format!("unknown write op {op}"))),
                    };
                    writes.push(WalWrite { table, key, op });
                }
                WalRecord::Commit { ts, writes }
            }
            2 => WalRecord::CreateTable { ts: r.u64()?, id: r.u64()?, schema: TableSchema::decode(&mut r)? },
            3 => WalRecord::DropTable { ts: r.u64()?, id: r.u64()? },
            4 => {
                let (ts, id, table) = (r.u64()?, r.u64()?, r.u64()?);
                WalRecord::CreateIndex { ts, id, table, def: IndexDef::decode(&mut r)? }
            }
            5 => WalRecord::DropIndex { ts: r.u64()?, id: r.u64()? },
            6 => WalRecord::AlterTable { ts: r.u64()?, id: r.u64()?, new_id: r.u64()?, reshape: Reshape::decode(&mut r)? },
            kind => return Err(Error::Decode(format!("unknown record kind {kind}"))),
        };
        if !r.is_empty() {
            return Err(Error::Decode("trailing bytes in record".into()));
        }
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ColumnDef;
    use crate::value::DataType;
    use crate::wal::testing::commit;

    #[test]
    fn records_round_trip() {
        let schema = TableSchema { name: "t".into(), columns: vec![ColumnDef::new("a", DataType::Int32).not_null()], primary_key: vec![0] };
        let def = IndexDef { name: "t_a".into(), columns: vec![0, 300], unique: true };
        for rec in [
            commit(7),
            WalRecord::AlterTable {
                ts: 6,
                id: 3,
                new_id: 9,
                reshape: crate::Alteration::AddColumn(ColumnDef::new("b", DataType::Text)).reshape(&schema).unwrap(),
            },
            WalRecord::CreateTable { ts: 1, id: 3, schema },
            WalRecord::DropTable { ts: 2, id: 3 },
            WalRecord::CreateIndex { ts: 4, id: 5, table: 3, def },
            WalRecord::DropIndex { ts: 5, id: 5 },
        ] {
            assert_eq!(WalRecord::decode(&rec.encode()).unwrap(), rec);
        }
    }
}
