//! Transactions through the facade: isolation, own writes, conflicts, rollback.

use omendb::{Database, Error, params};

use crate::{accounts, dump, q, rows, strs};

#[test]
fn reads_see_own_writes_and_a_fixed_snapshot() {
    let db = Database::open_in_memory().unwrap();
    accounts(&db);
    let mut txn = db.begin().unwrap();
    txn.execute("INSERT INTO accounts VALUES (4, 'new', 1)", params![]).unwrap();
    txn.execute("DELETE FROM accounts WHERE id = 2", params![]).unwrap();
    txn.execute("UPDATE accounts SET balance = 7 WHERE id = 1", params![]).unwrap();
    // The analytic path sees the transaction's own writes...
    assert_eq!(rows(&txn.query("SELECT count(*), sum(balance) FROM accounts", params![]).unwrap()), strs(&[&["3", "8"]]));
    // ...and others do not, until commit.
    assert_eq!(q(&db, "SELECT count(*), sum(balance) FROM accounts"), strs(&[&["3", "150"]]));
    // A commit by someone else after our snapshot stays invisible to us.
    db.execute("INSERT INTO accounts VALUES (5, 'other', 1000)", params![]).unwrap();
    assert_eq!(rows(&txn.query("SELECT count(*) FROM accounts WHERE id = 5", params![]).unwrap()), strs(&[&["0"]]));
    txn.commit().unwrap();
    assert_eq!(q(&db, "SELECT count(*), sum(balance) FROM accounts"), strs(&[&["4", "1008"]]));
}

#[test]
fn concurrent_writers_of_one_row_conflict_and_retry() {
    let db = Database::open_in_memory().unwrap();
    accounts(&db);
    let mut a = db.begin().unwrap();
    let mut b = db.begin().unwrap();
    a.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 1", params![]).unwrap();
    let err = b.execute("UPDATE accounts SET balance = balance + 10 WHERE id = 1", params![]).unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(matches!(err, Error::SerializationConflict(_)));
    a.commit().unwrap();
    drop(b);
    let mut retry = db.begin().unwrap();
    retry.execute("UPDATE accounts SET balance = balance + 10 WHERE id = 1", params![]).unwrap();
    retry.commit().unwrap();
    assert_eq!(q(&db, "SELECT balance FROM accounts WHERE id = 1"), strs(&[&["111"]]));
}

#[test]
fn rollback_and_drop_leave_nothing() {
    let db = Database::open_in_memory().unwrap();
    accounts(&db);
    let before = dump(&db);
    let mut txn = db.begin().unwrap();
    txn.execute("DELETE FROM accounts", params![]).unwrap();
    txn.rollback();
    {
        let mut txn = db.begin().unwrap();
        txn.execute("UPDATE accounts SET balance = 0", params![]).unwrap();
    }
    assert_eq!(dump(&db), before);
    let mut txn = db.begin().unwrap();
    assert!(matches!(txn.execute("COMMIT", params![]), Err(Error::Unsupported(_))));
}

/// A session at READ COMMITTED, as PostgreSQL's clients get by default.
fn read_committed(db: &Database) -> omendb::Connection {
    let mut c = db.connect().unwrap();
    c.execute("SET default_transaction_isolation = 'read committed'", params![]).unwrap();
    c
}

#[test]
fn read_committed_statements_see_new_commits_and_repeatable_read_does_not() {
    let db = Database::open_in_memory().unwrap();
    accounts(&db);
    let balance = "SELECT balance FROM accounts WHERE id = 1";
    let mut rc = read_committed(&db);
    rc.execute("BEGIN", params![]).unwrap();
    assert_eq!(rows(&rc.query(balance, params![]).unwrap()), strs(&[&["100"]]));
    assert_eq!(rows(&rc.query("SHOW transaction_isolation", params![]).unwrap()), strs(&[&["read committed"]]));
    db.execute("UPDATE accounts SET balance = 5 WHERE id = 1", params![]).unwrap();
    assert_eq!(rows(&rc.query(balance, params![]).unwrap()), strs(&[&["5"]]));
    // And writes over it, where snapshot isolation would conflict.
    rc.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 1", params![]).unwrap();
    rc.execute("COMMIT", params![]).unwrap();
    assert_eq!(q(&db, balance), strs(&[&["6"]]));

    // BEGIN's level lasts for its transaction only.
    rc.execute("BEGIN ISOLATION LEVEL REPEATABLE READ", params![]).unwrap();
    assert_eq!(rows(&rc.query("SHOW transaction_isolation", params![]).unwrap()), strs(&[&["repeatable read"]]));
    assert_eq!(rows(&rc.query(balance, params![]).unwrap()), strs(&[&["6"]]));
    db.execute("UPDATE accounts SET balance = 7 WHERE id = 1", params![]).unwrap();
    assert_eq!(rows(&rc.query(balance, params![]).unwrap()), strs(&[&["6"]]));
    let err = rc.execute("UPDATE accounts SET balance = 0 WHERE id = 1", params![]).unwrap_err();
    assert!(matches!(err, Error::SerializationConflict(_)), "{err}");
    rc.execute("ROLLBACK", params![]).unwrap();
    assert_eq!(rows(&rc.query("SHOW transaction_isolation", params![]).unwrap()), strs(&[&["read committed"]]));
    // As in PostgreSQL, SET TRANSACTION outside a transaction does nothing.
    rc.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", params![]).unwrap();
    assert_eq!(rows(&rc.query("SHOW transaction_isolation", params![]).unwrap()), strs(&[&["read committed"]]));
    assert!(matches!(rc.execute("BEGIN ISOLATION LEVEL SERIALIZABLE", params![]), Err(Error::Unsupported(_))));
}

