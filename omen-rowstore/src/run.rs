//! Checkpoint runs: immutable files holding a table's rows as of a
//! checkpoint timestamp, sorted by key, with a learned index over the keys.
//! A checkpoint writes one run per table with what changed since the last
//! one: rows, and tombstones for keys deleted since (they mask the row an
//! older run holds). A table reads the rows it does not hold in memory from
//! its runs ([`crate::table`]), through memory maps.
//!
//! ```text
//! run:     | header | entry* | offsets | prefixes | blocks | bloom | index | footer |
//! header:  | magic "OMENRUN\0" (8) | version: u32 LE (3) | reserved: u32 (0) |
//! entry:   | key_len: u32 LE | row_len: u32 LE | key | row |        (ascending keys, no duplicates;
//!                                                                     row_len 0xFFFF_FFFF: a tombstone, no row)
//! offsets: | n x u64 LE |       each entry's offset in the file
//! prefixes:| n x u64 LE |       each key's first 8 bytes, big-endian, zero-padded
//! blocks:  | m x u32 LE |       crc32c of each 64 KiB block of the entries (the last one shorter)
//! bloom:   | b x 32 bytes |     a split-block Bloom filter over the keys ([`crate::bloom`]; version 3 on)
//! index:   | a serialized omen-learned PgmIndex over the prefixes |
//! footer:  | table: u64 | ts: u64 | n: u64 | offsets_at: u64 | prefixes_at: u64 | blocks_at: u64 | index_at: u64 |
//!          | crc32c(header, offsets..index): u32 | crc32c(footer fields): u32 | magic "OMENRUNF" (8) |
//! ```
//!
//! Integers are little-endian; the footer is the last 72 bytes. The bloom
//! filter lies between the blocks' checksums and `index_at`. Version 2
//! (the first runs) is read too: it has no tombstones and no filter. A
//! lookup first asks the filter, so the runs of a table that lack a key
//! cost a cache line each, not a search. Rows use
//! [`crate::codec::row`]'s format, keys [`crate::codec::key`]'s. A lookup
//! asks the learned index for a window of positions around the key's
//! prefix and searches the window by full key ([`PgmIndex::lower_bound_by`]):
//! keys that share a prefix (composite and text keys) are found all the same.
//!
//! Opening checks the header, the footer and the checksum of everything
//! after the entries (16 bytes a row), so it costs little however large the
//! table. The entries are checked a 64 KiB block at a time, the first time
//! a read touches the block: damage is [`Error::Corruption`] naming the file
//! when it is read, never a panic and never a wrong row.
//!
//! A run is written whole, synced, and only then named by a manifest
//! ([`crate::manifest`]); it is never written again, only removed, so the
//! memory map stays valid (see [`Run::open`]). The limit of reading
//! through a map: a disk that fails to read a page (EIO) raises SIGBUS in
//! the reading thread instead of an error.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use omen_learned::{Key, PgmIndex};

use crate::bloom;
use crate::error::{Error, Result};
use crate::schema::TableId;
use crate::snapshots::Ts;

const MAGIC: &[u8; 8] = b"OMENRUN\0";
const FOOTER_MAGIC: &[u8; 8] = b"OMENRUNF";
const VERSION: u32 = 3;
/// The oldest version read: 2 has the same layout, without tombstones.
const OLDEST_VERSION: u32 = 2;
/// The row length marking a tombstone (rows are shorter).
const TOMBSTONE: u32 = u32::MAX;
const HEADER_LEN: u64 = 16;
const FOOTER_LEN: usize = 72;
/// Entries are checksummed in blocks of this many bytes.
const BLOCK: u64 = 64 << 10;

/// The file name of table `table`'s run for the checkpoint at `ts`; a
/// later `attempt` at the same checkpoint gets a name of its own.
pub(crate) fn run_name(table: TableId, ts: Ts, attempt: u32) -> String {
    match attempt {
        0 => format!("run-{table:010}-{ts:020}.omr"),
        n => format!("run-{table:010}-{ts:020}-{n}.omr"),
    }
}

