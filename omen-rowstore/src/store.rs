//! The store: catalog, commit clock, snapshots, commit protocol and recovery.

mod checkpoint;
mod compaction;
mod replay;

pub use checkpoint::CheckpointInfo;
use checkpoint::{Summary, checkpoint_in_background};
pub use replay::LogHold;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::alter::{self, Alteration, Rebuilt, Reshape};
use crate::changes::{Change, ChangeOp, ChangeRecord, Publisher, RowChange, Subscription};
use crate::error::{Error, Result};
use crate::index::{Index, IndexDef};
use crate::manifest::{self, Manifest, RetiredTable};
use crate::run::Run;
use crate::schema::{TableId, TableSchema};
use crate::snapshots::{Clock, Registration, Snapshots};
use crate::table::{Base, Chain, Collected, Encoded, KeyBuf, Table, Ts, TxnId};
use crate::txn::{Transaction, WriteSet, release};
use crate::wal::{Durability, IoBackend, LogIo, Wal, WalOp, WalOptions, WalRecord, WalWrite};

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
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Directory for the write-ahead log; `None` keeps everything in memory.
    pub dir: Option<PathBuf>,
    /// When commits reach stable storage (ignored in memory).
    pub durability: Durability,
    /// How often a background thread collects garbage versions (see
    /// [`Store::collect_garbage`]); zero runs no thread. Default 10 ms.
    pub gc_interval: Duration,
    /// Largest size of a log segment file (zero-filled spares start at
    /// 1 MiB and double up to it). Default 64 MiB.
    pub wal_segment_bytes: u64,
    /// How the log writes and syncs: plain pwrite and fdatasync (default),
    /// or io_uring.
    pub io_backend: IoBackend,
    /// A background checkpoint ([`Store::checkpoint`]) starts once the log
    /// holds this many bytes after the last checkpoint (segments a
    /// [`crate::LogHold`] keeps do not count). A checkpoint writes what changed since the
    /// last one (at most about the log's size), then merges runs
    /// size-tiered. Zero: no such trigger (with no `memory_budget` either,
    /// no background checkpoints). Default 64 MiB.
    pub checkpoint_wal_bytes: u64,
    /// Bytes of changed rows the store may hold in memory beyond its runs:
    /// a background checkpoint also starts once the log holds half this
    /// much, whatever the data's size (rows a checkpoint writes leave
    /// memory). Zero: no budget, only `checkpoint_wal_bytes` applies. A
    /// small budget means small, frequent checkpoints and more merging of
    /// their runs. Default 0.
    pub memory_budget: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            dir: None,
            durability: Durability::default(),
            gc_interval: Duration::from_millis(10),
            wal_segment_bytes: 64 << 20,
            io_backend: IoBackend::default(),
            checkpoint_wal_bytes: 64 << 20,
            memory_budget: 0,
        }
    }
}

/// A registered snapshot, released when dropped (on every path out).
struct Registered<'a>(&'a Store, Option<Registration>);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        if let Some(r) = self.1.take() {
            self.0.release_snapshot(r);
        }
    }
}

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

/// Lock-free snapshot slots; more open transactions than this share a mutex.
/// Every commit scans them all for the GC horizon, so they stay few: 64 is
/// eight cache lines, one home line each for eight threads.
const SNAPSHOT_SLOTS: usize = 64;

/// How long index DDL waits for open transactions that wrote its table.
const DDL_PATIENCE: Duration = Duration::from_secs(10);

/// Tables and indexes. Index entry tables are in `by_id` (transactions
/// reach them by id) but have no name there.
#[derive(Default)]
struct Catalog {
    by_id: HashMap<TableId, Arc<Table>>,
    by_name: HashMap<String, TableId>,
    /// Index name to (table id, entries table id).
    indexes: HashMap<String, (TableId, TableId)>,
    /// Tables dropped (or rewritten by ALTER) whose drop the log may still
    /// hold: replaying the log decodes their rows with these schemas.
    retired: Vec<RetiredTable>,
}

impl Catalog {
    /// The live table named `name`.
    fn named(&self, name: &str) -> Option<&Arc<Table>> {
        self.by_name.get(name).and_then(|id| self.by_id.get(id))
    }

    fn add_index(&mut self, table: &Table, index: Arc<Index>) {
        self.indexes.insert(index.def.name.clone(), (table.id, index.entries.id));
        self.by_id.insert(index.entries.id, Arc::clone(&index.entries));
        let mut all = table.indexes().to_vec();
        all.push(index);
        table.set_indexes(all);
    }

    /// Puts a rebuilt table (see [`crate::alter`]) in the place of table
    /// `old` at `ts`; its indexes are readable from `ready`.
    fn replace_table(&mut self, old: TableId, rebuilt: Rebuilt, ts: Ts, ready: Ts) {
        self.remove_table(old, ts);
        let table = rebuilt.table;
        self.by_name.insert(table.schema.name.clone(), table.id);
        self.by_id.insert(table.id, Arc::clone(&table));
        for mut ix in rebuilt.indexes {
            ix.ready = ready;
            self.add_index(&table, Arc::new(ix));
        }
    }

