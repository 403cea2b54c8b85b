//! One table: its segments and the map from key to its newest row.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arrow::array::{Array, BinaryArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use parking_lot::RwLock;
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::segment::{OPEN, Segment};

/// Segments smaller than this are merged once [`MERGE_AT`] of them accumulate.
const SMALL_SEGMENT: usize = 64 * 1024;
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

#[derive(Default)]
struct State {
    segments: BTreeMap<u64, Arc<Segment>>,
    next_segment: u64,
    /// Key -> (segment id, row) of its newest version.
    newest: FxHashMap<Vec<u8>, (u64, usize)>,
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

        let mut state = self.state.write();
        let seg_id = state.next_segment;
        let mut keys: Vec<Option<Vec<u8>>> = vec![None; n];
        let mut begin = vec![0u64; n];
        let mut end = vec![OPEN; n];
        let mut pending: FxHashMap<Vec<u8>, usize> = FxHashMap::default();
        for op in batch.ops {
            match op {
                ChangeOp::End { key, ts } => {
                    if let Some(row) = pending.remove(&key) {
                        end[row] = ts;
                    } else if let Some((seg, row)) = state.newest.remove(&key)
                        && let Some(s) = state.segments.get(&seg)
                    {
                        s.end_row(row, ts);
                    }
                }
                ChangeOp::Append { row, key, ts } => {
                    begin[row] = ts;
                    keys[row] = Some(key.clone());
                    pending.insert(key, row);
                }
            }
        }
        if n == 0 {
            return Ok(());
        }
        let keys: BinaryArray = keys.iter().map(|k| k.as_deref()).collect();
        let segment = Segment { rows: batch.rows, keys, begin, end: end.into_iter().map(AtomicU64::new).collect() };
        state.next_segment += 1;
        state.segments.insert(seg_id, Arc::new(segment));
        for (key, row) in pending {
            state.newest.insert(key, (seg_id, row));
        }
        Self::merge_small(&mut state, &self.schema)
    }

    /// Merges small segments of like size once [`MERGE_AT`] of them
    /// accumulate, so per-commit appends do not leave scans walking
    /// thousands of tiny batches. Size tiers (powers of [`MERGE_AT`]) keep
    /// the work per row logarithmic: a row is merged again only with
    /// segments as large as its own.
    fn merge_small(state: &mut State, schema: &SchemaRef) -> Result<()> {
        let tier = |len: usize| len.max(1).ilog(MERGE_AT);
        let mut tiers: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for (id, s) in state.segments.iter().filter(|(_, s)| s.len() < SMALL_SEGMENT) {
            tiers.entry(tier(s.len())).or_default().push(*id);
        }
        let Some(small) = tiers.into_values().find(|ids| ids.len() >= MERGE_AT) else {
            return Ok(());
        };
        let parts: Vec<Arc<Segment>> = small.iter().map(|id| Arc::clone(&state.segments[id])).collect();
        let rows = concat_batches(schema, parts.iter().map(|s| &s.rows))?;
        let keys: BinaryArray = parts.iter().flat_map(|s| s.keys.iter()).collect();
        let begin = parts.iter().flat_map(|s| s.begin.iter().copied()).collect();
        let end = parts.iter().flat_map(|s| s.end.iter().map(|e| AtomicU64::new(e.load(std::sync::atomic::Ordering::Acquire)))).collect();
        let merged_id = state.next_segment;
        state.next_segment += 1;
        // Repoint the keys whose newest version moved: found through the
        // merged rows' own keys, so the cost follows the rows merged, not
        // the size of the table.
        let mut offset = 0;
        for (id, s) in small.iter().zip(&parts) {
            for row in 0..s.len() {
                if s.keys.is_valid(row)
                    && let Some(loc) = state.newest.get_mut(s.keys.value(row))
                    && *loc == (*id, row)
                {
                    *loc = (merged_id, offset + row);
                }
            }
            offset += s.len();
            state.segments.remove(id);
        }
        state.segments.insert(merged_id, Arc::new(Segment { rows, keys, begin, end }));
        Ok(())
    }

    /// The rows visible at snapshot `ts`, projected to `projection` (all
    /// columns if `None`), skipping keys in `exclude`. With `with_keys`, each
    /// batch has the encoded key as a last column named [`crate::KEY_COLUMN`].
    pub fn scan(&self, ts: u64, projection: Option<&[usize]>, exclude: &HashSet<Vec<u8>>, with_keys: bool) -> Result<Vec<RecordBatch>> {
        let all: Vec<usize>;
        let projection = match projection {
            Some(p) => p,
            None => {
                all = (0..self.schema.fields().len()).collect();
                &all
            }
        };
        // Scans work on the segment list of this moment; later appends begin
        // after the caller's snapshot and later ends are above it, so neither
        // changes what this scan should see.
        let segments: Vec<Arc<Segment>> = self.state.read().segments.values().cloned().collect();
        let mut out = Vec::with_capacity(segments.len());
        for s in segments {
            if let Some(b) = s.scan(ts, projection, exclude, with_keys)? {
                out.push(b);
            }
        }
        Ok(out)
    }

    /// Number of row versions held, live or not.
    pub fn version_count(&self) -> usize {
        self.state.read().segments.values().map(|s| s.len()).sum()
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
        let (seg, row) = state.newest.get(key)?;
        let s = &state.segments[seg];
        Some((s.end_of(*row), s.key_len()))
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
        for b in table.scan(ts, None, exclude, true).unwrap() {
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
        fn scans_match_a_model_at_every_snapshot(
            commits in proptest::collection::vec(proptest::collection::btree_map(0i64..12, proptest::option::weighted(0.8, 0i64..100), 1..4), 1..60),
            group in 1usize..5,
        ) {
            let commits: Vec<Commit> = commits.into_iter().map(|m| m.into_iter().collect()).collect();
            let table = ColumnTable::new(schema());
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
            }
            for (i, state) in history.iter().enumerate() {
                let expect: Vec<(i64, i64)> = state.iter().map(|(k, v)| (*k, *v)).collect();
                prop_assert_eq!(visible(&table, i as u64 + 1, &HashSet::new()), expect);
            }
            prop_assert!(visible(&table, 0, &HashSet::new()).is_empty());
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
        assert!(table.scan(1, None, &HashSet::new(), false).unwrap().is_empty());
    }
}
