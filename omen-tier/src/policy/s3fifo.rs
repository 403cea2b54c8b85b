//! S3-FIFO (Yang et al., SOSP'23), following libCacheSim's `S3FIFO.c` so that the two simulators agree.
//!
//! - **Small** FIFO of `small_ratio` of the capacity and **main** FIFO of the rest, both in bytes; a **ghost** FIFO
//!   of ids (charged their bytes) of `ghost_ratio` of the capacity.
//! - A miss whose id is in the ghost goes to main; any other miss to small. Before the first eviction, a miss that
//!   finds small full goes to main (libCacheSim's variant, better than the paper's: the warm-up fills main).
//! - Each hit adds one to a 2-bit frequency. Evicting from small: a tail with `freq >= move_to_main_threshold`
//!   moves to main (frequency reset), otherwise it leaves and its id enters the ghost. Evicting from main: a tail
//!   with `freq >= 1` is reinserted with `freq - 1` (a 2-bit CLOCK), otherwise it leaves.
//! - Main is evicted from when it is over its share or small is empty.
//! - An object of `>= small` bytes is refused (it would flush the whole small queue), as in libCacheSim.
//!
//! libCacheSim evicts *before* inserting the missed object; the [`Policy`] protocol admits first. To make the
//! same choices, the admitted object waits in `pending`, outside both queues, until the evictions of its admission
//! are done; it is linked on the next call (or evicted itself if nothing else can go).

use super::queues::Queues;
use crate::{Access, ObjectId, Policy};

const SMALL: u8 = 0;
const MAIN: u8 = 1;
/// The 2-bit frequency's ceiling.
const MAX_FREQ: u8 = 3;

/// S3-FIFO's parameters; the defaults are libCacheSim's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct S3FifoConfig {
    /// The small queue's share of the capacity (default 0.10).
    pub small_ratio: f64,
    /// The ghost queue's size as a share of the capacity, counting its ids' bytes (default 0.90).
    pub ghost_ratio: f64,
    /// Hits an object needs while in small to move to main instead of leaving (default 2, libCacheSim's;
    /// the S3-FIFO blog uses 1, which is often better for block I/O).
    pub move_to_main_threshold: u8,
}

impl Default for S3FifoConfig {
    fn default() -> Self {
        Self { small_ratio: 0.10, ghost_ratio: 0.90, move_to_main_threshold: 2 }
    }
}

/// S3-FIFO eviction: a small probationary FIFO, a main FIFO with 2-bit CLOCK reinsertion and a ghost FIFO.
#[derive(Debug, Clone)]
pub struct S3Fifo {
    /// Resident objects; the data is the frequency.
    queues: Queues<u8>,
    ghost: Queues<()>,
    config: S3FifoConfig,
    small_cap: u64,
    main_cap: u64,
    ghost_cap: u64,
    threshold: u8,
    has_evicted: bool,
    /// The id whose last miss found it in the ghost (it will be admitted to main).
    ghost_hit: Option<ObjectId>,
    /// The object just admitted, not yet linked: (id, bytes, goes to main).
    pending: Option<(ObjectId, u64, bool)>,
}

impl S3Fifo {
    /// S3-FIFO with libCacheSim's defaults for a cache of `capacity_bytes`.
    pub fn new(capacity_bytes: u64) -> Self {
        Self::with_config(capacity_bytes, S3FifoConfig::default())
    }

    /// S3-FIFO with explicit parameters; ratios are clamped to 0..=1.
    pub fn with_config(capacity_bytes: u64, config: S3FifoConfig) -> Self {
        let mut s3 = Self {
            queues: Queues::new(2),
            ghost: Queues::new(1),
            config,
            small_cap: 0,
            main_cap: 0,
            ghost_cap: 0,
            threshold: config.move_to_main_threshold,
            has_evicted: false,
            ghost_hit: None,
            pending: None,
        };
        s3.size_queues(capacity_bytes);
        s3
    }

