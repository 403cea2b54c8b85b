//! Checkpoints: what changed since the last one written as a run per
//! table, a manifest naming every table's runs, and the log before it
//! removed. A background thread starts them as the log grows.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{Inner, Registered, Store};
use crate::error::{Result, failpoint, injected};
use crate::index::IndexDef;
use crate::manifest::{self, Manifest, RunEntry, TableEntry};
use crate::run::{Run, RunWriter};
use crate::schema::TableId;
use crate::snapshots::Ts;
use crate::table::{Base, Table};
use crate::wal::Wal;

/// What the latest checkpoint holds (see [`Store::checkpoint`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckpointInfo {
    /// The checkpoint's timestamp: it holds every commit up to it (0: none yet).
    pub ts: Ts,
    /// Rows its tables hold.
    pub rows: u64,
    /// Run files: each checkpoint adds at most one per table (what changed),
    /// compaction merges them.
    pub runs: usize,
    /// Bytes of its run files.
    pub run_bytes: u64,
    /// Bytes of log now (records after the checkpoint, and those before
    /// it not yet removed; a segment's zero-filled room is not counted).
    pub wal_bytes: u64,
    /// Why the last checkpoint or compaction failed, if it did (the
    /// background thread tries again later).
    pub last_error: Option<String>,
}

/// What [`Store::checkpoint_info`] reports, behind a lock of its own so
/// that asking never waits for a running checkpoint.
#[derive(Default)]
pub(super) struct Summary {
    ts: Ts,
    rows: u64,
    runs: usize,
    run_bytes: u64,
    pub(super) last_error: Option<String>,
}

impl Summary {
    pub(super) fn of(manifest: &Manifest) -> Self {
        let runs = manifest.tables.iter().flat_map(|t| &t.runs);
        Self {
            ts: manifest.ts,
            rows: manifest.tables.iter().fold(0, |n, t| n.saturating_add(t.rows)),
            runs: runs.clone().count(),
            run_bytes: runs.fold(0, |n, r| n.saturating_add(r.bytes)),
            last_error: None,
        }
    }
}

/// A table as a checkpoint notes it under the commit lock: the table, and
/// its indexes (entry table id and definition) at the snapshot.
type Noted = (Arc<Table>, Vec<(TableId, IndexDef)>);

/// A table's manifest entry and new base, once its changes are written.
type Written = (TableEntry, Option<Arc<Base>>);

/// How often the checkpoint thread looks at the log's size.
const CHECKPOINT_POLL: Duration = Duration::from_millis(100);
/// The longest the checkpoint thread waits after failures.
const CHECKPOINT_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Keys read per hold of a table's ordered-map lock while a checkpoint
/// reads it, so new keys never wait long.
const CHECKPOINT_CHUNK: usize = 1024;

/// The manifest's entries for a base's runs.
pub(super) fn run_entries(base: Option<&Base>) -> Vec<RunEntry> {
    base.map_or(&[][..], Base::runs)
        .iter()
        .map(|r| RunEntry { name: r.name().to_owned(), ts: r.ts, entries: r.len() as u64, bytes: r.size() })
        .collect()
}

impl Store {
    /// Writes a checkpoint: for each table, what changed since the last
    /// checkpoint (rows as of the newest committed timestamp, tombstones
    /// for deleted keys) as a new run, then a manifest naming every
    /// table's runs, then removes the log segments and runs it makes
    /// unnecessary; then merges runs, a few similar-sized runs at a time
    /// (see [`Store::compact`]; a merge that fails leaves the runs as they
    /// were and is noted in [`CheckpointInfo::last_error`], and the
    /// checkpoint still succeeds). Opening the store then maps the
    /// runs and replays only the log after the checkpoint.
    ///
    /// Commits go on meanwhile: it reads at a snapshot, a chunk of keys at
    /// a time. DDL waits only while it notes the catalog; DDL after that is
    /// in the log after the checkpoint. A background thread calls it as
    /// the log grows (see [`StoreOptions::checkpoint_wal_bytes`](crate::StoreOptions)).
    /// [`Store::close`] stops a running one (which then fails with
    /// [`Error::Closed`](crate::Error::Closed) and leaves the previous checkpoint in force). An
    /// error after the manifest is stored (removing files, compaction)
    /// leaves the new checkpoint in force. Returns what the checkpoint
    /// holds; an in-memory store has nothing to write and returns the
    /// default.
    pub fn checkpoint(&self) -> Result<CheckpointInfo> {
        self.check_open()?;
        let (Some(wal), Some(dir)) = (&self.inner.wal, &self.inner.dir) else {
            return Ok(CheckpointInfo::default());
        };
        let mut checkpoint = self.inner.checkpoint.lock();
        self.check_open()?;
        let result = self.checkpoint_locked(wal, dir, &mut checkpoint);
        // The checkpoint stands whether or not its runs merge now; a
        // compaction error is noted and merging is tried after the next.
        let merged = match &result {
            Ok(()) => self.compact_locked(dir, &mut checkpoint, false),
            Err(_) => Ok(()),
        };
        let error = result.as_ref().err().or(merged.as_ref().err()).map(ToString::to_string);
        self.inner.summary.lock().last_error = error;
        result.map(|()| self.checkpoint_info())
    }

