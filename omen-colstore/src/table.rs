//! One table: its segments and the map from key to its newest row.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, RecordBatch, UInt32Array, UInt64Array};
use arrow::compute::{SortColumn, concat, concat_batches, lexsort_to_indices, take, take_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use parking_lot::RwLock;
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::files;
use crate::keymap::{KeyMap, Place, Segments};
use crate::manifest::SegmentEntry;
use crate::segment::{OPEN, Segment};
use crate::zone::{Predicate, Zone};

/// Rows per segment at most: a batch applied at once is cut into segments
/// of this size, and small ones merge up to it, so zone maps stay narrow
/// enough to prune.
pub const SEGMENT_ROWS: usize = 64 * 1024;
// A version's place keeps its row in 16 bits (`keymap::Place`).
const _: () = assert!(SEGMENT_ROWS <= 1 << 16);
/// Segments smaller than [`SEGMENT_ROWS`] are merged once [`MERGE_AT`] of
/// one size tier accumulate.
const MERGE_AT: usize = 16;
/// Rows per batch a scan returns at most (DataFusion's default batch size).
pub const BATCH_ROWS: usize = 8192;

/// One step of a [`ChangeBatch`], applied in order.
#[derive(Debug, Clone)]
pub enum ChangeOp {
    /// End the key's newest version at `ts` (update or delete).
    End {
        /// Encoded primary key.
        key: Vec<u8>,
        /// Commit timestamp.
        ts: u64,
    },
    /// Append row `row` of the batch's `rows` as the key's new version from `ts`.
    Append {
        /// Index into [`ChangeBatch::rows`].
        row: usize,
        /// Encoded primary key.
        key: Vec<u8>,
        /// Commit timestamp.
        ts: u64,
    },
}

/// Changes from one or more commits, in commit order.
#[derive(Debug, Clone)]
pub struct ChangeBatch {
    /// New row versions, in the table's schema.
    pub rows: RecordBatch,
    /// What to do, in order; every row of `rows` is appended exactly once.
    pub ops: Vec<ChangeOp>,
}

#[derive(Default)]
struct State {
    segments: Segments,
    next_segment: u64,
    /// Key -> place of its newest version, while it is live.
    newest: KeyMap,
    /// A compaction is building new segments from the current ones: small
    /// segments do not merge meanwhile (it would move rows it copies).
    compacting: bool,
    /// Segments written to disk: their files, and how many ended rows
    /// those hold.
    files: FxHashMap<u64, OnDisk>,
}

/// Segments (by id) and the files a persist wrote for them.
pub(crate) type NotedFiles = Vec<(u64, OnDisk)>;

/// A segment's files (see [`crate::files`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OnDisk {
    file: u64,
    /// 0: no delete file.
    deletes: u64,
    /// Ended rows the files hold.
    ended: usize,
}

/// What the optimizer may know of a table (see [`ColumnTable::statistics`]).
#[derive(Debug, Clone)]
pub struct TableStatistics {
    /// Keys with a live newest version: the table's rows at the newest
    /// applied commit.
    pub live_rows: usize,
    /// Row versions held, live or not.
    pub versions: usize,
    /// Segments.
    pub segments: usize,
    /// Segments whose columns are in memory; the others' are read from
    /// their files when a scan first needs them.
    pub segments_in_memory: usize,
    /// Bytes in memory: columns read so far, keys and timestamps.
    pub bytes: usize,
    /// Each column's zone over every version held: bounds for any
    /// snapshot's rows (inexact: dead versions count too).
    pub columns: Vec<Zone>,
}

/// What [`crate::ColumnStore::persist`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PersistStats {
    /// Parquet segment files written.
    pub segment_files: usize,
    /// Rows in them.
    pub rows_written: usize,
    /// Their bytes.
    pub bytes_written: u64,
    /// Delete files written.
    pub delete_files: usize,
}

/// What [`ColumnTable::compact`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactStats {
    /// Row versions read.
    pub read: usize,
    /// Versions dropped: no snapshot at or after the horizon sees them.
    pub dropped: usize,
    /// Segments before and after.
    pub segments_before: usize,
    /// Segments after.
    pub segments_after: usize,
}

/// Segments' key arrays end to end.
fn concat_keys(keys: &[&dyn Array]) -> Result<BinaryArray> {
    Ok(concat(keys)?.as_binary::<i32>().clone())
}

/// A scan in progress (see [`ColumnTable::scan_iter`]).
pub struct Scan<'a> {
    segments: std::vec::IntoIter<Arc<Segment>>,
    ts: u64,
    projection: Vec<usize>,
    predicates: &'a [Predicate],
    exclude: &'a HashSet<Vec<u8>>,
    with_keys: bool,
    /// The segment's visible rows being handed out, and the next offset.
    current: Option<(RecordBatch, usize)>,
}

