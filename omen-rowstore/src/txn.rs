//! Snapshot-isolated transactions.
//!
//! A transaction reads the committed state as of its snapshot timestamp plus
//! its own writes. Writes are buffered in the transaction and take the key's
//! write slot at once (first updater wins: a second writer fails fast with
//! [`Error::SerializationConflict`] instead of waiting). Commit installs them
//! atomically; rollback, explicit or on drop, releases the slots and leaves no
//! trace. A transaction that only reads takes no slots and never aborts.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use crate::codec::key::{encode_key, encode_row_id};
use crate::codec::row::decode_row;
use crate::error::{Error, Result};
use crate::schema::TableId;
use crate::snapshots::Registration;
use crate::store::Store;
use crate::table::{Chain, KeyBuf, LockError, Locked, Table, Ts, TxnId, WriteKind};
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
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").field("snapshot", &self.snapshot).field("writes", &self.writes.len()).finish_non_exhaustive()
    }
}

impl Transaction {
    pub(crate) fn new(store: Store, snapshot: Ts, registration: Registration) -> Self {
        Self { store, id: 0, snapshot, registration: Some(registration), writes: BTreeMap::new(), tables: Vec::new() }
    }

    /// The timestamp this transaction reads at.
    pub fn snapshot(&self) -> Ts {
        self.snapshot
    }

    /// Whether the transaction has written nothing so far.
    pub fn is_read_only(&self) -> bool {
        self.writes.is_empty()
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
        t.with_visible(key, self.snapshot, |bytes| decode_row(bytes, &t.schema)).transpose()
    }

    /// Rows with keys within the bounds, in key order, as this transaction
    /// sees them.
    pub fn scan(&self, table: TableId, lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> Result<Vec<(Vec<u8>, Vec<Value>)>> {
        self.scan_limit(table, lo, hi, usize::MAX)
    }

    /// At most `limit` rows with keys within the bounds, in key order, as
    /// this transaction sees them: committed rows at the snapshot merged
    /// with the transaction's own writes, decoding only what is returned.
    pub fn scan_limit(&self, table: TableId, lo: Bound<&[u8]>, hi: Bound<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<Value>)>> {
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
        });
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

