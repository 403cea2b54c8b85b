//! The store: catalog, commit clock, snapshots, commit protocol and recovery.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::changes::{Change, ChangeOp, ChangeRecord, Publisher, RowChange, Subscription};
use crate::error::{Error, Result};
use crate::schema::{TableId, TableSchema};
use crate::table::{Table, Ts, TxnId};
use crate::txn::{Pending, Transaction};
use crate::value::Value;
use crate::wal::{Durability, Wal, WalOp, WalRecord, WalWrite};

/// Counts of what a [`Store`] holds (see [`Store::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Tables.
    pub tables: usize,
    /// Keys with a version chain, including deleted keys not yet collected.
    pub keys: usize,
    /// Row versions held, tombstones included.
    pub versions: usize,
    /// Bytes of encoded keys and row versions.
    pub data_bytes: usize,
}

/// How to open a [`Store`].
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// Directory for the write-ahead log; `None` keeps everything in memory.
    pub dir: Option<PathBuf>,
    /// When commits reach stable storage (ignored in memory).
    pub durability: Durability,
}

#[derive(Default)]
struct Catalog {
    by_id: HashMap<TableId, Arc<Table>>,
    by_name: HashMap<String, TableId>,
}

/// State changed only under the commit lock.
#[derive(Default)]
struct CommitState {
    publisher: Publisher,
    next_table_id: TableId,
}

struct Inner {
    catalog: RwLock<Catalog>,
    /// The newest commit timestamp whose versions are all installed.
    clock: AtomicU64,
    commit: Mutex<CommitState>,
    /// Snapshot timestamp -> number of open transactions reading at it.
    snapshots: Mutex<BTreeMap<Ts, usize>>,
    next_txn: AtomicU64,
    wal: Option<Wal>,
    closed: AtomicBool,
}

