//! How long starting sync takes on a reopened database: resuming a
//! persisted column store (its files read, the log after its watermark
//! replayed) against rebuilding it from the row store.
//!
//!   cargo bench -p omen-sync --bench restart [-- ROWS]   (default 1,000,000)
//!
//! ROWS rows of (BIGINT key, BIGINT, TEXT of 20 bytes) in commits of 1,000,
//! `Durability::Off`; sync stops (writing the column store), the row store
//! checkpoints and closes. Then three opens of each kind, median quoted:
//! the rows of the log tail after the watermark (10,000 updates committed
//! after the last persist) are part of the resume.
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use omen_colstore::{ColumnStore, ColumnStoreOptions};
use omen_rowstore::{ColumnDef, DataType, Durability, Store, StoreOptions, TableSchema, Value};
use omen_sync::{SyncOptions, Syncer};

fn rows(dir: &Path) -> Store {
    Store::open(StoreOptions {
        dir: Some(dir.join("rows")),
        durability: Durability::Off,
        checkpoint_wal_bytes: 0,
        ..StoreOptions::default()
    })
    .unwrap()
}

fn start(rows: &Store, dir: &Path, persist_every: Duration) -> Syncer {
    let cols = ColumnStore::open(ColumnStoreOptions { dir: Some(dir.join("columns")), ..ColumnStoreOptions::default() }).unwrap();
    Syncer::start(rows.clone(), Arc::new(cols), SyncOptions { persist_every, ..SyncOptions::default() }).unwrap()
}

fn timed_start(dir: &Path) -> (Duration, bool) {
    let store = rows(dir);
    let started = Instant::now();
    let sync = start(&store, dir, Duration::from_secs(3600));
    let took = started.elapsed();
    let resumed = sync.resumed_from().is_some();
    // Leave the files as they were: no last persist.
    std::mem::forget(sync);
    store.close().unwrap();
    (took, resumed)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let n: i64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let store = rows(dir.path());
    let sync = start(&store, dir.path(), Duration::from_secs(3600));
    let schema = TableSchema {
        name: "t".into(),
        columns: vec![
            ColumnDef::new("k", DataType::Int64).not_null(),
            ColumnDef::new("a", DataType::Int64),
            ColumnDef::new("s", DataType::Text),
        ],
        primary_key: vec![0],
    };
    let (t, _) = store.create_table(schema).unwrap();
    let write = |range: std::ops::Range<i64>, salt: i64| {
        for chunk in range.collect::<Vec<_>>().chunks(1000) {
            let mut txn = store.begin().unwrap();
            for &k in chunk {
                txn.upsert(t, vec![Value::Int64(k), Value::Int64(k + salt), Value::Text(format!("row {k:>16}"))]).unwrap();
            }
            txn.commit().unwrap();
        }
    };
    write(0..n, 0);
    sync.stop();
    // Committed after the column store was written: the resume replays them.
    let tail = Store::clone(&store);
    drop(sync);
    let sync = start(&tail, dir.path(), Duration::from_secs(3600));
    write(0..10_000, 1);
    std::mem::forget(sync);
    store.checkpoint().unwrap();
    store.close().unwrap();
    drop(store);

    let resumed: Vec<(Duration, bool)> = (0..3).map(|_| timed_start(dir.path())).collect();
    assert!(resumed.iter().all(|(_, r)| *r), "every open resumed");
    let resume = median(resumed.into_iter().map(|(d, _)| d).collect());
    let rebuilt: Vec<Duration> = (0..3)
        .map(|_| {
            std::fs::remove_dir_all(dir.path().join("columns")).unwrap();
            let (took, resumed) = timed_start(dir.path());
            assert!(!resumed);
            took
        })
        .collect();
    let rebuild = median(rebuilt);
    println!("| starting sync over {n} rows (10,000 changed after the last persist) | median of 3 (s) |");
    println!("|---|---:|");
    println!("| resume: read the column store's files, replay the log after its watermark | {:.2} |", resume.as_secs_f64());
    println!("| rebuild: read every row from the row store | {:.2} |", rebuild.as_secs_f64());
}
