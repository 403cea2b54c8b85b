//! Table scans: the DataFusion `TableProvider` over a statement's
//! snapshot of a table (`provider.rs`), the data source that streams the
//! snapshot's segments (`segments.rs`), the one over it that applies
//! dynamic filters (`source.rs`), and the zone-map predicates a scan's
//! filters become (`pruning.rs`).
//!
//! Layering: `pruning`, `segments` and `source` at the bottom, `provider`
//! over them.
//! The scan knows nothing of sessions or the plan cache.

pub(crate) mod provider;
pub(crate) mod pruning;
pub(crate) mod segments;
pub(crate) mod source;
