//! A table's base: its checkpoint runs, newest first.
//!
//! Each checkpoint adds a run holding what changed since the one before
//! (rows, and tombstones for keys deleted since), so for a key the newest
//! run with an entry decides: a row, or a tombstone masking the older
//! runs. Compaction merges adjacent runs into one (`store::compaction`);
//! merging down to the oldest run drops the tombstones, which then mask
//! nothing.
//!
//! A base never changes once made: a checkpoint or a compaction makes a
//! new one and the table swaps it in ([`super::Table::set_base`]).

use std::ops::Bound;
use std::sync::Arc;

use crate::error::Result;
use crate::run::Run;
use crate::snapshots::Ts;

/// One key's entry in a run: its row, or `None` for a tombstone.
pub(crate) type Entry<'a> = (&'a [u8], Option<&'a [u8]>);
/// A key and its row.
pub(crate) type KeyRow<'a> = (&'a [u8], &'a [u8]);

#[derive(Debug)]
pub(crate) struct Base {
    runs: Box<[Arc<Run>]>,
    ts: Ts,
}

impl Base {
    /// The base of `runs` (newest first, timestamps descending) holding
    /// the table's rows as of checkpoint `ts` (at or after the newest
    /// run's: a checkpoint that found nothing new to write keeps the runs);
    /// `None` for no runs.
    pub(crate) fn new(runs: Vec<Arc<Run>>, ts: Ts) -> Option<Arc<Self>> {
        debug_assert!(runs.windows(2).all(|w| w[0].ts > w[1].ts), "runs newest first");
        debug_assert!(runs.first().is_none_or(|r| r.ts <= ts), "no run newer than the base");
        (!runs.is_empty()).then(|| Arc::new(Self { runs: runs.into(), ts }))
    }

    /// The checkpoint timestamp the base holds every row as of.
    pub(crate) fn ts(&self) -> Ts {
        self.ts
    }

    /// The runs, newest first.
    pub(crate) fn runs(&self) -> &[Arc<Run>] {
        &self.runs
    }

    /// The row under `key`: the newest run with an entry for it decides.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<&[u8]>> {
        let hash = crate::bloom::hash(key);
        for run in self.runs.iter() {
            if let Some(entry) = run.find_hashed(key, hash)? {
                return Ok(entry);
            }
        }
        Ok(None)
    }

    /// The rows from `lo` on, in key order.
    pub(crate) fn rows_from(&self, lo: Bound<&[u8]>) -> Result<Merge<'_>> {
        Merge::new(&self.runs, lo)
    }
}

/// The entries of several runs (newest first) merged in key order: for
/// each key, the newest run's entry.
pub(crate) struct Merge<'a> {
    runs: &'a [Arc<Run>],
    /// Each run's position of its head.
    at: Vec<usize>,
    /// Each run's entry at its position; `None` past its end.
    heads: Vec<Option<Entry<'a>>>,
}

impl<'a> Merge<'a> {
    /// Merges `runs` (newest first) from the first key within `lo`.
    pub(crate) fn new(runs: &'a [Arc<Run>], lo: Bound<&[u8]>) -> Result<Self> {
        let mut merge = Self { runs, at: Vec::with_capacity(runs.len()), heads: Vec::with_capacity(runs.len()) };
        for run in runs {
            let mut i = match lo {
                Bound::Unbounded => 0,
                Bound::Included(k) | Bound::Excluded(k) => run.lower_bound(k)?,
            };
            let head = if i < run.len() { Some(run.entry(i)?) } else { None };
            let head = match (lo, head) {
                (Bound::Excluded(k), Some((key, _))) if key == k => {
                    i += 1;
                    if i < run.len() { Some(run.entry(i)?) } else { None }
                }
                (_, head) => head,
            };
            merge.at.push(i);
            merge.heads.push(head);
        }
        Ok(merge)
    }

