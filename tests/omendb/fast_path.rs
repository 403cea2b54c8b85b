//! The fast path against the general path: the same statements and
//! parameters on two databases, one with the fast path off, must give the
//! same rows, the same kind of error and the same final tables.

use omendb::{Database, Error, Options, Value, params};
use proptest::prelude::*;

use crate::rows;

const SCHEMA: [&str; 2] = [
    "CREATE TABLE s (k BIGINT PRIMARY KEY, v INT NOT NULL DEFAULT 7, note TEXT)",
    "CREATE TABLE t (a INT, b TEXT, v BIGINT, f DOUBLE PRECISION, PRIMARY KEY (a, b))",
];

/// Statements and whether each has a fast-path form.
const STATEMENTS: [(&str, bool); 18] = [
    ("INSERT INTO s VALUES ($1, $2, $3)", true),
    ("INSERT INTO s (k) VALUES ($1)", true),
    ("INSERT INTO s VALUES ($1, $2, 'x'), ($3, 1, NULL)", true),
    ("SELECT v, note FROM s WHERE k = $1", true),
    ("SELECT v * 2 + 1 AS w, upper(note) FROM s WHERE k = $1 AND v > $2", true),
    ("SELECT * FROM s WHERE $1 = k", true),
    ("SELECT k, v FROM s x WHERE x.k = 5", true),
    ("UPDATE s SET v = v + $2 WHERE k = $1", true),
    ("UPDATE s SET k = $2 WHERE k = $1", true),
    ("UPDATE s SET v = v / $2 WHERE k = $1", true),
    ("DELETE FROM s WHERE k = $1", true),
    ("DELETE FROM s WHERE k = $1 AND note IS NULL", true),
    ("INSERT INTO t VALUES ($1, $2, $3, $4)", true),
    ("SELECT v, f FROM t WHERE a = $1 AND b = $2", true),
    ("UPDATE t SET f = f * 2, v = $3 WHERE b = $2 AND a = $1", true),
    ("DELETE FROM t WHERE a = $1 AND b = $2", true),
    // Not point statements: they plan every time.
    ("SELECT count(*) FROM s WHERE k = $1", false),
    ("DELETE FROM t WHERE a = $1", false),
];

/// A parameter: mostly well-typed small keys, sometimes a value the key
/// column cannot hold exactly (which must fall back, not misbehave).
fn param() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => (0i64..12).prop_map(Value::Int64),
        1 => (0i32..12).prop_map(Value::Int32),
        1 => Just(Value::Float64(2.0)),
        1 => Just(Value::Float64(2.5)),
        1 => Just(Value::Text("3".into())),
        1 => Just(Value::Text("x".into())),
        1 => Just(Value::Null),
        1 => Just(Value::Int64(i64::from(i32::MAX) + 1)),
        1 => Just(Value::Int64(0)),
    ]
}

fn op() -> impl Strategy<Value = (usize, Vec<Value>)> {
    (0..STATEMENTS.len(), proptest::collection::vec(param(), 4))
}

/// Rows as text, or the error's kind.
fn run(db: &Database, sql: &str, params: &[Value]) -> Result<Vec<Vec<String>>, std::mem::Discriminant<Error>> {
    let statement = db.prepare(sql).map_err(|e| std::mem::discriminant(&e))?;
    let n = statement.param_count();
    let args: Vec<&dyn omendb::ToValue> = params[..n].iter().map(|v| v as &dyn omendb::ToValue).collect();
    match statement.query(&args) {
        Ok(batches) => Ok(rows(&batches)),
        Err(e) => Err(std::mem::discriminant(&e)),
    }
}

fn open(fast: bool) -> Database {
    let db = Database::open_in_memory_with(Options::default().with_fast_path(fast)).unwrap();
    for ddl in SCHEMA {
        db.execute(ddl, params![]).unwrap();
    }
    db
}

#[test]
fn point_statements_take_the_fast_path() {
    let db = open(true);
    for (sql, fast) in STATEMENTS {
        assert_eq!(db.prepare(sql).unwrap().is_fast_path(), fast, "{sql}");
    }
    let off = open(false);
    assert!(!off.prepare(STATEMENTS[3].0).unwrap().is_fast_path());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn fast_path_matches_the_general_path(ops in proptest::collection::vec(op(), 1..40)) {
        let (fast, planned) = (open(true), open(false));
        for (i, params) in &ops {
            let sql = STATEMENTS[*i].0;
            prop_assert_eq!(run(&fast, sql, params), run(&planned, sql, params), "{} with {:?}", sql, params);
        }
        for table in ["SELECT * FROM s ORDER BY k", "SELECT * FROM t ORDER BY a, b"] {
            prop_assert_eq!(run(&fast, table, &[]), run(&planned, table, &[]));
        }
    }
}

