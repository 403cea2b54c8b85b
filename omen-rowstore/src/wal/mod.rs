//! The write-ahead log: append-only segment files, replayed on open.
//!
//! Segments are `wal-0000000001.log`, `wal-0000000002.log`, ... (a log
//! written before segments existed is one file, `wal.log`, read as segment
//! 0). Appends go to the newest; once a record would take it past the
//! segment size it is synced whole and sealed, and the next one takes its
//! place (its directory entry synced). A checkpoint removes the sealed
//! segments whose records it holds ([`Wal::remove_through`]).
//!
//! The next segment is made ahead, in the background, once the active one
//! is half full: `wal-spare`, zeros, synced, then renamed into place at the
//! roll and given its header. A segment made empty (a new log's first)
//! asks for one at once and rolls into it when it is ready; spares start
//! at 1 MiB and double up to the segment size, so a new store never writes
//! a whole segment of zeros up front. Appending into it never changes the file's size, so a
//! commit's fdatasync writes no metadata (measured here: 99 us against 158
//! us for an append that grows the file). Zeros after a segment's last
//! record are that room, not damage; a spare found on open is remade.
//!
//! ```text
//! segment: | magic "OMENWAL\0" (8) | version: u32 LE | reserved: u32 (0) | record* |
//! record: | len: u32 LE | crc32c(payload): u32 LE | payload (len bytes) |
//! payload:
//!   1 = commit       | ts: u64 | n: var | n x (table: u64 | key: var+bytes | op: u8 | [row: var+bytes]) |
//!   2 = create table | ts: u64 | table: u64 | schema |
//!   3 = drop table   | ts: u64 | table: u64 |
//!   4 = create index | ts: u64 | index: u64 | table: u64 | name: var+bytes | n: var | n x column: var | unique: u8 |
//!   5 = drop index   | ts: u64 | index: u64 |
//!   6 = alter table  | ts: u64 | table: u64 | new table: u64 | reshape |
//! ```
//!
//! Index entries are not logged: replay rebuilds each index from its rows.
//!
//! op 0 deletes the key, 1 inserts a new key, 2 replaces the row of a live key;
//! rows use the format of [`crate::codec::row`].
//!
//! Replay reads records in order and stops at the first one in the newest
//! segment that is short or fails its checksum: an append is not atomic, so
//! a crash can leave a torn tail. The segment is truncated there (and
//! synced) before new appends, so a torn record can never be followed by
//! good ones. A sealed segment was synced whole, so damage there, or a
//! missing segment, is [`Error::Corruption`] naming the file.
//!
//! Durability: under [`Durability::Full`] a commit returns after an fdatasync
//! that covers its record. Commits share one write and one fdatasync (group
//! commit): a committer adds its record to the active segment's pending
//! bytes under the store's commit lock (no system call, unless the record
//! fills the segment: then the roll writes and syncs there), then, outside it,
//! waits for a sync that covers it or leads one itself: the leader writes
//! every pending record with one write and syncs ([`Wal::sync_to`]), while
//! the next group gathers. [`Durability::Normal`] and [`Durability::Off`]
//! write each record at once (so a process crash loses nothing); Normal
//! leaves syncing to a background thread every [`NORMAL_SYNC_INTERVAL`],
//! Off never syncs. Any failed write or fsync poisons the log: the kernel
//! may have dropped the dirty pages, so retrying the fsync could report
//! success for lost data (Rebello et al., ATC 2020). The store then
//! refuses commits until it is reopened.
//!
//! The bytes reach the files through an I/O backend ([`IoBackend`],
//! `io.rs`): plain pwrite(2) and fdatasync(2) (the default: it measured
//! faster), or io_uring, which links a group's write and fdatasync in one
//! submission (`uring.rs`). Both run the same tests.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};

pub(crate) mod io;
mod uring;

pub use io::IoBackend;
pub(crate) use io::LogIo;
use io::SegmentFile;
pub(crate) use io::backend;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::alter::Reshape;
use crate::codec::bytes::{Reader, put_bytes, put_varint};
use crate::error::{Error, Result, failpoint, injected};
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

impl WalOp {
    /// The change-stream op it stands for.
    pub(crate) fn change_op(&self) -> crate::changes::ChangeOp {
        match self {
            WalOp::Delete => crate::changes::ChangeOp::Delete,
            WalOp::Insert(_) => crate::changes::ChangeOp::Insert,
            WalOp::Update(_) => crate::changes::ChangeOp::Update,
        }
    }

    /// The new row; `None` for a delete.
    pub(crate) fn into_row(self) -> Option<Arc<[u8]>> {
        match self {
            WalOp::Delete => None,
            WalOp::Insert(r) | WalOp::Update(r) => Some(r),
        }
    }
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
    /// The commit timestamp the record was logged at.
    pub(crate) fn ts(&self) -> u64 {
        match self {
            WalRecord::Commit { ts, .. }
            | WalRecord::CreateTable { ts, .. }
            | WalRecord::DropTable { ts, .. }
            | WalRecord::CreateIndex { ts, .. }
            | WalRecord::DropIndex { ts, .. }
            | WalRecord::AlterTable { ts, .. } => *ts,
        }
    }

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
                def.encode(&mut out);
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
                WalRecord::CreateIndex { ts, id, table, def: IndexDef::decode(&mut r)? }
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

/// The log's segment files: `wal-{seq:010}.log`, or `wal.log` for segment 0
/// (the single file of logs written before segments existed).
fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    if seq == 0 { dir.join("wal.log") } else { dir.join(format!("wal-{seq:010}.log")) }
}

