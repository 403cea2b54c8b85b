//! TPC-H under a column memory budget against the same queries with every
//! column in memory, in one run: `cargo bench --bench tpch_tiering`
//! (scale factor 1).
//!
//! The data is loaded once into a database directory (checkpointed, its
//! column files written). Each configuration then runs in a process of
//! its own, so its peak resident set (VmHWM) is its own:
//! - all hot: no column budget;
//! - a budget of `OMENDB_TIERING_FRACTION` (default 0.1) of the column
//!   store's bytes in memory after the all-hot run (decoded columns plus
//!   segment metadata);
//! - a budget of the segment metadata (keys, timestamps, zone maps: they
//!   always stay) plus that fraction of the decoded columns;
//! - the same with predictive warming (`Options::predictive_warming`).
//!
//! Every answer is checked against DuckDB's (`scripts/tpch-data.sh`).
//! Prints per-configuration geomeans, hit ratios, bytes and peak RSS.
//!
//! Environment: `OMENDB_TPCH_SF` (default 1), `OMENDB_TPCH_RUNS` (timed
//! runs per query after one warm-up, default 3), `OMENDB_TIERING_FRACTION`,
//! `OMENDB_TIERING_TRACE=FILE` (the first budgeted run records its column
//! accesses there, for `omen-tier`'s simulator).
#![allow(missing_docs, clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use omendb::{Database, Durability, Options, params};

#[path = "../tests/tpch/common.rs"]
mod common;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

/// What one configuration's process reports.
#[derive(Debug, Default)]
struct Report {
    geomean: f64,
    correct: usize,
    hot_bytes: u64,
    metadata_bytes: u64,
    hit_ratio: f64,
    evictions: u64,
    peak_rss: u64,
}

fn main() {
    match std::env::var("OMENDB_TIERING_PHASE") {
        Ok(budget) => run_queries(budget.parse().ok()),
        Err(_) => compare(),
    }
}

fn compare() {
    let sf = env_or("OMENDB_TPCH_SF", "1");
    let fraction: f64 = env_or("OMENDB_TIERING_FRACTION", "0.1").parse().expect("a fraction");
    let dir = common::data(&sf);
    let db_dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let db = Database::open_with(db_dir.path(), Options::default().with_durability(Durability::Off)).unwrap();
    common::load(&db, &dir);
    db.query("SELECT count(*) FROM lineitem", params![]).unwrap();
    db.checkpoint().unwrap();
    // Closing writes the column store's files.
    db.close().unwrap();
    eprintln!("loaded SF {sf} in {:.1} s", start.elapsed().as_secs_f64());

    let hot = child(db_dir.path(), &dir, None, None, false);
    let in_memory = hot.hot_bytes + hot.metadata_bytes;
    let budgets = [(in_memory as f64 * fraction) as u64, hot.metadata_bytes + (hot.hot_bytes as f64 * fraction) as u64]
        .map(|b| b.max(omendb::MIN_COLUMN_BUDGET));
    let trace = std::env::var_os("OMENDB_TIERING_TRACE");
    let mut budgeted: Vec<Report> =
        budgets.iter().enumerate().map(|(i, &b)| child(db_dir.path(), &dir, Some(b), trace.as_ref().filter(|_| i == 0), false)).collect();
    budgeted.push(child(db_dir.path(), &dir, Some(budgets[1]), None, true));

    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!("TPC-H SF {sf}, column budgets against all hot (each in its own process)");
    println!(
        "| configuration | budget (MiB) | correct | geomean (s) | of all hot | hit ratio | evictions | columns in memory (MiB) | metadata (MiB) | peak RSS (MiB) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let line = |name: &str, budget: Option<u64>, r: &Report| {
        println!(
            "| {name} | {} | {}/22 | {:.4} | {:.2}x | {:.3} | {} | {:.0} | {:.0} | {:.0} |",
            budget.map_or("none".to_owned(), |b| format!("{:.0}", mib(b))),
            r.correct,
            r.geomean,
            r.geomean / hot.geomean,
            r.hit_ratio,
            r.evictions,
            mib(r.hot_bytes),
            mib(r.metadata_bytes),
            mib(r.peak_rss),
        );
    };
    line("all hot", None, &hot);
    line(&format!("{fraction} of all bytes"), Some(budgets[0]), &budgeted[0]);
    line(&format!("metadata + {fraction} of columns"), Some(budgets[1]), &budgeted[1]);
    line(&format!("metadata + {fraction} of columns, predictive warming"), Some(budgets[1]), &budgeted[2]);
}

