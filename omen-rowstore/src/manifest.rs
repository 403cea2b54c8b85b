//! The manifest: which checkpoint the store starts from.
//!
//! It names the checkpoint's timestamp, the catalog as of then (tables,
//! their schemas and indexes) and each table's run files, newest first
//! (see `table::base`). Opening reads it, maps the runs and replays the
//! log's records after the timestamp; with no manifest the whole log is
//! replayed.
//!
//! ```text
//! MANIFEST: | magic "OMENMAN\0" (8) | version: u32 LE (2) | reserved: u32 (0) | body | crc32c(all before): u32 LE |
//! body:     | ts: u64 | next_table_id: u64 | n: var | n x table | d: var | d x retired |
//! table:    | id: u64 | next_row_id: u64 | schema | rows: u64 | r: var | r x run |
//!           | m: var | m x (index id: u64 | index definition) |
//! run:      | name: var+bytes | ts: u64 | entries: u64 | bytes: u64 |    (newest first, timestamps descending)
//! retired:  | id: u64 | dropped: u64 | schema |     (a dropped table whose drop the log may still hold)
//! ```
//!
//! Version 1 (one run per table, at the manifest's timestamp) is read too:
//! `| id | next_row_id | schema | run: var+bytes (empty: none) | rows: u64 | m | ...`.
//!
//! It is replaced atomically: written to `MANIFEST.tmp`, synced, renamed
//! over `MANIFEST`, and the directory synced. Files a crash left behind
//! (a half-written temp file, runs no manifest names) are removed on open.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::error::{Error, Result};
use crate::index::IndexDef;
use crate::run::is_run_name;
use crate::schema::{TableId, TableSchema};
use crate::snapshots::Ts;
use omen_files::codec::{Reader, Writer, put_bytes, put_varint};

const MAGIC: &[u8; 8] = b"OMENMAN\0";
const VERSION: u32 = 2;
pub(crate) const FILE: &str = "MANIFEST";

/// One table as of the checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TableEntry {
    pub id: TableId,
    pub next_row_id: u64,
    pub schema: TableSchema,
    /// Rows the table holds at the checkpoint.
    pub rows: u64,
    /// Its runs, newest first (none: no rows).
    pub runs: Vec<RunEntry>,
    pub indexes: Vec<(TableId, IndexDef)>,
}

/// One run file of a table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunEntry {
    /// The file's name in the store's directory.
    pub name: String,
    /// The checkpoint it was written at (a merged run: the newest merged).
    pub ts: Ts,
    /// Its entries, rows and tombstones.
    pub entries: u64,
    /// The file's size.
    pub bytes: u64,
}

/// A table dropped (or rewritten by ALTER TABLE) at `dropped`: replaying
/// the log before then decodes its rows with `schema`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RetiredTable {
    pub id: TableId,
    pub dropped: Ts,
    pub schema: TableSchema,
}

/// A checkpoint: the state at `ts`.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Manifest {
    pub ts: Ts,
    pub next_table_id: TableId,
    pub tables: Vec<TableEntry>,
    pub retired: Vec<RetiredTable>,
}

