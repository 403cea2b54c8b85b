//! The open log's state: the handle ([`Wal`]), what it shares with the
//! threads that sync and make spares, and the segments it appends to and
//! keeps.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::io::{LogIo, SegmentFile};
use crate::error::{Error, Result};

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

/// How to open a [`Wal`].
#[derive(Clone)]
pub(crate) struct WalOptions {
    pub durability: Durability,
    pub io: Arc<dyn LogIo>,
    /// Segment size: a segment is sealed once the next record would take
    /// it past this (a bigger record gets a segment of its own).
    pub segment_bytes: u64,
}

/// The open log.
pub(crate) struct Wal {
    pub(super) durability: Durability,
    pub(super) shared: Arc<Shared>,
    pub(super) flusher: Mutex<Option<JoinHandle<()>>>,
}

impl Wal {
    /// The I/O backend's name (see [`super::IoBackend`]).
    pub(crate) fn backend(&self) -> &'static str {
        self.shared.io.name()
    }
}

/// A segment no longer appended to: whole and synced.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sealed {
    pub(super) seq: u64,
    pub(super) len: u64,
    /// The newest timestamp logged in it (0 if none).
    pub(super) max_ts: u64,
}

/// The segment appends go to, and the sealed ones before it.
pub(super) struct Active {
    pub(super) seg: Arc<dyn SegmentFile>,
    pub(super) seq: u64,
    /// The segment's length, header and `pending` included.
    pub(super) len: u64,
    /// Under [`Durability::Full`], records logged but not yet written to the
    /// file: the next group sync writes them all with one call.
    pub(super) pending: Vec<u8>,
    /// Whether the spare for the next roll was asked for (once the segment
    /// is half full, or at once for a segment made empty).
    pub(super) spare_asked: bool,
    /// The length at which the segment rolls: a spare's size, or the
    /// segment size for one made empty.
    pub(super) capacity: u64,
    /// Whether the segment was zero-filled ahead (a spare).
    pub(super) preallocated: bool,
    pub(super) max_ts: u64,
    pub(super) sealed: Vec<Sealed>,
    /// Every record newer than this is in the segments (removal raises it).
    pub(super) trimmed: u64,
    /// Log holds: id -> the timestamp after which records must stay.
    pub(super) holds: std::collections::BTreeMap<u64, u64>,
    pub(super) next_hold: u64,
}

/// What the log's handle shares with its background threads (the syncer
/// under [`Durability::Normal`], the spare maker).
pub(super) struct Shared {
    pub(super) dir: PathBuf,
    pub(super) io: Arc<dyn LogIo>,
    /// A segment is sealed once a record would take it past this.
    pub(super) segment_bytes: u64,
    /// Appends go through this lock, one at a time.
    pub(super) active: Mutex<Active>,
    /// Held while pending records are written and synced, so a roll (which
    /// takes it after `active`) never seals a segment with a write still
    /// in flight.
    pub(super) flush: Mutex<()>,
    /// Record bytes written over the log's life, across segments (set
    /// under `active`): group commit's offsets.
    pub(super) written: AtomicU64,
    pub(super) group: Mutex<Group>,
    pub(super) group_cv: Condvar,
    /// Set when an append or sync failed; the message says which.
    pub(super) poisoned: Mutex<Option<String>>,
    pub(super) stop: Mutex<bool>,
    pub(super) stop_cv: Condvar,
    /// The next segment, made ahead of time in the background.
    pub(super) spare: Mutex<Spare>,
    /// The size of the next spare: 1 MiB at first, doubling with each one
    /// taken, up to the segment size.
    pub(super) next_spare: AtomicU64,
}

/// A zero-filled segment file made ahead of the roll that takes it (see
/// [`super::segment`]); `ready` once `wal-spare` is whole and synced.
#[derive(Default)]
pub(super) struct Spare {
    pub(super) ready: bool,
    /// The size of the spare made or being made.
    pub(super) len: u64,
    pub(super) maker: Option<JoinHandle<()>>,
}

/// Group commit's state: how far the log is durable, and whether a sync
/// is running (whose caller then leads the group).
#[derive(Default)]
pub(super) struct Group {
    pub(super) synced: u64,
    pub(super) syncing: bool,
}

impl Shared {
    /// Marks the log failed (a failed write or sync is never retried, see
    /// [`super::group`]) and returns the error to report.
    pub(super) fn poison(&self, what: &str, e: &std::io::Error) -> Error {
        let msg = format!("{what}: {e}");
        self.poisoned.lock().get_or_insert(msg.clone());
        Error::WalFailed(msg)
    }

    /// Fails once the log is poisoned.
    pub(super) fn check(&self) -> Result<()> {
        match &*self.poisoned.lock() {
            Some(msg) => Err(Error::WalFailed(msg.clone())),
            None => Ok(()),
        }
    }
}