/// Runs the queries in a child process and parses its report.
fn child(
    db_dir: &std::path::Path,
    data: &std::path::Path,
    budget: Option<u64>,
    trace: Option<&std::ffi::OsString>,
    warming: bool,
) -> Report {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env("OMENDB_TIERING_PHASE", budget.map_or("none".to_owned(), |b| b.to_string()))
        .env("OMENDB_TIERING_DB", db_dir)
        .env("OMENDB_TIERING_DATA", data)
        .env_remove("OMENDB_TIERING_TRACE");
    if let Some(path) = trace {
        cmd.env("OMENDB_TIERING_RECORD", path);
    }
    if warming {
        cmd.env("OMENDB_TIERING_WARMING", "1");
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "child failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut r = Report::default();
    for kv in text.lines().filter_map(|l| l.strip_prefix("REPORT ")).flat_map(str::split_whitespace) {
        let (k, v) = kv.split_once('=').unwrap();
        match k {
            "geomean" => r.geomean = v.parse().unwrap(),
            "correct" => r.correct = v.parse().unwrap(),
            "hot_bytes" => r.hot_bytes = v.parse().unwrap(),
            "metadata_bytes" => r.metadata_bytes = v.parse().unwrap(),
            "hit_ratio" => r.hit_ratio = v.parse().unwrap(),
            "evictions" => r.evictions = v.parse().unwrap(),
            "peak_rss" => r.peak_rss = v.parse().unwrap(),
            _ => {}
        }
    }
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    r
}

/// The child: opens the database (under `budget`), runs the 22 queries,
/// checks them, prints a `REPORT` line.
fn run_queries(budget: Option<u64>) {
    let runs: usize = env_or("OMENDB_TPCH_RUNS", "3").parse().unwrap();
    let db_dir = std::env::var("OMENDB_TIERING_DB").unwrap();
    let data = std::path::PathBuf::from(std::env::var("OMENDB_TIERING_DATA").unwrap());
    let mut options = Options::default();
    if let Some(b) = budget {
        options = options.with_column_memory_budget(b);
    }
    options = options.with_predictive_warming(std::env::var_os("OMENDB_TIERING_WARMING").is_some());
    if let Some(path) = std::env::var_os("OMENDB_TIERING_RECORD") {
        options = options.with_access_trace(std::path::PathBuf::from(path));
    }
    let db = Database::open_with(&db_dir, options).unwrap();
    let mut times = Vec::new();
    let mut correct = 0;
    for n in 1..=22 {
        let sql = common::query(n);
        match common::disagreement(&data, n, &common::cells(&db.query(&sql, params![]).unwrap())) {
            None => correct += 1,
            Some(difference) => eprintln!("{difference}"),
        }
        let mut t: Vec<Duration> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                db.query(&sql, params![]).unwrap();
                start.elapsed()
            })
            .collect();
        t.sort();
        times.push(t[t.len() / 2].as_secs_f64());
    }
    let geomean = (times.iter().map(|t| t.ln()).sum::<f64>() / times.len() as f64).exp();
    let m = db.metrics().columns;
    let peak_rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024);
    println!(
        "REPORT geomean={geomean} correct={correct} hot_bytes={} metadata_bytes={} hit_ratio={} evictions={} peak_rss={peak_rss}",
        m.hot_bytes + m.unpersisted_bytes,
        m.metadata_bytes,
        m.hit_ratio(),
        m.evictions
    );
}