/// The segment numbers present in `dir`, ascending.
fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == "wal.log" {
            seqs.push(0);
        } else if let Some(digits) = name.strip_prefix("wal-").and_then(|n| n.strip_suffix(".log"))
            && digits.len() == 10
            && digits.bytes().all(|b| b.is_ascii_digit())
        {
            seqs.push(digits.parse().expect("ten digits"));
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

fn header() -> Vec<u8> {
    let mut header = MAGIC.to_vec();
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header
}

/// A segment no longer appended to: whole and synced.
#[derive(Debug, Clone, Copy)]
struct Sealed {
    seq: u64,
    len: u64,
    /// The newest timestamp logged in it (0 if none).
    max_ts: u64,
}

/// The segment appends go to, and the sealed ones before it.
struct Active {
    seg: Arc<dyn SegmentFile>,
    seq: u64,
    /// The segment's length, header and `pending` included.
    len: u64,
    /// Under [`Durability::Full`], records logged but not yet written to the
    /// file: the next group sync writes them all with one call.
    pending: Vec<u8>,
    /// Whether the spare for the next roll was asked for (once the segment
    /// is half full, or at once for a segment made empty).
    spare_asked: bool,
    /// The length at which the segment rolls: a spare's size, or the
    /// segment size for one made empty.
    capacity: u64,
    /// Whether the segment was zero-filled ahead (a spare).
    preallocated: bool,
    max_ts: u64,
    sealed: Vec<Sealed>,
    /// Every record newer than this is in the segments (removal raises it).
    trimmed: u64,
    /// Log holds: id -> the timestamp after which records must stay.
    holds: std::collections::BTreeMap<u64, u64>,
    next_hold: u64,
}

struct Shared {
    dir: PathBuf,
    io: Arc<dyn LogIo>,
    /// A segment is sealed once a record would take it past this.
    segment_bytes: u64,
    /// Appends go through this lock, one at a time.
    active: Mutex<Active>,
    /// Held while pending records are written and synced, so a roll (which
    /// takes it after `active`) never seals a segment with a write still
    /// in flight.
    flush: Mutex<()>,
    /// Record bytes written over the log's life, across segments (set
    /// under `active`): group commit's offsets.
    written: AtomicU64,
    group: Mutex<Group>,
    group_cv: Condvar,
    /// Set when an append or sync failed; the message says which.
    poisoned: Mutex<Option<String>>,
    stop: Mutex<bool>,
    stop_cv: Condvar,
    /// The next segment, made ahead of time in the background.
    spare: Mutex<Spare>,
    /// The size of the next spare: 1 MiB at first, doubling with each one
    /// taken, up to the segment size.
    next_spare: AtomicU64,
}

/// A zero-filled segment file made ahead of the roll that takes it (see the
/// module docs); `ready` once `wal-spare` is whole and synced.
#[derive(Default)]
struct Spare {
    ready: bool,
    /// The size of the spare made or being made.
    len: u64,
    maker: Option<JoinHandle<()>>,
}

const SPARE: &str = "wal-spare";
/// The size of the first spare a log makes; each next one doubles, up to
/// the segment size.
const FIRST_SPARE: u64 = 1 << 20;
const SPARE_TEMP: &str = "wal-spare.tmp";

/// Writes `dir/wal-spare`: `len` zero bytes, synced, named by a rename. A
/// failure removes what it wrote (a full disk needs the room for the log).
fn make_spare(dir: &Path, len: u64) -> std::io::Result<()> {
    let made = write_spare(dir, len);
    if made.is_err() {
        let _ = std::fs::remove_file(dir.join(SPARE_TEMP));
    }
    made
}

fn write_spare(dir: &Path, len: u64) -> std::io::Result<()> {
    let temp = dir.join(SPARE_TEMP);
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&temp)?;
    let zeros = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    std::fs::rename(&temp, dir.join(SPARE))?;
    File::open(dir)?.sync_all()
}