#[test]
fn read_committed_increments_wait_for_each_other_and_lose_nothing() {
    let db = Database::open_in_memory().unwrap();
    accounts(&db);
    db.execute("UPDATE accounts SET balance = 30 WHERE id = 3", params![]).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut c = read_committed(&db);
                let (mut done, mut deadlocks) = (0, 0);
                for _ in 0..50 {
                    c.execute("BEGIN", params![]).unwrap();
                    // Both shapes: the fast path (point UPDATE) and a range
                    // the general path plans.
                    let step = c
                        .execute("UPDATE accounts SET balance = balance + 1 WHERE id = 1", params![])
                        .and_then(|_| c.execute("UPDATE accounts SET balance = balance + 1 WHERE id BETWEEN 2 AND 3", params![]));
                    match step {
                        Ok(_) => {
                            c.execute("COMMIT", params![]).unwrap();
                            done += 1;
                        }
                        // A slow machine can outwait the limit; that is the
                        // one error READ COMMITTED may give here.
                        Err(e) if e.to_string().contains("deadlock") => {
                            c.execute("ROLLBACK", params![]).unwrap();
                            deadlocks += 1;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                (done, deadlocks)
            })
        })
        .collect();
    let done: i64 = threads.into_iter().map(|t| t.join().unwrap().0).sum();
    assert_eq!(
        q(&db, "SELECT balance FROM accounts ORDER BY id"),
        strs(&[&[&(100 + done).to_string()], &[&(50 + done).to_string()], &[&(30 + done).to_string()]])
    );
}

#[test]
fn a_read_committed_statement_that_meets_a_held_row_midway_runs_again_whole() {
    let db = Database::open_in_memory().unwrap();
    accounts(&db);
    db.execute("UPDATE accounts SET balance = 30 WHERE id = 3", params![]).unwrap();
    let mut holder = db.begin().unwrap();
    holder.execute("UPDATE accounts SET balance = 0 WHERE id = 2", params![]).unwrap();
    let waiter = {
        let db = db.clone();
        std::thread::spawn(move || read_committed(&db).execute("UPDATE accounts SET balance = balance + 1", params![]))
    };
    std::thread::sleep(std::time::Duration::from_millis(20));
    holder.commit().unwrap();
    // Id 1 was written before the statement met id 2: rerun, it is still
    // written once, and id 2 gets the holder's value plus one.
    assert_eq!(waiter.join().unwrap().unwrap(), 3);
    assert_eq!(q(&db, "SELECT balance FROM accounts ORDER BY id"), strs(&[&["101"], &["1"], &["31"]]));
}

#[test]
fn read_committed_gives_up_on_a_deadlock() {
    let db = Database::open_in_memory().unwrap();
    accounts(&db);
    let mut a = read_committed(&db);
    let mut b = read_committed(&db);
    a.execute("BEGIN", params![]).unwrap();
    b.execute("BEGIN", params![]).unwrap();
    a.execute("UPDATE accounts SET balance = 1 WHERE id = 1", params![]).unwrap();
    b.execute("UPDATE accounts SET balance = 2 WHERE id = 2", params![]).unwrap();
    let a_waits = std::thread::spawn(move || {
        let r = a.execute("UPDATE accounts SET balance = 1 WHERE id = 2", params![]);
        (a, r)
    });
    let b_result = b.execute("UPDATE accounts SET balance = 2 WHERE id = 1", params![]);
    let (mut a, a_result) = a_waits.join().unwrap();
    let deadlocked = [&a_result, &b_result].iter().filter(|r| matches!(r, Err(e) if e.to_string().contains("deadlock"))).count();
    assert!(deadlocked >= 1, "{a_result:?} {b_result:?}");
    for (c, r) in [(&mut a, a_result), (&mut b, b_result)] {
        if let Err(e) = r {
            assert!(e.is_retryable(), "{e}");
        }
        c.execute("ROLLBACK", params![]).unwrap();
    }
    assert_eq!(q(&db, "SELECT balance FROM accounts WHERE id <= 2 ORDER BY id"), strs(&[&["100"], &["50"]]));
}