impl Iterator for Scan<'_> {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((batch, at)) = &mut self.current {
                if *at < batch.num_rows() {
                    let len = BATCH_ROWS.min(batch.num_rows() - *at);
                    let out = batch.slice(*at, len);
                    *at += len;
                    return Some(Ok(out));
                }
                self.current = None;
            }
            let segment = self.segments.next()?;
            match segment.scan(self.ts, &self.projection, self.predicates, self.exclude, self.with_keys) {
                Ok(Some(batch)) => self.current = Some((batch, 0)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// A table in the column store.
pub struct ColumnTable {
    schema: SchemaRef,
    state: RwLock<State>,
}

impl std::fmt::Debug for ColumnTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColumnTable").field("schema", &self.schema).finish_non_exhaustive()
    }
}

impl ColumnTable {
    pub(crate) fn new(schema: SchemaRef) -> Self {
        Self { schema, state: RwLock::default() }
    }

    /// The table's Arrow schema (without the key column).
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Applies a batch of changes. The batch is checked before anything
    /// changes; an invalid batch changes nothing.
    pub fn apply(&self, batch: ChangeBatch) -> Result<()> {
        if batch.rows.schema().fields() != self.schema.fields() {
            return Err(Error::Schema(format!("expected {:?}, got {:?}", self.schema, batch.rows.schema())));
        }
        let n = batch.rows.num_rows();
        let mut appended = vec![false; n];
        for op in &batch.ops {
            if let ChangeOp::Append { row, .. } = op
                && (*row >= n || std::mem::replace(&mut appended[*row], true))
            {
                return Err(Error::Schema(format!("row {row} appended twice or out of range")));
            }
        }
        if appended.iter().any(|a| !a) {
            return Err(Error::Schema("a row of the batch is never appended".into()));
        }

        // Everything but the key map is worked out before taking the lock,
        // so scans starting meanwhile do not wait for it.
        let mut keys: Vec<Option<&[u8]>> = vec![None; n];
        let mut begin = vec![0u64; n];
        let mut end = vec![OPEN; n];
        // Keys appended by this batch, to their row; ends of other keys.
        let mut pending: FxHashMap<&[u8], usize> = FxHashMap::with_capacity_and_hasher(n, Default::default());
        let mut ends = Vec::new();
        for op in &batch.ops {
            match op {
                ChangeOp::End { key, ts } => match pending.remove(key.as_slice()) {
                    Some(row) => end[row] = *ts,
                    None => ends.push((key.as_slice(), *ts)),
                },
                ChangeOp::Append { row, key, ts } => {
                    begin[*row] = *ts;
                    keys[*row] = Some(key);
                    pending.insert(key, *row);
                }
            }
        }
        let keys: BinaryArray = keys.into_iter().collect();
        let segments = Segment::cut(&batch.rows, &keys, &begin, &end, SEGMENT_ROWS);

        let mut guard = self.state.write();
        let state = &mut *guard;
        for (key, ts) in ends {
            if let Some(place) = state.newest.remove(key, &state.segments)
                && let Some(s) = state.segments.get(&place.segment())
            {
                s.end_row(place.row(), ts);
            }
        }
        // Row r of the batch went to segment `first_id + r / SEGMENT_ROWS`.
        let first_id = state.next_segment;
        state.next_segment += segments.len() as u64;
        for (i, segment) in segments.into_iter().enumerate() {
            state.segments.insert(first_id + i as u64, Arc::new(segment));
        }
        for (key, row) in pending {
            state.newest.insert(key, Place::new(first_id + (row / SEGMENT_ROWS) as u64, row % SEGMENT_ROWS), &state.segments);
        }
        // The batch is applied: a merge that cannot be made now (it only
        // concatenates arrays of the table's schema) is tried after the next.
        let _ = Self::merge_small(state, &self.schema);
        Ok(())
    }

    /// Merges small segments of like size once [`MERGE_AT`] of them
    /// accumulate, so per-commit appends do not leave scans walking
    /// thousands of tiny batches. Size tiers (powers of [`MERGE_AT`]) keep
    /// the work per row logarithmic: a row is merged again only with
    /// segments as large as its own.
    fn merge_small(state: &mut State, schema: &SchemaRef) -> Result<()> {
        if state.compacting {
            return Ok(());
        }
        let tier = |len: usize| len.max(1).ilog(MERGE_AT);
        let mut tiers: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        // Segments whose columns are still in their files stay out: reading
        // them here would hold the table's lock through the I/O.
        for (id, s) in state.segments.iter().filter(|(_, s)| s.len() < SEGMENT_ROWS && s.is_loaded()) {
            tiers.entry(tier(s.len())).or_default().push(*id);
        }
        let Some(small) = tiers.into_values().find(|ids| ids.len() >= MERGE_AT) else {
            return Ok(());
        };
        let parts: Vec<Arc<Segment>> = small.iter().map(|id| Arc::clone(&state.segments[id])).collect();
        let rows = concat_batches(schema, parts.iter().map(|s| s.columns()).collect::<Result<Vec<_>>>()?)?;
        let keys = concat_keys(&parts.iter().map(|s| &s.keys as &dyn Array).collect::<Vec<_>>())?;
        let begin: Vec<u64> = parts.iter().flat_map(|s| s.begin.iter().copied()).collect();
        let end: Vec<u64> = parts.iter().flat_map(|s| s.end.iter().map(|e| e.load(Ordering::Acquire))).collect();
        let first_id = state.next_segment;
        let merged = Segment::cut(&rows, &keys, &begin, &end, SEGMENT_ROWS);
        state.next_segment += merged.len() as u64;
        for (i, m) in merged.into_iter().enumerate() {
            state.segments.insert(first_id + i as u64, Arc::new(m));
        }
        // Repoint the keys whose newest version moved: found through the
        // merged rows' own keys, so the cost follows the rows merged, not
        // the size of the table.
        let mut at = 0;
        for (id, s) in small.iter().zip(&parts) {
            for row in 0..s.len() {
                if s.keys.is_valid(row) {
                    let to = Place::new(first_id + (at / SEGMENT_ROWS) as u64, at % SEGMENT_ROWS);
                    state.newest.repoint(s.keys.value(row), Place::new(*id, row), to);
                }
                at += 1;
            }
            state.segments.remove(id);
        }
        Ok(())
    }

