//! The memory budget bounds query execution: a sort or aggregation larger
//! than the budget spills or fails with a clear error, never takes the
//! process down, and the database keeps working.

use omendb::{Database, Error, Options, params};

#[test]
fn queries_past_the_memory_budget_spill_or_fail_cleanly() {
    // The smallest budget; the table is about 40 MB in Arrow.
    let db = Database::open_in_memory_with(Options::default().with_memory_budget(16 << 20)).unwrap();
    db.execute("CREATE TABLE big (k BIGINT PRIMARY KEY, pad TEXT)", params![]).unwrap();
    db.execute("INSERT INTO big SELECT value, repeat(md5(CAST(value AS TEXT)), 4) FROM generate_series(1, 300000)", params![]).unwrap();
    let heavy = [
        ("SELECT k, pad FROM big ORDER BY pad DESC", 300_000),
        ("SELECT pad, count(*) FROM big GROUP BY pad", 300_000),
        ("SELECT a.k FROM big a JOIN big b ON a.pad = b.pad", 300_000),
    ];
    let mut refused = 0;
    for (sql, rows) in heavy {
        match db.query(sql, params![]) {
            Ok(batches) => assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), rows, "{sql}"),
            Err(Error::Execution(msg)) => {
                assert!(msg.contains("memory budget exceeded"), "{sql}: {msg}");
                refused += 1;
            }
            Err(e) => panic!("{sql}: {e}"),
        }
    }
    // 16 MiB cannot hold a 40 MB hash join build side: at least that fails.
    assert!(refused >= 1, "no query hit a 16 MiB budget");
    assert_eq!(db.execute("SELECT * FROM big WHERE k = 7", params![]).unwrap(), 1);
}

#[test]
fn a_budget_too_small_to_merge_a_sort_is_refused_at_open() {
    let err = Database::open_in_memory_with(Options::default().with_memory_budget(256 << 10)).unwrap_err();
    assert!(matches!(&err, Error::Unsupported(m) if m.contains("16 MiB")), "{err}");
    assert!(Database::open_in_memory_with(Options::default().with_memory_budget(0)).is_ok());
}
