//! Group commit: writing a record, and making it as durable as the mode
//! promises.
//!
//! Under [`Durability::Full`] a commit returns after an fdatasync
//! that covers its record. Commits share one write and one fdatasync (group
//! commit): a committer adds its record to the active segment's pending
//! bytes under the store's commit lock (no system call, unless the record
//! fills the segment: then the roll writes and syncs there), then, outside it,
//! waits for a sync that covers it or leads one itself: the leader writes
//! every pending record with one write and syncs ([`Wal::sync_to`]), while
//! the next group gathers. [`Durability::Normal`] and [`Durability::Off`]
//! write each record at once (so a process crash loses nothing); Normal
//! leaves syncing to a background thread every [`NORMAL_SYNC_INTERVAL`],
//! Off never syncs. Any failed write or fsync poisons the log: the kernel
//! may have dropped the dirty pages, so retrying the fsync could report
//! success for lost data (Rebello et al., ATC 2020). The store then
//! refuses commits until it is reopened.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use super::record::WalRecord;
use super::segment::{FIRST_SPARE, HEADER_LEN, frame};
use super::state::{Durability, NORMAL_SYNC_INTERVAL, Shared, Wal};
use crate::error::{Error, Result, failpoint, injected};

/// Marks the group's sync finished when dropped, whether the leader
/// returned or panicked, and wakes the waiters.
struct Leading<'a>(&'a Shared);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.0.group.lock().syncing = false;
        self.0.group_cv.notify_all();
    }
}

impl Shared {
    /// Returns once the log is durable up to `offset`: at once if a sync
    /// covered it, after the running sync if that covers it, else after a
    /// sync this caller runs for everything written by then.
    pub(super) fn sync_to(&self, offset: u64) -> Result<()> {
        let mut group = self.group.lock();
        loop {
            // Durable first: a record a sync covered stays committed even if
            // a later write poisoned the log meanwhile.
            if group.synced >= offset {
                return Ok(());
            }
            self.check()?;
            if !group.syncing {
                break;
            }
            self.group_cv.wait(&mut group);
        }
        group.syncing = true;
        drop(group);
        // Whatever happens below (a panic too), the next caller may lead.
        let _leading = Leading(self);
        let target = self.flush_pending()?;
        let mut group = self.group.lock();
        group.synced = group.synced.max(target);
        Ok(())
    }

    /// Writes and syncs the active segment's pending records (or only
    /// syncs, if none are pending); returns the log offset now durable.
    /// Everything logged before is in those records, written already, or
    /// in a segment sealed (and synced) before.
    fn flush_pending(&self) -> Result<u64> {
        let flush;
        let (seg, buf, at, target) = {
            let mut active = self.active.lock();
            flush = self.flush.lock();
            // Checked under `flush`, which every failed write held while it
            // poisoned the log: bytes a failed write lost may lie before
            // these, so nothing from here on can count as durable.
            self.check()?;
            let buf = std::mem::take(&mut active.pending);
            let at = active.len - buf.len() as u64;
            (Arc::clone(&active.seg), buf, at, self.written.load(Ordering::Acquire))
        };
        let synced = if failpoint("wal::sync") {
            Err(injected("wal::sync"))
        } else if buf.is_empty() {
            seg.sync()
        } else {
            seg.write_and_sync(&buf, at)
        };
        // Never retried: the kernel may have dropped the dirty pages.
        let result = synced.map(|()| target).map_err(|e| self.poison("writing and syncing the log", &e));
        drop(flush);
        result
    }

    /// Syncs everything written so far.
    pub(super) fn sync(&self) -> Result<()> {
        self.sync_to(self.written.load(Ordering::Acquire))
    }
}

/// Starts [`Durability::Normal`]'s syncer: a sync every
/// [`NORMAL_SYNC_INTERVAL`] until the log closes.
pub(super) fn start_syncer(shared: &Arc<Shared>) -> Result<JoinHandle<()>> {
    let shared = Arc::clone(shared);
    std::thread::Builder::new()
        .name("omen-wal-sync".into())
        .spawn(move || {
            let mut stop = shared.stop.lock();
            while !*stop {
                shared.stop_cv.wait_for(&mut stop, NORMAL_SYNC_INTERVAL);
                parking_lot::MutexGuard::unlocked(&mut stop, || {
                    // A failure poisons the log; commits then report it.
                    let _ = shared.sync();
                });
            }
        })
        .map_err(Error::Io)
}