/// Marks the group's sync finished when dropped, whether the leader
/// returned or panicked, and wakes the waiters.
struct Leading<'a>(&'a Shared);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.0.group.lock().syncing = false;
        self.0.group_cv.notify_all();
    }
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
        // Whatever happens below (a panic too), the next caller may lead.
        let _leading = Leading(self);
        let target = self.flush_pending()?;
        let mut group = self.group.lock();
        group.synced = group.synced.max(target);
        Ok(())
    }

    /// Writes and syncs the active segment's pending records (or only
    /// syncs, if none are pending); returns the log offset now durable.
    /// Everything logged before is in those records, written already, or
    /// in a segment sealed (and synced) before.
    fn flush_pending(&self) -> Result<u64> {
        let flush;
        let (seg, buf, at, target) = {
            let mut active = self.active.lock();
            flush = self.flush.lock();
            // Checked under `flush`, which every failed write held while it
            // poisoned the log: bytes a failed write lost may lie before
            // these, so nothing from here on can count as durable.
            self.check()?;
            let buf = std::mem::take(&mut active.pending);
            let at = active.len - buf.len() as u64;
            (Arc::clone(&active.seg), buf, at, self.written.load(Ordering::Acquire))
        };
        let synced = if failpoint("wal::sync") {
            Err(injected("wal::sync"))
        } else if buf.is_empty() {
            seg.sync()
        } else {
            seg.write_and_sync(&buf, at)
        };
        // Never retried: the kernel may have dropped the dirty pages.
        let result = synced.map(|()| target).map_err(|e| self.poison("writing and syncing the log", &e));
        drop(flush);
        result
    }

    /// Starts making a spare segment of `len` bytes in the background,
    /// unless one is ready or being made. A failure leaves none: the next
    /// roll then creates its segment the plain way.
    fn prepare_spare(self: &Arc<Self>, len: u64) {
        let mut spare = self.spare.lock();
        if spare.ready || spare.maker.as_ref().is_some_and(|m| !m.is_finished()) {
            return;
        }
        spare.len = len;
        let shared = Arc::clone(self);
        spare.maker = std::thread::Builder::new()
            .name("omen-wal-spare".into())
            .spawn(move || {
                let made = make_spare(&shared.dir, len).is_ok();
                shared.spare.lock().ready = made;
            })
            .ok();
    }

    /// Whether a spare is ready for the next roll.
    fn spare_ready(&self) -> bool {
        self.spare.lock().ready
    }

    /// Syncs everything written so far.
    fn sync(&self) -> Result<()> {
        self.sync_to(self.written.load(Ordering::Acquire))
    }

    /// Seals the active segment (synced whole first, so a torn record can
    /// only ever be in the newest segment) and starts the next one. A
    /// failed sync poisons the log; failing to create the next segment does
    /// not (the sealed one is whole): appends then go on in the old one.
    fn roll(self: &Arc<Self>, active: &mut Active) -> Result<()> {
        {
            let _flush = self.flush.lock();
            // As in `flush_pending`: after a failed write nothing is synced.
            self.check()?;
            let buf = std::mem::take(&mut active.pending);
            let at = active.len - buf.len() as u64;
            let synced = if buf.is_empty() { active.seg.sync() } else { active.seg.write_and_sync(&buf, at) };
            synced.map_err(|e| self.poison("writing and syncing a full segment", &e))?;
        }
        // Every record written so far is durable now: its committers may go.
        let written = self.written.load(Ordering::Acquire);
        {
            let mut group = self.group.lock();
            group.synced = group.synced.max(written);
        }
        self.group_cv.notify_all();
        let seq = active.seq + 1;
        let path = segment_path(&self.dir, seq);
        let created = (|| {
            if failpoint("wal::roll") {
                return Err(injected("wal::roll"));
            }
            let mut spare = {
                let mut s = self.spare.lock();
                std::mem::take(&mut s.ready).then_some(s.len)
            };
            // Zero-filled ahead: appends then never change the file's size,
            // and an fdatasync need not write its metadata. A spare that
            // cannot be renamed in is dropped: the roll makes a plain file.
            if spare.is_some() && std::fs::rename(self.dir.join(SPARE), &path).is_err() {
                let _ = std::fs::remove_file(self.dir.join(SPARE));
                spare = None;
            }
            let file = if spare.is_some() {
                let file = OpenOptions::new().read(true).write(true).open(&path)?;
                std::os::unix::fs::FileExt::write_all_at(&file, &header(), 0)?;
                file.sync_data()?;
                file
            } else {
                let mut file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
                file.write_all(&header())?;
                file.sync_all()?;
                file
            };
            File::open(&self.dir)?.sync_all()?;
            Ok((self.io.segment(file, HEADER_LEN)?, spare))
        })();
        let (seg, spare) = match created {
            Ok(made) => made,
            Err(e) => {
                // The segment goes on; it may ask for a spare again.
                active.spare_asked = false;
                // A newer segment left behind would make the old one's
                // later records unreachable: it must go, or the log stops.
                let removed = match std::fs::remove_file(&path) {
                    Err(gone) if gone.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(gone) => Err(gone),
                    Ok(()) => File::open(&self.dir).and_then(|d| d.sync_all()),
                };
                if let Err(gone) = removed {
                    return Err(self.poison(&format!("removing a half-made {}", path.display()), &gone));
                }
                return Err(Error::Io(e));
            }
        };
        active.sealed.push(Sealed { seq: active.seq, len: active.len, max_ts: active.max_ts });
        active.seg = seg;
        active.seq = seq;
        active.len = HEADER_LEN;
        active.spare_asked = false;
        active.capacity = spare.unwrap_or(self.segment_bytes);
        active.preallocated = spare.is_some();
        if let Some(len) = spare {
            // The ramp goes on from here, checkpoint seals or not.
            self.next_spare.store((2 * len).min(self.segment_bytes), Ordering::Relaxed);
        }
        Ok(())
    }
}

/// How to open a [`Wal`].
#[derive(Clone)]
pub(crate) struct WalOptions {
    pub durability: Durability,
    pub io: Arc<dyn LogIo>,
    /// Segment size: a segment is sealed once the next record would take
    /// it past this (a bigger record gets a segment of its own).
    pub segment_bytes: u64,
}

/// What one segment's replay found.
struct Replayed {
    len: u64,
    /// The first record's timestamp (0 if none).
    min_ts: u64,
    max_ts: u64,
    /// Whether the segment ended in a torn or short record (cut off).
    torn: bool,
}

