//! The write-ahead log: one append-only file, `wal.log`, replayed on open.
//!
//! ```text
//! file:   | magic "OMENWAL\0" (8) | version: u32 LE | reserved: u32 (0) | record* |
//! record: | len: u32 LE | crc32c(payload): u32 LE | payload (len bytes) |
//! payload:
//!   1 = commit       | ts: u64 | n: var | n x (table: u64 | key: var+bytes | op: u8 | [row: var+bytes]) |
//!   2 = create table | ts: u64 | table: u64 | schema |
//!   3 = drop table   | ts: u64 | table: u64 |
//!   4 = create index | ts: u64 | index: u64 | table: u64 | name: var+bytes | n: var | n x column: var | unique: u8 |
//!   5 = drop index   | ts: u64 | index: u64 |
//! ```
//!
//! Index entries are not logged: replay rebuilds each index from its rows.
//!
//! op 0 deletes the key, 1 inserts a new key, 2 replaces the row of a live key;
//! rows use the format of [`crate::codec::row`].
//!
//! Replay reads records in order and stops at the first one that is short or
//! fails its checksum: an append is not atomic, so a crash can leave a torn
//! tail. The file is truncated there (and synced) before new appends, so a
//! torn record can never be followed by good ones.
//!
//! Durability: under [`Durability::Full`] a commit returns after an fdatasync
//! that covers its record. Commits share them (group commit): a committer
//! writes its record under the store's commit lock, then, outside it, waits
//! for a sync that covers it or runs one itself for every record written so
//! far ([`Wal::sync_to`]). The sync uses a second handle on the file, so
//! appends go on while it runs. [`Durability::Normal`] leaves syncing to a
//! background thread every [`NORMAL_SYNC_INTERVAL`]; [`Durability::Off`]
//! never syncs. Any failed write
//! or fsync poisons the log: the kernel may have dropped the dirty pages, so
//! retrying the fsync could report success for lost data (Rebello et al., ATC
//! 2020). The store then refuses commits until it is reopened.
//!
//! One file, plain write(2) and fdatasync(2); segments and io_uring are
//! still to come (the durability issue).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::alter::Reshape;
use crate::codec::bytes::{Reader, put_bytes, put_varint};
use crate::error::{Error, Result};
use crate::index::IndexDef;
use crate::schema::{TableId, TableSchema};

const MAGIC: &[u8; 8] = b"OMENWAL\0";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 16;
/// A record claiming more than this is treated as a torn length field.
const MAX_RECORD: u32 = 1 << 30;
/// How often [`Durability::Normal`] syncs the log in the background.
pub const NORMAL_SYNC_INTERVAL: Duration = Duration::from_millis(5);

/// When a commit's log record reaches stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// A commit returns after its log record is fdatasync'ed: it survives power loss.
    #[default]
    Full,
    /// The log is fsynced in the background every few milliseconds: a crash
    /// loses at most that window of commits, and never corrupts.
    Normal,
    /// Never fsync: the OS decides. Survives a process crash, not power loss.
    Off,
}

/// One row change in a commit record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WalWrite {
    pub table: TableId,
    pub key: Vec<u8>,
    pub op: WalOp,
}

/// What a commit did to a key. Rows are shared with the version chain, so
/// logging a commit copies no row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WalOp {
    Delete,
    Insert(Arc<[u8]>),
    Update(Arc<[u8]>),
}

/// A replayed log record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WalRecord {
    Commit {
        ts: u64,
        writes: Vec<WalWrite>,
    },
    CreateTable {
        ts: u64,
        id: TableId,
        schema: TableSchema,
    },
    DropTable {
        ts: u64,
        id: TableId,
    },
    CreateIndex {
        ts: u64,
        id: TableId,
        table: TableId,
        def: IndexDef,
    },
    DropIndex {
        ts: u64,
        id: TableId,
    },
    /// Table `id` rewritten as table `new_id` (its indexes get the ids
    /// after `new_id`); see [`crate::alter`].
    AlterTable {
        ts: u64,
        id: TableId,
        new_id: TableId,
        reshape: Reshape,
    },
}