    fn checkpoint_locked(&self, wal: &Wal, dir: &Path, checkpoint: &mut Option<Manifest>) -> Result<()> {
        if checkpoint.as_ref().is_some_and(|m| m.ts == self.current_ts()) {
            return Ok(());
        }
        // Records from here on go to a new segment. The sealed ones are
        // durable; once the clock reaches their newest timestamp (their
        // committers see the sync and advance it) the snapshot below holds
        // them all and the checkpoint can remove them.
        let newest = wal.seal()?;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.current_ts() < newest && std::time::Instant::now() < deadline {
            self.check_open()?;
            std::thread::sleep(Duration::from_micros(50));
        }
        // DDL changes the catalog and the clock under the commit lock, so
        // what is noted under it is the catalog at the snapshot.
        let (ts, registration, tables, next_table_id, retired) = {
            let commit = self.inner.commit.lock();
            let (ts, registration) = self.acquire_snapshot();
            let catalog = self.inner.catalog.read();
            let mut tables: Vec<Noted> = catalog
                .by_id
                .values()
                .filter(|t| !t.is_index)
                .map(|t| (Arc::clone(t), t.indexes().iter().map(|ix| (ix.entries.id, ix.def.clone())).collect()))
                .collect();
            tables.sort_by_key(|(t, _)| t.id);
            let retired = catalog.retired.iter().filter(|r| r.dropped <= ts).cloned().collect();
            (ts, registration, tables, commit.next_table_id, retired)
        };
        let noted: Vec<Arc<Table>> = tables.iter().map(|(t, _)| Arc::clone(t)).collect();
        let mut created = Vec::new();
        // Held until the new runs are the tables' bases: until then the
        // collector may not unlink a tombstone newer than the snapshot (the
        // old base may lack its key while the new run holds it).
        let registered = Registered(self, Some(registration));
        let written = self.write_changes(dir, ts, tables, checkpoint.as_ref(), &mut created);
        let stored = written.and_then(|written| {
            let (entries, bases): (Vec<_>, Vec<_>) = written.into_iter().unzip();
            omen_files::sync_dir(dir)?;
            if failpoint("checkpoint::manifest") {
                return Err(injected("checkpoint::manifest").into());
            }
            let manifest = Manifest { ts, next_table_id, tables: entries, retired };
            manifest.store(dir)?;
            Ok((manifest, bases))
        });
        let (manifest, bases) = match stored {
            Ok(done) => done,
            Err(e) => {
                // This attempt's runs must not hold space until the next
                // checkpoint, unless the manifest names them.
                for path in &created {
                    manifest::remove_failed_run(dir, path);
                }
                return Err(e);
            }
        };
        // The new runs join the tables' bases; then what they hold can
        // leave memory (now, or in a collector pass once older snapshots end).
        for (t, base) in noted.iter().zip(bases) {
            t.set_base(base);
        }
        *self.inner.summary.lock() = Summary::of(&manifest);
        let names: Vec<String> = manifest.runs().map(str::to_owned).collect();
        *checkpoint = Some(manifest);
        drop(registered);
        let horizon = self.inner.snapshots.horizon(&self.inner.clock);
        for t in &noted {
            t.evict(horizon);
        }
        if failpoint("checkpoint::cleanup") {
            return Err(injected("checkpoint::cleanup").into());
        }
        let keep: Vec<&str> = names.iter().map(String::as_str).collect();
        manifest::remove_unnamed_runs(dir, &keep)?;
        if failpoint("checkpoint::log") {
            return Err(injected("checkpoint::log").into());
        }
        wal.remove_through(ts)?;
        // Schemas of tables whose drop the log no longer holds are needed
        // by no replay (the next manifest leaves them out).
        let trimmed = wal.trimmed();
        self.inner.catalog.write().retired.retain(|r| r.dropped > trimmed);
        Ok(())
    }