#[test]
fn fast_path_reads_own_writes_and_rolls_back() {
    let db = open(true);
    let insert = db.prepare("INSERT INTO s VALUES ($1, $2, NULL)").unwrap();
    let get = db.prepare("SELECT v FROM s WHERE k = $1").unwrap();
    insert.execute(params![1, 10]).unwrap();
    let mut txn = db.begin().unwrap();
    txn.execute_prepared(&insert, params![2, 20]).unwrap();
    txn.execute("UPDATE s SET v = 11 WHERE k = 1", params![]).unwrap();
    assert_eq!(rows(&txn.query_prepared(&get, params![2]).unwrap()), [["20"]]);
    assert_eq!(rows(&txn.query_prepared(&get, params![1]).unwrap()), [["11"]]);
    // Others do not see it yet.
    assert_eq!(rows(&get.query(params![1]).unwrap()), [["10"]]);
    assert!(get.query(params![2]).unwrap().iter().all(|b| b.num_rows() == 0));
    // A failed statement aborts the transaction, fast path or not.
    assert!(matches!(txn.execute_prepared(&insert, params![1, 0]), Err(Error::UniqueViolation(_))));
    assert!(matches!(txn.query_prepared(&get, params![1]), Err(Error::TransactionAborted)));
    drop(txn);
    assert_eq!(rows(&get.query(params![1]).unwrap()), [["10"]]);
}

#[test]
fn a_prepared_statement_plans_again_after_ddl() {
    let db = open(true);
    let get = db.prepare("SELECT v FROM s WHERE k = $1").unwrap();
    db.execute("INSERT INTO s VALUES (1, 1, NULL)", params![]).unwrap();
    assert_eq!(rows(&get.query(params![1]).unwrap()), [["1"]]);
    db.execute("DROP TABLE s", params![]).unwrap();
    assert!(matches!(get.query(params![1]), Err(Error::UnknownTable(_))));
    db.execute("CREATE TABLE s (k BIGINT PRIMARY KEY, v TEXT)", params![]).unwrap();
    db.execute("INSERT INTO s VALUES (1, 'new')", params![]).unwrap();
    assert_eq!(rows(&get.query(params![1]).unwrap()), [["new"]]);
    assert!(get.is_fast_path());
}

/// now(), CURRENT_TIMESTAMP and CURRENT_DATE keep a point write on the fast
/// path, each taking its value when the statement runs, on both paths alike.
#[test]
fn stable_functions_take_their_value_per_execution() {
    use arrow::array::{Array, Date32Array, TimestampMicrosecondArray};
    let micros = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
    for fast in [true, false] {
        let db = open(fast);
        db.execute("CREATE TABLE h (id BIGINT PRIMARY KEY, at TIMESTAMP, tz TIMESTAMPTZ, d DATE)", params![]).unwrap();
        let insert = db.prepare("INSERT INTO h VALUES ($1, CURRENT_TIMESTAMP, now(), CURRENT_DATE)").unwrap();
        let touch = db.prepare("UPDATE h SET tz = now() WHERE id = $1").unwrap();
        assert_eq!((insert.is_fast_path(), touch.is_fast_path()), (fast, fast));
        // Volatile functions still plan each execution.
        assert!(!db.prepare("INSERT INTO s VALUES ($1, 1, CAST(random() AS TEXT))").unwrap().is_fast_path());

        let start = micros();
        insert.execute(params![1]).unwrap();
        let between = micros();
        insert.execute(params![2]).unwrap();
        touch.execute(params![1]).unwrap();
        let end = micros();

        let batches = db.query("SELECT at, tz, d FROM h ORDER BY id", params![]).unwrap();
        let b = &batches[0];
        let at = b.column(0).as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
        let tz = b.column(1).as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
        let d = b.column(2).as_any().downcast_ref::<Date32Array>().unwrap();
        assert_eq!(at.len(), 2);
        assert!((start..=between).contains(&at.value(0)), "fast path {fast}: {} not in {start}..={between}", at.value(0));
        assert!((between..=end).contains(&at.value(1)));
        // Row 1's tz was set again by the later UPDATE.
        assert!(tz.value(0) >= tz.value(1) && (between..=end).contains(&tz.value(0)));
        assert!((start / 86_400_000_000..=end / 86_400_000_000).contains(&i64::from(d.value(0))));
    }
}