impl WalRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            WalRecord::Commit { ts, writes } => {
                out.push(1);
                out.extend_from_slice(&ts.to_le_bytes());
                put_varint(&mut out, writes.len() as u64);
                for w in writes {
                    out.extend_from_slice(&w.table.to_le_bytes());
                    put_bytes(&mut out, &w.key);
                    match &w.op {
                        WalOp::Delete => out.push(0),
                        WalOp::Insert(row) => {
                            out.push(1);
                            put_bytes(&mut out, row);
                        }
                        WalOp::Update(row) => {
                            out.push(2);
                            put_bytes(&mut out, row);
                        }
                    }
                }
            }
            WalRecord::CreateTable { ts, id, schema } => {
                out.push(2);
                out.extend_from_slice(&ts.to_le_bytes());
                out.extend_from_slice(&id.to_le_bytes());
                schema.encode(&mut out);
            }
            WalRecord::DropTable { ts, id } => {
                out.push(3);
                out.extend_from_slice(&ts.to_le_bytes());
                out.extend_from_slice(&id.to_le_bytes());
            }
            WalRecord::CreateIndex { ts, id, table, def } => {
                out.push(4);
                out.extend_from_slice(&ts.to_le_bytes());
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(&table.to_le_bytes());
                put_bytes(&mut out, def.name.as_bytes());
                put_varint(&mut out, def.columns.len() as u64);
                for &c in &def.columns {
                    put_varint(&mut out, c as u64);
                }
                out.push(u8::from(def.unique));
            }
            WalRecord::DropIndex { ts, id } => {
                out.push(5);
                out.extend_from_slice(&ts.to_le_bytes());
                out.extend_from_slice(&id.to_le_bytes());
            }
            WalRecord::AlterTable { ts, id, new_id, reshape } => {
                out.push(6);
                out.extend_from_slice(&ts.to_le_bytes());
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(&new_id.to_le_bytes());
                reshape.encode(&mut out);
            }
        }
        out
    }

    fn decode(payload: &[u8]) -> Result<Self> {
        let mut r = Reader::new(payload);
        let rec = match r.u8()? {
            1 => {
                let ts = r.u64()?;
                let n = r.len()?;
                let mut writes = Vec::with_capacity(n);
                for _ in 0..n {
                    let table = r.u64()?;
                    let key = r.bytes()?.to_vec();
                    let op = match r.u8()? {
                        0 => WalOp::Delete,
                        1 => WalOp::Insert(Arc::from(r.bytes()?)),
                        2 => WalOp::Update(Arc::from(r.bytes()?)),
                        op => return Err(Error::Decode(format!("unknown write op {op}"))),
                    };
                    writes.push(WalWrite { table, key, op });
                }
                WalRecord::Commit { ts, writes }
            }
            2 => WalRecord::CreateTable { ts: r.u64()?, id: r.u64()?, schema: TableSchema::decode(&mut r)? },
            3 => WalRecord::DropTable { ts: r.u64()?, id: r.u64()? },
            4 => {
                let (ts, id, table) = (r.u64()?, r.u64()?, r.u64()?);
                let name = r.str()?.to_owned();
                let n = r.len()?;
                let columns = (0..n)
                    .map(|_| r.varint().and_then(|c| usize::try_from(c).map_err(|_| Error::Decode(format!("column index {c}")))))
                    .collect::<Result<Vec<_>>>()?;
                let unique = match r.u8()? {
                    0 => false,
                    1 => true,
                    b => return Err(Error::Decode(format!("bad unique flag {b}"))),
                };
                WalRecord::CreateIndex { ts, id, table, def: IndexDef { name, columns, unique } }
            }
            5 => WalRecord::DropIndex { ts: r.u64()?, id: r.u64()? },
            6 => WalRecord::AlterTable { ts: r.u64()?, id: r.u64()?, new_id: r.u64()?, reshape: Reshape::decode(&mut r)? },
            kind => return Err(Error::Decode(format!("unknown record kind {kind}"))),
        };
        if !r.is_empty() {
            return Err(Error::Decode("trailing bytes in record".into()));
        }
        Ok(rec)
    }
}

struct Shared {
    /// Appends go through this handle, one at a time.
    file: Mutex<File>,
    /// A second handle on the same file, for fdatasync while appends go on.
    sync_file: File,
    /// The end offset of the last record written (set under `file`).
    written: AtomicU64,
    group: Mutex<Group>,
    group_cv: Condvar,
    /// Set when an append or sync failed; the message says which.
    poisoned: Mutex<Option<String>>,
    stop: Mutex<bool>,
    stop_cv: Condvar,
}

