//! The sync worker: applies the row store's change stream to the column store
//! in commit order, in micro-batches, and advances the applied watermark.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use crossbeam_channel::{Receiver, Select, Sender};
use omen_colstore::{ChangeBatch, ChangeOp as ColOp, ColumnStore};
use omen_rowstore::{Change, ChangeOp, ChangeRecord, Store, TableId, TableSchema, Ts, Value};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::convert::{arrow_schema, rows_to_batch};
use crate::error::{Error, Result};
use crate::inbox::Inbox;
use crate::metrics::{Counters, SyncMetrics};

/// Tuning for the sync worker.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Change records that may wait before commits block (back pressure).
    /// Default 4096.
    pub channel_capacity: usize,
    /// Most commit records applied as one micro-batch. Default 1024.
    pub max_batch_records: usize,
    /// How often a persistent column store is written as of the watermark,
    /// and tables with many dead versions compacted. Default 2 s.
    pub persist_every: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self { channel_capacity: 4096, max_batch_records: 1024, persist_every: Duration::from_secs(2) }
    }
}

/// How often the worker checks its stop flag while the stream is idle.
const POLL: Duration = Duration::from_millis(20);
/// A table is compacted in the background once it holds at least this
/// many dead versions, and they are a quarter of its versions or more.
const COMPACT_MIN_DEAD: usize = 1 << 16;

/// Persists failing in a row after which the persister lets the row store
/// drop its log: the next open then rebuilds the column store instead of
/// the log growing without end (a full disk, say).
const PERSIST_ATTEMPTS: u32 = 30;

pub(crate) struct Shared {
    rows: Store,
    pub(crate) cols: Arc<ColumnStore>,
    /// The row store's change stream, and what was received from it and
    /// is not applied yet. W changes only under this lock (see [`Inbox`]).
    pub(crate) inbox: Mutex<Inbox>,
    /// Wakes the worker when a snapshot moved records into the inbox
    /// while it waited on the channel.
    wake: Sender<()>,
    /// W: every commit at or below it is applied to the column store.
    pub(crate) watermark: watch::Sender<Ts>,
    pub(crate) failure: Mutex<Option<String>>,
    pub(crate) schemas: RwLock<HashMap<TableId, (Arc<TableSchema>, SchemaRef)>>,
    stop: AtomicBool,
    /// The newest commit when the stop was asked: the worker applies up to
    /// it before it exits (every record up to it was already sent).
    stop_at: AtomicU64,
    /// Set once the worker has exited: the maintenance thread's last pass.
    worker_exited: AtomicBool,
    /// Pauses in force ([`Syncer::pause`]).
    paused: AtomicUsize,
    pub(crate) counters: Counters,
    /// While replaying the log on open: a commit may touch a table dropped
    /// later in the replay (its rows are skipped: no snapshot from now on
    /// sees them), and tables the column store has from after its
    /// watermark are made again.
    replaying: AtomicBool,
    /// Why the last persist of the column store failed, if it did.
    persist_error: Mutex<Option<String>>,
    /// The durable watermark the column store resumed from on start, if
    /// it did (else it was rebuilt).
    resumed_from: Mutex<Option<Ts>>,
}

/// Keeps the column store in step with the row store. See the crate docs.
pub struct Syncer {
    pub(crate) shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
    persister: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer").field("watermark", &self.watermark()).finish_non_exhaustive()
    }
}

