//! A persistent column store across restarts: sync resumes it by replaying
//! the row store's log after its durable watermark, and the analytic view
//! equals the row store's, table for table; a column store that cannot
//! resume exactly is rebuilt.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use omen_colstore::{ColumnStore, ColumnStoreOptions};
use omen_rowstore::{Alteration, ColumnDef, DataType, IndexDef, Store, StoreOptions, TableId, Value};
use omen_sync::{SyncOptions, Syncer};

use omen_sync::convert::array_to_values;

use crate::differential::schema;

fn open(dir: &Path) -> (Store, Syncer) {
    open_with(dir, SyncOptions::default())
}

fn open_with(dir: &Path, options: SyncOptions) -> (Store, Syncer) {
    let rows = Store::open(StoreOptions { dir: Some(dir.join("rows")), checkpoint_wal_bytes: 0, ..StoreOptions::default() }).unwrap();
    let cols = ColumnStore::open(ColumnStoreOptions { dir: Some(dir.join("columns")), ..ColumnStoreOptions::default() }).unwrap();
    let sync = Syncer::start(rows.clone(), Arc::new(cols), options).unwrap();
    (rows, sync)
}

/// Sync that never persists on its own: a crash leaves the column store
/// as the last `stop` wrote it.
fn open_without_persists(dir: &Path) -> (Store, Syncer) {
    open_with(dir, SyncOptions { persist_every: std::time::Duration::from_secs(3600), ..SyncOptions::default() })
}

/// What a crash leaves: no last persist (the threads are left behind).
fn crash(rows: Store, sync: Syncer) {
    std::mem::forget(sync);
    rows.close().unwrap();
}

fn close(rows: Store, sync: Syncer) {
    sync.stop();
    rows.close().unwrap();
}

/// Every live table: the HTAP snapshot equals the row store, row for row
/// (every column decoded with the table's types, sorted like the row store).
fn assert_same(rows: &Store, sync: &Syncer) {
    let txn = rows.begin().unwrap();
    let tables = rows.tables();
    let ids: Vec<TableId> = tables.iter().map(|(id, _)| *id).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let snaps = rt.block_on(sync.snapshot(&txn, &ids)).unwrap();
    for (id, schema) in tables {
        let expect: Vec<Vec<Value>> = txn.scan(id, Bound::Unbounded, Bound::Unbounded).unwrap().into_iter().map(|(_, r)| r).collect();
        let mut got: Vec<Vec<Value>> = Vec::new();
        for b in snaps[&id].scan(None, false).unwrap() {
            let columns: Vec<Vec<Value>> =
                schema.columns.iter().enumerate().map(|(i, c)| array_to_values(b.column(i).as_ref(), &c.data_type).unwrap()).collect();
            got.extend((0..b.num_rows()).map(|r| columns.iter().map(|c| c[r].clone()).collect::<Vec<_>>()));
        }
        got.sort_by_key(|r| match r[0] {
            Value::Int32(k) => k,
            _ => unreachable!(),
        });
        assert_eq!(got, expect, "table {id}");
    }
}

fn put(rows: &Store, t: TableId, k: i32, v: &str) {
    let mut txn = rows.begin().unwrap();
    txn.upsert(t, vec![Value::Int32(k), Value::Text(v.into())]).unwrap();
    txn.commit().unwrap();
}

fn delete(rows: &Store, t: TableId, k: i32) {
    let mut txn = rows.begin().unwrap();
    txn.delete(t, &omen_rowstore::encode_key(&[Value::Int32(k)], &[0])).unwrap();
    txn.commit().unwrap();
}

