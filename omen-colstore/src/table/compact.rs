//! Compaction: dropping the versions no snapshot can see any more and
//! sorting the rest by key.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::{Array, ArrayRef, BinaryArray, UInt32Array, UInt64Array};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take, take_record_batch};
use arrow::datatypes::SchemaRef;

use super::{ColumnTable, SEGMENT_ROWS, concat_keys};
use crate::error::{Error, Result};
use crate::hot::HotTier;
use crate::keymap::Place;
use crate::segment::{OPEN, Segment};

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

impl ColumnTable {
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
        let built = Self::rebuild(&self.hot, &self.schema, &sources, horizon);
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
    fn rebuild(
        hot: &Arc<HotTier>,
        schema: &SchemaRef,
        sources: &[(u64, Arc<Segment>)],
        horizon: u64,
    ) -> Result<(Vec<Segment>, Vec<(usize, usize)>, Vec<u64>)> {
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
            batches.push(take_record_batch(&s.all_columns()?, &idx)?);
            keys.push(take(&s.keys, &idx, None)?);
            for &r in &kept {
                let r = r as usize;
                begin.push(s.begin(r));
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
        Ok((Segment::cut(hot, &rows, &keys, &begin, &ends, SEGMENT_ROWS), origin, ends))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use arrow::array::{Int64Array, RecordBatch};

    use super::*;
    use crate::table::tests::{key, schema, visible};
    use crate::{ChangeBatch, ChangeOp, Predicate};

    /// A large batch is cut into segments; compaction sorts by key, so a
    /// narrow key range keeps one segment of three; keys find their
    /// versions after the move.
    #[test]
    fn compaction_sorts_by_key_so_zone_maps_prune_key_ranges() {
        let table = ColumnTable::new(schema(), &crate::hot::HotTier::unbounded());
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
        let table = Arc::new(ColumnTable::new(schema(), &crate::hot::HotTier::unbounded()));
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
}
