//! SQL in, Arrow out, data on disk.

use omendb::{Database, Durability, Options, Value, params};

use crate::{accounts, dump, q, strs};

#[test]
fn create_insert_update_delete_select_aggregate() {
    let db = Database::open_in_memory().unwrap();
    accounts(&db);
    assert_eq!(db.execute("UPDATE accounts SET balance = balance + $1 WHERE id = $2", params![5, 1]).unwrap(), 1);
    assert_eq!(db.execute("DELETE FROM accounts WHERE owner = $1", params!["alan"]).unwrap(), 1);
    assert_eq!(db.execute("INSERT INTO accounts (id, owner) VALUES ($1, $2)", params![4, "linus"]).unwrap(), 1);
    assert_eq!(q(&db, "SELECT owner, balance FROM accounts WHERE id = 1"), strs(&[&["ada", "105"]]));
    assert_eq!(q(&db, "SELECT balance FROM accounts WHERE id = 4"), strs(&[&["0"]]), "DEFAULT applied");
    assert_eq!(q(&db, "SELECT count(*), sum(balance), count(balance) FROM accounts"), strs(&[&["3", "105", "2"]]));
    // A query through execute returns its row count; UPDATE with no match, 0.
    assert_eq!(db.execute("SELECT * FROM accounts", params![]).unwrap(), 3);
    assert_eq!(db.execute("UPDATE accounts SET balance = 0 WHERE id = 99", params![]).unwrap(), 0);
}

#[test]
fn committed_rows_survive_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        accounts(&db);
        db.execute("UPDATE accounts SET owner = 'Ada' WHERE id = 1", params![]).unwrap();
        db.execute("DELETE FROM accounts WHERE id = 2", params![]).unwrap();
        let mut uncommitted = db.begin().unwrap();
        uncommitted.execute("INSERT INTO accounts VALUES (9, 'ghost', 1)", params![]).unwrap();
        db.execute("CREATE TABLE dropped (x INT)", params![]).unwrap();
        db.execute("DROP TABLE dropped", params![]).unwrap();
        db.close().unwrap();
    }
    for durability in [Durability::Full, Durability::Normal, Durability::Off] {
        let db = Database::open_with(dir.path(), Options::default().with_durability(durability)).unwrap();
        assert_eq!(dump(&db), strs(&[&["1", "Ada", "100"], &["3", "grace", "NULL"]]));
        assert!(matches!(db.query("SELECT * FROM dropped", params![]), Err(omendb::Error::UnknownTable(_))));
        db.close().unwrap();
    }
}

#[test]
fn altered_and_derived_tables_survive_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let expect = strs(&[&["1", "ada", "2"], &["3", "grace", "2"], &["4", "edsger", "5"]]);
    {
        let db = Database::open(dir.path()).unwrap();
        accounts(&db);
        db.execute("ALTER TABLE accounts ADD COLUMN tier INT DEFAULT 2", params![]).unwrap();
        db.execute("ALTER TABLE accounts DROP COLUMN balance, RENAME COLUMN owner TO name", params![]).unwrap();
        db.execute("INSERT INTO accounts VALUES (4, 'edsger', 5)", params![]).unwrap();
        db.execute("DELETE FROM accounts WHERE id = 2", params![]).unwrap();
        db.execute("CREATE TABLE tiers AS SELECT tier, count(*) AS n FROM accounts GROUP BY tier", params![]).unwrap();
        assert_eq!(q(&db, "SELECT * FROM accounts ORDER BY id"), expect);
        db.close().unwrap();
    }
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(q(&db, "SELECT * FROM accounts ORDER BY id"), expect);
    assert_eq!(q(&db, "SELECT tier, n FROM tiers ORDER BY tier"), strs(&[&["2", "2"], &["5", "1"]]));
    assert_eq!(q(&db, "SELECT name FROM accounts WHERE id = 4"), strs(&[&["edsger"]]));
}

#[test]
fn every_sql_type_round_trips_through_disk() {
    let dir = tempfile::tempdir().unwrap();
    let create = "CREATE TABLE t (b BOOLEAN, s SMALLINT, i INTEGER PRIMARY KEY, l BIGINT, r REAL, d DOUBLE PRECISION, \
                  n NUMERIC(10,2), t TEXT, v VARCHAR(5), y BYTEA, dt DATE, ts TIMESTAMP, tz TIMESTAMP WITH TIME ZONE)";
    let insert = "INSERT INTO t VALUES (true, -2, 1, 9000000000, 1.5, -2.25, 123.45, 'héllo', 'v', decode('00ff', 'hex'), \
                  DATE '2024-02-29', TIMESTAMP '2024-01-02 03:04:05.123456', TIMESTAMP '2024-01-02 03:04:05')";
    let expect = strs(&[&[
        "true",
        "-2",
        "1",
        "9000000000",
        "1.5",
        "-2.25",
        "123.45",
        "héllo",
        "v",
        "00ff",
        "2024-02-29",
        "2024-01-02T03:04:05.123456",
        "2024-01-02T03:04:05Z",
    ]]);
    {
        let db = Database::open(dir.path()).unwrap();
        db.execute(create, params![]).unwrap();
        db.execute(insert, params![]).unwrap();
        db.execute("INSERT INTO t (i) VALUES (2)", params![]).unwrap();
        assert_eq!(q(&db, "SELECT * FROM t WHERE i = 1"), expect);
    }
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(q(&db, "SELECT * FROM t WHERE i = 1"), expect);
    assert_eq!(q(&db, "SELECT count(*) FROM t WHERE b IS NULL AND y IS NULL AND tz IS NULL"), strs(&[&["1"]]));
    // Parameters of each Rust type bind to their columns.
    db.execute(
        "INSERT INTO t (b, s, i, l, r, d, t, y) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        params![false, 7i16, 3, 4i64, 0.5f32, 0.25, "x", vec![1u8, 2]],
    )
    .unwrap();
    assert_eq!(q(&db, "SELECT b, s, l, r, d, t, y FROM t WHERE i = 3"), strs(&[&["false", "7", "4", "0.5", "0.25", "x", "0102"]]));
    db.execute("UPDATE t SET n = $1, dt = $2 WHERE i = 3", params![Value::Decimal { unscaled: 1999, scale: 2 }, Value::Date(0)]).unwrap();
    assert_eq!(q(&db, "SELECT n, dt FROM t WHERE i = 3"), strs(&[&["19.99", "1970-01-01"]]));
}

