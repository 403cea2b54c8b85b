//! TPC-H data for the tests (`tests/omendb/tpch.rs`) and the benchmarks
//! (`benches/tpch.rs`, `benches/tpch_tiering.rs`): generated once by
//! `scripts/tpch-data.sh`, loaded into an OmenDB database through
//! `Database::insert_batches`; answers checked against DuckDB's.

use std::path::{Path, PathBuf};
use std::process::Command;

use omendb::arrow::array::RecordBatch;
use omendb::arrow::csv::ReaderBuilder;
use omendb::arrow::util::display::{ArrayFormatter, FormatOptions};
use omendb::{Database, params};

const TABLES: [&str; 8] = ["nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem"];

/// The repository root, read when the binary runs (a binary built in one
/// checkout may run from another).
pub(crate) fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from)
}

/// Generates (once) the data and DuckDB's answers at scale factor `sf`;
/// returns their directory.
pub(crate) fn data(sf: &str) -> PathBuf {
    let script = root().join("scripts/tpch-data.sh");
    let out = Command::new("bash").arg(&script).arg(sf).output().expect("run scripts/tpch-data.sh");
    assert!(out.status.success(), "{} failed:\n{}", script.display(), String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).expect("a path").trim())
}

/// Creates the schema and loads every table's CSV from `dir/data`.
pub(crate) fn load(db: &Database, dir: &Path) {
    let schema = std::fs::read_to_string(root().join("tests/tpch/schema.sql")).expect("schema.sql");
    for statement in schema.split(';') {
        let sql: Vec<&str> = statement.lines().filter(|l| !l.trim_start().starts_with("--")).collect();
        let sql = sql.join("\n");
        if !sql.trim().is_empty() {
            db.execute(&sql, params![]).expect("create table");
        }
    }
    for table in TABLES {
        let schema = db.query_iter(&format!("SELECT * FROM {table} LIMIT 0"), params![]).expect("table schema").schema();
        let file = std::fs::File::open(dir.join(format!("data/{table}.csv"))).expect("table csv");
        let reader = ReaderBuilder::new(schema).with_header(true).with_batch_size(1 << 16).build(file).expect("csv reader");
        // A transaction per batch of 64Ki rows: a persistent database logs
        // each transaction as one record, of at most 1 GiB (lineitem at
        // SF 1 is more).
        for batch in reader {
            db.insert_batches(table, &[batch.expect("csv parses")]).expect("load");
        }
    }
}

/// Every row of every batch as text cells (NULL as "NULL").
pub(crate) fn cells(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let fmts: Vec<_> = b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).expect("a formatter")).collect();
        for r in 0..b.num_rows() {
            out.push(fmts.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    out
}

/// Whether two cells agree: equal text, or numbers equal within rounding
/// (DuckDB averages decimals as doubles, DataFusion as decimals of scale 6).
fn same(ours: &str, theirs: &str) -> bool {
    if ours == theirs {
        return true;
    }
    match (ours.parse::<f64>(), theirs.parse::<f64>()) {
        (Ok(a), Ok(b)) => (a - b).abs() <= 1e-5 + 1e-9 * a.abs().max(b.abs()),
        _ => false,
    }
}

/// How query `n`'s answer `got` differs from DuckDB's under `dir`
/// (`answers/qN.tsv`): `None` if it agrees, else its first difference.
pub(crate) fn disagreement(dir: &Path, n: usize, got: &[Vec<String>]) -> Option<String> {
    let expected: Vec<Vec<String>> = std::fs::read_to_string(dir.join(format!("answers/q{n}.tsv")))
        .expect("DuckDB's answer")
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect();
    let agree = got.len() == expected.len()
        && got.iter().zip(&expected).all(|(g, e)| g.len() == e.len() && g.iter().zip(e).all(|(a, b)| same(a, b)));
    if agree {
        return None;
    }
    let first = got.iter().zip(&expected).position(|(g, e)| g != e).unwrap_or(got.len().min(expected.len()));
    Some(format!(
        "q{n}: {} rows, DuckDB {}; first difference at row {first}: ours {:?}, DuckDB {:?}",
        got.len(),
        expected.len(),
        got.get(first),
        expected.get(first)
    ))
}

/// The text of query `n` (1..=22).
pub(crate) fn query(n: usize) -> String {
    std::fs::read_to_string(root().join(format!("tests/tpch/queries/q{n}.sql"))).expect("query file")
}