#[test]
fn sync_resumes_from_the_durable_watermark_and_matches_the_row_store() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, sync) = open(dir.path());
    assert_eq!(sync.resumed_from(), None, "a new column store is built");
    let (a, _) = rows.create_table(schema("a")).unwrap();
    let (gone, _) = rows.create_table(schema("gone")).unwrap();
    for k in 0..200 {
        put(&rows, a, k, "v1");
    }
    put(&rows, gone, 1, "x");
    close(rows, sync);

    // Reopened: resumed, and the changes after it replay from the log too.
    let (rows, sync) = open_without_persists(dir.path());
    let w = sync.resumed_from().expect("resumed from disk");
    assert!(w > 0);
    assert_same(&rows, &sync);
    for k in 0..50 {
        put(&rows, a, k, "v2");
        delete(&rows, a, k + 100);
    }
    rows.create_index("a", IndexDef { name: "a_v".into(), columns: vec![1], unique: false }).unwrap();
    rows.drop_table("gone").unwrap();
    let (b, _) = rows.create_table(schema("b")).unwrap();
    put(&rows, b, 7, "b");
    assert_same(&rows, &sync);
    // A crash (no persist since the reopen): the log after the durable
    // watermark holds what the column store lacks, and replays: updates,
    // deletes, index DDL, a dropped table, a new one.
    crash(rows, sync);

    let (rows, sync) = open(dir.path());
    assert!(sync.resumed_from().is_some());
    assert_same(&rows, &sync);
    assert_eq!(rows.tables().len(), 2);
    put(&rows, b, 8, "after");
    assert_same(&rows, &sync);
    close(rows, sync);
}

#[test]
fn a_column_store_that_cannot_resume_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, sync) = open(dir.path());
    let (a, _) = rows.create_table(schema("a")).unwrap();
    for k in 0..100 {
        put(&rows, a, k, "v");
    }
    close(rows, sync);

    // An ALTER TABLE in the log after the watermark: replay cannot pass it.
    let rows =
        Store::open(StoreOptions { dir: Some(dir.path().join("rows")), checkpoint_wal_bytes: 0, ..StoreOptions::default() }).unwrap();
    rows.alter_table("a", &[Alteration::AddColumn(ColumnDef::new("w", DataType::Int64))]).unwrap();
    rows.close().unwrap();
    drop(rows);
    let (rows, sync) = open(dir.path());
    assert_eq!(sync.resumed_from(), None, "rebuilt past the ALTER");
    let txn = rows.begin().unwrap();
    let (a, _) = rows.table("a").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let snaps = rt.block_on(sync.snapshot(&txn, &[a])).unwrap();
    assert_eq!(snaps[&a].scan(None, false).unwrap().iter().map(|b| b.num_rows()).sum::<usize>(), 100);
    drop(txn);
    close(rows, sync);

    // Damaged column-store files: rebuilt from the row store, nothing lost.
    for entry in std::fs::read_dir(dir.path().join("columns")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "parquet") {
            let mut bytes = std::fs::read(&path).unwrap();
            let at = bytes.len() / 2;
            bytes.truncate(at);
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let (rows, sync) = open(dir.path());
    assert_eq!(sync.resumed_from(), None);
    assert_same(&rows, &sync);
    close(rows, sync);
}

/// A column store ahead of the row store (commits a crash took from the
/// rows after the columns were written; here, rows restored from an older
/// backup) is rebuilt, and what it had is gone from disk: a crash right
/// after the rebuild does not bring the lost rows back.
#[test]
fn a_column_store_ahead_of_the_rows_is_rebuilt_and_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, sync) = open(dir.path());
    let (a, _) = rows.create_table(schema("a")).unwrap();
    for k in 0..10 {
        put(&rows, a, k, "kept");
    }
    let backup = dir.path().join("older-rows");
    rows.backup_to(&backup).unwrap();
    for k in 10..20 {
        put(&rows, a, k, "lost");
    }
    close(rows, sync);
    std::fs::remove_dir_all(dir.path().join("rows")).unwrap();
    std::fs::rename(&backup, dir.path().join("rows")).unwrap();

    let (rows, sync) = open_without_persists(dir.path());
    assert_eq!(sync.resumed_from(), None, "rebuilt: the columns are ahead of the rows");
    assert_same(&rows, &sync);
    // New commits reuse the lost timestamps.
    for k in 100..115 {
        put(&rows, a, k, "new");
    }
    crash(rows, sync);
    let (rows, sync) = open(dir.path());
    assert_same(&rows, &sync);
    assert_eq!(rows.begin().unwrap().scan(a, Bound::Unbounded, Bound::Unbounded).unwrap().len(), 25);
    close(rows, sync);
}

