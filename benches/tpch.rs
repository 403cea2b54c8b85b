//! TPC-H, all 22 queries, OmenDB against DuckDB and PostgreSQL 15 on the
//! same machine, data and queries, in the same run: `cargo bench --bench
//! tpch` (scale factor 1). OmenDB reads tables loaded through
//! `Database::insert_batches`; DuckDB its native tables
//! (`scripts/tpch_duckdb_bench.py`) and PostgreSQL its heap tables with
//! their primary keys (`scripts/tpch-postgres-bench.sh`, which installs
//! PostgreSQL 15 if it is missing), each loaded from the same CSV. Prints
//! per-query medians, the ratios, and the geometric means.
//!
//! Environment:
//! - `OMENDB_TPCH_SF`: scale factor (default 1; 0.1 for a quick run).
//! - `OMENDB_TPCH_RUNS`: timed runs per query after one warm-up (default 5).
//! - `OMENDB_TPCH_QUERIES`: which queries, e.g. `6,7,17` (default all 22;
//!   the geometric means then cover those only).
//! - `OMENDB_TPCH_PEERS`: `duckdb,postgres` (default), a subset, or `none`.
//! - `OMENDB_TPCH_EXPLAIN=1`: after timing, print each query's `EXPLAIN
//!   ANALYZE` (the plan with each operator's rows and time).
//! - `OMENDB_TPCH_PG_TIMEOUT`: PostgreSQL's statement timeout in seconds
//!   (default 60); a query past it is reported as `>=` the timeout, and the
//!   ratios it enters are bounds.
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use omendb::{Database, params};

// This bench times the queries; checking their answers is the tests'.
#[allow(dead_code)]
#[path = "../tests/tpch/common.rs"]
mod common;

/// A peer's time for one query: `None` when it ran past the timeout.
type PeerTimes = Vec<Option<f64>>;

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn geomean(xs: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x.ln(), n + 1));
    (sum / n as f64).exp()
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