impl Syncer {
    /// Brings the column store to the row store's current state and starts
    /// the worker that keeps it in step. A column store persisted earlier
    /// (see [`ColumnStore::persist`]) resumes: the row store's log after
    /// its durable watermark is replayed into it
    /// ([`Store::replay_changes`]). Otherwise, or when that cannot be done
    /// exactly (the log no longer holds those changes, an ALTER TABLE
    /// among them, a damaged column-store file, tables that do not match),
    /// it is rebuilt from a snapshot of the row store. A persistent column
    /// store is then written every couple of seconds as of the watermark,
    /// and the row store keeps its log from there ([`Store::hold_log`]).
    pub fn start(rows: Store, cols: Arc<ColumnStore>, options: SyncOptions) -> Result<Self> {
        // Subscribe before reading: a commit is then either read (from the
        // log or a snapshot) or in the stream after it (or both, and skipped).
        let sub = rows.subscribe(options.channel_capacity);
        let records = sub.receiver().clone();
        let (wake, woken) = crossbeam_channel::bounded(1);
        let shared = Arc::new(Shared {
            rows: rows.clone(),
            cols,
            inbox: Mutex::new(Inbox::new(sub, options.channel_capacity + options.max_batch_records)),
            wake,
            watermark: watch::Sender::new(0),
            failure: Mutex::new(None),
            schemas: RwLock::new(HashMap::new()),
            stop: AtomicBool::new(false),
            stop_at: AtomicU64::new(0),
            worker_exited: AtomicBool::new(false),
            paused: AtomicUsize::new(0),
            counters: Counters::default(),
            replaying: AtomicBool::new(false),
            persist_error: Mutex::new(None),
            resumed_from: Mutex::new(None),
        });
        // The log after what the column store holds on disk stays from now
        // on (a checkpoint may run meanwhile), until the next persist.
        let w = shared.cols.durable_watermark();
        let mut hold = match shared.cols.is_persistent() && w > 0 {
            true => rows.hold_log(w).ok(),
            false => None,
        };
        // Any failure to resume means a rebuild: the column store is derived.
        let resumed = match &hold {
            Some(_) => resume(&rows, &shared).unwrap_or(None),
            None => None,
        };
        let loaded_at = match resumed {
            Some(at) => {
                *shared.resumed_from.lock() = Some(w);
                at
            }
            None => {
                // What is on disk is of no use; the log after the rebuild is
                // what counts.
                let at = rebuild(&rows, &shared)?;
                if shared.cols.is_persistent() {
                    hold = Some(rows.hold_log(at)?);
                }
                at
            }
        };
        shared.watermark.send_replace(loaded_at);
        let worker = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("omen-sync".into())
                .spawn(move || run(&shared, &records, &woken, options.max_batch_records))
                .map_err(|e| Error::SyncFailed(format!("cannot start the sync thread: {e}")))?
        };
        let syncer = Self { shared, worker: Mutex::new(Some(worker)), persister: Mutex::new(None) };
        let shared = Arc::clone(&syncer.shared);
        let every = options.persist_every;
        let thread = std::thread::Builder::new()
            .name("omen-sync-maintain".into())
            .spawn(move || maintain_in_background(&shared, hold, every))
            .map_err(|e| Error::SyncFailed(format!("cannot start the maintenance thread: {e}")))?;
        *syncer.persister.lock() = Some(thread);
        Ok(syncer)
    }

    /// The column store's durable watermark the start resumed from by
    /// replaying the log after it; `None` if it was rebuilt from the row
    /// store instead.
    pub fn resumed_from(&self) -> Option<Ts> {
        *self.shared.resumed_from.lock()
    }

    /// Compacts the column store's tables (see
    /// [`omen_colstore::ColumnTable::compact`]): every table with
    /// `all`, else those holding many dead versions (the background
    /// thread's rule). The horizon is the row store's oldest open snapshot,
    /// and for a persistent column store no later than its durable
    /// watermark (its files stay exact there). Returns the versions dropped.
    pub fn compact(&self, all: bool) -> Result<usize> {
        compact_tables(&self.shared, all)
    }

    /// Why the last write of the column store to disk failed, if it did
    /// (it is tried again; the row store keeps its log meanwhile).
    pub fn persist_error(&self) -> Option<String> {
        self.shared.persist_error.lock().clone()
    }

    /// The applied watermark W.
    pub fn watermark(&self) -> Ts {
        *self.shared.watermark.borrow()
    }

    /// The column store sync keeps.
    pub fn columns(&self) -> &Arc<ColumnStore> {
        &self.shared.cols
    }

    /// The watermark, what has been applied, and the lag of each commit
    /// from its publication to its application.
    pub fn metrics(&self) -> SyncMetrics {
        self.shared.counters.snapshot(self.watermark())
    }

    /// Stops applying changes until the returned guard drops (a batch the
    /// worker already took is still applied): the watermark stays, snapshots
    /// overlay what commits bring meanwhile (see [`Syncer::snapshot`]), and
    /// once `channel_capacity` records wait (more when snapshots move them
    /// into sync's memory) commits block. A snapshot that has to wait for
    /// the watermark (DDL among the commits, or more of them than sync
    /// holds) waits until the pause ends. For tests and for measuring what
    /// sync costs.
    pub fn pause(&self) -> SyncPause {
        self.shared.paused.fetch_add(1, Ordering::AcqRel);
        // The worker checks for pauses under the inbox lock: once it is
        // taken here, the worker applies nothing it receives from now on.
        drop(self.shared.inbox.lock());
        SyncPause { shared: Arc::clone(&self.shared) }
    }

    /// Waits until every commit at or below `ts` is in the column store.
    pub async fn wait_for(&self, ts: Ts) -> Result<()> {
        let mut rx = self.shared.watermark.subscribe();
        let shared = &self.shared;
        let check = |w: &Ts| *w >= ts || shared.failure.lock().is_some() || shared.stop.load(Ordering::Acquire);
        rx.wait_for(check).await.map_err(|_| Error::Stopped)?;
        if let Some(msg) = &*self.shared.failure.lock() {
            return Err(Error::SyncFailed(msg.clone()));
        }
        if *rx.borrow() < ts {
            return Err(Error::Stopped);
        }
        Ok(())
    }

    /// Stops the worker once it has applied the commits made before the
    /// call (not while paused: those are left to the next start, which
    /// replays them from the log), then writes a persistent column store a
    /// last time. Idempotent.
    pub fn stop(&self) {
        self.shared.stop_at.store(self.shared.rows.current_ts(), Ordering::Release);
        self.shared.stop.store(true, Ordering::Release);
        self.shared.watermark.send_modify(|_| {});
        for thread in [self.worker.lock().take(), self.persister.lock().take()].into_iter().flatten() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Holds sync paused while it lives (see [`Syncer::pause`]).
#[must_use = "sync resumes when the pause is dropped"]
pub struct SyncPause {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SyncPause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncPause").finish_non_exhaustive()
    }
}

