//! The memory budget, and the per-query limit within it, bound query
//! execution: a sort or aggregation larger than either spills or fails with
//! a clear error, never takes the process down, and the database keeps
//! working.

use omendb::{Database, Error, Options, params};

#[test]
fn queries_past_the_memory_budget_spill_or_fail_cleanly() {
    // The smallest budget; the table is about 40 MB in Arrow.
    let db = Database::open_in_memory_with(Options::default().with_memory_budget(16 << 20)).unwrap();
    let refusals = heavy_queries(&db);
    // 16 MiB cannot hold a 40 MB hash join build side: at least that fails.
    assert!(!refusals.is_empty(), "no query hit a 16 MiB budget");
}

/// The per-query limit binds below a budget that would hold the query.
#[test]
fn a_query_past_its_own_limit_spills_or_fails_under_a_larger_budget() {
    let options = Options::default().with_memory_budget(1 << 30).with_query_memory_limit(16 << 20);
    let db = Database::open_in_memory_with(options).unwrap();
    let refusals = heavy_queries(&db);
    assert!(!refusals.is_empty(), "no query hit a 16 MiB per-query limit");
    assert!(refusals.iter().all(|m| m.contains("query_memory_limit")), "{refusals:?}");
    let too_small = Database::open_in_memory_with(Options::default().with_query_memory_limit(1 << 20)).unwrap_err();
    assert!(matches!(&too_small, Error::Unsupported(m) if m.contains("query memory limit")), "{too_small}");
}

/// Runs a sort, an aggregation and a join over 40 MB: each returns all its
/// rows or fails with a memory error (their messages), and the database
/// keeps working.
fn heavy_queries(db: &Database) -> Vec<String> {
    db.execute("CREATE TABLE big (k BIGINT PRIMARY KEY, pad TEXT)", params![]).unwrap();
    db.execute("INSERT INTO big SELECT value, repeat(md5(CAST(value AS TEXT)), 4) FROM generate_series(1, 300000)", params![]).unwrap();
    let heavy = [
        ("SELECT k, pad FROM big ORDER BY pad DESC", 300_000),
        ("SELECT pad, count(*) FROM big GROUP BY pad", 300_000),
        ("SELECT a.k FROM big a JOIN big b ON a.pad = b.pad", 300_000),
    ];
    let mut refusals = Vec::new();
    for (sql, rows) in heavy {
        match db.query(sql, params![]) {
            Ok(batches) => assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), rows, "{sql}"),
            Err(e @ Error::ResourcesExhausted(_)) => {
                let msg = e.to_string();
                assert!(msg.contains("memory budget exceeded"), "{sql}: {msg}");
                refusals.push(msg);
            }
            Err(e) => panic!("{sql}: {e}"),
        }
    }
    assert_eq!(db.execute("SELECT * FROM big WHERE k = 7", params![]).unwrap(), 1);
    refusals
}

#[test]
fn a_budget_too_small_to_merge_a_sort_is_refused_at_open() {
    let err = Database::open_in_memory_with(Options::default().with_memory_budget(256 << 10)).unwrap_err();
    assert!(matches!(&err, Error::Unsupported(m) if m.contains("16 MiB")), "{err}");
    assert!(Database::open_in_memory_with(Options::default().with_memory_budget(0)).is_ok());
}
