//! Baseline of the facade's SQL path, in memory (no fsync): point SELECT,
//! single-row INSERT and UPDATE by primary key in autocommit, and a SUM
//! over 100k rows. Run with `cargo bench --bench sql`.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use omendb::{Database, params};

const ROWS: i64 = 100_000;

fn setup() -> Database {
    let db = Database::open_in_memory().unwrap();
    db.execute("CREATE TABLE kv (k BIGINT PRIMARY KEY, v BIGINT NOT NULL, pad TEXT)", params![]).unwrap();
    // Table-function arguments are planned, not bound: the count is inlined.
    db.execute(&format!("INSERT INTO kv SELECT value, value % 1000, 'padding' FROM generate_series(1, {ROWS})"), params![]).unwrap();
    db
}

fn sql(c: &mut Criterion) {
    let db = setup();
    let mut next = 0x2545_F491_4F6C_DD1Du64;
    let mut key = move || {
        next ^= next << 13;
        next ^= next >> 7;
        next ^= next << 17;
        (next % ROWS as u64) as i64 + 1
    };
    c.bench_function("point_select_by_pk", |b| b.iter(|| db.query("SELECT v FROM kv WHERE k = $1", params![key()]).unwrap()));
    c.bench_function("update_by_pk_autocommit", |b| b.iter(|| db.execute("UPDATE kv SET v = v + 1 WHERE k = $1", params![key()]).unwrap()));
    let mut id = ROWS;
    c.bench_function("insert_one_row_autocommit", |b| {
        b.iter(|| {
            id += 1;
            db.execute("INSERT INTO kv VALUES ($1, 1, 'x')", params![id]).unwrap()
        })
    });
    c.bench_function("sum_over_100k_rows", |b| b.iter(|| db.query("SELECT sum(v) FROM kv", params![]).unwrap()));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(5));
    targets = sql
}
criterion_main!(benches);
