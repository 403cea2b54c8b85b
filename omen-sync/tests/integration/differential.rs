//! Differential test: an HTAP snapshot scan equals the row store's scan at the
//! same timestamp, row for row, while sync applies a random history.

use std::ops::Bound;
use std::sync::Arc;

use arrow::array::RecordBatch;
use omen_colstore::ColumnStore;
use omen_rowstore::{ColumnDef, DataType, Error as RowError, Store, StoreOptions, TableId, TableSchema, Transaction, Value};
use omen_sync::convert::array_to_values;
use omen_sync::{SyncOptions, Syncer};
use proptest::prelude::*;

pub(crate) fn schema(name: &str) -> TableSchema {
    TableSchema {
        name: name.into(),
        columns: vec![ColumnDef::new("k", DataType::Int32).not_null(), ColumnDef::new("v", DataType::Text)],
        primary_key: vec![0],
    }
}

/// Rows of the snapshot, decoded back to values, sorted by key.
fn htap_rows(batches: &[RecordBatch]) -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    for b in batches {
        let k = array_to_values(b.column(0).as_ref(), &DataType::Int32).unwrap();
        let v = array_to_values(b.column(1).as_ref(), &DataType::Text).unwrap();
        rows.extend(k.into_iter().zip(v).map(|(k, v)| vec![k, v]));
    }
    rows.sort_by_key(|r| match r[0] {
        Value::Int32(k) => k,
        _ => unreachable!(),
    });
    rows
}

fn row_store_rows(txn: &Transaction, t: TableId) -> Vec<Vec<Value>> {
    txn.scan(t, Bound::Unbounded, Bound::Unbounded).unwrap().into_iter().map(|(_, r)| r).collect()
}

#[derive(Debug, Clone)]
enum Op {
    Put(i32, String),
    Delete(i32),
    Commit,
    Abort,
    Check,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0i32..20, "[a-z]{0,3}").prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0i32..20).prop_map(Op::Delete),
        3 => Just(Op::Commit),
        1 => Just(Op::Abort),
        2 => Just(Op::Check),
    ]
}

fn apply(txn: &mut Transaction, t: TableId, op: &Op) -> Result<(), RowError> {
    match op {
        Op::Put(k, v) => txn.upsert(t, vec![Value::Int32(*k), Value::Text(v.clone())]),
        Op::Delete(k) => txn.delete(t, &omen_rowstore::encode_key(&[Value::Int32(*k)], &[0])).map(drop),
        _ => Ok(()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn snapshots_equal_row_store_at_the_same_timestamp(ops in proptest::collection::vec(op(), 1..120), capacity in 1usize..8) {
        let rows = Store::open(StoreOptions::default()).unwrap();
        let (t, _) = rows.create_table(schema("t")).unwrap();
        // Some rows exist before sync starts: they arrive through the bulk load.
        let mut seed = rows.begin().unwrap();
        seed.insert(t, vec![Value::Int32(100), Value::Null]).unwrap();
        seed.commit().unwrap();
        let sync = Syncer::start(rows.clone(), Arc::new(ColumnStore::new()), SyncOptions { channel_capacity: capacity, max_batch_records: 3 , ..SyncOptions::default() }).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut writer = rows.begin().unwrap();
        let mut readers: Vec<Transaction> = Vec::new();
        for op in &ops {
            match op {
                Op::Commit => {
                    std::mem::replace(&mut writer, rows.begin().unwrap()).commit().unwrap();
                }
                Op::Abort => std::mem::replace(&mut writer, rows.begin().unwrap()).rollback(),
                // The next writer began before the last commit, so its writes
                // may conflict with it: retry them on a fresh snapshot.
                op @ (Op::Put(..) | Op::Delete(_)) => {
                    if let Err(RowError::SerializationConflict { .. }) = apply(&mut writer, t, op) {
                        std::mem::replace(&mut writer, rows.begin().unwrap()).rollback();
                        apply(&mut writer, t, op).unwrap();
                    }
                }
                Op::Check => {
                    // The open writer sees its own writes through the snapshot too.
                    let snaps = rt.block_on(sync.snapshot(&writer, &[t])).unwrap();
                    prop_assert_eq!(htap_rows(&snaps[&t].scan(None, false).unwrap()), row_store_rows(&writer, t));
                    readers.push(rows.begin().unwrap());
                }
            }
        }
        writer.commit().unwrap();
        // Older snapshots stay exact after later commits were applied.
        readers.push(rows.begin().unwrap());
        for r in &readers {
            let snaps = rt.block_on(sync.snapshot(r, &[t])).unwrap();
            prop_assert_eq!(htap_rows(&snaps[&t].scan(None, false).unwrap()), row_store_rows(r, t));
        }
    }
}

#[test]
fn tables_created_and_dropped_after_start_follow_the_stream() {
    let rows = Store::open(StoreOptions::default()).unwrap();
    let sync = Syncer::start(rows.clone(), Arc::new(ColumnStore::new()), SyncOptions::default()).unwrap();
    let (a, _) = rows.create_table(schema("a")).unwrap();
    let mut txn = rows.begin().unwrap();
    txn.insert(a, vec![Value::Int32(1), Value::Text("x".into())]).unwrap();
    txn.commit().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let r = rows.begin().unwrap();
    let snaps = rt.block_on(sync.snapshot(&r, &[a])).unwrap();
    assert_eq!(htap_rows(&snaps[&a].scan(None, false).unwrap()), vec![vec![Value::Int32(1), Value::Text("x".into())]]);
    rows.drop_table("a").unwrap();
    let r = rows.begin().unwrap();
    assert!(rt.block_on(sync.snapshot(&r, &[a])).is_err());
    sync.stop();
    assert!(rt.block_on(sync.wait_for(rows.current_ts() + 1)).is_err(), "a stopped syncer never blocks readers");
}
