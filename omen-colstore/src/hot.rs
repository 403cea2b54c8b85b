//! The hot tier: segments' decoded columns in memory, within a budget.
//!
//! A segment's columns live in [`Columns`], one slot per column. A column
//! whose segment has a file (the warm tier, `seg-*.parquet`) may be
//! dropped from its slot and read again when a scan next needs it; the
//! [`HotTier`] decides which, through an `omen_tier` [`Tier`] and its
//! policy (one cache object per segment and column, sized by its decoded
//! bytes). A segment not yet written to a file keeps every column: its
//! bytes are counted as unpersisted and eviction never touches them, so
//! no data that is not on disk leaves memory. The budget covers, besides
//! the evictable columns, the per-segment metadata (keys, timestamps) and
//! the unpersisted columns: the policy's capacity is what those leave.
//!
//! Arrays a running scan holds stay alive after eviction until the scan
//! lets go (they are the query's memory, one segment per partition); the
//! tier only stops keeping them.
//!
//! Read-ahead: a scan hands the loads of its next segments to the tier's
//! background readers ([`HotTier::read_ahead`], one thread a core per
//! store), so files are decoded while the scan's consumer works on the
//! segment before. A reader hands what it decoded to the scan, not to the
//! tier: columns read ahead are admitted when the scan uses them, so a
//! policy cannot evict them before they are used. A load that could not
//! be queued is done by the scan itself.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use arrow::array::{Array, ArrayRef};
use omen_tier::trace::TraceWriter;
use omen_tier::{Access, AccessKind, ObjectId, PolicyKind, Tier};
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;

/// Bits of an object id that hold the column: a table has at most
/// 2^16 columns in the hot tier's ids.
const COLUMN_BITS: u32 = 16;

/// The smallest column budget accepted: about one segment of a table of
/// sixteen 8-byte columns (64Ki rows).
pub const MIN_COLUMN_BUDGET: u64 = 8 << 20;

/// Columns a table may have: each column of each segment is one cache
/// object, its column in the id's low bits.
pub(crate) const MAX_COLUMNS: usize = 1 << COLUMN_BITS;

fn object(uid: u64, column: usize) -> ObjectId {
    (uid << COLUMN_BITS) | (column as u64 & ((1 << COLUMN_BITS) - 1))
}

/// A segment's decoded columns, each present or not.
#[derive(Debug)]
pub(crate) struct Columns {
    uid: u64,
    slots: Box<[RwLock<Option<ArrayRef>>]>,
    /// Each column's decoded bytes (an estimate until first decoded).
    bytes: Box<[AtomicUsize]>,
    /// Whether the segment has a file: only then may columns leave.
    evictable: AtomicBool,
    hot: Arc<HotTier>,
}

impl Columns {
    /// Slots for a segment's columns: `arrays` if given (a segment built in
    /// memory, not evictable until [`Columns::persisted`]), else empty
    /// ones of the `estimates` sizes (a segment whose columns are in its file).
    pub(crate) fn new(hot: &Arc<HotTier>, arrays: Option<&[ArrayRef]>, estimates: Vec<usize>) -> Arc<Self> {
        let uid = hot.next_uid.fetch_add(1, Ordering::Relaxed);
        let (slots, bytes): (Vec<_>, Vec<_>) = match arrays {
            Some(arrays) => arrays.iter().map(|a| (RwLock::new(Some(Arc::clone(a))), AtomicUsize::new(array_bytes(a.as_ref())))).unzip(),
            None => estimates.into_iter().map(|b| (RwLock::new(None), AtomicUsize::new(b))).unzip(),
        };
        let columns = Arc::new(Self {
            uid,
            slots: slots.into(),
            bytes: bytes.into(),
            evictable: AtomicBool::new(arrays.is_none()),
            hot: Arc::clone(hot),
        });
        if arrays.is_some() {
            hot.unpersisted.fetch_add(columns.present_bytes() as u64, Ordering::Relaxed);
        }
        columns
    }

    /// The tier the columns are kept by.
    pub(crate) fn hot(&self) -> &Arc<HotTier> {
        &self.hot
    }

