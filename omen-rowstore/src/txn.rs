//! Snapshot-isolated transactions.
//!
//! A transaction reads the committed state as of its snapshot timestamp plus
//! its own writes. Writes are buffered in the transaction and take the key's
//! write slot at once (first updater wins: a second writer fails fast with
//! [`Error::SerializationConflict`] instead of waiting). Commit installs them
//! atomically; rollback, explicit or on drop, releases the slots and leaves no
//! trace. A transaction that only reads takes no slots and never aborts.
//!
//! Two tools serve PostgreSQL's READ COMMITTED on top: a [`Savepoint`]
//! undoes the writes made since it was taken (a statement that met a
//! conflict halfway), and [`Transaction::refresh_snapshot`] moves the
//! snapshot to the newest committed state, so the statement can run again
//! against the row the other writer committed.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use crate::codec::key::{encode_key, encode_row_id};
use crate::codec::row::decode_row;
use crate::error::{Error, Result};
use crate::index::{Index, KeyRange};
use crate::schema::TableId;
use crate::snapshots::Registration;
use crate::snapshots::Ts;
use crate::store::Store;
use crate::table::{Chain, KeyBuf, LockError, Locked, Table, TxnId, WriteKind};
use crate::value::Value;

/// A buffered write.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// The new row; `None` deletes.
    pub(crate) row: Option<Vec<Value>>,
    /// Whether a live committed row existed when the slot was taken.
    pub(crate) live_before: bool,
    /// The key's chain, whose write slot this transaction holds.
    pub(crate) chain: Arc<Chain>,
}

/// Buffered writes in (table, key) order.
pub(crate) type WriteSet = BTreeMap<(TableId, KeyBuf), Pending>;

/// Slots as they were before a write changed them.
type Undo = Vec<((TableId, KeyBuf), Option<Pending>)>;

/// A point in a transaction's writes to roll back to; see
/// [`Transaction::savepoint`]. Savepoints nest: end the newest first.
#[derive(Debug)]
#[must_use = "a savepoint records every write until it is released or rolled back to"]
pub struct Savepoint {
    /// The undo log's length when it was taken.
    mark: usize,
    /// Whether it started the log, which ends with it.
    outer: bool,
}

/// Rows with their encoded primary keys, as reads return them.
pub type KeyedRows = Vec<(Vec<u8>, Vec<Value>)>;

/// A transaction; see the module docs. Rolls back on drop unless committed.
pub struct Transaction {
    store: Store,
    /// Assigned at the first write; read-only transactions never take one.
    id: TxnId,
    snapshot: Ts,
    registration: Option<Registration>,
    writes: WriteSet,
    /// The tables written, for commit and rollback.
    tables: Vec<Arc<Table>>,
    /// While a savepoint is open: each changed slot's state before the
    /// change, to put back on rollback to it.
    undo: Option<Undo>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").field("snapshot", &self.snapshot).field("writes", &self.writes.len()).finish_non_exhaustive()
    }
}

impl Transaction {
    pub(crate) fn new(store: Store, snapshot: Ts, registration: Registration) -> Self {
        Self { store, id: 0, snapshot, registration: Some(registration), writes: BTreeMap::new(), tables: Vec::new(), undo: None }
    }

    /// The timestamp this transaction reads at.
    pub fn snapshot(&self) -> Ts {
        self.snapshot
    }

    /// Moves the snapshot to the newest committed state. The transaction's
    /// own writes and the write slots it holds stay; later reads see them
    /// over the newer rows, and later writes no longer conflict with
    /// commits made before now. READ COMMITTED calls this before each
    /// statement, and before running again a statement that conflicted.
    pub fn refresh_snapshot(&mut self) -> Result<()> {
        let old = self.registration.take().ok_or(Error::TransactionClosed)?;
        // Take the new one first, so the collector's horizon never passes
        // a version this transaction can still read.
        let (snapshot, registration) = self.store.acquire_snapshot();
        self.store.release_snapshot(old);
        self.snapshot = snapshot;
        self.registration = Some(registration);
        Ok(())
    }

    /// Starts recording writes so [`Self::rollback_to`] can undo them;
    /// [`Self::release_savepoint`] keeps them and stops recording. The
    /// record costs a slot's key per write (and the old row, for a key
    /// this transaction had already written).
    pub fn savepoint(&mut self) -> Savepoint {
        let outer = self.undo.is_none();
        Savepoint { mark: self.undo.get_or_insert_with(Vec::new).len(), outer }
    }

