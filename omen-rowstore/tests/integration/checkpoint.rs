//! Checkpoints: runs and a manifest written while commits go on, the log
//! cut behind them, and a reopened store that maps the runs and replays
//! only what came after; damage in a run or the manifest is `Corruption`
//! naming the file.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::time::Duration;

use omen_rowstore::{Alteration, ColumnDef, DataType, Durability, Error, IndexDef, KeyRange, Store, StoreOptions, TableSchema, Value};
use proptest::prelude::*;

use crate::{create_accounts, key, row};

fn options(dir: &Path) -> StoreOptions {
    StoreOptions {
        dir: Some(dir.to_path_buf()),
        durability: Durability::Off,
        gc_interval: Duration::ZERO,
        wal_segment_bytes: 4096,
        checkpoint_wal_bytes: 0,
        ..StoreOptions::default()
    }
}

fn open(dir: &Path) -> Store {
    Store::open(options(dir)).unwrap()
}

/// Every (id, balance) of `accounts`.
fn balances(store: &Store) -> BTreeMap<i64, i64> {
    let (id, _) = store.table("accounts").unwrap();
    let rows = store.begin().unwrap().scan(id, Bound::Unbounded, Bound::Unbounded).unwrap();
    rows.into_iter()
        .map(|(_, r)| match (&r[0], &r[1]) {
            (Value::Int64(k), Value::Int64(v)) => (*k, *v),
            other => panic!("{other:?}"),
        })
        .collect()
}

fn files(dir: &Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).filter(|n| n.starts_with(prefix)).collect();
    names.sort();
    names
}

#[test]
fn a_reopened_store_loads_the_checkpoint_and_replays_the_log_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create_accounts(&store);
    store.create_index("accounts", IndexDef { name: "by_balance".into(), columns: vec![1], unique: false }).unwrap();
    for chunk in 0..20 {
        let mut txn = store.begin().unwrap();
        for i in chunk * 100..(chunk + 1) * 100 {
            txn.insert(t, row(i, i % 7)).unwrap();
        }
        txn.commit().unwrap();
    }
    let segments_before = files(dir.path(), "wal-0").len();
    assert!(segments_before > 3);

    let info = store.checkpoint().unwrap();
    assert_eq!((info.ts, info.rows), (store.current_ts(), 2000));
    assert_eq!(files(dir.path(), "run-").len(), 1);
    assert_eq!(files(dir.path(), "wal-0").len(), 1, "sealed segments the checkpoint holds are removed");

    // After the checkpoint: updates, deletes, DDL.
    let mut txn = store.begin().unwrap();
    txn.update(t, &key(5), row(5, 100)).unwrap();
    txn.delete(t, &key(6)).unwrap();
    txn.insert(t, row(5000, 3)).unwrap();
    txn.commit().unwrap();
    let notes = TableSchema { name: "notes".into(), columns: vec![ColumnDef::new("n", DataType::Text)], primary_key: vec![] };
    let (n, _) = store.create_table(notes).unwrap();
    let mut txn = store.begin().unwrap();
    txn.insert(n, vec![Value::Text("a".into())]).unwrap();
    txn.commit().unwrap();
    let mut expect = balances(&store);
    store.close().unwrap();
    drop(store);

    let store = open(dir.path());
    assert_eq!(balances(&store), expect);
    let (t, _) = store.table("accounts").unwrap();
    let txn = store.begin().unwrap();
    let by_balance = txn.index_scan(t, "by_balance", &KeyRange::prefix(vec![Value::Int64(100)]), usize::MAX).unwrap().unwrap();
    assert_eq!(by_balance.len(), 1, "the index is rebuilt over checkpointed and replayed rows");
    drop(txn);

    // A second checkpoint adds a run of what changed (an update, a delete,
    // an insert) to accounts and one for notes; compaction merges the
    // accounts runs into one. Hidden row ids go on.
    let info = store.checkpoint().unwrap();
    let runs = files(dir.path(), "run-");
    assert_eq!((runs.len(), info.runs, info.rows), (3, 3, 2001), "a run of changes: {runs:?}");
    let info = store.compact().unwrap();
    let merged = files(dir.path(), "run-");
    assert_eq!((merged.len(), info.runs, info.rows), (2, 2, 2001), "one run per table after compaction: {merged:?}");
    assert_eq!(balances(&store), expect);
    let (n, _) = store.table("notes").unwrap();
    let mut txn = store.begin().unwrap();
    txn.insert(n, vec![Value::Text("b".into())]).unwrap();
    txn.commit().unwrap();
    store.alter_table("accounts", &[Alteration::AddColumn(ColumnDef::new("note", DataType::Text))]).unwrap();
    store.close().unwrap();
    drop(store);

    let store = open(dir.path());
    let (n, _) = store.table("notes").unwrap();
    let notes = store.begin().unwrap().scan(n, Bound::Unbounded, Bound::Unbounded).unwrap();
    assert_eq!(notes.len(), 2, "two rows with distinct hidden ids");
    let (t, schema) = store.table("accounts").unwrap();
    assert_eq!(schema.columns.len(), 3);
    let got = store.begin().unwrap().scan(t, Bound::Unbounded, Bound::Unbounded).unwrap();
    assert_eq!(got.len(), expect.len());
    expect.clear();
}