    pub(crate) fn get(&self, c: usize) -> Option<ArrayRef> {
        self.slots[c].read().clone()
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Column `c`'s decoded bytes (an estimate until first decoded).
    pub(crate) fn bytes(&self, c: usize) -> usize {
        self.bytes[c].load(Ordering::Relaxed)
    }

    /// Bytes of the columns present.
    pub(crate) fn present_bytes(&self) -> usize {
        (0..self.len()).filter(|&c| self.slots[c].read().is_some()).map(|c| self.bytes(c)).sum()
    }

    pub(crate) fn all_present(&self) -> bool {
        self.slots.iter().all(|s| s.read().is_some())
    }

    pub(crate) fn any_present(&self) -> bool {
        self.slots.iter().any(|s| s.read().is_some())
    }

    /// Fills column `c` with `array`, decoded from the file.
    pub(crate) fn fill(&self, c: usize, array: ArrayRef) {
        self.bytes[c].store(array_bytes(array.as_ref()), Ordering::Relaxed);
        *self.slots[c].write() = Some(array);
    }

    /// The segment now has a file: its columns become the tier's to keep
    /// or drop.
    pub(crate) fn persisted(self: &Arc<Self>) {
        if self.evictable.swap(true, Ordering::AcqRel) {
            return;
        }
        self.hot.unpersisted.fetch_sub(self.present_bytes() as u64, Ordering::Relaxed);
        let mut present: Vec<usize> = (0..self.len()).filter(|&c| self.slots[c].read().is_some()).collect();
        if self.hot.budget.is_some() {
            // A column cut out of a larger batch (a rebuild, a compaction, a
            // bulk apply) shares that batch's buffers with its neighbours:
            // evicting it would free nothing while any of them stays. Under
            // a budget such columns leave now (the file has them) rather
            // than be counted as if evicting them freed their bytes.
            present.retain(|&c| {
                let shared =
                    self.slots[c].read().as_ref().is_some_and(|a| a.get_buffer_memory_size() > 2 * array_bytes(a.as_ref()).max(4096));
                if shared {
                    self.slots[c].write().take();
                }
                !shared
            });
        }
        self.hot.admit(self, &present, Use { kind: AccessKind::Prefetch, statement: 0, position: None });
    }
}

impl Drop for Columns {
    fn drop(&mut self) {
        if self.evictable.load(Ordering::Acquire) {
            let mut inner = self.hot.inner.lock();
            inner.owners.remove(&self.uid);
            inner.warmers.remove(&self.uid);
            for c in 0..self.slots.len() {
                inner.tier.remove(object(self.uid, c));
            }
        } else {
            self.hot.unpersisted.fetch_sub(self.present_bytes() as u64, Ordering::Relaxed);
        }
    }
}

/// Bytes of `a`'s own part of its buffers (a slice counts only its rows).
pub(crate) fn array_bytes(a: &dyn Array) -> usize {
    a.to_data().get_slice_memory_size().unwrap_or(0)
}

/// Why columns are read: the access the tier is told of.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Use {
    pub(crate) kind: AccessKind,
    pub(crate) statement: u64,
    /// This segment's place among the scan's, and their count.
    pub(crate) position: Option<(u32, u32)>,
}

/// What the hot tier has done (see [`crate::ColumnStore::hot_metrics`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HotMetrics {
    /// The column budget; `None`: no budget (everything read stays).
    pub budget: Option<u64>,
    /// The policy deciding what stays.
    pub policy: String,
    /// Decoded bytes of columns that may leave (their segments have files).
    pub hot_bytes: u64,
    /// Decoded bytes of columns not yet in a file (they stay).
    pub unpersisted_bytes: u64,
    /// Keys, timestamps and zone maps of every segment loaded.
    pub metadata_bytes: u64,
    /// Bytes of segment files on disk (the warm tier), compressed.
    pub warm_bytes: u64,
    /// Column reads served from memory.
    pub hits: u64,
    /// Column reads that decoded the file.
    pub misses: u64,
    /// Decoded bytes read from files.
    pub bytes_read: u64,
    /// Columns dropped to fit the budget.
    pub evictions: u64,
    /// Columns read ahead of a scan by the background reader.
    pub prefetches: u64,
}

impl HotMetrics {
    /// Whether what always stays in memory (segment metadata and columns
    /// not yet in a file) is more than the budget: then no column read
    /// stays, and memory is over the budget by the difference.
    pub fn over_budget(&self) -> bool {
        self.budget.is_some_and(|b| self.metadata_bytes + self.unpersisted_bytes > b)
    }

