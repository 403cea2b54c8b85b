//! The writers' gate: a table's count of transactions holding uncommitted
//! writes to it, which index DDL closes to build or drop an index while no
//! such transaction is open.
//!
//! A transaction passes the gate at its first write to the table and leaves
//! at commit or rollback. While DDL holds the gate closed, a first write
//! waits; DDL waits (up to a limit) for the transactions inside to finish.
//! It is PostgreSQL's CREATE INDEX lock: writers wait for it and it waits for
//! writers. The open path costs one atomic add and one subtract per
//! transaction and table.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// Set in `state` while DDL holds the gate.
const CLOSED: u64 = 1 << 63;

#[derive(Default)]
pub(crate) struct Gate {
    /// Writers inside, plus [`CLOSED`].
    state: AtomicU64,
    /// Serializes DDL and parks waiters of either kind.
    lock: Mutex<()>,
    changed: Condvar,
}

impl Gate {
    /// Lets a writer in, waiting while DDL holds the gate.
    pub(crate) fn enter(&self) {
        loop {
            if self.state.fetch_add(1, Ordering::AcqRel) & CLOSED == 0 {
                return;
            }
            self.leave();
            let mut guard = self.lock.lock();
            while self.state.load(Ordering::Acquire) & CLOSED != 0 {
                self.changed.wait(&mut guard);
            }
        }
    }

    /// A writer leaves; wakes DDL waiting for the last one.
    pub(crate) fn leave(&self) {
        let before = self.state.fetch_sub(1, Ordering::AcqRel);
        if before == CLOSED | 1 {
            let _guard = self.lock.lock();
            self.changed.notify_all();
        }
    }

    /// Closes the gate once no writer is inside, waiting at most `patience`;
    /// `None` if writers stayed. Writers wait until the guard drops.
    pub(crate) fn close(&self, patience: Duration) -> Option<Closed<'_>> {
        let deadline = Instant::now() + patience;
        let mut guard = self.lock.lock();
        // One DDL at a time: wait out another holder first.
        while self.state.load(Ordering::Acquire) & CLOSED != 0 {
            if self.changed.wait_until(&mut guard, deadline).timed_out() {
                return None;
            }
        }
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
        while self.state.load(Ordering::Acquire) != CLOSED {
            if self.changed.wait_until(&mut guard, deadline).timed_out() && self.state.load(Ordering::Acquire) != CLOSED {
                self.state.fetch_and(!CLOSED, Ordering::AcqRel);
                self.changed.notify_all();
                return None;
            }
        }
        Some(Closed { gate: self })
    }
}

/// The gate held closed; dropping it lets writers in again.
pub(crate) struct Closed<'a> {
    gate: &'a Gate,
}

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        let _guard = self.gate.lock.lock();
        self.gate.state.fetch_and(!CLOSED, Ordering::AcqRel);
        self.gate.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn ddl_waits_for_writers_and_writers_wait_for_ddl() {
        let gate = Arc::new(Gate::default());
        gate.enter();
        assert!(gate.close(Duration::from_millis(20)).is_none(), "a writer is inside");
        // After the failed close, writers are let in again.
        gate.enter();
        gate.leave();
        gate.leave();

        let closed = gate.close(Duration::from_secs(5)).expect("no writer inside");
        let entered = Arc::new(AtomicBool::new(false));
        let writer = {
            let (gate, entered) = (Arc::clone(&gate), Arc::clone(&entered));
            std::thread::spawn(move || {
                gate.enter();
                entered.store(true, Ordering::SeqCst);
                gate.leave();
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        assert!(!entered.load(Ordering::SeqCst), "the writer waits while DDL holds the gate");
        drop(closed);
        writer.join().expect("writer thread");
        assert!(entered.load(Ordering::SeqCst));
        assert_eq!(gate.state.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn ddl_gets_the_gate_when_the_last_writer_leaves() {
        let gate = Arc::new(Gate::default());
        gate.enter();
        let leaver = {
            let gate = Arc::clone(&gate);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                gate.leave();
            })
        };
        assert!(gate.close(Duration::from_secs(10)).is_some());
        leaver.join().expect("leaver thread");
    }
}