    /// Writes, for each table, a run of what changed since `previous` as
    /// of `ts` (every key with a chain: its row, or a tombstone if the
    /// base holds the key and it is deleted at `ts`); returns the
    /// manifest's entries and the tables' new bases, opened. Adds each
    /// file it creates to `created`. Stops with [`Error::Closed`](crate::Error::Closed) if the
    /// store closes.
    fn write_changes(
        &self,
        dir: &Path,
        ts: Ts,
        tables: Vec<Noted>,
        previous: Option<&Manifest>,
        created: &mut Vec<PathBuf>,
    ) -> Result<Vec<Written>> {
        let mut written = Vec::with_capacity(tables.len());
        for (t, indexes) in tables {
            let old = t.base();
            let mut rows = previous.and_then(|m| m.tables.iter().find(|e| e.id == t.id)).map_or(0, |e| e.rows);
            let mut writer: Option<(String, RunWriter)> = None;
            let mut after: Option<Vec<u8>> = None;
            loop {
                self.check_open()?;
                let chunk = t.changes(after.as_deref(), ts, CHECKPOINT_CHUNK);
                for (key, row) in &chunk {
                    let before = match &old {
                        Some(base) => base.get(key)?,
                        None => None,
                    };
                    let entry = match (row, before) {
                        (Some(row), Some(b)) if row == b => continue,
                        (Some(row), b) => {
                            rows += u64::from(b.is_none());
                            Some(row.as_slice())
                        }
                        (None, Some(_)) => {
                            rows = rows.saturating_sub(1);
                            None
                        }
                        (None, None) => continue,
                    };
                    let (_, w) = match &mut writer {
                        Some(w) => w,
                        None => {
                            let (name, w) = RunWriter::create_new(dir, t.id, ts)?;
                            created.push(dir.join(&name));
                            writer.insert((name, w))
                        }
                    };
                    w.push(key, entry)?;
                }
                match chunk.last() {
                    Some((last, _)) if chunk.len() == CHECKPOINT_CHUNK => after = Some(last.clone()),
                    _ => break,
                }
            }
            let base = match writer {
                Some((name, w)) => {
                    if failpoint("checkpoint::run") {
                        return Err(injected("checkpoint::run").into());
                    }
                    w.finish(t.id, ts)?;
                    let run = Arc::new(Run::open(&dir.join(name))?);
                    Base::new(std::iter::once(run).chain(old.iter().flat_map(|b| b.runs().iter().cloned())).collect(), ts)
                }
                // Nothing new to write: the same runs hold the rows as of
                // `ts` (so chains equal to them can leave memory).
                None => Base::new(old.map(|b| b.runs().to_vec()).unwrap_or_default(), ts),
            };
            let next_row_id = t.next_row_id.load(Ordering::Relaxed);
            let runs = run_entries(base.as_deref());
            written.push((TableEntry { id: t.id, next_row_id, schema: (*t.schema).clone(), rows, runs, indexes }, base));
        }
        Ok(written)
    }

    /// What the latest checkpoint holds, and the log's size. Never waits
    /// for a running checkpoint.
    pub fn checkpoint_info(&self) -> CheckpointInfo {
        let summary = self.inner.summary.lock();
        CheckpointInfo {
            ts: summary.ts,
            rows: summary.rows,
            runs: summary.runs,
            run_bytes: summary.run_bytes,
            wal_bytes: self.inner.wal.as_ref().map_or(0, Wal::len),
            last_error: summary.last_error.clone(),
        }
    }

    /// Records what a compaction changed (under the checkpoint lock).
    pub(super) fn set_summary(&self, manifest: &Manifest) {
        *self.inner.summary.lock() = Summary::of(manifest);
    }
}

/// The checkpoint thread: every [`CHECKPOINT_POLL`], a checkpoint if the
/// log has grown past `threshold` (when not 0), or past half the memory
/// `budget` (when not 0). After a failure (a full disk, say) it waits
/// twice as long each time, up to [`CHECKPOINT_BACKOFF_MAX`].
pub(super) fn checkpoint_in_background(inner: &Weak<Inner>, threshold: u64, budget: u64) {
    let mut wait = CHECKPOINT_POLL;
    loop {
        std::thread::park_timeout(wait);
        let Some(inner) = inner.upgrade() else { return };
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        let Some(wal) = &inner.wal else { return };
        // Segments a log hold keeps behind the checkpoint do not count:
        // checkpointing cannot remove them.
        let log = wal.len_after(inner.summary.lock().ts);
        let due = (threshold > 0 && log >= threshold) || (budget > 0 && log >= budget / 2);
        if due {
            let store = Store { inner };
            wait = match store.checkpoint() {
                Ok(_) => CHECKPOINT_POLL,
                Err(_) => (wait * 2).min(CHECKPOINT_BACKOFF_MAX),
            };
        }
    }
}
