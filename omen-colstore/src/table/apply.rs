//! Applying changes: ending versions, appending new ones, and merging the
//! small segments per-commit batches leave.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::{Array, BinaryArray, RecordBatch};
use arrow::compute::concat_batches;
use rustc_hash::FxHashMap;

use super::{ColumnTable, SEGMENT_ROWS, State, concat_keys};
use crate::error::{Error, Result};
use crate::keymap::Place;
use crate::segment::{OPEN, Segment};

/// Segments smaller than [`SEGMENT_ROWS`] are merged once [`MERGE_AT`] of
/// one size tier accumulate.
const MERGE_AT: usize = 16;

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

impl ColumnTable {
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
        let segments = Segment::cut(&self.hot, &batch.rows, &keys, &begin, &end, SEGMENT_ROWS);

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
        let _ = self.merge_small(state);
        Ok(())
    }

    /// Merges small segments of like size once [`MERGE_AT`] of them
    /// accumulate, so per-commit appends do not leave scans walking
    /// thousands of tiny batches. Size tiers (powers of [`MERGE_AT`]) keep
    /// the work per row logarithmic: a row is merged again only with
    /// segments as large as its own.
    fn merge_small(&self, state: &mut State) -> Result<()> {
        if state.compacting {
            return Ok(());
        }
        let tier = |len: usize| len.max(1).ilog(MERGE_AT);
        let mut tiers: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        // Segments whose columns are still in their files stay out: reading
        // them here would hold the table's lock through the I/O.
        for (id, s) in state.segments.iter().filter(|(_, s)| s.len() < SEGMENT_ROWS && s.in_memory()) {
            tiers.entry(tier(s.len())).or_default().push(*id);
        }
        let Some(small) = tiers.into_values().find(|ids| ids.len() >= MERGE_AT) else {
            return Ok(());
        };
        let parts: Vec<Arc<Segment>> = small.iter().map(|id| Arc::clone(&state.segments[id])).collect();
        let rows = concat_batches(&self.schema, &parts.iter().map(|s| s.all_columns()).collect::<Result<Vec<_>>>()?)?;
        let keys = concat_keys(&parts.iter().map(|s| &s.keys as &dyn Array).collect::<Vec<_>>())?;
        let begin: Vec<u64> = parts.iter().flat_map(|s| s.begins()).collect();
        let end: Vec<u64> = parts.iter().flat_map(|s| s.end.iter().map(|e| e.load(Ordering::Acquire))).collect();
        let first_id = state.next_segment;
        let merged = Segment::cut(&self.hot, &rows, &keys, &begin, &end, SEGMENT_ROWS);
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
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::table::tests::{key, schema, visible};

    #[test]
    fn small_segments_merge_and_keep_ends_working() {
        let table = ColumnTable::new(schema(), &crate::hot::HotTier::unbounded());
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
        let segments = table.state.read().segments.len();
        assert!(segments < 16, "{segments} segments");
        assert_eq!(table.version_count(), 40);
        let state = table.state.read();
        let newest = state.newest.get(&key(1), &state.segments).unwrap();
        assert_eq!(state.segments[&newest.segment()].ends()[newest.row()], OPEN);
        drop(state);
        for ts in 1..=40u64 {
            assert_eq!(visible(&table, ts, &HashSet::new()), vec![(1, ts as i64)]);
        }
    }

    #[test]
    fn invalid_batches_change_nothing() {
        let table = ColumnTable::new(schema(), &crate::hot::HotTier::unbounded());
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