    /// libCacheSim's sizing: small and ghost are truncated shares, main the rest.
    fn size_queues(&mut self, capacity_bytes: u64) {
        let share = |ratio: f64| (capacity_bytes as f64 * ratio.clamp(0.0, 1.0)) as u64;
        self.small_cap = share(self.config.small_ratio);
        self.main_cap = capacity_bytes.saturating_sub(self.small_cap);
        self.ghost_cap = share(self.config.ghost_ratio);
    }

    fn flush_pending(&mut self) {
        if let Some((id, bytes, to_main)) = self.pending.take() {
            let small_full = !self.has_evicted && self.queues.bytes(SMALL) >= self.small_cap;
            let q = if to_main || small_full { MAIN } else { SMALL };
            self.queues.push_front(q, id, bytes, 0);
        }
    }

    fn remember_ghost(&mut self, id: ObjectId, bytes: u64) {
        if self.ghost_cap == 0 || bytes > self.ghost_cap || self.ghost.contains(id) {
            return;
        }
        while self.ghost.bytes(0) + bytes > self.ghost_cap {
            let Some(old) = self.ghost.back(0) else { break };
            self.ghost.remove(old);
        }
        self.ghost.push_front(0, id, bytes, ());
    }

    /// Evicts one object from small, moving frequent tails to main on the way; None if small has no unpinned
    /// object left to consider.
    fn evict_small(&mut self, pinned: &dyn Fn(ObjectId) -> bool) -> Option<ObjectId> {
        while let Some(slot) = self.queues.back_unpinned(SMALL, pinned) {
            let entry = *self.queues.entry(slot);
            if entry.data >= self.threshold {
                self.queues.move_to_front(slot, MAIN);
                self.queues.entry_mut(slot).data = 0;
            } else {
                self.queues.remove(slot);
                self.remember_ghost(entry.id, entry.bytes);
                return Some(entry.id);
            }
        }
        None
    }

    /// Evicts one object from main, reinserting tails that were hit; None if main has no unpinned object.
    fn evict_main(&mut self, pinned: &dyn Fn(ObjectId) -> bool) -> Option<ObjectId> {
        while let Some(slot) = self.queues.back_unpinned(MAIN, pinned) {
            let freq = self.queues.entry(slot).data;
            if freq >= 1 {
                self.queues.move_to_front(slot, MAIN);
                self.queues.entry_mut(slot).data = freq.min(MAX_FREQ) - 1;
            } else {
                return Some(self.queues.remove(slot).id);
            }
        }
        None
    }

    fn evict_linked(&mut self, pinned: &dyn Fn(ObjectId) -> bool) -> Option<ObjectId> {
        self.has_evicted = true;
        let main_first = self.queues.bytes(MAIN) > self.main_cap || self.queues.back_unpinned(SMALL, pinned).is_none();
        if main_first && let Some(id) = self.evict_main(pinned) {
            return Some(id);
        }
        if let Some(id) = self.evict_small(pinned) {
            return Some(id);
        }
        // Small moved all it had to main (libCacheSim's next eviction round then takes from main).
        self.evict_main(pinned)
    }
}

impl Policy for S3Fifo {
    fn name(&self) -> &str {
        "s3fifo"
    }

    fn on_access(&mut self, access: &Access, resident: bool) {
        self.flush_pending();
        self.ghost_hit = None;
        if resident {
            if let Some(slot) = self.queues.find(access.id) {
                let freq = &mut self.queues.entry_mut(slot).data;
                *freq = freq.saturating_add(1).min(MAX_FREQ);
            }
        } else if self.ghost.remove_id(access.id).is_some() {
            self.ghost_hit = Some(access.id);
        }
    }

    fn admits(&self, access: &Access) -> bool {
        access.bytes < self.small_cap || (self.ghost_hit == Some(access.id) && access.bytes <= self.small_cap)
    }

    fn on_admit(&mut self, access: &Access) {
        self.flush_pending();
        if self.queues.contains(access.id) {
            return;
        }
        let to_main = self.ghost_hit.take() == Some(access.id);
        self.pending = Some((access.id, access.bytes, to_main));
    }

