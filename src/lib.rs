//! # OmenDB
//!
//! An embeddable HTAP database: ACID transactions and real-time analytics on
//! the same data, in your process, with no ETL and no staleness. Writes go to
//! an MVCC row store with a write-ahead log; every commit streams into an
//! Apache Arrow column store; SQL runs on Apache DataFusion over snapshots
//! that are exact at the transaction's timestamp and include its own writes.
//!
//! This crate is the facade: [`Database`], [`Transaction`], [`Statement`]
//! (prepared statements; primary-key point statements skip query planning),
//! [`Connection`] (a session that takes SQL `BEGIN`/`COMMIT`), [`Options`]
//! and one [`Error`] type. The storage crates (omen-rowstore, omen-colstore,
//! omen-sync, omen-sql, ...) are implementation details.
//!
//! ## Example
//!
//! ```
//! use omendb::{Database, params};
//! use arrow::array::{Array, Int64Array};
//!
//! let dir = tempfile::tempdir()?;
//! let db = Database::open(dir.path())?;
//! db.execute("CREATE TABLE accounts (id BIGINT PRIMARY KEY, owner TEXT NOT NULL, balance BIGINT)", params![])?;
//!
//! let mut txn = db.begin()?;
//! txn.execute("INSERT INTO accounts VALUES ($1, $2, $3)", params![1, "ada", 100])?;
//! txn.execute("INSERT INTO accounts VALUES ($1, $2, $3)", params![2, "alan", 50])?;
//! txn.commit()?;
//!
//! let batches = db.query("SELECT sum(balance) AS total FROM accounts", params![])?;
//! let total = batches[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap();
//! assert_eq!(total.value(0), 150);
//! db.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Threads and async
//!
//! `Database` is `Send + Sync` and cheap to clone. Its blocking methods work
//! from any thread, inside a tokio runtime or not; each has an `_async` twin.
//! Background work runs on threads the database owns and stops on
//! [`Database::close`] (or when the last clone is dropped).
//!
//! ## Layout
//!
//! Bottom up: `options`, `value`, `output`, `changes`; `dir` (the data
//! directory's lock and layout file); `handle` (what every handle on an
//! open database shares: the engine, the runtime, the lock); `statement`,
//! `connection`; `transaction`; `database` ([`Database`], which makes the
//! others); `server` (feature `server`: the PostgreSQL wire protocol over
//! a [`Database`]). Errors are omen-sql's ([`Error`]).
//!
//! ## Limits of this version
//!
//! See the README's status section: this is the foundation release. SQL
//! coverage and its limits are listed in the omen-sql crate docs; every
//! unsupported construct fails with [`Error::Unsupported`] naming it.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod changes;
mod connection;
mod database;
mod dir;
mod handle;
mod options;
mod output;
#[cfg(feature = "server")]
pub mod server;
mod statement;
mod transaction;
mod value;

pub use arrow;
pub use changes::ChangeFeed;
pub use connection::Connection;
pub use database::{BatchStream, Database, RecordBatchIter};
pub use omen_colstore::{HotMetrics as ColumnMetrics, MIN_COLUMN_BUDGET};
pub use omen_rowstore::CheckpointInfo;
/// One error type for the whole database, defined in omen-sql (the layer
/// the facade, the server and the SQL engine share): structured variants,
/// each with its PostgreSQL SQLSTATE ([`Error::sqlstate`]).
pub use omen_sql::{Error, Result};
pub use omen_sync::{LagSnapshot, SyncMetrics};
pub use options::{CachePolicy, Durability, IoBackend, LAYOUT_VERSION, Options};

/// What [`Database::metrics`] reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Metrics {
    /// The column store's memory and hot tier.
    pub columns: ColumnMetrics,
}
pub use output::Output;
pub use statement::Statement;
pub use transaction::Transaction;
pub use value::{ToValue, Value};
