//! Read-ahead predictions: objects re-accessed at a regular period (a dashboard query repeating) and, within a
//! running scan, the objects that followed the last one the previous time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use super::history::{History, Meta};
use crate::{Access, ObjectId};

/// Accesses an object needs before its period is trusted.
const MIN_ACCESSES: u32 = 3;
/// Largest relative deviation of the gaps for an object to count as periodic.
const MAX_JITTER: f64 = 0.25;
/// How early, as a share of the period, a periodic object is predicted.
const LEAD: f64 = 0.15;
/// Due predictions kept at most (older ones are dropped first when full).
const MAX_DUE: usize = 1 << 16;

#[derive(Debug, Clone, Default)]
pub(crate) struct Prefetcher {
    /// (when to predict, µs; id; the last access this prediction was made from, µs).
    due: BinaryHeap<Reverse<(u64, ObjectId, u64)>>,
    /// The object that followed each object within its statement, last time.
    next_in_statement: FxHashMap<ObjectId, ObjectId>,
    last: Option<(ObjectId, u64)>,
}

impl Prefetcher {
    /// Learns from an access whose history is `meta` (already updated).
    pub(crate) fn observe(&mut self, access: &Access, meta: &Meta) {
        if let Some((prev, statement)) = self.last
            && statement == access.statement
            && access.statement != 0
            && prev != access.id
        {
            self.next_in_statement.insert(prev, access.id);
        }
        self.last = Some((access.id, access.statement));
        let period = meta.period_us;
        if meta.count >= MIN_ACCESSES && period > 0.0 && meta.period_dev_us <= MAX_JITTER * period {
            let when = meta.last_us + ((1.0 - LEAD) * period) as u64;
            if self.due.len() >= MAX_DUE {
                self.due.pop();
            }
            self.due.push(Reverse((when, access.id, meta.last_us)));
        }
    }

    /// Forgets successor links of objects the history no longer knows.
    pub(crate) fn prune(&mut self, history: &History) {
        self.next_in_statement.retain(|id, _| history.map.contains_key(id));
    }

    /// Up to `max` predictions at `now_us`, best first: periodic objects now due (earliest first), then the
    /// continuation of the last access's statement. `resident` filters out what is already cached.
    pub(crate) fn predict(&mut self, now_us: u64, max: usize, history: &History, resident: impl Fn(ObjectId) -> bool) -> Vec<ObjectId> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(&Reverse((when, id, from_us))) = self.due.peek() else { break };
            if when > now_us {
                break;
            }
            self.due.pop();
            // Skip predictions made stale by a newer access, and objects already loaded.
            let current = history.map.get(&id).is_some_and(|m| m.last_us == from_us);
            if current && !resident(id) && !out.contains(&id) {
                out.push(id);
            }
        }
        let mut at = self.last.map(|(id, _)| id);
        let mut steps = 0;
        while let Some(id) = at.and_then(|id| self.next_in_statement.get(&id).copied()) {
            if out.len() >= max || steps >= 4 * max {
                break;
            }
            if !resident(id) && !out.contains(&id) {
                out.push(id);
            }
            at = Some(id);
            steps += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_objects_come_due_and_statements_continue() {
        let (mut h, mut p) = (History::default(), Prefetcher::default());
        let mut now = 0;
        let mut see = |h: &mut History, p: &mut Prefetcher, id: ObjectId, time_us: u64, statement: u64| {
            now += 1;
            let a = Access { statement, ..Access::point(id, 100, time_us) };
            let (m, _) = h.record(&a, now);
            let m = *m;
            p.observe(&a, &m);
        };
        for k in 0..4 {
            see(&mut h, &mut p, 7, 1_000 * k, 10 + k);
        }
        // 7 is seen every 1000 µs: due 150 µs before 4000.
        assert!(p.predict(3_800, 4, &h, |_| false).is_empty());
        assert_eq!(p.predict(3_850, 4, &h, |_| false), vec![7]);
        // One statement read 1, 2, 3; after 1 again (new statement), 2 and 3 are predicted.
        for id in [1, 2, 3] {
            see(&mut h, &mut p, id, 5_000 + id, 50);
        }
        see(&mut h, &mut p, 1, 6_000, 51);
        assert_eq!(p.predict(6_001, 4, &h, |id| id == 3), vec![2]);
    }
}
