//! A table's rows: every key's version chain, reachable two ways.
//!
//! - a hash index sharded by key hash, for point reads and writes;
//! - an ordered map, for range scans.
//!
//! Both hold the same `Arc<Chain>`; a chain enters both when its key is first
//! written and leaves both when garbage collection unlinks it. The choice was
//! measured (`bench-compare/benches/index.rs`, 100k BIGINT keys, one thread):
//! a random lookup takes 17 ns in the hash index, 157 ns in a `BTreeMap` with
//! inline keys, 247 ns in omen-learned's `DynamicPgm`, 306 ns in
//! `scc::TreeIndex` and 477 ns in `crossbeam-skiplist`; 100-key range walks
//! take 0.31, 2.6, 1.5 and 7.0 µs. So the ordered map is a `BTreeMap` and point
//! operations skip it.
//!
//! Lock order: the ordered map's lock, then a shard's lock, then a chain's.
//! Nothing holds a chain's lock while taking an index lock.

mod chain;
mod gate;
mod key_buf;

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crossbeam_utils::CachePadded;
use parking_lot::RwLock;
use rustc_hash::{FxBuildHasher, FxHashMap};

pub(crate) use chain::{Chain, Collected, Encoded, LockError, Locked, WriteKind};
pub(crate) use gate::Gate;
pub(crate) use key_buf::KeyBuf;

use crate::index::Index;
use crate::schema::{TableId, TableSchema};

/// A commit timestamp.
pub type Ts = u64;
/// Identifies a transaction while it holds write slots.
pub(crate) type TxnId = u64;

/// Whether no key lies within the bounds (`BTreeMap::range` panics on
/// such bounds instead of returning nothing).
pub(crate) fn is_empty_range(lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> bool {
    match (lo, hi) {
        (Bound::Included(l), Bound::Included(h)) => l > h,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(h)) | (Bound::Excluded(l), Bound::Included(h)) => l >= h,
        _ => false,
    }
}

/// Hash shards per table: enough that two threads rarely share one.
const SHARDS: usize = 64;

type Shard = CachePadded<RwLock<FxHashMap<KeyBuf, Arc<Chain>>>>;

pub(crate) struct Table {
    pub(crate) id: TableId,
    pub(crate) schema: Arc<TableSchema>,
    shards: Box<[Shard]>,
    ordered: RwLock<BTreeMap<KeyBuf, Arc<Chain>>>,
    /// Next hidden row id, for tables without a declared primary key.
    pub(crate) next_row_id: AtomicU64,
    /// Whether this table holds a secondary index's entries: its writes are
    /// neither logged nor published.
    pub(crate) is_index: bool,
    /// Secondary indexes over this table.
    indexes: RwLock<Arc<[Arc<Index>]>>,
    /// Transactions with uncommitted writes here; index DDL closes it.
    pub(crate) gate: Gate,
}

impl Table {
    pub(crate) fn new(id: TableId, schema: TableSchema, is_index: bool) -> Self {
        Self {
            id,
            schema: Arc::new(schema),
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            ordered: RwLock::default(),
            next_row_id: AtomicU64::new(1),
            is_index,
            indexes: RwLock::new(Arc::new([])),
            gate: Gate::default(),
        }
    }

    /// The table's secondary indexes.
    pub(crate) fn indexes(&self) -> Arc<[Arc<Index>]> {
        Arc::clone(&self.indexes.read())
    }

    /// Replaces the list of secondary indexes (index DDL, under the gate).
    pub(crate) fn set_indexes(&self, indexes: Vec<Arc<Index>>) {
        *self.indexes.write() = indexes.into();
    }

    fn shard(&self, key: &[u8]) -> &Shard {
        // Bits 32.. pick the shard: hashbrown uses the low bits for the bucket
        // and the top seven for its tag, so these stay independent of both.
        let h = FxBuildHasher.hash_one(key);
        &self.shards[(h >> 32) as usize % SHARDS]
    }

    /// Calls `f` with the row visible at `ts` under `key`, if any.
    pub(crate) fn with_visible<R>(&self, key: &[u8], ts: Ts, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self.shard(key).read().get(key).and_then(|c| c.with_visible(ts, f))
    }

    /// Calls `f` with each row visible at `ts` with a key in the range, in
    /// key order, until `f` returns false. Keys written meanwhile wait.
    pub(crate) fn visit(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>, ts: Ts, mut f: impl FnMut(&[u8], &[u8]) -> bool) {
        if is_empty_range(lo, hi) {
            return;
        }
        let ordered = self.ordered.read();
        for (k, c) in ordered.range::<[u8], _>((lo, hi)) {
            if c.with_visible(ts, |row| f(k.as_slice(), row)) == Some(false) {
                return;
            }
        }
    }

    /// The key's chain, created (in both maps) if the key has none.
    fn chain(&self, key: &[u8]) -> Arc<Chain> {
        let shard = self.shard(key);
        if let Some(c) = shard.read().get(key) {
            return Arc::clone(c);
        }
        let mut ordered = self.ordered.write();
        let mut map = shard.write();
        if let Some(c) = map.get(key) {
            return Arc::clone(c);
        }
        let chain = Arc::new(Chain::default());
        map.insert(KeyBuf::new(key), Arc::clone(&chain));
        ordered.insert(KeyBuf::new(key), Arc::clone(&chain));
        chain
    }

    /// Takes the key's write slot for `txn` reading at `snapshot` (see
    /// [`Chain::lock`]); returns the chain, which stays linked while held.
    pub(crate) fn lock(&self, key: &[u8], txn: TxnId, snapshot: Ts, kind: WriteKind) -> Result<(Arc<Chain>, Locked), LockError> {
        loop {
            let chain = self.chain(key);
            match chain.lock(txn, snapshot, kind) {
                Err(LockError::Unlinked) => continue,
                Ok(locked) => return Ok((chain, locked)),
                Err(e) => {
                    // A chain created for this attempt must not stay behind empty.
                    if chain.unlock(txn) {
                        self.unlink_if_dead(key, 0);
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Gives up `txn`'s write slot on the key's chain (rollback).
    pub(crate) fn unlock(&self, key: &[u8], chain: &Chain, txn: TxnId) {
        if chain.unlock(txn) {
            self.unlink_if_dead(key, 0);
        }
    }

    /// Removes the key's chain from both maps if it is dead at `horizon`.
    pub(crate) fn unlink_if_dead(&self, key: &[u8], horizon: Ts) -> bool {
        let mut ordered = self.ordered.write();
        let mut map = self.shard(key).write();
        let dead = map.get(key).is_some_and(|c| c.unlink_if_dead(horizon));
        if dead {
            map.remove(key);
            ordered.remove(key);
        }
        dead
    }

    /// Keys with a chain (live or not), versions held, and their row bytes.
    pub(crate) fn stats(&self) -> (usize, usize, usize) {
        let ordered = self.ordered.read();
        let (mut versions, mut bytes) = (0, 0);
        for (k, c) in ordered.iter() {
            let (v, b) = c.stats();
            versions += v;
            bytes += k.as_slice().len() + b;
        }
        (ordered.len(), versions, bytes)
    }
}
