//! A segment: immutable Arrow columns plus per-row keys and MVCC timestamps.
//!
//! `begin` is fixed when the row is appended; `end` starts [`OPEN`] and is set
//! once, atomically, when a later commit supersedes or deletes the row.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, BinaryArray, BooleanArray, RecordBatchOptions};
use arrow::buffer::BooleanBuffer;
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parking_lot::Mutex;

use crate::error::Result;
use crate::files::SegmentFile;
use crate::hot::{Columns, HotTier, Use, Warm, array_bytes};
use crate::key_column::with_key_column;
use crate::zone::{Predicate, Zone};

/// End timestamp of a row no commit has superseded.
pub const OPEN: u64 = u64::MAX;

#[derive(Debug)]
pub(crate) struct Segment {
    /// The table's schema.
    schema: SchemaRef,
    /// The decoded columns, each present or left in the file (the hot
    /// tier decides; see [`crate::hot`]).
    columns: Arc<Columns>,
    /// The file the columns are read from: set when the segment is opened
    /// from it or once a persist wrote it.
    file: OnceLock<Arc<SegmentFile>>,
    /// Held while columns are read from the file, so two scans (or a
    /// scan and the read-ahead) decode a column once.
    loading: Mutex<()>,
    len: usize,
    /// The encoded primary key of each row.
    pub(crate) keys: BinaryArray,
    /// Each row's begin timestamp; empty when all rows share one (a bulk
    /// load's segment), `min_begin`: 8 bytes a row saved.
    begin: Vec<u64>,
    pub(crate) end: Box<[AtomicU64]>,
    /// Each column's zone map.
    pub(crate) zones: Vec<Zone>,
    /// The least `begin`: snapshots before it see nothing here.
    min_begin: u64,
    /// The greatest `begin`: snapshots from it on need not read `begin`.
    max_begin: u64,
    /// Rows whose `end` is set: while none is, a snapshot that all rows
    /// began before sees every row without reading `end`.
    ended: AtomicUsize,
    /// What the segment holds besides its columns, as counted in the hot
    /// tier's metadata bytes.
    metadata_bytes: u64,
}

/// The rest of a segment, whichever way its columns come.
pub(crate) struct Parts {
    pub(crate) keys: BinaryArray,
    pub(crate) begin: Vec<u64>,
    pub(crate) end: Box<[AtomicU64]>,
}

impl Segment {
    /// A segment of `rows`, their keys and timestamps; computes the zone
    /// maps. Its columns stay in memory until a persist writes its file.
    pub(crate) fn new(hot: &Arc<HotTier>, rows: RecordBatch, keys: BinaryArray, begin: Vec<u64>, end: Box<[AtomicU64]>) -> Self {
        let zones = rows.columns().iter().map(|c| Zone::of(c.as_ref())).collect();
        let columns = Columns::new(hot, Some(rows.columns()), Vec::new());
        Self::with(rows.schema(), columns, OnceLock::new(), Parts { keys, begin, end }, zones)
    }

    /// A segment whose columns stay in `file` until a scan reads them; the
    /// zone maps come from the file's statistics, `column_bytes` are the
    /// columns' estimated decoded sizes.
    pub(crate) fn on_disk(hot: &Arc<HotTier>, file: Arc<SegmentFile>, parts: Parts, zones: Vec<Zone>, column_bytes: Vec<usize>) -> Self {
        let columns = Columns::new(hot, None, column_bytes);
        Self::with(Arc::clone(&file.schema), columns, OnceLock::from(file), parts, zones)
    }

    fn with(schema: SchemaRef, columns: Arc<Columns>, file: OnceLock<Arc<SegmentFile>>, parts: Parts, zones: Vec<Zone>) -> Self {
        let Parts { keys, mut begin, end } = parts;
        let min_begin = begin.iter().copied().min().unwrap_or(u64::MAX);
        let max_begin = begin.iter().copied().max().unwrap_or(0);
        let ended = AtomicUsize::new(end.iter().filter(|e| e.load(Ordering::Relaxed) != OPEN).count());
        let len = begin.len();
        if min_begin == max_begin {
            begin = Vec::new();
        }
        let zone_bytes: usize = zones.iter().map(Zone::bytes).sum();
        let metadata_bytes = (array_bytes(&keys) + 8 * (begin.len() + len) + zone_bytes) as u64;
        columns.hot().metadata.fetch_add(metadata_bytes, Ordering::Relaxed);
        Self { schema, columns, file, loading: Mutex::new(()), len, keys, begin, end, zones, min_begin, max_begin, ended, metadata_bytes }
    }

