//! The records received from the row store's change stream and not yet
//! applied to the column store, shared by the worker (which applies them
//! from the front) and snapshots (which overlay them).
//!
//! The watermark W moves only under the inbox's lock, together with the
//! removal of the records it covers. So under the lock, every commit is
//! either at or below W (in the column store) or in the inbox or still in
//! the channel; and the row store sends a commit's record before the commit
//! is visible, so for a snapshot at T the records up to T are all there
//! once the channel is drained.

use std::collections::VecDeque;
use std::sync::Arc;

use omen_rowstore::{ChangeRecord, Subscription, Ts};

pub(crate) struct Inbox {
    /// The row store's change stream; `None` once the worker has exited
    /// (the store then stops sending: no commit waits on a reader gone).
    sub: Option<Subscription>,
    /// Received, not yet applied, in commit order.
    records: VecDeque<Arc<ChangeRecord>>,
    /// Most records held: past it they wait in the channel, whose bound
    /// then holds commits back.
    limit: usize,
}

/// What a snapshot at T reads besides the column store.
pub(crate) enum Unapplied {
    /// W >= T: the column store alone, at T.
    Applied,
    /// The column store at `read_at` = W, with `records` (W, T] over it.
    Overlay { read_at: Ts, records: Vec<Arc<ChangeRecord>> },
    /// Not all of (W, T] is at hand (the inbox is full), or DDL is among
    /// it: wait for W >= T.
    Wait,
}

impl Inbox {
    pub(crate) fn new(sub: Subscription, limit: usize) -> Self {
        Self { sub: Some(sub), records: VecDeque::new(), limit: limit.max(1) }
    }

    /// Moves waiting records from the channel in, up to the limit. Returns
    /// how many it moved, and whether the stream has ended (the store
    /// closed and every record was received, or the worker exited).
    pub(crate) fn receive(&mut self) -> (usize, bool) {
        let Some(sub) = &self.sub else { return (0, true) };
        let mut moved = 0;
        while self.records.len() < self.limit {
            match sub.try_recv() {
                Ok(Some(r)) => self.records.push_back(r),
                Ok(None) => return (moved, false),
                Err(_) => return (moved, true),
            }
            moved += 1;
        }
        (moved, false)
    }

    /// Lets the stream go: the worker has exited.
    pub(crate) fn close(&mut self) {
        self.sub = None;
    }

    /// Up to `n` records from the front, for the worker to apply.
    pub(crate) fn front(&self, n: usize) -> impl Iterator<Item = &Arc<ChangeRecord>> {
        self.records.iter().take(n)
    }

    /// Removes `n` records the worker applied from the front.
    pub(crate) fn remove_front(&mut self, n: usize) {
        self.records.drain(..n.min(self.records.len()));
    }

    /// What a snapshot at `t` needs, given the watermark `w`; call after
    /// [`Inbox::receive`] with `w` read under the same lock.
    pub(crate) fn pending(&self, w: Ts, t: Ts) -> Unapplied {
        if w >= t {
            return Unapplied::Applied;
        }
        // Records are in commit order: one at or past T means none up to T
        // is missing.
        if self.records.back().is_none_or(|r| r.ts < t) {
            return Unapplied::Wait;
        }
        let records: Vec<_> = self.records.iter().skip_while(|r| r.ts <= w).take_while(|r| r.ts <= t).cloned().collect();
        if records.iter().any(|r| !matches!(r.change, omen_rowstore::Change::Commit(_))) {
            return Unapplied::Wait;
        }
        Unapplied::Overlay { read_at: w, records }
    }
}