impl Drop for SyncPause {
    fn drop(&mut self) {
        self.shared.paused.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Shared {
    pub(crate) fn wake(&self) {
        let _ = self.wake.try_send(());
    }
}

/// Closes the inbox's stream when the worker exits, however it does: the
/// store then stops sending (a commit blocked on the full channel goes on),
/// and readers waiting for the watermark are told sync has stopped.
struct CloseOnExit<'a>(&'a Shared);

impl Drop for CloseOnExit<'_> {
    fn drop(&mut self) {
        self.0.inbox.lock().close();
        self.0.stop.store(true, Ordering::Release);
        self.0.worker_exited.store(true, Ordering::Release);
        self.0.watermark.send_modify(|_| {});
    }
}

/// `records` is a clone of the inbox's channel, to wait on without the
/// inbox's lock; `woken` the worker's end of [`Shared::wake`].
fn run(shared: &Shared, records: &Receiver<Arc<ChangeRecord>>, woken: &Receiver<()>, max_batch: usize) {
    let _close = CloseOnExit(shared);
    let mut batch: Vec<Arc<ChangeRecord>> = Vec::with_capacity(max_batch);
    loop {
        // Stopping, it first applies the commits made before the stop (not
        // those after, which could keep it busy for ever): the last persist
        // then covers them.
        let stopping = shared.stop.load(Ordering::Acquire);
        if stopping && *shared.watermark.borrow() >= shared.stop_at.load(Ordering::Acquire) {
            break;
        }
        let (taken, closed) = {
            let mut inbox = shared.inbox.lock();
            // Under the lock: see `Syncer::pause`.
            if shared.paused.load(Ordering::Acquire) > 0 {
                drop(inbox);
                if stopping {
                    break;
                }
                std::thread::sleep(POLL);
                continue;
            }
            let (_, closed) = inbox.receive();
            batch.extend(inbox.front(max_batch).cloned());
            (batch.len(), closed)
        };
        if taken == 0 {
            if closed || stopping {
                break;
            }
            let mut select = Select::new();
            select.recv(records);
            select.recv(woken);
            let _ = select.ready_timeout(POLL);
            while woken.try_recv().is_ok() {}
            continue;
        }
        // Records the start read already (from the log or a snapshot).
        let w = *shared.watermark.borrow();
        batch.retain(|r| r.ts > w);
        if !batch.is_empty() {
            if let Err(e) = apply(shared, &batch) {
                *shared.failure.lock() = Some(e.to_string());
                shared.watermark.send_modify(|_| {});
                return;
            }
            let applied = std::time::Instant::now();
            shared.counters.applied(batch.iter().map(|r| applied.saturating_duration_since(r.published)));
        }
        let mut inbox = shared.inbox.lock();
        inbox.remove_front(taken);
        if let Some(last) = batch.last() {
            shared.watermark.send_replace(last.ts);
        }
        drop(inbox);
        batch.clear();
    }
}

