//! The store: the handle ([`Store`]), its options and what its parts share.
//!
//! Each concern has a file: [`catalog`] (tables, indexes, DDL), [`commit`]
//! (the commit protocol and the change stream's feed), [`gc`] (freeing
//! versions no snapshot reads), [`recovery`] (opening: checkpoint, log,
//! indexes), [`checkpoint`] and [`compaction`] (runs and the manifest),
//! and [`replay`] (the change stream read back from the log). This file
//! holds the state they share ([`Inner`]) and the small operations on it.
//!
//! Dependencies point one way: this file uses the types of `catalog`,
//! `commit`, `checkpoint`, `gc` and `replay`, which use nothing of each
//! other; `recovery` and `compaction` use theirs, and nothing uses them.

mod catalog;
mod checkpoint;
mod commit;
mod compaction;
mod gc;
mod recovery;
mod replay;

use catalog::Catalog;
pub use checkpoint::CheckpointInfo;
use checkpoint::Summary;
use commit::CommitState;
pub use gc::GcStats;
pub use replay::LogHold;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::manifest::{self, Manifest};
use crate::schema::TableId;
use crate::snapshots::{Clock, Registration, Snapshots, Ts};
use crate::table::{Table, TxnId};
use crate::txn::Transaction;
use crate::wal::{Durability, IoBackend, Wal};

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

/// Lock-free snapshot slots; more open transactions than this share a mutex.
/// Every commit scans them all for the GC horizon, so they stay few: 64 is
/// eight cache lines, one home line each for eight threads.
const SNAPSHOT_SLOTS: usize = 64;

/// The state every clone of a [`Store`] shares; each field's lock or
/// atomic is its own (see the files that use them).
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

    /// The oldest timestamp an open snapshot reads at (the newest commit's
    /// when none is open): no reader from now on sees a version that ended
    /// at or before it. Derived stores drop such versions (omen-sync's
    /// column-store compaction).
    pub fn oldest_snapshot(&self) -> Ts {
        self.inner.snapshots.horizon(&self.inner.clock)
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
