//! What sync costs and how far it trails, under sustained durable
//! single-row transactions.
//!
//!   cargo bench -p omen-sync --bench lag [-- SECONDS CLIENTS]   (default 10 s, 16 clients)
//!
//! A table of 100,000 rows (BIGINT key, two BIGINTs, 20 bytes of TEXT) on
//! disk under `Durability::Full`; CLIENTS threads each commit single-row
//! upserts of random keys as fast as group commit lets them, for SECONDS.
//! Three setups, run in turn three times (medians quoted): sync off, sync
//! into an in-memory column store, and sync into a persistent one (written
//! every 2 s, compacted in the background).
//!
//! Per run: commits per second; the lag of each commit from its publication
//! to its application in the column store (p50, p99, max: sync's own
//! histogram, at most 19% above the true value); and a probe thread that
//! commits a new value to a one-row table and at once reads it back
//! through an HTAP snapshot, every time (a read that misses the commit is
//! counted as stale: the target is none).
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Array, Int64Array};
use omen_colstore::{ColumnStore, ColumnStoreOptions};
use omen_rowstore::{Durability, Store, StoreOptions, TableId, Value};
use omen_sync::{SyncOptions, Syncer};

const ROWS: i64 = 100_000;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Setup {
    Off,
    Memory,
    Persistent,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::Off => "sync off",
            Setup::Memory => "sync, in-memory columns",
            Setup::Persistent => "sync, persistent columns",
        }
    }
}

struct Run {
    commits_per_sec: f64,
    lag: Option<(Duration, Duration, Duration)>,
    probes: u64,
    stale: u64,
}

fn row(id: i64, x: u64) -> Vec<Value> {
    vec![Value::Int64(id), Value::Int64(x as i64), Value::Int64((x >> 7) as i64), Value::Text(format!("{x:020}"))]
}

fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn load(dir: &Path) -> (Store, TableId, TableId) {
    let store = Store::open(StoreOptions { dir: Some(dir.join("rows")), durability: Durability::Full, ..StoreOptions::default() }).unwrap();
    let (t, _) = store.create_table(common::schema("t")).unwrap();
    let (probe, _) = store.create_table(common::schema("probe")).unwrap();
    for chunk in 0..ROWS / 1000 {
        let mut txn = store.begin().unwrap();
        for id in chunk * 1000..(chunk + 1) * 1000 {
            txn.insert(t, row(id, id as u64)).unwrap();
        }
        txn.commit().unwrap();
    }
    (store, t, probe)
}

/// Commits `n` to the probe row, then reads it back at once: through an
/// HTAP snapshot with sync, from the row store without. Whether the read
/// saw the commit.
fn probe(store: &Store, sync: Option<&Syncer>, rt: &tokio::runtime::Runtime, table: TableId, n: u64) -> bool {
    let mut txn = store.begin().unwrap();
    txn.upsert(table, row(0, n)).unwrap();
    txn.commit().unwrap();
    let reader = store.begin().unwrap();
    let seen = match sync {
        Some(sync) => {
            let snaps = rt.block_on(sync.snapshot(&reader, &[table])).unwrap();
            let batches = snaps[&table].scan(Some(&[1]), false).unwrap();
            let values: Vec<i64> = batches
                .iter()
                .flat_map(|b| {
                    let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                    (0..a.len()).map(|i| a.value(i)).collect::<Vec<_>>()
                })
                .collect();
            // Exactly one row: an old version left unmasked is stale too.
            (values.len() == 1).then(|| values[0])
        }
        None => match reader.get(table, &omen_rowstore::encode_key(&[Value::Int64(0)], &[0])).unwrap() {
            Some(r) => match r[1] {
                Value::Int64(v) => Some(v),
                _ => None,
            },
            None => None,
        },
    };
    seen == Some(n as i64)
}

