//! The commit protocol: a transaction's writes take the next timestamp,
//! are logged, installed and published to the change stream, under the
//! commit lock; under [`crate::Durability::Full`] they become visible once
//! their group's sync covers them. DDL advances the same clock
//! ([`Store::advance`]). Subscribers attach to the publisher the commit
//! lock guards ([`Store::subscribe`]), and commits queue the chains they
//! leave with old versions for the collector ([`super::gc`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Store;
use crate::changes::{Change, ChangeOp, ChangeRecord, Publisher, RowChange, Subscription};
use crate::error::{Error, Result};
use crate::schema::TableId;
use crate::snapshots::Ts;
use crate::table::{Chain, Encoded, KeyBuf, Table, TxnId};
use crate::txn::{WriteSet, release};
use crate::wal::{WalOp, WalRecord, WalWrite};

/// A chain that may hold garbage, and where it lives.
pub(super) struct Queued {
    pub(super) table: Arc<Table>,
    pub(super) key: KeyBuf,
    pub(super) chain: Arc<Chain>,
}

/// State changed only under the commit lock.
#[derive(Default)]
pub(super) struct CommitState {
    /// The newest timestamp given to a commit or DDL. Ahead of the clock
    /// while commits wait for their group's fsync.
    pub(super) last_ts: Ts,
    pub(super) publisher: Publisher,
    pub(super) next_table_id: TableId,
    /// Chains a commit left with old versions or a tombstone.
    pub(super) gc_queue: Vec<Queued>,
}

impl Store {
    /// Subscribes to the change stream from the next commit on. `capacity`
    /// records may wait unreceived before commits block.
    ///
    /// A commit's record is sent before the commit becomes visible: once a
    /// snapshot at T has begun, every record up to T is in the
    /// subscription (received or waiting).
    pub fn subscribe(&self, capacity: usize) -> Subscription {
        self.inner.commit.lock().publisher.subscribe(capacity, false)
    }

    /// [`Store::subscribe`] for a reader that must not hold commits back:
    /// once `capacity` records wait unreceived, the store drops the
    /// subscriber instead of blocking ([`Subscription::fell_behind`]); the
    /// reader catches up from the log ([`Store::replay_changes`]) and
    /// subscribes again.
    ///
    /// Also returns the newest commit timestamp given out when it
    /// subscribed: the records after it come through the subscription;
    /// those up to it were sent before, and under [`crate::Durability::Full`]
    /// the last of them may not be visible (nor in
    /// [`Store::replay_changes`]) until their group's sync.
    pub fn subscribe_or_drop(&self, capacity: usize) -> (Subscription, Ts) {
        let mut commit = self.inner.commit.lock();
        let start = commit.last_ts;
        (commit.publisher.subscribe(capacity, true), start)
    }

