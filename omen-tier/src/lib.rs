//! # omen-tier
//!
//! Cache placement for storage objects under a byte budget. An object is a `u64` id, a size in bytes and a
//! history of [`Access`]es; this crate decides which objects stay resident in a tier (the column store's hot,
//! decoded-in-memory tier) and which leave. It knows nothing of rows, columns or SQL and depends on no other
//! omen crate; it never holds the objects, only their ids and sizes.
//!
//! ## Layering
//!
//! - [`Access`], [`ObjectId`], [`AccessKind`]: what the cache is told.
//! - [`Policy`]: an eviction policy (metadata and victim choice). One file per policy: [`Lru`], [`S3Fifo`],
//!   [`WTinyLfu`], and the default, [`Learned`] (shadow experts: a model trained online on the access history and
//!   the three classic policies run on metadata-only shadow caches; the real cache follows whichever has the best
//!   recent hit ratio); [`PolicyKind`] builds one by name.
//! - [`Tier`]: a byte-capacity cache that drives a policy: hit/miss accounting, admission, eviction with pinned
//!   objects skipped. The store and the simulator both use it.
//! - [`trace`]: the recorder format ([`trace::TraceWriter`], [`trace::TraceReader`]), conversion to
//!   libCacheSim's oracleGeneral format, and deterministic synthetic workloads.
//! - [`sim`]: replays a trace through a `Tier`, or through Belady's MIN ([`sim::belady`]), which needs the
//!   future and so is not a policy.
//!
//! ## Example
//!
//! ```
//! use omen_tier::{Access, PolicyKind, Tier};
//!
//! let mut tier = Tier::new(PolicyKind::Lru.build(300), 300);
//! let not_pinned = |_| false;
//! for id in [1, 2, 3] {
//!     let access = Access::point(id, 100, id);
//!     if !tier.access(&access) {
//!         // Load the object, then make it resident; nothing needs to leave yet.
//!         assert!(tier.admit(&access, &not_pinned).is_empty());
//!     }
//! }
//! assert!(tier.access(&Access::point(1, 100, 4))); // a hit: 1 is now the most recent
//! let four = Access::point(4, 100, 5);
//! assert!(!tier.access(&four));
//! // 4 needs room: the least recently used object (2) must be dropped by the caller.
//! assert_eq!(tier.admit(&four, &not_pinned), vec![2]);
//! assert_eq!(tier.used(), 300);
//! assert_eq!(tier.stats().hits, 1);
//! ```
//!
//! ## Limits
//!
//! A `Tier` is single-threaded (`&mut self`); the store wraps it in its own lock. Policies are `Send`.
//! Costs per access are O(1) amortized, plus a walk past pinned objects at the back of a queue when evicting.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod access;
mod policy;
mod rng;
pub mod sim;
mod tier;
pub mod trace;

pub use access::{Access, AccessKind, ObjectId};
pub use policy::{Learned, LearnedConfig, Lru, Objective, Policy, PolicyKind, S3Fifo, S3FifoConfig, WTinyLfu, WTinyLfuConfig};
pub use tier::{Tier, TierStats};
