//! Power cuts and I/O failures, through the log's test backend
//! ([`crate::wal`]'s `faulty`): a cut keeps exactly what the last
//! fdatasync of each segment covered (and nothing a failed sync should
//! have covered); an injected error fails one write or sync, or every one
//! after it. Recovery must hold every commit a Full-durability `commit`
//! acknowledged, never a partial transaction, and (one committer) a prefix
//! of the commit order; never a panic.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
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

/// A store on the faulty backend, with table `t(id BIGINT PRIMARY KEY)`.
fn open_faulty(dir: &std::path::Path, durability: Durability, faulty: &Arc<Faulty>) -> Store {
    let store = Store::open_with_io(options(dir, durability), Some(Arc::new(FaultyIo(Arc::clone(faulty))))).unwrap();
    let schema = TableSchema { name: "t".into(), columns: vec![ColumnDef::new("id", DataType::Int64).not_null()], primary_key: vec![0] };
    store.create_table(schema).unwrap();
    store
}

/// Commits the pair (2i-1, 2i) for i in `from..from + n`, one transaction
/// each, until the first error; returns the i acknowledged and that error.
fn commit_pairs(store: &Store, from: i64, n: i64, checkpoint_every: i64) -> (Vec<i64>, Option<Error>) {
    let (t, _) = store.table("t").unwrap();
    let mut acked = Vec::new();
    for i in from..from + n {
        let mut txn = store.begin().unwrap();
        let committed = txn
            .insert(t, vec![Value::Int64(2 * i - 1)])
            .and_then(|_| txn.insert(t, vec![Value::Int64(2 * i)]))
            .and_then(|_| txn.commit().map(drop));
        if let Err(e) = committed {
            return (acked, Some(e));
        }
        acked.push(i);
        if i % checkpoint_every == 0 {
            // A failed checkpoint leaves the previous one: fine here.
            let _ = store.checkpoint();
        }
    }
    (acked, None)
}

/// The pairs i in `t` after reopening with plain I/O; asserts no
/// transaction is partial.
fn reopened_pairs(dir: &std::path::Path) -> BTreeSet<i64> {
    let store = Store::open(options(dir, Durability::Full)).unwrap();
    // Under Normal and Off a cut may take the table's creation too.
    let Some((t, _)) = store.table("t") else { return BTreeSet::new() };
    let rows = store.begin().unwrap().scan(t, Bound::Unbounded, Bound::Unbounded).unwrap();
    let ids: BTreeSet<i64> = rows
        .into_iter()
        .map(|(_, r)| match r[0] {
            Value::Int64(v) => v,
            ref other => panic!("{other:?}"),
        })
        .collect();
    let pairs: BTreeSet<i64> = ids.iter().map(|id| (id + 1) / 2).collect();
    for i in &pairs {
        assert!(ids.contains(&(2 * i - 1)) && ids.contains(&(2 * i)), "pair {i} is partial");
    }
    pairs
}

#[test]
fn a_power_cut_keeps_a_prefix_and_every_full_commit() {
    for durability in [Durability::Full, Durability::Normal, Durability::Off] {
        for (n, checkpoint_every) in [(1, 1000), (40, 1000), (150, 25), (300, 7)] {
            let dir = tempfile::tempdir().unwrap();
            let faulty = Faulty::new();
            let store = open_faulty(dir.path(), durability, &faulty);
            let (acked, _) = commit_pairs(&store, 1, n, checkpoint_every);
            faulty.crash();
            drop(store);
            faulty.lose_unsynced();
            let pairs = reopened_pairs(dir.path());
            let max = pairs.last().copied().unwrap_or(0);
            assert!(pairs.iter().copied().eq(1..=max), "{durability:?}: not a prefix: {pairs:?}");
            if durability == Durability::Full {
                assert_eq!(max, acked.len() as i64, "{durability:?}: acknowledged commits lost");
            }
        }
    }
}

#[test]
fn a_failed_write_or_sync_stops_commits_and_loses_no_acknowledged_one() {
    for forever in [false, true] {
        for fail_after in [0, 1, 2, 5, 13, 40] {
            let dir = tempfile::tempdir().unwrap();
            let faulty = Faulty::new();
            let store = open_faulty(dir.path(), Durability::Full, &faulty);
            let (mut acked, _) = commit_pairs(&store, 1, 3, 1000);
            faulty.fail_after(fail_after, forever);
            let (more, failed) = commit_pairs(&store, 4, 200, 1000);
            acked.extend(more);
            assert!(failed.is_some(), "an injected failure must stop commits ({fail_after}, forever {forever})");
            // The log stays poisoned, even when the fault was once: a
            // retried fsync could report lost pages durable.
            let (none, refused) = commit_pairs(&store, 1000, 1, 1000);
            assert!(none.is_empty() && matches!(refused, Some(Error::WalFailed(_))), "{refused:?}");
            faulty.crash();
            drop(store);
            faulty.lose_unsynced();
            let pairs = reopened_pairs(dir.path());
            for i in &acked {
                assert!(pairs.contains(i), "acknowledged pair {i} lost ({fail_after}, forever {forever})");
            }
        }
    }
}

/// Group commit under faults: several committers, small segments (rolls
/// race group syncs), one injected failure, then a power cut.
#[test]
fn concurrent_committers_lose_no_acknowledged_commit_to_a_failure() {
    for fail_after in [3, 10, 25, 60, 120] {
        let dir = tempfile::tempdir().unwrap();
        let faulty = Faulty::new();
        let store = open_faulty(dir.path(), Durability::Full, &faulty);
        faulty.fail_after(fail_after, false);
        let acked: Vec<i64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4i64)
                .map(|t| {
                    let store = &store;
                    s.spawn(move || commit_pairs(store, 1 + t * 100_000, 300, 1000).0)
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        faulty.crash();
        drop(store);
        faulty.lose_unsynced();
        let pairs = reopened_pairs(dir.path());
        for i in &acked {
            assert!(pairs.contains(i), "acknowledged pair {i} lost (failure after {fail_after} operations)");
        }
    }
}