/// SAVEPOINT, ROLLBACK TO and RELEASE with PostgreSQL's rules, at both
/// isolation levels: partial undo, names that repeat, recovery of a
/// transaction a failed statement aborted, and errors that change nothing.
#[test]
fn savepoints_undo_part_of_a_transaction_and_recover_it_after_an_error() {
    for read_committed_session in [false, true] {
        let db = Database::open_in_memory().unwrap();
        accounts(&db);
        let mut c = if read_committed_session { read_committed(&db) } else { db.connect().unwrap() };
        let ids = "SELECT id, balance FROM accounts ORDER BY id";
        let ok = |c: &mut omendb::Connection, sql: &str| c.execute(sql, params![]).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let ok_all = |c: &mut omendb::Connection, sqls: &[&str]| {
            sqls.iter().for_each(|sql| {
                ok(c, sql);
            })
        };
        let fails = |c: &mut omendb::Connection, sql: &str| c.execute(sql, params![]).unwrap_err();

        // Outside a transaction block: refused, nothing opened.
        assert!(matches!(fails(&mut c, "SAVEPOINT a"), Error::NoTransaction(_)));
        assert!(matches!(fails(&mut c, "ROLLBACK TO SAVEPOINT a"), Error::NoTransaction(_)));
        assert!(matches!(fails(&mut c, "RELEASE a"), Error::NoTransaction(_)));

        ok_all(
            &mut c,
            &[
                "BEGIN",
                "UPDATE accounts SET balance = 1 WHERE id = 1",
                "SAVEPOINT a",
                "UPDATE accounts SET balance = 2 WHERE id = 1",
                "INSERT INTO accounts VALUES (9, 'new', 9)",
                "SAVEPOINT b",
                "DELETE FROM accounts WHERE id = 2",
                "ROLLBACK TO a",
            ],
        );
        let at_a = strs(&[&["1", "1"], &["2", "50"], &["3", "NULL"]]);
        assert_eq!(rows(&c.query(ids, params![]).unwrap()), at_a);
        // `a` stays and can be rolled back to again; `b` ended with it.
        ok(&mut c, "UPDATE accounts SET balance = 3 WHERE id = 1");
        ok(&mut c, "ROLLBACK TO SAVEPOINT a");
        assert_eq!(rows(&c.query(ids, params![]).unwrap()), at_a);
        let err = fails(&mut c, "ROLLBACK TO b");
        assert!(matches!(&err, Error::UnknownSavepoint(b) if b == "b"), "{err}");
        // An unknown name aborts the transaction, as in PostgreSQL...
        assert!(matches!(c.query(ids, params![]), Err(Error::TransactionAborted)));
        assert!(matches!(fails(&mut c, "SAVEPOINT c"), Error::TransactionAborted));
        assert!(matches!(fails(&mut c, "BEGIN"), Error::TransactionAborted));
        // ...and ROLLBACK TO a savepoint brings it back, as after any error.
        ok(&mut c, "ROLLBACK TO a");
        assert!(matches!(fails(&mut c, "INSERT INTO accounts VALUES (1, 'dup', 0)"), Error::UniqueViolation(_)));
        assert!(matches!(c.query(ids, params![]), Err(Error::TransactionAborted)));
        ok(&mut c, "ROLLBACK TO a");
        assert_eq!(rows(&c.query(ids, params![]).unwrap()), at_a);

        // Names repeat: commands find the newest; RELEASE ends it and later ones.
        ok_all(
            &mut c,
            &[
                "SAVEPOINT s",
                "UPDATE accounts SET balance = 10 WHERE id = 2",
                "SAVEPOINT s",
                "UPDATE accounts SET balance = 20 WHERE id = 2",
                "SAVEPOINT inner_one",
                "ROLLBACK TO s",
            ],
        );
        assert_eq!(q_conn(&mut c, "SELECT balance FROM accounts WHERE id = 2"), strs(&[&["10"]]));
        ok(&mut c, "RELEASE SAVEPOINT s");
        // inner_one ended with the rollback to it: an error, which aborts;
        // the first `s` is still there to recover to.
        assert!(matches!(fails(&mut c, "RELEASE inner_one"), Error::UnknownSavepoint(_)));
        ok(&mut c, "ROLLBACK TO s");
        assert_eq!(q_conn(&mut c, "SELECT balance FROM accounts WHERE id = 2"), strs(&[&["50"]]));
        ok(&mut c, "RELEASE a");
        ok(&mut c, "INSERT INTO accounts VALUES (9, 'kept', 9)");
        ok(&mut c, "COMMIT");
        assert_eq!(q(&db, ids), strs(&[&["1", "1"], &["2", "50"], &["3", "NULL"], &["9", "9"]]));

        // Without a savepoint to return to, an error still loses the whole
        // transaction, and the rows a rolled-back savepoint held are free.
        ok_all(&mut c, &["BEGIN", "SAVEPOINT x", "UPDATE accounts SET balance = 0 WHERE id = 3", "ROLLBACK TO x"]);
        db.execute("UPDATE accounts SET balance = 33 WHERE id = 3", params![]).unwrap();
        ok(&mut c, "RELEASE x");
        assert!(fails(&mut c, "ROLLBACK TO x").to_string().contains("does not exist"));
        assert!(fails(&mut c, "ROLLBACK TO x").to_string().contains("does not exist"));
        assert!(matches!(fails(&mut c, "SELECT 1"), Error::TransactionAborted));
        ok(&mut c, "COMMIT");
        assert_eq!(q(&db, "SELECT balance FROM accounts WHERE id = 3"), strs(&[&["33"]]));
    }
}