/// Group commit's state: how far the log is durable, and whether a sync
/// is running (whose caller then leads the group).
#[derive(Default)]
struct Group {
    synced: u64,
    syncing: bool,
}

impl Shared {
    fn poison(&self, what: &str, e: &std::io::Error) -> Error {
        let msg = format!("{what}: {e}");
        self.poisoned.lock().get_or_insert(msg.clone());
        Error::WalFailed(msg)
    }

    fn check(&self) -> Result<()> {
        match &*self.poisoned.lock() {
            Some(msg) => Err(Error::WalFailed(msg.clone())),
            None => Ok(()),
        }
    }

    /// Returns once the log is durable up to `offset`: at once if a sync
    /// covered it, after the running sync if that covers it, else after a
    /// sync this caller runs for everything written by then.
    fn sync_to(&self, offset: u64) -> Result<()> {
        let mut group = self.group.lock();
        loop {
            // Durable first: a record a sync covered stays committed even if
            // a later write poisoned the log meanwhile.
            if group.synced >= offset {
                return Ok(());
            }
            self.check()?;
            if !group.syncing {
                break;
            }
            self.group_cv.wait(&mut group);
        }
        group.syncing = true;
        drop(group);
        // Read before the sync: every record written by now is in it.
        let target = self.written.load(Ordering::Acquire);
        let synced = self.sync_file.sync_data();
        let mut group = self.group.lock();
        group.syncing = false;
        let result = match synced {
            Ok(()) => {
                group.synced = group.synced.max(target);
                Ok(())
            }
            // Never retried: the kernel may have dropped the dirty pages.
            Err(e) => Err(self.poison("fdatasync", &e)),
        };
        drop(group);
        self.group_cv.notify_all();
        result
    }

    /// Syncs everything written so far.
    fn sync(&self) -> Result<()> {
        self.sync_to(self.written.load(Ordering::Acquire))
    }
}

/// The open log.
pub(crate) struct Wal {
    path: PathBuf,
    durability: Durability,
    shared: Arc<Shared>,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

impl Wal {
    /// Opens (creating if needed) `dir/wal.log`, returning the log and every
    /// whole record in it. A torn tail is cut off.
    pub(crate) fn open(dir: &Path, durability: Durability) -> Result<(Self, Vec<WalRecord>)> {
        let path = dir.join("wal.log");
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let corrupt = |offset: u64, reason: &str| Error::Corruption { file: path.clone(), offset, reason: reason.into() };

        let header_len = HEADER_LEN as usize;
        let mut records = Vec::new();
        let valid_end = if bytes.len() < header_len {
            // A crash during creation leaves a short header; nothing was ever logged.
            let mut header = MAGIC.to_vec();
            header.extend_from_slice(&VERSION.to_le_bytes());
            header.extend_from_slice(&0u32.to_le_bytes());
            if !header.starts_with(&bytes) {
                return Err(corrupt(0, "not an OmenDB write-ahead log (bad magic)"));
            }
            file.set_len(0)?;
            file.write_all(&header)?;
            file.sync_all()?;
            sync_dir(dir)?;
            HEADER_LEN
        } else {
            if &bytes[..8] != MAGIC {
                return Err(corrupt(0, "not an OmenDB write-ahead log (bad magic)"));
            }
            let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            if version != VERSION {
                return Err(corrupt(8, &format!("unsupported WAL version {version}")));
            }
            let mut pos = header_len;
            while let Some((payload, next)) = next_record(&bytes, pos) {
                let rec = WalRecord::decode(payload).map_err(|e| corrupt(pos as u64, &e.to_string()))?;
                records.push(rec);
                pos = next;
            }
            if pos < bytes.len() {
                file.set_len(pos as u64)?;
                file.sync_all()?;
            }
            pos as u64
        };
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(valid_end))?;

