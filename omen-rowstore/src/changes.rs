//! The change stream: one record per commit (and per DDL), in strict
//! commit-timestamp order, to every subscriber.
//!
//! Records are sent while the commit still holds the commit lock, through a
//! bounded channel: a subscriber that falls behind blocks commits (back
//! pressure) rather than losing records, unless it asked to be dropped
//! instead (and to catch up from the log). A subscriber that drops its
//! [`Subscription`] is removed on the next send.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::schema::{TableId, TableSchema};
use crate::snapshots::Ts;
use crate::value::Value;

/// What a commit did to one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    /// A new key.
    Insert,
    /// A new version of a live key.
    Update,
    /// The key's row was removed.
    Delete,
}

/// One row changed by a commit.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    /// The table.
    pub table: TableId,
    /// Insert, update or delete.
    pub op: ChangeOp,
    /// The encoded primary key (see [`crate::encode_key`]).
    pub key: Vec<u8>,
    /// The new row; `None` for deletes.
    pub row: Option<Vec<Value>>,
}

/// What a change record carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A committed transaction's row changes, in key order per table.
    Commit(Vec<RowChange>),
    /// A table was created.
    CreateTable {
        /// Its id.
        id: TableId,
        /// Its schema.
        schema: Arc<TableSchema>,
    },
    /// A table was dropped.
    DropTable {
        /// Its id.
        id: TableId,
    },
}

/// One entry of the change stream.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRecord {
    /// The commit timestamp; strictly increasing along the stream.
    pub ts: Ts,
    /// What happened.
    pub change: Change,
    /// When the store published the record: just before its commit
    /// became visible (under group commit, before the commit's fsync).
    /// Subscribers measure their lag from it.
    pub published: std::time::Instant,
}

impl ChangeRecord {
    /// A record published now.
    pub(crate) fn new(ts: Ts, change: Change) -> Self {
        Self { ts, change, published: std::time::Instant::now() }
    }
}

/// A subscriber's end of the change stream.
#[derive(Debug)]
pub struct Subscription {
    pub(crate) rx: Receiver<Arc<ChangeRecord>>,
    /// Set when a subscriber that does not hold commits back (see
    /// [`crate::Store::subscribe_or_drop`]) was dropped for falling behind.
    dropped: Arc<AtomicBool>,
}

impl Subscription {
    /// Waits up to `timeout` for the next record. `Ok(None)` on timeout;
    /// `Err(Closed)` once every record was received and the store has
    /// closed or (see [`Subscription::fell_behind`]) dropped the subscriber.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Arc<ChangeRecord>>, crate::Error> {
        match self.rx.recv_timeout(timeout) {
            Ok(r) => Ok(Some(r)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(crate::Error::Closed),
        }
    }

    /// The next record if one is waiting: `Ok(None)` if none is,
    /// `Err(Closed)` as [`Subscription::recv_timeout`] gives it. Reads no
    /// clock, for draining on a hot path.
    pub fn try_recv(&self) -> Result<Option<Arc<ChangeRecord>>, crate::Error> {
        match self.rx.try_recv() {
            Ok(r) => Ok(Some(r)),
            Err(crossbeam_channel::TryRecvError::Empty) => Ok(None),
            Err(crossbeam_channel::TryRecvError::Disconnected) => Err(crate::Error::Closed),
        }
    }

    /// The channel itself, for a reader that waits on it together with
    /// other channels (crossbeam's `Select`) or from another thread (a
    /// clone receives from the same stream; the store drops the
    /// subscriber only once every clone is gone).
    pub fn receiver(&self) -> &Receiver<Arc<ChangeRecord>> {
        &self.rx
    }

    /// Records currently waiting (for lag metrics and tests).
    pub fn pending(&self) -> usize {
        self.rx.len()
    }

    /// Whether the store dropped this subscriber for letting its channel
    /// fill (only those from [`crate::Store::subscribe_or_drop`]): the
    /// records after the last one received are not coming.
    pub fn fell_behind(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }
}

/// The publishing side, kept under the store's commit lock.
#[derive(Default)]
pub(crate) struct Publisher {
    subscribers: Vec<Subscriber>,
}

struct Subscriber {
    tx: Sender<Arc<ChangeRecord>>,
    /// `None`: a full channel holds commits back. `Some`: the subscriber
    /// is dropped instead, and this flag set.
    drop_when_full: Option<Arc<AtomicBool>>,
}

impl Publisher {
    pub(crate) fn subscribe(&mut self, capacity: usize, drop_when_full: bool) -> Subscription {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        let dropped = Arc::new(AtomicBool::new(false));
        self.subscribers.push(Subscriber { tx, drop_when_full: drop_when_full.then(|| Arc::clone(&dropped)) });
        Subscription { rx, dropped }
    }

    /// Sends to every subscriber, blocking on full channels of those that
    /// hold commits back.
    pub(crate) fn publish(&mut self, record: ChangeRecord) {
        if self.subscribers.is_empty() {
            return;
        }
        let record = Arc::new(record);
        self.subscribers.retain(|s| match &s.drop_when_full {
            None => s.tx.send(Arc::clone(&record)).is_ok(),
            Some(dropped) => match s.tx.try_send(Arc::clone(&record)) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    dropped.store(true, Ordering::Release);
                    false
                }
                Err(TrySendError::Disconnected(_)) => false,
            },
        });
    }

    /// Whether a commit's record has anyone to go to (so is worth building).
    pub(crate) fn has_subscribers(&self) -> bool {
        !self.subscribers.is_empty()
    }

    pub(crate) fn close(&mut self) {
        self.subscribers.clear();
    }
}
