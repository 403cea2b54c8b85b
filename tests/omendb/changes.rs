//! Change feeds through the facade: SQL writes come back as Arrow batches
//! with the table's columns, in commit order, and a feed resumes from its
//! position.

use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, UInt64Type};
use omendb::{Database, Error, params};

/// (op, id, v) of each change.
fn rows(batch: &RecordBatch) -> Vec<(String, Option<i64>, Option<String>)> {
    let op = batch.column(0).as_string::<i32>();
    let id = batch.column_by_name("id").unwrap().as_primitive::<Int64Type>();
    let v = batch.column_by_name("v").unwrap().as_string::<i32>();
    (0..batch.num_rows())
        .map(|i| {
            use arrow::array::Array;
            (op.value(i).to_string(), id.is_valid(i).then(|| id.value(i)), v.is_valid(i).then(|| v.value(i).to_string()))
        })
        .collect()
}

fn next(feed: &mut omendb::ChangeFeed) -> Vec<(String, Option<i64>, Option<String>)> {
    let mut out = Vec::new();
    while let Some(batch) = feed.next_batch(Duration::from_millis(100)).unwrap() {
        out.extend(rows(&batch));
    }
    out
}

fn s(op: &str, id: Option<i64>, v: Option<&str>) -> (String, Option<i64>, Option<String>) {
    (op.into(), id, v.map(str::to_owned))
}

#[test]
fn sql_writes_come_back_in_commit_order_and_a_feed_resumes_from_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT NOT NULL)", params![]).unwrap();
    db.execute("CREATE TABLE other (id BIGINT PRIMARY KEY)", params![]).unwrap();
    let start = db.current_ts();
    let mut feed = db.changes("t").unwrap();
    db.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')", params![]).unwrap();
    db.execute("INSERT INTO other VALUES (1)", params![]).unwrap();
    db.execute("UPDATE t SET v = 'c' WHERE id = 2", params![]).unwrap();
    let mut txn = db.begin().unwrap();
    txn.execute("DELETE FROM t WHERE id = 1", params![]).unwrap();
    txn.rollback();
    db.execute("DELETE FROM t WHERE id = 1", params![]).unwrap();
    let first = feed.next_batch(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(first.schema(), feed.schema());
    assert!(first.schema().field_with_name("v").unwrap().is_nullable(), "a delete carries nulls");
    let mut got = rows(&first);
    got.extend(next(&mut feed));
    assert_eq!(
        got,
        vec![s("insert", Some(1), Some("a")), s("insert", Some(2), Some("b")), s("update", Some(2), Some("c")), s("delete", None, None)]
    );
    let position = feed.position();
    assert_eq!(position, db.current_ts());

    // Another feed from the same start gives the same; one from the
    // position only what came after it.
    let mut again = db.changes_after("t", start).unwrap();
    assert_eq!(next(&mut again), got);
    let mut from = db.changes_after("t", position).unwrap();
    db.execute("INSERT INTO t VALUES (3, 'd')", params![]).unwrap();
    let batch = from.next_batch(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(rows(&batch), vec![s("insert", Some(3), Some("d"))]);
    assert_eq!(batch.column_by_name("commit_ts").unwrap().as_primitive::<UInt64Type>().value(0), db.current_ts());

    // Bad arguments change nothing and say why.
    assert!(matches!(db.changes("nope"), Err(Error::UnknownTable(_))));
    assert!(matches!(db.changes_after("t", db.current_ts() + 10), Err(Error::FeedUnavailable(_))));
    db.execute("DROP TABLE t", params![]).unwrap();
    assert!(matches!(from.next_batch(Duration::from_secs(5)), Err(Error::FeedUnavailable(_))));
    db.close().unwrap();
}
