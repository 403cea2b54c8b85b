//! Bad input gets a clear error of the matching variant and changes nothing.

use omendb::{Database, Error, LAYOUT_VERSION, Options, params};

use crate::{accounts, dump};

/// Runs `sql` and checks the error variant and that the table is unchanged.
fn rejects(db: &Database, sql: &str, params: &[&dyn omendb::ToValue], is: fn(&Error) -> bool) {
    let before = dump(db);
    let err = db.execute(sql, params).expect_err(sql);
    assert!(is(&err), "{sql}: unexpected {err:?}");
    assert_eq!(dump(db), before, "{sql} changed the table");
}

#[test]
fn each_bad_statement_fails_with_its_variant_and_changes_nothing() {
    let db = Database::open_in_memory().unwrap();
    accounts(&db);
    rejects(&db, "SELEC * FROM accounts", params![], |e| matches!(e, Error::Parse(_)));
    rejects(&db, "INSERT INTO accounts VALUES (1", params![], |e| matches!(e, Error::Parse(_)));
    rejects(&db, "SELECT * FROM nope", params![], |e| matches!(e, Error::UnknownTable(t) if t == "nope"));
    rejects(&db, "INSERT INTO nope VALUES (1)", params![], |e| matches!(e, Error::UnknownTable(_)));
    rejects(&db, "UPDATE nope SET a = 1", params![], |e| matches!(e, Error::UnknownTable(_)));
    rejects(&db, "DELETE FROM nope", params![], |e| matches!(e, Error::UnknownTable(_)));
    rejects(&db, "DROP TABLE nope", params![], |e| matches!(e, Error::UnknownTable(_)));
    rejects(&db, "SELECT missing FROM accounts", params![], |e| matches!(e, Error::UnknownColumn(_)));
    rejects(&db, "UPDATE accounts SET missing = 1", params![], |e| matches!(e, Error::UnknownColumn(_) | Error::Plan(_)));
    rejects(&db, "UPDATE accounts SET balance = 1 WHERE missing = 2", params![], |e| matches!(e, Error::UnknownColumn(_)));
    rejects(&db, "INSERT INTO accounts (id, missing) VALUES (7, 1)", params![], |e| matches!(e, Error::UnknownColumn(_) | Error::Plan(_)));
    rejects(&db, "UPDATE accounts SET __omen_key = 'x'", params![], |e| matches!(e, Error::UnknownColumn(_)));
    // Parameters: count and type.
    rejects(&db, "UPDATE accounts SET balance = $1 WHERE id = $2", params![1], |e| matches!(e, Error::Parameter(_)));
    rejects(&db, "UPDATE accounts SET balance = 1 WHERE id = 1", params![5], |e| matches!(e, Error::Parameter(_)));
    rejects(&db, "UPDATE accounts SET balance = $1 WHERE id = 1", params!["not a number"], |e| {
        matches!(e, Error::Parameter(_) | Error::InvalidText(_))
    });
    rejects(&db, "SELECT * FROM accounts WHERE id = $0", params![], |e| matches!(e, Error::Parameter(_)));
    // Constraints: duplicate key (also within one statement), NOT NULL, type.
    rejects(
        &db,
        "INSERT INTO accounts VALUES (1, 'dup', 0)",
        params![],
        |e| matches!(e, Error::UniqueViolation(m) if m.contains("duplicate")),
    );
    rejects(&db, "INSERT INTO accounts VALUES (8, 'a', 0), (8, 'b', 0)", params![], |e| matches!(e, Error::UniqueViolation(_)));
    rejects(&db, "INSERT INTO accounts VALUES (9, 'ok', 0), (1, 'dup', 0)", params![], |e| matches!(e, Error::UniqueViolation(_)));
    rejects(&db, "INSERT INTO accounts VALUES (10, NULL, 0)", params![], |e| matches!(e, Error::NotNull(m) if m.contains("not-null")));
    rejects(&db, "INSERT INTO accounts (id) VALUES (11)", params![], |e| matches!(e, Error::NotNull(_)));
    rejects(&db, "INSERT INTO accounts VALUES (NULL, 'x', 0)", params![], |e| matches!(e, Error::NotNull(_)));
    rejects(&db, "UPDATE accounts SET owner = NULL WHERE id = 2", params![], |e| matches!(e, Error::NotNull(_)));
    rejects(&db, "UPDATE accounts SET id = 2 WHERE id = 1", params![], |e| matches!(e, Error::UniqueViolation(_)));
    rejects(&db, "INSERT INTO accounts VALUES ('abc', 'x', 0)", params![], |e| matches!(e, Error::InvalidText(_) | Error::Plan(_)));
    rejects(&db, "INSERT INTO accounts VALUES (12, 'x', 99999999999999999999)", params![], |e| matches!(e, Error::NumericOutOfRange(_)));
    // Runtime errors and unsupported constructs.
    rejects(&db, "UPDATE accounts SET balance = balance / 0", params![], |e| matches!(e, Error::DivisionByZero));
    rejects(&db, "INSERT INTO accounts VALUES (13, 'x', 0) ON CONFLICT (owner) DO NOTHING", params![], |e| matches!(e, Error::Plan(_)));
    rejects(
        &db,
        "INSERT INTO accounts VALUES (1, 'x', 0), (1, 'y', 0) ON CONFLICT (id) DO UPDATE SET balance = 7",
        params![],
        |e| matches!(e, Error::Execution(m) if m.contains("a second time")),
    );
    rejects(&db, "DELETE FROM accounts RETURNING sum(id)", params![], |e| matches!(e, Error::Unsupported(m) if m.contains("RETURNING")));
    rejects(&db, "DELETE FROM accounts RETURNING nope", params![], |e| matches!(e, Error::UnknownColumn(_) | Error::Plan(_)));
    rejects(&db, "CREATE TABLE accounts (x INT)", params![], |e| matches!(e, Error::DuplicateRelation(t) if t == "accounts"));
    rejects(&db, "CREATE TABLE t2 (x INT DEFAULT now())", params![], |e| matches!(e, Error::Unsupported(_)));
    rejects(&db, "CREATE TABLE t3 (x INT CHECK (x > 0))", params![], |e| matches!(e, Error::Unsupported(m) if m.contains("CHECK")));
    rejects(&db, "CREATE INDEX ON accounts (abs(balance))", params![], |e| matches!(e, Error::Unsupported(m) if m.contains("expression")));
    rejects(&db, "CREATE TABLE t4 (x INT PRIMARY KEY, y INT PRIMARY KEY)", params![], |e| matches!(e, Error::Plan(_)));
    rejects(
        &db,
        "ALTER TABLE accounts ALTER COLUMN balance TYPE TEXT",
        params![],
        |e| matches!(e, Error::Unsupported(m) if m.contains("ALTER")),
    );
    rejects(&db, "ALTER TABLE accounts ADD COLUMN owner INT", params![], |e| matches!(e, Error::DuplicateColumn { .. }));
    rejects(&db, "ALTER TABLE accounts ADD COLUMN x INT NOT NULL", params![], |e| matches!(e, Error::NotNull(_)));
    rejects(&db, "SELECT 1; SELECT 2", params![], |e| matches!(e, Error::Unsupported(_)));
    rejects(&db, "BEGIN", params![], |e| matches!(e, Error::Unsupported(m) if m.contains("Database::begin")));
    for t in ["t2", "t3", "t4"] {
        assert!(matches!(db.query(&format!("SELECT * FROM {t}"), params![]), Err(Error::UnknownTable(_))), "{t} was created");
    }
    // The database still works.
    db.execute("INSERT INTO accounts VALUES (4, 'ok', 1)", params![]).unwrap();
}

