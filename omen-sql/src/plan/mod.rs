//! Planning and running queries: a statement's catalog of snapshot tables
//! and its execution (`query.rs`), the access paths that read key ranges
//! from the row store instead of scanning (`access.rs`), the checked
//! integer arithmetic rule (`checked.rs`) and the per-query memory pool
//! (`memory.rs`).
//!
//! Layering: `checked` and `memory` at the bottom, `access` over the scan
//! layer, `query` over both.

pub(crate) mod access;
pub(crate) mod checked;
pub(crate) mod memory;
pub(crate) mod query;

pub(crate) use checked::CheckedArithmetic;