/// A checkpoint writes only what changed since the last one: rows, and
/// tombstones for deleted keys an older run holds, which keep masking it
/// across a reopen until compaction drops them with the old rows.
#[test]
fn a_checkpoint_writes_what_changed_and_tombstones_mask_older_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create_accounts(&store);
    let mut txn = store.begin().unwrap();
    for i in 0..10_000 {
        txn.insert(t, row(i, i)).unwrap();
    }
    txn.commit().unwrap();
    let full = store.checkpoint().unwrap();
    assert_eq!((full.rows, full.runs), (10_000, 1));

    let mut txn = store.begin().unwrap();
    txn.update(t, &key(10), row(10, -1)).unwrap();
    txn.delete(t, &key(20)).unwrap();
    txn.insert(t, row(20_000, 1)).unwrap();
    txn.commit().unwrap();
    // A key written and then deleted between checkpoints needs no entry.
    let mut txn = store.begin().unwrap();
    txn.insert(t, row(30_000, 1)).unwrap();
    txn.commit().unwrap();
    let mut txn = store.begin().unwrap();
    txn.delete(t, &key(30_000)).unwrap();
    txn.commit().unwrap();
    let delta = store.checkpoint().unwrap();
    assert_eq!((delta.rows, delta.runs), (10_000, 2));
    let small = delta.run_bytes - full.run_bytes;
    assert!(small * 100 < full.run_bytes, "the second run holds three entries: {small} bytes against {}", full.run_bytes);
    let mut expect = balances(&store);
    assert_eq!((expect.get(&10), expect.get(&20), expect.get(&20_000), expect.len()), (Some(&-1), None, Some(&1), 10_000));
    store.close().unwrap();
    drop(store);

    let store = open(dir.path());
    assert_eq!(store.checkpoint_info().runs, 2);
    assert_eq!(balances(&store), expect);
    let txn = store.begin().unwrap();
    assert_eq!(txn.get(t, &key(20)).unwrap(), None, "the tombstone masks the older run's row");
    let range = txn.scan(t, Bound::Included(key(15).as_slice()), Bound::Excluded(key(25).as_slice())).unwrap();
    assert_eq!(range.len(), 9);
    drop(txn);

    let merged = store.compact().unwrap();
    assert_eq!((merged.rows, merged.runs), (10_000, 1));
    assert!(merged.run_bytes < delta.run_bytes);
    assert_eq!(balances(&store), expect);
    // Keys from the merged run take writes as before.
    let mut txn = store.begin().unwrap();
    txn.delete(t, &key(10)).unwrap();
    txn.commit().unwrap();
    expect.remove(&10);
    store.checkpoint().unwrap();
    store.close().unwrap();
    drop(store);
    assert_eq!(balances(&open(dir.path())), expect);
}