    /// The columns `projection` as a batch, read from the file where not in
    /// memory. With `why`, the hot tier is told of the read (and keeps
    /// what it reads as its policy says); without, the read is the store's
    /// own (a persist or a merge) and columns read for it are not kept.
    pub(crate) fn batch(&self, projection: &[usize], why: Option<Use>) -> Result<RecordBatch> {
        self.batch_from(projection, why, None)
    }

    /// [`Segment::batch`], taking the columns not in memory from
    /// `preloaded` (this segment's `projection`, read ahead by the hot
    /// tier's reader) instead of the file.
    pub(crate) fn batch_from(&self, projection: &[usize], why: Option<Use>, preloaded: Option<RecordBatch>) -> Result<RecordBatch> {
        let mut arrays: Vec<Option<ArrayRef>> = projection.iter().map(|&c| self.columns.get(c)).collect();
        let mut loaded = Vec::new();
        let mut bytes_read = 0;
        if arrays.iter().any(Option::is_none) {
            let _one_reader = self.loading.lock();
            // Another reader may have filled some while this one waited.
            let mut missing = Vec::new();
            for (&c, a) in projection.iter().zip(&mut arrays).filter(|(_, a)| a.is_none()) {
                *a = self.columns.get(c);
                if a.is_none() {
                    missing.push(c);
                }
            }
            // Ascending and once each, as the file returns them.
            missing.sort_unstable();
            missing.dedup();
            if !missing.is_empty() {
                let read = match &preloaded {
                    Some(pre) => {
                        self.columns.hot().count_prefetched(missing.len());
                        let at = |c: &usize| projection.iter().position(|p| p == c).unwrap_or(0);
                        missing.iter().map(|c| Arc::clone(pre.column(at(c)))).collect()
                    }
                    None => {
                        let file = self.file.get().ok_or_else(|| crate::Error::Schema("a segment without a file lost a column".into()))?;
                        file.read_columns(self.len, &missing)?
                    }
                };
                for (&c, array) in missing.iter().zip(read) {
                    bytes_read += array_bytes(array.as_ref());
                    if why.is_some() {
                        self.columns.fill(c, Arc::clone(&array));
                    }
                    for (slot, _) in arrays.iter_mut().zip(projection).filter(|(_, p)| **p == c) {
                        *slot = Some(Arc::clone(&array));
                    }
                }
                loaded = missing;
            }
        }
        if let Some(why) = why {
            self.columns.hot().touch(&self.columns, projection, &loaded, bytes_read, why);
        }
        let arrays: Vec<ArrayRef> = arrays.into_iter().map(|a| a.expect("every projected column read")).collect();
        let schema = Arc::new(self.schema.project(projection)?);
        let options = RecordBatchOptions::new().with_row_count(Some(self.len));
        Ok(RecordBatch::try_new_with_options(schema, arrays, &options)?)
    }

    /// Every column, for the store's own use (see [`Segment::batch`]).
    pub(crate) fn all_columns(&self) -> Result<RecordBatch> {
        let all: Vec<usize> = (0..self.columns.len()).collect();
        self.batch(&all, None)
    }

    /// The segment's file was written: its columns may leave memory now.
    pub(crate) fn persisted(&self, file: Arc<SegmentFile>) {
        // A segment opened from its file has it already.
        let _ = self.file.set(file);
        self.columns.persisted();
    }

    /// Whether the segment has its file.
    pub(crate) fn has_file(&self) -> bool {
        self.file.get().is_some()
    }

    /// Row `row`'s begin timestamp.
    pub(crate) fn begin(&self, row: usize) -> u64 {
        self.begin.get(row).copied().unwrap_or(self.min_begin)
    }

    /// Every row's begin timestamp.
    pub(crate) fn begins(&self) -> Vec<u64> {
        match self.begin.is_empty() {
            true => vec![self.min_begin; self.len],
            false => self.begin.clone(),
        }
    }

    /// Tells the tier a scan read this segment, so it may warm it later.
    pub(crate) fn seen(self: &Arc<Self>) {
        let me: std::sync::Weak<dyn Warm> = Arc::downgrade(self) as std::sync::Weak<Segment>;
        self.columns.hot().seen(&self.columns, me);
    }

    /// Whether the columns `projection` are all in memory.
    pub(crate) fn holds(&self, projection: &[usize]) -> bool {
        projection.iter().all(|&c| self.columns.get(c).is_some())
    }

    /// Whether every column is in memory.
    pub(crate) fn in_memory(&self) -> bool {
        self.columns.all_present()
    }

    /// Whether some column is in memory.
    pub(crate) fn is_loaded(&self) -> bool {
        self.columns.any_present()
    }