impl Manifest {
    fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&self.ts.to_le_bytes());
        body.extend_from_slice(&self.next_table_id.to_le_bytes());
        put_varint(&mut body, self.tables.len() as u64);
        for t in &self.tables {
            body.extend_from_slice(&t.id.to_le_bytes());
            body.extend_from_slice(&t.next_row_id.to_le_bytes());
            t.schema.encode(&mut body);
            body.extend_from_slice(&t.rows.to_le_bytes());
            put_varint(&mut body, t.runs.len() as u64);
            for run in &t.runs {
                put_bytes(&mut body, run.name.as_bytes());
                body.extend_from_slice(&run.ts.to_le_bytes());
                body.extend_from_slice(&run.entries.to_le_bytes());
                body.extend_from_slice(&run.bytes.to_le_bytes());
            }
            put_varint(&mut body, t.indexes.len() as u64);
            for (id, def) in &t.indexes {
                body.extend_from_slice(&id.to_le_bytes());
                def.encode(&mut body);
            }
        }
        put_varint(&mut body, self.retired.len() as u64);
        for t in &self.retired {
            body.extend_from_slice(&t.id.to_le_bytes());
            body.extend_from_slice(&t.dropped.to_le_bytes());
            t.schema.encode(&mut body);
        }
        let mut out = Writer::framed(MAGIC);
        out.u32(VERSION);
        out.u32(0); // reserved
        out.raw(&body);
        out.seal()
    }

    fn decode(path: &Path, bytes: &[u8]) -> Result<Self> {
        let corrupt = |offset: usize, reason: String| Error::Corruption { file: path.to_path_buf(), offset: offset as u64, reason };
        let mut r = Reader::unseal(bytes, MAGIC).map_err(|e| corrupt(0, format!("not a readable OmenDB manifest: {e}")))?;
        let version = r.u32().map_err(|e| corrupt(8, e.to_string()))?;
        if !(1..=VERSION).contains(&version) {
            return Err(corrupt(8, format!("unsupported manifest version {version}")));
        }
        r.u32().map_err(|e| corrupt(12, e.to_string()))?; // reserved
        let parse = |r: &mut Reader<'_>| -> Result<Self> {
            let ts = r.u64()?;
            let next_table_id = r.u64()?;
            let n = r.len()?;
            let mut tables = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                let id = r.u64()?;
                let next_row_id = r.u64()?;
                let schema = TableSchema::decode(r)?;
                let (rows, runs) = if version == 1 {
                    let name = r.var_str()?.to_owned();
                    let rows = r.u64()?;
                    // Version 1 did not note the size: 0 means unknown.
                    (rows, if name.is_empty() { vec![] } else { vec![RunEntry { name, ts, entries: rows, bytes: 0 }] })
                } else {
                    let rows = r.u64()?;
                    let k = r.len()?;
                    let runs =
                        (0..k).map(|_| Ok(RunEntry { name: r.var_str()?.to_owned(), ts: r.u64()?, entries: r.u64()?, bytes: r.u64()? }));
                    (rows, runs.collect::<Result<Vec<_>>>()?)
                };
                let m = r.len()?;
                let indexes = (0..m).map(|_| Ok((r.u64()?, IndexDef::decode(r)?))).collect::<Result<Vec<_>>>()?;
                tables.push(TableEntry { id, next_row_id, schema, rows, runs, indexes });
            }
            let retired = match version {
                1 => Vec::new(),
                _ => {
                    let d = r.len()?;
                    (0..d)
                        .map(|_| Ok(RetiredTable { id: r.u64()?, dropped: r.u64()?, schema: TableSchema::decode(r)? }))
                        .collect::<Result<_>>()?
                }
            };
            Ok(Self { ts, next_table_id, tables, retired })
        };
        let manifest = parse(&mut r).map_err(|e| corrupt(16, e.to_string()))?;
        if !r.is_empty() {
            return Err(corrupt(16, "trailing bytes".into()));
        }
        if let Some(bad) = manifest.runs().find(|n| !is_run_name(n)) {
            return Err(corrupt(16, format!("bad run file name {bad:?}")));
        }
        for t in &manifest.tables {
            let mut newer = manifest.ts.checked_add(1);
            for run in &t.runs {
                if newer.is_some_and(|n| run.ts >= n) {
                    return Err(corrupt(16, format!("run {:?} of table {} is out of timestamp order", run.name, t.id)));
                }
                newer = Some(run.ts);
            }
        }
        Ok(manifest)
    }

    /// Reads `dir/MANIFEST`; `None` if there is none (no checkpoint yet).
    /// Removes a temp file a crash left.
    pub(crate) fn load(dir: &Path) -> Result<Option<Self>> {
        omen_files::read(dir, FILE)?.map(|bytes| Self::decode(&dir.join(FILE), &bytes)).transpose()
    }

    /// Replaces `dir/MANIFEST` atomically and durably.
    pub(crate) fn store(&self, dir: &Path) -> Result<()> {
        Ok(omen_files::replace(dir, FILE, &self.encode())?)
    }

    /// The run files it names.
    pub(crate) fn runs(&self) -> impl Iterator<Item = &str> {
        self.tables.iter().flat_map(|t| &t.runs).map(|r| r.name.as_str())
    }
}

/// Removes a run file just written by a checkpoint or compaction that
/// failed, unless the manifest names it (the failure came after its
/// rename) or cannot be read (then keeping it is the safe side).
pub(crate) fn remove_failed_run(dir: &Path, path: &Path) {
    let named = match Manifest::load(dir) {
        Ok(Some(m)) => m.runs().any(|r| path.file_name().is_some_and(|n| n == r)),
        Ok(None) => false,
        Err(_) => true,
    };
    if !named {
        let _ = std::fs::remove_file(path);
    }
}

/// Removes run files in `dir` that `keep` does not name (left by a crash
/// mid-checkpoint, or replaced by a newer checkpoint).
pub(crate) fn remove_unnamed_runs(dir: &Path, keep: &[&str]) -> Result<()> {
    let mut removed = false;
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_run_name(name) && !keep.contains(&name) {
            std::fs::remove_file(dir.join(name))?;
            removed = true;
        }
    }
    if removed {
        omen_files::sync_dir(dir)?;
    }
    Ok(())
}