/// The open log.
pub(crate) struct Wal {
    durability: Durability,
    shared: Arc<Shared>,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`, passing `apply` every
    /// whole record newer than `after`, in log order; an error from `apply`
    /// is [`Error::Corruption`] at that record. A torn tail of the
    /// newest segment is cut off; damage anywhere else is
    /// [`Error::Corruption`] naming the segment, since a sealed segment was
    /// synced whole.
    pub(crate) fn open(
        dir: &Path,
        options: WalOptions,
        after: u64,
        mut apply: impl FnMut(WalRecord) -> std::result::Result<(), String>,
    ) -> Result<Self> {
        let mut seqs = list_segments(dir)?;
        if seqs.is_empty() {
            seqs.push(1);
        }
        if let Some(w) = seqs.windows(2).find(|w| w[1] != w[0] + 1) {
            let missing = segment_path(dir, w[0] + 1);
            return Err(Error::Corruption { file: missing, offset: 0, reason: "log segment missing".into() });
        }
        let mut sealed = Vec::new();
        let mut last_ts = 0;
        let mut first_ts = None;
        let last = seqs.len() - 1;
        let mut active = None;
        for (i, &seq) in seqs.iter().enumerate() {
            let path = segment_path(dir, seq);
            let newest = i == last;
            let mut file = OpenOptions::new().read(true).write(true).create(newest).truncate(false).open(&path)?;
            let got = replay_segment(dir, &path, &mut file, newest, &mut last_ts, after, &mut apply)?;
            if got.min_ts > 0 {
                first_ts.get_or_insert(got.min_ts);
            }
            if got.torn && !newest {
                return Err(Error::Corruption {
                    file: path,
                    offset: got.len,
                    reason: "sealed log segment ends in a damaged record".into(),
                });
            }
            if newest {
                // Zero-filled room past the records: a spare taken earlier.
                let size = file.metadata()?.len();
                let preallocated = size > got.len;
                let seg = options.io.segment(file, got.len)?;
                active = Some(Active {
                    seg,
                    seq,
                    len: got.len,
                    pending: Vec::new(),
                    spare_asked: false,
                    capacity: if preallocated {
                        size.min(options.segment_bytes.max(HEADER_LEN + 1))
                    } else {
                        options.segment_bytes.max(HEADER_LEN + 1)
                    },
                    preallocated,
                    max_ts: got.max_ts.max(last_ts),
                    sealed: Vec::new(),
                    trimmed: 0,
                    holds: std::collections::BTreeMap::new(),
                    next_hold: 1,
                });
            } else {
                sealed.push(Sealed { seq, len: got.len, max_ts: got.max_ts });
            }
        }
        let mut active = active.expect("at least one segment");
        active.sealed = sealed;
        // The log holds every record from the first one it still has; with
        // none, every commit is in the checkpoint (`after`).
        active.trimmed = first_ts.map_or(after, |ts| ts - 1);

        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            io: Arc::clone(&options.io),
            segment_bytes: options.segment_bytes.max(HEADER_LEN + 1),
            active: Mutex::new(active),
            flush: Mutex::new(()),
            written: AtomicU64::new(0),
            group: Mutex::new(Group::default()),
            group_cv: Condvar::new(),
            poisoned: Mutex::new(None),
            stop: Mutex::new(false),
            stop_cv: Condvar::new(),
            spare: Mutex::new(Spare::default()),
            next_spare: AtomicU64::new(FIRST_SPARE.min(options.segment_bytes.max(HEADER_LEN + 1))),
        });
        // A spare a crash left may be partial: the next one is made anew.
        for name in [SPARE, SPARE_TEMP] {
            match std::fs::remove_file(dir.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }

        let durability = options.durability;
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
        Ok(Self { durability, shared, flusher: Mutex::new(flusher) })
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
        if failpoint("wal::write") {
            return Err(self.shared.poison("write", &injected("wal::write")));
        }
        let payload = record.encode();
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l <= MAX_RECORD)
            .ok_or_else(|| Error::Schema { table: String::new(), reason: "transaction too large for one log record (1 GiB)".into() })?;
        let mut buf = Vec::with_capacity(payload.len() + 8);
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        buf.extend_from_slice(&payload);
        let n = buf.len() as u64;
        let mut active = self.shared.active.lock();
        // Full, or made empty while a zero-filled spare now waits.
        let roll = active.len + n > active.capacity || (!active.preallocated && active.spare_asked && self.shared.spare_ready());
        if active.len > HEADER_LEN && roll && self.shared.roll(&mut active).is_err() {
            // Unless the roll poisoned the log, the record goes on in the
            // full segment, and the next write tries the roll again.
            self.shared.check()?;
        }
        if self.durability == Durability::Full {
            active.pending.extend_from_slice(&buf);
        } else {
            let at = active.len;
            active.seg.write_at(&buf, at).map_err(|e| self.shared.poison("write", &e))?;
        }
        active.len += n;
        active.max_ts = active.max_ts.max(record.ts());
        // A spare for the next roll: once the segment is half full; at once
        // for a segment made empty (a new log's first one), then small and
        // doubling, so the log soon appends only into zero-filled room
        // without a new store writing a whole segment of zeros up front.
        let segment_bytes = self.shared.segment_bytes;
        let early = !active.preallocated && segment_bytes >= 2 * FIRST_SPARE;
        if !active.spare_asked && (active.len > active.capacity / 2 || early) {
            active.spare_asked = true;
            self.shared.prepare_spare(self.shared.next_spare.load(Ordering::Relaxed));
        }
        let end = self.shared.written.fetch_add(n, Ordering::AcqRel) + n;
        Ok((self.durability == Durability::Full).then_some(end))
    }

    /// Waits until the log is durable up to `offset` (see the module docs).
    pub(crate) fn sync_to(&self, offset: u64) -> Result<()> {
        self.shared.sync_to(offset)
    }

    /// Seals the active segment if it holds records, so that a checkpoint
    /// covering them can remove it; returns the newest timestamp logged so
    /// far. Every record up to it is durable when this returns.
    pub(crate) fn seal(&self) -> Result<u64> {
        self.shared.check()?;
        let mut active = self.shared.active.lock();
        if active.len > HEADER_LEN {
            self.shared.roll(&mut active)?;
        }
        Ok(active.max_ts)
    }

    /// Removes the sealed segments, oldest first, whose records are all at
    /// or before `ts` (a checkpoint holds them) and before every hold;
    /// returns the bytes freed. The caller must have made that checkpoint
    /// durable first.
    pub(crate) fn remove_through(&self, ts: u64) -> Result<u64> {
        let gone: Vec<Sealed> = {
            let mut active = self.shared.active.lock();
            let bound = active.holds.values().copied().fold(ts, u64::min);
            let n = active.sealed.iter().take_while(|s| s.max_ts <= bound).count();
            let gone: Vec<Sealed> = active.sealed.drain(..n).collect();
            if let Some(last) = gone.last() {
                active.trimmed = active.trimmed.max(last.max_ts);
            }
            gone
        };
        // Oldest first, each unlink synced before the next: unsynced
        // unlinks may persist in any order, and a crash must never leave a
        // gap between segments (open would refuse it).
        for s in &gone {
            match std::fs::remove_file(segment_path(&self.shared.dir, s.seq)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
            sync_dir(&self.shared.dir)?;
        }
        Ok(gone.iter().map(|s| s.len).sum())
    }

    /// Every record newer than this is in the log.
    pub(crate) fn trimmed(&self) -> u64 {
        self.shared.active.lock().trimmed
    }

    /// Keeps every record newer than `after` from removal until
    /// [`Self::release`]; returns the hold's id. Fails if the log no longer
    /// holds them all.
    pub(crate) fn hold(&self, after: u64) -> Result<u64> {
        let mut active = self.shared.active.lock();
        if after < active.trimmed {
            return Err(Error::LogTrimmed { after, trimmed: active.trimmed });
        }
        let id = active.next_hold;
        active.next_hold += 1;
        active.holds.insert(id, after);
        Ok(id)
    }

    /// Moves hold `id` forward to `after` (never back).
    pub(crate) fn advance_hold(&self, id: u64, after: u64) {
        if let Some(at) = self.shared.active.lock().holds.get_mut(&id) {
            *at = (*at).max(after);
        }
    }

    /// Lets the records hold `id` kept go with the next checkpoint.
    pub(crate) fn release(&self, id: u64) {
        self.shared.active.lock().holds.remove(&id);
    }

    /// The segment files holding every record newer than `after`, oldest
    /// first, opened (so a checkpoint removing one meanwhile does not take
    /// it from the reader); the last is the active segment, which may be
    /// being written. Fails if the log no longer holds them all.
    pub(crate) fn segments_after(&self, after: u64) -> Result<Vec<(PathBuf, File)>> {
        let active = self.shared.active.lock();
        if after < active.trimmed {
            return Err(Error::LogTrimmed { after, trimmed: active.trimmed });
        }
        let seqs = active.sealed.iter().filter(|s| s.max_ts > after).map(|s| s.seq).chain([active.seq]);
        seqs.map(|seq| {
            let path = segment_path(&self.shared.dir, seq);
            let file = File::open(&path)?;
            Ok((path, file))
        })
        .collect()
    }

    /// The I/O backend's name (see [`IoBackend`]).
    pub(crate) fn backend(&self) -> &'static str {
        self.shared.io.name()
    }

    /// Bytes in the log's segments, headers included.
    pub(crate) fn len(&self) -> u64 {
        self.len_after(0)
    }

    /// Bytes in the segments holding records newer than `ts` (the active
    /// one, always): what a checkpoint at `ts` has not yet taken in, though
    /// a hold may keep older ones.
    pub(crate) fn len_after(&self, ts: u64) -> u64 {
        let active = self.shared.active.lock();
        active.len + active.sealed.iter().filter(|s| s.max_ts > ts).map(|s| s.len).sum::<u64>()
    }

    /// Stops the background syncer and syncs what is left (in every mode: a
    /// clean close loses nothing).
    pub(crate) fn close(&self) -> Result<()> {
        *self.shared.stop.lock() = true;
        self.shared.stop_cv.notify_all();
        if let Some(h) = self.flusher.lock().take() {
            let _ = h.join();
        }
        let maker = self.shared.spare.lock().maker.take();
        if let Some(h) = maker {
            let _ = h.join();
        }
        self.shared.sync()
    }

    /// Copies the whole records written so far into `dir` (segment files
    /// of the same names), fsynced with their directory entries, while
    /// appends go on; returns the bytes copied. The copy stops at a record
    /// boundary, so it is a prefix of the commit order. Under
    /// [`Durability::Full`] it first waits for those records to be durable:
    /// the copy then holds no commit that could still fail. Segments must
    /// not be removed meanwhile (the store holds its checkpoint lock).
    pub(crate) fn copy_to(&self, dir: &Path) -> Result<u64> {
        self.shared.check()?;
        let (segments, end) = {
            let active = self.shared.active.lock();
            let mut all = active.sealed.clone();
            all.push(Sealed { seq: active.seq, len: active.len, max_ts: active.max_ts });
            (all, self.shared.written.load(Ordering::Acquire))
        };
        if self.durability == Durability::Full {
            self.shared.sync_to(end)?;
        }
        let mut total = 0;
        for s in segments {
            let from = segment_path(&self.shared.dir, s.seq);
            let mut source = File::open(&from)?.take(s.len);
            let mut copy = OpenOptions::new().write(true).create_new(true).open(segment_path(dir, s.seq))?;
            let copied = std::io::copy(&mut source, &mut copy)?;
            if copied != s.len {
                return Err(Error::Corruption {
                    file: from,
                    offset: copied,
                    reason: format!("the segment ends before its written length {}", s.len),
                });
            }
            copy.sync_all()?;
            total += copied;
        }
        sync_dir(dir)?;
        Ok(total)
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Reads one segment, applying its records newer than `after`. The newest
/// segment's torn tail (or short header: a crash while creating it) is cut
/// off and synced, so a torn record is never followed by good ones.
fn replay_segment(
    dir: &Path,
    path: &Path,
    file: &mut File,
    newest: bool,
    last_ts: &mut u64,
    after: u64,
    apply: &mut impl FnMut(WalRecord) -> std::result::Result<(), String>,
) -> Result<Replayed> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let corrupt = |offset: u64, reason: &str| Error::Corruption { file: path.to_path_buf(), offset, reason: reason.into() };
    let header = header();
    // A crash while creating a segment can leave its header short, or (the
    // size persisted, not the data; or a spare renamed in before its header
    // was written) zeros, maybe with part of the header.
    let zeros = bytes.iter().skip(header.len()).all(|&b| b == 0)
        && bytes.iter().zip(&header).all(|(&b, &h)| b == 0 || b == h)
        && !bytes.starts_with(&header);
    if bytes.len() < header.len() || (newest && zeros) {
        if !(zeros || header.starts_with(&bytes)) {
            return Err(corrupt(0, "not an OmenDB write-ahead log (bad magic)"));
        }
        if !newest {
            return Err(corrupt(0, "sealed log segment without a whole header"));
        }
        // Nothing was ever logged here.
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(&header)?;
        file.sync_all()?;
        sync_dir(dir)?;
        return Ok(Replayed { len: HEADER_LEN, min_ts: 0, max_ts: 0, torn: false });
    }
    if &bytes[..8] != MAGIC {
        return Err(corrupt(0, "not an OmenDB write-ahead log (bad magic)"));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != VERSION {
        return Err(corrupt(8, &format!("unsupported WAL version {version}")));
    }
    let mut pos = header.len();
    let (mut min_ts, mut max_ts) = (0, 0);
    while let Some((payload, next)) = next_record(&bytes, pos) {
        let rec = WalRecord::decode(payload).map_err(|e| corrupt(pos as u64, &e.to_string()))?;
        let ts = rec.ts();
        if ts <= *last_ts {
            return Err(corrupt(pos as u64, &format!("timestamp {ts} after {last_ts}")));
        }
        *last_ts = ts;
        max_ts = ts;
        if min_ts == 0 {
            min_ts = ts;
        }
        if ts > after {
            apply(rec).map_err(|reason| corrupt(pos as u64, &reason))?;
        }
        pos = next;
    }
    // Zeros after the last record are a segment's preallocated room.
    let torn = !bytes[pos..].iter().all(|&b| b == 0);
    if torn && newest {
        file.set_len(pos as u64)?;
        file.sync_all()?;
    }
    Ok(Replayed { len: pos as u64, min_ts, max_ts, torn })
}

/// Calls `f` with each record of `segments` (from [`Wal::segments_after`])
/// newer than `after` and at most `upto`, in log order, until it returns
/// false. Every record up to `upto` must have been written (the store's
/// clock): the active segment's unwritten tail is where reading stops;
/// damage before it is [`Error::Corruption`] naming the segment.
pub(crate) fn read_records(
    segments: Vec<(PathBuf, File)>,
    after: u64,
    upto: u64,
    mut f: impl FnMut(WalRecord) -> Result<bool>,
) -> Result<()> {
    let last = segments.len().saturating_sub(1);
    for (i, (path, mut file)) in segments.into_iter().enumerate() {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let corrupt = |offset: usize, reason: String| Error::Corruption { file: path.clone(), offset: offset as u64, reason };
        // Segments get their header before they are listed (a roll writes
        // it under the log's lock).
        if !bytes.starts_with(&header()) {
            return Err(corrupt(0, "not an OmenDB write-ahead log of this version (bad header)".into()));
        }
        let mut pos = HEADER_LEN as usize;
        while let Some((payload, next)) = next_record(&bytes, pos) {
            let rec = WalRecord::decode(payload).map_err(|e| corrupt(pos, e.to_string()))?;
            let ts = rec.ts();
            if ts > upto {
                return Ok(());
            }
            if ts > after && !f(rec)? {
                return Ok(());
            }
            pos = next;
        }
        // A sealed segment was synced whole: anything but its zero-filled
        // room after the last record is damage.
        if i < last && !bytes[pos..].iter().all(|&b| b == 0) {
            return Err(corrupt(pos, "sealed log segment ends in a damaged record".into()));
        }
    }
    Ok(())
}

/// The payload of the record at `pos` and the offset after it, if whole and intact.
fn next_record(bytes: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let head = bytes.get(pos..pos + 8)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    // No record is empty: a zero length is a tail of zeros (a crash that
    // persisted a file's size but not its data), whose crc would match.
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let end = pos + 8 + len as usize;
    let payload = bytes.get(pos + 8..end)?;
    (crc32c::crc32c(payload) == crc).then_some((payload, end))
}

/// fsyncs a directory, so a file created, renamed or removed in it persists.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    Ok(omen_files::sync_dir(dir)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ColumnDef;
    use crate::value::DataType;

    /// Every backend this machine runs: each test runs on all of them.
    fn backends() -> Vec<Arc<dyn LogIo>> {
        let mut all: Vec<Arc<dyn LogIo>> = vec![Arc::new(io::Plain)];
        match uring::Uring::new() {
            Ok(u) => all.push(Arc::new(u)),
            Err(e) => eprintln!("io_uring unavailable here ({e}): testing the plain backend only"),
        }
        all
    }

    fn open_with(io: &Arc<dyn LogIo>, dir: &Path, durability: Durability, segment_bytes: u64) -> Result<(Wal, Vec<WalRecord>)> {
        let mut recs = Vec::new();
        let wal = Wal::open(dir, WalOptions { durability, io: Arc::clone(io), segment_bytes }, 0, |r| {
            recs.push(r);
            Ok(())
        })?;
        Ok((wal, recs))
    }

    fn open(io: &Arc<dyn LogIo>, dir: &Path, durability: Durability) -> Result<(Wal, Vec<WalRecord>)> {
        open_with(io, dir, durability, 1 << 20)
    }

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
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            for mode in [Durability::Full, Durability::Normal, Durability::Off] {
                for seq in list_segments(dir.path()).unwrap() {
                    std::fs::remove_file(segment_path(dir.path(), seq)).unwrap();
                }
                let (wal, recs) = open(&io, dir.path(), mode).unwrap();
                assert!(recs.is_empty());
                wal.append(&commit(1)).unwrap();
                wal.append(&commit(2)).unwrap();
                wal.close().unwrap();
                drop(wal);
                let (_, recs) = open(&io, dir.path(), mode).unwrap();
                assert_eq!(recs, vec![commit(1), commit(2)]);
            }
        }
    }

    /// A commit whose record a sync covered is durable, whatever fails
    /// after; a record no sync covered is refused once the log is poisoned.
    #[test]
    fn a_synced_record_stays_committed_after_a_later_failure() {
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            let (wal, _) = open(&io, dir.path(), Durability::Full).unwrap();
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
    }

    #[test]
    fn torn_tail_is_cut_at_every_offset() {
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            let (wal, _) = open(&io, dir.path(), Durability::Off).unwrap();
            wal.append(&commit(1)).unwrap();
            let first_end = wal.len();
            wal.append(&commit(2)).unwrap();
            drop(wal);
            let full = std::fs::read(segment_path(dir.path(), 1)).unwrap();
            for cut in HEADER_LEN as usize..full.len() {
                std::fs::write(segment_path(dir.path(), 1), &full[..cut]).unwrap();
                let (wal, recs) = open(&io, dir.path(), Durability::Off).unwrap();
                let expect = if cut as u64 >= first_end { 1 } else { 0 };
                assert_eq!(recs.len(), expect, "cut at {cut}");
                // New appends follow the last whole record.
                wal.append(&commit(3)).unwrap();
                drop(wal);
                let (_, recs) = open(&io, dir.path(), Durability::Off).unwrap();
                assert_eq!(recs.len(), expect + 1, "cut at {cut}");
                assert_eq!(recs.last(), Some(&commit(3)));
            }
        }
    }

    #[test]
    fn flipped_byte_ends_replay_there() {
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            let (wal, _) = open(&io, dir.path(), Durability::Off).unwrap();
            wal.append(&commit(1)).unwrap();
            wal.append(&commit(2)).unwrap();
            drop(wal);
            let mut bytes = std::fs::read(segment_path(dir.path(), 1)).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0x40;
            std::fs::write(segment_path(dir.path(), 1), &bytes).unwrap();
            let (_, recs) = open(&io, dir.path(), Durability::Off).unwrap();
            assert_eq!(recs, vec![commit(1)]);
        }
    }

    #[test]
    fn bad_magic_is_corruption() {
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(segment_path(dir.path(), 1), b"this is not a log file at all").unwrap();
            assert!(matches!(open(&io, dir.path(), Durability::Off), Err(Error::Corruption { .. })));
        }
    }

    #[test]
    fn segments_roll_replay_in_order_and_are_removed_through_a_timestamp() {
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            let (wal, _) = open_with(&io, dir.path(), Durability::Full, 300).unwrap();
            for ts in 1..=40 {
                wal.append(&commit(ts)).unwrap();
            }
            let segments = list_segments(dir.path()).unwrap();
            assert!(segments.len() > 5, "{segments:?}");
            drop(wal);
            let (wal, recs) = open_with(&io, dir.path(), Durability::Full, 300).unwrap();
            assert_eq!(recs, (1..=40).map(commit).collect::<Vec<_>>());

            // Replay after a timestamp skips what a checkpoint holds.
            let mut after = Vec::new();
            drop(Wal::open(dir.path(), WalOptions { durability: Durability::Full, io: Arc::clone(&io), segment_bytes: 300 }, 30, |r| {
                after.push(r);
                Ok(())
            }));
            assert_eq!(after, (31..=40).map(commit).collect::<Vec<_>>());

            // Removing through 20 keeps every segment with a later record.
            wal.seal().unwrap();
            let before = wal.len();
            let freed = wal.remove_through(20).unwrap();
            assert!(freed > 0 && wal.len() == before - freed);
            drop(wal);
            let (_, recs) = open_with(&io, dir.path(), Durability::Full, 300).unwrap();
            let first = recs.first().unwrap().ts();
            assert!(first <= 21 && first > 1, "first kept record {first}");
            assert_eq!(recs.last(), Some(&commit(40)));
        }
    }

    #[test]
    fn damage_in_a_sealed_segment_or_a_missing_one_is_corruption() {
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            let (wal, _) = open_with(&io, dir.path(), Durability::Off, 300).unwrap();
            for ts in 1..=20 {
                wal.append(&commit(ts)).unwrap();
            }
            drop(wal);
            let segments = list_segments(dir.path()).unwrap();
            let second = segment_path(dir.path(), segments[1]);
            let mut bytes = std::fs::read(&second).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            std::fs::write(&second, &bytes).unwrap();
            match open(&io, dir.path(), Durability::Off) {
                Err(Error::Corruption { file, .. }) => assert_eq!(file, second),
                other => panic!("{:?}", other.map(|(_, r)| r)),
            }
            std::fs::remove_file(&second).unwrap();
            assert!(matches!(open(&io, dir.path(), Durability::Off), Err(Error::Corruption { file, .. }) if file == second));
        }
    }

    #[test]
    fn a_log_from_before_segments_is_read_and_continued() {
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            let (wal, _) = open(&io, dir.path(), Durability::Full).unwrap();
            wal.append(&commit(1)).unwrap();
            drop(wal);
            std::fs::rename(segment_path(dir.path(), 1), dir.path().join("wal.log")).unwrap();
            let (wal, recs) = open_with(&io, dir.path(), Durability::Full, 200).unwrap();
            assert_eq!(recs, vec![commit(1)]);
            for ts in 2..=6 {
                wal.append(&commit(ts)).unwrap();
            }
            drop(wal);
            assert!(list_segments(dir.path()).unwrap().starts_with(&[0, 1]));
            let (_, recs) = open(&io, dir.path(), Durability::Full).unwrap();
            assert_eq!(recs, (1..=6).map(commit).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_copy_holds_every_segment() {
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            let copy = tempfile::tempdir().unwrap();
            let (wal, _) = open_with(&io, dir.path(), Durability::Full, 300).unwrap();
            for ts in 1..=12 {
                wal.append(&commit(ts)).unwrap();
            }
            let bytes = wal.copy_to(copy.path()).unwrap();
            assert_eq!(bytes, wal.len());
            wal.append(&commit(13)).unwrap();
            let (_, recs) = open(&io, copy.path(), Durability::Full).unwrap();
            assert_eq!(recs, (1..=12).map(commit).collect::<Vec<_>>());
        }
    }

    /// A crash can persist a file's new size without its data: zeros
    /// after the last record (read as room, kept), or a new segment of
    /// zeros or a short header (rewritten as empty).
    #[test]
    fn zeros_at_the_end_are_a_torn_tail() {
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            let (wal, _) = open_with(&io, dir.path(), Durability::Full, 300).unwrap();
            for ts in 1..=8 {
                wal.append(&commit(ts)).unwrap();
            }
            drop(wal);
            let newest = *list_segments(dir.path()).unwrap().last().unwrap();
            let path = segment_path(dir.path(), newest);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.extend_from_slice(&[0; 100]);
            std::fs::write(&path, &bytes).unwrap();
            let (wal, recs) = open_with(&io, dir.path(), Durability::Full, 300).unwrap();
            assert_eq!(recs.len(), 8);
            wal.append(&commit(9)).unwrap();
            drop(wal);
            // A next segment created but never written: zeros, or a short header.
            let mut last = 9;
            for junk in [vec![0u8; 64], b"OMENW".to_vec()] {
                let next = segment_path(dir.path(), list_segments(dir.path()).unwrap().last().unwrap() + 1);
                std::fs::write(&next, &junk).unwrap();
                let (wal, recs) = open_with(&io, dir.path(), Durability::Full, 300).unwrap();
                assert_eq!(recs.last(), Some(&commit(last)));
                last += 1;
                wal.append(&commit(last)).unwrap();
                drop(wal);
                let (_, again) = open_with(&io, dir.path(), Durability::Full, 300).unwrap();
                assert_eq!(again.last(), Some(&commit(last)), "the repaired segment takes appends");
            }
        }
    }

    /// Once a segment is half full the next one is made ahead, zero-filled:
    /// the roll renames it in, and its zeros read back as room, not damage.
    #[test]
    fn a_roll_takes_the_zero_filled_spare() {
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            let (wal, _) = open_with(&io, dir.path(), Durability::Full, 600).unwrap();
            let mut ts = 0;
            // Past half full the spare is asked for; the roll takes it as
            // soon as it is ready (the pauses give the maker its turn; the
            // bound only stops a hang).
            let before = list_segments(dir.path()).unwrap().len();
            for _ in 0..5000 {
                ts += 1;
                wal.append(&commit(ts)).unwrap();
                if list_segments(dir.path()).unwrap().len() > before {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let newest = segment_path(dir.path(), *list_segments(dir.path()).unwrap().last().unwrap());
            assert_eq!(std::fs::metadata(&newest).unwrap().len(), 600, "the new segment is the preallocated spare");
            ts += 1;
            wal.append(&commit(ts)).unwrap();
            drop(wal);
            let (wal, recs) = open_with(&io, dir.path(), Durability::Full, 600).unwrap();
            assert_eq!(recs, (1..=ts).map(commit).collect::<Vec<_>>());
            // Sealed, its zeros still read as room; anything else there is damage.
            wal.seal().unwrap();
            drop(wal);
            let (_, recs) = open_with(&io, dir.path(), Durability::Full, 600).unwrap();
            assert_eq!(recs.len() as u64, ts);
            let mut bytes = std::fs::read(&newest).unwrap();
            bytes[599] = 1;
            std::fs::write(&newest, &bytes).unwrap();
            assert!(matches!(open_with(&io, dir.path(), Durability::Full, 600), Err(Error::Corruption { file, .. }) if file == newest));
        }
    }

    /// A new log's first segment is made empty; the log asks for a small
    /// spare at once and rolls into it when it is ready, then doubles each
    /// next spare up to the segment size.
    #[test]
    fn spares_start_small_and_double() {
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            let segment = 8 * FIRST_SPARE;
            let (wal, _) = open_with(&io, dir.path(), Durability::Off, segment).unwrap();
            let mut ts = 0;
            let mut append = |wal: &Wal| {
                ts += 1;
                wal.append(&commit(ts)).unwrap();
            };
            let mut sizes = Vec::new();
            // Polls for the background maker; the bounds only stop a hang.
            for _ in 0..200_000 {
                append(&wal);
                let newest = segment_path(dir.path(), *list_segments(dir.path()).unwrap().last().unwrap());
                let size = std::fs::metadata(&newest).unwrap().len();
                if sizes.last() != Some(&size) && size >= FIRST_SPARE {
                    sizes.push(size);
                }
                if sizes.len() == 3 {
                    break;
                }
            }
            assert_eq!(sizes, [FIRST_SPARE, 2 * FIRST_SPARE, 4 * FIRST_SPARE]);
            drop(wal);
            let (_, recs) = open_with(&io, dir.path(), Durability::Off, segment).unwrap();
            assert_eq!(recs.len() as u64, ts);
        }
    }
}
