//! Incremental checkpoints: what a checkpoint costs when a small share of
//! a large table changed, against rewriting the whole table (what every
//! checkpoint did before runs of changes), and what several runs cost point
//! reads against one.
//!
//!   cd bench-compare && cargo bench --bench checkpoints [-- ROWS]   (default 1,000,000)
//!
//! ROWS rows of 500-byte values are loaded and checkpointed into one run.
//! Then eight rounds each update 1% of the keys and delete 0.1% (random
//! keys, commits of 100 rows) and checkpoint: each checkpoint writes a run
//! of the changes, and merges runs as its size tiers say. A full
//! compaction (`Store::compact`: every run merged into one, the whole table
//! rewritten) is the comparison. Point reads of random keys, one thread,
//! run against the runs the rounds left and again after the compaction
//! (rows read from the runs: the checkpoints moved them out of memory).
//! Durability is `Off` (the log's syncs are not what is measured); files
//! go under `$TMPDIR`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use omen_rowstore::{Durability, Store, StoreOptions, TableId, Value, encode_key};
use omendb_bench_compare::{Rng, create_kv};

const VALUE_BYTES: usize = 500;
const ROUNDS: usize = 8;
const READS: usize = 1_000_000;

fn load(store: &Store, rows: i64) -> TableId {
    let t = create_kv(store);
    let value = "x".repeat(VALUE_BYTES);
    for chunk in (0..rows).collect::<Vec<_>>().chunks(1000) {
        let mut txn = store.begin().unwrap();
        for &k in chunk {
            txn.insert(t, vec![Value::Int64(k), Value::Text(value.clone())]).unwrap();
        }
        txn.commit().unwrap();
    }
    t
}

/// A random key in `0..n`.
fn pick(rng: &mut Rng, n: i64) -> i64 {
    rng.key(); // advances the generator
    (rng.0 % n as u64) as i64
}

fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let start = Instant::now();
    let r = f();
    (r, start.elapsed())
}

/// Point reads per second of random keys (median of three passes).
fn reads(store: &Store, t: TableId, rows: i64) -> f64 {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let keys: Vec<Vec<u8>> = (0..READS).map(|_| encode_key(&[Value::Int64(pick(&mut rng, rows))], &[0])).collect();
    let mut rates: Vec<f64> = (0..3)
        .map(|_| {
            let txn = store.begin().unwrap();
            let (found, took) = timed(|| keys.iter().filter(|k| txn.get(t, k).unwrap().is_some()).count());
            assert!(found > READS * 9 / 10);
            READS as f64 / took.as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[1]
}

fn main() {
    let rows: i64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let options =
        StoreOptions { dir: Some(dir.path().into()), durability: Durability::Off, checkpoint_wal_bytes: 0, ..StoreOptions::default() };
    let store = Store::open(options).unwrap();
    let (t, took) = timed(|| load(&store, rows));
    println!("loaded {rows} rows in {:.1} s", took.as_secs_f64());
    let (first, full) = timed(|| store.checkpoint().unwrap());
    println!("first checkpoint: {} MiB in {:.2} s", first.run_bytes >> 20, full.as_secs_f64());

    println!();
    println!("| round | rows changed | checkpoint (s) | runs after | MiB of runs |");
    println!("|---:|---:|---:|---:|---:|");
    let value = "y".repeat(VALUE_BYTES);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut times = Vec::new();
    for round in 1..=ROUNDS {
        let (updates, deletes) = (rows / 100, rows / 1000);
        for chunk in 0..(updates + deletes) / 100 {
            let mut txn = store.begin().unwrap();
            for i in 0..100 {
                let k = pick(&mut rng, rows);
                if (chunk * 100 + i) < updates {
                    txn.upsert(t, vec![Value::Int64(k), Value::Text(value.clone())]).unwrap();
                } else {
                    txn.delete(t, &encode_key(&[Value::Int64(k)], &[0])).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let (info, took) = timed(|| store.checkpoint().unwrap());
        times.push(took);
        println!("| {round} | {} | {:.3} | {} | {} |", updates + deletes, took.as_secs_f64(), info.runs, info.run_bytes >> 20);
    }
    times.sort();
    let median = times[ROUNDS / 2];
    let many = store.checkpoint_info().runs;
    let reads_many = reads(&store, t, rows);
    let (merged, compact) = timed(|| store.compact().unwrap());
    let reads_one = reads(&store, t, rows);
    println!();
    println!("| | seconds | ratio |");
    println!("|---|---:|---:|");
    println!("| checkpoint after 1.1% changed (median of {ROUNDS}) | {:.3} | 1 |", median.as_secs_f64());
    println!(
        "| rewriting the table ({} MiB: compaction into one run) | {:.3} | {:.1}x |",
        merged.run_bytes >> 20,
        compact.as_secs_f64(),
        compact.as_secs_f64() / median.as_secs_f64()
    );
    println!();
    println!("| point reads, one thread | reads/s | ratio |");
    println!("|---|---:|---:|");
    println!("| {many} runs | {reads_many:.0} | {:.2} |", reads_many / reads_one);
    println!("| 1 run (after compaction) | {reads_one:.0} | 1 |");
}
