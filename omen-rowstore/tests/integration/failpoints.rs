//! Failpoints (the `fail` crate, `--features failpoints`) at each step of
//! commit, checkpoint and compaction, failing once and failing forever: the operation
//! reports an error, and a reopened store holds exactly the acknowledged
//! commits (a consistent prefix), never a panic.
//!
//!   cargo test -p omen-rowstore --features failpoints --test integration failpoints

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use omen_rowstore::{Durability, Store, StoreOptions};

use crate::row;

const POINTS: [&str; 10] = [
    "wal::write",
    "wal::sync",
    "wal::roll",
    "checkpoint::run",
    "checkpoint::manifest",
    "checkpoint::cleanup",
    "checkpoint::log",
    // Checkpoints merge their runs (four small ones at a time) after them.
    "compaction::run",
    "compaction::manifest",
    "compaction::cleanup",
];

fn options(dir: &Path) -> StoreOptions {
    StoreOptions {
        dir: Some(dir.to_path_buf()),
        durability: Durability::Full,
        gc_interval: Duration::ZERO,
        wal_segment_bytes: 512,
        checkpoint_wal_bytes: 0,
        ..StoreOptions::default()
    }
}

fn ids(store: &Store) -> BTreeSet<i64> {
    crate::account_ids(store).into_iter().collect()
}

/// Commits ids `range` one per transaction, checkpointing every fifth;
/// returns the ids whose commit was acknowledged and how many operations
/// (commits and checkpoints) failed.
fn work(store: &Store, range: std::ops::Range<i64>) -> (BTreeSet<i64>, usize) {
    let (t, _) = store.table("accounts").unwrap();
    let (mut acked, mut failed) = (BTreeSet::new(), 0);
    for id in range {
        let mut txn = store.begin().unwrap();
        if txn.insert(t, row(id, 0)).is_ok() && txn.commit().is_ok() {
            acked.insert(id);
        } else {
            failed += 1;
        }
        // A failed merge after a checkpoint leaves the checkpoint in force
        // and is reported as its last error.
        if id % 5 == 0 {
            let done = store.checkpoint().is_ok_and(|info| info.last_error.is_none());
            failed += usize::from(!done);
        }
    }
    (acked, failed)
}

#[test]
fn every_failpoint_once_or_forever_leaves_exactly_the_acknowledged_commits() {
    let scenario = fail::FailScenario::setup();
    for point in POINTS {
        for action in ["1*return", "return"] {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(options(dir.path())).unwrap();
            crate::create_accounts(&store);
            let (mut acked, failed) = work(&store, 0..20);
            assert_eq!(failed, 0);
            fail::cfg(point, action).unwrap();
            let (during, failed) = work(&store, 20..60);
            assert!(failed > 0, "{point} {action} never fired");
            acked.extend(during);
            fail::remove(point);
            // Once the log is poisoned commits stay refused until reopened;
            // a checkpoint failure leaves the log working.
            acked.extend(work(&store, 60..70).0);
            drop(store);
            let store = Store::open(options(dir.path())).unwrap_or_else(|e| panic!("{point} {action}: reopening: {e}"));
            assert_eq!(ids(&store), acked, "{point} {action}");
            // And it keeps working.
            let (more, failed) = work(&store, 100..110);
            assert_eq!((more.len(), failed), (10, 0), "{point} {action}: commits after reopening");
            let info = store.checkpoint().unwrap_or_else(|e| panic!("{point} {action}: a checkpoint after reopening: {e}"));
            assert_eq!(info.last_error, None, "{point} {action}");
        }
    }
    scenario.teardown();
}
