//! Statements that change data or the catalog: INSERT, UPDATE and DELETE
//! (`dml.rs`, with ON CONFLICT in `conflict.rs` and RETURNING's
//! expressions in `rowexpr.rs`), the OLTP fast path (`fast.rs`), COPY
//! (`copy.rs`), DDL (`ddl.rs`) and maintenance commands (`maintenance.rs`).
//!
//! Layering, bottom up: `txn`, `rowexpr`; `conflict`; `dml`; `fast`,
//! `copy`, `ddl`, `maintenance`. Every file here sits on `plan/`; none
//! knows about sessions.

pub(crate) mod conflict;
pub(crate) mod copy;
pub(crate) mod ddl;
pub(crate) mod dml;
pub(crate) mod fast;
pub(crate) mod maintenance;
pub(crate) mod rowexpr;
pub(crate) mod txn;

pub(crate) use dml::insert_batches;
