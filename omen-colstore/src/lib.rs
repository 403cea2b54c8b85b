//! # omen-colstore
//!
//! OmenDB's column store: the OLAP half. It holds the same rows as the row
//! store, as Arrow columns, each row version with `begin`/`end` commit
//! timestamps, so a scan presents any recent snapshot exactly: a version is
//! visible at `ts` iff `begin <= ts < end`.
//!
//! It knows nothing of the row store or SQL: omen-sync feeds it
//! [`ChangeBatch`]es (Arrow rows plus the encoded primary key of each) and
//! omen-sql scans it.
//!
//! ## Example
//!
//! ```
//! use std::collections::HashSet;
//! use std::sync::Arc;
//! use arrow::array::{Int64Array, RecordBatch};
//! use arrow::datatypes::{DataType, Field, Schema};
//! use omen_colstore::{ChangeBatch, ChangeOp, ColumnStore};
//!
//! let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
//! let store = ColumnStore::new();
//! let table = store.create_table(1, schema.clone())?;
//! let rows = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![10, 11]))])?;
//! table.apply(ChangeBatch {
//!     rows,
//!     ops: vec![
//!         ChangeOp::Append { row: 0, key: b"k".to_vec(), ts: 5 },
//!         // The same key updated by commit 6: version 0 ends, version 1 begins.
//!         ChangeOp::End { key: b"k".to_vec(), ts: 6 },
//!         ChangeOp::Append { row: 1, key: b"k".to_vec(), ts: 6 },
//!     ],
//! })?;
//! let at5 = table.scan(5, None, &[], &HashSet::new(), false)?;
//! let at6 = table.scan(6, None, &[], &HashSet::new(), false)?;
//! assert_eq!(at5[0].column(0).as_ref(), &Int64Array::from(vec![10]));
//! assert_eq!(at6[0].column(0).as_ref(), &Int64Array::from(vec![11]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Layout
//!
//! A table is a set of immutable segments (Arrow columns, each row's
//! encoded key, `begin`, and an atomic `end` set once when a later commit
//! supersedes or deletes the row) of at most [`SEGMENT_ROWS`] rows, with a
//! zone map per column ([`Zone`]: min, max, null count). Each applied
//! batch becomes segments; small ones merge by size tier. A key map finds
//! each key's live version to end it (`keymap.rs`, 16 bytes a key).
//! [`ColumnTable::scan`] takes [`Predicate`]s (`=`, `<`, `<=`, `>`, `>=`,
//! `BETWEEN`, `IN`, `IS [NOT] NULL`) and skips the segments their zone
//! maps rule out; it returns batches of at most [`BATCH_ROWS`] rows.
//! [`ColumnTable::compact`] drops versions no snapshot at or after a
//! horizon can see and sorts the rest by key, so key ranges prune.
//! [`ColumnTable::statistics`] gives row counts and column bounds.
//!
//! ## Modules
//!
//! Layered bottom up; a module uses only those in the rows above its own,
//! so each can be read knowing only what is beneath it:
//!
//! | layer | module | what it is |
//! |---|---|---|
//! | 0 | `error` | the error type (binary fields are read and written with `omen_files::codec`) |
//! | 1 | `zone`, `key_column`, `type_tag` | zone maps and predicates; the encoded-key column; the column types held and their tags |
//! | 2 | `manifest`, `files` | the file formats: the manifest; segment and delete files |
//! | 2 | `hot` | the hot tier: segments' decoded columns, kept within a memory budget by an `omen_tier` policy |
//! | 3 | `segment` | a segment: columns (read from its file when needed, through the hot tier), keys, timestamps, visibility |
//! | 4 | `keymap` | each key's newest live version |
//! | 5 | `table` | a table: its state in `table/mod.rs`, and a submodule per concern (`apply`, `scan`, `persist`, `compact`) that uses `mod.rs` and the layers below, never another submodule |
//! | 6 | `store` | the tables by id, opening and persisting them |
//! | 7 | `locate` | two ways to find a key's row, for the bench only (feature `bench-internals`) |
//!
//! ## Column types
//!
//! A table's columns may be of these Arrow types (others are refused by
//! [`ColumnStore::create_table`]): `Boolean`; `Int8` to `Int64` and
//! `UInt8` to `UInt64`; `Float16`, `Float32`, `Float64`; `Utf8`,
//! `LargeUtf8`, `Utf8View`, `Binary`, `LargeBinary`, `BinaryView`,
//! `FixedSizeBinary`; `Date32`, `Date64`, `Time32`, `Time64`, `Timestamp`
//! (any unit, with or without a time zone), `Duration`; `Decimal128` and
//! `Decimal256` with a scale from 0 to the precision. OmenDB's SQL types
//! use `Boolean`, `Int16` to `Int64`, `Float32`, `Float64`, `Decimal128`,
//! `Utf8`, `Binary`, `Date32` and microsecond `Timestamp`s (omen-sync's
//! `convert.rs`). Zone maps keep bounds for the ordered ones among them
//! (see [`Zone`]); every one is written to Parquet and read back as it was.
//!
//! ## Persistence
//!
//! [`ColumnStore::open`] with a directory keeps segments as Parquet files,
//! the ends set since as small delete files, and a manifest with the
//! durable watermark; [`ColumnStore::persist`] writes what changed. The
//! file formats are in `files.rs` and `manifest.rs` (with the format
//! versions); files of every version are kept in `tests/fixtures/colstore/`
//! at the repository's root, and `tests/fixtures.rs` reads them. A
//! reopened table reads its segments' keys, timestamps and zone maps on
//! first use, and a segment's columns only when a scan first needs them:
//! segments its predicates skip stay on disk.
//!
//! ## Limits of this version
//!
//! With [`ColumnStoreOptions::memory_budget`], a segment's columns may
//! leave memory once the segment is in a file, and are read again (only
//! the columns a scan projects) when next needed; which stay is decided
//! per segment and column by the policy of [`ColumnStoreOptions::policy`]
//! (omen-tier's learned policy by default), and
//! [`ColumnStore::hot_metrics`] reports the bytes and the hits. The budget
//! covers the decoded columns, the unpersisted segments (which always
//! stay: a persist every couple of seconds writes them) and every
//! segment's keys, timestamps and zone maps. Not yet in it: the key map
//! (about 18 bytes a key), columns a running scan holds after they were
//! evicted (one segment per partition, plus the segments read ahead), and
//! compaction, which reads the whole table it rewrites and holds the new
//! segments as unpersisted until the next persist. Columns cut out of one
//! large batch (a rebuild, a compaction, a bulk apply) share its buffers,
//! so under a budget they leave memory as soon as their files are written.
//! Scans decode on the thread that polls them (a runtime worker, in
//! omen-sql). If keys and timestamps alone exceed the
//! budget, every column read is dropped after its scan. An in-memory
//! store keeps every column (a budget without a directory is refused).
//! A scan has background readers decode its next segments
//! ([`ColumnStoreOptions::read_ahead`]); loading what the policy predicts
//! the next statements read is off by default
//! ([`ColumnStoreOptions::predictive_warming`]). Reading a column back
//! decodes Parquet: a cold scan that does little per row runs at a small
//! fraction of an all-hot one (the crate's README has the figures).
//! Zone maps of reopened segments come from Parquet's statistics: their
//! floating-point columns prune nothing until compaction rewrites them
//! (Parquet leaves NaN out), long strings' bounds are Parquet's shortened
//! outer bounds, and the footer holding them has no checksum of its own.
//! A segment whose columns turn out damaged when first read fails its
//! scans with [`Error::Corruption`] and is reported by
//! [`ColumnStore::damage`]; omen-sync then gives the files up
//! ([`ColumnStore::discard_files`]) and the next open rebuilds them. Pruning is by segment only: rows of a
//! segment that is read are not filtered by the predicates.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod files;
mod hot;
mod key_column;
mod keymap;
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod locate;
mod manifest;
mod segment;
mod store;
mod table;
mod type_tag;
mod zone;

pub use error::{Error, Result};
pub use files::Codec;
pub use hot::{HotMetrics, MIN_COLUMN_BUDGET};
pub use key_column::{KEY_COLUMN, key_field, with_key_column};
/// The cache policies the hot tier may run (omen-tier's).
pub use omen_tier::PolicyKind as CachePolicy;
pub use segment::OPEN;
pub use store::{ColumnStore, ColumnStoreOptions, DEFAULT_READ_AHEAD};
pub use table::{BATCH_ROWS, ChangeBatch, ChangeOp, ColumnTable, CompactStats, PersistStats, SEGMENT_ROWS, Scan, TableStatistics};
pub use zone::{CmpOp, Predicate, Test, Zone};