/// An MVCC row store: tables of rows keyed by memcomparable primary keys,
/// snapshot-isolated [`Transaction`]s, a WAL, and a change stream.
///
/// Cheap to clone; every clone is the same store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("ts", &self.current_ts()).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens a store, replaying its log if `options.dir` holds one.
    pub fn open(options: StoreOptions) -> Result<Self> {
        let (wal, records) = match &options.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                let (wal, records) = Wal::open(dir, options.durability)?;
                (Some(wal), records)
            }
            None => (None, Vec::new()),
        };
        let inner = Inner {
            catalog: RwLock::default(),
            clock: AtomicU64::new(0),
            commit: Mutex::new(CommitState { publisher: Publisher::default(), next_table_id: 1 }),
            snapshots: Mutex::default(),
            next_txn: AtomicU64::new(1),
            wal,
            closed: AtomicBool::new(false),
        };
        let store = Self { inner: Arc::new(inner) };
        store.replay(records)?;
        Ok(store)
    }

    fn replay(&self, records: Vec<WalRecord>) -> Result<()> {
        let corrupt = |reason: String| Error::Corruption {
            file: self.inner.wal.as_ref().map(|w| w.path().to_path_buf()).unwrap_or_default(),
            offset: 0,
            reason,
        };
        let mut catalog = self.inner.catalog.write();
        let mut commit = self.inner.commit.lock();
        let mut last = 0;
        for rec in records {
            let ts = match &rec {
                WalRecord::Commit { ts, .. } | WalRecord::CreateTable { ts, .. } | WalRecord::DropTable { ts, .. } => *ts,
            };
            if ts <= last {
                return Err(corrupt(format!("timestamp {ts} after {last}")));
            }
            last = ts;
            match rec {
                WalRecord::CreateTable { id, schema, .. } => {
                    catalog.by_name.insert(schema.name.clone(), id);
                    catalog.by_id.insert(id, Arc::new(Table::new(id, schema)));
                    commit.next_table_id = commit.next_table_id.max(id + 1);
                }
                WalRecord::DropTable { id, .. } => {
                    let table = catalog.by_id.remove(&id).ok_or_else(|| corrupt(format!("drop of unknown table {id}")))?;
                    catalog.by_name.remove(&table.schema.name);
                }
                WalRecord::Commit { writes, .. } => {
                    for w in writes {
                        let table = catalog.by_id.get(&w.table).ok_or_else(|| corrupt(format!("write to unknown table {}", w.table)))?;
                        if table.schema.primary_key.is_empty() {
                            let id = w
                                .key
                                .as_slice()
                                .try_into()
                                .map(u64::from_be_bytes)
                                .map_err(|_| corrupt("row id key of wrong length".into()))?;
                            table.next_row_id.fetch_max(id + 1, Ordering::Relaxed);
                        }
                        let row = match w.op {
                            WalOp::Delete => None,
                            WalOp::Insert(r) | WalOp::Update(r) => Some(r),
                        };
                        // No snapshot is open during replay: keep only the newest version.
                        table.install(&w.key, ts, row, ts);
                    }
                }
            }
        }
        self.inner.clock.store(last, Ordering::Release);
        Ok(())
    }

    /// Starts a transaction reading at the newest committed state.
    pub fn begin(&self) -> Result<Transaction> {
        self.check_open()?;
        let snapshot = {
            // Read the clock under the registry lock, so a concurrent commit's
            // GC horizon (computed under the same lock) never passes it.
            let mut snaps = self.inner.snapshots.lock();
            let ts = self.inner.clock.load(Ordering::Acquire);
            *snaps.entry(ts).or_default() += 1;
            ts
        };
        let id = self.inner.next_txn.fetch_add(1, Ordering::Relaxed);
        Ok(Transaction::new(self.clone(), id, snapshot))
    }

    /// The newest commit timestamp.
    pub fn current_ts(&self) -> Ts {
        self.inner.clock.load(Ordering::Acquire)
    }

    /// Subscribes to the change stream from the next commit on. `capacity`
    /// records may wait unreceived before commits block.
    pub fn subscribe(&self, capacity: usize) -> Subscription {
        self.inner.commit.lock().publisher.subscribe(capacity)
    }

    /// Creates a table; returns its id and the commit timestamp of the DDL.
    pub fn create_table(&self, schema: TableSchema) -> Result<(TableId, Ts)> {
        schema.validate()?;
        let mut commit = self.inner.commit.lock();
        self.check_open()?;
        if self.inner.catalog.read().by_name.contains_key(&schema.name) {
            return Err(Error::TableExists(schema.name));
        }
        let id = commit.next_table_id;
        let ts = self.inner.clock.load(Ordering::Acquire) + 1;
        if let Some(wal) = &self.inner.wal {
            wal.append(&WalRecord::CreateTable { ts, id, schema: schema.clone() })?;
        }
        commit.next_table_id += 1;
        let table = Arc::new(Table::new(id, schema));
        let schema = Arc::clone(&table.schema);
        {
            let mut catalog = self.inner.catalog.write();
            catalog.by_name.insert(schema.name.clone(), id);
            catalog.by_id.insert(id, table);
        }
        self.inner.clock.store(ts, Ordering::Release);
        commit.publisher.publish(ChangeRecord { ts, change: Change::CreateTable { id, schema } });
        Ok((id, ts))
    }

    /// Drops a table by name; returns its id. Transactions that wrote to it
    /// fail at commit with [`Error::UnknownTable`].
    pub fn drop_table(&self, name: &str) -> Result<TableId> {
        let mut commit = self.inner.commit.lock();
        self.check_open()?;
        let id = self.table(name).map(|(id, _)| id).ok_or_else(|| Error::UnknownTable(name.into()))?;
        let ts = self.inner.clock.load(Ordering::Acquire) + 1;
        if let Some(wal) = &self.inner.wal {
            wal.append(&WalRecord::DropTable { ts, id })?;
        }
        {
            let mut catalog = self.inner.catalog.write();
            catalog.by_name.remove(name);
            catalog.by_id.remove(&id);
        }
        self.inner.clock.store(ts, Ordering::Release);
        commit.publisher.publish(ChangeRecord { ts, change: Change::DropTable { id } });
        Ok(id)
    }

    /// The id and schema of the table named `name`.
    pub fn table(&self, name: &str) -> Option<(TableId, Arc<TableSchema>)> {
        let catalog = self.inner.catalog.read();
        let id = *catalog.by_name.get(name)?;
        catalog.by_id.get(&id).map(|t| (id, Arc::clone(&t.schema)))
    }

    /// Every table, ordered by id.
    pub fn tables(&self) -> Vec<(TableId, Arc<TableSchema>)> {
        let catalog = self.inner.catalog.read();
        let mut all: Vec<_> = catalog.by_id.values().map(|t| (t.id, Arc::clone(&t.schema))).collect();
        all.sort_by_key(|(id, _)| *id);
        all
    }

    /// Syncs the log and stops accepting work; subscribers see the stream end.
    /// Idempotent.
    pub fn close(&self) -> Result<()> {
        let mut commit = self.inner.commit.lock();
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        commit.publisher.close();
        match &self.inner.wal {
            Some(wal) => wal.close(),
            None => Ok(()),
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) { Err(Error::Closed) } else { Ok(()) }
    }

    pub(crate) fn table_by_id(&self, id: TableId) -> Result<Arc<Table>> {
        self.inner.catalog.read().by_id.get(&id).cloned().ok_or_else(|| Error::UnknownTable(format!("#{id}")))
    }

    pub(crate) fn release_snapshot(&self, ts: Ts) {
        let mut snaps = self.inner.snapshots.lock();
        if let Some(n) = snaps.get_mut(&ts) {
            *n -= 1;
            if *n == 0 {
                snaps.remove(&ts);
            }
        }
    }

    /// The oldest timestamp any open or future snapshot can read at.
    fn gc_horizon(&self) -> Ts {
        let snaps = self.inner.snapshots.lock();
        let now = self.inner.clock.load(Ordering::Acquire);
        snaps.keys().next().map_or(now, |&oldest| oldest.min(now))
    }

    /// Commits a transaction's writes (the commit protocol of DESIGN.md):
    /// under the commit lock, take the next timestamp, log the redo record,
    /// install the versions, advance the clock, publish the change record.
    /// On error every write slot is released and nothing is visible.
    pub(crate) fn commit(&self, txn: TxnId, writes: BTreeMap<(TableId, Vec<u8>), Pending>) -> Result<Ts> {
        let mut tables: HashMap<TableId, Arc<Table>> = HashMap::new();
        let mut missing = None;
        for (table, _) in writes.keys() {
            if !tables.contains_key(table) {
                match self.table_by_id(*table) {
                    Ok(t) => {
                        tables.insert(*table, t);
                    }
                    Err(e) => missing = Some(e),
                }
            }
        }
        let release = |writes: &BTreeMap<(TableId, Vec<u8>), Pending>| {
            for (table, key) in writes.keys() {
                if let Some(t) = tables.get(table) {
                    t.unlock(key, txn);
                }
            }
        };
        if let Some(e) = missing {
            release(&writes);
            return Err(e);
        }

        let mut wal_writes = Vec::with_capacity(writes.len());
        let mut installs = Vec::with_capacity(writes.len());
        let mut changes = Vec::with_capacity(writes.len());
        for ((table, key), p) in &writes {
            let (op, row) = match (&p.row, p.live_before) {
                (None, false) => continue, // inserted and deleted again: nothing to commit
                (None, true) => (ChangeOp::Delete, None),
                (Some(_), false) => (ChangeOp::Insert, p.row.as_deref()),
                (Some(_), true) => (ChangeOp::Update, p.row.as_deref()),
            };
            let bytes: Option<Arc<[u8]>> = row.map(|r| Arc::from(crate::codec::row::encode_row(r)));
            if self.inner.wal.is_some() {
                let wal_op = match (&bytes, op) {
                    (None, _) => WalOp::Delete,
                    (Some(b), ChangeOp::Insert) => WalOp::Insert(Arc::clone(b)),
                    (Some(b), _) => WalOp::Update(Arc::clone(b)),
                };
                wal_writes.push(WalWrite { table: *table, key: key.clone(), op: wal_op });
            }
            installs.push((*table, key.as_slice(), bytes));
            changes.push(RowChange { table: *table, op, key: key.clone(), row: row.map(<[Value]>::to_vec) });
        }

        let mut commit = self.inner.commit.lock();
        if let Err(e) = self.check_open() {
            release(&writes);
            return Err(e);
        }
        let ts = self.inner.clock.load(Ordering::Acquire) + 1;
        if let Some(wal) = &self.inner.wal
            && let Err(e) = wal.append(&WalRecord::Commit { ts, writes: wal_writes })
        {
            release(&writes);
            return Err(e);
        }
        let horizon = self.gc_horizon();
        for (table, key, bytes) in installs {
            tables[&table].install(key, ts, bytes, horizon);
        }
        // Slots of no-op writes (insert then delete) are still held.
        for ((table, key), p) in &writes {
            if p.row.is_none() && !p.live_before {
                tables[table].unlock(key, txn);
            }
        }
        self.inner.clock.store(ts, Ordering::Release);
        commit.publisher.publish(ChangeRecord { ts, change: Change::Commit(changes) });
        Ok(ts)
    }

    /// What the store holds, for metrics and memory checks.
    pub fn stats(&self) -> StoreStats {
        let tables: Vec<Arc<Table>> = self.inner.catalog.read().by_id.values().cloned().collect();
        let mut stats = StoreStats { tables: tables.len(), ..StoreStats::default() };
        for t in tables {
            let (keys, versions, bytes) = t.stats();
            stats.keys += keys;
            stats.versions += versions;
            stats.data_bytes += bytes;
        }
        stats
    }

    #[cfg(test)]
    pub(crate) fn chain_stats(&self, id: TableId) -> (usize, usize) {
        self.table_by_id(id).map(|t| t.stats()).map(|(k, v, _)| (k, v)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ColumnDef;
    use crate::value::DataType;

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
        let store = Store::open(StoreOptions::default()).unwrap();
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
        let store = Store::open(StoreOptions::default()).unwrap();
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
        drop(old_reader);
        let mut txn = store.begin().unwrap();
        txn.delete(t, &key).unwrap();
        txn.commit().unwrap();
        // The 99 versions the old reader pinned are gone. The tombstone and the
        // row it ended stay until the key's next write: a transaction starting
        // during the delete's commit still reads the row (no background sweep yet).
        assert_eq!(store.chain_stats(t), (1, 2));
        let mut txn = store.begin().unwrap();
        txn.insert(t, vec![Value::Int64(1), Value::Int64(5)]).unwrap();
        txn.commit().unwrap();
        // New row + tombstone; the row the tombstone ended is gone.
        assert_eq!(store.chain_stats(t), (1, 2));
    }
}