#[test]
fn a_failed_statement_aborts_its_transaction() {
    let db = Database::open_in_memory().unwrap();
    accounts(&db);
    let before = dump(&db);
    let mut txn = db.begin().unwrap();
    txn.execute("UPDATE accounts SET balance = 0 WHERE id = 1", params![]).unwrap();
    assert!(matches!(txn.execute("INSERT INTO accounts VALUES (2, 'dup', 0)", params![]), Err(Error::UniqueViolation(_))));
    assert!(matches!(txn.execute("SELECT 1", params![]), Err(Error::TransactionAborted)));
    assert!(matches!(txn.commit(), Err(Error::TransactionAborted)));
    assert_eq!(dump(&db), before);
    // DDL in a Transaction is refused (it would commit apart from the
    // transaction, which promises to roll back whole), and aborts it.
    let mut txn = db.begin().unwrap();
    txn.execute("UPDATE accounts SET balance = 0 WHERE id = 1", params![]).unwrap();
    assert!(matches!(txn.execute("CREATE TABLE x (a INT)", params![]), Err(Error::Unsupported(m)) if m.contains("this API")));
    assert!(matches!(txn.execute("SELECT 1", params![]), Err(Error::TransactionAborted)));
    drop(txn);
    assert!(matches!(db.query("SELECT * FROM x", params![]), Err(Error::UnknownTable(_))));
    assert_eq!(dump(&db), before);
}

#[test]
fn bad_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options::default();
    options.layout_version = LAYOUT_VERSION + 1;
    assert!(matches!(Database::open_with(dir.path(), options), Err(Error::Unsupported(_))));
    // A directory written by a newer layout is refused, not misread.
    std::fs::write(dir.path().join("OMENDB_LAYOUT"), "omendb-layout 99\n").unwrap();
    assert!(matches!(Database::open(dir.path()), Err(Error::Unsupported(m)) if m.contains("99")));
    std::fs::write(dir.path().join("OMENDB_LAYOUT"), "garbage").unwrap();
    assert!(matches!(Database::open(dir.path()), Err(Error::Corruption(_))));
    // A log that is not a log is corruption, named.
    let dir = tempfile::tempdir().unwrap();
    Database::open(dir.path()).unwrap().close().unwrap();
    std::fs::write(dir.path().join("rows/wal.log"), b"definitely not a write-ahead log").unwrap();
    assert!(matches!(Database::open(dir.path()), Err(Error::Corruption(m)) if m.contains("wal.log")));
}
