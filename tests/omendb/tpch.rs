//! The 22 TPC-H queries at scale factor 0.1 against DuckDB's answers on the
//! same data. `scripts/tpch-data.sh` generates the data (tpchgen-cli) and
//! the answers (DuckDB) once, under `~/.cache/omendb-tpch` (or
//! `$OMENDB_TPCH_DIR`); `OMENDB_TPCH_SF` picks another scale factor.
//!
//! Cells compare as text, or as numbers within a tolerance where both
//! parse as numbers: DuckDB averages decimals as doubles, DataFusion as
//! decimals of scale 6.

use omendb::{Database, params};

use crate::tpch_common as common;

#[test]
fn tpch_queries_match_duckdb() {
    let sf = std::env::var("OMENDB_TPCH_SF").unwrap_or_else(|_| "0.1".into());
    let dir = common::data(&sf);
    let db = Database::open_in_memory().unwrap();
    common::load(&db, &dir);
    let failures = disagreements(&db, &dir);
    assert!(failures.is_empty(), "{} of 22 TPC-H queries disagree with DuckDB at SF {sf}:\n{}", failures.len(), failures.join("\n"));
}

/// The same 22 queries with the column data on disk and a column budget
/// of a few segments: columns are evicted and read back as the queries go.
#[test]
fn tpch_queries_match_duckdb_under_a_column_budget() {
    let sf = std::env::var("OMENDB_TPCH_SF").unwrap_or_else(|_| "0.1".into());
    let dir = common::data(&sf);
    let data = tempfile::tempdir().unwrap();
    let options = omendb::Options::default().with_durability(omendb::Durability::Off);
    let db = Database::open_with(data.path(), options.clone()).unwrap();
    common::load(&db, &dir);
    // Closing writes the column store's files.
    db.close().unwrap();
    // Keys and timestamps of SF 0.1 take about 35 MiB; the rest holds a few
    // of lineitem's segments (about 7 MiB each, all columns decoded).
    let budget = 64 << 20;
    let db = Database::open_with(data.path(), options.with_column_memory_budget(budget)).unwrap();
    let failures = disagreements(&db, &dir);
    assert!(failures.is_empty(), "{} of 22 TPC-H queries disagree with DuckDB under a budget:\n{}", failures.len(), failures.join("\n"));
    let m = db.metrics().columns;
    assert!(m.evictions > 0 && m.misses > 0, "{m:?}");
    assert!(m.hot_bytes + m.metadata_bytes + m.unpersisted_bytes <= budget, "{m:?}");
}

/// The queries whose answers differ from DuckDB's, with the first
/// difference of each.
fn disagreements(db: &Database, dir: &std::path::Path) -> Vec<String> {
    (1..=22)
        .filter_map(|n| match db.query(&common::query(n), params![]) {
            Ok(batches) => common::disagreement(dir, n, &common::cells(&batches)),
            Err(e) => Some(format!("q{n}: {e}")),
        })
        .collect()
}
