//! The 22 TPC-H queries at scale factor 0.1 against DuckDB's answers on the
//! same data. `scripts/tpch-data.sh` generates the data (tpchgen-cli) and
//! the answers (DuckDB) once, under `~/.cache/omendb-tpch` (or
//! `$OMENDB_TPCH_DIR`); `OMENDB_TPCH_SF` picks another scale factor.
//!
//! Cells compare as text, or as numbers within a tolerance where both
//! parse as numbers: DuckDB averages decimals as doubles, DataFusion as
//! decimals of scale 6.

use std::path::PathBuf;
use std::process::Command;

use omendb::arrow::csv::ReaderBuilder;
use omendb::{Database, params};

const TABLES: [&str; 8] = ["nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem"];

fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from)
}

/// Generates (once) the data and answers; returns their directory.
fn data(sf: &str) -> PathBuf {
    let script = manifest_dir().join("scripts/tpch-data.sh");
    let out = Command::new("bash").arg(&script).arg(sf).output().expect("run scripts/tpch-data.sh");
    assert!(out.status.success(), "{} failed:\n{}", script.display(), String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).expect("a path").trim())
}

/// Loads the schema and every table's CSV.
fn load(db: &Database, dir: &std::path::Path) {
    let schema = std::fs::read_to_string(manifest_dir().join("tests/tpch/schema.sql")).unwrap();
    for statement in schema.split(';') {
        let sql: Vec<&str> = statement.lines().filter(|l| !l.trim_start().starts_with("--")).collect();
        let sql = sql.join("\n");
        if !sql.trim().is_empty() {
            db.execute(&sql, params![]).unwrap();
        }
    }
    for table in TABLES {
        let schema = db.query_iter(&format!("SELECT * FROM {table} LIMIT 0"), params![]).unwrap().schema();
        let file = std::fs::File::open(dir.join(format!("data/{table}.csv"))).unwrap();
        let reader = ReaderBuilder::new(schema).with_header(true).with_batch_size(1 << 16).build(file).unwrap();
        let batches: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
        db.insert_batches(table, &batches).unwrap();
    }
}

/// Whether two cells agree: equal text, or numbers equal within rounding.
fn same(ours: &str, theirs: &str) -> bool {
    if ours == theirs {
        return true;
    }
    match (ours.parse::<f64>(), theirs.parse::<f64>()) {
        (Ok(a), Ok(b)) => (a - b).abs() <= 1e-5 + 1e-9 * a.abs().max(b.abs()),
        _ => false,
    }
}

#[test]
fn tpch_queries_match_duckdb() {
    let sf = std::env::var("OMENDB_TPCH_SF").unwrap_or_else(|_| "0.1".into());
    let dir = data(&sf);
    let db = Database::open_in_memory().unwrap();
    load(&db, &dir);
    let mut failures = Vec::new();
    for n in 1..=22 {
        let sql = std::fs::read_to_string(manifest_dir().join(format!("tests/tpch/queries/q{n}.sql"))).unwrap();
        let expected: Vec<Vec<String>> = std::fs::read_to_string(dir.join(format!("answers/q{n}.tsv")))
            .unwrap()
            .lines()
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect();
        let got = match db.query(&sql, params![]) {
            Ok(batches) => crate::rows(&batches),
            Err(e) => {
                failures.push(format!("q{n}: {e}"));
                continue;
            }
        };
        let agree = got.len() == expected.len()
            && got.iter().zip(&expected).all(|(g, e)| g.len() == e.len() && g.iter().zip(e).all(|(a, b)| same(a, b)));
        if !agree {
            let first = got.iter().zip(&expected).position(|(g, e)| g != e).unwrap_or(got.len().min(expected.len()));
            failures.push(format!(
                "q{n}: {} rows, DuckDB {}; first difference at row {first}: ours {:?}, DuckDB {:?}",
                got.len(),
                expected.len(),
                got.get(first),
                expected.get(first)
            ));
        }
    }
    assert!(failures.is_empty(), "{} of 22 TPC-H queries disagree with DuckDB at SF {sf}:\n{}", failures.len(), failures.join("\n"));
}