    /// The next key's entry, tombstones included.
    pub(crate) fn next_entry(&mut self) -> Result<Option<Entry<'a>>> {
        // The least key among the heads; the newest run holding it wins.
        let mut best: Option<(usize, &'a [u8])> = None;
        for (r, head) in self.heads.iter().enumerate() {
            if let Some((k, _)) = head
                && best.is_none_or(|(_, b)| *k < b)
            {
                best = Some((r, k));
            }
        }
        let Some((winner, key)) = best else { return Ok(None) };
        let entry = self.heads[winner].expect("the winner has a head");
        for r in winner..self.runs.len() {
            if self.heads[r].is_some_and(|(k, _)| k == key) {
                self.at[r] += 1;
                let run = &self.runs[r];
                self.heads[r] = if self.at[r] < run.len() { Some(run.entry(self.at[r])?) } else { None };
            }
        }
        Ok(Some(entry))
    }

    /// The next row, past tombstones.
    pub(crate) fn next_row(&mut self) -> Result<Option<KeyRow<'a>>> {
        while let Some((key, row)) = self.next_entry()? {
            if let Some(row) = row {
                return Ok(Some((key, row)));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::RunWriter;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    type Entries = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

    /// Writes `layers` (oldest first) as runs at timestamps 1, 2, ...;
    /// returns them newest first.
    fn runs(dir: &std::path::Path, layers: &[Entries]) -> Vec<Arc<Run>> {
        let mut out = Vec::new();
        for (i, layer) in layers.iter().enumerate() {
            let (name, mut w) = RunWriter::create_new(dir, 1, i as Ts + 1).unwrap();
            for (k, v) in layer {
                w.push(k, v.as_deref()).unwrap();
            }
            w.finish(1, i as Ts + 1).unwrap();
            out.push(Arc::new(Run::open(&dir.join(name)).unwrap()));
        }
        out.reverse();
        out
    }

    fn layer() -> impl Strategy<Value = Entries> {
        proptest::collection::btree_map(
            proptest::collection::vec(0u8..4, 0..4),
            proptest::option::weighted(0.7, proptest::collection::vec(any::<u8>(), 0..3)),
            0..40,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Lookups and ordered walks from any bound equal a model that
        /// applies the layers oldest first, a tombstone removing its key.
        #[test]
        fn reads_match_the_layers_applied_in_order(
            layers in proptest::collection::vec(layer(), 1..5),
            probes in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..4), 0..20),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let base = Base::new(runs(dir.path(), &layers), layers.len() as Ts).unwrap();
            prop_assert_eq!(base.ts(), layers.len() as Ts);
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut newest: Entries = BTreeMap::new();
            for layer in &layers {
                for (k, v) in layer {
                    match v {
                        Some(v) => model.insert(k.clone(), v.clone()),
                        None => model.remove(k),
                    };
                    newest.insert(k.clone(), v.clone());
                }
            }
            for k in newest.keys().chain(&probes) {
                prop_assert_eq!(base.get(k).unwrap(), model.get(k).map(Vec::as_slice));
            }
            let walk = |lo: Bound<&[u8]>| {
                let mut rows = Vec::new();
                let mut merge = base.rows_from(lo).unwrap();
                while let Some((k, v)) = merge.next_row().unwrap() {
                    rows.push((k.to_vec(), v.to_vec()));
                }
                rows
            };
            let all: Vec<_> = model.clone().into_iter().collect();
            prop_assert_eq!(walk(Bound::Unbounded), all);
            for p in &probes {
                let from: Vec<_> = model.range::<[u8], _>((Bound::Included(p.as_slice()), Bound::Unbounded)).map(|(k, v)| (k.clone(), v.clone())).collect();
                prop_assert_eq!(walk(Bound::Included(p)), from);
                let after: Vec<_> = model.range::<[u8], _>((Bound::Excluded(p.as_slice()), Bound::Unbounded)).map(|(k, v)| (k.clone(), v.clone())).collect();
                prop_assert_eq!(walk(Bound::Excluded(p)), after);
            }
            // Entries, tombstones included: the newest layer's entry per key.
            let mut merge = Merge::new(base.runs(), Bound::Unbounded).unwrap();
            let mut entries = Vec::new();
            while let Some((k, v)) = merge.next_entry().unwrap() {
                entries.push((k.to_vec(), v.map(<[u8]>::to_vec)));
            }
            prop_assert_eq!(entries, newest.into_iter().collect::<Vec<_>>());
        }
    }
}
