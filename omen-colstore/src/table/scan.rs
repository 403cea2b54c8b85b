//! Scanning: the rows visible at a snapshot, a segment at a time.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;

use super::{BATCH_ROWS, ColumnTable};
use crate::error::{Error, Result};
use crate::segment::Segment;
use crate::zone::Predicate;

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
}
