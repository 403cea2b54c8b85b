//! # omen-sql
//!
//! SQL for OmenDB, on Apache DataFusion. It owns the catalog's SQL face (DDL),
//! DML, transactions as SQL sees them, and the DataFusion plumbing: every
//! table of a statement is a DataFusion `TableProvider` over an
//! [`omen_sync::HtapSnapshot`] at the statement's transaction snapshot, so
//! analytic reads are exact and see the transaction's own writes.
//!
//! - [`Engine`] opens the stores, starts sync and holds DataFusion's shared
//!   state (functions, configuration, memory pool).
//! - [`Session`] runs statements, autocommit or inside `BEGIN` ... `COMMIT`,
//!   with PostgreSQL's rule that an error aborts the open transaction.
//! - [`PreparedStatement`] is a statement parsed and planned once. The
//!   engine also caches the plans of recently run SQL texts, so a repeated
//!   statement is not parsed or planned again.
//! - [`Output`] is what a statement produced: an Arrow stream, a row count,
//!   or a command tag.
//!
//! This is the only crate besides the facade that depends on DataFusion.
//!
//! ## Example
//!
//! ```
//! use omen_sql::{Engine, EngineOptions, Output};
//! use omen_rowstore::Value;
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let engine = Engine::open(EngineOptions::default())?;
//! let mut session = engine.session();
//! session.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT)", &[]).await?;
//! session.execute("INSERT INTO t VALUES ($1, $2)", &[Value::Int64(1), Value::Text("a".into())]).await?;
//! let Output::Rows { stream, .. } = session.execute("SELECT count(*) FROM t", &[]).await? else { unreachable!() };
//! let batches: Vec<_> = futures::TryStreamExt::try_collect(stream).await?;
//! assert_eq!(batches[0].num_rows(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## What is supported, and the limits of this version
//!
//! - Queries: everything DataFusion's SQL supports, over OmenDB tables.
//! - DDL: `CREATE TABLE [IF NOT EXISTS]` with column and table PRIMARY KEY,
//!   UNIQUE, NOT NULL, NULL and constant DEFAULTs; `CREATE TABLE ... AS
//!   query` (no primary key; columns take the query's names and types);
//!   `DROP TABLE [IF EXISTS]`; `ALTER TABLE [IF EXISTS] t` with `ADD COLUMN
//!   [IF NOT EXISTS]` (constant DEFAULT, NOT NULL; no PRIMARY KEY or
//!   UNIQUE), `DROP COLUMN [IF EXISTS]` (indexes on it go too; not a
//!   primary-key column), `RENAME COLUMN`, `RENAME TO`, `ADD PRIMARY KEY
//!   (columns)` on a table without one (rows are re-keyed; a NULL or a
//!   duplicate refuses it), several at once.
//!   ALTER TABLE rewrites the table: it waits for open writers as index DDL
//!   does, and a transaction whose snapshot predates it can no longer read
//!   the table;
//!   `CREATE [UNIQUE] INDEX [IF NOT EXISTS] [name] ON t (columns)` (btree on
//!   plain columns; no expressions, INCLUDE or WHERE) and `DROP INDEX [IF
//!   EXISTS]`. Index DDL waits (up to ten seconds) for open transactions
//!   that wrote the table. The catalog is not transactional: DDL commits on
//!   its own, at once. Inside a transaction block it is taken only before
//!   the block writes (drivers wrap migrations in BEGIN ... COMMIT) and, at
//!   REPEATABLE READ, reads; the block then sees the new catalog, ROLLBACK
//!   does not undo the DDL, and the session leaves a warning saying so
//!   ([`Session::take_warnings`]).
//!   VARCHAR(n)/CHAR(n) are TEXT: the length is not enforced, CHAR is not
//!   padded. Unconstrained NUMERIC is NUMERIC(38,10). `WITH (fillfactor =
//!   n)` is accepted and has no effect; other table options are refused.
//! - Casts follow DataFusion, which differs from PostgreSQL in places: text
//!   cast to BYTEA takes the string's bytes (PostgreSQL parses `\x` hex;
//!   use `decode(s, 'hex')`), and a float cast to an integer truncates
//!   (PostgreSQL rounds).
//! - Integer `+`, `-` and `*` fail on overflow with PostgreSQL's "bigint out
//!   of range" (`plan/checked.rs`; DataFusion's operators wrap around).
//! - DML: `INSERT ... VALUES | SELECT`, `UPDATE ... SET ... WHERE`,
//!   `DELETE ... WHERE`, with `$n` parameters; `INSERT ... ON CONFLICT
//!   [(columns) | ON CONSTRAINT name] DO NOTHING | DO UPDATE SET ... [WHERE]`
//!   and `RETURNING` on all three. Rows collide at the transaction's
//!   snapshot: a colliding row committed after it is a serialization
//!   conflict (PostgreSQL's REPEATABLE READ does the same). RETURNING and
//!   DO UPDATE expressions may not hold subqueries or aggregates.
//! - `UPDATE t SET ... FROM other [, ...] WHERE ...` and `DELETE FROM t
//!   USING other [, ...] WHERE ...`: a target row that joins several rows
//!   changes once, as in PostgreSQL. Their RETURNING sees the target's
//!   columns only (PostgreSQL also lets it name the other tables').
//! - `TRUNCATE [TABLE] t [, ...]` deletes every row in the statement's
//!   transaction (so ROLLBACK undoes it, as in PostgreSQL), at the cost of
//!   a delete per row. `VACUUM` and `ANALYZE` check the tables they name
//!   and return; VACUUM runs a garbage-collection pass (see `write/maintenance.rs`).
//! - Bulk loads: `COPY t [(columns)] FROM STDIN` in PostgreSQL's text and
//!   CSV formats ([`Session::copy_from`], [`CopyIn`]; `write/copy.rs` lists the
//!   options); not COPY TO, files, programs or the binary format.
//! - Transactions: `BEGIN`/`START TRANSACTION`, `COMMIT`/`END`, `ROLLBACK`;
//!   two levels ([`Isolation`]). REPEATABLE READ, the default of an
//!   embedded [`Session`], is snapshot isolation: a write to a row another
//!   transaction holds, or committed after the snapshot, fails at once with
//!   a serialization conflict (40001). READ COMMITTED (PostgreSQL's
//!   default, which the server uses) gives each statement a fresh snapshot;
//!   a statement that meets such a row is undone, waits for the holder and
//!   runs again; it fails with 40P01 ([`Error::Deadlock`]) after waiting
//!   `deadlock_timeout` (1 s; OmenDB has no cycle detector), or with
//!   55P03 ([`Error::LockNotAvailable`]) after `lock_timeout` if set. Choose with `BEGIN ISOLATION LEVEL`, `SET TRANSACTION` or
//!   [`Session::set_default_isolation`]; SERIALIZABLE is refused.
//!   `SAVEPOINT name`, `ROLLBACK TO [SAVEPOINT] name` and `RELEASE
//!   [SAVEPOINT] name` follow PostgreSQL: names may repeat, ROLLBACK TO
//!   keeps the savepoint and brings back a transaction a failed statement
//!   aborted. A statement cancelled mid-run loses the whole transaction.
//! - Settings: `SET`, `SHOW [ALL]`, `RESET [ALL]` of PostgreSQL's common
//!   run-time parameters, per session ([`Settings`]); values that OmenDB
//!   cannot honour (another client encoding, SERIALIZABLE) are refused.
//!   `SET` is not undone by ROLLBACK, and `SET LOCAL` is refused.
//! - PostgreSQL's catalogs for psql and drivers: `pg_catalog` tables,
//!   `version()`, `current_database()`, `current_schema()`, `to_regtype()`
//!   and the functions psql's `\d` and SQLAlchemy's reflection use
//!   (`pg/catalog.rs`, `pg/functions.rs`); primary keys and indexes in
//!   `pg_class`, `pg_index` and `pg_constraint` (`pg/indexes.rs`; UNIQUE
//!   constraints show as unique indexes). Statements that mention them are
//!   parsed by datafusion-pg-catalog's compatibility parser, whose rewrites
//!   suit catalog queries (a projection subquery DataFusion cannot run
//!   becomes NULL there; a scalar subquery that does not aggregate takes
//!   the max of its rows). `current_setting()` gives defaults, not the
//!   session's `SET`. `information_schema`'s `tables`, `columns`,
//!   `schemata`, `table_constraints` and `key_column_usage` list the user
//!   schema's tables (`pg/information_schema.rs`).
//! - Errors map to PostgreSQL's SQLSTATEs ([`Error::sqlstate`]).
//! - The OLTP fast path: a statement that reads, updates or deletes one row
//!   through equalities on its whole primary key (other predicates may be
//!   ANDed on), and `INSERT ... VALUES`, skip DataFusion when they run; its
//!   expressions are compiled once into DataFusion physical expressions, so
//!   results and errors are DataFusion's. See `write/fast.rs` for the shapes.
//!   [`Session::execute_fast`] runs it on the calling thread.
//! - Access paths: a scan whose filters fix leading primary-key or index
//!   columns (`=`, `IN`, `IS NULL`) or bound the next (`<`, `BETWEEN`, ...)
//!   reads those key ranges from the row store instead of the whole table
//!   ([`Engine::access_stats`] counts which path served each scan).
//! - Result columns are named as PostgreSQL names them (`count`, `upper`,
//!   `?column?`; `names.rs`), not by DataFusion's expression names.
//! - A plan is made against the catalog of its time: after DDL changes a
//!   table a plan reads, the next execution plans again.
//! - Not yet (each returns [`Error::Unsupported`] naming it): other ALTER TABLE operations (ALTER
//!   COLUMN TYPE, constraints), SERIALIZABLE, non-constant DEFAULTs, several statements in one call.