    /// Undoes every write made since `savepoint` was taken: rows come back
    /// as they were, and write slots taken since are released.
    pub fn rollback_to(&mut self, savepoint: Savepoint) {
        let Some(undo) = &mut self.undo else { return };
        debug_assert!(undo.len() >= savepoint.mark, "savepoints end newest first");
        let undone = undo.split_off(savepoint.mark.min(undo.len()));
        let mut freed = false;
        for (slot, before) in undone.into_iter().rev() {
            match before {
                Some(p) => {
                    self.writes.insert(slot, p);
                }
                None => {
                    if let Some(p) = self.writes.remove(&slot)
                        && let Some(t) = self.tables.iter().find(|t| t.id == slot.0)
                    {
                        t.unlock(slot.1.as_slice(), &p.chain, self.id);
                        freed = true;
                    }
                }
            }
        }
        self.release_savepoint(savepoint);
        if freed {
            self.store.rows_released();
        }
    }

    /// Keeps the writes made since `savepoint`; an outer savepoint's
    /// release stops the recording.
    pub fn release_savepoint(&mut self, savepoint: Savepoint) {
        if savepoint.outer {
            self.undo = None;
        }
    }

    /// Whether the transaction has written nothing so far.
    pub fn is_read_only(&self) -> bool {
        self.writes.is_empty()
    }

    /// Whether the transaction has entered a table's writers' gate (it
    /// tried to write there, even if a savepoint rollback undid the write
    /// or the write matched nothing). It leaves the gates when it ends;
    /// until then DDL on those tables would wait for it.
    pub fn holds_write_gates(&self) -> bool {
        !self.tables.is_empty()
    }

    fn table(&self, table: TableId) -> Result<Arc<Table>> {
        if self.registration.is_none() {
            return Err(Error::TransactionClosed);
        }
        self.store.table_by_id(table)
    }

    /// The row with this encoded key, as this transaction sees it.
    pub fn get(&self, table: TableId, key: &[u8]) -> Result<Option<Vec<Value>>> {
        let t = self.table(table)?;
        if !self.writes.is_empty()
            && let Some(p) = self.writes.get(&(table, KeyBuf::new(key)))
        {
            return Ok(p.row.clone());
        }
        t.with_visible(key, self.snapshot, |bytes| decode_row(bytes, &t.schema))?.transpose()
    }