/// Compaction drops the versions no open snapshot sees, by the background
/// rule (many dead versions) or for every table, and changes no answer; a
/// snapshot open across it still reads its rows.
#[test]
fn compaction_drops_dead_versions_and_changes_no_answer() {
    let rows = Store::open(StoreOptions::default()).unwrap();
    // No background pass: the test calls compaction itself.
    let options = SyncOptions { persist_every: std::time::Duration::from_secs(3600), ..SyncOptions::default() };
    let sync = Syncer::start(rows.clone(), Arc::new(ColumnStore::new()), options).unwrap();
    let (a, _) = rows.create_table(schema("a")).unwrap();
    let (b, _) = rows.create_table(schema("b")).unwrap();
    for round in 0..3 {
        let mut txn = rows.begin().unwrap();
        for k in 0..30_000 {
            txn.upsert(a, vec![Value::Int32(k), Value::Text(format!("r{round}"))]).unwrap();
        }
        txn.commit().unwrap();
    }
    put(&rows, b, 1, "only");
    put(&rows, b, 1, "twice");
    assert_same(&rows, &sync);
    let old = rows.begin().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let before = rt.block_on(sync.snapshot(&old, &[a])).unwrap();
    let mut txn = rows.begin().unwrap();
    for k in 0..30_000 {
        txn.upsert(a, vec![Value::Int32(k), Value::Text("newest".into())]).unwrap();
    }
    txn.commit().unwrap();
    assert_same(&rows, &sync);
    // 90,000 dead versions in a (three-quarters of its versions), one in b:
    // the rule compacts a only; the old snapshot keeps the versions it reads.
    let dropped = sync.compact(false).unwrap();
    assert_eq!(dropped, 60_000, "versions ended before the open snapshot");
    assert_eq!(before[&a].scan(None, false).unwrap().iter().map(|b| b.num_rows()).sum::<usize>(), 30_000);
    drop((before, old));
    assert_eq!(sync.compact(true).unwrap(), 30_001, "with no snapshot open: every dead version, b's too");
    assert_same(&rows, &sync);
    sync.stop();
}

#[test]
fn a_segment_found_damaged_after_resuming_is_rebuilt_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, sync) = open(dir.path());
    let (a, _) = rows.create_table(schema("a")).unwrap();
    for k in 0..50 {
        put(&rows, a, k, "v");
    }
    close(rows, sync);
    // The first column's pages: the keys and timestamps read at open are intact.
    let seg = std::fs::read_dir(dir.path().join("columns"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[4..24].fill(0xff);
    std::fs::write(&seg, &bytes).unwrap();

    let (rows, sync) = open_with(dir.path(), SyncOptions { persist_every: std::time::Duration::from_millis(20), ..SyncOptions::default() });
    assert!(sync.resumed_from().is_some(), "the damage is in data a resume does not read");
    let txn = rows.begin().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let snaps = rt.block_on(sync.snapshot(&txn, &[a])).unwrap();
    assert!(matches!(snaps[&a].scan(None, false), Err(omen_sync::Error::Column(omen_colstore::Error::Corruption { .. }))));
    let started = std::time::Instant::now();
    while !sync.persist_error().is_some_and(|e| e.contains("damaged")) {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "the damage was never acted on");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop((snaps, txn));
    close(rows, sync);
    let (rows, sync) = open(dir.path());
    assert_eq!(sync.resumed_from(), None, "rebuilt");
    assert_same(&rows, &sync);
    close(rows, sync);
}