#[test]
fn checkpoints_and_merges_run_while_writers_commit_and_readers_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create_accounts(&store);
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..3000i64 {
                let mut txn = store.begin().unwrap();
                txn.upsert(t, row(i % 500, i)).unwrap();
                if i % 3 == 0 {
                    txn.delete(t, &key((i + 250) % 500)).unwrap();
                }
                txn.commit().unwrap();
            }
        })
    };
    // A reader's snapshot reads the same rows however often checkpoints,
    // merges and evictions move them between memory and runs meanwhile.
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut reads = 0;
            while reads < 200 {
                let txn = store.begin().unwrap();
                let first = txn.scan(t, Bound::Unbounded, Bound::Unbounded).unwrap();
                std::thread::yield_now();
                let again = txn.scan(t, Bound::Unbounded, Bound::Unbounded).unwrap();
                assert_eq!(first, again);
                for (k, row) in first.iter().step_by(37) {
                    assert_eq!(txn.get(t, k).unwrap().as_ref(), Some(row));
                }
                reads += 1;
            }
        })
    };
    let mut checkpoints = 0;
    while !writer.is_finished() || !reader.is_finished() {
        store.checkpoint().unwrap();
        if checkpoints % 3 == 2 {
            store.compact().unwrap();
        }
        checkpoints += 1;
    }
    writer.join().unwrap();
    reader.join().unwrap();
    assert!(checkpoints > 0);
    let expect = balances(&store);
    store.close().unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(balances(&store), expect);
}

#[test]
fn the_background_thread_checkpoints_as_the_log_grows() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions { checkpoint_wal_bytes: 16 << 10, ..options(dir.path()) }).unwrap();
    let t = create_accounts(&store);
    for i in 0..2000 {
        let mut txn = store.begin().unwrap();
        txn.upsert(t, row(i % 100, i)).unwrap();
        txn.commit().unwrap();
    }
    // Polls for the thread's effect (a checkpoint after the last commit,
    // and the log cut behind it); the bound only stops a hang.
    let last = store.current_ts();
    for _ in 0..3000 {
        let info = store.checkpoint_info();
        if info.ts >= last && info.wal_bytes < 2000 * 40 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let info = store.checkpoint_info();
    assert!(info.ts >= last && info.last_error.is_none(), "{info:?}");
    assert!(info.wal_bytes < 2000 * 40, "the log was cut: {info:?}");
}

#[test]
fn damage_in_a_run_or_the_manifest_is_corruption_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create_accounts(&store);
    let mut txn = store.begin().unwrap();
    for i in 0..100 {
        txn.insert(t, row(i, i)).unwrap();
    }
    txn.commit().unwrap();
    store.checkpoint().unwrap();
    store.close().unwrap();
    drop(store);

    for name in [files(dir.path(), "run-")[0].clone(), "MANIFEST".to_string()] {
        let path = dir.path().join(&name);
        let good = std::fs::read(&path).unwrap();
        for at in [0, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x20;
            std::fs::write(&path, &bad).unwrap();
            // Rows are checked when read: damage among them surfaces then.
            let read = Store::open(options(dir.path())).and_then(|store| {
                let (t, _) = store.table("accounts").unwrap();
                store.begin()?.scan(t, Bound::Unbounded, Bound::Unbounded)
            });
            match read {
                Err(Error::Corruption { file, .. }) => assert_eq!(file, path, "flip at {at}"),
                other => panic!("{name} flipped at {at}: {other:?}"),
            }
        }
        std::fs::write(&path, &good[..good.len() - 9]).unwrap();
        assert!(matches!(Store::open(options(dir.path())), Err(Error::Corruption { .. })), "{name} truncated");
        std::fs::write(&path, &good).unwrap();
    }
    assert_eq!(balances(&open(dir.path())).len(), 100);
}

