//! The simulator: replays a trace through a [`Tier`] (or through [`belady`]) and counts hits.
//!
//! A demand access that misses is admitted right away, as a cache in front of the store would do. Optional
//! prefetching asks the tier for predictions at every statement boundary and admits those it knows the size of
//! (from earlier accesses); prefetched loads are counted apart, since they cost reads without being demand
//! misses.

mod belady;
pub mod report;

pub use belady::belady;

use rustc_hash::FxHashMap;

use crate::{Access, AccessKind, ObjectId, Policy, Tier, TierStats};

/// The sum of the distinct objects' sizes (each at its first access): what "a cache of 5% of the working set"
/// is 5% of.
pub fn working_set_bytes(trace: &[Access]) -> u64 {
    let mut seen: FxHashMap<ObjectId, u64> = FxHashMap::default();
    for a in trace {
        seen.entry(a.id).or_insert(a.bytes);
    }
    seen.values().sum()
}

/// Read-ahead in the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefetch {
    /// Objects asked for at each statement boundary.
    pub max_per_statement: usize,
}

/// What one replay measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimResult {
    /// Demand hits and misses; admissions and evictions include prefetched objects.
    pub stats: TierStats,
    /// Objects loaded by prefetching.
    pub prefetched: u64,
    /// Their bytes.
    pub prefetched_bytes: u64,
}

/// Replays `trace` through `policy` with `capacity` bytes.
pub fn simulate(trace: &[Access], policy: Box<dyn Policy>, capacity: u64, prefetch: Option<Prefetch>) -> SimResult {
    let mut tier = Tier::new(policy, capacity);
    let mut result = SimResult::default();
    let mut sizes: FxHashMap<ObjectId, u64> = FxHashMap::default();
    let no_pins = |_| false;
    let mut statement = None;
    for a in trace {
        if let Some(p) = prefetch
            && statement != Some(a.statement)
        {
            statement = Some(a.statement);
            for id in tier.prefetch(a.time_us, p.max_per_statement) {
                let Some(&bytes) = sizes.get(&id) else { continue };
                let load = Access { id, bytes, kind: AccessKind::Prefetch, statement: 0, time_us: a.time_us, scan_position: None };
                let dropped = tier.admit(&load, &no_pins);
                if !dropped.contains(&id) {
                    result.prefetched += 1;
                    result.prefetched_bytes += bytes;
                }
            }
        }
        sizes.insert(a.id, a.bytes);
        if !tier.access(a) {
            tier.admit(a, &no_pins);
        }
    }
    result.stats = tier.stats();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PolicyKind;
    use crate::trace::synthetic;

    #[test]
    fn belady_beats_every_policy_on_unit_sizes() {
        for w in synthetic::standard(synthetic::Scale { objects: 500, requests: 8_000 }, 3) {
            let trace: Vec<Access> = w.accesses.iter().map(|a| Access { bytes: 1, ..*a }).collect();
            for capacity in [5, 25, 100] {
                let opt = belady(&trace, capacity).hit_ratio();
                for kind in PolicyKind::ALL {
                    let r = simulate(&trace, kind.build(capacity), capacity, None).stats.hit_ratio();
                    assert!(r <= opt + 1e-12, "{} {kind:?} at {capacity}: {r} > Belady {opt}", w.name);
                }
            }
        }
    }

    #[test]
    fn working_set_counts_each_object_once() {
        let trace = [Access::point(1, 10, 0), Access::point(2, 5, 1), Access::point(1, 99, 2)];
        assert_eq!(working_set_bytes(&trace), 15);
    }
}