fn main() {
    let sf = env_or("OMENDB_TPCH_SF", "1");
    let runs: usize = env_or("OMENDB_TPCH_RUNS", "5").parse().expect("OMENDB_TPCH_RUNS is a number");
    assert!(runs >= 1, "OMENDB_TPCH_RUNS is at least 1");
    let pg_timeout: u64 = env_or("OMENDB_TPCH_PG_TIMEOUT", "60").parse().expect("OMENDB_TPCH_PG_TIMEOUT is seconds");
    let queries: Vec<usize> = match std::env::var("OMENDB_TPCH_QUERIES") {
        Ok(list) => list.split(',').map(|q| q.trim().trim_start_matches('q').parse().expect("query numbers 1..=22")).collect(),
        Err(_) => (1..=22).collect(),
    };
    assert!(queries.iter().all(|q| (1..=22).contains(q)), "OMENDB_TPCH_QUERIES names queries 1..=22");
    let peers = env_or("OMENDB_TPCH_PEERS", "duckdb,postgres");
    let dir = common::data(&sf);

    let db = Database::open_in_memory().unwrap();
    let start = Instant::now();
    common::load(&db, &dir);
    // The first query waits for sync to bring the column store up to date.
    db.query("SELECT count(*) FROM lineitem", params![]).unwrap();
    eprintln!("OmenDB: loaded SF {sf} in {:.1} s", start.elapsed().as_secs_f64());
    let ours: Vec<f64> = queries
        .iter()
        .map(|&n| {
            let sql = common::query(n);
            db.query(&sql, params![]).unwrap();
            let times = (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    db.query(&sql, params![]).unwrap();
                    t.elapsed()
                })
                .collect();
            median(times).as_secs_f64()
        })
        .collect();
    if std::env::var_os("OMENDB_TPCH_EXPLAIN").is_some() {
        for &n in &queries {
            let plan = db.query(&format!("EXPLAIN ANALYZE {}", common::query(n)), params![]).unwrap();
            println!("q{n}:");
            for batch in &plan {
                let text = batch.column(batch.num_columns() - 1).as_any().downcast_ref::<omendb::arrow::array::StringArray>().unwrap();
                text.iter().flatten().for_each(|line| println!("{line}"));
            }
        }
    }
    drop(db);

    let root = common::root();
    let peer_args = |script: &str| {
        let mut cmd = Command::new(if script.ends_with(".py") { venv_python(&dir) } else { "bash".into() });
        cmd.arg(root.join("scripts").join(script))
            .arg(dir.join("data"))
            .arg(root.join("tests/tpch/queries"))
            .arg(root.join("tests/tpch/schema.sql"))
            .arg(runs.to_string());
        cmd
    };
    // Each peer's ratio reads as its target does: OmenDB / DuckDB (within
    // 1.5x), PostgreSQL / OmenDB (at least 10x).
    let mut columns: Vec<Peer> = Vec::new();
    if peers.contains("duckdb") {
        columns.push(Peer { name: "DuckDB", ours_first: true, times: run_peer(peer_args("tpch_duckdb_bench.py"), &queries) });
    }
    if peers.contains("postgres") {
        let mut cmd = peer_args("tpch-postgres-bench.sh");
        cmd.arg(pg_timeout.to_string());
        columns.push(Peer { name: "PostgreSQL 15", ours_first: false, times: run_peer(cmd, &queries) });
    }

    println!("TPC-H SF {sf}, median of {runs} runs after one warm-up, seconds");
    let mut header = "| query | OmenDB |".to_string();
    let mut rule = "|---|---:|".to_string();
    for peer in &columns {
        let name = peer.name;
        header += &if peer.ours_first { format!(" {name} | OmenDB / {name} |") } else { format!(" {name} | {name} / OmenDB |") };
        rule += "---:|---:|";
    }
    println!("{header}\n{rule}");
    // A timed-out query enters at the timeout, so the figures it touches
    // are bounds.
    let cell = |peer: &Peer, t: f64, bounded: bool, ours: f64| {
        let ratio = if peer.ours_first { ours / t } else { t / ours };
        let (bound, ratio_bound) = match (bounded, peer.ours_first) {
            (false, _) => ("", ""),
            (true, true) => (">= ", "<= "),
            (true, false) => (">= ", ">= "),
        };
        format!(" {bound}{t:.4} | {ratio_bound}{ratio:.2}x |")
    };
    let timeout = pg_timeout as f64;
    for (i, n) in queries.iter().enumerate() {
        let mut line = format!("| q{n} | {:.4} |", ours[i]);
        for peer in &columns {
            line += &cell(peer, peer.times[i].unwrap_or(timeout), peer.times[i].is_none(), ours[i]);
        }
        println!("{line}");
    }
    let g = geomean(ours.iter().copied());
    let mut line = format!("| geomean | {g:.4} |");
    for peer in &columns {
        let mean = geomean(peer.times.iter().map(|t| t.unwrap_or(timeout)));
        line += &cell(peer, mean, peer.times.iter().any(Option::is_none), g);
    }
    println!("{line}");
}

/// One peer's column in the table.
struct Peer {
    name: &'static str,
    /// Whether the ratio is OmenDB's time over the peer's.
    ours_first: bool,
    times: PeerTimes,
}

/// Runs a peer's script, which prints `qN<TAB>seconds` (or `qN<TAB>timeout`)
/// for each of `queries` (it reads them from `OMENDB_TPCH_QUERIES`, set
/// here).
fn run_peer(mut cmd: Command, queries: &[usize]) -> PeerTimes {
    let list: Vec<String> = queries.iter().map(usize::to_string).collect();
    let out = cmd.env("OMENDB_TPCH_QUERIES", list.join(",")).output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let times: std::collections::HashMap<usize, Option<f64>> = stdout
        .lines()
        .map(|line| {
            let (name, time) = line.split_once('\t').unwrap_or_else(|| panic!("{cmd:?} printed {line:?}"));
            let n = name.strip_prefix('q').and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{cmd:?} printed {line:?}"));
            let time = (time != "timeout").then(|| time.parse().unwrap_or_else(|_| panic!("{cmd:?} printed {line:?}")));
            (n, time)
        })
        .collect();
    queries.iter().map(|n| *times.get(n).unwrap_or_else(|| panic!("{cmd:?} did not report q{n}"))).collect()
}

/// The virtualenv `scripts/tpch-data.sh` made (it holds duckdb).
fn venv_python(sf_dir: &Path) -> std::path::PathBuf {
    sf_dir.parent().map(|root| root.join("venv/bin/python")).unwrap()
}
