//! The set of column tables, and their persistence.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::datatypes::SchemaRef;
use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::files::{Codec, FileTracker};
use crate::hot::{HotMetrics, HotTier, MIN_COLUMN_BUDGET};
use crate::manifest::{Manifest, TableEntry};
use crate::table::{ColumnTable, PersistStats};

/// How to open a [`ColumnStore`].
#[derive(Debug, Clone)]
pub struct ColumnStoreOptions {
    /// Directory for segment files and the manifest; `None` keeps the
    /// store in memory (then [`ColumnStore::persist`] does nothing).
    pub dir: Option<PathBuf>,
    /// How segment files are compressed.
    pub codec: Codec,
    /// Bytes the hot tier may hold: decoded columns, plus the segments'
    /// keys, timestamps and zone maps (see [`crate::HotMetrics`]); `None`
    /// keeps every column read. At least [`crate::MIN_COLUMN_BUDGET`], and
    /// only with a `dir` (columns leave memory only for a file).
    pub memory_budget: Option<u64>,
    /// What decides which columns stay in memory.
    pub policy: omen_tier::PolicyKind,
    /// A file to record every column access to (`omen_tier::trace`'s
    /// format), for the policy simulator.
    pub trace: Option<PathBuf>,
    /// Segments a scan has the background reader load ahead of the one it
    /// reads (their projected columns, where not in memory); 0 turns
    /// read-ahead off. Default [`DEFAULT_READ_AHEAD`].
    pub read_ahead: usize,
    /// After each scan, load the columns the policy predicts the next
    /// statements will read (a dashboard's repeating query, a hot range)
    /// before they arrive, within the budget. Only with a budget, and only
    /// policies that predict (the learned one). Default false: see the
    /// crate's README for what it did in the simulator.
    pub predictive_warming: bool,
}

/// Segments a scan loads ahead by default: the next two, so one is being
/// decoded while the scan reads the other.
pub const DEFAULT_READ_AHEAD: usize = 2;

impl Default for ColumnStoreOptions {
    fn default() -> Self {
        Self {
            dir: None,
            codec: Codec::default(),
            memory_budget: None,
            policy: Default::default(),
            trace: None,
            read_ahead: DEFAULT_READ_AHEAD,
            predictive_warming: false,
        }
    }
}

/// The column store: tables by id (the ids the row store assigns).
#[derive(Debug)]
pub struct ColumnStore {
    tables: RwLock<HashMap<u64, Arc<ColumnTable>>>,
    /// Tables on disk not read yet: read on first use.
    unloaded: Mutex<HashMap<u64, TableEntry>>,
    options: ColumnStoreOptions,
    /// Every change at or before it is on disk.
    durable: AtomicU64,
    /// The watermark the unloaded tables' files hold exactly (the one
    /// opened with; a later persist loads them first).
    opened_at: u64,
    /// The next file number; held while a persist runs.
    next_file: Mutex<u64>,
    /// The segment files lazy segments may still read (never removed
    /// meanwhile), and damage found reading one.
    files: Arc<FileTracker>,
    /// Set by [`ColumnStore::discard_files`].
    discarded: std::sync::atomic::AtomicBool,
    /// The segments' columns in memory, within the budget.
    hot: Arc<HotTier>,
}

impl Default for ColumnStore {
    fn default() -> Self {
        Self::with_hot(ColumnStoreOptions::default(), HotTier::unbounded())
    }
}

impl ColumnStore {
    /// An empty store in memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens the store in `options.dir` (created if missing): the tables
    /// its manifest names, as of its durable watermark
    /// ([`ColumnStore::durable_watermark`]). A table's keys, timestamps and
    /// zone maps (from the Parquet statistics) are read on its first use,
    /// a segment's columns when a scan first needs them. Files no manifest
    /// names (a persist a crash interrupted) are removed. A damaged
    /// manifest is [`Error::Corruption`] naming it; a damaged segment or
    /// delete file is, when its table is first used or the segment's
    /// columns are first read.
    pub fn open(options: ColumnStoreOptions) -> Result<Self> {
        if let Some(budget) = options.memory_budget {
            if budget < MIN_COLUMN_BUDGET {
                return Err(Error::Options(format!("a column memory budget of {budget} bytes is below the least, {MIN_COLUMN_BUDGET}")));
            }
            if options.dir.is_none() {
                return Err(Error::Options("a column memory budget needs a directory: an in-memory store keeps every column".into()));
            }
        }
        let hot =
            HotTier::new(options.memory_budget, options.policy, options.trace.as_deref(), options.read_ahead, options.predictive_warming)?;
        let Some(dir) = &options.dir else { return Ok(Self::with_hot(options, hot)) };
        std::fs::create_dir_all(dir)?;
        let manifest = Manifest::load(dir)?.unwrap_or(Manifest { next_file: 1, ..Manifest::default() });
        manifest.remove_unnamed(dir, |_| false)?;
        Ok(Self {
            unloaded: Mutex::new(manifest.tables.into_iter().map(|t| (t.id, t)).collect()),
            durable: AtomicU64::new(manifest.watermark),
            opened_at: manifest.watermark,
            next_file: Mutex::new(manifest.next_file.max(1)),
            ..Self::with_hot(options, hot)
        })
    }