#[test]
fn a_backup_holds_the_checkpoint_and_the_log_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create_accounts(&store);
    for i in 0..300 {
        let mut txn = store.begin().unwrap();
        txn.insert(t, row(i, i)).unwrap();
        txn.commit().unwrap();
    }
    store.checkpoint().unwrap();
    let mut txn = store.begin().unwrap();
    txn.delete(t, &key(0)).unwrap();
    txn.commit().unwrap();
    let backup = tempfile::tempdir().unwrap();
    let target = backup.path().join("copy");
    store.backup_to(&target).unwrap();
    let expect = balances(&store);
    assert_eq!(expect.len(), 299);
    assert_eq!(balances(&open(&target)), expect);
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(i64, i64),
    Delete(i64),
    Checkpoint,
    Compact,
    /// Opens a transaction that later steps check still reads what it read.
    Pin,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0i64..40, any::<i64>()).prop_map(|(k, v)| Op::Upsert(k, v)),
        3 => (0i64..40).prop_map(Op::Delete),
        2 => Just(Op::Checkpoint),
        1 => Just(Op::Compact),
        1 => Just(Op::Pin),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Any interleaving of writes, checkpoints (each adding a run of what
    /// changed), compactions and reopens keeps exactly the rows a map
    /// given the same writes holds; a transaction opened earlier keeps
    /// reading what it read, though its rows left memory for runs.
    #[test]
    fn checkpoints_and_reopens_keep_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Some(open(dir.path()));
        let t = create_accounts(store.as_ref().unwrap());
        let mut model = BTreeMap::new();
        let mut pinned: Option<(omen_rowstore::Transaction, BTreeMap<i64, i64>)> = None;
        for op in ops {
            let s = store.as_ref().unwrap();
            match op {
                Op::Upsert(k, v) => {
                    let mut txn = s.begin().unwrap();
                    txn.upsert(t, row(k, v)).unwrap();
                    txn.commit().unwrap();
                    model.insert(k, v);
                }
                Op::Delete(k) => {
                    let mut txn = s.begin().unwrap();
                    txn.delete(t, &key(k)).unwrap();
                    txn.commit().unwrap();
                    model.remove(&k);
                }
                Op::Checkpoint => {
                    let info = s.checkpoint().unwrap();
                    prop_assert_eq!(info.rows, model.len() as u64);
                }
                Op::Compact => {
                    // Row counts after it are checked at the next checkpoint.
                    prop_assert!(s.compact().unwrap().runs <= 1);
                }
                Op::Pin => pinned = Some((s.begin().unwrap(), model.clone())),
                Op::Reopen => {
                    pinned = None;
                    s.close().unwrap();
                    drop(store.take());
                    store = Some(open(dir.path()));
                }
            }
            let s = store.as_ref().unwrap();
            prop_assert_eq!(balances(s), model.clone());
            let range = s.begin().unwrap().scan(t, Bound::Included(key(10).as_slice()), Bound::Excluded(key(30).as_slice())).unwrap();
            prop_assert_eq!(range.len(), model.range(10..30).count());
            prop_assert_eq!(s.begin().unwrap().get(t, &key(17)).unwrap().is_some(), model.contains_key(&17));
            if let Some((txn, then)) = &pinned {
                let rows = txn.scan(t, Bound::Unbounded, Bound::Unbounded).unwrap();
                prop_assert_eq!(rows.len(), then.len());
                for k in [3, 17, 29] {
                    prop_assert_eq!(txn.get(t, &key(k)).unwrap().is_some(), then.contains_key(&k));
                }
            }
        }
    }
}