#[test]
fn composite_keys_and_keyless_tables() {
    let db = Database::open_in_memory().unwrap();
    db.execute("CREATE TABLE lines (order_id INT, line INT, qty INT NOT NULL, PRIMARY KEY (order_id, line))", params![]).unwrap();
    db.execute("INSERT INTO lines VALUES (1, 1, 5), (1, 2, 6), (2, 1, 7)", params![]).unwrap();
    assert!(matches!(db.execute("INSERT INTO lines VALUES (1, 2, 0)", params![]), Err(omendb::Error::UniqueViolation(_))));
    // Moving a row to a new key.
    db.execute("UPDATE lines SET line = 3 WHERE order_id = 1 AND line = 2", params![]).unwrap();
    assert_eq!(
        q(&db, "SELECT order_id, line, qty FROM lines ORDER BY order_id, line"),
        strs(&[&["1", "1", "5"], &["1", "3", "6"], &["2", "1", "7"]])
    );

    db.execute("CREATE TABLE log (msg TEXT)", params![]).unwrap();
    db.execute("INSERT INTO log VALUES ('a'), ('a'), ('b')", params![]).unwrap();
    assert_eq!(db.execute("UPDATE log SET msg = 'c' WHERE msg = 'a'", params![]).unwrap(), 2);
    assert_eq!(db.execute("DELETE FROM log WHERE msg = 'c'", params![]).unwrap(), 2);
    assert_eq!(q(&db, "SELECT msg FROM log"), strs(&[&["b"]]));
}

#[test]
fn analytics_joins_ctes_windows() {
    let db = Database::open_in_memory().unwrap();
    accounts(&db);
    db.execute("CREATE TABLE transfers (id INT PRIMARY KEY, from_id BIGINT, amount INT)", params![]).unwrap();
    db.execute("INSERT INTO transfers VALUES (1, 1, 10), (2, 1, 20), (3, 2, 5)", params![]).unwrap();
    let got = q(
        &db,
        "WITH totals AS (SELECT from_id, sum(amount) AS sent FROM transfers GROUP BY from_id) \
         SELECT a.owner, t.sent, rank() OVER (ORDER BY t.sent DESC) FROM accounts a JOIN totals t ON a.id = t.from_id ORDER BY 3",
    );
    assert_eq!(got, strs(&[&["ada", "30", "1"], &["alan", "5", "2"]]));
    assert_eq!(q(&db, "SELECT owner FROM accounts WHERE id IN (SELECT from_id FROM transfers WHERE amount > 15)"), strs(&[&["ada"]]));
}

#[test]
fn streaming_returns_every_batch() {
    let db = Database::open_in_memory().unwrap();
    db.execute("CREATE TABLE n (i BIGINT PRIMARY KEY)", params![]).unwrap();
    db.execute("INSERT INTO n SELECT value FROM generate_series(1, 20000)", params![]).unwrap();
    let iter = db.query_iter("SELECT i FROM n WHERE i % 2 = 0", params![]).unwrap();
    assert_eq!(iter.schema().field(0).name(), "i");
    let total: usize = iter.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(total, 10000);
    assert!(matches!(db.query_iter("SELECT nope FROM n", params![]), Err(omendb::Error::UnknownColumn(_))));
}

#[test]
fn now_is_fixed_per_statement_in_writes_and_queries() {
    let db = Database::open_in_memory().unwrap();
    db.execute("CREATE TABLE ev (id INT PRIMARY KEY, at TIMESTAMPTZ NOT NULL)", params![]).unwrap();
    // Through the general path (now() keeps INSERT off the fast path).
    db.execute("INSERT INTO ev VALUES (1, now()), (2, now() - INTERVAL '1 hour')", params![]).unwrap();
    let mut txn = db.begin().unwrap();
    txn.execute("INSERT INTO ev VALUES ($1, now())", params![3]).unwrap();
    txn.commit().unwrap();
    assert_eq!(crate::q(&db, "SELECT id FROM ev WHERE at > now() - INTERVAL '1 minute' ORDER BY id"), crate::strs(&[&["1"], &["3"]]));
}
