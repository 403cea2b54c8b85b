//! Compaction: merging adjacent runs of a table into one.
//!
//! Each checkpoint adds a run per changed table, so reads would look
//! through ever more runs. After each checkpoint, runs merge size-tiered:
//! [`FAN_IN`] adjacent runs of one size tier (sizes within a factor of
//! [`FAN_IN`]) become one, so a row is rewritten about once per tier
//! (log base [`FAN_IN`] of the table's size over [`TIER_BYTES`]) and a table
//! keeps a few runs per tier. [`Store::compact`] merges each table's runs
//! into one. A merge keeps the newest entry of each key and drops
//! tombstones when it reaches the oldest run (nothing older is left for
//! them to mask). Runs are immutable: the merged run is written beside
//! them, the manifest switches to it, then the table does; readers of the
//! old runs keep their maps until they finish.
//!
//! Merges run under the checkpoint lock, after the checkpoint that made
//! them due: the next checkpoint (and a backup) waits for them. A merge of
//! the top tier rewrites about the whole table, so a checkpoint can then
//! come late by that long (the log and memory grow meanwhile).

use std::ops::{Bound, Range};
use std::path::Path;
use std::sync::Arc;

use super::Store;
use super::checkpoint::{CheckpointInfo, run_entries};
use crate::error::{Result, failpoint, injected};
use crate::manifest::{self, Manifest};
use crate::run::{Run, RunWriter};
use crate::table::{Base, Merge, Table};

/// Runs merged at a time, and the size ratio between tiers.
const FAN_IN: usize = 4;
/// Runs smaller than this are all of the lowest tier.
const TIER_BYTES: u64 = 1 << 20;
/// More runs than this in a table (sizes that never line up in tiers)
/// merge the adjacent pair with the least bytes.
const MAX_RUNS: usize = 16;
/// Entries merged between checks that the store is still open.
const CHECK_EVERY: usize = 1 << 16;

fn tier(bytes: u64) -> u32 {
    let mut tier = 0;
    let mut size = bytes / TIER_BYTES;
    while size > 0 {
        size /= FAN_IN as u64;
        tier += 1;
    }
    tier
}

/// Which adjacent runs to merge next, given their sizes newest first:
/// the newest [`FAN_IN`] or more adjacent runs of one tier, else (past
/// [`MAX_RUNS`]) the adjacent pair with the least bytes.
pub(crate) fn plan(sizes: &[u64]) -> Option<Range<usize>> {
    let mut start = 0;
    for i in 1..=sizes.len() {
        if i == sizes.len() || tier(sizes[i]) != tier(sizes[start]) {
            if i - start >= FAN_IN {
                return Some(start..i);
            }
            start = i;
        }
    }
    if sizes.len() > MAX_RUNS {
        let i = (0..sizes.len() - 1).min_by_key(|&i| sizes[i] + sizes[i + 1])?;
        return Some(i..i + 2);
    }
    None
}

impl Store {
    /// Merges each table's runs into one (dropping the tombstones), so a
    /// read that misses memory probes a single run. Commits and reads go
    /// on meanwhile (reads use the old runs until the merged one replaces
    /// them); checkpoints and backups wait. Checkpoints merge runs by size
    /// on their own; this is for after a bulk load or a mass delete. An
    /// in-memory store, or one without a checkpoint yet, has nothing to
    /// merge. A table whose merge fails keeps its runs; the others are
    /// still merged, and the first error is returned.
    pub fn compact(&self) -> Result<CheckpointInfo> {
        self.check_open()?;
        let Some(dir) = &self.inner.dir else { return Ok(CheckpointInfo::default()) };
        let mut checkpoint = self.inner.checkpoint.lock();
        self.check_open()?;
        let result = self.compact_locked(dir, &mut checkpoint, true);
        self.inner.summary.lock().last_error = result.as_ref().err().map(ToString::to_string);
        result.map(|()| self.checkpoint_info())
    }

