//! Durable commits in process: single-row insert transactions from 1, 8
//! and 64 threads through the row store with `Durability::Full` (each
//! commit returns after the fdatasync of its group), every commit timed.
//! The same workload through the wire protocol, against PostgreSQL, is
//! `SUITE=commits scripts/pgbench-compare.sh`; this is what an embedded
//! application sees, with no network and no SQL.
//!
//!   cd bench-compare && cargo bench --bench commits [-- SECONDS]   (default 10)
//!
//! Rows: a BIGINT key (distinct per thread) and a 100-byte text, as in the
//! pgbench script. Files go under `$TMPDIR`. The log uses 8 MiB segments
//! and each run starts once one has rolled over: the steady state, where
//! every segment was zero-filled ahead (the first segment of a new store
//! is not).
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use omen_rowstore::{ColumnDef, DataType, Durability, Store, StoreOptions, TableSchema, Value};

const SEGMENT: u64 = 8 << 20;

fn main() {
    let secs: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(10);
    let text = "a hundred bytes of text, the same row for both servers: 0123456789012345678901234567890123456789".to_owned();
    println!("| committers | commits/s | p50 (us) | p99 (us) |");
    println!("|---:|---:|---:|---:|");
    for threads in [1usize, 8, 64] {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            dir: Some(dir.path().into()),
            durability: Durability::Full,
            wal_segment_bytes: SEGMENT,
            // Commits only: no checkpoint runs during the timed run.
            checkpoint_wal_bytes: 0,
            ..StoreOptions::default()
        };
        let store = Store::open(options).unwrap();
        let schema = TableSchema {
            name: "commits".into(),
            columns: vec![ColumnDef::new("id", DataType::Int64).not_null(), ColumnDef::new("v", DataType::Text)],
            primary_key: vec![0],
        };
        let (t, _) = store.create_table(schema).unwrap();
        // Warm up past the first segment (one thread, 100-row commits).
        let mut id = -1i64;
        while store.checkpoint_info().wal_bytes < SEGMENT + SEGMENT / 4 {
            let mut txn = store.begin().unwrap();
            for _ in 0..100 {
                id -= 1;
                txn.insert(t, vec![Value::Int64(id), Value::Text(text.clone())]).unwrap();
            }
            txn.commit().unwrap();
        }
        let stop = AtomicBool::new(false);
        let (mut lat, wall) = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|i| {
                    let (store, stop, text) = (&store, &stop, &text);
                    s.spawn(move || {
                        let mut lat = Vec::new();
                        let mut id = (i as i64) << 40;
                        while !stop.load(Ordering::Relaxed) {
                            id += 1;
                            let start = Instant::now();
                            let mut txn = store.begin().unwrap();
                            txn.insert(t, vec![Value::Int64(id), Value::Text(text.clone())]).unwrap();
                            txn.commit().unwrap();
                            lat.push(start.elapsed());
                        }
                        lat
                    })
                })
                .collect();
            let start = Instant::now();
            std::thread::sleep(Duration::from_secs(secs));
            stop.store(true, Ordering::Relaxed);
            let lat: Vec<Duration> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
            (lat, start.elapsed())
        });
        lat.sort_unstable();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "| {threads} | {:.0} | {:.0} | {:.0} |",
            lat.len() as f64 / wall.as_secs_f64(),
            us(lat[lat.len() / 2]),
            us(lat[lat.len() * 99 / 100])
        );
    }
}
