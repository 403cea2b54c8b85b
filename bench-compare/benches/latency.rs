//! Per-operation latency (p50, p99) and throughput on 1 and 2 threads: the
//! row store against SQLite doing the same point reads and single-row update
//! transactions on 100k rows, in the same run. Each thread times every
//! operation (an `Instant` pair adds about 25 ns to each figure, for both
//! sides alike).
//!
//!   cd bench-compare && cargo bench --bench latency
//!
//! SQLite gets one connection per thread: in memory only on one thread (a
//! private in-memory database cannot be shared by connections without
//! shared-cache table locks), in WAL mode (`synchronous=OFF`) on both.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use omen_rowstore::{Error, Value, encode_key};
use omendb_bench_compare::{Rng, omen, row, sqlite};
use rusqlite::Connection;

const OPS_PER_THREAD: usize = 300_000;

/// Another connection to the WAL-mode file `sqlite` created.
fn sqlite_conn(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.execute_batch("PRAGMA synchronous=OFF;").unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

struct Figures {
    p50: Duration,
    p99: Duration,
    per_sec: f64,
    retries: usize,
}

/// Runs `op` `OPS_PER_THREAD` times on each of `threads` threads; `op` gets
/// the thread's RNG state and returns the number of retries it needed.
fn measure<S: Send>(threads: usize, setup: impl Fn(usize) -> S + Sync, op: impl Fn(&mut S, &mut Rng) -> usize + Sync) -> Figures {
    let barrier = std::sync::Barrier::new(threads);
    let (mut all, wall, retries) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (barrier, setup, op) = (&barrier, &setup, &op);
                s.spawn(move || {
                    let mut state = setup(i);
                    let mut rng = Rng(0x2545_F491_4F6C_DD1D_u64.wrapping_add(i as u64 * 0x9E37_79B9));
                    let mut lat = Vec::with_capacity(OPS_PER_THREAD);
                    let mut retries = 0;
                    for _ in 0..OPS_PER_THREAD / 10 {
                        op(&mut state, &mut rng); // warm-up
                    }
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..OPS_PER_THREAD {
                        let t = Instant::now();
                        retries += op(&mut state, &mut rng);
                        lat.push(t.elapsed());
                    }
                    (lat, start.elapsed(), retries)
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut wall = Duration::ZERO;
        let mut retries = 0;
        for h in handles {
            let (lat, w, r) = h.join().unwrap();
            all.extend(lat);
            wall = wall.max(w);
            retries += r;
        }
        (all, wall, retries)
    });
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Figures { p50: pct(0.50), p99: pct(0.99), per_sec: (threads * OPS_PER_THREAD) as f64 / wall.as_secs_f64(), retries }
}

fn main() {
    // `cargo bench` passes --bench; nothing else is accepted.
    let (store, t) = omen();
    let dir = std::env::temp_dir().join(format!("omen-latency-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wal_path = dir.join("bench.db");
    drop(sqlite(Some(&wal_path)));

    let omen_get = |_: &mut (), rng: &mut Rng| {
        let txn = store.begin().unwrap();
        black_box(txn.get(t, &encode_key(&[Value::Int64(rng.key())], &[0])).unwrap());
        0
    };
    let omen_update = |_: &mut (), rng: &mut Rng| {
        let mut retries = 0;
        loop {
            let id = rng.key();
            let mut txn = store.begin().unwrap();
            match txn.update(t, &encode_key(&[Value::Int64(id)], &[0]), row(id, 7)) {
                Ok(_) => {
                    txn.commit().unwrap();
                    return retries;
                }
                Err(Error::SerializationConflict { .. }) => retries += 1,
                Err(e) => panic!("{e}"),
            }
        }
    };
    let sqlite_get = |c: &mut Connection, rng: &mut Rng| {
        let mut sel = c.prepare_cached("SELECT id, balance, name FROM accounts WHERE id = ?1").unwrap();
        black_box(sel.query_row([rng.key()], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))).unwrap());
        0
    };
    let sqlite_update = |c: &mut Connection, rng: &mut Rng| {
        let mut upd = c.prepare_cached("UPDATE accounts SET balance = ?2 WHERE id = ?1").unwrap();
        black_box(upd.execute(rusqlite::params![rng.key(), 7]).unwrap());
        0
    };

    println!("| operation | system | threads | p50 | p99 | ops/s (all threads) | retries |");
    println!("|---|---|---|---|---|---|---|");
    let report = |op: &str, system: &str, threads: usize, f: Figures| {
        println!(
            "| {op} | {system} | {threads} | {:.0} ns | {:.0} ns | {:.2} M | {} |",
            f.p50.as_nanos(),
            f.p99.as_nanos(),
            f.per_sec / 1e6,
            f.retries
        );
    };
    for threads in [1, 2] {
        report("point get", "omen-rowstore", threads, measure(threads, |_| (), omen_get));
        if threads == 1 {
            report("point get", "SQLite memory", 1, measure(1, |_| sqlite(None), sqlite_get));
        }
        report("point get", "SQLite WAL", threads, measure(threads, |_| sqlite_conn(&wal_path), sqlite_get));
    }
    for threads in [1, 2] {
        report("update txn", "omen-rowstore", threads, measure(threads, |_| (), omen_update));
        if threads == 1 {
            report("update txn", "SQLite memory", 1, measure(1, |_| sqlite(None), sqlite_update));
        }
        report("update txn", "SQLite WAL", threads, measure(threads, |_| sqlite_conn(&wal_path), sqlite_update));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
