//! TPC-H data for the test (`tests/omendb/tpch.rs`) and the benchmark
//! (`benches/tpch.rs`): generated once by `scripts/tpch-data.sh`, loaded
//! into an OmenDB database through `Database::insert_batches`.

use std::path::{Path, PathBuf};
use std::process::Command;

use omendb::arrow::csv::ReaderBuilder;
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
        let batches: Vec<_> = reader.collect::<Result<_, _>>().expect("csv parses");
        db.insert_batches(table, &batches).expect("load");
    }
}

/// The text of query `n` (1..=22).
pub(crate) fn query(n: usize) -> String {
    std::fs::read_to_string(root().join(format!("tests/tpch/queries/q{n}.sql"))).expect("query file")
}
