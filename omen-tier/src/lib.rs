//! # omen-tier
//!
//! Decides where each storage object lives: **hot** (decoded in memory),
//! **warm** (local files) or **cold** (object store), within a memory budget
//! and a local-disk budget. It knows nothing of rows, columns or SQL: an
//! object is an id, a size in bytes and a history of accesses. The stores
//! carry out the moves; this crate only plans them.
//!
//! ## Example
//!
//! ```
//! use omen_tier::{Budgets, Placer, Tier};
//!
//! let mut placer = Placer::new(0.5);
//! placer.track(1, 1_000);
//! placer.track(2, 1_000);
//! for _ in 0..10 {
//!     placer.record_access(1);
//! }
//! placer.end_epoch();
//! let plan = placer.plan(Budgets { memory_bytes: 1_000, disk_bytes: 1_000 });
//! assert_eq!(plan.tier(1), Some(Tier::Hot));
//! assert_eq!(plan.tier(2), Some(Tier::Warm));
//! ```
//!
//! ## Limits of this version
//!
//! The access model is an exponentially decayed access count per object and
//! the plan a greedy fill by accesses per byte. The learned access model
//! (trained online, predicting re-access) is future work; the stores do not
//! call this crate yet. It is a workspace member on its own: no omen crate
//! depends on it and it depends on none. The tiered-storage work wires it
//! into the column store (see `docs/ARCHITECTURE.md`, "Crates").

#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::collections::HashMap;

/// Where an object lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Decoded in memory.
    Hot,
    /// Local files.
    Warm,
    /// The object store.
    Cold,
}

/// Space available to the hot and warm tiers, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budgets {
    /// Memory for hot objects.
    pub memory_bytes: u64,
    /// Local disk for warm objects.
    pub disk_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct Stats {
    bytes: u64,
    /// Decayed accesses before this epoch.
    heat: f64,
    /// Accesses during this epoch.
    recent: u64,
}

/// Tracks objects and their accesses, and plans placements.
#[derive(Debug, Clone)]
pub struct Placer {
    decay: f64,
    objects: HashMap<u64, Stats>,
}

impl Placer {
    /// A placer whose heat keeps `decay` (0..=1) of its value per epoch:
    /// 0 remembers only the last epoch, 1 never forgets. Clamped to 0..=1.
    pub fn new(decay: f64) -> Self {
        Self { decay: if decay.is_nan() { 0.0 } else { decay.clamp(0.0, 1.0) }, objects: HashMap::new() }
    }

    /// Starts tracking an object, or updates its size.
    pub fn track(&mut self, id: u64, bytes: u64) {
        self.objects.entry(id).and_modify(|s| s.bytes = bytes).or_insert(Stats { bytes, heat: 0.0, recent: 0 });
    }

    /// Stops tracking an object (it was deleted or compacted away).
    pub fn forget(&mut self, id: u64) {
        self.objects.remove(&id);
    }

    /// Counts one access; accesses to untracked objects are ignored.
    pub fn record_access(&mut self, id: u64) {
        if let Some(s) = self.objects.get_mut(&id) {
            s.recent += 1;
        }
    }

    /// Folds this epoch's accesses into each object's decayed heat.
    pub fn end_epoch(&mut self) {
        for s in self.objects.values_mut() {
            s.heat = s.heat * self.decay + s.recent as f64;
            s.recent = 0;
        }
    }

    /// Plans a placement: objects by heat per byte (ties by id, so plans are
    /// deterministic), hot while memory lasts, then warm while disk lasts,
    /// then cold. An object larger than what is left skips to the next tier.
    pub fn plan(&self, budgets: Budgets) -> Plan {
        let mut order: Vec<(u64, Stats)> = self.objects.iter().map(|(&id, &s)| (id, s)).collect();
        let density = |s: &Stats| s.heat / s.bytes.max(1) as f64;
        order.sort_by(|(ia, a), (ib, b)| density(b).total_cmp(&density(a)).then(ia.cmp(ib)));
        let (mut memory, mut disk) = (budgets.memory_bytes, budgets.disk_bytes);
        let placement = order
            .into_iter()
            .map(|(id, s)| {
                let tier = if s.heat > 0.0 && s.bytes <= memory {
                    memory -= s.bytes;
                    Tier::Hot
                } else if s.bytes <= disk {
                    disk -= s.bytes;
                    Tier::Warm
                } else {
                    Tier::Cold
                };
                (id, tier)
            })
            .collect();
        Plan { placement }
    }
}

/// A placement for every tracked object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    placement: HashMap<u64, Tier>,
}

impl Plan {
    /// The tier planned for an object.
    pub fn tier(&self, id: u64) -> Option<Tier> {
        self.placement.get(&id).copied()
    }

    /// Every object and its tier.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Tier)> + '_ {
        self.placement.iter().map(|(&id, &t)| (id, t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn plans_respect_budgets_and_prefer_heat(
            objects in proptest::collection::vec((1u64..10_000, 0u32..20), 0..60),
            memory in 0u64..50_000,
            disk in 0u64..100_000,
        ) {
            let mut placer = Placer::new(0.5);
            for (id, &(bytes, hits)) in objects.iter().enumerate() {
                placer.track(id as u64, bytes);
                for _ in 0..hits {
                    placer.record_access(id as u64);
                }
            }
            placer.end_epoch();
            let plan = placer.plan(Budgets { memory_bytes: memory, disk_bytes: disk });
            let used = |tier| plan.iter().filter(|&(_, t)| t == tier).map(|(id, _)| objects[id as usize].0).sum::<u64>();
            prop_assert!(used(Tier::Hot) <= memory);
            prop_assert!(used(Tier::Warm) <= disk);
            prop_assert_eq!(plan.iter().count(), objects.len());
            // A cold object did not fit in what memory or disk had left.
            for (id, tier) in plan.iter() {
                let bytes = objects[id as usize].0;
                if tier == Tier::Cold {
                    prop_assert!(bytes > disk - used(Tier::Warm));
                }
                if objects[id as usize].1 == 0 {
                    prop_assert_ne!(tier, Tier::Hot, "never-read objects are not kept hot");
                }
            }
        }
    }

    #[test]
    fn heat_decays_across_epochs() {
        let mut placer = Placer::new(0.1);
        placer.track(1, 10);
        placer.track(2, 10);
        for _ in 0..100 {
            placer.record_access(1);
        }
        placer.end_epoch();
        for _ in 0..20 {
            placer.record_access(2);
        }
        placer.end_epoch();
        // Object 1: 100 * 0.1 = 10; object 2: 20. Only one fits in memory.
        let plan = placer.plan(Budgets { memory_bytes: 10, disk_bytes: 0 });
        assert_eq!(plan.tier(2), Some(Tier::Hot));
        assert_eq!(plan.tier(1), Some(Tier::Cold));
        placer.forget(2);
        assert_eq!(placer.plan(Budgets { memory_bytes: 10, disk_bytes: 0 }).tier(1), Some(Tier::Hot));
    }
}