//!
//! ## Layout
//!
//! Folders by concern; each layer uses only the layers below it, so the
//! list reads bottom up:
//!
//! | layer | holds |
//! |---|---|
//! | `error.rs`, `names.rs`, `output.rs`, `params.rs` | the error type; identifiers and result column names; [`Output`]; `$n` parameters and value conversions |
//! | `pg/`, `scan/` | PostgreSQL's catalogs, functions and settings; the table scan over a snapshot (provider, data source, zone-map pruning) |
//! | `context.rs` | the stores, sync and DataFusion state every statement runs in |
//! | `plan/` | a statement's tables and execution (`query.rs`), access paths, checked arithmetic, the per-query memory pool |
//! | `write/` | DML, ON CONFLICT, RETURNING, the fast path, COPY, DDL, maintenance |
//! | `session/` | compiling statements (`prepared.rs`), the transaction state machine, lock waits |
//! | `engine/` | [`Engine`]: opening a database, the plan cache, the public entry points |
//!
//! Each folder's `mod.rs` states its own files' order.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod context;
mod engine;
mod error;
mod names;
mod output;
mod params;
mod pg;
mod plan;
mod scan;
mod session;
mod write;

pub use context::AccessStats;
pub use engine::{Engine, EngineOptions, MIN_MEMORY_BUDGET};
pub use error::{Error, Result};
pub use output::Output;
pub use params::value_of_scalar;
pub use pg::{Isolation, REPORTED as REPORTED_SETTINGS, SERVER_VERSION, Settings};
pub use session::{DEFAULT_DEADLOCK_TIMEOUT, PreparedStatement, Session};
pub use write::copy::CopyIn;
