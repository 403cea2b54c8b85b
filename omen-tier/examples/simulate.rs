//! The policy table: `cargo run --release -p omen-tier --example simulate -- [trace files...]`.
//!
//! Replays the standard synthetic workloads, the recorded traces committed in `omen-tier/traces/` (found through
//! the crate's directory, so from any working directory) and any trace files given (omen-tier traces by their
//! magic, else libCacheSim oracleGeneral) at 1%, 5% and 20% of each trace's working set through Learned, LRU,
//! S3-FIFO, W-TinyLFU and Belady, prints object and byte hit ratios, then issue #24's two targets, met or not.
//! `--small` runs the tenth-size synthetic suite; `--no-recorded` leaves out `omen-tier/traces/`;
//! `--write-oracle DIR` also writes each synthetic trace as `DIR/<name>.oracleGeneral.bin` for the libCacheSim
//! cross-check; `--classic-csv` then prints only `trace,size,capacity_bytes,lru,s3fifo` object hit ratios as CSV
//! for the synthetic traces and the files given (what `scripts/libcachesim-check.sh` reads).

use std::path::{Path, PathBuf};
use std::time::Instant;

use omen_tier::sim::report::{Cell, SIZES, Verdict};
use omen_tier::sim::{Prefetch, simulate, working_set_bytes};
use omen_tier::trace::synthetic::{self, Scale, Workload};
use omen_tier::trace::{self, TraceReader};
use omen_tier::{Access, PolicyKind, Tier, TierStats};

fn load(path: &PathBuf) -> std::io::Result<Workload> {
    let bytes = std::fs::read(path)?;
    let name = match path.file_name().map(|n| n.to_string_lossy().into_owned()) {
        Some(n) => n.strip_suffix(".trace").map_or_else(|| n.clone(), str::to_owned),
        None => "trace".into(),
    };
    let accesses: Vec<Access> = if bytes.starts_with(&trace::MAGIC) {
        TraceReader::new(&bytes[..])?.read_all()?
    } else {
        trace::accesses_from_oracle(&trace::read_oracle_general(&bytes[..])?)
    };
    Ok(Workload { name, accesses })
}

/// The recorded traces committed with the crate (`omen-tier/traces/*.trace`), by name.
fn recorded() -> std::io::Result<Vec<PathBuf>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces");
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "trace")).collect();
    paths.sort();
    Ok(paths)
}

fn pair(s: &TierStats) -> String {
    format!("{:.4}/{:.4}", s.hit_ratio(), s.byte_hit_ratio())
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut scale, mut oracle_dir, mut files, mut csv, mut with_recorded) = (Scale::FULL, None, Vec::new(), false, true);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--small" => scale = Scale::SMALL,
            "--classic-csv" => csv = true,
            "--no-recorded" => with_recorded = false,
            "--write-oracle" => oracle_dir = args.next().map(PathBuf::from),
            _ => files.push(PathBuf::from(arg)),
        }
    }
    let mut workloads = synthetic::standard(scale, 42);
    if let Some(dir) = &oracle_dir {
        std::fs::create_dir_all(dir)?;
        for w in &workloads {
            let file = std::fs::File::create(dir.join(format!("{}.oracleGeneral.bin", w.name)))?;
            trace::write_oracle_general(&w.accesses, file)?;
        }
    }
    if with_recorded && !csv {
        files.splice(0..0, recorded()?);
    }
    for f in &files {
        workloads.push(load(f)?);
    }
    if csv {
        println!("trace,size,capacity_bytes,lru,s3fifo");
        for w in &workloads {
            for size in SIZES {
                let capacity = (working_set_bytes(&w.accesses) as f64 * size) as u64;
                let hit = |kind: PolicyKind| simulate(&w.accesses, kind.build(capacity), capacity, None).stats.hit_ratio();
                println!("{},{size},{capacity},{:.6},{:.6}", w.name, hit(PolicyKind::Lru), hit(PolicyKind::S3Fifo));
            }
        }
        return Ok(());
    }
    let prefetch = Prefetch { max_per_statement: 8 };
    println!("object hit ratio / byte hit ratio. learned = the default (object objective); learned-B = byte objective;");
    println!("learned+pf = the default with its prefetches admitted at statement boundaries (MiB prefetched)");
    println!(
        "{:<12} {:>5} {:>7} | {:>15} {:>15} {:>15} {:>15} {:>15} | {:>15} | {:>15} {:>7}",
        "trace", "size", "objects", "learned", "lru", "s3fifo", "wtinylfu", "belady", "learned-B", "learned+pf", "MiB"
    );
    let mut cells = Vec::new();
    let started = Instant::now();
    for w in &workloads {
        let objects = w.accesses.iter().map(|a| a.id).collect::<std::collections::HashSet<_>>().len();
        for size in SIZES {
            let c = Cell::run(&w.name, &w.accesses, size, prefetch);
            let pf = &c.learned_prefetch;
            println!(
                "{:<12} {:>4.0}% {:>7} | {:>15} {:>15} {:>15} {:>15} {:>15} | {:>15} | {:>15} {:>7.0}",
                c.trace,
                size * 100.0,
                objects,
                pair(&c.learned),
                pair(&c.classic[0]),
                pair(&c.classic[1]),
                pair(&c.classic[2]),
                pair(&c.belady),
                pair(&c.learned_bytes),
                pair(&pf.stats),
                pf.prefetched_bytes as f64 / (1 << 20) as f64
            );
            cells.push(c);
        }
    }
    let v = Verdict::of(&cells);
    let verdict = |met: bool| if met { "MET" } else { "NOT MET" };
    println!();
    println!(
        "target 1 (learned >= best classic on every trace and size): {} ({} of {} cells below; worst margin {:+.4})",
        verdict(v.never_below_best_classic()),
        v.cells_below_best_classic,
        v.cells,
        v.worst_margin
    );
    println!(
        "target 2 (mean miss ratio <= midpoint of best classic and Belady): {} (learned {:.4}, best classic {:.4}, Belady {:.4}, midpoint {:.4})",
        verdict(v.at_or_below_midpoint()),
        v.learned_miss,
        v.best_classic_miss,
        v.belady_miss,
        v.midpoint()
    );
    let n = cells.len().max(1) as f64;
    let learned_ns = cells.iter().map(|c| c.ns_per_access.0).sum::<f64>() / n;
    let classic_ns = cells.iter().map(|c| c.ns_per_access.1).sum::<f64>() / n;
    println!("cost: learned {learned_ns:.0} ns/access, classic mean {classic_ns:.0} ns/access (simulator included)");
    if let Some(w) = workloads.iter().find(|w| w.name == "zipf-1.0") {
        let capacity = (working_set_bytes(&w.accesses) as f64 * 0.05) as u64;
        let mut tier = Tier::new(PolicyKind::Learned.build(capacity), capacity);
        for a in &w.accesses {
            if !tier.access(a) {
                tier.admit(a, &|_| false);
            }
        }
        let d: Vec<String> = tier.diagnostics().iter().map(|(k, v)| format!("{k}={v:.1}")).collect();
        println!("learned on zipf-1.0 at 5%: {}", d.join(" "));
    }
    println!("({} cells in {:.1} s)", cells.len(), started.elapsed().as_secs_f64());
    Ok(())
}
