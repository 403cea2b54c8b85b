//! The change stream: one record per commit (and per DDL), in strict
//! commit-timestamp order, to every subscriber.
//!
//! Records are sent while the commit still holds the commit lock, through a
//! bounded channel: a subscriber that falls behind blocks commits (back
//! pressure) rather than losing records. A subscriber that drops its
//! [`Subscription`] is removed on the next send.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::schema::{TableId, TableSchema};
use crate::table::Ts;
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
    /// When the store published the record: as its commit became visible
    /// (under group commit, just before the commit's fsync). Subscribers
    /// measure their lag from it.
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
}

impl Subscription {
    /// Waits up to `timeout` for the next record. `Ok(None)` on timeout;
    /// `Err(Closed)` once the store has closed and every record was received.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Arc<ChangeRecord>>, crate::Error> {
        match self.rx.recv_timeout(timeout) {
            Ok(r) => Ok(Some(r)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(crate::Error::Closed),
        }
    }

    /// The next record if one is waiting.
    pub fn try_recv(&self) -> Option<Arc<ChangeRecord>> {
        self.rx.try_recv().ok()
    }

    /// Waits up to `timeout` until a record is waiting or the store has
    /// closed, without receiving it; whether either happened. For a reader
    /// that receives under a lock of its own and waits outside it.
    pub fn wait(&self, timeout: Duration) -> bool {
        let mut select = crossbeam_channel::Select::new();
        select.recv(&self.rx);
        select.ready_timeout(timeout).is_ok()
    }
}

/// The publishing side, kept under the store's commit lock.
#[derive(Default)]
pub(crate) struct Publisher {
    subscribers: Vec<Sender<Arc<ChangeRecord>>>,
}

impl Publisher {
    pub(crate) fn subscribe(&mut self, capacity: usize) -> Subscription {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        self.subscribers.push(tx);
        Subscription { rx }
    }

    /// Sends to every subscriber, blocking on full channels.
    pub(crate) fn publish(&mut self, record: ChangeRecord) {
        if self.subscribers.is_empty() {
            return;
        }
        let record = Arc::new(record);
        self.subscribers.retain(|tx| tx.send(Arc::clone(&record)).is_ok());
    }

    /// Whether a commit's record has anyone to go to (so is worth building).
    pub(crate) fn has_subscribers(&self) -> bool {
        !self.subscribers.is_empty()
    }

    pub(crate) fn close(&mut self) {
        self.subscribers.clear();
    }
}

impl Subscription {
    /// Records currently waiting (for lag metrics and tests).
    pub fn pending(&self) -> usize {
        self.rx.len()
    }
}