/// Whether `name` is a run file's name, and no path (a damaged manifest
/// must not make the store open or remove files elsewhere).
pub(crate) fn is_run_name(name: &str) -> bool {
    name.starts_with("run-") && name.ends_with(".omr") && !name.contains(['/', '\\']) && name != "." && name != ".."
}

/// Writes a run file from rows given in ascending key order.
pub(crate) struct RunWriter {
    path: PathBuf,
    out: BufWriter<File>,
    at: u64,
    block_crc: u32,
    blocks: Vec<u32>,
    offsets: Vec<u64>,
    prefixes: Vec<u64>,
    hashes: Vec<u64>,
    last_key: Option<Vec<u8>>,
}

impl RunWriter {
    /// Creates a new run file in `dir` for table `table` at checkpoint `ts`,
    /// under a name no file has (so no run a manifest names is ever
    /// written over); returns the name and the writer.
    pub(crate) fn create_new(dir: &Path, table: TableId, ts: Ts) -> Result<(String, Self)> {
        for attempt in 0.. {
            let name = run_name(table, ts, attempt);
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
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&header())?;
        Ok(Self {
            path,
            out,
            at: HEADER_LEN,
            block_crc: 0,
            blocks: Vec::new(),
            offsets: Vec::new(),
            prefixes: Vec::new(),
            hashes: Vec::new(),
            last_key: None,
        })
    }

    /// Writes entry bytes, keeping each block's checksum.
    fn data(&mut self, mut bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes)?;
        while !bytes.is_empty() {
            let room = (BLOCK - (self.at - HEADER_LEN) % BLOCK) as usize;
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.block_crc = crc32c::crc32c_append(self.block_crc, now);
            self.at += now.len() as u64;
            bytes = rest;
            if (self.at - HEADER_LEN).is_multiple_of(BLOCK) {
                self.blocks.push(std::mem::take(&mut self.block_crc));
            }
        }
        Ok(())
    }

    /// Appends a row, or with `None` a tombstone; keys must ascend strictly.
    pub(crate) fn push(&mut self, key: &[u8], row: Option<&[u8]>) -> Result<()> {
        if self.last_key.as_deref().is_some_and(|last| last >= key) {
            return Err(Error::Decode(format!("run {} written out of key order", self.path.display())));
        }
        let too_long = || Error::Decode("key or row longer than 4 GiB".into());
        let klen = u32::try_from(key.len()).map_err(|_| too_long())?;
        let rlen = match row {
            Some(row) => u32::try_from(row.len()).ok().filter(|&n| n != TOMBSTONE).ok_or_else(too_long)?,
            None => TOMBSTONE,
        };
        self.offsets.push(self.at);
        self.prefixes.push(key.prefix());
        self.hashes.push(bloom::hash(key));
        self.data(&klen.to_le_bytes())?;
        self.data(&rlen.to_le_bytes())?;
        self.data(key)?;
        self.data(row.unwrap_or_default())?;
        match &mut self.last_key {
            Some(last) => {
                last.clear();
                last.extend_from_slice(key);
            }
            None => self.last_key = Some(key.to_vec()),
        }
        Ok(())
    }

    /// Entries pushed so far.
    pub(crate) fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Writes the sections after the entries and the footer, and syncs the
    /// file; returns its size. The caller syncs the directory.
    pub(crate) fn finish(mut self, table: TableId, ts: Ts) -> Result<u64> {
        if !(self.at - HEADER_LEN).is_multiple_of(BLOCK) {
            self.blocks.push(self.block_crc);
        }
        let index = PgmIndex::build(&self.prefixes).map_err(|e| Error::Decode(format!("building the run's index: {e}")))?;
        let mut meta = Vec::with_capacity(16 * self.offsets.len() + 4 * self.blocks.len() + index.size_bytes() + 64);
        let offsets_at = self.at;
        meta.extend(self.offsets.iter().flat_map(|o| o.to_le_bytes()));
        let prefixes_at = offsets_at + meta.len() as u64;
        meta.extend(self.prefixes.iter().flat_map(|p| p.to_le_bytes()));
        let blocks_at = offsets_at + meta.len() as u64;
        meta.extend(self.blocks.iter().flat_map(|c| c.to_le_bytes()));
        meta.extend(bloom::build(&self.hashes));
        let index_at = offsets_at + meta.len() as u64;
        index.write_to(&mut meta);
        let mut footer = Vec::with_capacity(FOOTER_LEN);
        for v in [table, ts, self.offsets.len() as u64, offsets_at, prefixes_at, blocks_at, index_at] {
            footer.extend_from_slice(&v.to_le_bytes());
        }
        footer.extend_from_slice(&crc32c::crc32c_append(crc32c::crc32c(&header()), &meta).to_le_bytes());
        let footer_crc = crc32c::crc32c(&footer);
        footer.extend_from_slice(&footer_crc.to_le_bytes());
        footer.extend_from_slice(FOOTER_MAGIC);
        self.out.write_all(&meta)?;
        self.out.write_all(&footer)?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(offsets_at + meta.len() as u64 + FOOTER_LEN as u64)
    }
}