    /// Rows with keys within the bounds, in key order, as this transaction
    /// sees them.
    pub fn scan(&self, table: TableId, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Result<KeyedRows> {
        self.scan_limit(table, lo, hi, usize::MAX)
    }

    /// At most `limit` rows with keys within the bounds, in key order, as
    /// this transaction sees them: committed rows at the snapshot merged
    /// with the transaction's own writes, decoding only what is returned.
    pub fn scan_limit(&self, table: TableId, lo: Bound<&[u8]>, hi: Bound<&[u8]>, limit: usize) -> Result<KeyedRows> {
        let t = self.table(table)?;
        let mut own = self.own_writes(table, lo, hi).peekable();
        let mut out: Vec<(Vec<u8>, Vec<Value>)> = Vec::new();
        let mut failed = None;
        if limit == 0 {
            return Ok(out);
        }
        t.visit(lo, hi, self.snapshot, |key, bytes| {
            // Own writes before this key come first; one at this key replaces it.
            while let Some(&(k, row)) = own.peek() {
                if k > key {
                    break;
                }
                own.next();
                if let Some(row) = row {
                    out.push((k.to_vec(), row.to_vec()));
                    if out.len() >= limit {
                        return false;
                    }
                }
                if k == key {
                    return true;
                }
            }
            match decode_row(bytes, &t.schema) {
                Ok(row) => out.push((key.to_vec(), row)),
                Err(e) => {
                    failed = Some(e);
                    return false;
                }
            }
            out.len() < limit
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        for (k, row) in own {
            if out.len() >= limit {
                break;
            }
            if let Some(row) = row {
                out.push((k.to_vec(), row.to_vec()));
            }
        }
        Ok(out)
    }

    /// At most `limit` rows whose primary key lies in `range`, in key order,
    /// as this transaction sees them.
    pub fn scan_range(&self, table: TableId, range: &KeyRange, limit: usize) -> Result<KeyedRows> {
        let t = self.table(table)?;
        match range.bytes(&t.schema, &t.schema.primary_key, false)? {
            Some((lo, hi)) => self.scan_limit(table, as_slices(&lo), as_slices(&hi), limit),
            None => Ok(Vec::new()),
        }
    }

    /// At most `limit` rows whose values in the index named `index` lie in
    /// `range`, in index order, as this transaction sees them. `None` if
    /// the index was built after this transaction's snapshot, which it
    /// cannot answer for: scan the table instead.
    pub fn index_scan(&self, table: TableId, index: &str, range: &KeyRange, limit: usize) -> Result<Option<KeyedRows>> {
        let t = self.table(table)?;
        let ix = t.indexes().iter().find(|i| i.def.name == index).cloned().ok_or_else(|| Error::UnknownIndex(index.into()))?;
        if ix.ready > self.snapshot {
            return Ok(None);
        }
        let Some((lo, hi)) = range.bytes(&t.schema, &ix.def.columns, true)? else { return Ok(Some(Vec::new())) };
        let entries = self.scan_limit(ix.entries.id, as_slices(&lo), as_slices(&hi), limit)?;
        let mut out = Vec::with_capacity(entries.len());
        for (_, entry) in entries {
            let Some(Value::Bytes(key)) = entry.into_iter().next() else {
                return Err(Error::Decode(format!("an entry of index {index:?} holds no key")));
            };
            // The entry and the row were written together, so the row is there.
            if let Some(row) = self.get(table, &key)? {
                out.push((key, row));
            }
        }
        Ok(Some(out))
    }

    /// This transaction's writes to `table` with keys within the bounds.
    fn own_writes<'a>(
        &'a self,
        table: TableId,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
    ) -> impl Iterator<Item = (&'a [u8], Option<&'a [Value]>)> {
        let (lo_key, hi_key) = (lo, hi);
        let lo = match lo {
            Bound::Included(k) => Bound::Included((table, KeyBuf::new(k))),
            Bound::Excluded(k) => Bound::Excluded((table, KeyBuf::new(k))),
            Bound::Unbounded => Bound::Included((table, KeyBuf::new(&[]))),
        };
        let hi = match hi {
            Bound::Included(k) => Bound::Included((table, KeyBuf::new(k))),
            Bound::Excluded(k) => Bound::Excluded((table, KeyBuf::new(k))),
            Bound::Unbounded => match table.checked_add(1) {
                Some(next) => Bound::Excluded((next, KeyBuf::new(&[]))),
                None => Bound::Unbounded,
            },
        };
        let empty = self.writes.is_empty() || crate::table::is_empty_range(lo_key, hi_key);
        let range = if empty { None } else { Some(self.writes.range((lo, hi))) };
        range.into_iter().flatten().map(|((_, k), p)| (k.as_slice(), p.row.as_deref()))
    }

    /// This transaction's uncommitted writes to `table`, in key order: the key
    /// and the new row (`None` for a delete).
    pub fn pending_writes(&self, table: TableId) -> impl Iterator<Item = (&[u8], Option<&[Value]>)> {
        self.own_writes(table, Bound::Unbounded, Bound::Unbounded)
    }

    /// Inserts a row; fails with [`Error::DuplicateKey`] if its key is taken
    /// and [`Error::UniqueViolation`] if a unique index holds its values.
    /// Returns the row's encoded key.
    pub fn insert(&mut self, table: TableId, row: Vec<Value>) -> Result<Vec<u8>> {
        let t = self.table(table)?;
        t.schema.check_row(&row)?;
        let key = if t.schema.primary_key.is_empty() {
            encode_row_id(t.next_row_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
        } else {
            encode_key(&row, &t.schema.primary_key)
        };
        self.write_row(&t, &key, Op::Insert, Some(row))?;
        Ok(key)
    }

    /// Replaces the row at `key` with `row`; false if no row is visible there.
    /// If `row` has a different primary key, the row moves: the old key is
    /// deleted and the new one inserted (failing if it is taken).
    pub fn update(&mut self, table: TableId, key: &[u8], row: Vec<Value>) -> Result<bool> {
        let t = self.table(table)?;
        t.schema.check_row(&row)?;
        if !t.schema.primary_key.is_empty() {
            let new_key = encode_key(&row, &t.schema.primary_key);
            if new_key != key {
                return self.atomically(|txn| {
                    if !txn.write_row(&t, key, Op::Existing, None)? {
                        return Ok(false);
                    }
                    txn.write_row(&t, &new_key, Op::Insert, Some(row))
                });
            }
        }
        self.write_row(&t, key, Op::Existing, Some(row))
    }

    /// Deletes the row at `key`; false if no row is visible there.
    pub fn delete(&mut self, table: TableId, key: &[u8]) -> Result<bool> {
        let t = self.table(table)?;
        self.write_row(&t, key, Op::Existing, None)
    }

    /// Inserts the row, or replaces the visible row with the same key.
    pub fn upsert(&mut self, table: TableId, row: Vec<Value>) -> Result<()> {
        let t = self.table(table)?;
        if t.schema.primary_key.is_empty() {
            return self.insert(table, row).map(drop);
        }
        t.schema.check_row(&row)?;
        let key = encode_key(&row, &t.schema.primary_key);
        self.write_row(&t, &key, Op::Upsert, Some(row)).map(drop)
    }

    /// Writes `row` (`None` deletes) at `key` and keeps the table's indexes
    /// in step; false if `op` is [`Op::Existing`] and no row is visible.
    /// A failure leaves the transaction's writes as they were.
    fn write_row(&mut self, t: &Arc<Table>, key: &[u8], op: Op, row: Option<Vec<Value>>) -> Result<bool> {
        // Pass the gate before reading the index list, so index DDL cannot
        // slip in between.
        self.enter(t);
        let indexes = t.indexes();
        if indexes.is_empty() {
            return Ok(self.write_slot(t, key, op, row, false)?.is_some());
        }
        self.atomically(|txn| {
            let new = row.clone();
            let Some(old) = txn.write_slot(t, key, op, row, true)? else { return Ok(false) };
            txn.write_entries(t, &indexes, key, old.as_deref(), new.as_deref())?;
            Ok(true)
        })
    }

    /// Writes one slot of `t`. Returns `None` if `op` is [`Op::Existing`]
    /// and no row is visible, else the row the key held before (when
    /// `want_old`; `None` if there was none).
    fn write_slot(
        &mut self,
        t: &Arc<Table>,
        key: &[u8],
        op: Op,
        row: Option<Vec<Value>>,
        want_old: bool,
    ) -> Result<Option<Option<Vec<Value>>>> {
        let slot = (t.id, KeyBuf::new(key));
        self.remember(&slot);
        if let Some(p) = self.writes.get_mut(&slot) {
            return match (op, &p.row) {
                (Op::Insert, Some(old)) => Err(Error::DuplicateKey { table: t.schema.name.clone(), key: t.schema.key_text(old) }),
                (Op::Existing, None) => Ok(None),
                _ => Ok(Some(std::mem::replace(&mut p.row, row))),
            };
        }
        let kind = match op {
            Op::Insert => WriteKind::Insert,
            Op::Existing => WriteKind::Update,
            Op::Upsert => WriteKind::Upsert,
        };
        let (chain, locked) = self.lock(t, key, kind, row.as_deref().unwrap_or_default())?;
        if op == Op::Existing && !locked.visible {
            t.unlock(key, &chain, self.id);
            return Ok(None);
        }
        let old = if want_old && locked.visible {
            match t.with_visible(key, self.snapshot, |bytes| decode_row(bytes, &t.schema)).and_then(|r| r.transpose()) {
                Ok(old) => old,
                Err(e) => {
                    // Not recorded in `writes`: nothing else would free it.
                    t.unlock(key, &chain, self.id);
                    return Err(e);
                }
            }
        } else {
            None
        };
        self.writes.insert(slot, Pending { row, live_before: locked.live, chain });
        Ok(Some(old))
    }

    /// Moves `t`'s index entries for the row at `key` from those of `old`
    /// to those of `new` (`None`: no row). Entries that do not change are
    /// not touched.
    fn write_entries(
        &mut self,
        t: &Arc<Table>,
        indexes: &[Arc<Index>],
        key: &[u8],
        old: Option<&[Value]>,
        new: Option<&[Value]>,
    ) -> Result<()> {
        let on_base = |e: Error| match e {
            Error::SerializationConflict { .. } => Error::SerializationConflict { table: t.schema.name.clone() },
            e => e,
        };
        for ix in indexes {
            let before = old.map(|r| ix.entry_key(r, key));
            let after = new.map(|r| ix.entry_key(r, key));
            if before == after {
                continue;
            }
            if let Some(entry) = before {
                self.write_slot(&ix.entries, &entry, Op::Existing, None, false).map_err(on_base)?;
            }
            if let (Some(entry), Some(row)) = (after, new) {
                match self.write_slot(&ix.entries, &entry, Op::Insert, Some(vec![Value::Bytes(key.to_vec())]), false) {
                    Ok(_) => {}
                    Err(Error::DuplicateKey { .. }) => {
                        return Err(Error::UniqueViolation {
                            index: ix.def.name.clone(),
                            table: t.schema.name.clone(),
                            key: ix.def.values_text(&t.schema, row),
                        });
                    }
                    Err(e) => return Err(on_base(e)),
                }
            }
        }
        Ok(())
    }

    /// Runs `f`; if it fails, puts back every slot it changed, so a write
    /// that touches several slots (a row and its index entries, a row that
    /// moves) changes all or nothing.
    fn atomically<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        let savepoint = self.savepoint();
        let result = f(self);
        match result {
            Ok(_) => self.release_savepoint(savepoint),
            Err(_) => self.rollback_to(savepoint),
        }
        result
    }

    /// While a savepoint is open, records a slot's state before a change.
    fn remember(&mut self, slot: &(TableId, KeyBuf)) {
        if let Some(undo) = &mut self.undo {
            undo.push((slot.clone(), self.writes.get(slot).cloned()));
        }
    }

    /// Notes the first write to `t`: passes its gate and keeps it for
    /// commit and rollback.
    fn enter(&mut self, t: &Arc<Table>) {
        if self.id == 0 {
            self.id = self.store.next_txn_id();
        }
        if !self.tables.iter().any(|x| Arc::ptr_eq(x, t)) {
            if !t.is_index {
                t.gate.enter();
            }
            self.tables.push(Arc::clone(t));
        }
    }

    fn lock(&mut self, t: &Arc<Table>, key: &[u8], kind: WriteKind, row: &[Value]) -> Result<(Arc<Chain>, Locked)> {
        self.enter(t);
        t.lock(key, self.id, self.snapshot, kind).map_err(|e| match e {
            LockError::Duplicate => Error::DuplicateKey { table: t.schema.name.clone(), key: t.schema.key_text(row) },
            LockError::Conflict | LockError::Unlinked => Error::SerializationConflict { table: t.schema.name.clone() },
            LockError::Read(e) => *e,
        })
    }

    /// Commits; returns the commit timestamp (the snapshot, for a transaction
    /// that wrote nothing). On error the transaction is rolled back.
    pub fn commit(mut self) -> Result<Ts> {
        let registration = self.registration.take().ok_or(Error::TransactionClosed)?;
        self.store.release_snapshot(registration);
        if self.writes.is_empty() {
            // Failed writes may have passed a gate without leaving a write.
            leave(&std::mem::take(&mut self.tables));
            return Ok(self.snapshot);
        }
        let writes = std::mem::take(&mut self.writes);
        let tables = std::mem::take(&mut self.tables);
        let committed = self.store.commit(self.id, writes, &tables);
        leave(&tables);
        self.store.rows_released();
        committed
    }

    /// Rolls back: releases every write slot; nothing becomes visible.
    pub fn rollback(mut self) {
        self.abort();
    }

    fn abort(&mut self) {
        let Some(registration) = self.registration.take() else { return };
        self.store.release_snapshot(registration);
        let held = !self.writes.is_empty();
        release(self.id, std::mem::take(&mut self.writes), &self.tables);
        leave(&std::mem::take(&mut self.tables));
        if held {
            self.store.rows_released();
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        self.abort();
    }
}

fn as_slices(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    b.as_ref().map(Vec::as_slice)
}

/// Leaves the gates of the tables a transaction wrote.
fn leave(tables: &[Arc<Table>]) {
    for t in tables.iter().filter(|t| !t.is_index) {
        t.gate.leave();
    }
}

/// Which row a write expects at its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// None: the key is new (or deleted by this transaction).
    Insert,
    /// The row the snapshot sees; the write is skipped if there is none.
    Existing,
    /// Either.
    Upsert,
}

/// Gives up every write slot `txn` holds.
pub(crate) fn release(txn: TxnId, writes: WriteSet, tables: &[Arc<Table>]) {
    for ((table, key), p) in writes {
        if let Some(t) = tables.iter().find(|t| t.id == table) {
            t.unlock(key.as_slice(), &p.chain, txn);
        }
    }
}