/// DDL in a transaction block, before the block writes, takes effect at
/// once (drivers wrap migrations in BEGIN ... COMMIT): the block goes on
/// over the new catalog, and the connection warns that ROLLBACK will not
/// undo it. Writes first, or (at REPEATABLE READ) reads first, refuse it.
#[test]
fn ddl_in_a_block_commits_at_once_and_warns() {
    let db = Database::open_in_memory().unwrap();
    accounts(&db);
    let mut c = read_committed(&db);
    c.execute("BEGIN", params![]).unwrap();
    assert_eq!(q_conn(&mut c, "SELECT count(*) FROM accounts"), strs(&[&["3"]]));
    c.execute("CREATE TABLE audit (id INT PRIMARY KEY, note TEXT)", params![]).unwrap();
    let warnings = c.take_warnings();
    assert!(warnings.len() == 1 && warnings[0].contains("not undone by ROLLBACK"), "{warnings:?}");
    assert!(c.take_warnings().is_empty(), "taken once");
    // An ALTER rewrites the table after the block's first snapshot; the
    // block still sees its rows.
    c.execute("ALTER TABLE accounts ADD COLUMN flag BOOLEAN", params![]).unwrap();
    assert_eq!(q_conn(&mut c, "SELECT id, flag FROM accounts WHERE id = 1"), strs(&[&["1", "NULL"]]));
    c.execute("INSERT INTO audit VALUES (1, 'opened')", params![]).unwrap();
    assert_eq!(q_conn(&mut c, "SELECT note FROM audit"), strs(&[&["opened"]]));
    c.execute("COMMIT", params![]).unwrap();
    assert_eq!(q(&db, "SELECT id, note FROM audit"), strs(&[&["1", "opened"]]));
    // ROLLBACK undoes the block's writes, not its DDL.
    c.execute("BEGIN", params![]).unwrap();
    c.execute("CREATE TABLE scratch (id INT PRIMARY KEY)", params![]).unwrap();
    c.execute("INSERT INTO scratch VALUES (1)", params![]).unwrap();
    c.execute("ROLLBACK", params![]).unwrap();
    assert_eq!(q(&db, "SELECT count(*) FROM scratch"), strs(&[&["0"]]));
    // A write undone by ROLLBACK TO still holds the table's writers' gate:
    // DDL would wait for the block itself, so it is refused.
    c.execute("BEGIN", params![]).unwrap();
    c.execute("SAVEPOINT s", params![]).unwrap();
    c.execute("INSERT INTO scratch VALUES (2)", params![]).unwrap();
    c.execute("ROLLBACK TO s", params![]).unwrap();
    let held = c.execute("CREATE INDEX scratch_id ON scratch (id)", params![]).unwrap_err();
    assert!(matches!(&held, Error::Unsupported(m) if m.contains("after writes")), "{held}");
    c.execute("ROLLBACK", params![]).unwrap();
    // At REPEATABLE READ, DDL after a read would move the block's snapshot.
    let mut rr = db.connect().unwrap();
    rr.execute("BEGIN", params![]).unwrap();
    rr.execute("CREATE TABLE first (a INT)", params![]).unwrap();
    assert_eq!(q_conn(&mut rr, "SELECT count(*) FROM accounts"), strs(&[&["3"]]));
    let moved = rr.execute("CREATE TABLE second (a INT)", params![]).unwrap_err();
    assert!(matches!(&moved, Error::Unsupported(m) if m.contains("REPEATABLE READ")), "{moved}");
    // Nor may the block change its isolation level after a query (25001).
    let mut rr = db.connect().unwrap();
    rr.execute("BEGIN", params![]).unwrap();
    assert_eq!(q_conn(&mut rr, "SELECT count(*) FROM accounts"), strs(&[&["3"]]));
    let late = rr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED", params![]).unwrap_err();
    assert!(matches!(&late, Error::ActiveTransaction(m) if m.contains("before any query")), "{late}");
    rr.execute("ROLLBACK", params![]).unwrap();
    rr.execute("BEGIN", params![]).unwrap();
    rr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED", params![]).unwrap();
    rr.execute("ROLLBACK", params![]).unwrap();
    // The session default changes later blocks, not the open one.
    rr.execute("BEGIN", params![]).unwrap();
    assert_eq!(q_conn(&mut rr, "SELECT count(*) FROM accounts"), strs(&[&["3"]]));
    rr.execute("SET default_transaction_isolation = 'read committed'", params![]).unwrap();
    rr.execute("RESET ALL", params![]).unwrap();
    let pinned = rr.execute("CREATE TABLE fourth (a INT)", params![]).unwrap_err();
    assert!(matches!(&pinned, Error::Unsupported(m) if m.contains("REPEATABLE READ")), "{pinned}");
    // A primary-key read takes the fast path; it counts as a read too.
    let mut rr = db.connect().unwrap();
    rr.execute("BEGIN", params![]).unwrap();
    assert_eq!(q_conn(&mut rr, "SELECT owner FROM accounts WHERE id = 1"), strs(&[&["ada"]]));
    let moved = rr.execute("CREATE TABLE third (a INT)", params![]).unwrap_err();
    assert!(matches!(&moved, Error::Unsupported(m) if m.contains("REPEATABLE READ")), "{moved}");
}

