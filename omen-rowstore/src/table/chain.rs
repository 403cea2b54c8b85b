//! One key's version chain and write slot.
//!
//! MVCC invariants (`docs/ARCHITECTURE.md`, the write path):
//! - committed versions are ordered newest first, with disjoint `[begin, end)`
//!   intervals; the newest has `end == OPEN`;
//! - a version is visible at snapshot `ts` iff `begin <= ts < end`; a visible
//!   tombstone means "no row";
//! - at most one uncommitted transaction holds the write slot (`writer`): the
//!   first updater wins, a second gets a serialization conflict;
//! - a commit installs its versions before the clock reaches its timestamp, so
//!   no snapshot ever sees half a commit.
//!
//! Each chain has its own small lock, held for a few loads and stores: readers
//! of different keys never touch a shared cache line, and writers take the
//! table's index lock only to add a key or to unlink a dead one.

use std::sync::Arc;

use parking_lot::Mutex;

use super::TxnId;
use crate::snapshots::Ts;

/// End timestamp of the newest version of a chain.
pub(crate) const OPEN: Ts = Ts::MAX;

/// A committed row's encoding, as the commit has it: shared when the WAL
/// record holds it too.
#[derive(Debug)]
pub(crate) enum Encoded {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl Encoded {
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Self::Owned(v) => v,
            Self::Shared(a) => a,
        }
    }
}

/// Rows up to this many bytes are copied into the version itself.
const INLINE_ROW: usize = 38;

/// A version's row. A point read touches the hash bucket, the chain and the
/// row: keeping short rows inside the chain saves the third cache miss.
#[derive(Debug)]
enum Row {
    Tombstone,
    Inline { len: u8, bytes: [u8; INLINE_ROW] },
    Shared(Arc<[u8]>),
}

impl Row {
    fn new(row: Option<Encoded>) -> Self {
        match row {
            None => Self::Tombstone,
            Some(r) if r.as_slice().len() <= INLINE_ROW => {
                let r = r.as_slice();
                let mut bytes = [0; INLINE_ROW];
                bytes[..r.len()].copy_from_slice(r);
                // INLINE_ROW < 256.
                Self::Inline { len: r.len() as u8, bytes }
            }
            Some(Encoded::Owned(v)) => Self::Shared(v.into()),
            Some(Encoded::Shared(a)) => Self::Shared(a),
        }
    }

    fn bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Tombstone => None,
            Self::Inline { len, bytes } => Some(&bytes[..usize::from(*len)]),
            Self::Shared(r) => Some(r),
        }
    }

    fn is_live(&self) -> bool {
        !matches!(self, Self::Tombstone)
    }
}

#[derive(Debug)]
struct Version {
    begin: Ts,
    end: Ts,
    row: Row,
}

/// What a write intends, which decides its conflicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteKind {
    /// A new key.
    Insert,
    /// Update or delete of the row the snapshot sees.
    Update,
    /// Insert, or update of the row the snapshot sees.
    Upsert,
}

/// Why a write slot could not be taken.
#[derive(Debug)]
pub(crate) enum LockError {
    /// The key's row in the table's base run could not be read.
    Read(Box<crate::error::Error>),
    /// Another transaction holds the slot, or committed after our snapshot.
    Conflict,
    /// An insert found a live committed row.
    Duplicate,
    /// The chain was unlinked from its table by garbage collection between
    /// the index lookup and the lock: look the key up again.
    Unlinked,
}

/// What the key held when its write slot was taken.
#[derive(Debug)]
pub(crate) struct Locked {
    /// Whether the snapshot sees a row.
    pub(crate) visible: bool,
    /// Whether the newest committed version is a live row (its op at commit
    /// is then an update or delete, else an insert).
    pub(crate) live: bool,
}

#[derive(Debug, Default)]
struct State {
    /// The newest committed version, kept out of `older` so a read of a
    /// current row touches no other allocation.
    newest: Option<Version>,
    /// Older committed versions, newest first.
    older: Vec<Version>,
    writer: Option<TxnId>,
    /// Removed from the table's maps; nothing may be written here any more.
    unlinked: bool,
    /// In the garbage collector's queue.
    queued: bool,
}

impl State {
    fn versions(&self) -> impl Iterator<Item = &Version> {
        self.newest.iter().chain(&self.older)
    }

    fn visible(&self, ts: Ts) -> Option<&[u8]> {
        self.versions().find(|v| v.begin <= ts && ts < v.end).and_then(|v| v.row.bytes())
    }

    /// Whether the chain can leave the table: nobody holds it, and it has no
    /// versions or only a tombstone every snapshot from `horizon` on sees.
    fn dead(&self, horizon: Ts) -> bool {
        self.writer.is_none() && self.older.is_empty() && self.newest.as_ref().is_none_or(|v| !v.row.is_live() && v.begin <= horizon)
    }

    fn evictable(&self, base_ts: Ts) -> bool {
        !self.unlinked
            && !self.queued
            && self.writer.is_none()
            && self.older.is_empty()
            && self.newest.as_ref().is_some_and(|v| v.row.is_live() && v.begin <= base_ts)
    }

    /// Drops versions no snapshot at or after `horizon` can see (the newest
    /// is open-ended, so it always stays).
    fn prune(&mut self, horizon: Ts) {
        self.older.retain(|v| v.end > horizon);
    }

    /// Whether the chain holds more than the newest live row.
    fn has_garbage(&self) -> bool {
        !self.older.is_empty() || self.newest.as_ref().is_some_and(|v| !v.row.is_live())
    }