    /// The rows visible at snapshot `ts`, projected to `projection` (all
    /// columns if `None`), skipping keys in `exclude`, in batches of at
    /// most [`BATCH_ROWS`]. Segments whose zone maps rule out one of the
    /// `predicates` are skipped; rows of the others are not filtered by
    /// them (the caller does). With `with_keys`, each batch has the
    /// encoded key as a last column named [`crate::KEY_COLUMN`]. A
    /// predicate on a column the table lacks, or whose literal has another
    /// type, is [`Error::Schema`]. All batches at once: see
    /// [`ColumnTable::scan_iter`] for one at a time.
    pub fn scan(
        &self,
        ts: u64,
        projection: Option<&[usize]>,
        predicates: &[Predicate],
        exclude: &HashSet<Vec<u8>>,
        with_keys: bool,
    ) -> Result<Vec<RecordBatch>> {
        self.scan_iter(ts, projection, predicates, exclude, with_keys)?.collect()
    }

    /// [`ColumnTable::scan`] as an iterator: a segment's rows are read
    /// when the batches before them have been taken, so a consumer that
    /// drops each batch holds one segment's worth of memory, not the
    /// result. It reads the segments of the moment it is made.
    pub fn scan_iter<'a>(
        &self,
        ts: u64,
        projection: Option<&[usize]>,
        predicates: &'a [Predicate],
        exclude: &'a HashSet<Vec<u8>>,
        with_keys: bool,
    ) -> Result<Scan<'a>> {
        let types: Vec<DataType> = self.schema.fields().iter().map(|f| f.data_type().clone()).collect();
        for p in predicates {
            p.validate(&types)?;
        }
        if let Some(bad) = projection.into_iter().flatten().find(|&&c| c >= types.len()) {
            return Err(Error::Schema(format!("projection of column {bad} of {}", types.len())));
        }
        let projection = projection.map_or_else(|| (0..types.len()).collect(), <[usize]>::to_vec);
        // Scans work on the segment list of this moment; later appends begin
        // after the caller's snapshot and later ends are above it, so neither
        // changes what this scan should see.
        let segments: Vec<Arc<Segment>> = self.state.read().segments.values().cloned().collect();
        Ok(Scan { segments: segments.into_iter(), ts, projection, predicates, exclude, with_keys, current: None })
    }

    /// Loads the segments of `entries` from `dir` as of `watermark`: rows
    /// that began after it are left out and ends after it are reopened (a
    /// persist may have caught changes past its watermark; replaying from
    /// the watermark brings them back exactly).
    pub(crate) fn load(
        schema: SchemaRef,
        dir: &std::path::Path,
        entries: &[SegmentEntry],
        watermark: u64,
        tracker: &Arc<files::FileTracker>,
    ) -> Result<Self> {
        let table = Self::new(schema);
        let mut guard = table.state.write();
        let state = &mut *guard;
        for e in entries {
            let path = crate::manifest::segment_path(dir, e.file);
            let files::SegmentIndex { keys, begin, mut end, zones } = files::read_index(&path, &table.schema)?;
            if begin.len() as u64 != e.rows || begin.len() > SEGMENT_ROWS {
                let reason = format!("{} rows, the manifest says {}", begin.len(), e.rows);
                return Err(Error::Corruption { file: path, reason });
            }
            if e.deletes != 0 {
                for (row, ts) in files::read_deletes(&crate::manifest::deletes_path(dir, e.deletes), end.len())? {
                    end[row as usize] = ts;
                }
            }
            let ended = end.iter().filter(|&&t| t != OPEN).count();
            let id = state.next_segment;
            state.next_segment += 1;
            let complete = begin.iter().all(|&b| b <= watermark);
            let reopened = |end: Vec<u64>| -> Box<[AtomicU64]> {
                end.into_iter().map(|t| AtomicU64::new(if t > watermark { OPEN } else { t })).collect()
            };
            let segment = match zones {
                // The usual case: the columns stay on disk until a scan reads them.
                Some(zones) if complete => {
                    let file = tracker.track(path, Arc::clone(&table.schema));
                    Segment::on_disk(file, keys, begin, reopened(end), zones)
                }
                _ => {
                    // Read now (and a failure is the table's): nothing to track.
                    let rows = files::read_columns(&path, &table.schema, begin.len())?;
                    let keep = arrow::array::BooleanArray::from_iter(begin.iter().map(|&b| Some(b <= watermark)));
                    let (rows, keys, begin, end) = if complete {
                        (rows, keys, begin, end)
                    } else {
                        let rows = arrow::compute::filter_record_batch(&rows, &keep)?;
                        let keys = arrow::compute::filter(&keys, &keep)?.as_binary::<i32>().clone();
                        let pick =
                            |v: &[u64]| v.iter().zip(keep.values().iter()).filter(|(_, k)| *k).map(|(x, _)| *x).collect::<Vec<u64>>();
                        (rows, keys, pick(&begin), pick(&end))
                    };
                    if rows.num_rows() == 0 {
                        continue;
                    }
                    Segment::new(rows, keys, begin, reopened(end))
                }
            };
            // A changed segment is written again at the next persist.
            if segment.len() as u64 == e.rows && segment.ended() == ended {
                state.files.insert(id, OnDisk { file: e.file, deletes: e.deletes, ended });
            }
            state.segments.insert(id, Arc::new(segment));
        }
        let State { segments, newest, .. } = state;
        for (id, s) in segments.iter() {
            for (row, e) in s.ends().iter().enumerate() {
                if *e == OPEN {
                    newest.insert(s.keys.value(row), Place::new(*id, row), segments);
                }
            }
        }
        drop(guard);
        Ok(table)
    }

    /// Writes what `persist` needs of this table to `dir`: a segment file
    /// for each segment without one, a delete file for each whose ends
    /// changed since its files were written. Returns the manifest's
    /// entries and the files to note once the manifest names them
    /// ([`ColumnTable::note_files`]).
    pub(crate) fn write_files(
        &self,
        dir: &std::path::Path,
        codec: files::Codec,
        next_file: &mut u64,
        stats: &mut PersistStats,
    ) -> Result<(Vec<SegmentEntry>, NotedFiles)> {
        let current: Vec<(u64, Arc<Segment>, Option<OnDisk>)> = {
            let state = self.state.read();
            state.segments.iter().map(|(id, s)| (*id, Arc::clone(s), state.files.get(id).copied())).collect()
        };
        let mut entries = Vec::with_capacity(current.len());
        let mut noted = Vec::new();
        for (id, segment, on_disk) in current {
            // Ends only go from open to set: the same count as the files
            // hold means nothing to write (an end still being counted
            // belongs to a commit past the watermark).
            if let Some(d) = on_disk.filter(|d| d.ended == segment.ended()) {
                entries.push(SegmentEntry { file: d.file, rows: segment.len() as u64, deletes: d.deletes });
                noted.push((id, d));
                continue;
            }
            let ends = segment.ends();
            let ended = ends.iter().filter(|&&t| t != OPEN).count();
            let disk = match on_disk {
                Some(d) if d.ended == ended => d,
                Some(d) => {
                    let file = std::mem::replace(next_file, *next_file + 1);
                    let set: Vec<(u32, u64)> = ends.iter().enumerate().filter(|(_, t)| **t != OPEN).map(|(r, t)| (r as u32, *t)).collect();
                    files::write_deletes(&crate::manifest::deletes_path(dir, file), &set)?;
                    stats.delete_files += 1;
                    OnDisk { deletes: file, ended, ..d }
                }
                None => {
                    let file = std::mem::replace(next_file, *next_file + 1);
                    stats.bytes_written +=
                        files::write_segment(&crate::manifest::segment_path(dir, file), &self.schema, &segment, &ends, codec)?;
                    stats.segment_files += 1;
                    stats.rows_written += segment.len();
                    OnDisk { file, deletes: 0, ended }
                }
            };
            entries.push(SegmentEntry { file: disk.file, rows: segment.len() as u64, deletes: disk.deletes });
            noted.push((id, disk));
        }
        Ok((entries, noted))
    }

    /// Notes the files a stored manifest names for these segments (those
    /// still in the table; a merge may have replaced some meanwhile).
    pub(crate) fn note_files(&self, noted: NotedFiles) {
        let mut state = self.state.write();
        for (id, disk) in noted {
            if state.segments.contains_key(&id) {
                state.files.insert(id, disk);
            }
        }
        let State { files, segments, .. } = &mut *state;
        files.retain(|id, _| segments.contains_key(id));
    }

    /// Segments the zone maps leave for `predicates`, and all segments.
    pub fn segments_matching(&self, predicates: &[Predicate]) -> (usize, usize) {
        let state = self.state.read();
        (state.segments.values().filter(|s| s.may_match(predicates)).count(), state.segments.len())
    }

    /// Number of row versions held, live or not.
    pub fn version_count(&self) -> usize {
        self.state.read().segments.values().map(|s| s.len()).sum()
    }

    /// Versions held and keys live: what compaction could drop is at most
    /// the difference (cheaper than [`ColumnTable::statistics`]).
    pub fn versions_and_live(&self) -> (usize, usize) {
        let state = self.state.read();
        (state.segments.values().map(|s| s.len()).sum(), state.newest.len())
    }

    /// Row counts, sizes and each column's bounds, for a query planner.
    pub fn statistics(&self) -> TableStatistics {
        let state = self.state.read();
        let mut columns: Vec<Zone> = Vec::new();
        for s in state.segments.values() {
            columns = match columns.is_empty() {
                true => s.zones.clone(),
                false => columns.iter().zip(&s.zones).map(|(a, b)| a.union(b)).collect(),
            };
        }
        if columns.is_empty() {
            columns = self.schema.fields().iter().map(|f| Zone::of(arrow::array::new_empty_array(f.data_type()).as_ref())).collect();
        }
        TableStatistics {
            live_rows: state.newest.len(),
            versions: state.segments.values().map(|s| s.len()).sum(),
            segments: state.segments.len(),
            segments_in_memory: state.segments.values().filter(|s| s.is_loaded()).count(),
            bytes: state.segments.values().map(|s| s.bytes()).sum(),
            columns,
        }
    }

    /// Rewrites the table's segments: drops the versions no snapshot at or
    /// after `horizon` can see (ended at or before it), sorts the rest by
    /// key (then by begin), and cuts them into segments of
    /// [`SEGMENT_ROWS`], so zone maps on the key columns prune key ranges.
    /// `horizon` must be at or below every snapshot that will still scan
    /// (the oldest open one). Scans and applies go on meanwhile: the new
    /// segments are built from a copy of the list and swapped in under the
    /// lock, with ends set since then carried over. It copies the table
    /// (memory for twice its size while it runs). A second call while one
    /// runs returns at once with nothing done.
    pub fn compact(&self, horizon: u64) -> Result<CompactStats> {
        // Open rows end at OPEN: a horizon there would drop them.
        let horizon = horizon.min(OPEN - 1);
        let sources: Vec<(u64, Arc<Segment>)> = {
            let mut state = self.state.write();
            if std::mem::replace(&mut state.compacting, true) {
                return Ok(CompactStats::default());
            }
            state.segments.iter().map(|(id, s)| (*id, Arc::clone(s))).collect()
        };
        let built = Self::rebuild(&self.schema, &sources, horizon);
        let mut state = self.state.write();
        state.compacting = false;
        let (parts, origin, ends) = built?;
        let mut stats = CompactStats {
            read: sources.iter().map(|(_, s)| s.len()).sum(),
            segments_before: state.segments.len(),
            ..CompactStats::default()
        };
        stats.dropped = stats.read - origin.len();
        let first_id = state.next_segment;
        state.next_segment += parts.len() as u64;
        let mut at = 0;
        for (i, part) in parts.into_iter().enumerate() {
            let id = first_id + i as u64;
            for row in 0..part.len() {
                let (src, src_row) = origin[at + row];
                // Ends set since the copy.
                let now = sources[src].1.end[src_row].load(Ordering::Acquire);
                if now != ends[at + row] {
                    part.end_row(row, now);
                }
                state.newest.repoint(part.keys.value(row), Place::new(sources[src].0, src_row), Place::new(id, row));
            }
            at += part.len();
            state.segments.insert(id, Arc::new(part));
        }
        for (id, _) in &sources {
            state.segments.remove(id);
        }
        stats.segments_after = state.segments.len();
        Ok(stats)
    }

    /// The compacted segments of `sources`, and for each of their rows in
    /// order: its source (index into `sources`, row) and the end it was
    /// copied with.
    #[allow(clippy::type_complexity)]
    fn rebuild(schema: &SchemaRef, sources: &[(u64, Arc<Segment>)], horizon: u64) -> Result<(Vec<Segment>, Vec<(usize, usize)>, Vec<u64>)> {
        let mut batches = Vec::new();
        let mut keys: Vec<ArrayRef> = Vec::new();
        let (mut begin, mut ends, mut origin) = (Vec::new(), Vec::new(), Vec::new());
        for (i, (_, s)) in sources.iter().enumerate() {
            let kept: Vec<u32> = (0..s.len())
                .filter(|&r| s.end[r].load(Ordering::Acquire) > horizon)
                .map(|r| u32::try_from(r).map_err(|_| Error::Schema("segment past 4G rows".into())))
                .collect::<Result<_>>()?;
            if kept.is_empty() {
                continue;
            }
            let idx = UInt32Array::from(kept.clone());
            batches.push(take_record_batch(s.columns()?, &idx)?);
            keys.push(take(&s.keys, &idx, None)?);
            for &r in &kept {
                let r = r as usize;
                begin.push(s.begin[r]);
                ends.push(s.end[r].load(Ordering::Acquire));
                origin.push((i, r));
            }
        }
        if origin.is_empty() {
            return Ok((Vec::new(), Vec::new(), Vec::new()));
        }
        let rows = concat_batches(schema, &batches)?;
        let keys: ArrayRef = Arc::new(concat_keys(&keys.iter().map(|k| k.as_ref()).collect::<Vec<_>>())?);
        let order = lexsort_to_indices(
            &[
                SortColumn { values: Arc::clone(&keys), options: None },
                SortColumn { values: Arc::new(UInt64Array::from(begin.clone())), options: None },
            ],
            None,
        )?;
        let rows = take_record_batch(&rows, &order)?;
        let keys = take(&keys, &order, None)?;
        let keys = keys.as_any().downcast_ref::<BinaryArray>().ok_or_else(|| Error::Schema("keys are not binary".into()))?.clone();
        let order: Vec<usize> = order.values().iter().map(|&i| i as usize).collect();
        let begin: Vec<u64> = order.iter().map(|&i| begin[i]).collect();
        let ends: Vec<u64> = order.iter().map(|&i| ends[i]).collect();
        let origin: Vec<(usize, usize)> = order.iter().map(|&i| origin[i]).collect();
        Ok((Segment::cut(&rows, &keys, &begin, &ends, SEGMENT_ROWS), origin, ends))
    }
}

