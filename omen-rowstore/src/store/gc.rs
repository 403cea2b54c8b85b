//! The garbage collector: versions no open snapshot can read are freed,
//! and keys deleted for every snapshot leave their tables. Commits prune
//! each chain they write and queue the chains left with old versions; a
//! pass ([`Store::collect_garbage`]), on a background thread or called,
//! handles the queue and the chains a checkpoint's runs now hold.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{Inner, Store};
use crate::table::{Collected, Table};

/// What one [`Store::collect_garbage`] pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Chains examined.
    pub examined: usize,
    /// Dead keys removed from their tables.
    pub unlinked: usize,
    /// Chains left queued: an open snapshot may still read their old versions.
    pub pending: usize,
}

impl Store {
    /// Frees versions no open snapshot can read and removes deleted keys
    /// from their tables. Commits prune each chain they write; this pass
    /// handles the rest: keys deleted and not written since, and chains an
    /// old snapshot pinned. The background thread (see
    /// [`StoreOptions::gc_interval`](crate::StoreOptions::gc_interval)) calls it; it is safe to call anytime.
    pub fn collect_garbage(&self) -> GcStats {
        let queue = std::mem::take(&mut self.inner.commit.lock().gc_queue);
        let horizon = self.inner.snapshots.horizon(&self.inner.clock);
        // Chains a checkpoint's runs hold, left while older snapshots were open.
        let tables: Vec<Arc<Table>> = self.inner.catalog.read().by_id.values().cloned().collect();
        for t in tables {
            t.evict(horizon);
        }
        let mut stats = GcStats { examined: queue.len(), ..GcStats::default() };
        let mut pending = Vec::new();
        for q in queue {
            match q.chain.collect(horizon) {
                Collected::Clean => {}
                // A writer may have taken it meanwhile; its commit queues it again.
                Collected::Dead => stats.unlinked += usize::from(q.table.unlink_if_dead(q.key.as_slice(), horizon)),
                Collected::Pending => pending.push(q),
            }
        }
        stats.pending = pending.len();
        self.inner.commit.lock().gc_queue.append(&mut pending);
        stats
    }
}

/// The collector thread: a pass every `interval` until the store closes or
/// every handle to it is gone.
pub(super) fn collect_in_background(inner: &Weak<Inner>, interval: Duration) {
    loop {
        std::thread::park_timeout(interval);
        let Some(inner) = inner.upgrade() else { return };
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        Store { inner }.collect_garbage();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ColumnDef, TableId, TableSchema};
    use crate::store::StoreOptions;
    use crate::value::{DataType, Value};

    fn manual_gc() -> Store {
        Store::open(StoreOptions { gc_interval: Duration::ZERO, ..StoreOptions::default() }).unwrap()
    }

    fn kv(store: &Store) -> TableId {
        let schema = TableSchema {
            name: "kv".into(),
            columns: vec![ColumnDef::new("k", DataType::Int64).not_null(), ColumnDef::new("v", DataType::Int64)],
            primary_key: vec![0],
        };
        store.create_table(schema).unwrap().0
    }

    #[test]
    fn gc_keeps_memory_near_live_size_under_updates() {
        let store = manual_gc();
        let t = kv(&store);
        for round in 0..200 {
            let mut txn = store.begin().unwrap();
            for k in 0..50 {
                txn.upsert(t, vec![Value::Int64(k), Value::Int64(round)]).unwrap();
            }
            txn.commit().unwrap();
        }
        let (keys, versions) = store.chain_stats(t);
        assert_eq!(keys, 50);
        // Each key keeps its newest version, plus at most the one it replaced.
        assert!(versions <= 100, "{versions} versions for 50 keys");
    }

    #[test]
    fn gc_spares_versions_an_open_snapshot_reads() {
        let store = manual_gc();
        let t = kv(&store);
        let key = {
            let mut txn = store.begin().unwrap();
            let key = txn.insert(t, vec![Value::Int64(1), Value::Int64(0)]).unwrap();
            txn.commit().unwrap();
            key
        };
        let old_reader = store.begin().unwrap();
        for i in 1..100 {
            let mut txn = store.begin().unwrap();
            txn.update(t, &key, vec![Value::Int64(1), Value::Int64(i)]).unwrap();
            txn.commit().unwrap();
        }
        assert_eq!(old_reader.get(t, &key).unwrap(), Some(vec![Value::Int64(1), Value::Int64(0)]));
        // Only the pruning at each write ran: the old reader pinned all 100.
        assert_eq!(store.chain_stats(t), (1, 100));
        drop(old_reader);
        assert_eq!(store.collect_garbage(), GcStats { examined: 1, unlinked: 0, pending: 0 });
        assert_eq!(store.chain_stats(t), (1, 1));

        let mut txn = store.begin().unwrap();
        txn.delete(t, &key).unwrap();
        txn.commit().unwrap();
        // The tombstone and the row it ended wait for the collector.
        assert_eq!(store.chain_stats(t), (1, 2));
        let reader = store.begin().unwrap();
        assert_eq!(store.collect_garbage(), GcStats { examined: 1, unlinked: 1, pending: 0 });
        assert_eq!(store.chain_stats(t), (0, 0));
        assert_eq!(reader.get(t, &key).unwrap(), None);
        drop(reader);

        // The key can be used again after it was unlinked.
        let mut txn = store.begin().unwrap();
        txn.insert(t, vec![Value::Int64(1), Value::Int64(5)]).unwrap();
        txn.commit().unwrap();
        assert_eq!(store.chain_stats(t), (1, 1));
        assert_eq!(store.begin().unwrap().get(t, &key).unwrap(), Some(vec![Value::Int64(1), Value::Int64(5)]));
    }

    #[test]
    fn gc_waits_for_a_snapshot_that_still_reads_a_deleted_row() {
        let store = manual_gc();
        let t = kv(&store);
        let mut txn = store.begin().unwrap();
        let key = txn.insert(t, vec![Value::Int64(1), Value::Int64(0)]).unwrap();
        txn.commit().unwrap();
        let reader = store.begin().unwrap();
        let mut txn = store.begin().unwrap();
        txn.delete(t, &key).unwrap();
        txn.commit().unwrap();
        assert_eq!(store.collect_garbage(), GcStats { examined: 1, unlinked: 0, pending: 1 });
        assert_eq!(reader.get(t, &key).unwrap(), Some(vec![Value::Int64(1), Value::Int64(0)]));
        drop(reader);
        assert_eq!(store.collect_garbage(), GcStats { examined: 1, unlinked: 1, pending: 0 });
        assert_eq!(store.chain_stats(t), (0, 0));
    }

    #[test]
    fn background_collector_unlinks_deleted_keys() {
        let store = Store::open(StoreOptions { gc_interval: Duration::from_millis(1), ..StoreOptions::default() }).unwrap();
        let t = kv(&store);
        let mut txn = store.begin().unwrap();
        let keys: Vec<_> = (0..100).map(|k| txn.insert(t, vec![Value::Int64(k), Value::Int64(0)]).unwrap()).collect();
        txn.commit().unwrap();
        let mut txn = store.begin().unwrap();
        for k in &keys {
            txn.delete(t, k).unwrap();
        }
        txn.commit().unwrap();
        // Polls for the collector's effect; the bound only stops a hang.
        for _ in 0..30_000 {
            if store.chain_stats(t).0 == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(store.chain_stats(t), (0, 0));
        store.close().unwrap();
    }
}
