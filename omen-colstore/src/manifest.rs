//! The column store's manifest: its durable watermark and each table's
//! schema and segment files.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "OMENCOL\0"
//! 8       4     version: u32 (2 written; 1 and 2 read)
//! 12      8     watermark: u64
//! 20      8     next_file: u64
//! 28      4     n: u32
//! 32      ...   n x table
//! end-4   4     crc32c of bytes 0 to end-4: u32
//!
//! table:    | id: u64 | f: u32 | f x field | s: u32 | s x segment |
//! field:    | name: str | type | nullable: u8 (0 or 1) |
//! type:     version 2: | tag: u8 | parameters | (`type_tag.rs` has the table)
//!           version 1: | str: Arrow's `Display` form, parsed with `FromStr` |
//! segment:  | file: u64 | rows: u64 | deletes: u64 (0: none) |
//! str:      | len: u32 | UTF-8 bytes |
//! ```
//!
//! Integers little-endian. Every file number named is below `next_file`.
//! It is replaced atomically (temp file, fsync, rename, fsync of the
//! directory), after every file it names is synced.
//!
//! Versions:
//!
//! - 1 (fixtures `tests/fixtures/colstore/v1`): types as Arrow's `Display`
//!   strings, which tie the format to Arrow's formatting (arrow 59 writes
//!   `Timestamp(µs, "UTC")`).
//! - 2 (fixtures `v2`): types as tags with fixed-width parameters. The
//!   rest of the layout is version 1's.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{Error, Result};
use crate::type_tag;
use omen_files::codec::{DecodeError, Decoded, Reader, Writer};

const MAGIC: &[u8; 8] = b"OMENCOL\0";
/// The version written.
const VERSION: u32 = 2;
/// Types as Arrow's `Display` strings: read, never written.
const VERSION_DISPLAY_TYPES: u32 = 1;
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

/// Bytes of the segment files in `dir` (0 where it cannot be read).
pub(crate) fn segment_file_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("seg-") && n.ends_with(".parquet")))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

pub(crate) fn deletes_path(dir: &Path, file: u64) -> PathBuf {
    dir.join(format!("del-{file:010}.omd"))
}

/// A version 1 type: Arrow's `Display` string, parsed back.
fn display_type(r: &mut Reader<'_>) -> Decoded<DataType> {
    let t: DataType = r.str32()?.parse().map_err(|e| format!("{e}"))?;
    type_tag::check(&t)?;
    Ok(t)
}

impl Manifest {
    fn encode(&self) -> Decoded<Vec<u8>> {
        let mut w = Writer::framed(MAGIC);
        w.u32(VERSION);
        w.u64(self.watermark);
        w.u64(self.next_file);
        w.len32(self.tables.len())?;
        for t in &self.tables {
            w.u64(t.id);
            w.len32(t.schema.fields().len())?;
            for f in t.schema.fields() {
                w.str32(f.name())?;
                type_tag::encode(f.data_type(), &mut w).map_err(|e| format!("table {} column {:?}: {e}", t.id, f.name()))?;
                w.u8(u8::from(f.is_nullable()));
            }
            w.len32(t.segments.len())?;
            for s in &t.segments {
                for v in [s.file, s.rows, s.deletes] {
                    w.u64(v);
                }
            }
        }
        Ok(w.seal())
    }

    fn decode(path: &Path, bytes: &[u8]) -> Result<Self> {
        let corrupt = |reason: DecodeError| Error::Corruption { file: path.to_path_buf(), reason: reason.to_string() };
        let mut r = Reader::unseal(bytes, MAGIC).map_err(corrupt)?;
        let manifest = Self::parse(&mut r).and_then(|m| r.finish().map(|()| m)).map_err(corrupt)?;
        let files = manifest.tables.iter().flat_map(|t| &t.segments).flat_map(|s| [s.file, s.deletes]);
        if let Some(bad) = files.filter(|&f| f != 0).find(|&f| f >= manifest.next_file) {
            return Err(corrupt(format!("file {bad} is not below the next file number {}", manifest.next_file).into()));
        }
        Ok(manifest)
    }

