//! Which segments the log keeps: the active one sealed for a checkpoint,
//! sealed ones removed behind it (but not behind a reader's hold), and the
//! segments a reader of the change stream or a backup takes.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::segment::{HEADER_LEN, segment_path};
use super::state::{Durability, Sealed, Wal};
use crate::error::{Error, Result};

impl Wal {
    /// Seals the active segment if it holds records, so that a checkpoint
    /// covering them can remove it; returns the newest timestamp logged so
    /// far. Every record up to it is durable when this returns.
    pub(crate) fn seal(&self) -> Result<u64> {
        self.shared.check()?;
        let mut active = self.shared.active.lock();
        if active.len > HEADER_LEN {
            self.shared.roll(&mut active)?;
        }
        Ok(active.max_ts)
    }

    /// Removes the sealed segments, oldest first, whose records are all at
    /// or before `ts` (a checkpoint holds them) and before every hold;
    /// returns the bytes freed. The caller must have made that checkpoint
    /// durable first.
    pub(crate) fn remove_through(&self, ts: u64) -> Result<u64> {
        let gone: Vec<Sealed> = {
            let mut active = self.shared.active.lock();
            let bound = active.holds.values().copied().fold(ts, u64::min);
            let n = active.sealed.iter().take_while(|s| s.max_ts <= bound).count();
            let gone: Vec<Sealed> = active.sealed.drain(..n).collect();
            if let Some(last) = gone.last() {
                active.trimmed = active.trimmed.max(last.max_ts);
            }
            gone
        };
        // Oldest first, each unlink synced before the next: unsynced
        // unlinks may persist in any order, and a crash must never leave a
        // gap between segments (open would refuse it).
        for s in &gone {
            match std::fs::remove_file(segment_path(&self.shared.dir, s.seq)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
            omen_files::sync_dir(&self.shared.dir)?;
        }
        Ok(gone.iter().map(|s| s.len).sum())
    }

    /// Every record newer than this is in the log.
    pub(crate) fn trimmed(&self) -> u64 {
        self.shared.active.lock().trimmed
    }

    /// Keeps every record newer than `after` from removal until
    /// [`Self::release`]; returns the hold's id. Fails if the log no longer
    /// holds them all.
    pub(crate) fn hold(&self, after: u64) -> Result<u64> {
        let mut active = self.shared.active.lock();
        if after < active.trimmed {
            return Err(Error::LogTrimmed { after, trimmed: active.trimmed });
        }
        let id = active.next_hold;
        active.next_hold += 1;
        active.holds.insert(id, after);
        Ok(id)
    }

    /// Moves hold `id` forward to `after` (never back).
    pub(crate) fn advance_hold(&self, id: u64, after: u64) {
        if let Some(at) = self.shared.active.lock().holds.get_mut(&id) {
            *at = (*at).max(after);
        }
    }

    /// Lets the records hold `id` kept go with the next checkpoint.
    pub(crate) fn release(&self, id: u64) {
        self.shared.active.lock().holds.remove(&id);
    }

    /// The segment files holding every record newer than `after`, oldest
    /// first, opened (so a checkpoint removing one meanwhile does not take
    /// it from the reader); the last is the active segment, which may be
    /// being written. Fails if the log no longer holds them all.
    pub(crate) fn segments_after(&self, after: u64) -> Result<Vec<(PathBuf, File)>> {
        let active = self.shared.active.lock();
        if after < active.trimmed {
            return Err(Error::LogTrimmed { after, trimmed: active.trimmed });
        }
        let seqs = active.sealed.iter().filter(|s| s.max_ts > after).map(|s| s.seq).chain([active.seq]);
        seqs.map(|seq| {
            let path = segment_path(&self.shared.dir, seq);
            let file = File::open(&path)?;
            Ok((path, file))
        })
        .collect()
    }

    /// Bytes in the log's segments, headers included.
    pub(crate) fn len(&self) -> u64 {
        self.len_after(0)
    }

    /// Bytes in the segments holding records newer than `ts` (the active
    /// one, always): what a checkpoint at `ts` has not yet taken in, though
    /// a hold may keep older ones.
    pub(crate) fn len_after(&self, ts: u64) -> u64 {
        let active = self.shared.active.lock();
        active.len + active.sealed.iter().filter(|s| s.max_ts > ts).map(|s| s.len).sum::<u64>()
    }

    /// Copies the whole records written so far into `dir` (segment files
    /// of the same names), fsynced with their directory entries, while
    /// appends go on; returns the bytes copied. The copy stops at a record
    /// boundary, so it is a prefix of the commit order. Under
    /// [`Durability::Full`] it first waits for those records to be durable:
    /// the copy then holds no commit that could still fail. Segments must
    /// not be removed meanwhile (the store holds its checkpoint lock).
    pub(crate) fn copy_to(&self, dir: &Path) -> Result<u64> {
        self.shared.check()?;
        let (segments, end) = {
            let active = self.shared.active.lock();
            let mut all = active.sealed.clone();
            all.push(Sealed { seq: active.seq, len: active.len, max_ts: active.max_ts });
            (all, self.shared.written.load(Ordering::Acquire))
        };
        if self.durability == Durability::Full {
            self.shared.sync_to(end)?;
        }
        let mut total = 0;
        for s in segments {
            let from = segment_path(&self.shared.dir, s.seq);
            let mut source = File::open(&from)?.take(s.len);
            let mut copy = OpenOptions::new().write(true).create_new(true).open(segment_path(dir, s.seq))?;
            let copied = std::io::copy(&mut source, &mut copy)?;
            if copied != s.len {
                return Err(Error::Corruption {
                    file: from,
                    offset: copied,
                    reason: format!("the segment ends before its written length {}", s.len),
                });
            }
            copy.sync_all()?;
            total += copied;
        }
        omen_files::sync_dir(dir)?;
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::wal::segment::list_segments;
    use crate::wal::state::WalOptions;
    use crate::wal::testing::{backends, commit, open, open_with};

    #[test]
    fn segments_roll_replay_in_order_and_are_removed_through_a_timestamp() {
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            let (wal, _) = open_with(&io, dir.path(), Durability::Full, 300).unwrap();
            for ts in 1..=40 {
                wal.append(&commit(ts)).unwrap();
            }
            let segments = list_segments(dir.path()).unwrap();
            assert!(segments.len() > 5, "{segments:?}");
            drop(wal);
            let (wal, recs) = open_with(&io, dir.path(), Durability::Full, 300).unwrap();
            assert_eq!(recs, (1..=40).map(commit).collect::<Vec<_>>());

            // Replay after a timestamp skips what a checkpoint holds.
            let mut after = Vec::new();
            drop(Wal::open(dir.path(), WalOptions { durability: Durability::Full, io: Arc::clone(&io), segment_bytes: 300 }, 30, |r| {
                after.push(r);
                Ok(())
            }));
            assert_eq!(after, (31..=40).map(commit).collect::<Vec<_>>());

            // Removing through 20 keeps every segment with a later record.
            wal.seal().unwrap();
            let before = wal.len();
            let freed = wal.remove_through(20).unwrap();
            assert!(freed > 0 && wal.len() == before - freed);
            drop(wal);
            let (_, recs) = open_with(&io, dir.path(), Durability::Full, 300).unwrap();
            let first = recs.first().unwrap().ts();
            assert!(first <= 21 && first > 1, "first kept record {first}");
            assert_eq!(recs.last(), Some(&commit(40)));
        }
    }
    #[test]
    fn a_copy_holds_every_segment() {
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            let copy = tempfile::tempdir().unwrap();
            let (wal, _) = open_with(&io, dir.path(), Durability::Full, 300).unwrap();
            for ts in 1..=12 {
                wal.append(&commit(ts)).unwrap();
            }
            let bytes = wal.copy_to(copy.path()).unwrap();
            assert_eq!(bytes, wal.len());
            wal.append(&commit(13)).unwrap();
            let (_, recs) = open(&io, copy.path(), Durability::Full).unwrap();
            assert_eq!(recs, (1..=12).map(commit).collect::<Vec<_>>());
        }
    }
}