    /// Commits a transaction's writes (the commit protocol, `docs/ARCHITECTURE.md`):
    /// under the commit lock, take the next timestamp, log the redo record,
    /// install the versions, advance the clock, publish the change record.
    /// On error every write slot is released and nothing is visible.
    pub(crate) fn commit(&self, txn: TxnId, writes: WriteSet, tables: &[Arc<Table>]) -> Result<Ts> {
        // Encode outside the commit lock; inserted-then-deleted keys commit nothing.
        let mut installs = Vec::with_capacity(writes.len());
        for ((table, key), p) in writes {
            if p.row.is_none() && !p.live_before {
                if let Some(t) = tables.iter().find(|t| t.id == table) {
                    t.unlock(key.as_slice(), &p.chain, txn);
                }
                continue;
            }
            let encoded = p.row.as_deref().map(crate::codec::row::encode_row);
            let bytes = encoded.map(|v| if self.inner.wal.is_some() { Encoded::Shared(v.into()) } else { Encoded::Owned(v) });
            installs.push((table, key, p, bytes));
        }
        let release_all = |installs: Vec<(TableId, KeyBuf, crate::txn::Pending, Option<Encoded>)>| {
            release(txn, installs.into_iter().map(|(t, k, p, _)| ((t, k), p)).collect(), tables);
        };
        let is_index = |id: TableId| tables.iter().any(|t| t.id == id && t.is_index);
        let wal_writes = match &self.inner.wal {
            Some(_) => installs
                .iter()
                .filter(|(table, ..)| !is_index(*table))
                .map(|(table, key, p, bytes)| {
                    let shared = |b: &Encoded| match b {
                        Encoded::Shared(a) => Arc::clone(a),
                        Encoded::Owned(v) => Arc::from(v.as_slice()),
                    };
                    let op = match (bytes, p.live_before) {
                        (None, _) => WalOp::Delete,
                        (Some(b), false) => WalOp::Insert(shared(b)),
                        (Some(b), true) => WalOp::Update(shared(b)),
                    };
                    WalWrite { table: *table, key: key.as_slice().to_vec(), op }
                })
                .collect(),
            None => Vec::new(),
        };

        let mut commit = self.inner.commit.lock();
        let dropped = {
            let catalog = self.inner.catalog.read();
            tables.iter().find(|t| !catalog.by_id.get(&t.id).is_some_and(|c| Arc::ptr_eq(c, t))).map(|t| t.schema.name.clone())
        };
        if let Some(e) = self.check_open().err().or(dropped.map(Error::UnknownTable)) {
            release_all(installs);
            return Err(e);
        }
        let ts = commit.last_ts + 1;
        // Under Full durability, where the group's sync must reach.
        let sync_to = match &self.inner.wal {
            Some(wal) => match wal.write(&WalRecord::Commit { ts, writes: wal_writes }) {
                Ok(end) => end,
                Err(e) => {
                    release_all(installs);
                    return Err(e);
                }
            },
            None => None,
        };
        let horizon = self.inner.snapshots.horizon(&self.inner.clock);
        let mut changes = Vec::new();
        let publish = commit.publisher.has_subscribers();
        for (table, key, p, bytes) in installs {
            if p.chain.install(ts, bytes, horizon)
                && let Some(t) = tables.iter().find(|t| t.id == table)
            {
                commit.gc_queue.push(Queued { table: Arc::clone(t), key: key.clone(), chain: Arc::clone(&p.chain) });
            }
            if publish && !is_index(table) {
                let op = match (&p.row, p.live_before) {
                    (None, _) => ChangeOp::Delete,
                    (Some(_), false) => ChangeOp::Insert,
                    (Some(_), true) => ChangeOp::Update,
                };
                changes.push(RowChange { table, op, key: key.as_slice().to_vec(), row: p.row });
            }
        }
        commit.last_ts = ts;
        // Published before it is visible: a reader whose snapshot includes
        // this commit finds its record already sent.
        if publish {
            commit.publisher.publish(ChangeRecord::new(ts, Change::Commit(changes)));
        }
        if sync_to.is_none() {
            self.inner.clock.store(ts, Ordering::SeqCst);
        }
        drop(commit);
        if let (Some(wal), Some(end)) = (&self.inner.wal, sync_to) {
            // Outside the commit lock, so the next commits write their
            // records meanwhile and share the next sync. The versions are
            // installed but stay invisible (the clock is behind `ts`), and a
            // writer of the same keys meets them as a conflict, as it would
            // meet a held row.
            wal.sync_to(end)?;
            // Commits of one group finish in any order; every record up to
            // `ts` is durable, and installed before this one's.
            self.inner.clock.fetch_max(ts, Ordering::SeqCst);
        }
        Ok(ts)
    }

    /// Makes `ts` the newest timestamp, given and visible, for DDL whose
    /// log record was synced (with every record before it) under the
    /// commit lock; its change records go out first, as a commit's do (see
    /// [`Store::subscribe`]).
    pub(super) fn advance(&self, commit: &mut CommitState, ts: Ts, records: impl IntoIterator<Item = ChangeRecord>) {
        commit.last_ts = ts;
        for record in records {
            commit.publisher.publish(record);
        }
        self.inner.clock.store(ts, Ordering::SeqCst);
    }

    /// Advances the clock to `ts` for DDL that changes no rows; the change
    /// stream gets an empty commit so its readers' watermarks keep up.
    pub(super) fn publish_catalog_change(&self, commit: &mut CommitState, ts: Ts) {
        self.advance(commit, ts, [ChangeRecord::new(ts, Change::Commit(Vec::new()))]);
    }
}
