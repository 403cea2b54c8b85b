//! The facade's integration tests: one binary (DataFusion links once), a
//! module per concern.
#![allow(clippy::unwrap_used, missing_docs)]

mod backup;
mod bad_input;
mod changes;
mod checkpoint;
mod clients;
mod concurrency;
mod crash;
mod end_to_end;
mod fast_path;
mod fixtures;
mod lock;
mod memory;
mod returning;
mod server;
mod slt;
mod sql_fuzz;
mod sqlstate;
mod tiering;
mod tpch;
/// TPC-H data, queries and DuckDB's answers, shared with the benchmarks.
#[path = "../tpch/common.rs"]
mod tpch_common;
mod transactions;

use omendb::{Database, params};

/// Every row of every batch as text cells (NULL as "NULL").
pub(crate) use tpch_common::cells as rows;

/// `rows` of a query, for compact assertions.
pub fn q(db: &Database, sql: &str) -> Vec<Vec<String>> {
    rows(&db.query(sql, params![]).unwrap())
}

pub fn strs(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter().map(|r| r.iter().map(|s| s.to_string()).collect()).collect()
}

/// A database with `accounts(id BIGINT PRIMARY KEY, owner TEXT NOT NULL, balance BIGINT)` and three rows.
pub fn accounts(db: &Database) {
    db.execute("CREATE TABLE accounts (id BIGINT PRIMARY KEY, owner TEXT NOT NULL, balance BIGINT DEFAULT 0)", params![]).unwrap();
    db.execute("INSERT INTO accounts VALUES (1, 'ada', 100), (2, 'alan', 50), (3, 'grace', NULL)", params![]).unwrap();
}

pub fn dump(db: &Database) -> Vec<Vec<String>> {
    q(db, "SELECT * FROM accounts ORDER BY id")
}
