//! Scanning: the rows visible at a snapshot, a segment at a time.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use crossbeam_channel::{Receiver, bounded};

use super::{BATCH_ROWS, ColumnTable};
use crate::error::{Error, Result};
use crate::hot::{HotTier, Use};
use crate::segment::Segment;
use omen_tier::AccessKind;

/// Each scan's id, as the hot tier is told unless the caller names its
/// statement ([`Scan::for_statement`]).
static NEXT_SCAN: AtomicU64 = AtomicU64::new(1);
use crate::zone::{Predicate, Zone};

/// A scan: the segments a snapshot reads, taken when the scan was made and
/// after pruning, read one at a time as batches are taken. It owns what
/// it reads (segments, the keys it skips), so it can outlive the call
/// that made it, move to another thread, or be [shared](Scan::share) among
/// several consumers. See [`ColumnTable::scan_iter`].
#[derive(Debug)]
pub struct Scan {
    /// Each segment with its place among the scan's.
    segments: VecDeque<(u32, Arc<Segment>)>,
    /// The scan's segments, for the hot tier's access positions.
    count: u32,
    /// The statement the scan belongs to, as the hot tier is told.
    statement: u64,
    ts: u64,
    projection: Arc<[usize]>,
    exclude: Arc<HashSet<Vec<u8>>>,
    with_keys: bool,
    /// The segment's visible rows being handed out, and the next offset.
    current: Option<(RecordBatch, usize)>,
    /// The store's hot tier, whose reader loads segments ahead.
    hot: Arc<HotTier>,
    /// For each segment at the front of `segments` that read-ahead has
    /// reached: where its loaded columns will arrive (`None`: they were in
    /// memory already).
    pending: VecDeque<Option<Receiver<Result<RecordBatch>>>>,
    /// Whether the last segment was read.
    finished: bool,
}

/// A copy reads what this scan has left to read, with read-ahead of its
/// own (loads already queued stay with this scan).
impl Clone for Scan {
    fn clone(&self) -> Self {
        self.share(0, 1)
    }
}