fn q_conn(c: &mut omendb::Connection, sql: &str) -> Vec<Vec<String>> {
    rows(&c.query(sql, params![]).unwrap())
}

/// `lock_timeout` bounds a READ COMMITTED wait (55P03, not retryable),
/// `deadlock_timeout` is when a wait counts as a deadlock; both refuse
/// values that are not durations.
#[test]
fn lock_timeout_and_deadlock_timeout_bound_a_wait() {
    let db = Database::open_in_memory().unwrap();
    accounts(&db);
    let mut holder = read_committed(&db);
    holder.execute("BEGIN", params![]).unwrap();
    holder.execute("UPDATE accounts SET balance = 1 WHERE id = 1", params![]).unwrap();

    let mut waiter = read_committed(&db);
    assert!(matches!(waiter.execute("SET lock_timeout = 'soon'", params![]), Err(Error::Parameter(_))));
    waiter.execute("SET lock_timeout = '20ms'", params![]).unwrap();
    let err = waiter.execute("UPDATE accounts SET balance = 2 WHERE id = 1", params![]).unwrap_err();
    assert!(matches!(&err, Error::LockNotAvailable(m) if m.contains("lock_timeout")), "{err}");
    assert!(!err.is_retryable());

    waiter.execute("SET lock_timeout = 0", params![]).unwrap();
    waiter.execute("SET deadlock_timeout = '30ms'", params![]).unwrap();
    let err = waiter.execute("UPDATE accounts SET balance = 2 WHERE id = 1", params![]).unwrap_err();
    assert!(err.to_string().contains("deadlock_timeout") && err.is_retryable(), "{err}");

    // Neither wait wrote anything; once the holder is gone the write goes through.
    holder.execute("ROLLBACK", params![]).unwrap();
    waiter.execute("UPDATE accounts SET balance = 2 WHERE id = 1", params![]).unwrap();
    assert_eq!(q(&db, "SELECT balance FROM accounts WHERE id = 1"), strs(&[&["2"]]));
}