/// DDL while checkpoints run: whatever the order, the reopened store has
/// the same tables, columns and indexes.
#[test]
fn ddl_during_checkpoints_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create_accounts(&store);
    let mut txn = store.begin().unwrap();
    for i in 0..20_000 {
        txn.insert(t, row(i, i % 100)).unwrap();
    }
    txn.commit().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checkpointer = {
        let (store, stop) = (store.clone(), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store.checkpoint().unwrap();
            }
        })
    };
    for i in 0..12 {
        store.create_index("accounts", IndexDef { name: format!("ix{i}"), columns: vec![1], unique: false }).unwrap();
        if i % 3 == 1 {
            store.drop_index(&format!("ix{}", i - 1)).unwrap();
        }
        if i % 4 == 2 {
            store.alter_table("accounts", &[Alteration::AddColumn(ColumnDef::new(format!("c{i}"), DataType::Int64))]).unwrap();
        }
        let extra = TableSchema { name: format!("extra{i}"), columns: vec![ColumnDef::new("x", DataType::Int64)], primary_key: vec![] };
        store.create_table(extra).unwrap();
        if i % 2 == 1 {
            store.drop_table(&format!("extra{}", i - 1)).unwrap();
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    checkpointer.join().unwrap();
    let shape = |s: &Store| {
        let tables: Vec<_> = s.tables().into_iter().map(|(_, schema)| (*schema).clone()).collect();
        let indexes = s.indexes("accounts");
        (tables, indexes)
    };
    let expect = shape(&store);
    store.close().unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(shape(&store), expect);
    assert_eq!(store.stats().tables, expect.0.len());
    let (t, _) = store.table("accounts").unwrap();
    let hits = store.begin().unwrap().index_scan(t, "ix11", &KeyRange::prefix(vec![Value::Int64(7)]), usize::MAX).unwrap().unwrap();
    assert_eq!(hits.len(), 200);
}

/// Closing stops a running checkpoint; the store reopens with everything.
#[test]
fn close_stops_a_checkpoint_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create_accounts(&store);
    for chunk in 0..10 {
        let mut txn = store.begin().unwrap();
        for i in chunk * 5_000..(chunk + 1) * 5_000 {
            txn.insert(t, row(i, i)).unwrap();
        }
        txn.commit().unwrap();
    }
    let running = {
        let store = store.clone();
        std::thread::spawn(move || store.checkpoint())
    };
    store.close().unwrap();
    match running.join().unwrap() {
        Ok(_) | Err(Error::Closed) => {}
        Err(e) => panic!("{e}"),
    }
    drop(store);
    assert_eq!(balances(&open(dir.path())).len(), 50_000);
}

/// After a checkpoint the rows live in the run, not in memory: reads,
/// range scans, writes and reopening all see them, and memory holds only
/// what changed since.
#[test]
fn a_checkpointed_table_is_read_from_its_run_and_leaves_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create_accounts(&store);
    let mut model = BTreeMap::new();
    for chunk in 0..10 {
        let mut txn = store.begin().unwrap();
        for i in chunk * 5_000..(chunk + 1) * 5_000 {
            txn.insert(t, row(i, i * 3)).unwrap();
            model.insert(i, i * 3);
        }
        txn.commit().unwrap();
    }
    assert_eq!(store.stats().keys, 50_000);
    store.checkpoint().unwrap();
    assert_eq!(store.stats().keys, 0, "every row is in the run");
    assert_eq!(balances(&store), model);
    let txn = store.begin().unwrap();
    assert_eq!(txn.get(t, &key(4321)).unwrap(), Some(row(4321, 4321 * 3)));
    assert_eq!(txn.get(t, &key(-1)).unwrap(), None);
    let range = txn.scan(t, Bound::Excluded(key(100).as_slice()), Bound::Included(key(200).as_slice())).unwrap();
    assert_eq!(range.len(), 100);
    drop(txn);

    // Writes to keys only the run holds.
    let mut txn = store.begin().unwrap();
    assert!(matches!(txn.insert(t, row(7, 0)), Err(Error::DuplicateKey { .. })));
    for i in 0..100 {
        txn.update(t, &key(i), row(i, -i)).unwrap();
        model.insert(i, -i);
        txn.delete(t, &key(1000 + i)).unwrap();
        model.remove(&(1000 + i));
        txn.insert(t, row(100_000 + i, 1)).unwrap();
        model.insert(100_000 + i, 1);
    }
    txn.commit().unwrap();
    store.collect_garbage();
    assert_eq!(balances(&store), model);
    assert_eq!(store.stats().keys, 300, "the changed keys, deleted ones as tombstones masking the run");

    // An open snapshot keeps the changed rows in memory past the next
    // checkpoint; they leave once it ends.
    let reader = store.begin().unwrap();
    let mut txn = store.begin().unwrap();
    txn.insert(t, row(200_000, 2)).unwrap();
    txn.commit().unwrap();
    model.insert(200_000, 2);
    store.checkpoint().unwrap();
    assert_eq!(store.stats().keys, 301);
    assert_eq!(reader.get(t, &key(1000)).unwrap(), None);
    assert_eq!(reader.get(t, &key(200_000)).unwrap(), None);
    drop(reader);
    store.collect_garbage();
    assert_eq!(store.stats().keys, 0, "the tombstones went with the older run");
    assert_eq!(balances(&store), model);

    // Reopening maps the run and replays the log after it.
    let mut txn = store.begin().unwrap();
    txn.delete(t, &key(5)).unwrap();
    model.remove(&5);
    txn.commit().unwrap();
    store.close().unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.stats().keys, 1);
    assert_eq!(balances(&store), model);
}

