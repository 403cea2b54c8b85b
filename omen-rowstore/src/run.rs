//! Checkpoint runs: one immutable file per table holding its rows at a
//! checkpoint timestamp, sorted by key, with a learned index over the keys.
//!
//! ```text
//! run:     | header | entry* | offsets | prefixes | index | footer |
//! header:  | magic "OMENRUN\0" (8) | version: u32 LE | reserved: u32 (0) |
//! entry:   | key_len: u32 LE | row_len: u32 LE | key | row |        (ascending keys, no duplicates)
//! offsets: | n x u64 LE |       each entry's offset in the file
//! prefixes:| n x u64 LE |       each key's first 8 bytes, big-endian, zero-padded
//! index:   | a serialized omen-learned PgmIndex over the prefixes |
//! footer:  | table: u64 | ts: u64 | n: u64 | offsets_at: u64 | prefixes_at: u64 | index_at: u64 |
//!          | crc32c(bytes before the footer): u32 | crc32c(footer fields): u32 | magic "OMENRUNF" (8) |
//! ```
//!
//! Integers are little-endian; the footer is the last 64 bytes. Rows use
//! [`crate::codec::row`]'s format, keys [`crate::codec::key`]'s. A lookup
//! asks the learned index for a window of positions around the key's
//! prefix and searches the window by full key ([`PgmIndex::lower_bound_by`]):
//! keys that share a prefix (composite and text keys) are found all the same.
//!
//! A run is written whole, synced, and only then named by a manifest
//! ([`crate::manifest`]), so a reader never sees a partial one; any damage is
//! [`Error::Corruption`] naming the file. Opening a run today reads it
//! into memory and checks every checksum; serving reads from a memory map
//! (tables larger than memory) is the durability issue's next step.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use omen_learned::{Key, PgmIndex};

use crate::error::{Error, Result};
use crate::schema::TableId;
use crate::table::Ts;

const MAGIC: &[u8; 8] = b"OMENRUN\0";
const FOOTER_MAGIC: &[u8; 8] = b"OMENRUNF";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 16;
const FOOTER_LEN: usize = 64;

/// Writes a run file from rows given in ascending key order.
pub(crate) struct RunWriter {
    path: PathBuf,
    out: BufWriter<File>,
    crc: u32,
    at: u64,
    offsets: Vec<u64>,
    prefixes: Vec<u64>,
    last_key: Option<Vec<u8>>,
}

impl RunWriter {
    /// Creates a new run file in `dir` for table `table` at checkpoint `ts`,
    /// under a name no file has (so no run a manifest names is ever
    /// written over); returns the name and the writer.
    pub(crate) fn create_new(dir: &Path, table: TableId, ts: Ts) -> Result<(String, Self)> {
        for attempt in 0.. {
            let name = crate::manifest::run_name(table, ts, attempt);
            match OpenOptions::new().write(true).create_new(true).open(dir.join(&name)) {
                Ok(file) => return Ok((name.clone(), Self::new(dir.join(name), file)?)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("an unbounded range")
    }

    #[cfg(test)]
    fn create(path: &Path) -> Result<Self> {
        Self::new(path.to_path_buf(), File::create(path)?)
    }

    fn new(path: PathBuf, file: File) -> Result<Self> {
        let mut w = Self {
            path,
            out: BufWriter::with_capacity(1 << 20, file),
            crc: 0,
            at: 0,
            offsets: Vec::new(),
            prefixes: Vec::new(),
            last_key: None,
        };
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        w.put(&header)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes)?;
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.at += bytes.len() as u64;
        Ok(())
    }

    /// Appends a row; keys must ascend strictly.
    pub(crate) fn push(&mut self, key: &[u8], row: &[u8]) -> Result<()> {
        if self.last_key.as_deref().is_some_and(|last| last >= key) {
            return Err(Error::Decode(format!("run {} written out of key order", self.path.display())));
        }
        let too_long = || Error::Decode("key or row longer than 4 GiB".into());
        let klen = u32::try_from(key.len()).map_err(|_| too_long())?;
        let rlen = u32::try_from(row.len()).map_err(|_| too_long())?;
        self.offsets.push(self.at);
        self.prefixes.push(key.prefix());
        self.put(&klen.to_le_bytes())?;
        self.put(&rlen.to_le_bytes())?;
        self.put(key)?;
        self.put(row)?;
        match &mut self.last_key {
            Some(last) => {
                last.clear();
                last.extend_from_slice(key);
            }
            None => self.last_key = Some(key.to_vec()),
        }
        Ok(())
    }

    /// Writes the offsets, prefixes, index and footer, and syncs the file;
    /// returns its size. The caller syncs the directory.
    pub(crate) fn finish(mut self, table: TableId, ts: Ts) -> Result<u64> {
        let index = PgmIndex::build(&self.prefixes).map_err(|e| Error::Decode(format!("building the run's index: {e}")))?;
        let offsets_at = self.at;
        let offsets: Vec<u8> = self.offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
        self.put(&offsets)?;
        let prefixes_at = self.at;
        let prefixes: Vec<u8> = self.prefixes.iter().flat_map(|p| p.to_le_bytes()).collect();
        self.put(&prefixes)?;
        let index_at = self.at;
        self.put(&index.to_bytes())?;
        let mut fields = Vec::with_capacity(FOOTER_LEN);
        for v in [table, ts, self.offsets.len() as u64, offsets_at, prefixes_at, index_at] {
            fields.extend_from_slice(&v.to_le_bytes());
        }
        fields.extend_from_slice(&self.crc.to_le_bytes());
        let fields_crc = crc32c::crc32c(&fields);
        fields.extend_from_slice(&fields_crc.to_le_bytes());
        fields.extend_from_slice(FOOTER_MAGIC);
        self.out.write_all(&fields)?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(self.at + FOOTER_LEN as u64)
    }
}

/// An open run: its bytes, checked, and the learned index over its keys.
pub(crate) struct Run {
    path: PathBuf,
    bytes: Vec<u8>,
    /// The table the run was written for.
    pub(crate) table: TableId,
    /// The checkpoint timestamp its rows were read at.
    pub(crate) ts: Ts,
    len: usize,
    offsets_at: usize,
    index: PgmIndex,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run").field("path", &self.path).field("rows", &self.len).finish_non_exhaustive()
    }
}

impl Run {
    /// Opens and verifies the run at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path)?;
        Self::from_bytes(path, bytes)
    }

    fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self> {
        let corrupt =
            |offset: usize, reason: &str| Error::Corruption { file: path.to_path_buf(), offset: offset as u64, reason: reason.into() };
        if bytes.len() < HEADER_LEN as usize + FOOTER_LEN || &bytes[..8] != MAGIC {
            return Err(corrupt(0, "not an OmenDB checkpoint run (bad magic or too short)"));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(corrupt(8, &format!("unsupported run version {version}")));
        }
        let footer_at = bytes.len() - FOOTER_LEN;
        let footer = &bytes[footer_at..];
        if &footer[56..] != FOOTER_MAGIC {
            return Err(corrupt(footer_at, "bad footer magic (truncated run?)"));
        }
        let u64_at = |at: usize| u64::from_le_bytes(footer[at..at + 8].try_into().expect("8 bytes"));
        let u32_at = |at: usize| u32::from_le_bytes(footer[at..at + 4].try_into().expect("4 bytes"));
        if crc32c::crc32c(&footer[..52]) != u32_at(52) {
            return Err(corrupt(footer_at, "footer checksum mismatch"));
        }
        if crc32c::crc32c(&bytes[..footer_at]) != u32_at(48) {
            return Err(corrupt(0, "checksum mismatch"));
        }
        let (table, ts, n) = (u64_at(0), u64_at(8), u64_at(16));
        let (offsets_at, prefixes_at, index_at) = (u64_at(24), u64_at(32), u64_at(40));
        // The checksums passed, so these only fail for a run written wrong.
        let sections_fit = usize::try_from(n).ok().and_then(|n| n.checked_mul(8)).is_some_and(|size| {
            offsets_at >= HEADER_LEN
                && offsets_at.checked_add(size as u64) == Some(prefixes_at)
                && prefixes_at.checked_add(size as u64) == Some(index_at)
                && index_at <= footer_at as u64
        });
        if !sections_fit {
            return Err(corrupt(footer_at, "section offsets do not fit the file"));
        }
        let index = PgmIndex::from_bytes(&bytes[index_at as usize..footer_at]).map_err(|e| corrupt(index_at as usize, &e.to_string()))?;
        if index.len() != n as usize {
            return Err(corrupt(index_at as usize, "index length differs from the row count"));
        }
        let run = Self { path: path.to_path_buf(), table, ts, len: n as usize, offsets_at: offsets_at as usize, index, bytes };
        // Every entry must lie in the data section and ascend: checked once
        // here so lookups can trust the offsets.
        let mut prev: Option<&[u8]> = None;
        for i in 0..run.len {
            let (key, _) = run.try_entry(i).ok_or_else(|| corrupt(run.offset(i), "entry out of bounds"))?;
            if prev.is_some_and(|p| p >= key) {
                return Err(corrupt(run.offset(i), "keys out of order"));
            }
            let prefix = u64::from_le_bytes(bytes_at(&run.bytes, prefixes_at as usize + 8 * i));
            if prefix != key.prefix() {
                return Err(corrupt(prefixes_at as usize + 8 * i, "prefix differs from its key"));
            }
            prev = Some(key);
        }
        Ok(run)
    }