    fn victim(&mut self, pinned: &dyn Fn(ObjectId) -> bool) -> Option<ObjectId> {
        if let Some(id) = self.evict_linked(pinned) {
            return Some(id);
        }
        // Only the pending object can go (everything else is pinned): link it and let the rules pick it.
        self.pending?;
        self.flush_pending();
        self.evict_linked(pinned)
    }

    fn set_capacity(&mut self, capacity_bytes: u64) {
        self.size_queues(capacity_bytes);
    }

    fn on_remove(&mut self, id: ObjectId) {
        if self.pending.is_some_and(|(p, _, _)| p == id) {
            self.pending = None;
        }
        self.queues.remove_id(id);
        self.ghost.remove_id(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn miss(p: &mut S3Fifo, id: ObjectId) {
        let a = Access::point(id, 1, 0);
        p.on_access(&a, false);
        assert!(p.admits(&a));
        p.on_admit(&a);
    }

    fn hit(p: &mut S3Fifo, id: ObjectId) {
        p.on_access(&Access::point(id, 1, 0), true);
    }

    /// Capacity 20 unit objects: small 2, main 18, ghost 18. Objects 1..=20 fill it: 1 and 2 go to small,
    /// 3..=20 to main (small is full and nothing was evicted yet).
    fn filled(threshold: u8) -> S3Fifo {
        let cfg = S3FifoConfig { move_to_main_threshold: threshold, ..S3FifoConfig::default() };
        let mut p = S3Fifo::with_config(20, cfg);
        for id in 1..=20 {
            miss(&mut p, id);
        }
        p.flush_pending();
        assert_eq!(p.queues.ids(SMALL), vec![2, 1]);
        assert_eq!(p.queues.len(MAIN), 18);
        p
    }

    #[test]
    fn one_hit_in_small_is_not_enough_at_threshold_two() {
        let mut p = filled(2);
        hit(&mut p, 1);
        hit(&mut p, 3);
        miss(&mut p, 21);
        assert_eq!(p.victim(&|_| false), Some(1), "one hit < threshold 2: 1 leaves small for the ghost");
        miss(&mut p, 22);
        assert_eq!(p.victim(&|_| false), Some(2));
        // 1 comes back: a ghost hit, admitted to main; small's tail (21) makes room.
        miss(&mut p, 1);
        assert_eq!(p.victim(&|_| false), Some(21));
        p.flush_pending();
        assert_eq!(p.queues.entry(p.queues.find(1).unwrap()).queue, MAIN);
        // Main now holds 19 > 18: its tail 3 was hit once, so it is reinserted and 4 goes.
        miss(&mut p, 23);
        assert_eq!(p.victim(&|_| false), Some(4));
    }

    #[test]
    fn threshold_one_moves_a_hit_object_to_main() {
        let mut p = filled(1);
        hit(&mut p, 1);
        miss(&mut p, 21);
        assert_eq!(p.victim(&|_| false), Some(2));
        assert_eq!(p.queues.entry(p.queues.find(1).unwrap()).queue, MAIN);
    }

    #[test]
    fn objects_as_large_as_small_are_refused_and_pins_are_skipped() {
        let mut p = S3Fifo::new(100);
        assert!(!p.admits(&Access::point(7, 10, 0)));
        assert!(p.admits(&Access::point(7, 9, 0)));
        for id in 1..=3 {
            let a = Access::point(id, 9, 0);
            p.on_access(&a, false);
            p.on_admit(&a);
        }
        // Everything linked is pinned: the pending object (3) is the only one that can go.
        assert_eq!(p.victim(&|id| id != 3), Some(3));
        assert_eq!(p.victim(&|_| true), None);
        p.on_remove(1);
        p.on_remove(99);
        assert_eq!(p.victim(&|_| false), Some(2));
        assert_eq!(p.victim(&|_| false), None);
    }
}