    /// Hits over column reads (1 when there was none).
    pub fn hit_ratio(&self) -> f64 {
        let all = self.hits + self.misses;
        if all == 0 { 1.0 } else { self.hits as f64 / all as f64 }
    }
}

/// A load for the background reader.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// What can load its columns ahead of demand: a segment (the tier knows
/// segments only through this, so it sits below them).
pub(crate) trait Warm: Send + Sync {
    /// Loads `columns` into memory as a prefetch.
    fn warm(&self, columns: &[usize]);
}

/// Columns warmed at most after each scan, on the policy's prediction.
const WARMED_PER_SCAN: usize = 16;

/// Loads queued for the background reader at most; a scan whose load does
/// not fit reads the segment itself.
const QUEUED_LOADS: usize = 8;

struct Inner {
    tier: Tier,
    /// The columns each evictable segment's objects are in.
    owners: FxHashMap<u64, Weak<Columns>>,
    /// Segments scans have read, to warm on the policy's prediction.
    warmers: FxHashMap<u64, Weak<dyn Warm>>,
    trace: Option<TraceWriter<std::fs::File>>,
}

/// The hot tier of one column store (see the module docs).
pub(crate) struct HotTier {
    budget: Option<u64>,
    inner: Mutex<Inner>,
    next_uid: AtomicU64,
    unpersisted: AtomicU64,
    /// Keys, timestamps and zone maps of live segments.
    pub(crate) metadata: AtomicU64,
    started: Instant,
    misses: AtomicU64,
    hits: AtomicU64,
    bytes_read: AtomicU64,
    evictions: AtomicU64,
    prefetches: AtomicU64,
    /// Segments a scan loads ahead of the one it reads (0: none).
    depth: usize,
    /// Whether the policy's predictions are loaded after each scan.
    warming: bool,
    /// Whether the budget was found below what always stays (said once).
    warned: AtomicBool,
    /// The background reader's queue, made on first use.
    reader: Mutex<Option<crossbeam_channel::Sender<Job>>>,
}

impl std::fmt::Debug for HotTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotTier").field("budget", &self.budget).finish_non_exhaustive()
    }
}

impl HotTier {
    /// A hot tier keeping at most `budget` bytes (none: no limit) by `policy`,
    /// recording every access to `trace` if given.
    pub(crate) fn new(
        budget: Option<u64>,
        policy: PolicyKind,
        trace: Option<&Path>,
        depth: usize,
        warming: bool,
    ) -> std::io::Result<Arc<Self>> {
        let capacity = budget.unwrap_or(u64::MAX);
        // Without a budget nothing is ever evicted and the policy is never
        // asked for a victim: LRU keeps the bookkeeping cheapest.
        let policy = if budget.is_some() { policy } else { PolicyKind::Lru };
        let trace = trace.map(TraceWriter::create).transpose()?;
        Ok(Arc::new(Self {
            budget,
            inner: Mutex::new(Inner {
                tier: Tier::new(policy.build(capacity), capacity),
                owners: FxHashMap::default(),
                warmers: FxHashMap::default(),
                trace,
            }),
            next_uid: AtomicU64::new(1),
            unpersisted: AtomicU64::new(0),
            metadata: AtomicU64::new(0),
            started: Instant::now(),
            misses: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            prefetches: AtomicU64::new(0),
            depth,
            warming,
            warned: AtomicBool::new(false),
            reader: Mutex::new(None),
        }))
    }

    /// A scan read `segment` (whose columns are `columns`): the tier may
    /// warm it later on a prediction.
    pub(crate) fn seen(&self, columns: &Columns, segment: Weak<dyn Warm>) {
        if self.warming && columns.evictable.load(Ordering::Acquire) {
            self.inner.lock().warmers.insert(columns.uid, segment);
        }
    }

