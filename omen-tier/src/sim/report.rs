//! The policy table and issue #24's targets, computed from simulator runs.
//!
//! Targets, at cache sizes of 1%, 5% and 20% of each trace's working-set bytes:
//! 1. on every trace and size, the learned policy's object hit ratio is at or above the best of LRU, S3-FIFO
//!    and W-TinyLFU;
//! 2. averaged over all (trace, size) cells, its miss ratio is at or below the midpoint between the best classic
//!    policy's (best per cell) and Belady's.

use std::time::Instant;

use crate::sim::{Prefetch, SimResult, belady, simulate, working_set_bytes};
use crate::{Access, Learned, LearnedConfig, Objective, PolicyKind, TierStats};

/// Cache sizes as fractions of the working set.
pub const SIZES: [f64; 3] = [0.01, 0.05, 0.20];

/// The classic policies the learned one must match.
pub const CLASSIC: [PolicyKind; 3] = [PolicyKind::Lru, PolicyKind::S3Fifo, PolicyKind::WTinyLfu];

/// One (trace, size) cell.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The trace's name.
    pub trace: String,
    /// Cache size as a fraction of the working set.
    pub size: f64,
    /// Capacity in bytes.
    pub capacity: u64,
    /// Learned, without prefetching (the eviction policy alone).
    pub learned: TierStats,
    /// Learned with [`Objective::Bytes`] (reuse alone, whatever the size): the byte-hit-ratio variant.
    pub learned_bytes: TierStats,
    /// Learned with its prefetch predictions admitted at statement boundaries.
    pub learned_prefetch: SimResult,
    /// LRU, S3-FIFO, W-TinyLFU, in [`CLASSIC`] order.
    pub classic: [TierStats; 3],
    /// Belady's MIN.
    pub belady: TierStats,
    /// Wall time per access of the learned run (no prefetch) and the mean of the classic runs, ns: policy
    /// plus simulator. Informational only.
    pub ns_per_access: (f64, f64),
}

impl Cell {
    /// Runs every policy on `trace` at `size` of its working set.
    pub fn run(name: &str, trace: &[Access], size: f64, prefetch: Prefetch) -> Cell {
        let capacity = ((working_set_bytes(trace) as f64) * size) as u64;
        let run = |kind: PolicyKind| simulate(trace, kind.build(capacity), capacity, None).stats;
        let per_access = |started: Instant| started.elapsed().as_nanos() as f64 / trace.len().max(1) as f64;
        let bytes_objective = LearnedConfig { objective: Objective::Bytes, ..LearnedConfig::default() };
        let started = Instant::now();
        let learned = run(PolicyKind::Learned);
        let learned_ns = per_access(started);
        let started = Instant::now();
        let classic = CLASSIC.map(run);
        let lru_ns = per_access(started) / CLASSIC.len() as f64;
        Cell {
            trace: name.to_owned(),
            size,
            capacity,
            learned,
            learned_bytes: simulate(trace, Box::new(Learned::with_config(capacity, bytes_objective)), capacity, None).stats,
            learned_prefetch: simulate(trace, PolicyKind::Learned.build(capacity), capacity, Some(prefetch)),
            classic,
            belady: belady(trace, capacity),
            ns_per_access: (learned_ns, lru_ns),
        }
    }

    /// The best classic object hit ratio.
    pub fn best_classic(&self) -> f64 {
        self.classic.iter().map(TierStats::hit_ratio).fold(0.0, f64::max)
    }
}

/// Whether the targets are met, with the numbers behind the verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Cells where learned's hit ratio is below the best classic's.
    pub cells_below_best_classic: usize,
    /// Cells in all.
    pub cells: usize,
    /// The worst (most negative) learned minus best-classic hit ratio.
    pub worst_margin: f64,
    /// Mean miss ratio: learned.
    pub learned_miss: f64,
    /// Mean miss ratio: best classic per cell.
    pub best_classic_miss: f64,
    /// Mean miss ratio: Belady.
    pub belady_miss: f64,
}

impl Verdict {
    /// Judges the cells.
    pub fn of(cells: &[Cell]) -> Verdict {
        let n = cells.len().max(1) as f64;
        let margins: Vec<f64> = cells.iter().map(|c| c.learned.hit_ratio() - c.best_classic()).collect();
        Verdict {
            // A shortfall below a millionth is float noise from equal hit counts, not a loss.
            cells_below_best_classic: margins.iter().filter(|&&m| m < -1e-9).count(),
            cells: cells.len(),
            worst_margin: margins.iter().copied().fold(f64::INFINITY, f64::min),
            learned_miss: cells.iter().map(|c| 1.0 - c.learned.hit_ratio()).sum::<f64>() / n,
            best_classic_miss: cells.iter().map(|c| 1.0 - c.best_classic()).sum::<f64>() / n,
            belady_miss: cells.iter().map(|c| 1.0 - c.belady.hit_ratio()).sum::<f64>() / n,
        }
    }

    /// Target 1 met.
    pub fn never_below_best_classic(&self) -> bool {
        self.cells_below_best_classic == 0
    }

    /// The midpoint miss ratio of target 2.
    pub fn midpoint(&self) -> f64 {
        (self.best_classic_miss + self.belady_miss) / 2.0
    }

    /// Target 2 met.
    pub fn at_or_below_midpoint(&self) -> bool {
        self.learned_miss <= self.midpoint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(hits: u64, misses: u64) -> TierStats {
        TierStats { hits, misses, ..TierStats::default() }
    }

    fn cell(learned: u64, classic: [u64; 3], belady: u64) -> Cell {
        Cell {
            trace: "t".into(),
            size: 0.05,
            capacity: 1,
            learned: stats(learned, 100 - learned),
            learned_bytes: TierStats::default(),
            learned_prefetch: SimResult::default(),
            classic: classic.map(|h| stats(h, 100 - h)),
            belady: stats(belady, 100 - belady),
            ns_per_access: (0.0, 0.0),
        }
    }

    #[test]
    fn verdict_compares_with_the_best_classic_per_cell() {
        let v = Verdict::of(&[cell(50, [40, 45, 30], 70), cell(60, [61, 20, 20], 80)]);
        assert_eq!((v.cells_below_best_classic, v.cells), (1, 2));
        assert!((v.worst_margin + 0.01).abs() < 1e-12);
        // Misses: learned (0.5 + 0.4) / 2 = 0.45; best classic (0.55 + 0.39) / 2 = 0.47; Belady 0.25.
        assert!((v.midpoint() - 0.36).abs() < 1e-12);
        assert!(!v.at_or_below_midpoint());
        assert!(!v.never_below_best_classic());
    }
}
