//! The memory budget bounds query execution: a sort or aggregation larger
//! than the budget spills or fails with a clear error, never takes the
//! process down, and the database keeps working.

use omendb::{Database, Error, Options, params};

#[test]
fn queries_past_the_memory_budget_spill_or_fail_cleanly() {
    let db = Database::open_in_memory_with(Options::default().with_memory_budget(256 << 10)).unwrap();
    db.execute("CREATE TABLE big (k BIGINT PRIMARY KEY, pad TEXT)", params![]).unwrap();
    db.execute("INSERT INTO big SELECT value, repeat(md5(CAST(value AS TEXT)), 4) FROM generate_series(1, 100000)", params![]).unwrap();
    let heavy = [
        ("SELECT k, pad FROM big ORDER BY pad DESC", 100_000),
        ("SELECT pad, count(*) FROM big GROUP BY pad", 100_000),
        ("SELECT a.k FROM big a JOIN big b ON a.pad = b.pad", 100_000),
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
    // 256 KiB cannot hold a 100k-row hash join build side: at least that fails.
    assert!(refused >= 1, "no query hit a 256 KiB budget");
    assert_eq!(db.execute("SELECT * FROM big WHERE k = 7", params![]).unwrap(), 1);
}