#[cfg(test)]
impl ColumnTable {
    pub(crate) fn segment_count(&self) -> usize {
        self.state.read().segments.len()
    }

    /// (end timestamp, key count) of the key's newest version.
    pub(crate) fn newest_end(&self, key: &[u8]) -> Option<(u64, usize)> {
        let state = self.state.read();
        let place = state.newest.get(key, &state.segments)?;
        let s = &state.segments[&place.segment()];
        Some((s.end_of(place.row()), s.key_len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use proptest::prelude::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false), Field::new("v", DataType::Int64, true)]))
    }

    /// A commit: per key, `Some(v)` writes the row (insert or update), `None` deletes.
    type Commit = Vec<(i64, Option<i64>)>;

    fn visible(table: &ColumnTable, ts: u64, exclude: &HashSet<Vec<u8>>) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        for b in table.scan(ts, None, &[], exclude, true).unwrap() {
            let k = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let v = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
            assert_eq!(b.num_columns(), 3, "key column added");
            out.extend((0..b.num_rows()).map(|i| (k.value(i), v.value(i))));
        }
        out.sort_unstable();
        out
    }

    fn key(k: i64) -> Vec<u8> {
        k.to_be_bytes().to_vec()
    }

    proptest! {
        #[test]
        /// Scans equal a model at every snapshot the compactions (at random
        /// points, random horizons) left readable; segments kept for
        /// predicates hold every model row that passes them.
        fn scans_match_a_model_at_every_snapshot(
            commits in proptest::collection::vec(proptest::collection::btree_map(0i64..12, proptest::option::weighted(0.8, 0i64..100), 1..4), 1..60),
            group in 1usize..5,
            compactions in proptest::collection::vec((0usize..60, 0u64..6), 0..4),
            probe in 0i64..100,
        ) {
            let commits: Vec<Commit> = commits.into_iter().map(|m| m.into_iter().collect()).collect();
            let table = ColumnTable::new(schema());
            // Snapshots below the highest compaction horizon may miss versions.
            let mut oldest_readable = 0u64;
            // Model: the live rows after each commit (index = commit ts - 1).
            let mut live: BTreeMap<i64, i64> = BTreeMap::new();
            let mut history = Vec::new();
            let mut pending_rows: Vec<(i64, i64)> = Vec::new();
            let mut ops = Vec::new();
            for (i, commit) in commits.iter().enumerate() {
                let ts = i as u64 + 1;
                for &(k, v) in commit {
                    if live.contains_key(&k) {
                        ops.push(ChangeOp::End { key: key(k), ts });
                    }
                    match v {
                        Some(v) => {
                            live.insert(k, v);
                            ops.push(ChangeOp::Append { row: pending_rows.len(), key: key(k), ts });
                            pending_rows.push((k, v));
                        }
                        None => {
                            live.remove(&k);
                        }
                    }
                }
                history.push(live.clone());
                if (i + 1) % group == 0 || i + 1 == commits.len() {
                    let (ks, vs): (Vec<i64>, Vec<i64>) = pending_rows.drain(..).unzip();
                    let rows = RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(ks)), Arc::new(Int64Array::from(vs))]).unwrap();
                    table.apply(ChangeBatch { rows, ops: std::mem::take(&mut ops) }).unwrap();
                }
                for &(at, back) in &compactions {
                    if at == i {
                        let horizon = (ts + 1).saturating_sub(back);
                        oldest_readable = oldest_readable.max(horizon);
                        let stats = table.compact(horizon).unwrap();
                        prop_assert_eq!(stats.read - stats.dropped, table.version_count());
                    }
                }
            }
            for (i, state) in history.iter().enumerate().filter(|(i, _)| *i as u64 + 1 >= oldest_readable) {
                let expect: Vec<(i64, i64)> = state.iter().map(|(k, v)| (*k, *v)).collect();
                prop_assert_eq!(visible(&table, i as u64 + 1, &HashSet::new()), expect);
            }
            if oldest_readable == 0 {
                prop_assert!(visible(&table, 0, &HashSet::new()).is_empty());
            }
            // Pruning by zone maps keeps every segment holding a passing row.
            let last_ts = commits.len() as u64;
            let lit = |v: i64| -> ArrayRef { Arc::new(Int64Array::from(vec![v])) };
            for (column, test) in [
                (1, crate::Test::Cmp(crate::CmpOp::Lt, lit(probe))),
                (1, crate::Test::Cmp(crate::CmpOp::Eq, lit(probe))),
                (0, crate::Test::Between(lit(probe % 12), lit(probe % 12 + 2))),
            ] {
                let p = Predicate { column, test };
                let mut got = Vec::new();
                for b in table.scan(last_ts, None, std::slice::from_ref(&p), &HashSet::new(), false).unwrap() {
                    prop_assert!(b.num_rows() <= BATCH_ROWS);
                    let k = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                    let v = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
                    got.extend((0..b.num_rows()).map(|i| (k.value(i), v.value(i))));
                }
                let passes = |k: i64, v: i64| match &p.test {
                    crate::Test::Cmp(crate::CmpOp::Lt, _) => v < probe,
                    crate::Test::Cmp(_, _) => v == probe,
                    _ => (probe % 12..=probe % 12 + 2).contains(&k),
                };
                for (k, v) in history.last().unwrap() {
                    if passes(*k, *v) {
                        prop_assert!(got.contains(&(*k, *v)), "{:?} lost ({k}, {v})", p.test);
                    }
                }
            }
            // Excluded keys disappear from the scan.
            let last = history.last().unwrap();
            if let Some((&k, _)) = last.iter().next() {
                let exclude: HashSet<Vec<u8>> = [key(k)].into();
                let got = visible(&table, commits.len() as u64, &exclude);
                prop_assert!(got.iter().all(|(gk, _)| *gk != k));
                prop_assert_eq!(got.len(), last.len() - 1);
            }
        }
    }

    /// A large batch is cut into segments; compaction sorts by key, so a
    /// narrow key range keeps one segment of three; keys find their
    /// versions after the move.
    #[test]
    fn compaction_sorts_by_key_so_zone_maps_prune_key_ranges() {
        let table = ColumnTable::new(schema());
        let n = 3 * SEGMENT_ROWS as i64;
        // Keys in a scattered order: every segment spans the whole range.
        let ks: Vec<i64> = (0..n).map(|i| (i * 7919) % n).collect();
        let rows =
            RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(ks.clone())), Arc::new(Int64Array::from(ks.clone()))]).unwrap();
        let ops = ks.iter().enumerate().map(|(row, &k)| ChangeOp::Append { row, key: key(k), ts: 1 }).collect();
        table.apply(ChangeBatch { rows, ops }).unwrap();
        let lit = |v: i64| -> ArrayRef { Arc::new(Int64Array::from(vec![v])) };
        let narrow = [Predicate { column: 0, test: crate::Test::Between(lit(1000), lit(1999)) }];
        assert_eq!(table.segments_matching(&narrow), (3, 3));
        // Update every key once more (ts 2): the versions of ts 1 become garbage.
        let rows =
            RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(ks.clone())), Arc::new(Int64Array::from(vec![0; n as usize]))])
                .unwrap();
        let mut ops = Vec::new();
        for (row, &k) in ks.iter().enumerate() {
            ops.push(ChangeOp::End { key: key(k), ts: 2 });
            ops.push(ChangeOp::Append { row, key: key(k), ts: 2 });
        }
        table.apply(ChangeBatch { rows, ops }).unwrap();
        assert_eq!(table.version_count(), 2 * n as usize);
        let stats = table.compact(2).unwrap();
        assert_eq!((stats.read, stats.dropped, stats.segments_before, stats.segments_after), (2 * n as usize, n as usize, 6, 3));
        assert_eq!(table.segments_matching(&narrow), (1, 3));
        let got: usize = table.scan(2, None, &narrow, &HashSet::new(), false).unwrap().iter().map(|b| b.num_rows()).sum();
        assert_eq!(got, SEGMENT_ROWS, "one segment's rows (the caller filters them)");
        let stats = table.statistics();
        assert_eq!((stats.live_rows, stats.versions, stats.segments), (n as usize, n as usize, 3));
        assert_eq!(stats.columns[0].min.as_ref().unwrap().as_ref(), lit(0).as_ref());
        assert_eq!(stats.columns[0].max.as_ref().unwrap().as_ref(), lit(n - 1).as_ref());
        // Keys still find their newest version after the move: end one.
        let rows = RecordBatch::try_new(
            schema(),
            vec![Arc::new(Int64Array::from(Vec::<i64>::new())), Arc::new(Int64Array::from(Vec::<i64>::new()))],
        )
        .unwrap();
        table.apply(ChangeBatch { rows, ops: vec![ChangeOp::End { key: key(5), ts: 3 }] }).unwrap();
        assert_eq!(visible(&table, 3, &HashSet::new()).len(), n as usize - 1);
        assert_eq!(visible(&table, 2, &HashSet::new()).len(), n as usize);
    }

    /// Compactions on another thread while commits end and append rows:
    /// every end set during a rebuild is carried into the new segments,
    /// and every snapshot reads as the model says.
    #[test]
    fn compactions_racing_applies_keep_every_end() {
        let table = Arc::new(ColumnTable::new(schema()));
        let n = 3000i64;
        let rows = RecordBatch::try_new(
            schema(),
            vec![Arc::new(Int64Array::from_iter_values(0..n)), Arc::new(Int64Array::from_iter_values(0..n))],
        )
        .unwrap();
        table.apply(ChangeBatch { rows, ops: (0..n).map(|k| ChangeOp::Append { row: k as usize, key: key(k), ts: 1 }).collect() }).unwrap();
        let compactor = {
            let table = Arc::clone(&table);
            std::thread::spawn(move || {
                for _ in 0..40 {
                    table.compact(0).unwrap();
                }
            })
        };
        let mut live: BTreeMap<i64, i64> = (0..n).map(|k| (k, k)).collect();
        let mut history = vec![live.clone()];
        let mut seed = 0x9E37_79B9u64;
        for ts in 2..300u64 {
            let mut ops = Vec::new();
            let mut vals = Vec::new();
            for _ in 0..20 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let k = (seed % n as u64) as i64;
                if vals.iter().any(|(vk, _)| *vk == k) || !live.contains_key(&k) {
                    continue;
                }
                ops.push(ChangeOp::End { key: key(k), ts });
                if seed.is_multiple_of(5) {
                    live.remove(&k);
                } else {
                    ops.push(ChangeOp::Append { row: vals.len(), key: key(k), ts });
                    vals.push((k, ts as i64));
                    live.insert(k, ts as i64);
                }
            }
            let (ks, vs): (Vec<i64>, Vec<i64>) = vals.into_iter().unzip();
            let rows = RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(ks)), Arc::new(Int64Array::from(vs))]).unwrap();
            table.apply(ChangeBatch { rows, ops }).unwrap();
            history.push(live.clone());
        }
        compactor.join().unwrap();
        for (i, state) in history.iter().enumerate().step_by(7) {
            let expect: Vec<(i64, i64)> = state.iter().map(|(k, v)| (*k, *v)).collect();
            assert_eq!(visible(&table, i as u64 + 1, &HashSet::new()), expect, "at {}", i + 1);
        }
        assert_eq!(table.statistics().live_rows, live.len());
    }

    #[test]
    fn small_segments_merge_and_keep_ends_working() {
        let table = ColumnTable::new(schema());
        for ts in 1..=40u64 {
            let rows =
                RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(vec![1])), Arc::new(Int64Array::from(vec![ts as i64]))])
                    .unwrap();
            let mut ops = vec![];
            if ts > 1 {
                ops.push(ChangeOp::End { key: key(1), ts });
            }
            ops.push(ChangeOp::Append { row: 0, key: key(1), ts });
            table.apply(ChangeBatch { rows, ops }).unwrap();
        }
        assert!(table.segment_count() < 16, "{} segments", table.segment_count());
        assert_eq!(table.version_count(), 40);
        let (end, _) = table.newest_end(&key(1)).unwrap();
        assert_eq!(end, OPEN);
        for ts in 1..=40u64 {
            assert_eq!(visible(&table, ts, &HashSet::new()), vec![(1, ts as i64)]);
        }
    }

    #[test]
    fn invalid_batches_change_nothing() {
        let table = ColumnTable::new(schema());
        let rows = RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(vec![1])), Arc::new(Int64Array::from(vec![1]))]).unwrap();
        let twice = ChangeBatch {
            rows: rows.clone(),
            ops: vec![ChangeOp::Append { row: 0, key: key(1), ts: 1 }, ChangeOp::Append { row: 0, key: key(2), ts: 1 }],
        };
        assert!(table.apply(twice).is_err());
        assert!(table.apply(ChangeBatch { rows: rows.clone(), ops: vec![] }).is_err());
        let other = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let wrong = RecordBatch::try_new(other, vec![Arc::new(Int64Array::from(vec![1]))]).unwrap();
        assert!(table.apply(ChangeBatch { rows: wrong, ops: vec![ChangeOp::Append { row: 0, key: key(1), ts: 1 }] }).is_err());
        assert_eq!(table.version_count(), 0);
        assert!(table.scan(1, None, &[], &HashSet::new(), false).unwrap().is_empty());
    }
}