impl Iterator for Scan {
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
            let Some((at, segment)) = self.segments.pop_front() else {
                // The scan is done: warm what the policy expects next.
                if !std::mem::replace(&mut self.finished, true) {
                    self.hot.warm_predicted();
                }
                return None;
            };
            segment.seen();
            // A failed load (or a reader gone) leaves the read to the scan,
            // which meets the error itself.
            let preloaded = self.pending.pop_front().flatten().and_then(|rx| rx.recv().ok()).and_then(Result::ok);
            self.read_ahead();
            let why = Use { kind: AccessKind::Scan, statement: self.statement, position: Some((at, self.count)) };
            match segment.scan(self.ts, &self.projection, &self.exclude, self.with_keys, why, preloaded) {
                Ok(Some(batch)) => self.current = Some((batch, 0)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl Scan {
    /// Hands the loads of the next segments (up to the tier's depth) to the
    /// background reader, so they are decoded while this one is read.
    fn read_ahead(&mut self) {
        while self.pending.len() < self.hot.depth().min(self.segments.len()) {
            let (_, segment) = &self.segments[self.pending.len()];
            if segment.holds(&self.projection) {
                self.pending.push_back(None);
                continue;
            }
            let (segment, projection) = (Arc::clone(segment), Arc::clone(&self.projection));
            let (tx, rx) = bounded(1);
            // The scan may be gone by the time the load is done: nobody to tell.
            if !self.hot.read_ahead(Box::new(move || drop(tx.send(segment.batch(&projection, None))))) {
                return;
            }
            self.pending.push_back(Some(rx));
        }
    }

    /// The `i`th of `n` shares of this scan (`i < n`), dealt round-robin
    /// by segment: the `n` shares together read what this scan would, and
    /// each reads its segments when its batches are taken. Rows already
    /// taken out of a segment are not read again (the rest of the segment
    /// being handed out goes to share 0).
    pub fn share(&self, i: usize, n: usize) -> Scan {
        let n = n.max(1);
        Scan {
            segments: self.segments.iter().skip(i).step_by(n).cloned().collect(),
            count: self.count,
            statement: self.statement,
            ts: self.ts,
            projection: Arc::clone(&self.projection),
            exclude: Arc::clone(&self.exclude),
            with_keys: self.with_keys,
            current: if i == 0 { self.current.clone() } else { None },
            hot: Arc::clone(&self.hot),
            pending: VecDeque::new(),
            finished: false,
        }
    }

    /// This scan as part of statement `id` (the hot tier's access traces
    /// group accesses by it); by default each scan is its own.
    pub fn for_statement(mut self, id: u64) -> Scan {
        self.statement = id;
        self
    }

    /// Segments left to read.
    pub fn segments(&self) -> usize {
        self.segments.len()
    }

    /// Row versions the segments left hold: at least the rows the scan
    /// still returns (it returns only those visible at its snapshot).
    pub fn versions(&self) -> usize {
        self.segments.iter().map(|(_, s)| s.len()).sum::<usize>() + self.current.as_ref().map_or(0, |(b, at)| b.num_rows() - at)
    }

    /// An estimate of the bytes the scan's segments hold in the projected
    /// columns (and keys, if it returns them), decoded: what the scan
    /// returns at most, give or take the estimate of columns never read
    /// (their files' uncompressed sizes).
    pub fn bytes(&self) -> usize {
        self.segments
            .iter()
            .map(|(_, s)| {
                self.projection.iter().map(|&c| s.column_bytes(c)).sum::<usize>() + if self.with_keys { s.keys_bytes() } else { 0 }
            })
            .sum()
    }

    /// The projected columns' zones over the segments left to read:
    /// bounds on what the scan returns (inexact: dead versions count too).
    /// `None` if no segment is left.
    pub fn zones(&self) -> Option<Vec<Zone>> {
        let mut zones: Option<Vec<Zone>> = None;
        for (_, s) in &self.segments {
            let of: Vec<&Zone> = self.projection.iter().map(|&c| &s.zones[c]).collect();
            zones = Some(match zones {
                None => of.into_iter().cloned().collect(),
                Some(z) => z.iter().zip(of).map(|(a, b)| a.union(b)).collect(),
            });
        }
        zones
    }
}

impl ColumnTable {
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
        self.scan_iter(ts, projection, predicates, Arc::new(exclude.clone()), with_keys)?.collect()
    }

    /// [`ColumnTable::scan`] as an iterator: a segment's rows are read
    /// when the batches before them have been taken, so a consumer that
    /// drops each batch holds one segment's worth of memory, not the
    /// result. It reads the segments of the moment it is made that the
    /// predicates leave.
    pub fn scan_iter(
        &self,
        ts: u64,
        projection: Option<&[usize]>,
        predicates: &[Predicate],
        exclude: Arc<HashSet<Vec<u8>>>,
        with_keys: bool,
    ) -> Result<Scan> {
        let types: Vec<DataType> = self.schema.fields().iter().map(|f| f.data_type().clone()).collect();
        for p in predicates {
            p.validate(&types)?;
        }
        if let Some(bad) = projection.into_iter().flatten().find(|&&c| c >= types.len()) {
            return Err(Error::Schema(format!("projection of column {bad} of {}", types.len())));
        }
        let projection = projection.map_or_else(|| (0..types.len()).collect(), Arc::from);
        // Scans work on the segment list of this moment; later appends begin
        // after the caller's snapshot and later ends are above it, so neither
        // changes what this scan should see.
        let segments: VecDeque<(u32, Arc<Segment>)> = self
            .state
            .read()
            .segments
            .values()
            .filter(|s| s.may_match(predicates))
            .cloned()
            .enumerate()
            .map(|(i, s)| (i as u32, s))
            .collect();
        let count = segments.len() as u32;
        let statement = NEXT_SCAN.fetch_add(1, Ordering::Relaxed);
        Ok(Scan {
            segments,
            count,
            statement,
            ts,
            projection,
            exclude,
            with_keys,
            current: None,
            hot: Arc::clone(&self.hot),
            pending: VecDeque::new(),
            finished: false,
        })
    }
}