        let shared = Arc::new(Shared {
            sync_file: file.try_clone()?,
            file: Mutex::new(file),
            written: AtomicU64::new(valid_end),
            group: Mutex::new(Group::default()),
            group_cv: Condvar::new(),
            poisoned: Mutex::new(None),
            stop: Mutex::new(false),
            stop_cv: Condvar::new(),
        });
        let flusher = (durability == Durability::Normal).then(|| {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("omen-wal-sync".into())
                .spawn(move || {
                    let mut stop = shared.stop.lock();
                    while !*stop {
                        shared.stop_cv.wait_for(&mut stop, NORMAL_SYNC_INTERVAL);
                        parking_lot::MutexGuard::unlocked(&mut stop, || {
                            // A failure poisons the log; commits then report it.
                            let _ = shared.sync();
                        });
                    }
                })
                .map_err(Error::Io)
        });
        let flusher = flusher.transpose()?;
        Ok((Self { path, durability, shared, flusher: Mutex::new(flusher) }, records))
    }

    /// Appends one record and makes it as durable as the mode promises.
    pub(crate) fn append(&self, record: &WalRecord) -> Result<()> {
        match self.write(record)? {
            Some(end) => self.sync_to(end),
            None => Ok(()),
        }
    }

    /// Writes one record without waiting for it to be durable. Under
    /// [`Durability::Full`] returns the offset to pass to [`Self::sync_to`]
    /// before the commit may count as done.
    pub(crate) fn write(&self, record: &WalRecord) -> Result<Option<u64>> {
        self.shared.check()?;
        let payload = record.encode();
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l <= MAX_RECORD)
            .ok_or_else(|| Error::Schema { table: String::new(), reason: "transaction too large for one log record (1 GiB)".into() })?;
        let mut buf = Vec::with_capacity(payload.len() + 8);
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        buf.extend_from_slice(&payload);
        let mut file = self.shared.file.lock();
        file.write_all(&buf).map_err(|e| self.shared.poison("write", &e))?;
        let end = self.shared.written.fetch_add(buf.len() as u64, Ordering::AcqRel) + buf.len() as u64;
        Ok((self.durability == Durability::Full).then_some(end))
    }

    /// Waits until the log is durable up to `offset` (see the module docs).
    pub(crate) fn sync_to(&self, offset: u64) -> Result<()> {
        self.shared.sync_to(offset)
    }

    /// Stops the background syncer and syncs what is left (in every mode: a
    /// clean close loses nothing).
    pub(crate) fn close(&self) -> Result<()> {
        *self.shared.stop.lock() = true;
        self.shared.stop_cv.notify_all();
        if let Some(h) = self.flusher.lock().take() {
            let _ = h.join();
        }
        self.shared.sync()
    }

    /// Copies the whole records written so far into a new `dir/wal.log`,
    /// fsynced with its directory entry, while appends go on; returns the
    /// bytes copied. `written` only ever stands at a record's end, so the
    /// copy is a prefix of the commit order. Under [`Durability::Full`] it
    /// first waits for those records to be durable: the copy then holds no
    /// commit that could still fail.
    pub(crate) fn copy_to(&self, dir: &Path) -> Result<u64> {
        self.shared.check()?;
        let end = self.shared.written.load(Ordering::Acquire);
        if self.durability == Durability::Full {
            self.shared.sync_to(end)?;
        }
        let mut source = File::open(&self.path)?.take(end);
        let mut copy = OpenOptions::new().write(true).create_new(true).open(dir.join("wal.log"))?;
        let copied = std::io::copy(&mut source, &mut copy)?;
        if copied != end {
            return Err(Error::Corruption {
                file: self.path.clone(),
                offset: copied,
                reason: format!("the log ends before its written offset {end}"),
            });
        }
        copy.sync_all()?;
        sync_dir(dir)?;
        Ok(copied)
    }

    /// The log file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// The payload of the record at `pos` and the offset after it, if whole and intact.
fn next_record(bytes: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let head = bytes.get(pos..pos + 8)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len > MAX_RECORD {
        return None;
    }
    let end = pos + 8 + len as usize;
    let payload = bytes.get(pos + 8..end)?;
    (crc32c::crc32c(payload) == crc).then_some((payload, end))
}

