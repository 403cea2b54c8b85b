//! A table's rows: every key's version chain, reachable two ways.
//!
//! - a hash index sharded by key hash, for point reads and writes;
//! - an ordered map, for range scans.
//!
//! Both hold the same `Arc<Chain>`; a chain enters both when its key is first
//! written and leaves both when garbage collection unlinks it.
//!
//! Behind them, the table's checkpoint runs (its *base*, memory-mapped:
//! [`base`], [`crate::run`]) hold the rows as of the latest checkpoint. A
//! key without a chain is read from the base; a write to such a key first
//! gives it a chain holding the base's row (begin 0), so the
//! version logic never looks at the base. After a checkpoint, chains whose
//! only version is the base's row are dropped ([`Table::evict`]): memory
//! holds what changed since the last checkpoint, not the whole table, and
//! the next checkpoint writes those chains (each key's row, or a tombstone
//! where the base holds a deleted key) as a new run ([`Table::changes`]). A
//! deleted key the base holds keeps its tombstone chain until a newer base
//! no longer has it, or the base's row would come back. The base is
//! swapped under the ordered map's write lock, so a reader holding the read
//! lock, or a writer creating a chain, sees chains and base agree. The choice was
//! measured (`bench-compare/benches/index.rs`, 100k BIGINT keys, one thread):
//! a random lookup takes 17 ns in the hash index, 157 ns in a `BTreeMap` with
//! inline keys, 247 ns in omen-learned's `DynamicPgm`, 306 ns in
//! `scc::TreeIndex` and 477 ns in `crossbeam-skiplist`; 100-key range walks
//! take 0.31, 2.6, 1.5 and 7.0 µs. So the ordered map is a `BTreeMap` and point
//! operations skip it.
//!
//! Lock order: the ordered map's lock, then a shard's lock, then the base's,
//! then a chain's.
//! Nothing holds a chain's lock while taking an index lock.

mod base;
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

pub(crate) use base::{Base, KeyRow, Merge};
pub(crate) use chain::{Chain, Collected, Encoded, LockError, Locked, WriteKind};
pub(crate) use gate::Gate;
pub(crate) use key_buf::KeyBuf;

use crate::error::Error;
use crate::index::Index;
use crate::schema::{TableId, TableSchema};
use crate::snapshots::Ts;

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

/// The base's next row below `hi`, if any.
fn next_below<'a>(rows: &mut Option<Merge<'a>>, hi: Bound<&[u8]>) -> Result<Option<KeyRow<'a>>, Error> {
    let Some(merge) = rows else { return Ok(None) };
    Ok(merge.next_row()?.filter(|(k, _)| match hi {
        Bound::Unbounded => true,
        Bound::Included(h) => *k <= h,
        Bound::Excluded(h) => *k < h,
    }))
}

/// Hash shards per table: enough that two threads rarely share one.
const SHARDS: usize = 64;

/// One shard of the hash index, with a copy of the table's base so that a
/// point read that misses takes no other lock (and sees chains and base
/// of one moment: `set_base` writes every shard's copy).
#[derive(Default)]
struct ShardMap {
    chains: FxHashMap<KeyBuf, Arc<Chain>>,
    base: Option<Arc<Base>>,
}

type Shard = CachePadded<RwLock<ShardMap>>;

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
    /// The checkpoint runs: rows of keys without a chain.
    base: RwLock<Option<Arc<Base>>>,
    /// Counts `set_base` calls; an eviction sweep is due while it is ahead
    /// of the generation the last finished sweep started from.
    base_generation: AtomicU64,
    evicted_generation: AtomicU64,
}

