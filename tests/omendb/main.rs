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
mod transactions;

use omendb::arrow::array::RecordBatch;
use omendb::arrow::util::display::{ArrayFormatter, FormatOptions};
use omendb::{Database, params};

/// Every row of every batch as text cells (NULL as "NULL").
pub fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let fmts: Vec<_> = b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap()).collect();
        for r in 0..b.num_rows() {
            out.push(fmts.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    out
}

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
