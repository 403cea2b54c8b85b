//! # omen-sync
//!
//! The bridge between OmenDB's two formats, and the reason it exists:
//! analytics on transactional data with no ETL and no staleness.
//!
//! - [`Syncer`] consumes the row store's change stream in commit order,
//!   micro-batches it, converts rows to Arrow and applies them to the column
//!   store (insert: append; update: end the old version, append the new;
//!   delete: end the old version), then advances the applied watermark W.
//! - [`HtapSnapshot`] is one table as a transaction sees it at its snapshot
//!   T: the column store as of min(T, W), the commits in (W, T] that sync
//!   has received but not applied overlaid from the change stream, and the
//!   transaction's own uncommitted writes over both. A read right after a
//!   commit sees it without waiting for sync. omen-sql scans it without
//!   knowing where rows came from.
//! - [`ChangeFeed`] gives an application one table's committed changes as
//!   Arrow batches, from the log until caught up and then live, without
//!   ever holding commits back.
//! - [`convert`] maps SQL values and types to Arrow and back.
//!
//! ## Example
//!
//! ```
//! use std::sync::Arc;
//! use omen_colstore::ColumnStore;
//! use omen_rowstore::{ColumnDef, DataType, Store, StoreOptions, TableSchema, Value};
//! use omen_sync::{SyncOptions, Syncer};
//!
//! let rows = Store::open(StoreOptions::default())?;
//! let (t, _) = rows.create_table(TableSchema {
//!     name: "t".into(),
//!     columns: vec![ColumnDef::new("id", DataType::Int64).not_null()],
//!     primary_key: vec![0],
//! })?;
//! let sync = Syncer::start(rows.clone(), Arc::new(ColumnStore::new()), SyncOptions::default())?;
//! let mut txn = rows.begin()?;
//! txn.insert(t, vec![Value::Int64(7)])?;
//! txn.commit()?;
//!
//! let reader = rows.begin()?;
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! let snaps = rt.block_on(sync.snapshot(&reader, &[t]))?;
//! let batches = snaps[&t].scan(None, false)?;
//! assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Layout
//!
//! Bottom up, each module using only those above it in this list:
//! `error`, `inbox` (the records sync holds but has not applied) and
//! `metrics`; `convert` (rows <-> Arrow); `feed` (change feeds);
//! `worker` ([`Syncer`]: the apply and maintenance threads); `snapshot`
//! ([`Syncer::snapshot`] and [`HtapSnapshot`], the reads, kept apart from
//! the worker that writes).
//!
//! ## Limits of this version
//!
//! A snapshot waits for W >= T instead of overlaying when DDL is among the
//! commits in (W, T] or more of them wait than sync holds in memory
//! (`channel_capacity + max_batch_records`). A change feed's position
//! survives a restart only while the log still holds it: log holds live in
//! memory (there are no persistent replication slots). A feed catching up
//! re-reads the log segment it resumes in for each read-ahead chunk, so a
//! feed far behind over large segments reads more than it gives.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod convert;
mod error;
mod feed;
mod inbox;
mod metrics;
mod snapshot;
mod worker;

pub use error::{Error, Result};
pub use feed::{ChangeFeed, ChangeFeedOptions};
pub use metrics::{LagSnapshot, SyncMetrics};
pub use snapshot::HtapSnapshot;
pub use worker::{SyncOptions, SyncPause, Syncer};
