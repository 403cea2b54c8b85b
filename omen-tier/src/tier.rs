//! [`Tier`]: a byte-capacity cache of object ids driven by a [`Policy`]; the store and the simulator both use it.

use rustc_hash::FxHashMap;

use crate::{Access, ObjectId, Policy};

/// Counters of a [`Tier`] since it was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TierStats {
    /// Accesses that found the object resident.
    pub hits: u64,
    /// Accesses that did not.
    pub misses: u64,
    /// Bytes of the hits.
    pub hit_bytes: u64,
    /// Bytes of the misses.
    pub miss_bytes: u64,
    /// Residents evicted to make room (not counting refused admissions).
    pub evictions: u64,
    /// Admissions that left the object resident.
    pub admitted: u64,
    /// Admissions refused: too large, declined by the policy, or chosen as their own victim.
    pub refused: u64,
}

impl TierStats {
    /// Hits over accesses; 0 before any access.
    pub fn hit_ratio(&self) -> f64 {
        ratio(self.hits, self.hits + self.misses)
    }

    /// Hit bytes over accessed bytes; 0 before any access.
    pub fn byte_hit_ratio(&self) -> f64 {
        ratio(self.hit_bytes, self.hit_bytes + self.miss_bytes)
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// A byte-capacity cache driven by a policy. It holds ids and sizes, never the objects: the caller drops what
/// [`admit`](Tier::admit) and [`set_capacity`](Tier::set_capacity) return.
///
/// Bad input does not panic: an object larger than the capacity (so any object under capacity 0, except an
/// empty one) is refused — `admit` returns its own id; removing an unknown id does nothing; admitting a resident
/// does nothing. A resident's size is the one it was admitted with; later accesses do not change it.
pub struct Tier {
    policy: Box<dyn Policy>,
    capacity: u64,
    resident: FxHashMap<ObjectId, u64>,
    used: u64,
    stats: TierStats,
}

impl std::fmt::Debug for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tier")
            .field("policy", &self.policy.name())
            .field("capacity", &self.capacity)
            .field("used", &self.used)
            .field("residents", &self.resident.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Tier {
    /// An empty cache of `capacity_bytes` run by `policy`.
    pub fn new(policy: Box<dyn Policy>, capacity_bytes: u64) -> Self {
        Self { policy, capacity: capacity_bytes, resident: FxHashMap::default(), used: 0, stats: TierStats::default() }
    }

    /// Records an access; returns true on a hit. A miss does not admit: call [`admit`](Tier::admit) once the
    /// object is loaded (or not, if the caller will not keep it).
    pub fn access(&mut self, access: &Access) -> bool {
        let hit = self.resident.contains_key(&access.id);
        self.policy.on_access(access, hit);
        if hit {
            self.stats.hits += 1;
            self.stats.hit_bytes += access.bytes;
        } else {
            self.stats.misses += 1;
            self.stats.miss_bytes += access.bytes;
        }
        hit
    }

    /// Makes `access.id` resident after a miss (or a prefetch); returns the ids the caller must drop so that
    /// used <= capacity, which may include `access.id` itself if the policy refused it. Pinned residents are
    /// skipped; if only pinned remain, stops (used may exceed capacity; the caller decides).
    ///
    /// A prefetch should call `admit` without [`access`](Tier::access): it is not a demand miss.
    pub fn admit(&mut self, access: &Access, pinned: &dyn Fn(ObjectId) -> bool) -> Vec<ObjectId> {
        // Every path ends within capacity when pins allow: an earlier call may have stopped at pinned residents.
        if self.resident.contains_key(&access.id) {
            return self.evict_to_fit(pinned, None);
        }
        if access.bytes > self.capacity || !self.policy.admits(access) {
            self.stats.refused += 1;
            let mut dropped = vec![access.id];
            dropped.extend(self.evict_to_fit(pinned, None));
            return dropped;
        }
        self.policy.on_admit(access);
        self.resident.insert(access.id, access.bytes);
        self.used += access.bytes;
        let dropped = self.evict_to_fit(pinned, Some(access.id));
        if dropped.contains(&access.id) {
            self.stats.refused += 1;
        } else {
            self.stats.admitted += 1;
        }
        dropped
    }

    /// The owner dropped `id` (deleted, rewritten): forget it. Unknown ids are ignored.
    pub fn remove(&mut self, id: ObjectId) {
        if let Some(bytes) = self.resident.remove(&id) {
            self.used -= bytes;
            self.policy.on_remove(id);
        }
    }

    /// Changes the capacity and returns the ids to drop to fit it (pinned residents are skipped, as in
    /// [`admit`](Tier::admit)). The policy rescales its internal queue shares.
    pub fn set_capacity(&mut self, bytes: u64, pinned: &dyn Fn(ObjectId) -> bool) -> Vec<ObjectId> {
        self.capacity = bytes;
        self.policy.set_capacity(bytes);
        self.evict_to_fit(pinned, None)
    }

    /// Whether `id` is resident.
    pub fn is_resident(&self, id: ObjectId) -> bool {
        self.resident.contains_key(&id)
    }

    /// Bytes resident.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// The capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Number of residents.
    pub fn len(&self) -> usize {
        self.resident.len()
    }

    /// Whether nothing is resident.
    pub fn is_empty(&self) -> bool {
        self.resident.is_empty()
    }

    /// The resident ids, in no particular order.
    pub fn resident_ids(&self) -> impl Iterator<Item = ObjectId> + '_ {
        self.resident.keys().copied()
    }

    /// The counters so far.
    pub fn stats(&self) -> TierStats {
        self.stats
    }

    /// The policy's name.
    pub fn policy_name(&self) -> &str {
        self.policy.name()
    }

    /// The policy's named counters (see [`Policy::diagnostics`]).
    pub fn diagnostics(&self) -> Vec<(&'static str, f64)> {
        self.policy.diagnostics()
    }

    /// Up to `max` non-resident ids the policy predicts will be accessed soon, best first: candidates for the
    /// caller to load in the background and [`admit`](Tier::admit) with a prefetch access.
    pub fn prefetch(&mut self, now_us: u64, max: usize) -> Vec<ObjectId> {
        let mut ids = self.policy.prefetch(now_us, max);
        ids.retain(|id| !self.resident.contains_key(id));
        ids.truncate(max);
        ids
    }

    fn evict_to_fit(&mut self, pinned: &dyn Fn(ObjectId) -> bool, admitted: Option<ObjectId>) -> Vec<ObjectId> {
        let mut dropped = Vec::new();
        while self.used > self.capacity {
            let Some(id) = self.policy.victim(pinned) else { break };
            let bytes = self.resident.remove(&id);
            debug_assert!(bytes.is_some(), "{} chose {id}, which is not resident", self.policy.name());
            let Some(bytes) = bytes else { continue };
            self.used -= bytes;
            if admitted != Some(id) {
                self.stats.evictions += 1;
            }
            dropped.push(id);
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PolicyKind;

    #[test]
    fn bad_input_is_refused_not_panicked_on() {
        let mut tier = Tier::new(PolicyKind::Lru.build(0), 0);
        let big = Access::point(1, 10, 0);
        assert!(!tier.access(&big));
        assert_eq!(tier.admit(&big, &|_| false), vec![1]);
        assert!(!tier.is_resident(1));
        tier.remove(99);
        let empty = Access::point(2, 0, 0);
        assert!(tier.admit(&empty, &|_| false).is_empty(), "a 0-byte object fits even capacity 0");
        assert_eq!(tier.stats().refused, 1);
        assert_eq!(tier.stats().admitted, 1);
    }

    #[test]
    fn lru_tier_counts_and_evicts_in_order() {
        let mut tier = Tier::new(PolicyKind::Lru.build(30), 30);
        for id in 1..=3 {
            let a = Access::point(id, 10, id);
            assert!(!tier.access(&a));
            assert!(tier.admit(&a, &|_| false).is_empty());
        }
        assert!(tier.access(&Access::point(1, 10, 4)));
        let a4 = Access::point(4, 10, 5);
        tier.access(&a4);
        assert_eq!(tier.admit(&a4, &|_| false), vec![2]);
        assert_eq!(tier.set_capacity(10, &|id| id == 3), vec![1, 4], "3 is pinned and stays");
        assert_eq!((tier.used(), tier.len()), (10, 1));
        let s = tier.stats();
        assert_eq!((s.hits, s.misses, s.hit_bytes, s.miss_bytes, s.evictions, s.admitted), (1, 4, 10, 40, 3, 4));
        assert!((s.hit_ratio() - 0.2).abs() < 1e-12);
    }
}
