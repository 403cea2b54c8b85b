//! Power cuts and I/O failures, through the log's test backend
//! ([`crate::wal`]'s `faulty`): a cut keeps exactly what the last
//! fdatasync of each segment covered; an injected error fails one write
//! or sync, or every one after it. Recovery must hold every commit a
//! Full-durability `commit` acknowledged, and in every mode a prefix of
//! the commit order: never a partial transaction, never a panic.

use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use crate::schema::{ColumnDef, TableSchema};
use crate::store::{Store, StoreOptions};
use crate::value::{DataType, Value};
use crate::wal::Durability;
use crate::wal::io::faulty::{Faulty, FaultyIo};

fn options(dir: &std::path::Path, durability: Durability) -> StoreOptions {
    StoreOptions {
        dir: Some(dir.to_path_buf()),
        durability,
        gc_interval: Duration::ZERO,
        wal_segment_bytes: 1024,
        checkpoint_wal_bytes: 0,
        ..StoreOptions::default()
    }
}

fn open_faulty(dir: &std::path::Path, durability: Durability, faulty: &Arc<Faulty>) -> Store {
    Store::open_with_io(options(dir, durability), Some(Arc::new(FaultyIo(Arc::clone(faulty))))).unwrap()
}

/// `n` more two-row transactions (ids 2i-1, 2i, after those in the table)
/// from one thread, until the first error; returns how many were
/// acknowledged.
fn commit_pairs(store: &Store, n: i64, checkpoint_every: i64) -> i64 {
    let t = match store.table("t") {
        Some((t, _)) => t,
        None => {
            let schema =
                TableSchema { name: "t".into(), columns: vec![ColumnDef::new("id", DataType::Int64).not_null()], primary_key: vec![0] };
            store.create_table(schema).unwrap().0
        }
    };
    let done = store.begin().unwrap().scan(t, Bound::Unbounded, Bound::Unbounded).unwrap().len() as i64 / 2;
    for i in done + 1..=done + n {
        let mut txn = store.begin().unwrap();
        // After a failed sync the failed commit's rows stay installed (never
        // visible) until reopening, so writing those keys again fails too.
        let inserted = txn.insert(t, vec![Value::Int64(2 * i - 1)]).and_then(|_| txn.insert(t, vec![Value::Int64(2 * i)]));
        if inserted.is_err() || txn.commit().is_err() {
            return i - 1 - done;
        }
        if i % checkpoint_every == 0 {
            // A failed checkpoint leaves the previous one: fine here.
            let _ = store.checkpoint();
        }
    }
    n
}

/// The ids in `t` after reopening with plain I/O; asserts they are 1..=max
/// with max even (whole transactions, no gap).
fn reopened_ids(dir: &std::path::Path) -> i64 {
    let store = Store::open(options(dir, Durability::Full)).unwrap();
    let Some((t, _)) = store.table("t") else { return 0 };
    let rows = store.begin().unwrap().scan(t, Bound::Unbounded, Bound::Unbounded).unwrap();
    let ids: Vec<i64> = rows
        .into_iter()
        .map(|(_, r)| match r[0] {
            Value::Int64(v) => v,
            ref other => panic!("{other:?}"),
        })
        .collect();
    let max = ids.last().copied().unwrap_or(0);
    assert!(ids.iter().copied().eq(1..=max), "a gap among {} ids", ids.len());
    assert_eq!(max % 2, 0, "a partial transaction");
    max
}

#[test]
fn a_power_cut_keeps_a_prefix_and_every_full_commit() {
    for durability in [Durability::Full, Durability::Normal, Durability::Off] {
        for (n, checkpoint_every) in [(1, 1000), (40, 1000), (150, 25), (300, 7)] {
            let dir = tempfile::tempdir().unwrap();
            let faulty = Faulty::new();
            let store = open_faulty(dir.path(), durability, &faulty);
            let acked = commit_pairs(&store, n, checkpoint_every);
            faulty.crash();
            drop(store);
            faulty.lose_unsynced();
            let max = reopened_ids(dir.path());
            if durability == Durability::Full {
                assert!(max >= 2 * acked, "{durability:?}: {acked} acknowledged, {} survived", max / 2);
            }
        }
    }
}

#[test]
fn a_failed_write_or_sync_stops_commits_and_loses_no_acknowledged_one() {
    for durability in [Durability::Full, Durability::Normal] {
        for forever in [false, true] {
            for fail_after in [0, 1, 2, 5, 13, 40] {
                let dir = tempfile::tempdir().unwrap();
                let faulty = Faulty::new();
                let store = open_faulty(dir.path(), durability, &faulty);
                commit_pairs(&store, 3, 1000);
                faulty.fail_after(fail_after, forever);
                let acked = 3 + commit_pairs(&store, 200, 1000);
                if durability == Durability::Full {
                    assert!(acked < 203, "an injected failure must stop commits ({fail_after}, forever {forever})");
                    // The log stays poisoned: nothing is retried over lost pages.
                    assert_eq!(commit_pairs(&store, 1, 1000), 0);
                }
                drop(store);
                let max = reopened_ids(dir.path());
                assert!(max >= 2 * acked.min(3), "setup commits lost");
                if durability == Durability::Full {
                    assert!(max >= 2 * acked, "{acked} acknowledged, {} survived", max / 2);
                }
            }
        }
    }
}
