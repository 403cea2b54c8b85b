//! TPC-H, all 22 queries, OmenDB against DuckDB on the same machine, data
//! and queries, in the same run: `cargo bench --bench tpch` (scale factor
//! 1; `OMENDB_TPCH_SF=0.1` for a quick run, `OMENDB_TPCH_RUNS` timed runs
//! per query, default 5). OmenDB reads tables loaded through
//! `Database::insert_batches`; DuckDB its native tables, loaded from the
//! same CSV (`scripts/tpch_duckdb_bench.py`). Prints per-query medians, the
//! ratio, and the geometric means. PostgreSQL is not in this run yet.
#![allow(missing_docs, clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use omendb::{Database, params};

#[path = "../tests/tpch/common.rs"]
mod common;

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn geomean(xs: &[f64]) -> f64 {
    (xs.iter().map(|x| x.ln()).sum::<f64>() / xs.len() as f64).exp()
}

fn main() {
    let sf = std::env::var("OMENDB_TPCH_SF").unwrap_or_else(|_| "1".into());
    let runs: usize = std::env::var("OMENDB_TPCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    let dir = common::data(&sf);

    let db = Database::open_in_memory().unwrap();
    let start = Instant::now();
    common::load(&db, &dir);
    // The first query waits for sync to bring the column store up to date.
    db.query("SELECT count(*) FROM lineitem", params![]).unwrap();
    eprintln!("OmenDB: loaded SF {sf} in {:.1} s", start.elapsed().as_secs_f64());
    let mut ours = Vec::with_capacity(22);
    for n in 1..=22 {
        let sql = common::query(n);
        db.query(&sql, params![]).unwrap();
        let times = (0..runs)
            .map(|_| {
                let t = Instant::now();
                db.query(&sql, params![]).unwrap();
                t.elapsed()
            })
            .collect();
        ours.push(median(times).as_secs_f64());
    }

    let root = common::root();
    let python = venv_python(&dir);
    let out = Command::new(python)
        .arg(root.join("scripts/tpch_duckdb_bench.py"))
        .arg(dir.join("data"))
        .arg(root.join("tests/tpch/queries"))
        .arg(root.join("tests/tpch/schema.sql"))
        .arg(runs.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "DuckDB bench failed: {}", String::from_utf8_lossy(&out.stderr));
    let duck: Vec<f64> = String::from_utf8(out.stdout).unwrap().lines().map(|l| l.split('\t').nth(1).unwrap().parse().unwrap()).collect();
    assert_eq!(duck.len(), 22);

    println!("TPC-H SF {sf}, median of {runs} runs after one warm-up, seconds");
    println!("| query | OmenDB | DuckDB | OmenDB / DuckDB |");
    println!("|---|---:|---:|---:|");
    for n in 0..22 {
        println!("| q{} | {:.4} | {:.4} | {:.2}x |", n + 1, ours[n], duck[n], ours[n] / duck[n]);
    }
    let (g, d) = (geomean(&ours), geomean(&duck));
    println!("| geomean | {g:.4} | {d:.4} | {:.2}x |", g / d);
}

/// The virtualenv `scripts/tpch-data.sh` made (it holds duckdb).
fn venv_python(sf_dir: &std::path::Path) -> std::path::PathBuf {
    sf_dir.parent().map(|root| root.join("venv/bin/python")).unwrap()
}