    /// Removes an index by name.
    fn remove_index(&mut self, name: &str) {
        let Some((table, id)) = self.indexes.remove(name) else { return };
        self.by_id.remove(&id);
        if let Some(table) = self.by_id.get(&table) {
            table.set_indexes(table.indexes().iter().filter(|i| i.def.name != name).cloned().collect());
        }
    }

    /// Removes a table and its indexes, dropped at `ts`.
    fn remove_table(&mut self, id: TableId, ts: Ts) -> Option<Arc<Table>> {
        let table = self.by_id.remove(&id)?;
        self.by_name.remove(&table.schema.name);
        self.retired.push(RetiredTable { id, dropped: ts, schema: (*table.schema).clone() });
        for ix in table.indexes().iter() {
            self.indexes.remove(&ix.def.name);
            self.by_id.remove(&ix.entries.id);
        }
        table.set_indexes(Vec::new());
        Some(table)
    }
}

/// A chain that may hold garbage, and where it lives.
struct Queued {
    table: Arc<Table>,
    key: KeyBuf,
    chain: Arc<Chain>,
}

/// State changed only under the commit lock.
#[derive(Default)]
struct CommitState {
    /// The newest timestamp given to a commit or DDL. Ahead of the clock
    /// while commits wait for their group's fsync.
    last_ts: Ts,
    publisher: Publisher,
    next_table_id: TableId,
    /// Chains a commit left with old versions or a tombstone.
    gc_queue: Vec<Queued>,
}

struct Inner {
    dir: Option<PathBuf>,
    catalog: RwLock<Catalog>,
    /// The newest commit timestamp whose versions, and all before it, are
    /// installed and durable: what new snapshots read.
    clock: Clock,
    commit: Mutex<CommitState>,
    snapshots: Snapshots,
    next_txn: AtomicU64,
    wal: Option<Wal>,
    closed: AtomicBool,
    gc_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The checkpoint in force. Held while a checkpoint or a backup runs,
    /// and by `close` to wait for them.
    checkpoint: Mutex<Option<Manifest>>,
    summary: Mutex<Summary>,
    checkpoint_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Called when a transaction lets go of rows ([`Store::on_rows_released`]).
    release_hooks: RwLock<Vec<Box<dyn Fn() + Send + Sync>>>,
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
    /// Opens a store: loads its latest checkpoint, if any, and replays the
    /// log after it.
    pub fn open(options: StoreOptions) -> Result<Self> {
        Self::open_with_io(options, None)
    }