impl Wal {
    /// Appends one record and makes it as durable as the mode promises.
    pub(crate) fn append(&self, record: &WalRecord) -> Result<()> {
        match self.write(record)? {
            Some(end) => self.sync_to(end),
            None => Ok(()),
        }
    }

    /// Writes one record without waiting for it to be durable. Under
    /// [`Durability::Full`] returns the offset to pass to [`Self::sync_to`]
    /// before the commit may count as done.
    pub(crate) fn write(&self, record: &WalRecord) -> Result<Option<u64>> {
        self.shared.check()?;
        if failpoint("wal::write") {
            return Err(self.shared.poison("write", &injected("wal::write")));
        }
        let buf = frame(&record.encode())?;
        let n = buf.len() as u64;
        let mut active = self.shared.active.lock();
        // Full, or made empty while a zero-filled spare now waits.
        let roll = active.len + n > active.capacity || (!active.preallocated && active.spare_asked && self.shared.spare_ready());
        if active.len > HEADER_LEN && roll && self.shared.roll(&mut active).is_err() {
            // Unless the roll poisoned the log, the record goes on in the
            // full segment, and the next write tries the roll again.
            self.shared.check()?;
        }
        if self.durability == Durability::Full {
            active.pending.extend_from_slice(&buf);
        } else {
            let at = active.len;
            active.seg.write_at(&buf, at).map_err(|e| self.shared.poison("write", &e))?;
        }
        active.len += n;
        active.max_ts = active.max_ts.max(record.ts());
        // A spare for the next roll: once the segment is half full; at once
        // for a segment made empty (a new log's first one), then small and
        // doubling, so the log soon appends only into zero-filled room
        // without a new store writing a whole segment of zeros up front.
        let segment_bytes = self.shared.segment_bytes;
        let early = !active.preallocated && segment_bytes >= 2 * FIRST_SPARE;
        if !active.spare_asked && (active.len > active.capacity / 2 || early) {
            active.spare_asked = true;
            self.shared.prepare_spare(self.shared.next_spare.load(Ordering::Relaxed));
        }
        let end = self.shared.written.fetch_add(n, Ordering::AcqRel) + n;
        Ok((self.durability == Durability::Full).then_some(end))
    }

    /// Waits until the log is durable up to `offset` (see [`super::group`]).
    pub(crate) fn sync_to(&self, offset: u64) -> Result<()> {
        self.shared.sync_to(offset)
    }

    /// Stops the background syncer and syncs what is left (in every mode: a
    /// clean close loses nothing).
    pub(crate) fn close(&self) -> Result<()> {
        *self.shared.stop.lock() = true;
        self.shared.stop_cv.notify_all();
        if let Some(h) = self.flusher.lock().take() {
            let _ = h.join();
        }
        let maker = self.shared.spare.lock().maker.take();
        if let Some(h) = maker {
            let _ = h.join();
        }
        self.shared.sync()
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::testing::{backends, commit, open};

    /// A commit whose record a sync covered is durable, whatever fails
    /// after; a record no sync covered is refused once the log is poisoned.
    #[test]
    fn a_synced_record_stays_committed_after_a_later_failure() {
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            let (wal, _) = open(&io, dir.path(), Durability::Full).unwrap();
            let first = wal.write(&commit(1)).unwrap().unwrap();
            let second = wal.write(&commit(2)).unwrap().unwrap();
            wal.sync_to(first).unwrap();
            // Another committer's write fails after the sync covered both.
            let _ = wal.shared.poison("write", &std::io::Error::other("injected"));
            assert!(wal.sync_to(first).is_ok());
            assert!(wal.sync_to(second).is_ok());
            let third = second + 1;
            assert!(matches!(wal.sync_to(third), Err(Error::WalFailed(_))));
            assert!(matches!(wal.write(&commit(3)), Err(Error::WalFailed(_))));
        }
    }
}