    /// After a scan: loads, through the readers, the columns the policy
    /// predicts the next statements will read and that are not in memory
    /// (the promised predictive cache; off unless
    /// [`crate::ColumnStoreOptions::predictive_warming`]).
    pub(crate) fn warm_predicted(self: &Arc<Self>) {
        if !self.warming || self.budget.is_none() {
            return;
        }
        let now = self.started.elapsed().as_micros() as u64;
        let mut by_segment: FxHashMap<u64, Vec<usize>> = FxHashMap::default();
        let warmers: Vec<(Arc<dyn Warm>, Vec<usize>)> = {
            let mut inner = self.inner.lock();
            for id in inner.tier.prefetch(now, WARMED_PER_SCAN) {
                by_segment.entry(id >> COLUMN_BITS).or_default().push((id & ((1 << COLUMN_BITS) - 1)) as usize);
            }
            inner.warmers.retain(|_, w| w.strong_count() > 0);
            by_segment.into_iter().filter_map(|(uid, cs)| Some((inner.warmers.get(&uid)?.upgrade()?, cs))).collect()
        };
        for (segment, columns) in warmers {
            // A full queue means the readers are busy with scans' own loads,
            // which come first.
            if !self.read_ahead(Box::new(move || segment.warm(&columns))) {
                break;
            }
        }
    }

    /// Columns a scan took from the reader's loads.
    pub(crate) fn count_prefetched(&self, columns: usize) {
        self.prefetches.fetch_add(columns as u64, Ordering::Relaxed);
    }

    /// Segments a scan should load ahead of the one it reads.
    pub(crate) fn depth(&self) -> usize {
        self.depth
    }