fn run(setup: Setup, seconds: u64, clients: usize) -> Run {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let (store, t, probe_table) = load(dir.path());
    let sync = match setup {
        Setup::Off => None,
        Setup::Memory => Some(Syncer::start(store.clone(), Arc::new(ColumnStore::new()), SyncOptions::default()).unwrap()),
        Setup::Persistent => {
            let cols =
                ColumnStore::open(ColumnStoreOptions { dir: Some(dir.path().join("columns")), ..ColumnStoreOptions::default() }).unwrap();
            Some(Syncer::start(store.clone(), Arc::new(cols), SyncOptions::default()).unwrap())
        }
    };
    let before = sync.as_ref().map(|s| s.metrics().lag);
    let stop = AtomicBool::new(false);
    let commits = AtomicU64::new(0);
    let (mut probes, mut stale) = (0, 0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for c in 0..clients {
            let (store, stop, commits) = (&store, &stop, &commits);
            s.spawn(move || {
                let mut x = 0x2545_F491_4F6C_DD1D ^ (c as u64 + 1);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let id = (next(&mut x) % ROWS as u64) as i64;
                    // Two clients writing one key: the later fails, retryable.
                    let mut txn = store.begin().unwrap();
                    if txn.upsert(t, row(id, x)).is_ok() && txn.commit().is_ok() {
                        n += 1;
                    }
                }
                commits.fetch_add(n, Ordering::Relaxed);
            });
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        while started.elapsed() < Duration::from_secs(seconds) {
            probes += 1;
            if !probe(&store, sync.as_ref(), &rt, probe_table, probes) {
                stale += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = started.elapsed().as_secs_f64();
    let lag = sync.as_ref().zip(before).map(|(s, before)| {
        let lag = s.metrics().lag.since(&before);
        (lag.quantile(0.5).unwrap(), lag.quantile(0.99).unwrap(), lag.max().unwrap())
    });
    drop(sync);
    store.close().unwrap();
    Run { commits_per_sec: (commits.load(Ordering::Relaxed) + probes) as f64 / elapsed, lag, probes, stale }
}

fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let seconds = args.first().copied().unwrap_or(10);
    let clients = args.get(1).copied().unwrap_or(16) as usize;
    let setups = [Setup::Off, Setup::Memory, Setup::Persistent];
    let mut runs: Vec<(Setup, Run)> = Vec::new();
    for round in 1..=3 {
        for setup in setups {
            let r = run(setup, seconds, clients);
            eprintln!(
                "round {round} {:<26} {:>9.0} commits/s  lag p50/p99/max {}  probes {} stale {}",
                setup.name(),
                r.commits_per_sec,
                r.lag.map_or("-".into(), |(p50, p99, max)| format!("{} / {} / {}", ms(p50), ms(p99), ms(max))),
                r.probes,
                r.stale
            );
            runs.push((setup, r));
        }
    }
    println!("{clients} clients, {seconds} s per run, 3 runs per setup (medians)\n");
    println!("| setup | commits/s | vs sync off | lag p50 | lag p99 | lag max | reads right after a commit | stale |");
    println!("|---|---|---|---|---|---|---|---|");
    let off = median(runs.iter().filter(|(s, _)| *s == Setup::Off).map(|(_, r)| r.commits_per_sec).collect());
    for setup in setups {
        let of: Vec<&Run> = runs.iter().filter(|(s, _)| *s == setup).map(|(_, r)| r).collect();
        let rate = median(of.iter().map(|r| r.commits_per_sec).collect());
        let lag = |i: usize| {
            let v: Vec<Duration> = of.iter().filter_map(|r| r.lag).map(|l| [l.0, l.1, l.2][i]).collect();
            if v.is_empty() { "-".to_string() } else { ms(median(v)) }
        };
        println!(
            "| {} | {rate:.0} | {:.2} | {} | {} | {} | {} | {} |",
            setup.name(),
            rate / off,
            lag(0),
            lag(1),
            lag(2),
            of.iter().map(|r| r.probes).sum::<u64>(),
            of.iter().map(|r| r.stale).sum::<u64>()
        );
    }
}