/// Keys looked at per hold of the ordered map's lock while evicting.
const EVICT_CHUNK: usize = 1024;

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
            base: RwLock::new(None),
            base_generation: AtomicU64::new(0),
            evicted_generation: AtomicU64::new(0),
        }
    }

    /// The table's base, if it has runs.
    pub(crate) fn base(&self) -> Option<Arc<Base>> {
        self.base.read().clone()
    }

    /// Makes `base` the table's base (runs holding every row of every
    /// chain as of its timestamp; see the module docs).
    pub(crate) fn set_base(&self, base: Option<Arc<Base>>) {
        let _ordered = self.ordered.write();
        for shard in self.shards.iter() {
            shard.write().base = base.clone();
        }
        *self.base.write() = base;
        self.base_generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Whether the base holds `key` (true when that cannot be read: keeping
    /// a chain is always safe).
    fn base_has(&self, key: &[u8]) -> bool {
        self.base.read().as_ref().is_some_and(|base| !matches!(base.get(key), Ok(None)))
    }

    /// After a new base: drops the chains whose only version is the base's
    /// row, and the dead ones whose key the base lacks (tombstones that
    /// masked an older base), once no snapshot older than the base can
    /// read them (`horizon`: the oldest open snapshot's timestamp); returns
    /// how many. A chunk of keys at a time, so new keys wait for the map's
    /// lock only briefly. Does nothing until the horizon reaches the base.
    pub(crate) fn evict(&self, horizon: Ts) -> usize {
        use std::sync::atomic::Ordering::{Acquire, Release};
        let generation = self.base_generation.load(Acquire);
        if generation == self.evicted_generation.load(Acquire) {
            return 0;
        }
        let base = self.base();
        let base_ts = base.as_ref().map(|b| b.ts());
        if base_ts.is_some_and(|ts| horizon < ts) {
            return 0;
        }
        let removable = |c: &Chain| base_ts.is_some_and(|ts| c.evictable(ts, horizon)) || c.is_dead(horizon);
        let mut evicted = 0;
        let mut from: Option<KeyBuf> = None;
        loop {
            let (scanned, candidates) = {
                let ordered = self.ordered.read();
                let lo = from.as_ref().map_or(Bound::Unbounded, |k| Bound::Excluded(k.as_slice()));
                let mut scanned = None;
                let mut candidates = Vec::new();
                for (k, c) in ordered.range::<[u8], _>((lo, Bound::Unbounded)).take(EVICT_CHUNK) {
                    if removable(c) {
                        candidates.push(k.clone());
                    }
                    scanned = Some(k.clone());
                }
                (scanned, candidates)
            };
            for key in candidates {
                let key = key.as_slice();
                let mut ordered = self.ordered.write();
                let mut map = self.shard(key).write();
                if !Option::zip(self.base.read().as_ref(), base.as_ref()).map_or(base.is_none(), |(now, was)| Arc::ptr_eq(now, was)) {
                    return evicted; // a newer base came; its own sweep follows
                }
                let gone = map
                    .chains
                    .get(key)
                    .is_some_and(|c| base_ts.is_some_and(|ts| c.evict(ts, horizon)) || (!self.base_has(key) && c.unlink_if_dead(horizon)));
                if gone {
                    map.chains.remove(key);
                    ordered.remove(key);
                    evicted += 1;
                }
            }
            match scanned {
                Some(k) => from = Some(k),
                None => break,
            }
        }
        // A base set meanwhile moved the generation on: its sweep is still due.
        let _ = self.evicted_generation.fetch_max(generation, Release);
        evicted
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

    /// Calls `f` with the row visible at `ts` under `key`, if any: the
    /// key's chain decides, else the base. A key without a chain has held
    /// the base's row since before the oldest open snapshot: a chain leaves
    /// only once its one version is the base's row and no older snapshot
    /// is open, or (dead) once its tombstone is older than every open
    /// snapshot and the base lacks the key.
    pub(crate) fn with_visible<R>(&self, key: &[u8], ts: Ts, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>, Error> {
        let shard = self.shard(key).read();
        if let Some(c) = shard.chains.get(key) {
            // Read under the shard's lock, as before runs: no refcount
            // traffic on a hot key's chain.
            return Ok(c.with_visible(ts, f));
        }
        // Under the shard's lock: no chain for the key can appear, and no
        // newer base can come, meanwhile.
        match &shard.base {
            Some(base) => Ok(base.get(key)?.map(f)),
            None => Ok(None),
        }
    }

    /// Calls `f` with each row visible at `ts` with a key in the range, in
    /// key order, until `f` returns false: chains and the base merged, a
    /// chain masking the base's row of its key. Keys written meanwhile wait.
    pub(crate) fn visit(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>, ts: Ts, mut f: impl FnMut(&[u8], &[u8]) -> bool) -> Result<(), Error> {
        if is_empty_range(lo, hi) {
            return Ok(());
        }
        let ordered = self.ordered.read();
        let base = self.base();
        let mut mem = ordered.range::<[u8], _>((lo, hi)).peekable();
        let mut rows = base.as_ref().map(|b| b.rows_from(lo)).transpose()?;
        let mut from_base = next_below(&mut rows, hi)?;
        loop {
            let chain_first = match (mem.peek(), &from_base) {
                (None, None) => return Ok(()),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((k, _)), Some((bk, _))) => k.as_slice() <= *bk,
            };
            let keep_going = match (chain_first, mem.next_if(|_| chain_first), from_base) {
                (true, Some((k, c)), b) => {
                    if b.is_some_and(|(bk, _)| k.as_slice() == bk) {
                        from_base = next_below(&mut rows, hi)?;
                    }
                    c.with_visible(ts, |row| f(k.as_slice(), row)) != Some(false)
                }
                (_, _, Some((bk, row))) => {
                    from_base = next_below(&mut rows, hi)?;
                    f(bk, row)
                }
                (_, _, None) => return Ok(()),
            };
            if !keep_going {
                return Ok(());
            }
        }
    }

    /// Up to `limit` keys with a chain after `after` (from the first
    /// with `None`), in key order, each with its row visible at `ts` (none:
    /// deleted then, or written only later). Every key written since the
    /// base's timestamp has a chain (see [`Table::evict`]), so these hold
    /// what a checkpoint at `ts` adds to the base.
    pub(crate) fn changes(&self, after: Option<&[u8]>, ts: Ts, limit: usize) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let ordered = self.ordered.read();
        let lo = after.map_or(Bound::Unbounded, Bound::Excluded);
        ordered
            .range::<[u8], _>((lo, Bound::Unbounded))
            .take(limit)
            .map(|(k, c)| (k.as_slice().to_vec(), c.with_visible(ts, <[u8]>::to_vec)))
            .collect()
    }

    /// The key's chain, created (in both maps, holding the base's row if
    /// the base has the key) if the key has none.
    fn chain(&self, key: &[u8]) -> Result<Arc<Chain>, Error> {
        let shard = self.shard(key);
        if let Some(c) = shard.read().chains.get(key) {
            return Ok(Arc::clone(c));
        }
        let mut ordered = self.ordered.write();
        let mut map = shard.write();
        if let Some(c) = map.chains.get(key) {
            return Ok(Arc::clone(c));
        }
        // A key without a chain has held the base's row since before any
        // open snapshot (see `Table::evict`), so the row begins at 0.
        let chain = match &map.base {
            Some(base) => match base.get(key)? {
                Some(row) => Chain::with_row(0, row),
                None => Chain::default(),
            },
            None => Chain::default(),
        };
        let chain = Arc::new(chain);
        map.chains.insert(KeyBuf::new(key), Arc::clone(&chain));
        ordered.insert(KeyBuf::new(key), Arc::clone(&chain));
        Ok(chain)
    }

    /// Takes the key's write slot for `txn` reading at `snapshot` (see
    /// [`Chain::lock`]); returns the chain, which stays linked while held.
    pub(crate) fn lock(&self, key: &[u8], txn: TxnId, snapshot: Ts, kind: WriteKind) -> Result<(Arc<Chain>, Locked), LockError> {
        loop {
            let chain = self.chain(key).map_err(|e| LockError::Read(Box::new(e)))?;
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

    /// Removes the key's chain from both maps if it is dead at `horizon`,
    /// unless the base holds the key (its tombstone must stay).
    pub(crate) fn unlink_if_dead(&self, key: &[u8], horizon: Ts) -> bool {
        let mut ordered = self.ordered.write();
        let mut map = self.shard(key).write();
        let Some(c) = map.chains.get(key) else { return false };
        if !c.is_dead(horizon) || self.base_has(key) {
            return false;
        }
        let dead = c.unlink_if_dead(horizon);
        if dead {
            map.chains.remove(key);
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