    fn with_hot(options: ColumnStoreOptions, hot: Arc<HotTier>) -> Self {
        Self {
            tables: RwLock::default(),
            unloaded: Mutex::default(),
            durable: AtomicU64::new(0),
            opened_at: 0,
            next_file: Mutex::new(0),
            files: Arc::default(),
            discarded: Default::default(),
            hot,
            options,
        }
    }

    /// What the hot tier holds and has done.
    pub fn hot_metrics(&self) -> HotMetrics {
        let mut metrics = self.hot.metrics();
        metrics.warm_bytes = self.options.dir.as_deref().map_or(0, crate::manifest::segment_file_bytes);
        metrics
    }

    /// Writes out the buffered part of the access trace (see
    /// [`ColumnStoreOptions::trace`]).
    pub fn flush_trace(&self) -> Result<()> {
        Ok(self.hot.flush_trace()?)
    }

    /// Creates an empty table. A column of a type the store does not hold
    /// (see the crate docs) is [`Error::Schema`].
    pub fn create_table(&self, id: u64, schema: SchemaRef) -> Result<Arc<ColumnTable>> {
        for f in schema.fields() {
            crate::type_tag::check(f.data_type()).map_err(|e| Error::Schema(format!("column {:?}: {e}", f.name())))?;
        }
        if schema.fields().len() > crate::hot::MAX_COLUMNS {
            return Err(Error::Schema(format!("{} columns; a table holds at most {}", schema.fields().len(), crate::hot::MAX_COLUMNS)));
        }
        // Lock order: `unloaded`, then `tables`.
        let unloaded = self.unloaded.lock();
        let mut tables = self.tables.write();
        if tables.contains_key(&id) || unloaded.contains_key(&id) {
            return Err(Error::TableExists(id));
        }
        let table = Arc::new(ColumnTable::new(schema, &self.hot));
        tables.insert(id, Arc::clone(&table));
        Ok(table)
    }

    /// Drops a table; snapshots and scans that hold it keep their segments.
    /// Its files go with the first persist after the last of them lets go.
    pub fn drop_table(&self, id: u64) -> Result<()> {
        let mut unloaded = self.unloaded.lock();
        let dropped = unloaded.remove(&id).is_some() | self.tables.write().remove(&id).is_some();
        if dropped { Ok(()) } else { Err(Error::UnknownTable(id)) }
    }

    /// The table with this id (read from disk the first time).
    pub fn table(&self, id: u64) -> Result<Arc<ColumnTable>> {
        if let Some(t) = self.tables.read().get(&id) {
            return Ok(Arc::clone(t));
        }
        // Read outside the locks (a load takes a while); a table dropped
        // meanwhile stays dropped, one loaded twice is kept once.
        let entry = self.unloaded.lock().get(&id).cloned();
        let (Some(entry), Some(dir)) = (entry, &self.options.dir) else { return Err(Error::UnknownTable(id)) };
        let loaded = Arc::new(ColumnTable::load(Arc::clone(&entry.schema), dir, &entry.segments, self.opened_at, &self.files, &self.hot)?);
        let mut unloaded = self.unloaded.lock();
        let mut tables = self.tables.write();
        if let Some(t) = tables.get(&id) {
            return Ok(Arc::clone(t));
        }
        if unloaded.remove(&id).is_none() {
            return Err(Error::UnknownTable(id));
        }
        tables.insert(id, Arc::clone(&loaded));
        Ok(loaded)
    }