/// Loads the row store's current state into the column store, emptied
/// first; returns the snapshot it was read at.
fn rebuild(rows: &Store, shared: &Shared) -> Result<Ts> {
    let cols = &shared.cols;
    // On disk too: no later open resumes from what it held.
    cols.clear()?;
    let txn = rows.begin()?;
    let loaded_at = txn.snapshot();
    let mut schemas = shared.schemas.write();
    schemas.clear();
    for (id, schema) in rows.tables() {
        let arrow = arrow_schema(&schema);
        let table = cols.create_table(id, Arc::clone(&arrow))?;
        let all = txn.scan(id, Bound::Unbounded, Bound::Unbounded)?;
        let refs: Vec<&[Value]> = all.iter().map(|(_, r)| r.as_slice()).collect();
        let batch = rows_to_batch(&schema, &arrow, &refs)?;
        // Versions loaded here begin at the load snapshot: no reader can
        // hold an older snapshot of a database that is only now opening.
        let ops = all.into_iter().enumerate().map(|(row, (key, _))| ColOp::Append { row, key, ts: loaded_at }).collect();
        table.apply(ChangeBatch { rows: batch, ops })?;
        schemas.insert(id, (schema, arrow));
    }
    Ok(loaded_at)
}

/// Replays the row store's log after the column store's durable
/// watermark into it; returns the last timestamp replayed, or `None` if
/// that cannot be done exactly (then the caller rebuilds).
fn resume(rows: &Store, shared: &Shared) -> Result<Option<Ts>> {
    let cols = &shared.cols;
    let w = cols.durable_watermark();
    if !cols.is_persistent() || w == 0 {
        return Ok(None);
    }
    // Every table the column store had at its watermark, read now (a
    // damaged file means a rebuild); schemas of the live ones.
    let live: HashMap<TableId, Arc<TableSchema>> = rows.tables().into_iter().collect();
    {
        let mut schemas = shared.schemas.write();
        for (id, arrow) in cols.tables() {
            if cols.table(id).is_err() {
                return Ok(None);
            }
            if let Some(schema) = live.get(&id) {
                if arrow_schema(schema) != arrow {
                    return Ok(None);
                }
                schemas.insert(id, (Arc::clone(schema), arrow));
            }
        }
    }
    let mut batch: Vec<Arc<ChangeRecord>> = Vec::new();
    let mut failed: Option<Error> = None;
    shared.replaying.store(true, Ordering::Release);
    let replayed = rows.replay_changes(w, |record| {
        batch.push(Arc::new(record));
        if batch.len() >= 1024
            && let Err(e) = apply(shared, &std::mem::take(&mut batch))
        {
            failed = Some(e);
            return false;
        }
        true
    });
    let applied = match (replayed, failed) {
        (_, Some(e)) => Err(e),
        (Ok(last), None) => apply(shared, &batch).map(|()| last),
        (Err(e), None) => Err(e.into()),
    };
    shared.replaying.store(false, Ordering::Release);
    let last = match applied {
        Ok(last) => last,
        Err(Error::Row(
            omen_rowstore::Error::LogTrimmed { .. }
            | omen_rowstore::Error::AheadOfStore { .. }
            | omen_rowstore::Error::NotReplayable { .. },
        )) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    // The tables now must be the row store's, with the same columns.
    let have: HashMap<TableId, SchemaRef> = cols.tables().into_iter().collect();
    let same = have.len() == live.len() && live.iter().all(|(id, schema)| have.get(id).is_some_and(|a| *a == arrow_schema(schema)));
    Ok(same.then_some(last))
}

/// See [`Syncer::compact`].
fn compact_tables(shared: &Shared, all: bool) -> Result<usize> {
    let mut horizon = shared.rows.oldest_snapshot().min(*shared.watermark.borrow());
    // Files given up after damage need no exact state at the watermark.
    if shared.cols.is_persistent() && shared.cols.damage().is_none() {
        horizon = horizon.min(shared.cols.durable_watermark());
    }
    let mut dropped = 0;
    for (id, _) in shared.cols.tables() {
        let Ok(table) = shared.cols.table(id) else { continue };
        let (versions, live) = table.versions_and_live();
        let dead = versions - live.min(versions);
        if all || (dead >= COMPACT_MIN_DEAD && 4 * dead >= versions) {
            dropped += table.compact(horizon)?.dropped;
        }
    }
    Ok(dropped)
}

/// Every `every` (and once more when sync stops): writes the column store
/// as of the watermark if it is persistent, letting the row store drop its
/// log up to what is written; then compacts tables with many dead
/// versions. Once sync has failed, or persists keep failing, it lets the
/// log go (the next open rebuilds the column store).
fn maintain_in_background(shared: &Shared, hold: Option<omen_rowstore::LogHold>, every: Duration) {
    let mut hold = hold;
    let mut written = shared.cols.durable_watermark();
    let mut failures = 0;
    loop {
        std::thread::park_timeout(every);
        // The last pass comes once the worker has exited (`stop` wakes this
        // thread after joining it), so it writes what the worker applied.
        let stopping = shared.worker_exited.load(Ordering::Acquire);
        if shared.failure.lock().is_some() {
            return;
        }
        // A damaged file found by a read: the files are given up (the next
        // open rebuilds from the row store) and so is the log kept for them.
        if let Some(damage) = shared.cols.damage()
            && hold.is_some()
        {
            let _ = shared.cols.discard_files();
            *shared.persist_error.lock() = Some(format!("column store damaged ({damage}); it is rebuilt at the next open"));
            hold = None;
        }
        let w = *shared.watermark.borrow();
        if let Some(h) = &hold
            && w > written
        {
            match shared.cols.persist(w) {
                Ok(_) => {
                    written = w;
                    failures = 0;
                    h.advance(w);
                    *shared.persist_error.lock() = None;
                }
                Err(e) => {
                    *shared.persist_error.lock() = Some(e.to_string());
                    failures += 1;
                    if failures >= PERSIST_ATTEMPTS {
                        hold = None;
                    }
                }
            }
        }
        if stopping {
            return;
        }
        // A failure here leaves the segments as they were; tried again later.
        let _ = compact_tables(shared, false);
    }
}

/// Per-table accumulation of one micro-batch.
#[derive(Default)]
struct TableBatch<'a> {
    rows: Vec<&'a [Value]>,
    ops: Vec<ColOp>,
}

