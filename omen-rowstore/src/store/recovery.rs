//! Opening a store: the manifest's checkpoint loaded (its runs mapped and
//! checked against it), the log replayed after it, the secondary indexes
//! rebuilt from the rows, and the background threads started.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use super::catalog::{Catalog, fill};
use super::checkpoint::{Summary, checkpoint_in_background};
use super::commit::CommitState;
use super::gc::collect_in_background;
use super::{Inner, SNAPSHOT_SLOTS, Store, StoreOptions};
use crate::alter;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::manifest::{self, Manifest};
use crate::run::Run;
use crate::snapshots::{Clock, Snapshots, Ts};
use crate::table::{Base, Encoded, Table};
use crate::wal::{LogIo, Wal, WalOptions, WalRecord};

impl Store {
    /// Opens a store: loads its latest checkpoint, if any, and replays the
    /// log after it.
    pub fn open(options: StoreOptions) -> Result<Self> {
        Self::open_with_io(options, None)
    }

    /// [`Store::open`] with the log's I/O backend given (tests inject faults
    /// through one); `None` takes [`StoreOptions::io_backend`].
    pub(crate) fn open_with_io(options: StoreOptions, io: Option<Arc<dyn LogIo>>) -> Result<Self> {
        let mut recovery = Recovery { commit: CommitState { next_table_id: 1, ..CommitState::default() }, ..Recovery::default() };
        let mut summary = Summary::default();
        let mut checkpoint = None;
        let wal = match &options.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                let mut manifest = Manifest::load(dir)?;
                if let Some(m) = &mut manifest {
                    recovery.load(dir, m)?;
                    summary = Summary::of(m);
                }
                // Only once every run the manifest names has opened: files
                // it does not name are left by a crash mid-checkpoint.
                let names: Vec<&str> = manifest.iter().flat_map(Manifest::runs).collect();
                manifest::remove_unnamed_runs(dir, &names)?;
                let after = recovery.last;
                checkpoint = manifest;
                let io = match io {
                    Some(io) => io,
                    None => crate::wal::backend(options.io_backend)?,
                };
                let wal_options = WalOptions { durability: options.durability, io, segment_bytes: options.wal_segment_bytes };
                Some(Wal::open(dir, wal_options, after, |rec| recovery.apply(rec))?)
            }
            None => None,
        };
        let Recovery { catalog, mut commit, last } = recovery;
        commit.last_ts = last;
        let inner = Inner {
            dir: options.dir.clone(),
            catalog: RwLock::new(catalog),
            clock: Clock::new(last),
            commit: Mutex::new(commit),
            snapshots: Snapshots::new(SNAPSHOT_SLOTS),
            next_txn: AtomicU64::new(1),
            wal,
            closed: AtomicBool::new(false),
            gc_thread: Mutex::new(None),
            checkpoint: Mutex::new(checkpoint),
            summary: Mutex::new(summary),
            checkpoint_thread: Mutex::new(None),
            release_hooks: RwLock::default(),
        };
        let store = Self { inner: Arc::new(inner) };
        // Index entries are neither logged nor checkpointed: build them from the rows.
        let tables: Vec<Arc<Table>> = store.inner.catalog.read().by_id.values().filter(|t| !t.is_index).cloned().collect();
        for t in tables {
            for ix in t.indexes().iter() {
                fill(&t, ix, last).map_err(|e| Error::Corruption {
                    file: options.dir.clone().unwrap_or_default(),
                    offset: 0,
                    reason: format!("rebuilding index {:?}: {e}", ix.def.name),
                })?;
            }
        }
        if !options.gc_interval.is_zero() {
            let weak = Arc::downgrade(&store.inner);
            let thread = std::thread::Builder::new()
                .name("omen-rowstore-gc".into())
                .spawn(move || collect_in_background(&weak, options.gc_interval))?;
            *store.inner.gc_thread.lock() = Some(thread);
        }
        if store.inner.wal.is_some() && (options.checkpoint_wal_bytes > 0 || options.memory_budget > 0) {
            let weak = Arc::downgrade(&store.inner);
            let thread = std::thread::Builder::new()
                .name("omen-rowstore-checkpoint".into())
                .spawn(move || checkpoint_in_background(&weak, options.checkpoint_wal_bytes, options.memory_budget))?;
            *store.inner.checkpoint_thread.lock() = Some(thread);
        }
        Ok(store)
    }
}

/// The state an opening store rebuilds: the checkpoint's tables, then
/// every logged record after it.
#[derive(Default)]
struct Recovery {
    catalog: Catalog,
    commit: CommitState,
    /// The newest timestamp loaded or replayed.
    last: Ts,
}

