//! How a READ COMMITTED statement waits for rows other transactions hold:
//! until some transaction lets go of rows, then it runs again; past
//! `lock_timeout` or `deadlock_timeout` it gives up.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::context::Released;
use crate::error::{Error, Result};
use crate::pg::Settings;

/// How long a READ COMMITTED statement waits, in all, for rows other
/// transactions hold before it fails with [`Error::Deadlock`], unless the
/// session sets `deadlock_timeout`. PostgreSQL looks for a cycle after
/// this long; OmenDB has no deadlock detector and gives up instead.
pub const DEFAULT_DEADLOCK_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest a waiter sleeps without a release before it looks again
/// (and checks its limits).
const WAIT_NAP: Duration = Duration::from_millis(10);

/// The waits of one statement: until some transaction lets go of rows
/// (any: the row store has no per-row wait queue), then the statement
/// tries again; past `lock_timeout` or `deadlock_timeout` it gives up.
pub(super) struct LockWait {
    released: Arc<Released>,
    /// Releases seen when the last attempt began.
    seen: u64,
    started: Option<Instant>,
}

impl LockWait {
    /// Made before the statement's first attempt.
    pub(super) fn new(released: &Arc<Released>) -> Self {
        Self { seen: released.count.load(Ordering::SeqCst), released: Arc::clone(released), started: None }
    }

    /// Waits for a release; fails past the session's `lock_timeout` (if
    /// set) or `deadlock_timeout`, read here rather than per statement, as
    /// most statements never wait.
    pub(super) async fn pause(&mut self, settings: &Settings) -> Result<()> {
        let started = *self.started.get_or_insert_with(Instant::now);
        let waited = started.elapsed();
        let limit = |name: &str| settings.duration(name).filter(|d| !d.is_zero());
        let lock_timeout = limit("lock_timeout");
        let deadlock_timeout = limit("deadlock_timeout").unwrap_or(DEFAULT_DEADLOCK_TIMEOUT);
        let held = |setting: &str| format!("waited {} ms for rows other transactions hold ({setting})", waited.as_millis());
        if lock_timeout.is_some_and(|limit| waited >= limit) {
            return Err(Error::LockNotAvailable(held("lock_timeout")));
        }
        if waited >= deadlock_timeout {
            return Err(Error::Deadlock(held("deadlock_timeout; OmenDB does not look for a cycle, it stops waiting")));
        }
        let left = lock_timeout.unwrap_or(Duration::MAX).min(deadlock_timeout) - waited;
        // Registered before the count is read: a release after the read
        // wakes it.
        let notified = self.released.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.released.count.load(Ordering::SeqCst) == self.seen {
            let _ = tokio::time::timeout(WAIT_NAP.min(left), notified).await;
        } else {
            // Released since the attempt began: try again, after letting
            // other tasks run.
            tokio::task::yield_now().await;
        }
        self.seen = self.released.count.load(Ordering::SeqCst);
        Ok(())
    }
}
