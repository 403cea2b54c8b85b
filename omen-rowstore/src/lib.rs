//! # omen-rowstore
//!
//! OmenDB's row store: the OLTP half of the database. It owns
//!
//! - the **row codec** ([`encode_row`]/[`decode_row`], versioned, NULLs as a
//!   bitmap) and **memcomparable keys** ([`encode_key`]): byte order is SQL order,
//!   for single and composite keys;
//! - **tables** of version chains (newest first, `[begin, end)` commit
//!   timestamps) under a catalog of [`TableSchema`]s;
//! - **secondary indexes** ([`Store::create_index`], [`IndexDef`]): entries
//!   written in the row's own transaction, so index reads
//!   ([`Transaction::index_scan`]) are exact at any snapshot and unique
//!   indexes are enforced like primary keys; key ranges ([`KeyRange`]) over
//!   indexes and primary keys;
//! - **transactions** with snapshot isolation ([`Transaction`]): first updater
//!   wins, read-your-own-writes, rollback on drop, read-only transactions never
//!   abort;
//! - the **write-ahead log** (Full / Normal / Off [`Durability`]): segment
//!   files, group commit (one write and one fdatasync per group; pwrite or
//!   io_uring, [`IoBackend`]), torn tails cut off on open;
//! - **checkpoints** ([`Store::checkpoint`], also in the background): what
//!   changed in each table since the last one (rows and tombstones), at a
//!   snapshot, in a run file with a learned index and a Bloom filter, a
//!   manifest replaced atomically, and the log cut behind them; runs merge
//!   size-tiered ([`Store::compact`] merges each table into one); the runs
//!   are memory-mapped and serve reads of rows no longer in memory; opening
//!   maps the runs and replays the log after them;
//! - the **change stream** ([`Store::subscribe`]): one [`ChangeRecord`] per
//!   commit, in commit order, with back pressure. omen-sync consumes it.
//!   [`Store::replay_changes`] gives it back from the log after any
//!   timestamp the log still holds ([`Store::hold_log`] keeps it).
//!
//! It knows nothing of SQL, Arrow or the column store.
//!
//! ## Example
//!
//! ```
//! use omen_rowstore::{ColumnDef, DataType, Store, StoreOptions, TableSchema, Value, encode_key};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(StoreOptions { dir: Some(dir.path().into()), ..Default::default() })?;
//! let schema = TableSchema {
//!     name: "accounts".into(),
//!     columns: vec![ColumnDef::new("id", DataType::Int64).not_null(), ColumnDef::new("balance", DataType::Int64)],
//!     primary_key: vec![0],
//! };
//! let (accounts, _) = store.create_table(schema)?;
//!
//! let mut txn = store.begin()?;
//! let key = txn.insert(accounts, vec![Value::Int64(1), Value::Int64(100)])?;
//! txn.commit()?;
//!
//! let reader = store.begin()?;
//! assert_eq!(reader.get(accounts, &key)?, Some(vec![Value::Int64(1), Value::Int64(100)]));
//! assert_eq!(key, encode_key(&[Value::Int64(1)], &[0]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## How it is built
//!
//! Each key's versions form a chain behind its own small lock, reachable from
//! a sharded hash index (point operations) and an ordered map (range scans).
//! Snapshots register in lock-free slots; a garbage collector (background
//! thread, or [`Store::collect_garbage`]) frees what no snapshot can read.
//! On disk (`dir`): log segments `wal-*.log`, a `MANIFEST`, and run files
//! `run-*.omr`. `docs/ARCHITECTURE.md` has the byte layouts, the commit and
//! checkpoint protocols, and the measurements behind them.
//!
//! ## Layers
//!
//! Each module uses only those on the lines above it, or on its own line:
//!
//! 1. `error`, `value`, `bloom` (a run's key filter), `snapshots` (the commit
//!    clock, [`Ts`], and the open snapshots);
//! 2. `codec` and `schema`, each using the other: a row decodes by its
//!    table's schema, and a schema encodes its columns' defaults as values;
//! 3. `changes` (the change stream's records) and `run` (checkpoint run
//!    files and their names);
//! 4. `table` and `index`, each using the other: a table holds its indexes,
//!    and an index's entries are a table; tables read their runs;
//! 5. `manifest` (names runs and indexes) and `alter` (rewrites tables);
//! 6. `wal`, whose records carry schemas, index definitions and ALTER
//!    reshapes;
//! 7. `store` and `txn`, each using the other: the store begins
//!    transactions and commits their writes.
//!
//! Inside `wal/` and `store/`, files depend one way too; each folder's
//! `mod.rs` says how.
//!
//! ## Limits of this version
//!
//! A write to a row held by another open transaction fails at once with
//! [`Error::SerializationConflict`] rather than waiting for the holder. A
//! range scan holds the table's ordered-map read lock while it runs, so keys
//! new to the table wait for it (updates of existing keys do not). Under
//! [`Durability::Full`] a commit becomes visible once it is durable. After
//! a checkpoint a table's rows are read from its memory-mapped run; memory
//! holds the rows changed since (and every secondary index's entries,
//! rebuilt from the rows on open). Merges of runs hold the checkpoint lock,
//! so a merge of a large table delays the next checkpoint. Replaying the
//! change stream stops at an ALTER TABLE (the log holds the reshape, not
//! the rewritten rows).

#![deny(missing_docs)]
// Two modules use unsafe: io_uring submissions (`wal/uring.rs`) and the
// memory map of a run (`run.rs`); every block says why it is sound.
#![deny(unsafe_code)]

mod alter;
mod bloom;
mod changes;
pub mod codec;
mod error;
#[cfg(test)]
mod faults;
mod index;
mod manifest;
mod run;
mod schema;
mod snapshots;
mod store;
mod table;
mod txn;
mod value;
mod wal;

pub use alter::Alteration;
pub use changes::{Change, ChangeOp, ChangeRecord, RowChange, Subscription};
pub use codec::key::{encode_key, encode_row_id};
pub use codec::row::{decode_row, encode_row};
pub use error::{Error, Result};
pub use index::{IndexDef, KeyRange};
pub use schema::{ColumnDef, TableId, TableSchema};
pub use snapshots::Ts;
pub use store::{CheckpointInfo, GcStats, LogHold, Store, StoreOptions, StoreStats};
pub use txn::{KeyedRows, Savepoint, Transaction};
pub use value::{DataType, Value};
pub use wal::{Durability, IoBackend, NORMAL_SYNC_INTERVAL};