impl Recovery {
    /// Loads the checkpoint `manifest` names (noting the runs' sizes where
    /// a version-1 manifest lacks them).
    fn load(&mut self, dir: &Path, manifest: &mut Manifest) -> Result<()> {
        let ts = manifest.ts;
        for entry in &mut manifest.tables {
            let table = Arc::new(Table::new(entry.id, entry.schema.clone(), false));
            table.next_row_id.store(entry.next_row_id, Ordering::Relaxed);
            let mut runs = Vec::with_capacity(entry.runs.len());
            for expect in &mut entry.runs {
                let path = dir.join(&expect.name);
                let run = Run::open(&path)?;
                let size = if expect.bytes == 0 { run.size() } else { expect.bytes };
                if (run.table, run.ts, run.len() as u64, run.size()) != (entry.id, expect.ts, expect.entries, size) {
                    let reason = format!(
                        "run is table {} at {} with {} entries in {} bytes, the manifest expects {} at {} with {} in {size}",
                        run.table,
                        run.ts,
                        run.len(),
                        run.size(),
                        entry.id,
                        expect.ts,
                        expect.entries,
                    );
                    return Err(Error::Corruption { file: path, offset: 0, reason });
                }
                expect.bytes = size;
                runs.push(Arc::new(run));
            }
            // Rows stay in the runs; the log replayed next gives the keys it
            // writes chains.
            table.set_base(Base::new(runs, ts));
            if self.catalog.by_name.insert(entry.schema.name.clone(), entry.id).is_some() || self.catalog.by_id.contains_key(&entry.id) {
                return Err(manifest_corrupt(dir, format!("table {:?} (id {}) listed twice", entry.schema.name, entry.id)));
            }
            self.catalog.by_id.insert(entry.id, Arc::clone(&table));
            for (id, def) in &entry.indexes {
                def.validate(&table.schema).map_err(|e| manifest_corrupt(dir, e.to_string()))?;
                if self.catalog.indexes.contains_key(&def.name) || self.catalog.by_id.contains_key(id) {
                    return Err(manifest_corrupt(dir, format!("index {:?} (id {id}) listed twice", def.name)));
                }
                let entries = Arc::new(Table::new(*id, Index::entries_schema(&def.name), true));
                self.catalog.add_index(&table, Arc::new(Index { def: def.clone(), entries, ready: 0 }));
            }
        }
        self.commit.next_table_id = manifest.next_table_id;
        self.catalog.retired = manifest.retired.clone();
        if let Some(max) = self.catalog.by_id.keys().max().filter(|&&max| max >= manifest.next_table_id) {
            return Err(manifest_corrupt(dir, format!("table id {max} is not below the next id {}", manifest.next_table_id)));
        }
        self.last = ts;
        Ok(())
    }

    /// Applies one logged record; an error says why it cannot apply.
    fn apply(&mut self, rec: WalRecord) -> std::result::Result<(), String> {
        let ts = rec.ts();
        self.last = ts;
        let (catalog, commit) = (&mut self.catalog, &mut self.commit);
        match rec {
            WalRecord::CreateTable { id, schema, .. } => {
                if catalog.by_id.contains_key(&id) || catalog.by_name.contains_key(&schema.name) {
                    return Err(format!("table {:?} (id {id}) created twice", schema.name));
                }
                catalog.by_name.insert(schema.name.clone(), id);
                catalog.by_id.insert(id, Arc::new(Table::new(id, schema, false)));
                commit.next_table_id = commit.next_table_id.max(id.checked_add(1).ok_or("table id out of range")?);
            }
            WalRecord::DropTable { id, .. } => {
                catalog.remove_table(id, ts).ok_or_else(|| format!("drop of unknown table {id}"))?;
            }
            WalRecord::CreateIndex { id, table, def, .. } => {
                let t = catalog.by_id.get(&table).filter(|t| !t.is_index).cloned();
                let t = t.ok_or_else(|| format!("index {:?} on unknown table {table}", def.name))?;
                def.validate(&t.schema).map_err(|e| e.to_string())?;
                if catalog.indexes.contains_key(&def.name) || catalog.by_id.contains_key(&id) {
                    return Err(format!("index {:?} (id {id}) created twice", def.name));
                }
                let entries = Arc::new(Table::new(id, Index::entries_schema(&def.name), true));
                catalog.add_index(&t, Arc::new(Index { def, entries, ready: 0 }));
                commit.next_table_id = commit.next_table_id.max(id.checked_add(1).ok_or("index id out of range")?);
            }
            WalRecord::DropIndex { id, .. } => {
                let name = catalog.indexes.iter().find(|(_, (_, e))| *e == id).map(|(n, _)| n.clone());
                let name = name.ok_or_else(|| format!("drop of unknown index {id}"))?;
                catalog.remove_index(&name);
            }
            WalRecord::AlterTable { id, new_id, reshape, .. } => {
                let old = catalog.by_id.get(&id).filter(|t| !t.is_index).cloned();
                let old = old.ok_or_else(|| format!("alter of unknown table {id}"))?;
                // The rebuilt table's indexes take the ids after `new_id`.
                new_id.checked_add(1 + old.indexes().len() as u64).ok_or("table id out of range")?;
                let rebuilt = alter::rebuild(&old, &reshape, new_id, ts, false).map_err(|e| format!("altering table {id}: {e}"))?;
                commit.next_table_id = commit.next_table_id.max(new_id + 1 + rebuilt.indexes.len() as u64);
                catalog.replace_table(id, rebuilt, ts, 0);
            }
            WalRecord::Commit { writes, .. } => {
                for w in writes {
                    let table = catalog.by_id.get(&w.table).ok_or_else(|| format!("write to unknown table {}", w.table))?;
                    if table.schema.primary_key.is_empty() {
                        let id =
                            w.key.as_slice().try_into().map(u64::from_be_bytes).map_err(|_| "row id key of wrong length".to_string())?;
                        table.next_row_id.fetch_max(id + 1, Ordering::Relaxed);
                    }
                    let row = w.op.into_row().map(Encoded::Shared);
                    // No snapshot is open during replay: keep only the newest
                    // version, and no key a delete left dead.
                    let deleted = row.is_none();
                    match table.lock(&w.key, 0, ts, crate::table::WriteKind::Upsert) {
                        Ok((chain, _)) => drop(chain.install(ts, row, ts)),
                        Err(crate::table::LockError::Read(e)) => return Err(e.to_string()),
                        // No other writer during replay.
                        Err(_) => {}
                    }
                    if deleted {
                        table.unlink_if_dead(&w.key, ts);
                    }
                }
            }
        }
        Ok(())
    }
}

fn manifest_corrupt(dir: &Path, reason: String) -> Error {
    Error::Corruption { file: dir.join(manifest::FILE), offset: 0, reason }
}
