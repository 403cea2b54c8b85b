//! Eviction policies: the [`Policy`] trait, one policy per file, and [`PolicyKind`] to build one by name.

mod learned;
mod lru;
mod queues;
mod s3fifo;
mod sketch;
mod wtinylfu;

pub use learned::{Learned, LearnedConfig, Objective};
pub use lru::Lru;
pub use s3fifo::{S3Fifo, S3FifoConfig};
pub use wtinylfu::{WTinyLfu, WTinyLfuConfig};

use crate::{Access, ObjectId};

/// An eviction policy: tracks resident objects' metadata and chooses victims. It never holds the objects.
///
/// The protocol, as [`Tier`](crate::Tier) drives it: every access calls [`on_access`](Policy::on_access); a
/// miss the caller decides to cache asks [`admits`](Policy::admits), then calls [`on_admit`](Policy::on_admit),
/// then [`victim`](Policy::victim) until the cache fits. A victim is forgotten by the policy as it is returned.
pub trait Policy: Send {
    /// A short lowercase name for reports ("lru", "s3fifo", ...).
    fn name(&self) -> &str;

    /// Every access, before the cache acts; `resident` tells whether it is a hit.
    fn on_access(&mut self, access: &Access, resident: bool);

    /// Whether the policy would keep this object at all, asked before [`on_admit`](Policy::on_admit). False makes
    /// the cache refuse it without disturbing residents (S3-FIFO refuses objects as large as its small queue).
    fn admits(&self, access: &Access) -> bool {
        let _ = access;
        true
    }

    /// The object became resident (after a miss, or a prefetch).
    fn on_admit(&mut self, access: &Access);

    /// The next resident to evict, or None if it tracks none. May return the object just admitted (an admission
    /// refused). `pinned(id)` true means that resident cannot leave now: skip it (it stays resident).
    fn victim(&mut self, pinned: &dyn Fn(ObjectId) -> bool) -> Option<ObjectId>;

    /// The object left the cache for a reason other than `victim` (its owner dropped it); forget it. Unknown ids
    /// are ignored.
    fn on_remove(&mut self, id: ObjectId);

    /// The cache's capacity changed; policies with byte-sized queues rescale them. Residents stay where they are:
    /// the evictions that follow restore the shares.
    fn set_capacity(&mut self, capacity_bytes: u64) {
        let _ = capacity_bytes;
    }

    /// Named counters for metrics and reports (the learned policy's fits, fit time, evictions by the model and
    /// by its fallback). Classic policies report none.
    fn diagnostics(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }

    /// Up to `max` non-resident objects the policy predicts will be accessed soon, best first (predictive
    /// read-ahead across statements). Classic policies return none.
    fn prefetch(&mut self, now_us: u64, max: usize) -> Vec<ObjectId> {
        let _ = (now_us, max);
        Vec::new()
    }
}

/// Which policy a [`Tier`](crate::Tier) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PolicyKind {
    /// Least recently used.
    Lru,
    /// S3-FIFO with libCacheSim's defaults.
    S3Fifo,
    /// W-TinyLFU with Caffeine's initial shares.
    WTinyLfu,
    /// The learned policy (the default): see [`Learned`].
    #[default]
    Learned,
}

impl PolicyKind {
    /// Every kind, for tables and tests.
    pub const ALL: [PolicyKind; 4] = [PolicyKind::Lru, PolicyKind::S3Fifo, PolicyKind::WTinyLfu, PolicyKind::Learned];

    /// A fresh policy of this kind for a cache of `capacity_bytes` (policies with byte-sized queues need it).
    pub fn build(self, capacity_bytes: u64) -> Box<dyn Policy> {
        match self {
            PolicyKind::Lru => Box::new(Lru::new()),
            PolicyKind::S3Fifo => Box::new(S3Fifo::new(capacity_bytes)),
            PolicyKind::Learned => Box::new(Learned::new(capacity_bytes)),
            PolicyKind::WTinyLfu => Box::new(WTinyLfu::new(capacity_bytes)),
        }
    }
}
