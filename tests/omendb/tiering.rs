//! Column data larger than the column memory budget: commits, change
//! feeds and fresh reads go on while segments' columns are evicted and
//! read back from their files.

use std::time::Duration;

use omendb::arrow::array::AsArray;
use omendb::arrow::datatypes::Int64Type;
use omendb::{Database, Durability, Error, Options, params};

const ROWS: i64 = 200_000;

fn sums(db: &Database) -> (i64, i64, i64) {
    let b = db.query("SELECT count(*), sum(a), sum(b) FROM wide", params![]).unwrap();
    let col = |i: usize| b[0].column(i).as_primitive::<Int64Type>().value(0);
    (col(0), col(1), col(2))
}

#[test]
fn commits_feeds_and_fresh_reads_work_while_columns_are_evicted() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default().with_durability(Durability::Off);
    let db = Database::open_with(dir.path(), options.clone()).unwrap();
    db.execute("CREATE TABLE wide (id BIGINT PRIMARY KEY, a BIGINT, b BIGINT, c DOUBLE PRECISION, d DOUBLE PRECISION, e TEXT)", params![])
        .unwrap();
    let fill = format!(
        "INSERT INTO wide SELECT value, value AS a, 2 * value, value * 0.5, value * 0.25, 'row ' || value FROM generate_series(1, {ROWS})"
    );
    db.execute(&fill, params![]).unwrap();
    // Closing writes the column files; reopened under a budget smaller
    // than the columns (about 9 MiB of them, 6 MiB of keys and timestamps).
    db.close().unwrap();
    let budget = 8 << 20;
    let db = Database::open_with(dir.path(), options.with_column_memory_budget(budget)).unwrap();
    let n = ROWS;
    let mut expect = (n, n * (n + 1) / 2, n * (n + 1));
    assert_eq!(sums(&db), expect);
    let mut feed = db.changes("wide").unwrap();
    for round in 0..5i64 {
        // A commit is in the very next query, evicted segments or not.
        let id = 1 + round * 37_000;
        db.execute("UPDATE wide SET a = a + 1000, b = b + 1 WHERE id = $1", params![id]).unwrap();
        expect = (expect.0, expect.1 + 1000, expect.2 + 1);
        assert_eq!(sums(&db), expect, "round {round}");
        let ones = db.query("SELECT count(*) FROM wide WHERE e LIKE 'row 1%'", params![]).unwrap();
        assert_eq!(ones[0].column(0).as_primitive::<Int64Type>().value(0), 111_111);
        // The feed hands out the commit.
        let batch = feed.next_batch(Duration::from_secs(30)).unwrap().expect("the update's change");
        assert!(batch.num_rows() >= 1);
    }
    let m = db.metrics().columns;
    assert!(m.evictions > 0 && m.misses > 0 && m.bytes_read > 0, "{m:?}");
    assert!(m.hot_bytes + m.metadata_bytes + m.unpersisted_bytes <= budget, "{m:?}");
    db.close().unwrap();
    // Everything survives a reopen under the budget.
    let db = Database::open_with(dir.path(), Options::default().with_column_memory_budget(budget)).unwrap();
    assert_eq!(sums(&db), expect);
}

#[test]
fn column_budgets_too_small_or_without_a_directory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let small = Options::default().with_column_memory_budget(1 << 20);
    assert!(matches!(Database::open_with(dir.path(), small), Err(Error::Unsupported(_))));
    let in_memory = Options::default().with_column_memory_budget(64 << 20);
    assert!(matches!(Database::open_in_memory_with(in_memory), Err(Error::Unsupported(_))));
    let db = Database::open_with(dir.path(), Options::default()).unwrap();
    assert!(db.metrics().columns.budget.is_none());
}
