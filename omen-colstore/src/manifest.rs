//! The column store's manifest: its durable watermark and each table's
//! schema and segment files.
//!
//! ```text
//! COLMANIFEST: | magic "OMENCOL\0" | version: u32 (1) | watermark: u64 | next_file: u64 | n: u32 | n x table | crc32c(all before): u32 |
//! table:       | id: u64 | f: u32 | f x (name: str | type: str | nullable: u8) | s: u32 | s x segment |
//! segment:     | file: u64 | rows: u64 | deletes: u64 (0: none) |
//! str:         | len: u32 | utf-8 bytes |
//! ```
//!
//! Integers little-endian; types in Arrow's `DataType` display form. It is
//! replaced atomically (temp file, fsync, rename, fsync of the directory),
//! after every file it names is synced.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"OMENCOL\0";
const VERSION: u32 = 1;
pub(crate) const FILE: &str = "COLMANIFEST";

/// One segment's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentEntry {
    pub file: u64,
    pub rows: u64,
    /// The delete file's number; 0 for none.
    pub deletes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TableEntry {
    pub id: u64,
    pub schema: SchemaRef,
    pub segments: Vec<SegmentEntry>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Manifest {
    /// Every change committed at or before it is in the files.
    pub watermark: u64,
    /// The next file number to give.
    pub next_file: u64,
    pub tables: Vec<TableEntry>,
}

pub(crate) fn segment_path(dir: &Path, file: u64) -> PathBuf {
    dir.join(format!("seg-{file:010}.parquet"))
}

pub(crate) fn deletes_path(dir: &Path, file: u64) -> PathBuf {
    dir.join(format!("del-{file:010}.omd"))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> std::result::Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or("truncated")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn str(&mut self) -> std::result::Result<String, String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|e| e.to_string())
    }
}

impl Manifest {
    fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.watermark.to_le_bytes());
        out.extend_from_slice(&self.next_file.to_le_bytes());
        out.extend_from_slice(&(self.tables.len() as u32).to_le_bytes());
        for t in &self.tables {
            out.extend_from_slice(&t.id.to_le_bytes());
            out.extend_from_slice(&(t.schema.fields().len() as u32).to_le_bytes());
            for f in t.schema.fields() {
                put_str(&mut out, f.name());
                put_str(&mut out, &f.data_type().to_string());
                out.push(u8::from(f.is_nullable()));
            }
            out.extend_from_slice(&(t.segments.len() as u32).to_le_bytes());
            for s in &t.segments {
                for v in [s.file, s.rows, s.deletes] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(path: &Path, bytes: &[u8]) -> Result<Self> {
        let corrupt = |reason: String| Error::Corruption { file: path.to_path_buf(), reason };
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(corrupt("not an OmenDB column-store manifest (bad magic or too short)".into()));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return Err(corrupt("checksum mismatch".into()));
        }
        let mut r = Reader { bytes: body, at: 8 };
        let parse = |r: &mut Reader<'_>| -> std::result::Result<Self, String> {
            let version = r.u32()?;
            if version != VERSION {
                return Err(format!("unsupported manifest version {version}"));
            }
            let watermark = r.u64()?;
            let next_file = r.u64()?;
            let n = r.u32()?;
            let mut tables = Vec::new();
            for _ in 0..n {
                let id = r.u64()?;
                let f = r.u32()?;
                let mut fields = Vec::new();
                for _ in 0..f {
                    let name = r.str()?;
                    let ty: DataType = r.str()?.parse().map_err(|e| format!("column {name:?}: {e}"))?;
                    let nullable = r.take(1)?[0] != 0;
                    fields.push(Field::new(name, ty, nullable));
                }
                let s = r.u32()?;
                let segments = (0..s)
                    .map(|_| Ok(SegmentEntry { file: r.u64()?, rows: r.u64()?, deletes: r.u64()? }))
                    .collect::<std::result::Result<_, String>>()?;
                tables.push(TableEntry { id, schema: Arc::new(Schema::new(fields)), segments });
            }
            Ok(Self { watermark, next_file, tables })
        };
        let manifest = parse(&mut r).map_err(corrupt)?;
        if r.at != body.len() {
            return Err(corrupt("trailing bytes".into()));
        }
        let files = manifest.tables.iter().flat_map(|t| &t.segments).flat_map(|s| [s.file, s.deletes]);
        if let Some(bad) = files.filter(|&f| f != 0).find(|&f| f >= manifest.next_file) {
            return Err(corrupt(format!("file {bad} is not below the next file number {}", manifest.next_file)));
        }
        Ok(manifest)
    }

    /// Reads `dir`'s manifest; `None` if there is none.
    pub(crate) fn load(dir: &Path) -> Result<Option<Self>> {
        omen_files::read(dir, FILE)?.map(|bytes| Self::decode(&dir.join(FILE), &bytes)).transpose()
    }

    /// Replaces `dir`'s manifest atomically and durably.
    pub(crate) fn store(&self, dir: &Path) -> Result<()> {
        Ok(omen_files::replace(dir, FILE, &self.encode())?)
    }

    /// Removes segment and delete files in `dir` this manifest does not
    /// name, except those `in_use` (a live segment may still read them: a
    /// later call removes them).
    pub(crate) fn remove_unnamed(&self, dir: &Path, in_use: impl Fn(&Path) -> bool) -> Result<()> {
        let named: std::collections::HashSet<PathBuf> = self
            .tables
            .iter()
            .flat_map(|t| &t.segments)
            .flat_map(|s| [Some(segment_path(dir, s.file)), (s.deletes != 0).then(|| deletes_path(dir, s.deletes))])
            .flatten()
            .collect();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let ours = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| (n.starts_with("seg-") && n.ends_with(".parquet")) || (n.starts_with("del-") && n.ends_with(".omd")));
            if ours && !named.contains(&path) && !in_use(&path) {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("t", DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None), true),
            Field::new("d", DataType::Decimal128(20, 4), true),
        ]));
        Manifest {
            watermark: 42,
            next_file: 9,
            tables: vec![TableEntry { id: 3, schema, segments: vec![SegmentEntry { file: 4, rows: 10, deletes: 8 }] }],
        }
    }

    #[test]
    fn round_trips_and_damage_is_corruption_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), None);
        let m = sample();
        m.store(dir.path()).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), Some(m.clone()));
        let path = dir.path().join(FILE);
        let good = std::fs::read(&path).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            assert!(matches!(Manifest::decode(&path, &bad), Err(Error::Corruption { file, .. }) if file == path), "flip at {at}");
        }
        for cut in 0..good.len() {
            assert!(matches!(Manifest::decode(&path, &good[..cut]), Err(Error::Corruption { .. })), "cut at {cut}");
        }
    }
}