    /// [`Store::open`] with the log's I/O backend given (tests inject faults
    /// through one); `None` takes [`StoreOptions::io_backend`].
    pub(crate) fn open_with_io(options: StoreOptions, io: Option<Arc<dyn LogIo>>) -> Result<Self> {
        let mut recovery = Recovery { commit: CommitState { next_table_id: 1, ..CommitState::default() }, ..Recovery::default() };
        let mut summary = Summary::default();
        let mut checkpoint = None;
        let wal = match &options.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                let mut manifest = Manifest::load(dir)?;
                if let Some(m) = &mut manifest {
                    recovery.load(dir, m)?;
                    summary = Summary::of(m);
                }
                // Only once every run the manifest names has opened: files
                // it does not name are left by a crash mid-checkpoint.
                let names: Vec<&str> = manifest.iter().flat_map(Manifest::runs).collect();
                manifest::remove_unnamed_runs(dir, &names)?;
                let after = recovery.last;
                checkpoint = manifest;
                let io = match io {
                    Some(io) => io,
                    None => crate::wal::backend(options.io_backend)?,
                };
                let wal_options = WalOptions { durability: options.durability, io, segment_bytes: options.wal_segment_bytes };
                Some(Wal::open(dir, wal_options, after, |rec| recovery.apply(rec))?)
            }
            None => None,
        };
        let Recovery { catalog, mut commit, last } = recovery;
        commit.last_ts = last;
        let inner = Inner {
            dir: options.dir.clone(),
            catalog: RwLock::new(catalog),
            clock: Clock::new(last),
            commit: Mutex::new(commit),
            snapshots: Snapshots::new(SNAPSHOT_SLOTS),
            next_txn: AtomicU64::new(1),
            wal,
            closed: AtomicBool::new(false),
            gc_thread: Mutex::new(None),
            checkpoint: Mutex::new(checkpoint),
            summary: Mutex::new(summary),
            checkpoint_thread: Mutex::new(None),
            release_hooks: RwLock::default(),
        };
        let store = Self { inner: Arc::new(inner) };
        // Index entries are neither logged nor checkpointed: build them from the rows.
        let tables: Vec<Arc<Table>> = store.inner.catalog.read().by_id.values().filter(|t| !t.is_index).cloned().collect();
        for t in tables {
            for ix in t.indexes().iter() {
                fill(&t, ix, last).map_err(|e| Error::Corruption {
                    file: options.dir.clone().unwrap_or_default(),
                    offset: 0,
                    reason: format!("rebuilding index {:?}: {e}", ix.def.name),
                })?;
            }
        }
        if !options.gc_interval.is_zero() {
            let weak = Arc::downgrade(&store.inner);
            let thread = std::thread::Builder::new()
                .name("omen-rowstore-gc".into())
                .spawn(move || collect_in_background(&weak, options.gc_interval))?;
            *store.inner.gc_thread.lock() = Some(thread);
        }
        if store.inner.wal.is_some() && (options.checkpoint_wal_bytes > 0 || options.memory_budget > 0) {
            let weak = Arc::downgrade(&store.inner);
            let thread = std::thread::Builder::new()
                .name("omen-rowstore-checkpoint".into())
                .spawn(move || checkpoint_in_background(&weak, options.checkpoint_wal_bytes, options.memory_budget))?;
            *store.inner.checkpoint_thread.lock() = Some(thread);
        }
        Ok(store)
    }

    /// Starts a transaction reading at the newest committed state.
    pub fn begin(&self) -> Result<Transaction> {
        self.check_open()?;
        let (snapshot, registration) = self.acquire_snapshot();
        Ok(Transaction::new(self.clone(), snapshot, registration))
    }

    pub(crate) fn next_txn_id(&self) -> TxnId {
        self.inner.next_txn.fetch_add(1, Ordering::Relaxed)
    }

    /// The newest commit timestamp.
    pub fn current_ts(&self) -> Ts {
        self.inner.clock.load(Ordering::Acquire)
    }

    /// Subscribes to the change stream from the next commit on. `capacity`
    /// records may wait unreceived before commits block.
    ///
    /// A commit's record is sent before the commit becomes visible: once a
    /// snapshot at T has begun, every record up to T is in the
    /// subscription (received or waiting).
    pub fn subscribe(&self, capacity: usize) -> Subscription {
        self.inner.commit.lock().publisher.subscribe(capacity, false)
    }

    /// [`Store::subscribe`] for a reader that must not hold commits back:
    /// once `capacity` records wait unreceived, the store drops the
    /// subscriber instead of blocking ([`Subscription::fell_behind`]); the
    /// reader catches up from the log ([`Store::replay_changes`]) and
    /// subscribes again.
    ///
    /// Also returns the newest commit timestamp given out when it
    /// subscribed: the records after it come through the subscription;
    /// those up to it were sent before, and under [`crate::Durability::Full`]
    /// the last of them may not be visible (nor in
    /// [`Store::replay_changes`]) until their group's sync.
    pub fn subscribe_or_drop(&self, capacity: usize) -> (Subscription, Ts) {
        let mut commit = self.inner.commit.lock();
        let start = commit.last_ts;
        (commit.publisher.subscribe(capacity, true), start)
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
        let ts = commit.last_ts + 1;
        if let Some(wal) = &self.inner.wal {
            wal.append(&WalRecord::CreateTable { ts, id, schema: schema.clone() })?;
        }
        commit.next_table_id += 1;
        let table = Arc::new(Table::new(id, schema, false));
        let schema = Arc::clone(&table.schema);
        {
            let mut catalog = self.inner.catalog.write();
            catalog.by_name.insert(schema.name.clone(), id);
            catalog.by_id.insert(id, table);
        }
        self.advance(&mut commit, ts, [ChangeRecord::new(ts, Change::CreateTable { id, schema })]);
        Ok((id, ts))
    }

    /// Drops a table by name; returns its id. Transactions that wrote to it
    /// fail at commit with [`Error::UnknownTable`].
    pub fn drop_table(&self, name: &str) -> Result<TableId> {
        let mut commit = self.inner.commit.lock();
        self.check_open()?;
        let id = self.table(name).map(|(id, _)| id).ok_or_else(|| Error::UnknownTable(name.into()))?;
        let ts = commit.last_ts + 1;
        if let Some(wal) = &self.inner.wal {
            wal.append(&WalRecord::DropTable { ts, id })?;
        }
        let mut catalog = self.inner.catalog.write();
        catalog.remove_table(id, ts);
        // No log to replay: dropped tables' schemas are needed by nothing.
        if self.inner.wal.is_none() {
            catalog.retired.clear();
        }
        drop(catalog);
        self.advance(&mut commit, ts, [ChangeRecord::new(ts, Change::DropTable { id })]);
        Ok(id)
    }

    /// Builds a secondary index over the table named `table` and returns
    /// the commit timestamp of the DDL; snapshots from then on can read it.
    ///
    /// Waits for open transactions that wrote the table to finish (and holds
    /// new writers back meanwhile), for at most ten seconds, failing with
    /// [`Error::LockTimeout`]. A unique index over rows that repeat its
    /// values fails with [`Error::UniqueViolation`] and leaves nothing.
    pub fn create_index(&self, table: &str, def: IndexDef) -> Result<Ts> {
        self.check_open()?;
        let t = self.inner.catalog.read().named(table).cloned().ok_or_else(|| Error::UnknownTable(table.into()))?;
        def.validate(&t.schema)?;
        if self.inner.catalog.read().indexes.contains_key(&def.name) {
            return Err(Error::IndexExists(def.name));
        }
        let _closed = t.gate.close(DDL_PATIENCE).ok_or_else(|| Error::LockTimeout { table: table.into() })?;
        let id = {
            let mut commit = self.inner.commit.lock();
            commit.next_table_id += 1;
            commit.next_table_id - 1
        };
        let entries = Arc::new(Table::new(id, Index::entries_schema(&def.name), true));
        let mut index = Index { def, entries, ready: 0 };
        fill(&t, &index, self.current_ts())?;

        let mut commit = self.inner.commit.lock();
        self.check_open()?;
        let mut catalog = self.inner.catalog.write();
        if !catalog.by_id.get(&t.id).is_some_and(|c| Arc::ptr_eq(c, &t)) {
            return Err(Error::UnknownTable(table.into()));
        }
        if catalog.indexes.contains_key(&index.def.name) {
            return Err(Error::IndexExists(index.def.name));
        }
        let ts = commit.last_ts + 1;
        if let Some(wal) = &self.inner.wal {
            wal.append(&WalRecord::CreateIndex { ts, id, table: t.id, def: index.def.clone() })?;
        }
        index.ready = ts;
        catalog.add_index(&t, Arc::new(index));
        drop(catalog);
        self.publish_catalog_change(&mut commit, ts);
        Ok(ts)
    }

    /// Drops the secondary index named `name`, waiting for open
    /// transactions that wrote its table as [`Store::create_index`] does.
    pub fn drop_index(&self, name: &str) -> Result<()> {
        self.check_open()?;
        let unknown = || Error::UnknownIndex(name.into());
        let table = self.inner.catalog.read().indexes.get(name).map(|&(table, _)| table).ok_or_else(unknown)?;
        let t = self.table_by_id(table)?;
        let _closed = t.gate.close(DDL_PATIENCE).ok_or_else(|| Error::LockTimeout { table: t.schema.name.clone() })?;
        let mut commit = self.inner.commit.lock();
        self.check_open()?;
        let mut catalog = self.inner.catalog.write();
        let id = catalog.indexes.get(name).map(|&(_, id)| id).ok_or_else(unknown)?;
        let ts = commit.last_ts + 1;
        if let Some(wal) = &self.inner.wal {
            wal.append(&WalRecord::DropIndex { ts, id })?;
        }
        catalog.remove_index(name);
        drop(catalog);
        self.publish_catalog_change(&mut commit, ts);
        Ok(())
    }

    /// Changes the definition of the table named `name` by rewriting it
    /// (see [`Alteration`]): the alterations apply in order, all or none.
    /// Returns the commit timestamp of the DDL.
    ///
    /// Waits for open transactions that wrote the table, as
    /// [`Store::create_index`] does, then builds the new table (a new
    /// [`TableId`]) from every live row and swaps it in. Transactions whose
    /// snapshot predates it get [`Error::UnknownTable`] from the table.
    /// A failure (a row that does not fit, a name that is taken) changes
    /// nothing.
    pub fn alter_table(&self, name: &str, alterations: &[Alteration]) -> Result<Ts> {
        self.check_open()?;
        let t = self.inner.catalog.read().named(name).cloned().ok_or_else(|| Error::UnknownTable(name.into()))?;
        let reshape = Reshape::of(&t.schema, alterations)?;
        let renamed = (reshape.schema.name != t.schema.name).then(|| reshape.schema.name.clone());
        let taken = |catalog: &Catalog| renamed.as_ref().is_some_and(|n| catalog.by_name.contains_key(n));
        if taken(&self.inner.catalog.read()) {
            return Err(Error::TableExists(reshape.schema.name));
        }
        let _closed = t.gate.close(DDL_PATIENCE).ok_or_else(|| Error::LockTimeout { table: name.into() })?;
        let nindexes = t.indexes().iter().filter(|ix| reshape.index(&ix.def).is_some()).count() as u64;
        let new_id = {
            let mut commit = self.inner.commit.lock();
            commit.next_table_id += 1 + nindexes;
            commit.next_table_id - 1 - nindexes
        };
        // The gate is closed: no transaction holds uncommitted writes to the
        // table, so the newest committed state is all there is to copy.
        let read_ts = self.current_ts();
        let subscribed = self.inner.commit.lock().publisher.has_subscribers();
        let mut rebuilt = alter::rebuild(&t, &reshape, new_id, read_ts, subscribed)?;
        for ix in &rebuilt.indexes {
            fill(&rebuilt.table, ix, read_ts)?;
        }

        let mut commit = self.inner.commit.lock();
        self.check_open()?;
        let mut catalog = self.inner.catalog.write();
        if !catalog.by_id.get(&t.id).is_some_and(|c| Arc::ptr_eq(c, &t)) {
            return Err(Error::UnknownTable(name.into()));
        }
        if taken(&catalog) {
            return Err(Error::TableExists(reshape.schema.name));
        }
        // Three change records (drop, create, the rows), one timestamp each,
        // so a reader's sync wait covers all of them.
        let ts = commit.last_ts + 3;
        if let Some(wal) = &self.inner.wal {
            wal.append(&WalRecord::AlterTable { ts, id: t.id, new_id, reshape })?;
        }
        let (schema, rows) = (Arc::clone(&rebuilt.table.schema), std::mem::take(&mut rebuilt.changes));
        catalog.replace_table(t.id, rebuilt, ts, ts);
        if self.inner.wal.is_none() {
            catalog.retired.clear();
        }
        drop(catalog);
        let records = [
            ChangeRecord::new(ts - 2, Change::DropTable { id: t.id }),
            ChangeRecord::new(ts - 1, Change::CreateTable { id: new_id, schema }),
            ChangeRecord::new(ts, Change::Commit(rows)),
        ];
        self.advance(&mut commit, ts, records);
        Ok(ts)
    }

    /// Whether an index named `name` exists.
    pub fn index_exists(&self, name: &str) -> bool {
        self.inner.catalog.read().indexes.contains_key(name)
    }

    /// The secondary indexes of the table named `table`, in creation order.
    pub fn indexes(&self, table: &str) -> Vec<IndexDef> {
        let t = self.inner.catalog.read().named(table).cloned();
        t.map(|t| t.indexes().iter().map(|i| i.def.clone()).collect()).unwrap_or_default()
    }

    /// Makes `ts` the newest timestamp, given and visible, for DDL whose
    /// log record was synced (with every record before it) under the
    /// commit lock; its change records go out first, as a commit's do (see
    /// [`Store::subscribe`]).
    fn advance(&self, commit: &mut CommitState, ts: Ts, records: impl IntoIterator<Item = ChangeRecord>) {
        commit.last_ts = ts;
        for record in records {
            commit.publisher.publish(record);
        }
        self.inner.clock.store(ts, Ordering::SeqCst);
    }

    /// Advances the clock to `ts` for DDL that changes no rows; the change
    /// stream gets an empty commit so its readers' watermarks keep up.
    fn publish_catalog_change(&self, commit: &mut CommitState, ts: Ts) {
        self.advance(commit, ts, [ChangeRecord::new(ts, Change::Commit(Vec::new()))]);
    }

    /// The oldest timestamp an open snapshot reads at (the newest commit's
    /// when none is open): no reader from now on sees a version that ended
    /// at or before it. Derived stores drop such versions (omen-sync's
    /// column-store compaction).
    pub fn oldest_snapshot(&self) -> Ts {
        self.inner.snapshots.horizon(&self.inner.clock)
    }

    /// The id and schema of the table named `name`.
    pub fn table(&self, name: &str) -> Option<(TableId, Arc<TableSchema>)> {
        self.inner.catalog.read().named(name).map(|t| (t.id, Arc::clone(&t.schema)))
    }

    /// Every table, ordered by id.
    pub fn tables(&self) -> Vec<(TableId, Arc<TableSchema>)> {
        let catalog = self.inner.catalog.read();
        let mut all: Vec<_> = catalog.by_id.values().filter(|t| !t.is_index).map(|t| (t.id, Arc::clone(&t.schema))).collect();
        all.sort_by_key(|(id, _)| *id);
        all
    }

    /// Writes a consistent copy of the store into `dir` (created if
    /// missing; it must not hold a store) while commits go on: every commit
    /// up to some point of the commit order, nothing after it; under
    /// [`Durability::Full`] only commits already durable, under the other
    /// modes every acknowledged one. [`Store::open`] on `dir` opens the
    /// copy. It holds the latest checkpoint (manifest and runs) and the log
    /// after it; checkpoints wait while it runs. Returns the bytes copied.
    pub fn backup_to(&self, dir: &Path) -> Result<u64> {
        self.check_open()?;
        let (Some(wal), Some(from)) = (&self.inner.wal, &self.inner.dir) else {
            return Err(Error::Io(std::io::Error::new(std::io::ErrorKind::Unsupported, "an in-memory store has no log to back up")));
        };
        std::fs::create_dir_all(dir)?;
        let checkpoint = self.inner.checkpoint.lock();
        self.check_open()?;
        let runs = match &*checkpoint {
            Some(m) => manifest::copy_checkpoint(from, m, dir)?,
            None => 0,
        };
        Ok(runs + wal.copy_to(dir)?)
    }

    /// The log's I/O backend ("io_uring", "pwrite+fdatasync"); `None` in memory.
    pub fn io_backend(&self) -> Option<&'static str> {
        self.inner.wal.as_ref().map(Wal::backend)
    }

    /// Syncs the log and stops accepting work; subscribers see the stream end.
    /// Idempotent.
    pub fn close(&self) -> Result<()> {
        let mut commit = self.inner.commit.lock();
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        commit.publisher.close();
        drop(commit);
        for thread in [self.inner.gc_thread.lock().take(), self.inner.checkpoint_thread.lock().take()].into_iter().flatten() {
            thread.thread().unpark();
            // Not joined when the last handle drops on that thread itself.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
        // A checkpoint sees `closed` at its next chunk and stops; a backup
        // finishes. Neither touches the files after this.
        drop(self.inner.checkpoint.lock());
        match &self.inner.wal {
            Some(wal) => wal.close(),
            None => Ok(()),
        }
    }

    /// Whether the store was closed ([`Store::close`]).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) { Err(Error::Closed) } else { Ok(()) }
    }

    /// Registers `hook` to run each time a transaction lets go of rows it
    /// held: once its commit is visible, when it rolls back, or when it
    /// rolls back to a savepoint that freed rows. A writer that met a held
    /// row ([`Error::SerializationConflict`]) and waits to try again can
    /// wait for this instead of polling. The hook runs on the releasing
    /// thread, outside the store's locks: keep it short.
    pub fn on_rows_released(&self, hook: impl Fn() + Send + Sync + 'static) {
        self.inner.release_hooks.write().push(Box::new(hook));
    }

    pub(crate) fn rows_released(&self) {
        for hook in self.inner.release_hooks.read().iter() {
            hook();
        }
    }

    pub(crate) fn table_by_id(&self, id: TableId) -> Result<Arc<Table>> {
        self.inner.catalog.read().by_id.get(&id).cloned().ok_or_else(|| Error::UnknownTable(format!("#{id}")))
    }

    /// A snapshot at the newest committed state, registered so the
    /// collector keeps what it reads.
    pub(crate) fn acquire_snapshot(&self) -> (Ts, Registration) {
        self.inner.snapshots.acquire(&self.inner.clock)
    }

    pub(crate) fn release_snapshot(&self, registration: Registration) {
        self.inner.snapshots.release(registration);
    }

    /// Commits a transaction's writes (the commit protocol of DESIGN.md):
    /// under the commit lock, take the next timestamp, log the redo record,
    /// install the versions, advance the clock, publish the change record.
    /// On error every write slot is released and nothing is visible.
    pub(crate) fn commit(&self, txn: TxnId, writes: WriteSet, tables: &[Arc<Table>]) -> Result<Ts> {
        // Encode outside the commit lock; inserted-then-deleted keys commit nothing.
        let mut installs = Vec::with_capacity(writes.len());
        for ((table, key), p) in writes {
            if p.row.is_none() && !p.live_before {
                if let Some(t) = tables.iter().find(|t| t.id == table) {
                    t.unlock(key.as_slice(), &p.chain, txn);
                }
                continue;
            }
            let encoded = p.row.as_deref().map(crate::codec::row::encode_row);
            let bytes = encoded.map(|v| if self.inner.wal.is_some() { Encoded::Shared(v.into()) } else { Encoded::Owned(v) });
            installs.push((table, key, p, bytes));
        }
        let release_all = |installs: Vec<(TableId, KeyBuf, crate::txn::Pending, Option<Encoded>)>| {
            release(txn, installs.into_iter().map(|(t, k, p, _)| ((t, k), p)).collect(), tables);
        };
        let is_index = |id: TableId| tables.iter().any(|t| t.id == id && t.is_index);
        let wal_writes = match &self.inner.wal {
            Some(_) => installs
                .iter()
                .filter(|(table, ..)| !is_index(*table))
                .map(|(table, key, p, bytes)| {
                    let shared = |b: &Encoded| match b {
                        Encoded::Shared(a) => Arc::clone(a),
                        Encoded::Owned(v) => Arc::from(v.as_slice()),
                    };
                    let op = match (bytes, p.live_before) {
                        (None, _) => WalOp::Delete,
                        (Some(b), false) => WalOp::Insert(shared(b)),
                        (Some(b), true) => WalOp::Update(shared(b)),
                    };
                    WalWrite { table: *table, key: key.as_slice().to_vec(), op }
                })
                .collect(),
            None => Vec::new(),
        };

        let mut commit = self.inner.commit.lock();
        let dropped = {
            let catalog = self.inner.catalog.read();
            tables.iter().find(|t| !catalog.by_id.get(&t.id).is_some_and(|c| Arc::ptr_eq(c, t))).map(|t| t.schema.name.clone())
        };
        if let Some(e) = self.check_open().err().or(dropped.map(Error::UnknownTable)) {
            release_all(installs);
            return Err(e);
        }
        let ts = commit.last_ts + 1;
        // Under Full durability, where the group's sync must reach.
        let sync_to = match &self.inner.wal {
            Some(wal) => match wal.write(&WalRecord::Commit { ts, writes: wal_writes }) {
                Ok(end) => end,
                Err(e) => {
                    release_all(installs);
                    return Err(e);
                }
            },
            None => None,
        };
        let horizon = self.inner.snapshots.horizon(&self.inner.clock);
        let mut changes = Vec::new();
        let publish = commit.publisher.has_subscribers();
        for (table, key, p, bytes) in installs {
            if p.chain.install(ts, bytes, horizon)
                && let Some(t) = tables.iter().find(|t| t.id == table)
            {
                commit.gc_queue.push(Queued { table: Arc::clone(t), key: key.clone(), chain: Arc::clone(&p.chain) });
            }
            if publish && !is_index(table) {
                let op = match (&p.row, p.live_before) {
                    (None, _) => ChangeOp::Delete,
                    (Some(_), false) => ChangeOp::Insert,
                    (Some(_), true) => ChangeOp::Update,
                };
                changes.push(RowChange { table, op, key: key.as_slice().to_vec(), row: p.row });
            }
        }
        commit.last_ts = ts;
        // Published before it is visible: a reader whose snapshot includes
        // this commit finds its record already sent.
        if publish {
            commit.publisher.publish(ChangeRecord::new(ts, Change::Commit(changes)));
        }
        if sync_to.is_none() {
            self.inner.clock.store(ts, Ordering::SeqCst);
        }
        drop(commit);
        if let (Some(wal), Some(end)) = (&self.inner.wal, sync_to) {
            // Outside the commit lock, so the next commits write their
            // records meanwhile and share the next sync. The versions are
            // installed but stay invisible (the clock is behind `ts`), and a
            // writer of the same keys meets them as a conflict, as it would
            // meet a held row.
            wal.sync_to(end)?;
            // Commits of one group finish in any order; every record up to
            // `ts` is durable, and installed before this one's.
            self.inner.clock.fetch_max(ts, Ordering::SeqCst);
        }
        Ok(ts)
    }

    /// Frees versions no open snapshot can read and removes deleted keys
    /// from their tables. Commits prune each chain they write; this pass
    /// handles the rest: keys deleted and not written since, and chains an
    /// old snapshot pinned. The background thread (see
    /// [`StoreOptions::gc_interval`]) calls it; it is safe to call anytime.
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

    /// What the store holds, for metrics and memory checks.
    pub fn stats(&self) -> StoreStats {
        let tables: Vec<Arc<Table>> = self.inner.catalog.read().by_id.values().cloned().collect();
        let mut stats = StoreStats { tables: tables.iter().filter(|t| !t.is_index).count(), ..StoreStats::default() };
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

/// The state an opening store rebuilds: the checkpoint's tables, then
/// every logged record after it.
#[derive(Default)]
struct Recovery {
    catalog: Catalog,
    commit: CommitState,
    /// The newest timestamp loaded or replayed.
    last: Ts,
}

impl Recovery {
    /// Loads the checkpoint `manifest` names (noting the runs' sizes where
    /// a version-1 manifest lacks them).
    fn load(&mut self, dir: &Path, manifest: &mut Manifest) -> Result<()> {
        let ts = manifest.ts;
        for entry in &mut manifest.tables {
            let table = Arc::new(Table::new(entry.id, entry.schema.clone(), false));
            table.next_row_id.store(entry.next_row_id, Ordering::Relaxed);
            let mut runs = Vec::with_capacity(entry.runs.len());
            for expect in &mut entry.runs {
                let path = dir.join(&expect.name);
                let run = Run::open(&path)?;
                let size = if expect.bytes == 0 { run.size() } else { expect.bytes };
                if (run.table, run.ts, run.len() as u64, run.size()) != (entry.id, expect.ts, expect.entries, size) {
                    let reason = format!(
                        "run is table {} at {} with {} entries in {} bytes, the manifest expects {} at {} with {} in {size}",
                        run.table,
                        run.ts,
                        run.len(),
                        run.size(),
                        entry.id,
                        expect.ts,
                        expect.entries,
                    );
                    return Err(Error::Corruption { file: path, offset: 0, reason });
                }
                expect.bytes = size;
                runs.push(Arc::new(run));
            }
            // Rows stay in the runs; the log replayed next gives the keys it
            // writes chains.
            table.set_base(Base::new(runs, ts));
            if self.catalog.by_name.insert(entry.schema.name.clone(), entry.id).is_some() || self.catalog.by_id.contains_key(&entry.id) {
                return Err(manifest_corrupt(dir, format!("table {:?} (id {}) listed twice", entry.schema.name, entry.id)));
            }
            self.catalog.by_id.insert(entry.id, Arc::clone(&table));
            for (id, def) in &entry.indexes {
                def.validate(&table.schema).map_err(|e| manifest_corrupt(dir, e.to_string()))?;
                if self.catalog.indexes.contains_key(&def.name) || self.catalog.by_id.contains_key(id) {
                    return Err(manifest_corrupt(dir, format!("index {:?} (id {id}) listed twice", def.name)));
                }
                let entries = Arc::new(Table::new(*id, Index::entries_schema(&def.name), true));
                self.catalog.add_index(&table, Arc::new(Index { def: def.clone(), entries, ready: 0 }));
            }
        }
        self.commit.next_table_id = manifest.next_table_id;
        self.catalog.retired = manifest.retired.clone();
        if let Some(max) = self.catalog.by_id.keys().max().filter(|&&max| max >= manifest.next_table_id) {
            return Err(manifest_corrupt(dir, format!("table id {max} is not below the next id {}", manifest.next_table_id)));
        }
        self.last = ts;
        Ok(())
    }

    /// Applies one logged record; an error says why it cannot apply.
    fn apply(&mut self, rec: WalRecord) -> std::result::Result<(), String> {
        let ts = rec.ts();
        self.last = ts;
        let (catalog, commit) = (&mut self.catalog, &mut self.commit);
        match rec {
            WalRecord::CreateTable { id, schema, .. } => {
                if catalog.by_id.contains_key(&id) || catalog.by_name.contains_key(&schema.name) {
                    return Err(format!("table {:?} (id {id}) created twice", schema.name));
                }
                catalog.by_name.insert(schema.name.clone(), id);
                catalog.by_id.insert(id, Arc::new(Table::new(id, schema, false)));
                commit.next_table_id = commit.next_table_id.max(id.checked_add(1).ok_or("table id out of range")?);
            }
            WalRecord::DropTable { id, .. } => {
                catalog.remove_table(id, ts).ok_or_else(|| format!("drop of unknown table {id}"))?;
            }
            WalRecord::CreateIndex { id, table, def, .. } => {
                let t = catalog.by_id.get(&table).filter(|t| !t.is_index).cloned();
                let t = t.ok_or_else(|| format!("index {:?} on unknown table {table}", def.name))?;
                def.validate(&t.schema).map_err(|e| e.to_string())?;
                if catalog.indexes.contains_key(&def.name) || catalog.by_id.contains_key(&id) {
                    return Err(format!("index {:?} (id {id}) created twice", def.name));
                }
                let entries = Arc::new(Table::new(id, Index::entries_schema(&def.name), true));
                catalog.add_index(&t, Arc::new(Index { def, entries, ready: 0 }));
                commit.next_table_id = commit.next_table_id.max(id.checked_add(1).ok_or("index id out of range")?);
            }
            WalRecord::DropIndex { id, .. } => {
                let name = catalog.indexes.iter().find(|(_, (_, e))| *e == id).map(|(n, _)| n.clone());
                let name = name.ok_or_else(|| format!("drop of unknown index {id}"))?;
                catalog.remove_index(&name);
            }
            WalRecord::AlterTable { id, new_id, reshape, .. } => {
                let old = catalog.by_id.get(&id).filter(|t| !t.is_index).cloned();
                let old = old.ok_or_else(|| format!("alter of unknown table {id}"))?;
                // The rebuilt table's indexes take the ids after `new_id`.
                new_id.checked_add(1 + old.indexes().len() as u64).ok_or("table id out of range")?;
                let rebuilt = alter::rebuild(&old, &reshape, new_id, ts, false).map_err(|e| format!("altering table {id}: {e}"))?;
                commit.next_table_id = commit.next_table_id.max(new_id + 1 + rebuilt.indexes.len() as u64);
                catalog.replace_table(id, rebuilt, ts, 0);
            }
            WalRecord::Commit { writes, .. } => {
                for w in writes {
                    let table = catalog.by_id.get(&w.table).ok_or_else(|| format!("write to unknown table {}", w.table))?;
                    if table.schema.primary_key.is_empty() {
                        let id =
                            w.key.as_slice().try_into().map(u64::from_be_bytes).map_err(|_| "row id key of wrong length".to_string())?;
                        table.next_row_id.fetch_max(id + 1, Ordering::Relaxed);
                    }
                    let row = w.op.into_row().map(Encoded::Shared);
                    // No snapshot is open during replay: keep only the newest
                    // version, and no key a delete left dead.
                    let deleted = row.is_none();
                    match table.lock(&w.key, 0, ts, crate::table::WriteKind::Upsert) {
                        Ok((chain, _)) => drop(chain.install(ts, row, ts)),
                        Err(crate::table::LockError::Read(e)) => return Err(e.to_string()),
                        // No other writer during replay.
                        Err(_) => {}
                    }
                    if deleted {
                        table.unlink_if_dead(&w.key, ts);
                    }
                }
            }
        }
        Ok(())
    }
}

fn manifest_corrupt(dir: &Path, reason: String) -> Error {
    Error::Corruption { file: dir.join(manifest::FILE), offset: 0, reason }
}

/// Writes `index`'s entries for the rows of `table` visible at `ts`, as
/// versions committed at `ts`. Nothing else may write the table meanwhile
/// (its gate is closed, or the store is opening), and no snapshot reads the
/// entries until the index is published.
fn fill(table: &Table, index: &Index, ts: Ts) -> Result<()> {
    let mut failed = None;
    table.visit(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, ts, |key, bytes| {
        let row = match crate::codec::row::decode_row(bytes, &table.schema) {
            Ok(row) => row,
            Err(e) => {
                failed = Some(e);
                return false;
            }
        };
        let entry = index.entry_key(&row, key);
        match index.entries.lock(&entry, 0, ts, crate::table::WriteKind::Insert) {
            Ok((chain, _)) => {
                let value = crate::codec::row::encode_row(&[crate::value::Value::Bytes(key.to_vec())]);
                chain.install(ts, Some(Encoded::Owned(value)), ts);
                true
            }
            Err(_) => {
                let key = index.def.values_text(&table.schema, &row);
                failed = Some(Error::UniqueViolation { index: index.def.name.clone(), table: table.schema.name.clone(), key });
                false
            }
        }
    })?;
    failed.map_or(Ok(()), Err)
}

/// The collector thread: a pass every `interval` until the store closes or
/// every handle to it is gone.
fn collect_in_background(inner: &Weak<Inner>, interval: Duration) {
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
    use crate::schema::ColumnDef;
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