    /// Whether a commit should hand the chain to the collector: it ends in a
    /// tombstone, or an open snapshot pinned more than the version the
    /// commit replaced. That one version alone is left for the key's next
    /// write to prune, so a plain update costs the collector nothing and an
    /// updated key holds at most one old version.
    fn needs_collector(&self) -> bool {
        self.older.len() > 1 || self.newest.as_ref().is_some_and(|v| !v.row.is_live())
    }
}

/// What [`Chain::collect`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Collected {
    /// Only the newest live row is left.
    Clean,
    /// Can be unlinked from the table.
    Dead,
    /// Still holds versions some snapshot may read.
    Pending,
}

#[derive(Debug, Default)]
pub(crate) struct Chain {
    state: Mutex<State>,
}

impl Chain {
    /// A chain holding one committed row, from `begin` on: a base run's row
    /// when its key is first written (from 0: every open snapshot sees it).
    pub(crate) fn with_row(begin: Ts, row: &[u8]) -> Self {
        let version = Version { begin, end: OPEN, row: Row::new(Some(Encoded::Owned(row.to_vec()))) };
        Self { state: Mutex::new(State { newest: Some(version), ..State::default() }) }
    }

    /// Whether the chain, once versions no snapshot from `horizon` on can
    /// read are pruned, holds only a live row committed at or before
    /// `base_ts` (the base run's timestamp, which then holds that row), and
    /// nobody holds it: it may leave memory.
    pub(crate) fn evictable(&self, base_ts: Ts, horizon: Ts) -> bool {
        let mut s = self.state.lock();
        s.prune(horizon);
        s.evictable(base_ts)
    }

    /// Whether the chain is dead at `horizon` (see `State::dead`).
    pub(crate) fn is_dead(&self, horizon: Ts) -> bool {
        self.state.lock().dead(horizon)
    }

    /// Marks the chain unlinked if [`Chain::evictable`]; the caller holds
    /// the table's index locks and removes it when this returns true.
    pub(crate) fn evict(&self, base_ts: Ts, horizon: Ts) -> bool {
        let mut s = self.state.lock();
        s.prune(horizon);
        if s.evictable(base_ts) {
            s.unlinked = true;
            return true;
        }
        false
    }

    /// Calls `f` with the row visible at `ts`, if any, under the chain's lock.
    pub(crate) fn with_visible<R>(&self, ts: Ts, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self.state.lock().visible(ts).map(f)
    }

    /// Takes the write slot for `txn` reading at `snapshot`.
    ///
    /// Every kind fails with `Conflict` if another transaction holds the slot.
    /// Then, when the newest committed version is newer than the snapshot:
    /// an insert or upsert conflicts (a concurrent writer got there first); an
    /// update conflicts only if the snapshot sees a row there (otherwise it
    /// finds nothing to update). An insert over a live committed row, visible
    /// or not, is a `Duplicate`, as in PostgreSQL.
    pub(crate) fn lock(&self, txn: TxnId, snapshot: Ts, kind: WriteKind) -> Result<Locked, LockError> {
        let mut s = self.state.lock();
        if s.unlinked {
            return Err(LockError::Unlinked);
        }
        let newest = s.newest.as_ref();
        let live = newest.is_some_and(|v| v.row.is_live());
        let concurrent = newest.is_some_and(|v| v.begin > snapshot);
        let visible = s.visible(snapshot).is_some();
        if s.writer.is_some_and(|w| w != txn) {
            Err(LockError::Conflict)
        } else if kind == WriteKind::Insert && live {
            Err(LockError::Duplicate)
        } else if concurrent && (kind != WriteKind::Update || visible) {
            Err(LockError::Conflict)
        } else {
            s.writer = Some(txn);
            Ok(Locked { visible, live })
        }
    }

    /// Gives up `txn`'s write slot; returns whether the chain is now dead
    /// (it held no committed version).
    pub(crate) fn unlock(&self, txn: TxnId) -> bool {
        let mut s = self.state.lock();
        if s.writer == Some(txn) {
            s.writer = None;
        }
        s.newest.is_none() && s.writer.is_none()
    }

    /// Installs the version committed at `ts`, frees the write slot and prunes
    /// versions no snapshot at or after `horizon` can see. Returns true when
    /// the chain should join the garbage collector's queue (see
    /// `State::needs_collector`) and is not queued yet.
    pub(crate) fn install(&self, ts: Ts, row: Option<Encoded>, horizon: Ts) -> bool {
        let row = Row::new(row);
        let mut s = self.state.lock();
        if let Some(mut previous) = s.newest.replace(Version { begin: ts, end: OPEN, row }) {
            previous.end = ts;
            s.older.insert(0, previous);
        }
        s.writer = None;
        s.prune(horizon);
        let enqueue = s.needs_collector() && !s.queued;
        s.queued |= enqueue;
        enqueue
    }

    /// Prunes at `horizon` and says what is left. A chain found `Clean` or
    /// `Dead` leaves the queue (a later write enqueues it again).
    pub(crate) fn collect(&self, horizon: Ts) -> Collected {
        let mut s = self.state.lock();
        s.prune(horizon);
        let found = if s.dead(horizon) {
            Collected::Dead
        } else if s.has_garbage() || s.writer.is_some() {
            Collected::Pending
        } else {
            Collected::Clean
        };
        s.queued = found == Collected::Pending;
        found
    }

    /// Marks the chain unlinked if it is dead; the caller holds the table's
    /// index locks and removes it from the maps when this returns true.
    pub(crate) fn unlink_if_dead(&self, horizon: Ts) -> bool {
        let mut s = self.state.lock();
        if s.dead(horizon) {
            s.unlinked = true;
        }
        s.unlinked
    }

    /// Versions held and their row bytes.
    pub(crate) fn stats(&self) -> (usize, usize) {
        let s = self.state.lock();
        (s.versions().count(), s.versions().map(|v| v.row.bytes().map_or(0, <[u8]>::len)).sum())
    }
}