    /// The ids and schemas of the tables.
    pub fn tables(&self) -> Vec<(u64, SchemaRef)> {
        let mut out: Vec<(u64, SchemaRef)> = self.tables.read().iter().map(|(id, t)| (*id, t.schema())).collect();
        out.extend(self.unloaded.lock().values().map(|t| (t.id, Arc::clone(&t.schema))));
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// Whether the store keeps files ([`ColumnStoreOptions::dir`]).
    pub fn is_persistent(&self) -> bool {
        self.options.dir.is_some()
    }

    /// Drops every table, on disk too: the watermark goes back to 0, the
    /// manifest is replaced by an empty one and the files go. For a store
    /// whose contents are of no use any more (its owner rebuilds it).
    pub fn clear(&self) -> Result<()> {
        let mut next_file = self.next_file.lock();
        self.unloaded.lock().clear();
        self.tables.write().clear();
        self.durable.store(0, Ordering::Release);
        self.discarded.store(false, Ordering::Release);
        self.files.clear_damage();
        if let Some(dir) = &self.options.dir {
            let empty = Manifest { watermark: 0, next_file: *next_file, tables: Vec::new() };
            empty.store(dir)?;
            empty.remove_unnamed(dir, |p| self.files.in_use(p))?;
        }
        *next_file = (*next_file).max(1);
        Ok(())
    }

    /// The first damaged segment file found reading a segment's columns
    /// since the store opened (scans of that segment fail with
    /// [`Error::Corruption`] naming it), if any. The store's files should
    /// then be rebuilt by their owner: see [`ColumnStore::discard_files`].
    pub fn damage(&self) -> Option<String> {
        self.files.damage()
    }

    /// Gives up the files: an empty manifest with watermark 0 replaces the
    /// store's, so the next open starts empty (its owner rebuilds it), and
    /// persists fail from now on. The tables stay in memory, as far as
    /// their segments were read. For a store found damaged.
    pub fn discard_files(&self) -> Result<()> {
        let next_file = self.next_file.lock();
        self.discarded.store(true, Ordering::Release);
        if let Some(dir) = &self.options.dir {
            Manifest { watermark: 0, next_file: *next_file, tables: Vec::new() }.store(dir)?;
        }
        Ok(())
    }

    /// Every change committed at or before this is on disk.
    pub fn durable_watermark(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Writes every table to disk as of `watermark`, which the caller
    /// guarantees: every change committed at or before it has been
    /// applied (changes after it may be caught too; opening drops them,
    /// and the caller replays from the watermark). Writes Parquet files
    /// for new segments and delete files for segments whose rows ended
    /// since, then the manifest naming them and the watermark, then
    /// removes files it no longer names. Applies and scans go on
    /// meanwhile; one persist at a time. The watermark never moves back: a
    /// lower one than the last persist's is taken as that one (everything
    /// up to it was applied before, so is caught again). Tables not read
    /// since opening are read first (their files hold the opening
    /// watermark's state exactly, not a later one's). An in-memory store
    /// does nothing.
    pub fn persist(&self, watermark: u64) -> Result<PersistStats> {
        let Some(dir) = &self.options.dir else { return Ok(PersistStats::default()) };
        let mut next_file = self.next_file.lock();
        if self.discarded.load(Ordering::Acquire) {
            let reason = "the store's files were given up after damage; the next open starts empty".to_string();
            return Err(Error::Corruption { file: dir.join(crate::manifest::FILE), reason });
        }
        let ids: Vec<u64> = self.unloaded.lock().keys().copied().collect();
        for id in ids {
            match self.table(id) {
                Ok(_) | Err(Error::UnknownTable(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let watermark = watermark.max(self.durable_watermark());
        let mut stats = PersistStats::default();
        let mut manifest = Manifest { watermark, next_file: 0, tables: Vec::new() };
        let tables: Vec<(u64, Arc<ColumnTable>)> = self.tables.read().iter().map(|(id, t)| (*id, Arc::clone(t))).collect();
        let mut file = *next_file;
        let mut noted = Vec::with_capacity(tables.len());
        for (id, table) in &tables {
            let (segments, files) = table.write_files(dir, self.options.codec, &mut file, &mut stats)?;
            manifest.tables.push(TableEntry { id: *id, schema: table.schema(), segments });
            noted.push(files);
        }
        manifest.tables.sort_by_key(|t| t.id);
        manifest.next_file = file;
        *next_file = file;
        omen_files::sync_dir(dir)?;
        manifest.store(dir)?;
        for ((_, table), files) in tables.iter().zip(noted) {
            table.note_files(files, dir, &self.files);
        }
        self.durable.fetch_max(watermark, Ordering::AcqRel);
        manifest.remove_unnamed(dir, |p| self.files.in_use(p))?;
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChangeBatch, ChangeOp};
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashSet};
    use std::path::Path;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false), Field::new("s", DataType::Utf8, true)]))
    }

