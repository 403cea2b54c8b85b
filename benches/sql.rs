//! The facade's SQL path, in memory (no fsync), 100k rows: a prepared
//! primary-key point SELECT on the fast path against the same statement
//! planned through DataFusion (fast path off), point UPDATE and INSERT in
//! autocommit, a SUM over every row, and a select of ~100 rows by a
//! non-key value with and without a secondary index. Run with
//! `cargo bench --bench sql`.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use omendb::{Database, Options, params};

const ROWS: i64 = 100_000;

fn setup(fast_path: bool) -> Database {
    let db = Database::open_in_memory_with(Options::default().with_fast_path(fast_path)).unwrap();
    db.execute("CREATE TABLE kv (k BIGINT PRIMARY KEY, v BIGINT NOT NULL, pad TEXT)", params![]).unwrap();
    // Table-function arguments are planned, not bound: the count is inlined.
    db.execute(&format!("INSERT INTO kv SELECT value, value % 1000, 'padding' FROM generate_series(1, {ROWS})"), params![]).unwrap();
    db
}

fn keys() -> impl FnMut() -> i64 {
    let mut next = 0x2545_F491_4F6C_DD1Du64;
    move || {
        next ^= next << 13;
        next ^= next >> 7;
        next ^= next << 17;
        (next % ROWS as u64) as i64 + 1
    }
}

fn sql(c: &mut Criterion) {
    let db = setup(true);
    let mut key = keys();
    // First, while the column store holds one version per row: the updates
    // below add versions that only compaction (issue #5) will fold.
    c.bench_function("sum_over_100k_rows", |b| b.iter(|| db.query("SELECT sum(v) FROM kv", params![]).unwrap()));
    const POINT: &str = "SELECT v FROM kv WHERE k = $1";
    let get = db.prepare(POINT).unwrap();
    assert!(get.is_fast_path());
    c.bench_function("point_select/prepared_fast_path", |b| b.iter(|| get.query(params![key()]).unwrap()));
    c.bench_function("point_select/sql_text_cached_plan", |b| b.iter(|| db.query(POINT, params![key()]).unwrap()));
    let update = db.prepare("UPDATE kv SET v = v + 1 WHERE k = $1").unwrap();
    c.bench_function("update_by_pk/prepared_fast_path", |b| b.iter(|| update.execute(params![key()]).unwrap()));
    let insert = db.prepare("INSERT INTO kv VALUES ($1, 1, 'x')").unwrap();
    let mut id = ROWS;
    c.bench_function("insert_one_row/prepared_fast_path", |b| {
        b.iter(|| {
            id += 1;
            insert.execute(params![id]).unwrap()
        })
    });

    drop(db);

    // On a fresh table (the updates above left versions the column store
    // keeps): about 100 rows share each value of v. A full column-store
    // scan, then the same prepared statement once an index on v exists,
    // then the UPDATE above, which now also moves the row's index entry.
    let db = setup(true);
    let by_value = db.prepare("SELECT k FROM kv WHERE v = $1").unwrap();
    c.bench_function("select_by_value/full_scan", |b| b.iter(|| by_value.query(params![key() % 1000]).unwrap()));
    db.execute("CREATE INDEX kv_v ON kv (v)", params![]).unwrap();
    c.bench_function("select_by_value/secondary_index", |b| b.iter(|| by_value.query(params![key() % 1000]).unwrap()));
    let update = db.prepare("UPDATE kv SET v = v + 1 WHERE k = $1").unwrap();
    c.bench_function("update_by_pk/prepared_fast_path_indexed_column", |b| b.iter(|| update.execute(params![key()]).unwrap()));
    drop(db);

    // The same statements planned through DataFusion on every run.
    let planned = setup(false);
    let get = planned.prepare(POINT).unwrap();
    assert!(!get.is_fast_path());
    c.bench_function("point_select/planned_by_datafusion", |b| b.iter(|| get.query(params![key()]).unwrap()));
    let update = planned.prepare("UPDATE kv SET v = v + 1 WHERE k = $1").unwrap();
    c.bench_function("update_by_pk/planned_by_datafusion", |b| b.iter(|| update.execute(params![key()]).unwrap()));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(5));
    targets = sql
}
criterion_main!(benches);
