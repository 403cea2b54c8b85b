//! The registry of open snapshots, which bounds garbage collection, and
//! the commit clock it reads ([`Ts`], [`Clock`]).
//!
//! Beginning and ending a transaction must be cheap and must not make threads
//! share a cache line, so open snapshots live in a fixed array of atomic
//! slots, each thread starting its search at its own cache line; a mutex'ed
//! map takes the overflow when every slot is busy.
//!
//! The horizon is the oldest timestamp any open or future snapshot reads at;
//! versions that ended at or before it are garbage. The race to avoid: a
//! transaction reads the clock (`c`), a commit advances it, the collector
//! reads the new clock and scans the slots before `c` is published, and frees
//! a version `c` still sees. So a transaction publishes `c`, then re-reads the
//! clock, and keeps `c` only if the clock has not moved (else it publishes the
//! new value and tries again). Every access is `SeqCst`: if the collector's
//! slot scan misses the publication, its clock read came before the
//! transaction's re-read, so the horizon is at most `c`. A `SeqCst` fence
//! sits between each side's write and read too: it is what the argument
//! needs under loom, which models `SeqCst` accesses as acquire/release only
//! (without the fences its model checker finds the race), and costs one
//! `mfence` per begin. The `loom_tests` below check every interleaving.

use std::collections::BTreeMap;

#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst, fence};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst, fence};

use parking_lot::Mutex;

/// A commit timestamp.
pub type Ts = u64;

/// The commit clock's cell (a loom atomic under `--cfg loom`).
pub(crate) type Clock = AtomicU64;

const FREE: Ts = Ts::MAX;
/// Slots per cache line.
const PER_LINE: usize = 8;

/// Where a snapshot is registered; give it back with [`Snapshots::release`].
#[derive(Debug)]
pub(crate) enum Registration {
    Slot(usize),
    Overflow(Ts),
}

pub(crate) struct Snapshots {
    slots: Box<[AtomicU64]>,
    overflow: Mutex<BTreeMap<Ts, usize>>,
    /// Hands each thread its starting cache line.
    #[cfg_attr(loom, allow(dead_code))]
    next_line: AtomicUsize,
}