    /// Queues `job` for the background readers (one a core, so decoding
    /// runs in parallel with the scan and with each other); false if the
    /// queue is full (or no reader can start), and the caller does without.
    pub(crate) fn read_ahead(&self, job: Job) -> bool {
        let mut reader = self.reader.lock();
        if reader.is_none() {
            let (tx, rx) = crossbeam_channel::bounded::<Job>(QUEUED_LOADS);
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            let mut started = 0;
            for _ in 0..cores {
                let rx = rx.clone();
                // A reader ends once the tier (the queue's only sender) is gone.
                let spawned = std::thread::Builder::new().name("omen-colstore-read-ahead".into()).spawn(move || {
                    for job in rx {
                        // A load that panics must not take the reader with it:
                        // scans wait on the loads queued behind it.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                });
                started += usize::from(spawned.is_ok());
            }
            if started == 0 {
                return false;
            }
            *reader = Some(tx);
        }
        reader.as_ref().is_some_and(|tx| tx.try_send(job).is_ok())
    }

    /// A tier without a budget (tables made outside a store, in tests).
    pub(crate) fn unbounded() -> Arc<Self> {
        Self::new(None, PolicyKind::Lru, None, 0, false).expect("no trace file to create")
    }

    /// Tells the tier `projection` of `columns` was read for `why`, the
    /// columns in `loaded` from the file (`bytes_read` of them), and keeps
    /// or drops them as its policy says.
    pub(crate) fn touch(&self, columns: &Arc<Columns>, projection: &[usize], loaded: &[usize], bytes_read: usize, why: Use) {
        self.bytes_read.fetch_add(bytes_read as u64, Ordering::Relaxed);
        if why.kind == AccessKind::Prefetch {
            // Not a demand access: the policy is told only of what it now
            // holds, and the scan's own read counts the hit or miss.
            self.prefetches.fetch_add(loaded.len() as u64, Ordering::Relaxed);
            if columns.evictable.load(Ordering::Acquire) {
                self.admit(columns, loaded, why);
            }
            return;
        }
        self.misses.fetch_add(loaded.len() as u64, Ordering::Relaxed);
        self.hits.fetch_add((projection.len() - loaded.len()) as u64, Ordering::Relaxed);
        if !columns.evictable.load(Ordering::Acquire) {
            return;
        }
        let now = self.started.elapsed().as_micros() as u64;
        let mut inner = self.inner.lock();
        for &c in projection {
            let access = self.access(columns, c, why, now);
            inner.tier.access(&access);
            if let Some(trace) = &mut inner.trace {
                // A trace that cannot be written stops recording, not reads.
                if trace.write(&access).is_err() {
                    inner.trace = None;
                }
            }
        }
        drop(inner);
        self.admit(columns, loaded, why);
    }

    fn access(&self, columns: &Columns, c: usize, why: Use, now: u64) -> Access {
        Access {
            id: object(columns.uid, c),
            bytes: columns.bytes(c) as u64,
            kind: why.kind,
            statement: why.statement,
            time_us: now,
            scan_position: why.position,
        }
    }

    /// Makes columns `cs` of `columns` resident, dropping what the policy
    /// evicts to make room (and any of `cs` it refuses).
    fn admit(&self, columns: &Arc<Columns>, cs: &[usize], why: Use) {
        if cs.is_empty() {
            return;
        }
        let now = self.started.elapsed().as_micros() as u64;
        let not_pinned = |_| false;
        let mut inner = self.inner.lock();
        // Read under the lock, so a later admit never sets an older capacity.
        let fixed = self.unpersisted.load(Ordering::Relaxed) + self.metadata.load(Ordering::Relaxed);
        let capacity = self.budget.map_or(u64::MAX, |b| b.saturating_sub(fixed));
        if let Some(budget) = self.budget
            && fixed > budget
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            // Said once: reads go on, each column dropped after its scan.
            log::warn!(
                "column memory budget of {budget} bytes is below what always stays in memory ({fixed} bytes of segment keys, \
                 timestamps and unwritten columns): no column read stays"
            );
        }
        inner.owners.insert(columns.uid, Arc::downgrade(columns));
        let mut dropped = Vec::new();
        if inner.tier.capacity() != capacity {
            dropped.extend(inner.tier.set_capacity(capacity, &not_pinned));
        }
        for &c in cs {
            let access = self.access(columns, c, why, now);
            dropped.extend(inner.tier.admit(&access, &not_pinned));
        }
        // Empty the slots outside the lock: the last owner of a segment
        // dropped here would take it again in `Columns::drop`.
        let victims: Vec<(Arc<Columns>, usize)> = dropped
            .into_iter()
            .filter_map(|id| Some((inner.owners.get(&(id >> COLUMN_BITS))?.upgrade()?, (id & ((1 << COLUMN_BITS) - 1)) as usize)))
            .collect();
        drop(inner);
        self.evictions.fetch_add(victims.len() as u64, Ordering::Relaxed);
        let mut freed = Vec::with_capacity(victims.len());
        for (owner, c) in &victims {
            freed.push(owner.slots[*c].write().take());
        }
        drop(freed);
        drop(victims);
    }

    pub(crate) fn metrics(&self) -> HotMetrics {
        let inner = self.inner.lock();
        HotMetrics {
            budget: self.budget,
            policy: inner.tier.policy_name().to_owned(),
            hot_bytes: inner.tier.used(),
            unpersisted_bytes: self.unpersisted.load(Ordering::Relaxed),
            metadata_bytes: self.metadata.load(Ordering::Relaxed),
            warm_bytes: 0,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            prefetches: self.prefetches.load(Ordering::Relaxed),
        }
    }

    /// Writes out the access trace's buffer.
    pub(crate) fn flush_trace(&self) -> std::io::Result<()> {
        self.inner.lock().trace.as_mut().map_or(Ok(()), TraceWriter::flush)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use arrow::array::{AsArray, Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use crate::{ChangeBatch, ChangeOp, ColumnStore, ColumnStoreOptions, Error, MIN_COLUMN_BUDGET, SEGMENT_ROWS};

    const COLUMNS: usize = 8;

    /// A store under `budget` holding table 1 of `segments` full segments of
    /// eight Int64 columns (column c of key k holds k * 8 + c), persisted.
    fn filled(dir: &std::path::Path, budget: Option<u64>, segments: usize, predictive_warming: bool) -> ColumnStore {
        let options = ColumnStoreOptions { dir: Some(dir.into()), memory_budget: budget, predictive_warming, ..Default::default() };
        let store = ColumnStore::open(options).unwrap();
        let fields: Vec<Field> = (0..COLUMNS).map(|c| Field::new(format!("c{c}"), DataType::Int64, false)).collect();
        let schema = std::sync::Arc::new(Schema::new(fields));
        let table = store.create_table(1, std::sync::Arc::clone(&schema)).unwrap();
        for s in 0..segments as i64 {
            let keys = s * SEGMENT_ROWS as i64..(s + 1) * SEGMENT_ROWS as i64;
            let columns = (0..COLUMNS as i64)
                .map(|c| std::sync::Arc::new(Int64Array::from_iter_values(keys.clone().map(|k| k * 8 + c))) as arrow::array::ArrayRef)
                .collect();
            let rows = RecordBatch::try_new(std::sync::Arc::clone(&schema), columns).unwrap();
            let ops = keys.clone().enumerate().map(|(row, k)| ChangeOp::Append { row, key: k.to_be_bytes().to_vec(), ts: 1 }).collect();
            table.apply(ChangeBatch { rows, ops }).unwrap();
        }
        store.persist(1).unwrap();
        store
    }

    /// The sum of column `c` over the table at ts 1.
    fn sum(store: &ColumnStore, c: usize) -> crate::Result<i64> {
        let scan = store.table(1)?.scan_iter(1, Some(&[c]), &[], std::sync::Arc::new(HashSet::new()), false)?;
        let mut total = 0;
        for batch in scan {
            total += batch?.column(0).as_primitive::<Int64Type>().values().iter().sum::<i64>();
        }
        Ok(total)
    }

    fn expected(segments: usize, c: usize) -> i64 {
        (0..(segments * SEGMENT_ROWS) as i64).map(|k| k * 8 + c as i64).sum()
    }

    #[test]
    fn scans_past_the_budget_evict_and_read_back_the_same_rows() {
        for warming in [false, true] {
            scans_past_the_budget(warming);
        }
    }

    fn scans_past_the_budget(predictive_warming: bool) {
        let dir = tempfile::tempdir().unwrap();
        let budget = 16 << 20;
        // 5 x 64Ki rows x 8 columns x 8 bytes: 20 MiB of columns, and about
        // 9 MiB of keys and timestamps.
        let store = filled(dir.path(), Some(budget), 5, predictive_warming);
        for round in 0..3 {
            for c in 0..COLUMNS {
                assert_eq!(sum(&store, c).unwrap(), expected(5, c), "round {round}, column {c}");
                let m = store.hot_metrics();
                assert!(m.hot_bytes + m.metadata_bytes + m.unpersisted_bytes <= budget, "{m:?}");
            }
        }
        let m = store.hot_metrics();
        assert_eq!(m.unpersisted_bytes, 0, "everything is in a file");
        assert!(m.evictions > 0 && m.misses > 0 && m.bytes_read > 0, "{m:?}");
        // Reads are served the same while the readers warm columns.
        if predictive_warming {
            return;
        }

        // Reopened, the same under the budget.
        drop(store);
        let store =
            ColumnStore::open(ColumnStoreOptions { dir: Some(dir.path().into()), memory_budget: Some(budget), ..Default::default() })
                .unwrap();
        for c in 0..COLUMNS {
            assert_eq!(sum(&store, c).unwrap(), expected(5, c));
        }
        let m = store.hot_metrics();
        assert!(m.hot_bytes + m.metadata_bytes <= budget, "{m:?}");
        assert!(m.evictions > 0, "{m:?}");
    }

    #[test]
    fn without_a_budget_every_column_read_stays() {
        let dir = tempfile::tempdir().unwrap();
        let store = filled(dir.path(), None, 2, false);
        for c in 0..COLUMNS {
            assert_eq!(sum(&store, c).unwrap(), expected(2, c));
        }
        let m = store.hot_metrics();
        assert_eq!(m.evictions, 0);
        assert_eq!(m.hot_bytes, (2 * SEGMENT_ROWS * COLUMNS * 8) as u64, "{m:?}");
        assert_eq!(m.hit_ratio(), 1.0, "persisted segments keep the columns they were built with");
    }

    #[test]
    fn a_damaged_file_read_back_after_eviction_fails_the_scan_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = filled(dir.path(), Some(MIN_COLUMN_BUDGET), 2, false);
        // The metadata alone (2 x 64Ki keys and timestamps) leaves little of
        // the least budget: scanning evicts.
        for c in 0..COLUMNS {
            assert_eq!(sum(&store, c).unwrap(), expected(2, c));
        }
        assert!(store.hot_metrics().evictions > 0);
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "parquet") {
                std::fs::write(&path, b"not parquet").unwrap();
            }
        }
        let failed = (0..COLUMNS).map(|c| sum(&store, c)).find(|r| r.is_err());
        match failed {
            Some(Err(Error::Corruption { file, .. })) => assert!(file.extension().is_some_and(|e| e == "parquet"), "{file:?}"),
            other => panic!("expected a corruption error, got {other:?}"),
        }
        assert!(store.damage().is_some());
    }

    #[test]
    fn the_reader_loads_the_next_segments_while_the_scan_reads_one() {
        let dir = tempfile::tempdir().unwrap();
        drop(filled(dir.path(), None, 4, false));
        for (read_ahead, from_reader) in [(0, 0), (2, 6)] {
            let options = ColumnStoreOptions { dir: Some(dir.path().into()), read_ahead, ..Default::default() };
            let store = ColumnStore::open(options).unwrap();
            let scan = store.table(1).unwrap().scan_iter(1, Some(&[3, 5]), &[], std::sync::Arc::new(HashSet::new()), false).unwrap();
            let mut total = 0i64;
            for batch in scan {
                total += batch.unwrap().columns().iter().map(|c| c.as_primitive::<Int64Type>().values().iter().sum::<i64>()).sum::<i64>();
            }
            assert_eq!(total, expected(4, 3) + expected(4, 5));
            // The scan reads segment 0 itself and queues the next two; each
            // segment it takes queues one more: 1, 2 and 3 come from the
            // reader, two columns each. All eight columns came from files.
            let m = store.hot_metrics();
            assert_eq!((m.prefetches, m.misses, m.hits), (from_reader, 8, 0), "read-ahead {read_ahead}: {m:?}");
        }
    }

    #[test]
    fn a_budget_below_the_metadata_keeps_no_column_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        // 7 x 64Ki keys (12 bytes with their offsets) and ends (8 bytes):
        // about 9 MiB, past the least budget.
        let store = filled(dir.path(), Some(MIN_COLUMN_BUDGET), 7, false);
        assert_eq!(sum(&store, 1).unwrap(), expected(7, 1));
        let m = store.hot_metrics();
        assert!(m.over_budget() && m.hot_bytes == 0, "{m:?}");
        let other = tempfile::tempdir().unwrap();
        let roomy = filled(other.path(), Some(64 << 20), 1, false);
        assert!(!roomy.hot_metrics().over_budget());
    }