    /// Column `c`'s decoded bytes (an estimate until first read).
    pub(crate) fn column_bytes(&self, c: usize) -> usize {
        self.columns.bytes(c)
    }

    /// The keys' bytes.
    pub(crate) fn keys_bytes(&self) -> usize {
        array_bytes(&self.keys)
    }

    /// `rows` (with their keys, begin and end timestamps) cut into
    /// segments of at most `size` rows; slices share the buffers.
    pub(crate) fn cut(hot: &Arc<HotTier>, rows: &RecordBatch, keys: &BinaryArray, begin: &[u64], end: &[u64], size: usize) -> Vec<Segment> {
        let n = rows.num_rows();
        (0..n)
            .step_by(size.max(1))
            .map(|at| {
                let len = size.min(n - at);
                let end = end[at..at + len].iter().map(|&e| AtomicU64::new(e)).collect();
                Segment::new(hot, rows.slice(at, len), keys.slice(at, len), begin[at..at + len].to_vec(), end)
            })
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Rows whose end is set (an end being set may not be counted yet).
    pub(crate) fn ended(&self) -> usize {
        self.ended.load(Ordering::Acquire)
    }

    /// Each row's end timestamp now.
    pub(crate) fn ends(&self) -> Vec<u64> {
        self.end.iter().map(|e| e.load(Ordering::Acquire)).collect()
    }

    pub(crate) fn end_row(&self, row: usize, ts: u64) {
        if self.end[row].swap(ts, Ordering::AcqRel) == OPEN {
            self.ended.fetch_add(1, Ordering::Release);
        }
    }

    /// Bytes in memory: the columns present, keys, timestamps and zones.
    pub(crate) fn bytes(&self) -> usize {
        self.columns.present_bytes() + self.metadata_bytes as usize
    }

    /// Whether the zone maps leave a row that may pass every predicate.
    pub(crate) fn may_match(&self, predicates: &[Predicate]) -> bool {
        predicates.iter().all(|p| p.may_match(&self.zones[p.column]))
    }

    /// The rows visible at `ts` whose keys are not in `exclude`, projected,
    /// with the key column last if `with_keys`. `None` if no row qualifies.
    pub(crate) fn scan(
        &self,
        ts: u64,
        projection: &[usize],
        exclude: &HashSet<Vec<u8>>,
        with_keys: bool,
        why: Use,
        preloaded: Option<RecordBatch>,
    ) -> Result<Option<RecordBatch>> {
        if ts < self.min_begin {
            return Ok(None);
        }
        // The scan's snapshot is at or below what was applied when it began
        // (omen-sync waits for that), so ends set meanwhile are above it
        // and change nothing here.
        let all_begun = self.max_begin <= ts;
        let none_ended = self.ended.load(Ordering::Acquire) == 0;
        let mut visible = match (all_begun, none_ended) {
            (true, true) => BooleanBuffer::new_set(self.len()),
            (true, false) => BooleanBuffer::collect_bool(self.len(), |i| ts < self.end[i].load(Ordering::Acquire)),
            // Begins differ here (min_begin <= ts < max_begin), so `begin` is full.
            (false, _) => BooleanBuffer::collect_bool(self.len(), |i| self.begin[i] <= ts && ts < self.end[i].load(Ordering::Acquire)),
        };
        if !exclude.is_empty() {
            let kept = BooleanBuffer::collect_bool(self.len(), |i| !exclude.contains(self.keys.value(i)));
            visible = &visible & &kept;
        }
        let count = visible.count_set_bits();
        if count == 0 {
            return Ok(None);
        }
        let mut batch = self.batch_from(projection, Some(why), preloaded)?;
        if with_keys {
            let keys: ArrayRef = Arc::new(self.keys.clone());
            batch = with_key_column(&batch, keys)?;
        }
        if count == self.len() {
            return Ok(Some(batch));
        }
        Ok(Some(filter_record_batch(&batch, &BooleanArray::new(visible, None))?))
    }
}

impl Warm for Segment {
    /// Loads `columns` where not in memory, telling the tier it was a
    /// prefetch; a failure is left for a scan to meet.
    fn warm(&self, columns: &[usize]) {
        let mut columns: Vec<usize> = columns.iter().copied().filter(|&c| c < self.columns.len()).collect();
        columns.sort_unstable();
        columns.dedup();
        let _ = self.batch(&columns, Some(Use { kind: omen_tier::AccessKind::Prefetch, statement: 0, position: None }));
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        self.columns.hot().metadata.fetch_sub(self.metadata_bytes, Ordering::Relaxed);
    }
}
