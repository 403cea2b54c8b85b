//! Threads and async: Send + Sync, blocking calls inside tokio, async twins.

use omendb::{Database, params};

use crate::{accounts, q, strs};

#[test]
fn database_is_send_sync_and_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Database>();
    let db = Database::open_in_memory().unwrap();
    db.execute("CREATE TABLE hits (id BIGINT PRIMARY KEY, thread INT)", params![]).unwrap();
    std::thread::scope(|s| {
        for t in 0..4i64 {
            let db = db.clone();
            s.spawn(move || {
                for i in 0..50i64 {
                    db.execute("INSERT INTO hits VALUES ($1, $2)", params![t * 1000 + i, t as i32]).unwrap();
                }
            });
        }
    });
    assert_eq!(q(&db, "SELECT count(*), count(DISTINCT thread) FROM hits"), strs(&[&["200", "4"]]));
}

#[tokio::test(flavor = "current_thread")]
async fn blocking_calls_work_inside_a_current_thread_runtime() {
    let db = Database::open_in_memory().unwrap();
    accounts(&db);
    let mut txn = db.begin().unwrap();
    txn.execute("UPDATE accounts SET balance = 1 WHERE id = 1", params![]).unwrap();
    txn.commit().unwrap();
    assert_eq!(q(&db, "SELECT balance FROM accounts WHERE id = 1"), strs(&[&["1"]]));
    drop(db); // dropping inside a runtime must not panic
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_twins_work_and_blocking_calls_too() {
    let db = Database::open_in_memory().unwrap();
    db.execute_async("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)", params![]).await.unwrap();
    assert_eq!(db.execute_async("INSERT INTO t VALUES ($1, $2)", params![1, "a"]).await.unwrap(), 1);
    let mut txn = db.begin().unwrap();
    txn.execute_async("INSERT INTO t VALUES (2, 'b')", params![]).await.unwrap();
    assert_eq!(crate::rows(&txn.query_async("SELECT count(*) FROM t", params![]).await.unwrap()), strs(&[&["2"]]));
    txn.commit_async().await.unwrap();
    let batches = db.query_async("SELECT v FROM t ORDER BY id", params![]).await.unwrap();
    assert_eq!(crate::rows(&batches), strs(&[&["a"], &["b"]]));
    let mut stream = db.query_stream("SELECT id FROM t", params![]).await.unwrap();
    let mut n = 0;
    while let Some(b) = futures::StreamExt::next(&mut stream).await {
        n += b.unwrap().num_rows();
    }
    assert_eq!(n, 2);
    assert_eq!(db.execute("DELETE FROM t", params![]).unwrap(), 2);
    db.close().unwrap();
}

#[test]
fn a_closed_database_refuses_work() {
    let db = Database::open_in_memory().unwrap();
    let other = db.clone();
    db.close().unwrap();
    assert!(matches!(other.execute("SELECT 1", params![]), Err(omendb::Error::Closed)));
    assert!(matches!(other.begin(), Err(omendb::Error::Closed)));
}