/// Copies the runs `manifest` names from `from` into `dir`, synced, then
/// stores the manifest there (backups); returns the run bytes copied.
pub(crate) fn copy_checkpoint(from: &Path, manifest: &Manifest, dir: &Path) -> Result<u64> {
    let mut copied = 0;
    for run in manifest.runs() {
        let to = dir.join(run);
        copied += std::io::copy(&mut File::open(from.join(run))?, &mut OpenOptions::new().write(true).create_new(true).open(&to)?)?;
        File::open(&to)?.sync_all()?;
    }
    omen_files::sync_dir(dir)?;
    manifest.store(dir)?;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::run_name;
    use crate::schema::ColumnDef;
    use crate::value::DataType;

    fn sample() -> Manifest {
        let schema = TableSchema {
            name: "t".into(),
            columns: vec![ColumnDef::new("a", DataType::Int64).not_null(), ColumnDef::new("b", DataType::Text)],
            primary_key: vec![0],
        };
        Manifest {
            ts: 99,
            next_table_id: 5,
            tables: vec![TableEntry {
                id: 1,
                next_row_id: 1,
                schema,
                rows: 3,
                runs: vec![
                    RunEntry { name: run_name(1, 99, 0), ts: 99, entries: 2, bytes: 300 },
                    RunEntry { name: run_name(1, 40, 1), ts: 40, entries: 4, bytes: 500 },
                ],
                indexes: vec![(4, IndexDef { name: "t_b".into(), columns: vec![1], unique: false })],
            }],
            retired: vec![RetiredTable {
                id: 3,
                dropped: 97,
                schema: TableSchema { name: "gone".into(), columns: vec![ColumnDef::new("x", DataType::Bytes)], primary_key: vec![] },
            }],
        }
    }

    #[test]
    fn round_trips_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), None);
        let m = sample();
        m.store(dir.path()).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), Some(m.clone()));
        // A crash mid-write leaves a temp file: ignored and removed.
        std::fs::write(dir.path().join("MANIFEST.tmp"), b"half").unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), Some(m));
        assert!(!dir.path().join("MANIFEST.tmp").exists());
    }

    /// A version-1 manifest (one run per table at the checkpoint's
    /// timestamp) reads as version 2 with that one run, its size unknown.
    #[test]
    fn version_1_manifests_are_read() {
        let m = sample();
        let t = &m.tables[0];
        let mut body = Vec::new();
        body.extend_from_slice(&m.ts.to_le_bytes());
        body.extend_from_slice(&m.next_table_id.to_le_bytes());
        put_varint(&mut body, 1);
        body.extend_from_slice(&t.id.to_le_bytes());
        body.extend_from_slice(&t.next_row_id.to_le_bytes());
        t.schema.encode(&mut body);
        put_bytes(&mut body, t.runs[0].name.as_bytes());
        body.extend_from_slice(&t.rows.to_le_bytes());
        put_varint(&mut body, t.indexes.len() as u64);
        for (id, def) in &t.indexes {
            body.extend_from_slice(&id.to_le_bytes());
            def.encode(&mut body);
        }
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&body);
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let read = Manifest::decode(Path::new(FILE), &bytes).unwrap();
        let one = RunEntry { name: t.runs[0].name.clone(), ts: m.ts, entries: t.rows, bytes: 0 };
        assert_eq!(read.tables[0].runs, vec![one]);
        assert_eq!((read.ts, read.tables[0].rows, &read.tables[0].indexes), (m.ts, t.rows, &t.indexes));
    }

    #[test]
    fn runs_out_of_timestamp_order_are_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = sample();
        m.tables[0].runs.reverse();
        m.store(dir.path()).unwrap();
        assert!(matches!(Manifest::load(dir.path()), Err(Error::Corruption { .. })));
    }

    #[test]
    fn damage_is_corruption_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        sample().store(dir.path()).unwrap();
        let path = dir.path().join(FILE);
        let good = std::fs::read(&path).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x04;
            match Manifest::decode(&path, &bad) {
                Err(Error::Corruption { file, .. }) => assert_eq!(file, path),
                other => panic!("flip at {at}: {other:?}"),
            }
        }
        for cut in 0..good.len() {
            assert!(matches!(Manifest::decode(&path, &good[..cut]), Err(Error::Corruption { .. })), "cut at {cut}");
        }
    }
}
