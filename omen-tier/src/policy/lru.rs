//! Least recently used: one queue, a hit moves the object to the front, the victim is the back.

use super::queues::Queues;
use crate::{Access, ObjectId, Policy};

const Q: u8 = 0;

/// Least-recently-used eviction.
#[derive(Debug, Clone)]
pub struct Lru {
    queue: Queues<()>,
}

impl Lru {
    /// An empty LRU. It needs no capacity: the [`Tier`](crate::Tier) decides when to evict.
    pub fn new() -> Self {
        Self { queue: Queues::new(1) }
    }
}

impl Default for Lru {
    fn default() -> Self {
        Self::new()
    }
}

impl Policy for Lru {
    fn name(&self) -> &str {
        "lru"
    }

    fn on_access(&mut self, access: &Access, resident: bool) {
        if resident && let Some(slot) = self.queue.find(access.id) {
            self.queue.move_to_front(slot, Q);
        }
    }

    fn on_admit(&mut self, access: &Access) {
        self.queue.push_front(Q, access.id, access.bytes, ());
    }

    fn victim(&mut self, pinned: &dyn Fn(ObjectId) -> bool) -> Option<ObjectId> {
        let slot = self.queue.back_unpinned(Q, pinned)?;
        Some(self.queue.remove(slot).id)
    }

    fn on_remove(&mut self, id: ObjectId) {
        self.queue.remove_id(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(id: ObjectId) -> Access {
        Access::point(id, 1, 0)
    }

    #[test]
    fn evicts_least_recent_and_skips_pinned() {
        let mut p = Lru::new();
        for id in 1..=3 {
            p.on_access(&a(id), false);
            p.on_admit(&a(id));
        }
        p.on_access(&a(1), true); // order, newest first: 1 3 2
        assert_eq!(p.victim(&|_| false), Some(2));
        assert_eq!(p.victim(&|id| id == 3), Some(1), "3 is pinned, so the next oldest goes");
        p.on_remove(3);
        p.on_remove(42); // unknown: ignored
        assert_eq!(p.victim(&|_| false), None);
    }
}
