//! A segment: immutable Arrow columns plus per-row keys and MVCC timestamps.
//!
//! `begin` is fixed when the row is appended; `end` starts [`OPEN`] and is set
//! once, atomically, when a later commit supersedes or deletes the row.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use arrow::array::{Array, ArrayRef, BinaryArray, BooleanArray};
use arrow::buffer::BooleanBuffer;
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::files::SegmentFile;
use crate::key_column::with_key_column;
use crate::zone::{Predicate, Zone};

/// End timestamp of a row no commit has superseded.
pub const OPEN: u64 = u64::MAX;

#[derive(Debug)]
pub(crate) struct Segment {
    /// The table's columns; empty until first read for a segment opened
    /// from its file (see [`Segment::on_disk`]).
    rows: OnceLock<RecordBatch>,
    /// The file the columns are read from.
    file: Option<Arc<SegmentFile>>,
    len: usize,
    /// The encoded primary key of each row.
    pub(crate) keys: BinaryArray,
    pub(crate) begin: Vec<u64>,
    pub(crate) end: Box<[AtomicU64]>,
    /// Each column's zone map.
    pub(crate) zones: Vec<Zone>,
    /// Each column's decoded bytes (before its first read from the file,
    /// the file's uncompressed size of it: an estimate).
    column_bytes: Box<[AtomicUsize]>,
    /// The least `begin`: snapshots before it see nothing here.
    min_begin: u64,
    /// The greatest `begin`: snapshots from it on need not read `begin`.
    max_begin: u64,
    /// Rows whose `end` is set: while none is, a snapshot that all rows
    /// began before sees every row without reading `end`.
    ended: AtomicUsize,
}

impl Segment {
    /// A segment of `rows`, their keys and timestamps; computes the zone maps.
    pub(crate) fn new(rows: RecordBatch, keys: BinaryArray, begin: Vec<u64>, end: Box<[AtomicU64]>) -> Self {
        let zones = rows.columns().iter().map(|c| Zone::of(c.as_ref())).collect();
        let len = rows.num_rows();
        let bytes = rows.columns().iter().map(|c| c.to_data().get_slice_memory_size().unwrap_or(0)).collect();
        Self::with(OnceLock::from(rows), None, len, keys, begin, end, zones, bytes)
    }

    /// A segment whose columns stay in `file` until a scan reads them; the
    /// zone maps come from the file's statistics.
    pub(crate) fn on_disk(
        file: Arc<SegmentFile>,
        keys: BinaryArray,
        begin: Vec<u64>,
        end: Box<[AtomicU64]>,
        zones: Vec<Zone>,
        column_bytes: Vec<usize>,
    ) -> Self {
        let len = begin.len();
        Self::with(OnceLock::new(), Some(file), len, keys, begin, end, zones, column_bytes)
    }

    #[allow(clippy::too_many_arguments)]
    fn with(
        rows: OnceLock<RecordBatch>,
        file: Option<Arc<SegmentFile>>,
        len: usize,
        keys: BinaryArray,
        begin: Vec<u64>,
        end: Box<[AtomicU64]>,
        zones: Vec<Zone>,
        column_bytes: Vec<usize>,
    ) -> Self {
        let column_bytes = column_bytes.into_iter().map(AtomicUsize::new).collect();
        let min_begin = begin.iter().copied().min().unwrap_or(u64::MAX);
        let max_begin = begin.iter().copied().max().unwrap_or(0);
        let ended = AtomicUsize::new(end.iter().filter(|e| e.load(Ordering::Relaxed) != OPEN).count());
        Self { rows, file, len, keys, begin, end, zones, column_bytes, min_begin, max_begin, ended }
    }

    /// The table's columns, read from the segment's file the first time.
    pub(crate) fn columns(&self) -> Result<&RecordBatch> {
        if let Some(rows) = self.rows.get() {
            return Ok(rows);
        }
        let file = self.file.as_ref().expect("a segment without columns has a file");
        let rows = file.read_columns(self.len)?;
        for (bytes, c) in self.column_bytes.iter().zip(rows.columns()) {
            bytes.store(c.to_data().get_slice_memory_size().unwrap_or(0), Ordering::Relaxed);
        }
        // Two first readers may both read the file; one copy is kept.
        Ok(self.rows.get_or_init(|| rows))
    }

    /// Column `c`'s decoded bytes (an estimate until first read).
    pub(crate) fn column_bytes(&self, c: usize) -> usize {
        self.column_bytes[c].load(Ordering::Relaxed)
    }

    /// The keys' bytes.
    pub(crate) fn keys_bytes(&self) -> usize {
        self.keys.to_data().get_slice_memory_size().unwrap_or(0)
    }

    /// Whether the columns are in memory.
    pub(crate) fn is_loaded(&self) -> bool {
        self.rows.get().is_some()
    }

    /// `rows` (with their keys, begin and end timestamps) cut into
    /// segments of at most `size` rows; slices share the buffers.
    pub(crate) fn cut(rows: &RecordBatch, keys: &BinaryArray, begin: &[u64], end: &[u64], size: usize) -> Vec<Segment> {
        let n = rows.num_rows();
        (0..n)
            .step_by(size.max(1))
            .map(|at| {
                let len = size.min(n - at);
                let end = end[at..at + len].iter().map(|&e| AtomicU64::new(e)).collect();
                Segment::new(rows.slice(at, len), keys.slice(at, len), begin[at..at + len].to_vec(), end)
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

    /// Bytes in memory: the columns (once read), keys and timestamps.
    pub(crate) fn bytes(&self) -> usize {
        self.rows.get().map_or(0, RecordBatch::get_array_memory_size) + self.keys.get_array_memory_size() + 16 * self.len()
    }

    /// Whether the zone maps leave a row that may pass every predicate.
    pub(crate) fn may_match(&self, predicates: &[Predicate]) -> bool {
        predicates.iter().all(|p| p.may_match(&self.zones[p.column]))
    }

    /// The rows visible at `ts` whose keys are not in `exclude`, projected,
    /// with the key column last if `with_keys`. `None` if no row qualifies.
    pub(crate) fn scan(&self, ts: u64, projection: &[usize], exclude: &HashSet<Vec<u8>>, with_keys: bool) -> Result<Option<RecordBatch>> {
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
        let mut batch = self.columns()?.project(projection)?;
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
