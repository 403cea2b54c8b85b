//! Whether sync keeps up with a bulk load, and at what rate it converts and
//! appends rows.
//!
//!   cargo bench -p omen-sync --bench bulk [-- ROWS]   (default 2,000,000)
//!
//! ROWS rows of (BIGINT key, two BIGINTs, 20 bytes of TEXT) inserted in
//! transactions of 10,000 rows into a table on disk (`Durability::Full`):
//! once with sync off, once with sync into an in-memory column store. Per
//! load: the rows per second the row store took, and with sync the time
//! from the last commit until the column store had it (the catch-up) and
//! sync's own rate (rows over the time from the first commit to the
//! catch-up's end). Three loads of each, medians.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use omen_colstore::ColumnStore;
use omen_rowstore::{Durability, Store, StoreOptions, Value};
use omen_sync::{SyncOptions, Syncer};

const TXN_ROWS: i64 = 10_000;

struct Load {
    rows_per_sec: f64,
    catch_up: Option<Duration>,
    sync_rows_per_sec: Option<f64>,
}

fn load(n: i64, sync: bool) -> Load {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let store =
        Store::open(StoreOptions { dir: Some(dir.path().to_path_buf()), durability: Durability::Full, ..StoreOptions::default() }).unwrap();
    let (t, _) = store.create_table(common::schema("t")).unwrap();
    let syncer = sync.then(|| Syncer::start(store.clone(), Arc::new(ColumnStore::new()), SyncOptions::default()).unwrap());
    let started = Instant::now();
    let mut last = 0;
    for chunk in 0..n / TXN_ROWS {
        let mut txn = store.begin().unwrap();
        for id in chunk * TXN_ROWS..(chunk + 1) * TXN_ROWS {
            txn.insert(t, vec![Value::Int64(id), Value::Int64(id * 3), Value::Int64(id >> 3), Value::Text(format!("{id:020}"))]).unwrap();
        }
        last = txn.commit().unwrap();
    }
    let loaded = started.elapsed();
    let (catch_up, sync_rows_per_sec) = match &syncer {
        Some(s) => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(s.wait_for(last)).unwrap();
            let all = started.elapsed();
            (Some(all - loaded), Some(n as f64 / all.as_secs_f64()))
        }
        None => (None, None),
    };
    drop(syncer);
    store.close().unwrap();
    Load { rows_per_sec: n as f64 / loaded.as_secs_f64(), catch_up, sync_rows_per_sec }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let n: i64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(2_000_000);
    let mut off = Vec::new();
    let mut on = Vec::new();
    for round in 1..=3 {
        let a = load(n, false);
        let b = load(n, true);
        eprintln!(
            "round {round}: sync off {:.0} rows/s; sync on {:.0} rows/s, caught up {:.3} s after the last commit, sync {:.0} rows/s",
            a.rows_per_sec,
            b.rows_per_sec,
            b.catch_up.unwrap().as_secs_f64(),
            b.sync_rows_per_sec.unwrap()
        );
        off.push(a);
        on.push(b);
    }
    let off_rate = median(off.iter().map(|l| l.rows_per_sec).collect());
    let on_rate = median(on.iter().map(|l| l.rows_per_sec).collect());
    println!("{n} rows in transactions of {TXN_ROWS}, Durability::Full, 3 loads each (medians)\n");
    println!("| load | rows/s | vs sync off | caught up after the last commit | sync's rate |");
    println!("|---|---:|---:|---:|---:|");
    println!("| sync off | {off_rate:.0} | 1.00 | - | - |");
    println!(
        "| sync on | {on_rate:.0} | {:.2} | {:.3} s | {:.0} rows/s |",
        on_rate / off_rate,
        median(on.iter().map(|l| l.catch_up.unwrap().as_secs_f64()).collect()),
        median(on.iter().map(|l| l.sync_rows_per_sec.unwrap()).collect())
    );
}
