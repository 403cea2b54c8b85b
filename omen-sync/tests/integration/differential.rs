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
    /// Pauses sync, or lets it go on: W falls behind T while paused.
    TogglePause,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0i32..20, "[a-z]{0,3}").prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0i32..20).prop_map(Op::Delete),
        3 => Just(Op::Commit),
        1 => Just(Op::Abort),
        2 => Just(Op::Check),
        1 => Just(Op::TogglePause),
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
    fn snapshots_equal_row_store_at_the_same_timestamp(
        ops in proptest::collection::vec(op(), 1..120),
        capacity in prop_oneof![1usize..8, Just(256)],
    ) {
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
        let mut pause = None;
        for op in &ops {
            match op {
                // Paused, commits block once the channel is full: pause only
                // where all of them fit.
                Op::TogglePause if capacity >= 256 => {
                    pause = match pause {
                        Some(_) => None,
                        None => Some(sync.pause()),
                    }
                }
                Op::TogglePause => {}
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
        if pause.is_some() {
            let r = rows.begin().unwrap();
            let snaps = rt.block_on(sync.snapshot(&r, &[t])).unwrap();
            prop_assert_eq!(htap_rows(&snaps[&t].scan(None, false).unwrap()), row_store_rows(&r, t));
            readers.push(r);
            drop(pause);
        }
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

fn put(rows: &Store, t: TableId, k: i32, v: &str) {
    let mut txn = rows.begin().unwrap();
    txn.upsert(t, vec![Value::Int32(k), Value::Text(v.into())]).unwrap();
    txn.commit().unwrap();
}

#[test]
fn a_read_right_after_a_commit_sees_it_while_sync_is_paused() {
    let rows = Store::open(StoreOptions::default()).unwrap();
    let (t, _) = rows.create_table(schema("t")).unwrap();
    let sync = Syncer::start(rows.clone(), Arc::new(ColumnStore::new()), SyncOptions::default()).unwrap();
    put(&rows, t, 1, "a");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(sync.wait_for(rows.current_ts())).unwrap();
    let w = sync.watermark();
    let paused = sync.pause();
    put(&rows, t, 1, "b");
    put(&rows, t, 2, "c");
    let mut txn = rows.begin().unwrap();
    txn.delete(t, &omen_rowstore::encode_key(&[Value::Int32(1)], &[0])).unwrap();
    txn.commit().unwrap();
    put(&rows, t, 3, "d");
    let r = rows.begin().unwrap();
    let snaps = rt.block_on(sync.snapshot(&r, &[t])).unwrap();
    let expected = vec![vec![Value::Int32(2), Value::Text("c".into())], vec![Value::Int32(3), Value::Text("d".into())]];
    assert_eq!(htap_rows(&snaps[&t].scan(None, false).unwrap()), expected);
    assert_eq!(sync.watermark(), w, "paused, nothing was applied");
    assert_eq!(sync.metrics().overlaid, 1);
    drop(paused);
    rt.block_on(sync.wait_for(r.snapshot())).unwrap();
    let snaps = rt.block_on(sync.snapshot(&r, &[t])).unwrap();
    assert_eq!(htap_rows(&snaps[&t].scan(None, false).unwrap()), expected);
}

#[test]
fn snapshots_wait_for_sync_past_what_it_holds_or_across_ddl() {
    let rows = Store::open(StoreOptions::default()).unwrap();
    let (t, _) = rows.create_table(schema("t")).unwrap();
    // Sync holds 4 waiting records in the channel and 2 more in memory.
    let options = SyncOptions { channel_capacity: 4, max_batch_records: 2, ..SyncOptions::default() };
    let sync = Syncer::start(rows.clone(), Arc::new(ColumnStore::new()), options).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let check = |sync: &Syncer, overlaid: u64, waited: u64| {
        let r = rows.begin().unwrap();
        let snaps = rt.block_on(sync.snapshot(&r, &[t])).unwrap();
        assert_eq!(htap_rows(&snaps[&t].scan(None, false).unwrap()), row_store_rows(&r, t));
        let m = sync.metrics();
        assert_eq!((m.overlaid, m.waited), (overlaid, waited));
    };
    let paused = sync.pause();
    for k in 0..4 {
        put(&rows, t, k, "x");
    }
    check(&sync, 1, 0);
    for k in 4..8 {
        put(&rows, t, k, "y");
    }
    // Two of those stay in the channel: the snapshot waits for sync, which
    // goes on once the snapshot is seen waiting.
    let resume_when_waited = |paused: omen_sync::SyncPause, waited: u64| {
        let sync = &sync;
        move || {
            while sync.metrics().waited < waited {
                std::thread::yield_now();
            }
            drop(paused);
        }
    };
    std::thread::scope(|s| {
        s.spawn(resume_when_waited(paused, 1));
        check(&sync, 1, 1);
    });
    let paused = sync.pause();
    rows.create_table(schema("u")).unwrap();
    put(&rows, t, 9, "z");
    std::thread::scope(|s| {
        s.spawn(resume_when_waited(paused, 2));
        check(&sync, 1, 2);
    });
}

#[test]
fn snapshots_stay_exact_while_writers_commit_concurrently() {
    let rows = Store::open(StoreOptions::default()).unwrap();
    let (t, _) = rows.create_table(schema("t")).unwrap();
    let options = SyncOptions { channel_capacity: 1 << 16, max_batch_records: 4, ..SyncOptions::default() };
    let sync = Syncer::start(rows.clone(), Arc::new(ColumnStore::new()), options).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                let rows = &rows;
                s.spawn(move || {
                    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ w;
                    for _ in 0..3000 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let k = (x % 64) as i32;
                        let mut txn = rows.begin().unwrap();
                        let written = match x % 4 {
                            0 => txn.delete(t, &omen_rowstore::encode_key(&[Value::Int32(k)], &[0])).map(drop),
                            _ => txn.upsert(t, vec![Value::Int32(k), Value::Text(format!("{w}-{x}"))]),
                        };
                        match written.and_then(|()| txn.commit().map(drop)) {
                            Ok(()) | Err(RowError::SerializationConflict { .. }) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        let mut checks = 0;
        while !done.load(std::sync::atomic::Ordering::Relaxed) || checks < 50 {
            let r = rows.begin().unwrap();
            let snaps = rt.block_on(sync.snapshot(&r, &[t])).unwrap();
            assert_eq!(htap_rows(&snaps[&t].scan(None, false).unwrap()), row_store_rows(&r, t));
            checks += 1;
            if writers.iter().all(|w| w.is_finished()) {
                done.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
}

#[test]
fn commits_held_back_by_sync_go_on_once_it_stops() {
    let rows = Store::open(StoreOptions::default()).unwrap();
    let (t, _) = rows.create_table(schema("t")).unwrap();
    let options = SyncOptions { channel_capacity: 1, max_batch_records: 1, ..SyncOptions::default() };
    let sync = Syncer::start(rows.clone(), Arc::new(ColumnStore::new()), options).unwrap();
    let paused = sync.pause();
    // Paused with a one-record channel: the writer soon blocks on it.
    let writer = {
        let rows = rows.clone();
        std::thread::spawn(move || {
            for k in 0..10 {
                put(&rows, t, k, "x");
            }
        })
    };
    while rows.current_ts() < 2 {
        std::thread::yield_now();
    }
    // A regression would hang: wait for the outcome on another thread.
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        sync.stop();
        writer.join().unwrap();
        drop(paused);
        rows.close().unwrap();
        done.send(()).unwrap();
    });
    outcome.recv_timeout(std::time::Duration::from_secs(60)).expect("stopping sync released the blocked commits");
}

#[test]
fn readers_waiting_for_sync_are_told_once_the_store_closes() {
    let rows = Store::open(StoreOptions::default()).unwrap();
    let sync = Syncer::start(rows.clone(), Arc::new(ColumnStore::new()), SyncOptions::default()).unwrap();
    rows.close().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert!(rt.block_on(sync.wait_for(rows.current_ts() + 1)).is_err());
}
