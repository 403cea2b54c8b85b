//! The row store against SQLite (rusqlite, prepared statements), same
//! operations, same run: point get, single-row update transaction, insert,
//! a 10-operation transaction, a 100-row range scan. 100k rows of
//! (id BIGINT PRIMARY KEY, balance BIGINT, name TEXT); durability off for
//! OmenDB, and SQLite in memory or in WAL mode with synchronous=OFF.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::ops::Bound;

use criterion::{Criterion, criterion_group, criterion_main};
use omen_rowstore::{Value, encode_key};
use omendb_bench_compare::{ROWS, Rng, omen, row, sqlite};
use rusqlite::Connection;

fn sqlite_db(wal_dir: Option<&std::path::Path>) -> Connection {
    static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let path = wal_dir.map(|dir| dir.join(format!("bench-{}.db", FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed))));
    sqlite(path.as_deref())
}

fn benches(c: &mut Criterion) {
    let (store, t) = omen();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut g = c.benchmark_group("point_get");
    g.bench_function("omen_rowstore", |b| {
        b.iter(|| {
            let txn = store.begin().unwrap();
            black_box(txn.get(t, &encode_key(&[Value::Int64(rng.key())], &[0])).unwrap())
        })
    });
    let dir = std::env::temp_dir().join(format!("omen-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, conn) in [("sqlite_memory", sqlite_db(None)), ("sqlite_wal", sqlite_db(Some(&dir)))] {
        let mut sel = conn.prepare("SELECT id, balance, name FROM accounts WHERE id = ?1").unwrap();
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(sel.query_row([rng.key()], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))).unwrap())
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("update_txn");
    g.bench_function("omen_rowstore", |b| {
        b.iter(|| {
            let id = rng.key();
            let mut txn = store.begin().unwrap();
            txn.update(t, &encode_key(&[Value::Int64(id)], &[0]), row(id, 7)).unwrap();
            txn.commit().unwrap()
        })
    });
    for (name, conn) in [("sqlite_memory", sqlite_db(None)), ("sqlite_wal", sqlite_db(Some(&dir)))] {
        let mut upd = conn.prepare("UPDATE accounts SET balance = ?2 WHERE id = ?1").unwrap();
        g.bench_function(name, |b| b.iter(|| black_box(upd.execute(rusqlite::params![rng.key(), 7]).unwrap())));
    }
    g.finish();

    let mut g = c.benchmark_group("insert_txn");
    let mut next = ROWS + 1;
    g.bench_function("omen_rowstore", |b| {
        b.iter(|| {
            next += 1;
            let mut txn = store.begin().unwrap();
            txn.insert(t, row(next, 1)).unwrap();
            txn.commit().unwrap()
        })
    });
    for (name, conn) in [("sqlite_memory", sqlite_db(None)), ("sqlite_wal", sqlite_db(Some(&dir)))] {
        let mut ins = conn.prepare("INSERT INTO accounts VALUES (?1, 1, 'x')").unwrap();
        let mut next = ROWS + 1;
        g.bench_function(name, |b| {
            b.iter(|| {
                next += 1;
                black_box(ins.execute([next]).unwrap())
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("txn_10_ops");
    g.bench_function("omen_rowstore", |b| {
        b.iter(|| {
            let mut txn = store.begin().unwrap();
            for _ in 0..5 {
                let id = rng.key();
                let k = encode_key(&[Value::Int64(id)], &[0]);
                black_box(txn.get(t, &k).unwrap());
                txn.update(t, &k, row(id, 3)).unwrap();
            }
            txn.commit().unwrap()
        })
    });
    for (name, conn) in [("sqlite_memory", sqlite_db(None)), ("sqlite_wal", sqlite_db(Some(&dir)))] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let tx = conn.unchecked_transaction().unwrap();
                {
                    let mut sel = tx.prepare_cached("SELECT balance FROM accounts WHERE id = ?1").unwrap();
                    let mut upd = tx.prepare_cached("UPDATE accounts SET balance = ?2 WHERE id = ?1").unwrap();
                    for _ in 0..5 {
                        let id = rng.key();
                        black_box(sel.query_row([id], |r| r.get::<_, i64>(0)).unwrap());
                        upd.execute(rusqlite::params![id, 3]).unwrap();
                    }
                }
                tx.commit().unwrap()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("range_scan_100");
    g.bench_function("omen_rowstore", |b| {
        b.iter(|| {
            let lo = encode_key(&[Value::Int64(rng.key().min(ROWS - 100))], &[0]);
            let txn = store.begin().unwrap();
            black_box(txn.scan_limit(t, Bound::Included(&lo), Bound::Unbounded, 100).unwrap().len())
        })
    });
    for (name, conn) in [("sqlite_memory", sqlite_db(None)), ("sqlite_wal", sqlite_db(Some(&dir)))] {
        let mut sel = conn.prepare("SELECT id, balance, name FROM accounts WHERE id >= ?1 ORDER BY id LIMIT 100").unwrap();
        g.bench_function(name, |b| {
            b.iter(|| {
                let rows = sel.query_map([rng.key().min(ROWS - 100)], |r| r.get::<_, i64>(0)).unwrap();
                black_box(rows.count())
            })
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = compare;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2));
    targets = benches
}
criterion_main!(compare);