#[cfg(not(loom))]
std::thread_local! {
    static HOME: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

impl Snapshots {
    /// A registry with `slots` lock-free slots (rounded up to a cache line).
    pub(crate) fn new(slots: usize) -> Self {
        let n = slots.max(1).div_ceil(PER_LINE) * PER_LINE;
        Self { slots: (0..n).map(|_| AtomicU64::new(FREE)).collect(), overflow: Mutex::default(), next_line: AtomicUsize::new(0) }
    }

    /// Loom needs every run of a model to choose alike: no thread-local hint.
    #[cfg(loom)]
    fn home(&self) -> usize {
        0
    }

    #[cfg(not(loom))]
    fn home(&self) -> usize {
        HOME.with(|home| match home.get() {
            Some(h) => h,
            None => {
                let h = self.next_line.fetch_add(1, SeqCst) * PER_LINE;
                home.set(Some(h));
                h
            }
        })
    }

    /// Registers a snapshot of `clock`; returns its timestamp.
    pub(crate) fn acquire(&self, clock: &AtomicU64) -> (Ts, Registration) {
        let n = self.slots.len();
        let home = self.home();
        for i in 0..n {
            let idx = (home + i) % n;
            let slot = &self.slots[idx];
            let mut ts = clock.load(SeqCst);
            if slot.load(SeqCst) != FREE || slot.compare_exchange(FREE, ts, SeqCst, SeqCst).is_err() {
                continue;
            }
            loop {
                fence(SeqCst);
                let now = clock.load(SeqCst);
                if now == ts {
                    return (ts, Registration::Slot(idx));
                }
                ts = now;
                slot.store(ts, SeqCst);
            }
        }
        // Reading the clock under the lock orders it after any horizon that
        // has already looked at the overflow.
        let mut overflow = self.overflow.lock();
        let ts = clock.load(SeqCst);
        *overflow.entry(ts).or_default() += 1;
        (ts, Registration::Overflow(ts))
    }

    pub(crate) fn release(&self, reg: Registration) {
        match reg {
            Registration::Slot(idx) => self.slots[idx].store(FREE, SeqCst),
            Registration::Overflow(ts) => {
                let mut overflow = self.overflow.lock();
                if let Some(n) = overflow.get_mut(&ts) {
                    *n -= 1;
                    if *n == 0 {
                        overflow.remove(&ts);
                    }
                }
            }
        }
    }

    /// The oldest timestamp an open or future snapshot of `clock` reads at.
    pub(crate) fn horizon(&self, clock: &AtomicU64) -> Ts {
        let now = clock.load(SeqCst);
        fence(SeqCst);
        let slots = self.slots.iter().map(|s| s.load(SeqCst)).min().unwrap_or(FREE);
        let overflow = self.overflow.lock().keys().next().copied().unwrap_or(FREE);
        now.min(slots).min(overflow)
    }
}

/// Every interleaving of a transaction beginning while a commit advances the
/// clock and computes a horizon: the horizon never passes the snapshot.
/// Run with `RUSTFLAGS="--cfg loom" cargo test -p omen-rowstore --lib --release loom`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    #[test]
    fn loom_horizon_never_passes_a_snapshot_being_taken() {
        loom::model(|| {
            let clock = Arc::new(Clock::new(1));
            let snaps = Arc::new(Snapshots::new(2));
            let committer = {
                let (clock, snaps) = (Arc::clone(&clock), Arc::clone(&snaps));
                loom::thread::spawn(move || {
                    clock.store(2, SeqCst);
                    snaps.horizon(&clock)
                })
            };
            let (ts, reg) = snaps.acquire(&clock);
            let horizon = committer.join().unwrap();
            assert!(horizon <= ts, "horizon {horizon} passed snapshot {ts}");
            // Once the snapshot is released the horizon may move on.
            snaps.release(reg);
            assert_eq!(snaps.horizon(&clock), 2);
        });
    }

    #[test]
    fn loom_two_snapshots_and_a_release() {
        loom::model(|| {
            let clock = Arc::new(Clock::new(1));
            let snaps = Arc::new(Snapshots::new(2));
            let (first, reg) = snaps.acquire(&clock);
            let other = {
                let (clock, snaps) = (Arc::clone(&clock), Arc::clone(&snaps));
                loom::thread::spawn(move || {
                    let (ts, reg) = snaps.acquire(&clock);
                    let h = snaps.horizon(&clock);
                    snaps.release(reg);
                    (ts, h)
                })
            };
            clock.store(2, SeqCst);
            let h = snaps.horizon(&clock);
            snaps.release(reg);
            let (ts, other_h) = other.join().unwrap();
            assert!(h <= first && other_h <= ts, "{h} {other_h} {first} {ts}");
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn horizon_is_the_oldest_open_snapshot() {
        let clock = AtomicU64::new(5);
        let snaps = Snapshots::new(2);
        assert_eq!(snaps.horizon(&clock), 5);
        let (a, ra) = snaps.acquire(&clock);
        clock.store(9, SeqCst);
        let (b, rb) = snaps.acquire(&clock);
        assert_eq!((a, b), (5, 9));
        assert_eq!(snaps.horizon(&clock), 5);
        snaps.release(ra);
        assert_eq!(snaps.horizon(&clock), 9);
        snaps.release(rb);
        clock.store(12, SeqCst);
        assert_eq!(snaps.horizon(&clock), 12);
    }

    #[test]
    fn overflow_takes_what_the_slots_cannot() {
        let clock = AtomicU64::new(1);
        let snaps = Snapshots::new(1);
        let regs: Vec<_> = (0..20)
            .map(|i| {
                clock.store(i + 1, SeqCst);
                snaps.acquire(&clock)
            })
            .collect();
        assert!(regs.iter().any(|(_, r)| matches!(r, Registration::Overflow(_))));
        assert_eq!(snaps.horizon(&clock), 1);
        let mut iter = regs.into_iter();
        for (ts, reg) in iter.by_ref().take(10) {
            assert!(snaps.horizon(&clock) <= ts);
            snaps.release(reg);
        }
        assert_eq!(snaps.horizon(&clock), 11);
        iter.for_each(|(_, r)| snaps.release(r));
        assert_eq!(snaps.horizon(&clock), 20);
    }
}