    fn offset(&self, i: usize) -> usize {
        u64::from_le_bytes(bytes_at(&self.bytes, self.offsets_at + 8 * i)) as usize
    }

    fn try_entry(&self, i: usize) -> Option<(&[u8], &[u8])> {
        let at = self.offset(i);
        let head = self.bytes.get(at..at.checked_add(8)?)?;
        let klen = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
        let rlen = u32::from_le_bytes(head[4..].try_into().ok()?) as usize;
        let key_end = (at + 8).checked_add(klen)?;
        let row_end = key_end.checked_add(rlen)?;
        if row_end > self.offsets_at {
            return None;
        }
        Some((&self.bytes[at + 8..key_end], &self.bytes[key_end..row_end]))
    }

    /// The key and row at position `i` (verified at open).
    fn entry(&self, i: usize) -> (&[u8], &[u8]) {
        self.try_entry(i).expect("entries verified at open")
    }

    /// Rows in the run.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The file's size in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The row stored under `key`, found through the learned index.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn get(&self, key: &[u8]) -> Option<&[u8]> {
        let i = self.index.lower_bound_by(key.prefix(), |i| self.entry(i).0 < key);
        (i < self.len).then(|| self.entry(i)).filter(|(k, _)| *k == key).map(|(_, row)| row)
    }

    /// Every (key, row), in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        (0..self.len).map(|i| self.entry(i))
    }
}

fn bytes_at(bytes: &[u8], at: usize) -> [u8; 8] {
    bytes[at..at + 8].try_into().expect("8 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn write(dir: &Path, rows: &BTreeMap<Vec<u8>, Vec<u8>>) -> PathBuf {
        let path = dir.join("t.run");
        let mut w = RunWriter::create(&path).unwrap();
        for (k, v) in rows {
            w.push(k, v).unwrap();
        }
        w.finish(7, 42).unwrap();
        path
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Every key is found with its row, every other key is absent
        /// (keys share prefixes often: short alphabets, long keys).
        #[test]
        fn lookups_match_a_btreemap(
            rows in proptest::collection::btree_map(proptest::collection::vec(0u8..3, 0..12), proptest::collection::vec(any::<u8>(), 0..5), 0..300),
            probes in proptest::collection::vec(proptest::collection::vec(0u8..3, 0..12), 0..50),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let run = Run::open(&write(dir.path(), &rows)).unwrap();
            prop_assert_eq!((run.table, run.ts, run.len()), (7, 42, rows.len()));
            for (k, v) in &rows {
                prop_assert_eq!(run.get(k), Some(v.as_slice()));
            }
            for p in &probes {
                prop_assert_eq!(run.get(p), rows.get(p).map(|v| v.as_slice()));
            }
            let all: Vec<_> = run.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            prop_assert_eq!(all, rows.into_iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn large_integer_keys_use_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let rows: BTreeMap<Vec<u8>, Vec<u8>> =
            (0..100_000u64).map(|i| (((i * 7) ^ (1 << 63)).to_be_bytes().to_vec(), i.to_le_bytes().to_vec())).collect();
        let run = Run::open(&write(dir.path(), &rows)).unwrap();
        for (k, v) in rows.iter().step_by(997) {
            assert_eq!(run.get(k), Some(v.as_slice()));
        }
        assert_eq!(run.get(&(3u64 ^ (1 << 63)).to_be_bytes()), None);
    }

    #[test]
    fn out_of_order_rows_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RunWriter::create(&dir.path().join("r")).unwrap();
        w.push(b"b", b"1").unwrap();
        assert!(w.push(b"a", b"2").is_err());
        assert!(w.push(b"b", b"2").is_err());
    }

    /// Any flipped byte or truncation is `Corruption` naming the file, never a panic.
    #[test]
    fn damage_anywhere_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let rows: BTreeMap<Vec<u8>, Vec<u8>> = (0..40u8).map(|i| (vec![i, i], vec![i; 3])).collect();
        let path = write(dir.path(), &rows);
        let good = std::fs::read(&path).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            match Run::from_bytes(&path, bad) {
                Err(Error::Corruption { file, .. }) => assert_eq!(file, path),
                other => panic!("flip at {at}: {other:?}"),
            }
        }
        for cut in 0..good.len() {
            assert!(matches!(Run::from_bytes(&path, good[..cut].to_vec()), Err(Error::Corruption { .. })), "cut at {cut}");
        }
    }
}