/// A snapshot older than the latest checkpoint still reads and writes keys
/// whose rows only the run holds, whatever other writers do to them.
#[test]
fn an_older_snapshot_reads_and_writes_keys_that_left_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create_accounts(&store);
    let mut txn = store.begin().unwrap();
    for i in 0..1000 {
        txn.insert(t, row(i, i)).unwrap();
    }
    txn.commit().unwrap();
    store.checkpoint().unwrap();
    assert_eq!(store.stats().keys, 0);

    let mut old = store.begin().unwrap();
    let mut txn = store.begin().unwrap();
    txn.insert(t, row(5000, 0)).unwrap();
    txn.commit().unwrap();
    store.checkpoint().unwrap();
    // Another writer changes key 10 after the checkpoint.
    let mut txn = store.begin().unwrap();
    txn.update(t, &key(10), row(10, -10)).unwrap();
    txn.commit().unwrap();
    assert_eq!(old.get(t, &key(10)).unwrap(), Some(row(10, 10)), "the old snapshot keeps its view of key 10");
    assert_eq!(old.get(t, &key(5000)).unwrap(), None);
    let seen = old.scan(t, Bound::Unbounded, Bound::Unbounded).unwrap();
    assert_eq!(seen.len(), 1000);
    assert!(seen.iter().any(|(_, r)| *r == row(10, 10)));
    // And it updates a key no one touched since the first checkpoint.
    assert!(old.update(t, &key(20), row(20, 2000)).unwrap());
    old.commit().unwrap();
    let now = balances(&store);
    assert_eq!((now[&10], now[&20], now.len()), (-10, 2000, 1001));
}

/// With a small memory budget a table many times larger works: background
/// checkpoints move its rows to runs as it grows, and memory holds about
/// the budget while the writer gives them their turn (writers are not
/// stalled by the store yet).
#[test]
fn a_table_many_times_the_memory_budget_works() {
    const BUDGET: u64 = 2 << 20;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions { memory_budget: BUDGET, ..options(dir.path()) }).unwrap();
    let schema = TableSchema {
        name: "docs".into(),
        columns: vec![ColumnDef::new("id", DataType::Int64).not_null(), ColumnDef::new("body", DataType::Text)],
        primary_key: vec![0],
    };
    let (t, _) = store.create_table(schema).unwrap();
    let body = "x".repeat(1000);
    for batch in 0..160i64 {
        let mut txn = store.begin().unwrap();
        for i in batch * 100..(batch + 1) * 100 {
            txn.insert(t, vec![Value::Int64(i), Value::Text(body.clone())]).unwrap();
        }
        txn.commit().unwrap();
        // Writers do not stall on the budget (yet): give the checkpointer
        // its turn. The bound only stops a hang.
        for _ in 0..2000 {
            if store.checkpoint_info().wal_bytes <= BUDGET {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(store.stats().data_bytes as u64 <= 2 * BUDGET, "batch {batch}: {:?}", store.stats());
    }
    let info = store.checkpoint_info();
    assert!(info.run_bytes > 6 * BUDGET, "the table outgrew the budget: {info:?}");
    let rows = store.begin().unwrap().scan(t, Bound::Unbounded, Bound::Unbounded).unwrap();
    assert_eq!(rows.len(), 16_000);
    assert_eq!(
        store.begin().unwrap().get(t, &omen_rowstore::encode_key(&[Value::Int64(12_345)], &[0])).unwrap().unwrap()[1],
        Value::Text(body)
    );
}