    #[test]
    fn columns_cut_from_one_large_batch_leave_memory_once_persisted_under_a_budget() {
        let dir = tempfile::tempdir().unwrap();
        let options = ColumnStoreOptions { dir: Some(dir.path().into()), memory_budget: Some(64 << 20), ..Default::default() };
        let store = ColumnStore::open(options).unwrap();
        let schema = std::sync::Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let table = store.create_table(1, std::sync::Arc::clone(&schema)).unwrap();
        // One batch of three segments' rows: the segments are slices of its
        // buffers, so evicting one would free nothing.
        let n = 3 * SEGMENT_ROWS as i64;
        let rows = RecordBatch::try_new(schema, vec![std::sync::Arc::new(Int64Array::from_iter_values(0..n))]).unwrap();
        let ops = (0..n).map(|k| ChangeOp::Append { row: k as usize, key: k.to_be_bytes().to_vec(), ts: 1 }).collect();
        table.apply(ChangeBatch { rows, ops }).unwrap();
        assert!(store.hot_metrics().unpersisted_bytes >= 8 * n as u64);
        store.persist(1).unwrap();
        let m = store.hot_metrics();
        assert_eq!((m.unpersisted_bytes, m.hot_bytes), (0, 0), "{m:?}");
        // Read back from the files, and kept: a column read alone owns its buffers.
        assert_eq!(sum(&store, 0).unwrap(), (0..n).sum::<i64>());
        assert_eq!(store.hot_metrics().hot_bytes, 8 * n as u64);
    }

    #[test]
    fn budgets_below_the_least_or_without_a_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let small = ColumnStoreOptions { dir: Some(dir.path().into()), memory_budget: Some(MIN_COLUMN_BUDGET - 1), ..Default::default() };
        assert!(matches!(ColumnStore::open(small), Err(Error::Options(_))));
        let in_memory = ColumnStoreOptions { memory_budget: Some(MIN_COLUMN_BUDGET), ..Default::default() };
        assert!(matches!(ColumnStore::open(in_memory), Err(Error::Options(_))));
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "a refused open writes nothing");
    }
}
