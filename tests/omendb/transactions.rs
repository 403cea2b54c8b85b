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