/// An open run: its file mapped into memory, and the learned index over
/// its keys.
pub(crate) struct Run {
    path: PathBuf,
    map: memmap2::Mmap,
    /// Whether the format has tombstones (version 3 on).
    tombstones: bool,
    /// The table the run was written for.
    pub(crate) table: TableId,
    /// The checkpoint timestamp its rows were read at.
    pub(crate) ts: Ts,
    len: usize,
    offsets_at: usize,
    blocks_at: usize,
    /// Where the Bloom filter lies in the map (empty: none, version 2).
    bloom: std::ops::Range<usize>,
    /// One bit per block: checked already.
    verified: Box<[AtomicU64]>,
    index: PgmIndex,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run").field("path", &self.path).field("rows", &self.len).finish_non_exhaustive()
    }
}

fn header() -> [u8; HEADER_LEN as usize] {
    let mut h = [0; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h
}

// Reads at fixed offsets of the mapped file, on every lookup, after open
// checked each section's bounds: not through `omen_files::codec::Reader`,
// whose cursor and error path a point read does not need.
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

impl Run {
    /// Maps and checks the run at `path` (header, footer, and everything
    /// after the entries; entries are checked as they are read).
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        if size < HEADER_LEN + FOOTER_LEN as u64 {
            return Err(Error::Corruption {
                file: path.to_path_buf(),
                offset: 0,
                reason: "not an OmenDB checkpoint run (too short)".into(),
            });
        }
        // SAFETY: a run file is immutable once written: it was synced whole
        // before any manifest named it, it is never opened for writing
        // again, and it is only ever removed (unlink keeps the mapping
        // valid). The data directory belongs to one process at a time (the
        // facade's LOCK file), so no other writer changes it under the map.
        // Every access through the map is bounds-checked below.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Self::from_map(path, map)
    }

    fn from_map(path: &Path, map: memmap2::Mmap) -> Result<Self> {
        let corrupt =
            |offset: usize, reason: &str| Error::Corruption { file: path.to_path_buf(), offset: offset as u64, reason: reason.into() };
        let bytes = &map[..];
        if bytes.len() < HEADER_LEN as usize + FOOTER_LEN || &bytes[..8] != MAGIC {
            return Err(corrupt(0, "not an OmenDB checkpoint run (bad magic or too short)"));
        }
        let version = u32_at(bytes, 8);
        if !(OLDEST_VERSION..=VERSION).contains(&version) {
            return Err(corrupt(8, &format!("unsupported run version {version}")));
        }
        let footer_at = bytes.len() - FOOTER_LEN;
        let footer = &bytes[footer_at..];
        if &footer[64..] != FOOTER_MAGIC {
            return Err(corrupt(footer_at, "bad footer magic (truncated run?)"));
        }
        if crc32c::crc32c(&footer[..60]) != u32_at(footer, 60) {
            return Err(corrupt(footer_at, "footer checksum mismatch"));
        }
        let (table, ts, n) = (u64_at(footer, 0), u64_at(footer, 8), u64_at(footer, 16));
        let (offsets_at, prefixes_at, blocks_at, index_at) =
            (u64_at(footer, 24), u64_at(footer, 32), u64_at(footer, 40), u64_at(footer, 48));
        let data = offsets_at.saturating_sub(HEADER_LEN);
        let nblocks = data.div_ceil(BLOCK);
        // The footer's checksum passed, so these only fail for a run written wrong.
        let bloom_at = blocks_at.checked_add(4 * nblocks);
        // Version 3 has a filter of whole blocks (at least one); 2 has none.
        let bloom_fits = |len: u64| match version {
            2 => len == 0,
            _ => len > 0 && len.is_multiple_of(bloom::BLOCK_BYTES as u64),
        };
        let sections_fit = n.checked_mul(8).is_some_and(|size| {
            offsets_at >= HEADER_LEN
                && offsets_at.checked_add(size) == Some(prefixes_at)
                && prefixes_at.checked_add(size) == Some(blocks_at)
                && bloom_at.is_some_and(|b| b <= index_at && bloom_fits(index_at - b))
                && index_at <= footer_at as u64
        });
        if !sections_fit {
            return Err(corrupt(footer_at, "section offsets do not fit the file"));
        }
        let (offsets_at, blocks_at, index_at) = (offsets_at as usize, blocks_at as usize, index_at as usize);
        let bloom = blocks_at + 4 * nblocks as usize..index_at;
        if crc32c::crc32c_append(crc32c::crc32c(&bytes[..HEADER_LEN as usize]), &bytes[offsets_at..footer_at]) != u32_at(footer, 56) {
            return Err(corrupt(offsets_at, "checksum mismatch in the header, offsets, prefixes, blocks or index"));
        }
        let index = PgmIndex::from_bytes(&bytes[index_at..footer_at]).map_err(|e| corrupt(index_at, &e.to_string()))?;
        if index.len() as u64 != n {
            return Err(corrupt(index_at, "index length differs from the row count"));
        }
        let verified = (0..nblocks.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        let tombstones = version >= 3;
        Ok(Self { path: path.to_path_buf(), tombstones, table, ts, len: n as usize, offsets_at, blocks_at, bloom, verified, index, map })
    }

    fn corrupt(&self, offset: usize, reason: &str) -> Error {
        Error::Corruption { file: self.path.clone(), offset: offset as u64, reason: reason.into() }
    }

    /// Checks the blocks holding bytes `lo..hi` of the entries, once each.
    fn verify(&self, lo: usize, hi: usize) -> Result<()> {
        let first = (lo as u64 - HEADER_LEN) / BLOCK;
        let last = (hi as u64 - 1 - HEADER_LEN) / BLOCK;
        for b in first..=last {
            let (word, bit) = ((b / 64) as usize, 1u64 << (b % 64));
            if self.verified[word].load(Ordering::Relaxed) & bit != 0 {
                continue;
            }
            let start = (HEADER_LEN + b * BLOCK) as usize;
            let end = (start + BLOCK as usize).min(self.offsets_at);
            if crc32c::crc32c(&self.map[start..end]) != u32_at(&self.map, self.blocks_at + 4 * b as usize) {
                return Err(self.corrupt(start, "checksum mismatch in a block of rows"));
            }
            self.verified[word].fetch_or(bit, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The key and row at position `i < len`, checked; `None` for a tombstone.
    pub(crate) fn entry(&self, i: usize) -> Result<(&[u8], Option<&[u8]>)> {
        let at = u64_at(&self.map, self.offsets_at + 8 * i) as usize;
        let out_of_bounds = || self.corrupt(at, "entry out of bounds");
        let head_end = at.checked_add(8).filter(|&e| at >= HEADER_LEN as usize && e <= self.offsets_at).ok_or_else(out_of_bounds)?;
        self.verify(at, head_end)?;
        let klen = u32_at(&self.map, at) as usize;
        let rlen = u32_at(&self.map, at + 4);
        let tombstone = self.tombstones && rlen == TOMBSTONE;
        let key_end = head_end.checked_add(klen).ok_or_else(out_of_bounds)?;
        let row_end =
            key_end.checked_add(if tombstone { 0 } else { rlen as usize }).filter(|&e| e <= self.offsets_at).ok_or_else(out_of_bounds)?;
        self.verify(at, row_end)?;
        Ok((&self.map[head_end..key_end], (!tombstone).then(|| &self.map[key_end..row_end])))
    }

    /// The file's name (its path's last component).
    pub(crate) fn name(&self) -> &str {
        self.path.file_name().and_then(|n| n.to_str()).unwrap_or_default()
    }

    /// Entries in the run (rows and tombstones).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The file's size in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.map.len() as u64
    }

    /// The position of the first key `>= key`, found through the learned index.
    pub(crate) fn lower_bound(&self, key: &[u8]) -> Result<usize> {
        let mut failed = None;
        let i = self.index.lower_bound_by(key.prefix(), |i| match self.entry(i) {
            Ok((k, _)) => k < key,
            Err(e) => {
                failed.get_or_insert(e);
                false
            }
        });
        failed.map_or(Ok(i), Err)
    }

    /// The entry stored under `key`: `None` if the run has none, else the
    /// row (`None` for a tombstone).
    #[cfg(test)]
    pub(crate) fn find(&self, key: &[u8]) -> Result<Option<Option<&[u8]>>> {
        self.find_hashed(key, bloom::hash(key))
    }

    /// The entry stored under `key` (as `find`), with the key's
    /// [`bloom::hash`] worked out by the caller (once for all of a table's
    /// runs).
    pub(crate) fn find_hashed(&self, key: &[u8], hash: u64) -> Result<Option<Option<&[u8]>>> {
        if !self.bloom.is_empty() && !bloom::may_contain(&self.map[self.bloom.clone()], hash) {
            return Ok(None);
        }
        let i = self.lower_bound(key)?;
        if i >= self.len {
            return Ok(None);
        }
        let (k, row) = self.entry(i)?;
        Ok((k == key).then_some(row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    type Entries = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

    fn write(dir: &Path, rows: &Entries) -> PathBuf {
        let path = dir.join("t.run");
        let mut w = RunWriter::create(&path).unwrap();
        for (k, v) in rows {
            w.push(k, v.as_deref()).unwrap();
        }
        assert_eq!(w.len(), rows.len());
        w.finish(7, 42).unwrap();
        path
    }

    type Owned = (Vec<u8>, Option<Vec<u8>>);

    fn all(run: &Run) -> Result<Vec<Owned>> {
        (0..run.len()).map(|i| run.entry(i).map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Every key is found with its row or tombstone, every other key is
        /// absent (keys share prefixes often: short alphabets, long keys).
        #[test]
        fn lookups_match_a_btreemap(
            rows in proptest::collection::btree_map(
                proptest::collection::vec(0u8..3, 0..12),
                proptest::option::weighted(0.8, proptest::collection::vec(any::<u8>(), 0..5)),
                0..300,
            ),
            probes in proptest::collection::vec(proptest::collection::vec(0u8..3, 0..12), 0..50),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let run = Run::open(&write(dir.path(), &rows)).unwrap();
            prop_assert_eq!((run.table, run.ts, run.len()), (7, 42, rows.len()));
            for (k, v) in &rows {
                prop_assert_eq!(run.find(k).unwrap(), Some(v.as_deref()));
            }
            for p in &probes {
                prop_assert_eq!(run.find(p).unwrap(), rows.get(p).map(|v| v.as_deref()));
                let expect = rows.range::<Vec<u8>, _>(p..).count();
                prop_assert_eq!(run.len() - run.lower_bound(p).unwrap(), expect);
            }
            prop_assert_eq!(all(&run).unwrap(), rows.into_iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn large_integer_keys_use_the_model_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Entries =
            (0..100_000u64).map(|i| (((i * 7) ^ (1 << 63)).to_be_bytes().to_vec(), Some(i.to_le_bytes().to_vec()))).collect();
        let run = Run::open(&write(dir.path(), &rows)).unwrap();
        assert!(!run.verified.is_empty() && run.size() > 3 * BLOCK);
        for (k, v) in rows.iter().step_by(997) {
            assert_eq!(run.find(k).unwrap(), Some(v.as_deref()));
        }
        assert_eq!(run.find(&(3u64 ^ (1 << 63)).to_be_bytes()).unwrap(), None);
    }

    #[test]
    fn out_of_order_rows_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RunWriter::create(&dir.path().join("r")).unwrap();
        w.push(b"b", Some(b"1")).unwrap();
        assert!(w.push(b"a", Some(b"2")).is_err());
        assert!(w.push(b"b", None).is_err());
    }

    /// A version-2 run (no tombstones) still opens and reads.
    #[test]
    fn version_2_runs_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Entries = (0..50u8).map(|i| (vec![i], Some(vec![i; 2]))).collect();
        let path = write(dir.path(), &rows);
        let v3 = std::fs::read(&path).unwrap();
        // Version 2 had no filter: cut it out and point the footer's index
        // offset back by its length.
        let footer_at = v3.len() - FOOTER_LEN;
        let (blocks_at, index_at) = (u64_at(&v3, footer_at + 40) as usize, u64_at(&v3, footer_at + 48) as usize);
        let bloom_at = blocks_at + 4; // one block of entries: one checksum
        let mut bytes = [&v3[..bloom_at], &v3[index_at..]].concat();
        let footer_at = bytes.len() - FOOTER_LEN;
        bytes[footer_at + 48..footer_at + 56].copy_from_slice(&(bloom_at as u64).to_le_bytes());
        bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
        // Re-seal the checksums the version and offset are under.
        let offsets_at = u64_at(&bytes, footer_at + 24) as usize;
        let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[..HEADER_LEN as usize]), &bytes[offsets_at..footer_at]);
        bytes[footer_at + 56..footer_at + 60].copy_from_slice(&crc.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[footer_at..footer_at + 60]);
        bytes[footer_at + 60..footer_at + 64].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let run = Run::open(&path).unwrap();
        assert!(!run.tombstones && run.bloom.is_empty());
        for (k, v) in &rows {
            assert_eq!(run.find(k).unwrap(), Some(v.as_deref()));
        }
        assert_eq!(run.find(b"absent").unwrap(), None);
        assert_eq!(all(&run).unwrap(), rows.into_iter().collect::<Vec<_>>());
    }

    /// Any flipped byte or truncation is `Corruption` naming the file, at
    /// open or when the damaged rows are read; never a panic or a wrong row.
    #[test]
    fn damage_anywhere_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Entries = (0..40u8).map(|i| (vec![i, i], (i % 5 != 0).then(|| vec![i; 3]))).collect();
        let path = write(dir.path(), &rows);
        let good = std::fs::read(&path).unwrap();
        let bad_path = dir.path().join("bad.run");
        let open = |bytes: &[u8]| {
            std::fs::write(&bad_path, bytes).unwrap();
            Run::open(&bad_path).and_then(|run| all(&run))
        };
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            match open(&bad) {
                Err(Error::Corruption { file, .. }) => assert_eq!(file, bad_path),
                other => panic!("flip at {at}: {other:?}"),
            }
        }
        for cut in 0..good.len() {
            assert!(matches!(open(&good[..cut]), Err(Error::Corruption { .. })), "cut at {cut}");
        }
    }
}
