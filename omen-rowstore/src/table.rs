//! A table's rows: an ordered map from encoded key to a version chain.
//!
//! MVCC invariants (DESIGN.md, "Timestamps and visibility"):
//! - a chain's committed versions are ordered newest first, with disjoint
//!   `[begin, end)` intervals; the newest has `end == OPEN`;
//! - a version is visible at snapshot `ts` iff `begin <= ts < end`; a visible
//!   tombstone means "no row";
//! - at most one uncommitted writer holds a chain (`writer`): the first updater
//!   wins, a second gets a serialization conflict;
//! - a commit installs its versions before the clock reaches its timestamp, so
//!   no snapshot ever sees half a commit.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use parking_lot::RwLock;

use crate::schema::{TableId, TableSchema};

/// A commit timestamp.
pub type Ts = u64;
/// End timestamp of the newest version of a chain.
pub(crate) const OPEN: Ts = Ts::MAX;
/// Identifies a transaction while it holds write slots.
pub(crate) type TxnId = u64;

/// An encoded row; `None` is a tombstone.
pub(crate) type RowBytes = Option<Arc<[u8]>>;

#[derive(Debug)]
pub(crate) struct Version {
    pub(crate) begin: Ts,
    pub(crate) end: Ts,
    pub(crate) row: RowBytes,
}

#[derive(Debug, Default)]
pub(crate) struct Chain {
    versions: Vec<Version>,
    writer: Option<TxnId>,
}

impl Chain {
    fn visible(&self, ts: Ts) -> Option<&Arc<[u8]>> {
        self.versions.iter().find(|v| v.begin <= ts && ts < v.end).and_then(|v| v.row.as_ref())
    }
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
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LockError {
    /// Another transaction holds the slot, or committed after our snapshot.
    Conflict,
    /// An insert found a live committed row.
    Duplicate,
}

/// What the key held when its write slot was taken.
#[derive(Debug)]
pub(crate) struct Locked {
    /// The row visible at the snapshot.
    pub(crate) visible: RowBytes,
    /// Whether the newest committed version is a live row (its op at commit
    /// is then an update or delete, else an insert).
    pub(crate) live: bool,
}

pub(crate) struct Table {
    pub(crate) id: TableId,
    pub(crate) schema: Arc<TableSchema>,
    rows: RwLock<BTreeMap<Vec<u8>, Chain>>,
    /// Next hidden row id, for tables without a declared primary key.
    pub(crate) next_row_id: AtomicU64,
}

impl Table {
    pub(crate) fn new(id: TableId, schema: TableSchema) -> Self {
        Self { id, schema: Arc::new(schema), rows: RwLock::default(), next_row_id: AtomicU64::new(1) }
    }

    /// The row visible at `ts`.
    pub(crate) fn get(&self, key: &[u8], ts: Ts) -> RowBytes {
        self.rows.read().get(key).and_then(|c| c.visible(ts)).cloned()
    }

    /// Calls `f` with each row visible at `ts` with a key in the range, in
    /// key order, until `f` returns false.
    pub(crate) fn visit(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>, ts: Ts, mut f: impl FnMut(&[u8], &Arc<[u8]>) -> bool) {
        let rows = self.rows.read();
        for (k, c) in rows.range::<[u8], _>((lo, hi)) {
            if let Some(r) = c.visible(ts)
                && !f(k, r)
            {
                return;
            }
        }
    }

    /// Takes the key's write slot for `txn` reading at `snapshot`.
    ///
    /// Every kind fails with `Conflict` if another transaction holds the slot.
    /// Then, when the newest committed version is newer than the snapshot:
    /// an insert or upsert conflicts (a concurrent writer got there first); an
    /// update conflicts only if the snapshot sees a row there (otherwise it
    /// finds nothing to update). An insert over a live committed row, visible
    /// or not, is a `Duplicate`, as in PostgreSQL.
    pub(crate) fn lock(&self, key: &[u8], txn: TxnId, snapshot: Ts, kind: WriteKind) -> Result<Locked, LockError> {
        let mut rows = self.rows.write();
        let chain = rows.entry(key.to_vec()).or_default();
        let newest = chain.versions.first();
        let live = newest.is_some_and(|v| v.row.is_some());
        let visible = chain.visible(snapshot).cloned();
        let concurrent = newest.is_some_and(|v| v.begin > snapshot);
        let result = if chain.writer.is_some_and(|w| w != txn) {
            Err(LockError::Conflict)
        } else if kind == WriteKind::Insert && live {
            Err(LockError::Duplicate)
        } else if concurrent && (kind != WriteKind::Update || visible.is_some()) {
            Err(LockError::Conflict)
        } else {
            chain.writer = Some(txn);
            Ok(Locked { visible, live })
        };
        if result.is_err() && chain.versions.is_empty() && chain.writer.is_none() {
            rows.remove(key);
        }
        result
    }

    /// Gives up `txn`'s write slot on the key (rollback).
    pub(crate) fn unlock(&self, key: &[u8], txn: TxnId) {
        let mut rows = self.rows.write();
        if let Some(chain) = rows.get_mut(key)
            && chain.writer == Some(txn)
        {
            chain.writer = None;
            if chain.versions.is_empty() {
                rows.remove(key);
            }
        }
    }

    /// Installs a committed version at `ts` and frees the write slot, then
    /// drops versions no snapshot at or after `horizon` can see.
    pub(crate) fn install(&self, key: &[u8], ts: Ts, row: RowBytes, horizon: Ts) {
        let mut rows = self.rows.write();
        let chain = rows.entry(key.to_vec()).or_default();
        if let Some(newest) = chain.versions.first_mut() {
            newest.end = ts;
        }
        chain.versions.insert(0, Version { begin: ts, end: OPEN, row });
        chain.writer = None;
        chain.versions.retain(|v| v.end > horizon);
        // A lone tombstone everyone sees is the same as no entry at all.
        if chain.versions.len() == 1 && chain.versions[0].row.is_none() && chain.versions[0].begin <= horizon {
            rows.remove(key);
        }
    }

    /// Keys with a chain (live or not), versions held, and their row bytes.
    pub(crate) fn stats(&self) -> (usize, usize, usize) {
        let rows = self.rows.read();
        let versions = rows.values().map(|c| c.versions.len()).sum();
        let bytes =
            rows.iter().map(|(k, c)| k.len() + c.versions.iter().map(|v| v.row.as_ref().map_or(0, |r| r.len())).sum::<usize>()).sum();
        (rows.len(), versions, bytes)
    }
}