    /// This transaction's writes to `table` with keys within the bounds.
    fn own_writes<'a>(
        &'a self,
        table: TableId,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
    ) -> impl Iterator<Item = (&'a [u8], Option<&'a [Value]>)> {
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
        let range = if self.writes.is_empty() { None } else { Some(self.writes.range((lo, hi))) };
        range.into_iter().flatten().map(|((_, k), p)| (k.as_slice(), p.row.as_deref()))
    }

    /// This transaction's uncommitted writes to `table`, in key order: the key
    /// and the new row (`None` for a delete).
    pub fn pending_writes(&self, table: TableId) -> impl Iterator<Item = (&[u8], Option<&[Value]>)> {
        self.own_writes(table, Bound::Unbounded, Bound::Unbounded)
    }

    /// Inserts a row; fails with [`Error::DuplicateKey`] if its key is taken.
    /// Returns the row's encoded key.
    pub fn insert(&mut self, table: TableId, row: Vec<Value>) -> Result<Vec<u8>> {
        let t = self.table(table)?;
        t.schema.check_row(&row)?;
        let key = if t.schema.primary_key.is_empty() {
            encode_row_id(t.next_row_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
        } else {
            encode_key(&row, &t.schema.primary_key)
        };
        self.insert_at(&t, &key, row)?;
        Ok(key)
    }

    fn insert_at(&mut self, t: &Arc<Table>, key: &[u8], row: Vec<Value>) -> Result<()> {
        let slot = (t.id, KeyBuf::new(key));
        match self.writes.get_mut(&slot) {
            Some(p) if p.row.is_some() => Err(Error::DuplicateKey { table: t.schema.name.clone(), key: t.schema.key_text(&row) }),
            Some(p) => {
                p.row = Some(row);
                Ok(())
            }
            None => {
                let (chain, locked) = self.lock(t, key, WriteKind::Insert, &row)?;
                self.writes.insert(slot, Pending { row: Some(row), live_before: locked.live, chain });
                Ok(())
            }
        }
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
                return self.move_row(&t, key, &new_key, row);
            }
        }
        self.write_existing(&t, key, Some(row))
    }

    fn move_row(&mut self, t: &Arc<Table>, key: &[u8], new_key: &[u8], row: Vec<Value>) -> Result<bool> {
        // Check the destination first so a failure changes nothing.
        if self.get(t.id, new_key)?.is_some() {
            return Err(Error::DuplicateKey { table: t.schema.name.clone(), key: t.schema.key_text(&row) });
        }
        let slot = (t.id, KeyBuf::new(key));
        let before = self.writes.get(&slot).cloned();
        if !self.write_existing(t, key, None)? {
            return Ok(false);
        }
        if let Err(e) = self.insert_at(t, new_key, row) {
            // Undo the delete so the failed update changes nothing.
            match before {
                Some(p) => {
                    self.writes.insert(slot, p);
                }
                None => {
                    if let Some(p) = self.writes.remove(&slot) {
                        t.unlock(key, &p.chain, self.id);
                    }
                }
            }
            return Err(e);
        }
        Ok(true)
    }

    /// Deletes the row at `key`; false if no row is visible there.
    pub fn delete(&mut self, table: TableId, key: &[u8]) -> Result<bool> {
        let t = self.table(table)?;
        self.write_existing(&t, key, None)
    }

    /// Inserts the row, or replaces the visible row with the same key.
    pub fn upsert(&mut self, table: TableId, row: Vec<Value>) -> Result<()> {
        let t = self.table(table)?;
        if t.schema.primary_key.is_empty() {
            return self.insert(table, row).map(drop);
        }
        t.schema.check_row(&row)?;
        let key = encode_key(&row, &t.schema.primary_key);
        let slot = (table, KeyBuf::new(&key));
        if let Some(p) = self.writes.get_mut(&slot) {
            p.row = Some(row);
            return Ok(());
        }
        let (chain, locked) = self.lock(&t, &key, WriteKind::Upsert, &row)?;
        self.writes.insert(slot, Pending { row: Some(row), live_before: locked.live, chain });
        Ok(())
    }

    fn write_existing(&mut self, t: &Arc<Table>, key: &[u8], row: Option<Vec<Value>>) -> Result<bool> {
        let slot = (t.id, KeyBuf::new(key));
        if let Some(p) = self.writes.get_mut(&slot) {
            if p.row.is_none() {
                return Ok(false);
            }
            p.row = row;
            return Ok(true);
        }
        let (chain, locked) = self.lock(t, key, WriteKind::Update, &[])?;
        if !locked.visible {
            t.unlock(key, &chain, self.id);
            return Ok(false);
        }
        self.writes.insert(slot, Pending { row, live_before: locked.live, chain });
        Ok(true)
    }

    fn lock(&mut self, t: &Arc<Table>, key: &[u8], kind: WriteKind, row: &[Value]) -> Result<(Arc<Chain>, Locked)> {
        if self.id == 0 {
            self.id = self.store.next_txn_id();
        }
        if !self.tables.iter().any(|x| Arc::ptr_eq(x, t)) {
            self.tables.push(Arc::clone(t));
        }
        t.lock(key, self.id, self.snapshot, kind).map_err(|e| match e {
            LockError::Duplicate => Error::DuplicateKey { table: t.schema.name.clone(), key: t.schema.key_text(row) },
            LockError::Conflict | LockError::Unlinked => Error::SerializationConflict { table: t.schema.name.clone() },
        })
    }

    /// Commits; returns the commit timestamp (the snapshot, for a transaction
    /// that wrote nothing). On error the transaction is rolled back.
    pub fn commit(mut self) -> Result<Ts> {
        let registration = self.registration.take().ok_or(Error::TransactionClosed)?;
        self.store.release_snapshot(registration);
        if self.writes.is_empty() {
            return Ok(self.snapshot);
        }
        let writes = std::mem::take(&mut self.writes);
        let tables = std::mem::take(&mut self.tables);
        self.store.commit(self.id, writes, &tables)
    }

    /// Rolls back: releases every write slot; nothing becomes visible.
    pub fn rollback(mut self) {
        self.abort();
    }

    fn abort(&mut self) {
        let Some(registration) = self.registration.take() else { return };
        self.store.release_snapshot(registration);
        release(self.id, std::mem::take(&mut self.writes), &self.tables);
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        self.abort();
    }
}

/// Gives up every write slot `txn` holds.
pub(crate) fn release(txn: TxnId, writes: WriteSet, tables: &[Arc<Table>]) {
    for ((table, key), p) in writes {
        if let Some(t) = tables.iter().find(|t| t.id == table) {
            t.unlock(key.as_slice(), &p.chain, txn);
        }
    }
}
