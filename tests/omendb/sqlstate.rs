//! Every error variant's SQLSTATE against PostgreSQL's.
//!
//! The first table runs statements through OmenDB and expects the code
//! PostgreSQL 15.18 gave for the same statement on the same table (run
//! with psql and `\set VERBOSITY verbose` on 2026-12-08). What covers
//! the variants no SQL statement reaches here (I/O, corruption, a closed
//! database...) is omen-sql's `every_variant_has_its_postgres_code` (in
//! `error.rs`), which names each variant's PostgreSQL condition from
//! PostgreSQL's own table of codes (`src/backend/utils/errcodes.txt`); its
//! match has no wildcard, so a new variant fails to compile there until
//! it is listed.

use omendb::{Connection, Database, Error, params};

/// `(statements run first, the failing statement, PostgreSQL's SQLSTATE)`.
/// The earlier statements must succeed; each case runs on a fresh
/// connection to a table `t (id INT PRIMARY KEY, name TEXT NOT NULL, n INT)`
/// holding `(1, 'a', 1)` with an index `t_n` on `n`.
const AGAINST_POSTGRES: &[(&[&str], &str, &str)] = &[
    (&[], "SELEC 1", "42601"),
    (&[], "SELECT * FROM nope", "42P01"),
    (&[], "SELECT nope FROM t", "42703"),
    (&[], "DROP INDEX nope", "42704"),
    (&[], "SHOW nope_setting", "42704"),
    (&[], "CREATE TABLE t (x INT)", "42P07"),
    (&[], "CREATE INDEX t_n ON t (n)", "42P07"),
    (&[], "ALTER TABLE t ADD COLUMN n INT", "42701"),
    (&[], "INSERT INTO t VALUES (1, 'b', 2)", "23505"),
    (&[], "INSERT INTO t (id) VALUES (2)", "23502"),
    (&[], "INSERT INTO t VALUES (3, 'x', 99999999999)", "22003"),
    (&[], "SELECT 1/0", "22012"),
    (&[], "SELECT n/0 FROM t", "22012"),
    (&[], "SELECT 9223372036854775807::bigint + 1", "22003"),
    (&[], "SELECT 'abc'::int", "22P02"),
    (&[], "SAVEPOINT s", "25P01"),
    (&["BEGIN", "SELECT 1"], "SET TRANSACTION ISOLATION LEVEL READ COMMITTED", "25001"),
    (&["BEGIN"], "ROLLBACK TO nope", "3B001"),
];

/// Statements whose PostgreSQL code OmenDB matches only in its class (the
/// first two characters): PostgreSQL tells the cause within class 42
/// (42883 undefined_function here), DataFusion's planner does not.
const SAME_CLASS: &[(&str, &str)] = &[("SELECT no_such_function(1)", "42883")];

fn connection() -> Connection {
    let db = Database::open_in_memory().unwrap();
    db.execute("CREATE TABLE t (id INT PRIMARY KEY, name TEXT NOT NULL, n INT)", params![]).unwrap();
    db.execute("INSERT INTO t VALUES (1, 'a', 1)", params![]).unwrap();
    db.execute("CREATE INDEX t_n ON t (n)", params![]).unwrap();
    db.connect().unwrap()
}

fn sqlstate_of(setup: &[&str], sql: &str) -> (Error, &'static str) {
    let mut c = connection();
    for s in setup {
        c.run(s, params![]).unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    let e = c.run(sql, params![]).expect_err(sql);
    let code = e.sqlstate();
    (e, code)
}

#[test]
fn statements_fail_with_postgres_sqlstate() {
    for (setup, sql, postgres) in AGAINST_POSTGRES {
        let (e, code) = sqlstate_of(setup, sql);
        assert_eq!(code, *postgres, "{sql}: {e:?}");
    }
    for (sql, postgres) in SAME_CLASS {
        let (e, code) = sqlstate_of(&[], sql);
        assert_eq!(code[..2], postgres[..2], "{sql}: {e:?}");
    }
}

#[test]
fn an_aborted_transaction_is_25p02() {
    let mut c = connection();
    c.run("BEGIN", params![]).unwrap();
    assert_eq!(c.run("SELECT 1/0", params![]).unwrap_err().sqlstate(), "22012");
    assert_eq!(c.run("SELECT 1", params![]).unwrap_err().sqlstate(), "25P02");
}

/// A table `t (id, n)` holding `(1, 1)`.
fn one_row() -> Database {
    let db = Database::open_in_memory().unwrap();
    db.execute("CREATE TABLE t (id INT PRIMARY KEY, n INT)", params![]).unwrap();
    db.execute("INSERT INTO t VALUES (1, 1)", params![]).unwrap();
    db
}

#[test]
fn a_write_after_a_newer_commit_is_40001() {
    let db = one_row();
    let mut old = db.connect().unwrap();
    old.run("BEGIN ISOLATION LEVEL REPEATABLE READ", params![]).unwrap();
    old.query("SELECT * FROM t", params![]).unwrap();
    db.execute("UPDATE t SET n = 2 WHERE id = 1", params![]).unwrap();
    let e = old.run("UPDATE t SET n = 3 WHERE id = 1", params![]).unwrap_err();
    assert_eq!(e.sqlstate(), "40001", "{e:?}");
    assert!(e.is_retryable());
}

#[test]
fn a_held_row_past_lock_timeout_is_55p03() {
    let db = one_row();
    let mut holder = db.connect().unwrap();
    holder.run("BEGIN", params![]).unwrap();
    holder.run("UPDATE t SET n = 2 WHERE id = 1", params![]).unwrap();
    let mut waiter = db.connect().unwrap();
    waiter.run("SET lock_timeout = '20ms'", params![]).unwrap();
    waiter.run("BEGIN ISOLATION LEVEL READ COMMITTED", params![]).unwrap();
    let e = waiter.run("UPDATE t SET n = 3 WHERE id = 1", params![]).unwrap_err();
    assert_eq!(e.sqlstate(), "55P03", "{e:?}");
}