fn apply(shared: &Shared, records: &[Arc<ChangeRecord>]) -> Result<()> {
    let mut pending: BTreeMap<TableId, TableBatch<'_>> = BTreeMap::new();
    for rec in records {
        match &rec.change {
            Change::Commit(changes) => {
                for c in changes {
                    let p = pending.entry(c.table).or_default();
                    if matches!(c.op, ChangeOp::Update | ChangeOp::Delete) {
                        p.ops.push(ColOp::End { key: c.key.clone(), ts: rec.ts });
                    }
                    if let Some(row) = &c.row {
                        p.ops.push(ColOp::Append { row: p.rows.len(), key: c.key.clone(), ts: rec.ts });
                        p.rows.push(row);
                    }
                }
            }
            Change::CreateTable { id, schema } => {
                flush(shared, &mut pending)?;
                let arrow = arrow_schema(schema);
                // Replaying, the column store may have the table from past its
                // watermark: it is made again, empty, as the log says.
                if shared.replaying.load(Ordering::Acquire) && shared.cols.table(*id).is_ok() {
                    shared.cols.drop_table(*id)?;
                }
                shared.cols.create_table(*id, Arc::clone(&arrow))?;
                shared.schemas.write().insert(*id, (Arc::clone(schema), arrow));
            }
            Change::DropTable { id } => {
                flush(shared, &mut pending)?;
                match shared.cols.drop_table(*id) {
                    Err(omen_colstore::Error::UnknownTable(_)) if shared.replaying.load(Ordering::Acquire) => {}
                    other => other?,
                }
                shared.schemas.write().remove(id);
            }
        }
    }
    flush(shared, &mut pending)
}

fn flush(shared: &Shared, pending: &mut BTreeMap<TableId, TableBatch<'_>>) -> Result<()> {
    for (id, p) in std::mem::take(pending) {
        let known = shared.schemas.read().get(&id).cloned();
        let (schema, arrow) = match known {
            Some(k) => k,
            // A table the replay drops later: no snapshot from now on sees it.
            None if shared.replaying.load(Ordering::Acquire) => continue,
            None => return Err(omen_colstore::Error::UnknownTable(id).into()),
        };
        let rows = rows_to_batch(&schema, &arrow, &p.rows)?;
        shared.cols.table(id)?.apply(ChangeBatch { rows, ops: p.ops })?;
    }
    Ok(())
}
