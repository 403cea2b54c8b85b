//! The sync worker: applies the row store's change stream to the column store
//! in commit order, in micro-batches, and advances the applied watermark.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use omen_colstore::{ChangeBatch, ChangeOp as ColOp, ColumnStore};
use omen_rowstore::{Change, ChangeOp, ChangeRecord, Store, Subscription, TableId, TableSchema, Ts, Value};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::convert::{arrow_schema, rows_to_batch};
use crate::error::{Error, Result};
use crate::metrics::{Counters, SyncMetrics};

/// Tuning for the sync worker.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Change records that may wait before commits block (back pressure).
    /// Default 4096.
    pub channel_capacity: usize,
    /// Most commit records applied as one micro-batch. Default 1024.
    pub max_batch_records: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self { channel_capacity: 4096, max_batch_records: 1024 }
    }
}

/// How often the worker checks its stop flag while the stream is idle.
const POLL: Duration = Duration::from_millis(20);

pub(crate) struct Shared {
    pub(crate) cols: Arc<ColumnStore>,
    /// W: every commit at or below it is applied to the column store.
    pub(crate) watermark: watch::Sender<Ts>,
    pub(crate) failure: Mutex<Option<String>>,
    pub(crate) schemas: RwLock<HashMap<TableId, (Arc<TableSchema>, SchemaRef)>>,
    stop: AtomicBool,
    counters: Counters,
}

/// Keeps the column store in step with the row store. See the crate docs.
pub struct Syncer {
    pub(crate) shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer").field("watermark", &self.watermark()).finish_non_exhaustive()
    }
}

impl Syncer {
    /// Loads the row store's current state into the (empty) column store and
    /// starts the worker that keeps it in step.
    pub fn start(rows: Store, cols: Arc<ColumnStore>, options: SyncOptions) -> Result<Self> {
        // Subscribe before reading the snapshot: a commit is then either in
        // the snapshot or in the stream after it (or both, and skipped).
        let sub = rows.subscribe(options.channel_capacity);
        let txn = rows.begin()?;
        let loaded_at = txn.snapshot();
        let mut schemas = HashMap::new();
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
        drop(txn);
        let shared = Arc::new(Shared {
            cols,
            watermark: watch::Sender::new(loaded_at),
            failure: Mutex::new(None),
            schemas: RwLock::new(schemas),
            stop: AtomicBool::new(false),
            counters: Counters::default(),
        });
        let worker = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("omen-sync".into())
                .spawn(move || run(&shared, &sub, loaded_at, options.max_batch_records))
                .map_err(|e| Error::SyncFailed(format!("cannot start the sync thread: {e}")))?
        };
        Ok(Self { shared, worker: Mutex::new(Some(worker)) })
    }

    /// The applied watermark W.
    pub fn watermark(&self) -> Ts {
        *self.shared.watermark.borrow()
    }

    /// The watermark, what has been applied, and the lag of each commit
    /// from its publication to its application.
    pub fn metrics(&self) -> SyncMetrics {
        self.shared.counters.snapshot(self.watermark())
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

    /// Stops the worker after it applies what it has received. Idempotent.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.watermark.send_modify(|_| {});
        if let Some(h) = self.worker.lock().take() {
            let _ = h.join();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(shared: &Shared, sub: &Subscription, loaded_at: Ts, max_batch: usize) {
    let mut batch: Vec<Arc<ChangeRecord>> = Vec::with_capacity(max_batch);
    while !shared.stop.load(Ordering::Acquire) {
        match sub.recv_timeout(POLL) {
            Ok(Some(first)) => batch.push(first),
            Ok(None) => continue,
            Err(_) => break, // the store closed
        }
        while batch.len() < max_batch {
            match sub.try_recv() {
                Some(r) => batch.push(r),
                None => break,
            }
        }
        batch.retain(|r| r.ts > loaded_at);
        let Some(last) = batch.last().map(|r| r.ts) else { continue };
        if let Err(e) = apply(shared, &batch) {
            *shared.failure.lock() = Some(e.to_string());
            shared.watermark.send_modify(|_| {});
            return;
        }
        let applied = std::time::Instant::now();
        shared.counters.applied(batch.iter().map(|r| applied.saturating_duration_since(r.published)));
        batch.clear();
        shared.watermark.send_replace(last);
    }
}

/// Per-table accumulation of one micro-batch.
#[derive(Default)]
struct Pending<'a> {
    rows: Vec<&'a [Value]>,
    ops: Vec<ColOp>,
}

fn apply(shared: &Shared, records: &[Arc<ChangeRecord>]) -> Result<()> {
    let mut pending: BTreeMap<TableId, Pending<'_>> = BTreeMap::new();
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
                shared.cols.create_table(*id, Arc::clone(&arrow))?;
                shared.schemas.write().insert(*id, (Arc::clone(schema), arrow));
            }
            Change::DropTable { id } => {
                flush(shared, &mut pending)?;
                shared.cols.drop_table(*id)?;
                shared.schemas.write().remove(id);
            }
        }
    }
    flush(shared, &mut pending)
}

fn flush(shared: &Shared, pending: &mut BTreeMap<TableId, Pending<'_>>) -> Result<()> {
    for (id, p) in std::mem::take(pending) {
        let (schema, arrow) = shared.schemas.read().get(&id).cloned().ok_or(omen_colstore::Error::UnknownTable(id))?;
        let rows = rows_to_batch(&schema, &arrow, &p.rows)?;
        shared.cols.table(id)?.apply(ChangeBatch { rows, ops: p.ops })?;
    }
    Ok(())
}