    /// Merges runs of every table in the checkpoint: all of each table's
    /// (`full`) or as [`plan`] says. Each merge switches the manifest.
    pub(super) fn compact_locked(&self, dir: &Path, checkpoint: &mut Option<Manifest>, full: bool) -> Result<()> {
        let Some(manifest) = checkpoint else { return Ok(()) };
        let mut first_error = None;
        for i in 0..manifest.tables.len() {
            // A table dropped or altered since the checkpoint keeps its runs
            // until the next one leaves it out.
            let table = self.inner.catalog.read().by_id.get(&manifest.tables[i].id).cloned();
            let Some(table) = table.filter(|t| !t.is_index) else { continue };
            loop {
                let Some(base) = table.base() else { break };
                // The table's base is the manifest's (both change only
                // under the checkpoint lock), checked all the same.
                if run_entries(Some(&base)) != manifest.tables[i].runs {
                    break;
                }
                let runs = base.runs();
                let range = if full {
                    Some(0..runs.len()).filter(|r| r.len() > 1)
                } else {
                    plan(&runs.iter().map(|r| r.size()).collect::<Vec<_>>())
                };
                let Some(range) = range else { break };
                if let Err(e) = self.merge(dir, manifest, i, &table, &base, range) {
                    // Closing stops every merge; other errors stop this table's.
                    if matches!(e, crate::Error::Closed) {
                        return Err(e);
                    }
                    first_error.get_or_insert(e);
                    break;
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Merges `base`'s runs in `range` into one run, then switches the
    /// manifest (`manifest.tables[i]` is `table`) and the table to it and
    /// removes the merged runs' files.
    fn merge(&self, dir: &Path, manifest: &mut Manifest, i: usize, table: &Table, base: &Base, range: Range<usize>) -> Result<()> {
        let runs = base.runs();
        let keep_tombstones = range.end < runs.len();
        let ts = runs[range.start].ts;
        let (name, mut writer) = RunWriter::create_new(dir, table.id, ts)?;
        let path = dir.join(&name);
        let written = (|| {
            let mut merge = Merge::new(&runs[range.clone()], Bound::Unbounded)?;
            let mut seen = 0usize;
            while let Some((key, row)) = merge.next_entry()? {
                if row.is_some() || keep_tombstones {
                    writer.push(key, row)?;
                }
                seen += 1;
                if seen.is_multiple_of(CHECK_EVERY) {
                    self.check_open()?;
                }
            }
            if failpoint("compaction::run") {
                return Err(injected("compaction::run").into());
            }
            let merged = match writer.len() {
                0 => None,
                _ => {
                    writer.finish(table.id, ts)?;
                    Some(Arc::new(Run::open(&path)?))
                }
            };
            let mut runs_now: Vec<Arc<Run>> = runs[..range.start].to_vec();
            runs_now.extend(merged);
            runs_now.extend(runs[range.end..].iter().cloned());
            let merged_base = Base::new(runs_now, base.ts());
            omen_files::sync_dir(dir)?;
            let mut next = manifest.clone();
            next.tables[i].runs = run_entries(merged_base.as_deref());
            if failpoint("compaction::manifest") {
                return Err(injected("compaction::manifest").into());
            }
            next.store(dir)?;
            Ok((next, merged_base))
        })();
        let (next, merged_base) = match written {
            Ok(done) => done,
            Err(e) => {
                manifest::remove_failed_run(dir, &path);
                return Err(e);
            }
        };
        table.set_base(merged_base);
        self.set_summary(&next);
        *manifest = next;
        if failpoint("compaction::cleanup") {
            return Err(injected("compaction::cleanup").into());
        }
        let keep: Vec<&str> = manifest.runs().collect();
        manifest::remove_unnamed_runs(dir, &keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Merging the newer runs keeps their tombstones: the oldest run still
    /// holds the deleted key's row, which they mask (across a reopen too).
    #[test]
    fn a_merge_short_of_the_oldest_run_keeps_its_tombstones() {
        use crate::{ColumnDef, DataType, StoreOptions, TableSchema, Transaction, Value, encode_key};
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            dir: Some(dir.path().into()),
            checkpoint_wal_bytes: 0,
            gc_interval: std::time::Duration::ZERO,
            ..StoreOptions::default()
        };
        let store = Store::open(options.clone()).unwrap();
        let columns = vec![ColumnDef::new("k", DataType::Int64).not_null(), ColumnDef::new("v", DataType::Int64)];
        let (t, _) = store.create_table(TableSchema { name: "t".into(), columns, primary_key: vec![0] }).unwrap();
        let key = |k: i64| encode_key(&[Value::Int64(k)], &[0]);
        let step = |f: &dyn Fn(&mut Transaction)| {
            let mut txn = store.begin().unwrap();
            f(&mut txn);
            txn.commit().unwrap();
            store.checkpoint().unwrap();
        };
        step(&|txn| {
            for k in 0..100 {
                txn.insert(t, vec![Value::Int64(k), Value::Int64(k)]).unwrap();
            }
        });
        step(&|txn| assert!(txn.delete(t, &key(5)).unwrap()));
        step(&|txn| txn.upsert(t, vec![Value::Int64(7), Value::Int64(-7)]).unwrap());
        assert_eq!(store.checkpoint_info().runs, 3);
        {
            let mut checkpoint = store.inner.checkpoint.lock();
            let manifest = checkpoint.as_mut().unwrap();
            let table = store.table_by_id(t).unwrap();
            let base = table.base().unwrap();
            store.merge(dir.path(), manifest, 0, &table, &base, 0..2).unwrap();
        }
        let check = |s: &Store| {
            assert_eq!(s.checkpoint_info().runs, 2);
            let txn = s.begin().unwrap();
            assert_eq!(txn.get(t, &key(5)).unwrap(), None, "the tombstone still masks the oldest run");
            assert_eq!(txn.get(t, &key(7)).unwrap(), Some(vec![Value::Int64(7), Value::Int64(-7)]));
            assert_eq!(txn.scan(t, Bound::Unbounded, Bound::Unbounded).unwrap().len(), 99);
        };
        check(&store);
        store.close().unwrap();
        drop(store);
        check(&Store::open(options).unwrap());
    }

    #[test]
    fn tiers_grow_by_the_fan_in() {
        assert_eq!((tier(0), tier(TIER_BYTES - 1), tier(TIER_BYTES)), (0, 0, 1));
        assert_eq!((tier(4 * TIER_BYTES - 1), tier(4 * TIER_BYTES), tier(16 * TIER_BYTES)), (1, 2, 3));
    }

    #[test]
    fn plans_merge_the_newest_group_of_one_tier() {
        let mb = TIER_BYTES;
        assert_eq!(plan(&[]), None);
        assert_eq!(plan(&[10, 10, 10]), None);
        assert_eq!(plan(&[10, 10, 10, 10]), Some(0..4));
        assert_eq!(plan(&[10, 10, 10, 2 * mb, 2 * mb, 3 * mb, 2 * mb, 100 * mb]), Some(3..7));
        assert_eq!(plan(&[10, 10, 10, mb, 100 * mb]), None);
    }

    proptest! {
        /// Checkpoints of random sizes, each followed by the merges the
        /// plan asks for: a table keeps few runs, and each byte is merged
        /// a bounded number of times (write amplification).
        #[test]
        fn runs_stay_few_and_bytes_are_rewritten_a_bounded_number_of_times(
            deltas in proptest::collection::vec(1u64..(8 * TIER_BYTES), 1..300),
        ) {
            let mut runs: Vec<u64> = Vec::new();
            let (mut written, mut merged) = (0u64, 0u64);
            let checkpoints = deltas.len() as u64;
            for d in deltas {
                runs.insert(0, d);
                written += d;
                while let Some(r) = plan(&runs) {
                    let sum: u64 = runs[r.clone()].iter().sum();
                    merged += sum;
                    runs.splice(r, [sum]);
                }
                prop_assert!(runs.len() <= MAX_RUNS, "{} runs: {runs:?}", runs.len());
            }
            // Above the lowest tier a merge moves bytes up a tier (at most
            // 8 here: 2.4 GB over 1 MiB in 4x steps; pair merges past
            // MAX_RUNS add a few); in the lowest one a merge rewrites at
            // most FAN_IN MiB.
            let low = checkpoints * FAN_IN as u64 * TIER_BYTES;
            prop_assert!(merged <= 12 * written + low, "merged {merged} for {written} written");
        }
    }
}
