//! Recovery time: how long `Store::open` takes after a crash that leaves
//! a log tail of a given size, and after a checkpoint of the same state.
//! The durability issue's target: a 1 GB tail replays in at most 5 s.
//!
//!   cd bench-compare && cargo bench --bench recovery [-- MiB]   (default 1024)
//!
//! The log holds single-table commits of 10 rows each, 1 KB values, half
//! inserts of new keys and half updates of earlier ones, written with
//! `Durability::Off` and no checkpoints. The store is then dropped without
//! a checkpoint (what a crash leaves; a clean close adds none either), and
//! reopened twice: once replaying the whole tail, once after a checkpoint
//! (runs mapped, nothing replayed; rows are read from the runs as they are
//! needed). Files go under `$TMPDIR`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use omen_rowstore::{Durability, Store, StoreOptions, Value};
use omendb_bench_compare::{Rng, create_kv};

const VALUE_BYTES: usize = 1000;
const ROWS_PER_COMMIT: i64 = 10;

fn options(dir: &std::path::Path) -> StoreOptions {
    StoreOptions { dir: Some(dir.into()), durability: Durability::Off, checkpoint_wal_bytes: 0, ..StoreOptions::default() }
}

fn timed_open(dir: &std::path::Path) -> (Store, Duration) {
    let start = Instant::now();
    let store = Store::open(options(dir)).unwrap();
    (store, start.elapsed())
}

/// The median of three timed opens, each checked to hold `rows` rows.
fn median_open(dir: &std::path::Path, expect: i64) -> Duration {
    let mut took: Vec<Duration> = (0..3)
        .map(|_| {
            let (store, took) = timed_open(dir);
            assert_eq!(rows(&store), expect);
            took
        })
        .collect();
    took.sort();
    took[1]
}

/// Rows in `kv` (a full scan, outside the timing).
fn rows(store: &Store) -> i64 {
    let (t, _) = store.table("kv").unwrap();
    store.begin().unwrap().scan(t, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded).unwrap().len() as i64
}

fn main() {
    let mib: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1024);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).unwrap();
    let t = create_kv(&store);
    let value = "x".repeat(VALUE_BYTES);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut next, mut commits) = (0i64, 0u64);
    let start = Instant::now();
    while store.checkpoint_info().wal_bytes < mib << 20 {
        let mut txn = store.begin().unwrap();
        for i in 0..ROWS_PER_COMMIT {
            // Even rows insert a new key; odd rows update an earlier one.
            let k = if i % 2 == 0 || next == 0 {
                next += 1;
                next
            } else {
                rng.key(); // advances the generator
                (rng.0 % next as u64) as i64 + 1
            };
            txn.upsert(t, vec![Value::Int64(k), Value::Text(value.clone())]).unwrap();
        }
        txn.commit().unwrap();
        commits += 1;
    }
    let wal_bytes = store.checkpoint_info().wal_bytes;
    println!("wrote {commits} commits ({} MiB of log, {next} keys) in {:.1} s", wal_bytes >> 20, start.elapsed().as_secs_f64());
    drop(store);

    let replay = median_open(dir.path(), next);
    let (store, _) = timed_open(dir.path());
    let started = Instant::now();
    let info = store.checkpoint().unwrap();
    let checkpoint_took = started.elapsed();
    drop(store);
    let load = median_open(dir.path(), next);
    println!();
    println!("| reopen after | median of 3 (s) | MiB/s |");
    println!("|---|---:|---:|");
    let row = |what: &str, took: Duration, bytes: u64| {
        println!("| {what} | {:.2} | {:.0} |", took.as_secs_f64(), (bytes >> 20) as f64 / took.as_secs_f64());
    };
    row(&format!("a {} MiB log tail (replay)", wal_bytes >> 20), replay, wal_bytes);
    row(&format!("a checkpoint ({} MiB of runs, {} rows)", info.run_bytes >> 20, info.rows), load, info.run_bytes);
    println!();
    println!(
        "writing that checkpoint took {:.2} s ({:.0} MiB/s)",
        checkpoint_took.as_secs_f64(),
        (info.run_bytes >> 20) as f64 / checkpoint_took.as_secs_f64()
    );
}