    fn key(k: i64) -> Vec<u8> {
        k.to_be_bytes().to_vec()
    }

    fn open(dir: &Path, codec: Codec) -> ColumnStore {
        ColumnStore::open(ColumnStoreOptions { dir: Some(dir.to_path_buf()), codec, ..Default::default() }).unwrap()
    }

    /// Applies one commit at `ts` to `table` and to `live`: `Some` writes
    /// the key's row, `None` deletes it.
    fn commit(table: &ColumnTable, live: &mut BTreeMap<i64, String>, ts: u64, writes: &[(i64, Option<String>)]) {
        let (mut ks, mut ss, mut ops) = (Vec::new(), Vec::new(), Vec::new());
        for (k, v) in writes {
            if live.contains_key(k) {
                ops.push(ChangeOp::End { key: key(*k), ts });
            }
            match v {
                Some(v) => {
                    ops.push(ChangeOp::Append { row: ks.len(), key: key(*k), ts });
                    ks.push(*k);
                    ss.push(v.clone());
                    live.insert(*k, v.clone());
                }
                None => drop(live.remove(k)),
            }
        }
        let rows = RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(ks)), Arc::new(StringArray::from(ss))]).unwrap();
        table.apply(ChangeBatch { rows, ops }).unwrap();
    }

    fn visible(table: &ColumnTable, ts: u64) -> BTreeMap<i64, String> {
        let mut out = BTreeMap::new();
        for b in table.scan(ts, None, &[], &HashSet::new(), false).unwrap() {
            let k = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let s = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
            for i in 0..b.num_rows() {
                assert!(out.insert(k.value(i), s.value(i).to_owned()).is_none(), "key {} twice", k.value(i));
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Commits, persists and reopens in any order: a reopened store
        /// holds exactly the state at its durable watermark, and replaying
        /// the commits after it gives back the state before the reopen.
        #[test]
        fn reopening_gives_the_state_at_the_watermark(
            steps in proptest::collection::vec(
                prop_oneof![
                    6 => proptest::collection::vec((0i64..30, proptest::option::weighted(0.8, "[a-z]{0,3}")), 1..6).prop_map(Some),
                    1 => Just(None),
                ],
                1..40,
            ),
            persist_every in 1usize..6,
            lag in 0u64..3,
            codec in prop_oneof![Just(Codec::Zstd(1)), Just(Codec::Lz4), Just(Codec::Uncompressed)],
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut store = open(dir.path(), codec);
            let mut table = store.create_table(1, schema()).unwrap();
            let mut live = BTreeMap::new();
            let mut history: Vec<Vec<(i64, Option<String>)>> = Vec::new();
            for (i, step) in steps.into_iter().enumerate() {
                match step {
                    Some(writes) => {
                        // Last write per key wins within a commit.
                        let writes: BTreeMap<i64, Option<String>> = writes.into_iter().collect();
                        let writes: Vec<_> = writes.into_iter().collect();
                        history.push(writes.clone());
                        commit(&table, &mut live, history.len() as u64, &writes);
                        // Persisting behind what was applied: the files catch
                        // changes past the watermark, which opening drops.
                        if i % persist_every == 0 {
                            store.persist((history.len() as u64).saturating_sub(lag)).unwrap();
                        }
                    }
                    None => {
                        let w = store.durable_watermark();
                        drop(table);
                        store = open(dir.path(), codec);
                        // Never persisted: the caller creates it again.
                        table = store.table(1).or_else(|_| store.create_table(1, schema())).unwrap();
                        // Exactly the state at the watermark...
                        let mut replayed = BTreeMap::new();
                        let mut model = BTreeMap::new();
                        for (ts, writes) in history.iter().enumerate().take(w as usize) {
                            let _ = ts;
                            for (k, v) in writes {
                                match v {
                                    Some(v) => drop(model.insert(*k, v.clone())),
                                    None => drop(model.remove(k)),
                                }
                            }
                        }
                        prop_assert_eq!(visible(&table, history.len() as u64), model.clone());
                        // ...and the commits after it replay onto it (checked
                        // against `live` below).
                        replayed.clone_from(&model);
                        for (ts, writes) in history.iter().enumerate().skip(w as usize) {
                            commit(&table, &mut replayed, ts as u64 + 1, writes);
                        }
                    }
                }
                prop_assert_eq!(visible(&table, history.len() as u64), live.clone());
            }
        }
    }

    /// A type the manifest has no tag for is refused when the table is
    /// made, not when a persist cannot write it.
    #[test]
    fn tables_of_types_the_store_does_not_hold_are_refused() {
        let store = ColumnStore::new();
        let list = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new_list("l", Field::new_list_field(DataType::Int64, true), true),
        ]));
        assert!(matches!(store.create_table(1, list), Err(Error::Schema(e)) if e.contains("\"l\"")));
        assert!(store.tables().is_empty());
    }

    #[test]
    fn damaged_files_are_corruption_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), Codec::default());
        let table = store.create_table(7, schema()).unwrap();
        let mut live = BTreeMap::new();
        commit(&table, &mut live, 1, &(0..100).map(|k| (k, Some(format!("v{k}")))).collect::<Vec<_>>());
        store.persist(1).unwrap();
        commit(&table, &mut live, 2, &[(3, None), (4, Some("new".into()))]);
        let stats = store.persist(2).unwrap();
        assert_eq!((stats.segment_files, stats.delete_files), (1, 1), "a new segment and the first one's delete file");
        drop((table, store));
        let files: Vec<std::path::PathBuf> = {
            let mut f: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
            f.sort();
            f
        };
        let reopened = open(dir.path(), Codec::default());
        assert_eq!(visible(&reopened.table(7).unwrap(), 2), live);
        drop(reopened);
        for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "parquet" || e == "omd")) {
            let good = std::fs::read(path).unwrap();
            for at in [good.len() / 2, good.len() - 5] {
                let mut bad = good.clone();
                bad[at] ^= 0x5a;
                std::fs::write(path, &bad).unwrap();
                let store = open(dir.path(), Codec::default());
                match store.table(7) {
                    Err(Error::Corruption { file, .. }) => assert_eq!(&file, path),
                    // Columns are read at the first scan: damage found then names the file too. A
                    // flip Parquet's format does not notice must not change the rows silently in the
                    // parts that decide them (keys and timestamps): the table then reads.
                    Ok(t) => match t.scan(2, None, &[], &HashSet::new(), false) {
                        Err(Error::Corruption { file, .. }) => assert_eq!(&file, path),
                        Ok(batches) => {
                            assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), live.len(), "{} at {at}", path.display())
                        }
                        Err(e) => panic!("{}: {e}", path.display()),
                    },
                    Err(e) => panic!("{}: {e}", path.display()),
                }
            }
            std::fs::write(path, &good[..good.len() / 3]).unwrap();
            assert!(matches!(open(dir.path(), Codec::default()).table(7), Err(Error::Corruption { .. })), "{} cut", path.display());
            std::fs::write(path, &good).unwrap();
        }
        let manifest = dir.path().join(crate::manifest::FILE);
        let good = std::fs::read(&manifest).unwrap();
        std::fs::write(&manifest, &good[..good.len() - 1]).unwrap();
        assert!(matches!(
            ColumnStore::open(ColumnStoreOptions { dir: Some(dir.path().into()), ..Default::default() }),
            Err(Error::Corruption { .. })
        ));
    }

    #[test]
    fn segments_load_when_a_scan_first_needs_them() {
        use crate::zone::{Predicate, Test};
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
            Field::new("f", DataType::Float64, true),
        ]));
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), Codec::default());
        let table = store.create_table(1, Arc::clone(&schema)).unwrap();
        let n = 2 * crate::SEGMENT_ROWS + 1000;
        let ks: Vec<i64> = (0..n as i64).collect();
        let rows = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(ks.clone())),
                Arc::new(StringArray::from_iter(ks.iter().map(|k| (k % 7 != 0).then(|| format!("s{k:06}"))))),
                Arc::new(arrow::array::Float64Array::from_iter_values(ks.iter().map(|&k| if k == 5 { f64::NAN } else { k as f64 }))),
            ],
        )
        .unwrap();
        let ops = ks.iter().enumerate().map(|(row, &k)| ChangeOp::Append { row, key: key(k), ts: 1 }).collect();
        table.apply(ChangeBatch { rows, ops }).unwrap();
        let before = table.statistics();
        store.persist(1).unwrap();
        drop((table, store));

        let store = open(dir.path(), Codec::default());
        let table = store.table(1).unwrap();
        let stats = table.statistics();
        assert_eq!((stats.segments, stats.segments_in_memory, stats.live_rows), (3, 0, n));
        // Keys and timestamps only: the columns (at least 20 bytes a row:
        // two 8-byte numbers and a string's offset) stay on disk.
        assert!(stats.bytes + 20 * n < before.bytes, "keys and timestamps only: {} of {}", stats.bytes, before.bytes);
        // The file's statistics give the zone maps: exact for integers and
        // strings; floats' bounds are unknown (Parquet leaves NaN out).
        for c in 0..2 {
            let (a, b) = (&stats.columns[c], &before.columns[c]);
            assert_eq!(
                (a.min.as_ref(), a.max.as_ref(), a.null_count, a.rows),
                (b.min.as_ref(), b.max.as_ref(), b.null_count, b.rows),
                "column {c}"
            );
        }
        assert!(stats.columns[2].min.is_none() && stats.columns[2].max.is_none());
        // A key range in the middle segment reads that segment only.
        let lit = |v: i64| Arc::new(Int64Array::from(vec![v])) as arrow::array::ArrayRef;
        let range = [Predicate { column: 0, test: Test::Between(lit(70_000), lit(70_010)) }];
        let got: usize = table.scan(1, Some(&[0]), &range, &HashSet::new(), false).unwrap().iter().map(|b| b.num_rows()).sum();
        assert_eq!(got, crate::SEGMENT_ROWS);
        assert_eq!(table.statistics().segments_in_memory, 1);
        // A float predicate skips no segment of a reopened table: the file's
        // bounds leave NaN out, and NaN is above every number.
        let nan =
            [Predicate { column: 2, test: Test::Cmp(crate::zone::CmpOp::Gt, Arc::new(arrow::array::Float64Array::from(vec![1e300]))) }];
        let got: usize = table.scan(1, Some(&[2]), &nan, &HashSet::new(), false).unwrap().iter().map(|b| b.num_rows()).sum();
        assert_eq!((got, table.statistics().segments_in_memory), (n, 3));
    }

    /// A persisted table of 100 rows in one segment, reopened.
    fn reopened(dir: &Path) -> (ColumnStore, BTreeMap<i64, String>) {
        let store = open(dir, Codec::default());
        let table = store.create_table(1, schema()).unwrap();
        let mut live = BTreeMap::new();
        commit(&table, &mut live, 1, &(0..100).map(|k| (k, Some(format!("v{k}")))).collect::<Vec<_>>());
        store.persist(1).unwrap();
        drop((table, store));
        (open(dir, Codec::default()), live)
    }

    fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut f: Vec<_> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "parquet")).collect();
        f.sort();
        f
    }

    #[test]
    fn a_dropped_tables_files_stay_while_a_snapshot_may_read_them() {
        let dir = tempfile::tempdir().unwrap();
        let (store, live) = reopened(dir.path());
        let held = store.table(1).unwrap();
        assert_eq!(held.statistics().segments_in_memory, 0);
        store.drop_table(1).unwrap();
        store.persist(2).unwrap();
        assert_eq!(segment_files(dir.path()).len(), 1, "still read by the held table");
        assert_eq!(visible(&held, 1), live);
        drop(held);
        store.persist(3).unwrap();
        assert!(segment_files(dir.path()).is_empty());
    }

    #[test]
    fn damage_found_reading_columns_gives_the_files_up() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = reopened(dir.path());
        drop(store);
        // The first column's pages, at the start of the file: the keys and
        // timestamps, read at open, are intact.
        let file = &segment_files(dir.path())[0];
        let mut bytes = std::fs::read(file).unwrap();
        bytes[4..24].fill(0xff);
        std::fs::write(file, &bytes).unwrap();
        let store = open(dir.path(), Codec::default());
        let table = store.table(1).unwrap();
        assert_eq!(store.damage(), None);
        match table.scan(1, None, &[], &HashSet::new(), false) {
            Err(Error::Corruption { file: named, .. }) => assert_eq!(&named, file),
            other => panic!("{other:?}"),
        }
        assert!(store.damage().is_some_and(|d| d.contains("seg-")));
        store.discard_files().unwrap();
        assert!(matches!(store.persist(2), Err(Error::Corruption { .. })));
        drop((table, store));
        let store = open(dir.path(), Codec::default());
        assert_eq!((store.durable_watermark(), store.tables().len()), (0, 0), "the next open starts empty");
    }
}