/// fsyncs a directory, so a file created, renamed or removed in it persists.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ColumnDef;
    use crate::value::DataType;

    fn commit(ts: u64) -> WalRecord {
        WalRecord::Commit {
            ts,
            writes: vec![
                WalWrite { table: 1, key: vec![1, 2], op: WalOp::Insert(Arc::from(vec![9u8; 5])) },
                WalWrite { table: 1, key: vec![3], op: WalOp::Update(Arc::from(vec![8u8])) },
                WalWrite { table: 2, key: vec![], op: WalOp::Delete },
            ],
        }
    }

    #[test]
    fn records_round_trip() {
        let schema = TableSchema { name: "t".into(), columns: vec![ColumnDef::new("a", DataType::Int32).not_null()], primary_key: vec![0] };
        let def = IndexDef { name: "t_a".into(), columns: vec![0, 300], unique: true };
        for rec in [
            commit(7),
            WalRecord::AlterTable {
                ts: 6,
                id: 3,
                new_id: 9,
                reshape: crate::Alteration::AddColumn(ColumnDef::new("b", DataType::Text)).reshape(&schema).unwrap(),
            },
            WalRecord::CreateTable { ts: 1, id: 3, schema },
            WalRecord::DropTable { ts: 2, id: 3 },
            WalRecord::CreateIndex { ts: 4, id: 5, table: 3, def },
            WalRecord::DropIndex { ts: 5, id: 5 },
        ] {
            assert_eq!(WalRecord::decode(&rec.encode()).unwrap(), rec);
        }
    }

    #[test]
    fn replay_returns_appended_records() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [Durability::Full, Durability::Normal, Durability::Off] {
            let _ = std::fs::remove_file(dir.path().join("wal.log"));
            let (wal, recs) = Wal::open(dir.path(), mode).unwrap();
            assert!(recs.is_empty());
            wal.append(&commit(1)).unwrap();
            wal.append(&commit(2)).unwrap();
            wal.close().unwrap();
            drop(wal);
            let (_, recs) = Wal::open(dir.path(), mode).unwrap();
            assert_eq!(recs, vec![commit(1), commit(2)]);
        }
    }

    /// A commit whose record a sync covered is durable, whatever fails
    /// after; a record no sync covered is refused once the log is poisoned.
    #[test]
    fn a_synced_record_stays_committed_after_a_later_failure() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), Durability::Full).unwrap();
        let first = wal.write(&commit(1)).unwrap().unwrap();
        let second = wal.write(&commit(2)).unwrap().unwrap();
        wal.sync_to(first).unwrap();
        // Another committer's write fails after the sync covered both.
        let _ = wal.shared.poison("write", &std::io::Error::other("injected"));
        assert!(wal.sync_to(first).is_ok());
        assert!(wal.sync_to(second).is_ok());
        let third = second + 1;
        assert!(matches!(wal.sync_to(third), Err(Error::WalFailed(_))));
        assert!(matches!(wal.write(&commit(3)), Err(Error::WalFailed(_))));
    }

    #[test]
    fn torn_tail_is_cut_at_every_offset() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), Durability::Off).unwrap();
        wal.append(&commit(1)).unwrap();
        let first_end = std::fs::metadata(wal.path()).unwrap().len();
        wal.append(&commit(2)).unwrap();
        drop(wal);
        let full = std::fs::read(dir.path().join("wal.log")).unwrap();
        for cut in HEADER_LEN as usize..full.len() {
            std::fs::write(dir.path().join("wal.log"), &full[..cut]).unwrap();
            let (wal, recs) = Wal::open(dir.path(), Durability::Off).unwrap();
            let expect = if cut as u64 >= first_end { 1 } else { 0 };
            assert_eq!(recs.len(), expect, "cut at {cut}");
            // New appends follow the last whole record.
            wal.append(&commit(3)).unwrap();
            drop(wal);
            let (_, recs) = Wal::open(dir.path(), Durability::Off).unwrap();
            assert_eq!(recs.len(), expect + 1, "cut at {cut}");
            assert_eq!(recs.last(), Some(&commit(3)));
        }
    }

    #[test]
    fn flipped_byte_ends_replay_there() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), Durability::Off).unwrap();
        wal.append(&commit(1)).unwrap();
        wal.append(&commit(2)).unwrap();
        drop(wal);
        let mut bytes = std::fs::read(dir.path().join("wal.log")).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(dir.path().join("wal.log"), &bytes).unwrap();
        let (_, recs) = Wal::open(dir.path(), Durability::Off).unwrap();
        assert_eq!(recs, vec![commit(1)]);
    }

    #[test]
    fn bad_magic_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wal.log"), b"this is not a log file at all").unwrap();
        assert!(matches!(Wal::open(dir.path(), Durability::Off), Err(Error::Corruption { .. })));
    }
}
