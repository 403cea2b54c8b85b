//! One table: its segments and the map from key to its newest row.
//!
//! The table's state and what reads it whole live here; each concern that
//! changes it or reads it is a submodule: `apply` (changes in), `scan`
//! (rows out), `persist` (files), `compact` (rewriting segments). The
//! submodules use this module and the crate's lower layers, never each
//! other.

mod apply;
mod compact;
mod persist;
mod scan;

use std::sync::Arc;

use arrow::array::{Array, AsArray, BinaryArray};
use arrow::compute::concat;
use arrow::datatypes::SchemaRef;
use parking_lot::RwLock;
use rustc_hash::FxHashMap;

pub use apply::{ChangeBatch, ChangeOp};
pub use compact::CompactStats;
pub use persist::PersistStats;
pub use scan::Scan;

use crate::error::Result;
use crate::hot::HotTier;
use crate::keymap::{KeyMap, Segments};
use crate::zone::{Predicate, Zone};
use persist::OnDisk;

/// Rows per segment at most: a batch applied at once is cut into segments
/// of this size, and small ones merge up to it, so zone maps stay narrow
/// enough to prune.
pub const SEGMENT_ROWS: usize = 64 * 1024;
// A version's place keeps its row in 16 bits (`keymap::Place`).
const _: () = assert!(SEGMENT_ROWS <= 1 << 16);
/// Rows per batch a scan returns at most (DataFusion's default batch size).
pub const BATCH_ROWS: usize = 8192;

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

/// Segments' key arrays end to end.
fn concat_keys(keys: &[&dyn Array]) -> Result<BinaryArray> {
    Ok(concat(keys)?.as_binary::<i32>().clone())
}

/// A table in the column store.
pub struct ColumnTable {
    schema: SchemaRef,
    state: RwLock<State>,
    /// The store's hot tier, which keeps the segments' columns.
    hot: Arc<HotTier>,
}

impl std::fmt::Debug for ColumnTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColumnTable").field("schema", &self.schema).finish_non_exhaustive()
    }
}

impl ColumnTable {
    /// An empty table whose columns `hot` keeps.
    pub(crate) fn new(schema: SchemaRef, hot: &Arc<HotTier>) -> Self {
        Self { schema, state: RwLock::default(), hot: Arc::clone(hot) }
    }

    /// The table's Arrow schema (without the key column).
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
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
}

/// A two-column table and what reads it, for the tests here and in the
/// submodules.
#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use super::*;
    use arrow::array::{ArrayRef, Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use proptest::prelude::*;

    pub(super) fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false), Field::new("v", DataType::Int64, true)]))
    }

    /// A commit: per key, `Some(v)` writes the row (insert or update), `None` deletes.
    type Commit = Vec<(i64, Option<i64>)>;

    /// The rows (k, v) visible at `ts`, sorted.
    pub(super) fn visible(table: &ColumnTable, ts: u64, exclude: &HashSet<Vec<u8>>) -> Vec<(i64, i64)> {
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

    pub(super) fn key(k: i64) -> Vec<u8> {
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
            let table = ColumnTable::new(schema(), &crate::hot::HotTier::unbounded());
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
}