    /// The fields after the magic, of any version read.
    fn parse(r: &mut Reader<'_>) -> Decoded<Self> {
        let version = r.u32()?;
        let read_type: fn(&mut Reader<'_>) -> Decoded<DataType> = match version {
            VERSION => type_tag::decode,
            VERSION_DISPLAY_TYPES => display_type,
            v => return Err(format!("unsupported manifest version {v}").into()),
        };
        let watermark = r.u64()?;
        let next_file = r.u64()?;
        let n = r.u32()?;
        let mut tables = Vec::new();
        for _ in 0..n {
            let id = r.u64()?;
            let f = r.u32()?;
            let mut fields = Vec::new();
            for _ in 0..f {
                let name = r.str32()?;
                let ty = read_type(r).map_err(|e| format!("table {id} column {name:?}: {e}"))?;
                let nullable = match r.u8()? {
                    0 => false,
                    1 => true,
                    b => return Err(format!("table {id} column {name:?}: nullable byte {b}").into()),
                };
                fields.push(Field::new(name, ty, nullable));
            }
            let s = r.u32()?;
            let segments =
                (0..s).map(|_| Ok(SegmentEntry { file: r.u64()?, rows: r.u64()?, deletes: r.u64()? })).collect::<Decoded<_>>()?;
            tables.push(TableEntry { id, schema: Arc::new(Schema::new(fields)), segments });
        }
        Ok(Self { watermark, next_file, tables })
    }

    /// Reads `dir`'s manifest; `None` if there is none.
    pub(crate) fn load(dir: &Path) -> Result<Option<Self>> {
        omen_files::read(dir, FILE)?.map(|bytes| Self::decode(&dir.join(FILE), &bytes)).transpose()
    }

    /// Replaces `dir`'s manifest atomically and durably.
    pub(crate) fn store(&self, dir: &Path) -> Result<()> {
        let bytes = self.encode().map_err(|e| Error::Schema(e.to_string()))?;
        Ok(omen_files::replace(dir, FILE, &bytes)?)
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

    /// Two tables, one with a column of every type the store accepts.
    fn sample() -> Manifest {
        let every = crate::type_tag::tests::every_type().into_iter().enumerate().map(|(i, t)| Field::new(format!("c{i}"), t, i % 2 == 0));
        let small = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        Manifest {
            watermark: 42,
            next_file: 9,
            tables: vec![
                TableEntry { id: 3, schema: Arc::new(Schema::new(every.collect::<Vec<_>>())), segments: vec![] },
                TableEntry { id: 5, schema: small, segments: vec![SegmentEntry { file: 4, rows: 10, deletes: 8 }] },
            ],
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

    /// A manifest of `version` whose one table has a column of `ty`
    /// (bytes as that version writes them), with a valid checksum.
    fn with_type(version: u32, ty: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut w = Writer::framed(MAGIC);
        w.u32(version);
        w.u64(1);
        w.u64(1);
        w.u32(1);
        w.u64(7);
        w.u32(1);
        w.str32("c").unwrap();
        ty(&mut w);
        w.u8(1);
        w.u32(0);
        w.seal()
    }

    /// Well-checksummed bytes the reader does not know are `Corruption`
    /// saying what: a version, a tag, a type string, a type refused.
    #[test]
    fn unknown_versions_tags_and_types_are_corruption() {
        let path = Path::new("COLMANIFEST");
        let reason = |bytes: Vec<u8>| match Manifest::decode(path, &bytes) {
            Err(Error::Corruption { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        let int64 = |w: &mut Writer| type_tag::encode(&DataType::Int64, w).unwrap();
        assert_eq!(Manifest::decode(path, &with_type(2, int64)).unwrap().tables[0].schema.field(0).data_type(), &DataType::Int64);
        assert!(reason(with_type(3, int64)).contains("unsupported manifest version 3"));
        assert!(reason(with_type(0, int64)).contains("unsupported manifest version 0"));
        assert!(reason(with_type(2, |w| w.u8(0xEE))).contains("unknown type tag 0xee"));
        // Version 1: Arrow's strings, the known types only.
        let v1 = |s: &'static str| with_type(1, move |w| w.str32(s).unwrap());
        assert_eq!(Manifest::decode(path, &v1("Int64")).unwrap().tables[0].schema.field(0).data_type(), &DataType::Int64);
        assert!(reason(v1("Int65")).contains("column \"c\""));
        assert!(reason(v1("Null")).contains("not one the column store holds"));
    }
}
