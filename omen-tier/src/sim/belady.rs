//! Belady's MIN for the simulator: it reads the future, so it is a yardstick, not a [`Policy`](crate::Policy).
//!
//! Variant: libCacheSim's `Belady` (the cross-check's reference). Every missed object that fits is admitted;
//! before inserting it, residents are evicted farthest-next-use first (never-again-used first of all) until it
//! fits; the new object is not a candidate (no bypass). With equal sizes this is the optimal demand policy; with
//! variable sizes it is not (a size-aware oracle such as FOO or libCacheSim's `BeladySize` can do better,
//! especially on byte hit ratio), so it is a strong reference rather than an upper bound there.
//!
//! Cost: O(log n) per access with a max-heap keyed by next use and lazy invalidation (an entry is current iff
//! its next use equals the resident's).

use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use crate::trace::next_use;
use crate::{Access, ObjectId, TierStats};

/// Replays `trace` through Belady's MIN with `capacity` bytes.
pub fn belady(trace: &[Access], capacity: u64) -> TierStats {
    let next = next_use(trace);
    let mut stats = TierStats::default();
    // id -> (bytes, next use)
    let mut resident: FxHashMap<ObjectId, (u64, u64)> = FxHashMap::default();
    let mut heap: BinaryHeap<(u64, ObjectId)> = BinaryHeap::new();
    let mut used = 0u64;
    for (a, &n) in trace.iter().zip(&next) {
        if let Some(r) = resident.get_mut(&a.id) {
            stats.hits += 1;
            stats.hit_bytes += a.bytes;
            r.1 = n;
            heap.push((n, a.id));
            continue;
        }
        stats.misses += 1;
        stats.miss_bytes += a.bytes;
        if a.bytes > capacity {
            stats.refused += 1;
            continue;
        }
        while used + a.bytes > capacity {
            let Some((far, id)) = heap.pop() else { break };
            if resident.get(&id).is_some_and(|r| r.1 == far)
                && let Some((bytes, _)) = resident.remove(&id)
            {
                used -= bytes;
                stats.evictions += 1;
            }
        }
        resident.insert(a.id, (a.bytes, n));
        heap.push((n, a.id));
        used += a.bytes;
        stats.admitted += 1;
        // Stale entries pile up on hit-heavy traces; rebuild when they dominate so memory stays O(residents).
        if heap.len() > 4 * resident.len() + 1024 {
            heap = resident.iter().map(|(&id, &(_, n))| (n, id)).collect();
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(ids: &[u64]) -> Vec<Access> {
        ids.iter().enumerate().map(|(t, &id)| Access::point(id, 1, t as u64)).collect()
    }

    #[test]
    fn evicts_the_farthest_next_use() {
        // Capacity 2: a b c -> c evicts b (next use 4) rather than a (next use 3); a hits; b misses.
        let s = belady(&unit(&[1, 2, 3, 1, 2]), 2);
        assert_eq!((s.hits, s.misses, s.evictions), (1, 4, 2));
        // Never-used-again objects go first: 3 is never used again, so 1 and 2 both hit.
        let s = belady(&unit(&[1, 2, 3, 4, 1, 2]), 3);
        assert_eq!(s.hits, 2);
    }

    #[test]
    fn too_large_objects_are_refused() {
        let trace = vec![Access::point(1, 10, 0), Access::point(1, 10, 1)];
        let s = belady(&trace, 5);
        assert_eq!((s.hits, s.misses, s.refused), (0, 2, 2));
    }
}
