//! The WAL: committed work survives reopen, uncommitted work does not.

use std::ops::Bound;

use omen_rowstore::{ColumnDef, DataType, Durability, Error, Store, StoreOptions, TableSchema, Value};

use crate::{create_accounts, key, row};

fn open(dir: &std::path::Path, durability: Durability) -> Store {
    Store::open(StoreOptions { dir: Some(dir.to_path_buf()), durability, ..StoreOptions::default() }).unwrap()
}

#[test]
fn committed_rows_and_tables_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    for durability in [Durability::Full, Durability::Normal, Durability::Off] {
        let path = dir.path().join(format!("{durability:?}"));
        {
            let store = open(&path, durability);
            let t = create_accounts(&store);
            let mut txn = store.begin().unwrap();
            txn.insert(t, row(1, 10)).unwrap();
            txn.insert(t, row(2, 20)).unwrap();
            txn.commit().unwrap();
            let mut txn = store.begin().unwrap();
            txn.update(t, &key(1), row(1, 11)).unwrap();
            txn.delete(t, &key(2)).unwrap();
            txn.commit().unwrap();
            let mut open_txn = store.begin().unwrap();
            open_txn.insert(t, row(3, 30)).unwrap();
            std::mem::forget(open_txn); // never committed
            let dropped = store.create_table(TableSchema { name: "gone".into(), ..schema_without_key() }).unwrap();
            assert!(dropped.0 > t);
            store.drop_table("gone").unwrap();
            store.close().unwrap();
        }
        let store = open(&path, durability);
        let (t, _) = store.table("accounts").unwrap();
        assert!(store.table("gone").is_none());
        let r = store.begin().unwrap();
        let rows: Vec<_> = r.scan(t, Bound::Unbounded, Bound::Unbounded).unwrap().into_iter().map(|(_, r)| r).collect();
        assert_eq!(rows, vec![row(1, 11)], "{durability:?}");
        // The clock continues after the replayed commits.
        let mut txn = store.begin().unwrap();
        txn.insert(t, row(4, 40)).unwrap();
        assert!(txn.commit().unwrap() > r.snapshot());
    }
}

fn schema_without_key() -> TableSchema {
    TableSchema { name: "events".into(), columns: vec![ColumnDef::new("what", DataType::Text)], primary_key: vec![] }
}

#[test]
fn keyless_tables_get_fresh_row_ids_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), Durability::Full);
        let (t, _) = store.create_table(schema_without_key()).unwrap();
        let mut txn = store.begin().unwrap();
        let a = txn.insert(t, vec![Value::Text("a".into())]).unwrap();
        let b = txn.insert(t, vec![Value::Text("a".into())]).unwrap();
        assert_ne!(a, b);
        txn.commit().unwrap();
    }
    let store = open(dir.path(), Durability::Full);
    let (t, _) = store.table("events").unwrap();
    let mut txn = store.begin().unwrap();
    txn.insert(t, vec![Value::Text("c".into())]).unwrap();
    txn.commit().unwrap();
    let r = store.begin().unwrap();
    assert_eq!(r.scan(t, Bound::Unbounded, Bound::Unbounded).unwrap().len(), 3);
}

#[test]
fn closed_store_refuses_work() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Durability::Full);
    let t = create_accounts(&store);
    let mut txn = store.begin().unwrap();
    txn.insert(t, row(1, 1)).unwrap();
    store.close().unwrap();
    assert!(matches!(txn.commit(), Err(Error::Closed)));
    assert!(matches!(store.begin(), Err(Error::Closed)));
}

/// Group commit: committers share fsyncs, yet each commit is visible to
/// the next snapshot once `commit` returns, snapshots never go back, and
/// every acknowledged commit is there after reopen.
#[test]
fn concurrent_full_durability_commits_are_visible_ordered_and_kept() {
    const THREADS: i64 = 4;
    const EACH: i64 = 100;
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), Durability::Full);
        let t = create_accounts(&store);
        let done = std::sync::atomic::AtomicUsize::new(0);
        let (done, store_ref) = (&done, &store);
        std::thread::scope(|s| {
            let store = store_ref;
            for thread in 0..THREADS {
                s.spawn(move || {
                    for i in 0..EACH {
                        let id = thread * EACH + i;
                        let mut txn = store.begin().unwrap();
                        txn.insert(t, row(id, id)).unwrap();
                        let ts = txn.commit().unwrap();
                        let r = store.begin().unwrap();
                        assert!(r.snapshot() >= ts);
                        assert_eq!(r.get(t, &key(id)).unwrap(), Some(row(id, id)));
                    }
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
            s.spawn(move || {
                let mut last = 0;
                while done.load(std::sync::atomic::Ordering::SeqCst) < THREADS as usize {
                    let r = store.begin().unwrap();
                    assert!(r.snapshot() >= last, "snapshots went back");
                    last = r.snapshot();
                    // What a snapshot sees, it keeps seeing.
                    let seen = r.scan(t, Bound::Unbounded, Bound::Unbounded).unwrap().len();
                    assert_eq!(r.scan(t, Bound::Unbounded, Bound::Unbounded).unwrap().len(), seen);
                }
            });
        });
        // No close: the reopen below must find every acknowledged commit
        // from the log alone.
        std::mem::forget(store);
    }
    let store = open(dir.path(), Durability::Full);
    let (t, _) = store.table("accounts").unwrap();
    let r = store.begin().unwrap();
    assert_eq!(r.scan(t, Bound::Unbounded, Bound::Unbounded).unwrap().len(), (THREADS * EACH) as usize);
}
