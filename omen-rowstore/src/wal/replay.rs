//! Reading the log back: on open, every record after the checkpoint,
//! applied in order, and the segments' state rebuilt; for the change
//! stream, the records after a timestamp ([`read_records`]).
//!
//! Replay reads records in order and stops at the first one in the newest
//! segment that is short or fails its checksum: an append is not atomic, so
//! a crash can leave a torn tail. The segment is truncated there (and
//! synced) before new appends, so a torn record can never be followed by
//! good ones. A sealed segment was synced whole, so damage there, or a
//! missing segment, is [`Error::Corruption`] naming the file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use omen_files::codec::Reader;
use parking_lot::{Condvar, Mutex};

use super::group::start_syncer;
use super::record::WalRecord;
use super::segment::{FIRST_SPARE, HEADER_LEN, MAGIC, SPARE, SPARE_TEMP, VERSION, header, list_segments, next_record, segment_path};
use super::state::{Active, Durability, Group, Sealed, Shared, Spare, Wal, WalOptions};
use crate::error::{Error, Result};

/// What one segment's replay found.
struct Replayed {
    len: u64,
    /// The first record's timestamp (0 if none).
    min_ts: u64,
    max_ts: u64,
    /// Whether the segment ended in a torn or short record (cut off).
    torn: bool,
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`, passing `apply` every
    /// whole record newer than `after`, in log order; an error from `apply`
    /// is [`Error::Corruption`] at that record. A torn tail of the
    /// newest segment is cut off; damage anywhere else is
    /// [`Error::Corruption`] naming the segment, since a sealed segment was
    /// synced whole.
    pub(crate) fn open(
        dir: &Path,
        options: WalOptions,
        after: u64,
        mut apply: impl FnMut(WalRecord) -> std::result::Result<(), String>,
    ) -> Result<Self> {
        let mut seqs = list_segments(dir)?;
        if seqs.is_empty() {
            seqs.push(1);
        }
        if let Some(w) = seqs.windows(2).find(|w| w[1] != w[0] + 1) {
            let missing = segment_path(dir, w[0] + 1);
            return Err(Error::Corruption { file: missing, offset: 0, reason: "log segment missing".into() });
        }
        let mut sealed = Vec::new();
        let mut last_ts = 0;
        let mut first_ts = None;
        let last = seqs.len() - 1;
        let mut active = None;
        for (i, &seq) in seqs.iter().enumerate() {
            let path = segment_path(dir, seq);
            let newest = i == last;
            let mut file = OpenOptions::new().read(true).write(true).create(newest).truncate(false).open(&path)?;
            let got = replay_segment(dir, &path, &mut file, newest, &mut last_ts, after, &mut apply)?;
            if got.min_ts > 0 {
                first_ts.get_or_insert(got.min_ts);
            }
            if got.torn && !newest {
                return Err(Error::Corruption {
                    file: path,
                    offset: got.len,
                    reason: "sealed log segment ends in a damaged record".into(),
                });
            }
            if newest {
                // Zero-filled room past the records: a spare taken earlier.
                let size = file.metadata()?.len();
                let preallocated = size > got.len;
                let seg = options.io.segment(file, got.len)?;
                active = Some(Active {
                    seg,
                    seq,
                    len: got.len,
                    pending: Vec::new(),
                    spare_asked: false,
                    capacity: if preallocated {
                        size.min(options.segment_bytes.max(HEADER_LEN + 1))
                    } else {
                        options.segment_bytes.max(HEADER_LEN + 1)
                    },
                    preallocated,
                    max_ts: got.max_ts.max(last_ts),
                    sealed: Vec::new(),
                    trimmed: 0,
                    holds: std::collections::BTreeMap::new(),
                    next_hold: 1,
                });
            } else {
                sealed.push(Sealed { seq, len: got.len, max_ts: got.max_ts });
            }
        }
        let mut active = active.expect("at least one segment");
        active.sealed = sealed;
        // The log holds every record from the first one it still has; with
        // none, every commit is in the checkpoint (`after`).
        active.trimmed = first_ts.map_or(after, |ts| ts - 1);

        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            io: Arc::clone(&options.io),
            segment_bytes: options.segment_bytes.max(HEADER_LEN + 1),
            active: Mutex::new(active),
            flush: Mutex::new(()),
            written: AtomicU64::new(0),
            group: Mutex::new(Group::default()),
            group_cv: Condvar::new(),
            poisoned: Mutex::new(None),
            stop: Mutex::new(false),
            stop_cv: Condvar::new(),
            spare: Mutex::new(Spare::default()),
            next_spare: AtomicU64::new(FIRST_SPARE.min(options.segment_bytes.max(HEADER_LEN + 1))),
        });
        // A spare a crash left may be partial: the next one is made anew.
        for name in [SPARE, SPARE_TEMP] {
            match std::fs::remove_file(dir.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }

        let durability = options.durability;
        let flusher = (durability == Durability::Normal).then(|| start_syncer(&shared)).transpose()?;
        Ok(Self { durability, shared, flusher: Mutex::new(flusher) })
    }
}

/// Reads one segment, applying its records newer than `after`. The newest
/// segment's torn tail (or short header: a crash while creating it) is cut
/// off and synced, so a torn record is never followed by good ones.
fn replay_segment(
    dir: &Path,
    path: &Path,
    file: &mut File,
    newest: bool,
    last_ts: &mut u64,
    after: u64,
    apply: &mut impl FnMut(WalRecord) -> std::result::Result<(), String>,
) -> Result<Replayed> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let corrupt = |offset: u64, reason: &str| Error::Corruption { file: path.to_path_buf(), offset, reason: reason.into() };
    let header = header();
    // A crash while creating a segment can leave its header short, or (the
    // size persisted, not the data; or a spare renamed in before its header
    // was written) zeros, maybe with part of the header.
    let zeros = bytes.iter().skip(header.len()).all(|&b| b == 0)
        && bytes.iter().zip(&header).all(|(&b, &h)| b == 0 || b == h)
        && !bytes.starts_with(&header);
    if bytes.len() < header.len() || (newest && zeros) {
        if !(zeros || header.starts_with(&bytes)) {
            return Err(corrupt(0, "not an OmenDB write-ahead log (bad magic)"));
        }
        if !newest {
            return Err(corrupt(0, "sealed log segment without a whole header"));
        }
        // Nothing was ever logged here.
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(&header)?;
        file.sync_all()?;
        omen_files::sync_dir(dir)?;
        return Ok(Replayed { len: HEADER_LEN, min_ts: 0, max_ts: 0, torn: false });
    }
    if &bytes[..8] != MAGIC {
        return Err(corrupt(0, "not an OmenDB write-ahead log (bad magic)"));
    }
    let version = Reader::new(&bytes[8..]).u32().map_err(|e| corrupt(8, &e.to_string()))?;
    if version != VERSION {
        return Err(corrupt(8, &format!("unsupported WAL version {version}")));
    }
    let mut pos = header.len();
    let (mut min_ts, mut max_ts) = (0, 0);
    while let Some((payload, next)) = next_record(&bytes, pos) {
        let rec = WalRecord::decode(payload).map_err(|e| corrupt(pos as u64, &e.to_string()))?;
        let ts = rec.ts();
        if ts <= *last_ts {
            return Err(corrupt(pos as u64, &format!("timestamp {ts} after {last_ts}")));
        }
        *last_ts = ts;
        max_ts = ts;
        if min_ts == 0 {
            min_ts = ts;
        }
        if ts > after {
            apply(rec).map_err(|reason| corrupt(pos as u64, &reason))?;
        }
        pos = next;
    }
    // Zeros after the last record are a segment's preallocated room.
    let torn = !bytes[pos..].iter().all(|&b| b == 0);
    if torn && newest {
        file.set_len(pos as u64)?;
        file.sync_all()?;
    }
    Ok(Replayed { len: pos as u64, min_ts, max_ts, torn })
}

/// Calls `f` with each record of `segments` (from [`Wal::segments_after`])
/// newer than `after` and at most `upto`, in log order, until it returns
/// false. Every record up to `upto` must have been written (the store's
/// clock): the active segment's unwritten tail is where reading stops;
/// damage before it is [`Error::Corruption`] naming the segment.
pub(crate) fn read_records(
    segments: Vec<(PathBuf, File)>,
    after: u64,
    upto: u64,
    mut f: impl FnMut(WalRecord) -> Result<bool>,
) -> Result<()> {
    let last = segments.len().saturating_sub(1);
    for (i, (path, mut file)) in segments.into_iter().enumerate() {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let corrupt = |offset: usize, reason: String| Error::Corruption { file: path.clone(), offset: offset as u64, reason };
        // Segments get their header before they are listed (a roll writes
        // it under the log's lock).
        if !bytes.starts_with(&header()) {
            return Err(corrupt(0, "not an OmenDB write-ahead log of this version (bad header)".into()));
        }
        let mut pos = HEADER_LEN as usize;
        while let Some((payload, next)) = next_record(&bytes, pos) {
            let rec = WalRecord::decode(payload).map_err(|e| corrupt(pos, e.to_string()))?;
            let ts = rec.ts();
            if ts > upto {
                return Ok(());
            }
            if ts > after && !f(rec)? {
                return Ok(());
            }
            pos = next;
        }
        // A sealed segment was synced whole: anything but its zero-filled
        // room after the last record is damage.
        if i < last && !bytes[pos..].iter().all(|&b| b == 0) {
            return Err(corrupt(pos, "sealed log segment ends in a damaged record".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::testing::{backends, commit, open, open_with};

    #[test]
    fn replay_returns_appended_records() {
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            for mode in [Durability::Full, Durability::Normal, Durability::Off] {
                for seq in list_segments(dir.path()).unwrap() {
                    std::fs::remove_file(segment_path(dir.path(), seq)).unwrap();
                }
                let (wal, recs) = open(&io, dir.path(), mode).unwrap();
                assert!(recs.is_empty());
                wal.append(&commit(1)).unwrap();
                wal.append(&commit(2)).unwrap();
                wal.close().unwrap();
                drop(wal);
                let (_, recs) = open(&io, dir.path(), mode).unwrap();
                assert_eq!(recs, vec![commit(1), commit(2)]);
            }
        }
    }
    #[test]
    fn torn_tail_is_cut_at_every_offset() {
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            let (wal, _) = open(&io, dir.path(), Durability::Off).unwrap();
            wal.append(&commit(1)).unwrap();
            let first_end = wal.len();
            wal.append(&commit(2)).unwrap();
            drop(wal);
            let full = std::fs::read(segment_path(dir.path(), 1)).unwrap();
            for cut in HEADER_LEN as usize..full.len() {
                std::fs::write(segment_path(dir.path(), 1), &full[..cut]).unwrap();
                let (wal, recs) = open(&io, dir.path(), Durability::Off).unwrap();
                let expect = if cut as u64 >= first_end { 1 } else { 0 };
                assert_eq!(recs.len(), expect, "cut at {cut}");
                // New appends follow the last whole record.
                wal.append(&commit(3)).unwrap();
                drop(wal);
                let (_, recs) = open(&io, dir.path(), Durability::Off).unwrap();
                assert_eq!(recs.len(), expect + 1, "cut at {cut}");
                assert_eq!(recs.last(), Some(&commit(3)));
            }
        }
    }

    #[test]
    fn flipped_byte_ends_replay_there() {
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            let (wal, _) = open(&io, dir.path(), Durability::Off).unwrap();
            wal.append(&commit(1)).unwrap();
            wal.append(&commit(2)).unwrap();
            drop(wal);
            let mut bytes = std::fs::read(segment_path(dir.path(), 1)).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0x40;
            std::fs::write(segment_path(dir.path(), 1), &bytes).unwrap();
            let (_, recs) = open(&io, dir.path(), Durability::Off).unwrap();
            assert_eq!(recs, vec![commit(1)]);
        }
    }

    #[test]
    fn bad_magic_is_corruption() {
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(segment_path(dir.path(), 1), b"this is not a log file at all").unwrap();
            assert!(matches!(open(&io, dir.path(), Durability::Off), Err(Error::Corruption { .. })));
        }
    }
    #[test]
    fn damage_in_a_sealed_segment_or_a_missing_one_is_corruption() {
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            let (wal, _) = open_with(&io, dir.path(), Durability::Off, 300).unwrap();
            for ts in 1..=20 {
                wal.append(&commit(ts)).unwrap();
            }
            drop(wal);
            let segments = list_segments(dir.path()).unwrap();
            let second = segment_path(dir.path(), segments[1]);
            let mut bytes = std::fs::read(&second).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            std::fs::write(&second, &bytes).unwrap();
            match open(&io, dir.path(), Durability::Off) {
                Err(Error::Corruption { file, .. }) => assert_eq!(file, second),
                other => panic!("{:?}", other.map(|(_, r)| r)),
            }
            std::fs::remove_file(&second).unwrap();
            assert!(matches!(open(&io, dir.path(), Durability::Off), Err(Error::Corruption { file, .. }) if file == second));
        }
    }

    #[test]
    fn a_log_from_before_segments_is_read_and_continued() {
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            let (wal, _) = open(&io, dir.path(), Durability::Full).unwrap();
            wal.append(&commit(1)).unwrap();
            drop(wal);
            std::fs::rename(segment_path(dir.path(), 1), dir.path().join("wal.log")).unwrap();
            let (wal, recs) = open_with(&io, dir.path(), Durability::Full, 200).unwrap();
            assert_eq!(recs, vec![commit(1)]);
            for ts in 2..=6 {
                wal.append(&commit(ts)).unwrap();
            }
            drop(wal);
            assert!(list_segments(dir.path()).unwrap().starts_with(&[0, 1]));
            let (_, recs) = open(&io, dir.path(), Durability::Full).unwrap();
            assert_eq!(recs, (1..=6).map(commit).collect::<Vec<_>>());
        }
    }
    /// A crash can persist a file's new size without its data: zeros
    /// after the last record (read as room, kept), or a new segment of
    /// zeros or a short header (rewritten as empty).
    #[test]
    fn zeros_at_the_end_are_a_torn_tail() {
        for io in backends() {
            let dir = tempfile::tempdir().unwrap();
            let (wal, _) = open_with(&io, dir.path(), Durability::Full, 300).unwrap();
            for ts in 1..=8 {
                wal.append(&commit(ts)).unwrap();
            }
            drop(wal);
            let newest = *list_segments(dir.path()).unwrap().last().unwrap();
            let path = segment_path(dir.path(), newest);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.extend_from_slice(&[0; 100]);
            std::fs::write(&path, &bytes).unwrap();
            let (wal, recs) = open_with(&io, dir.path(), Durability::Full, 300).unwrap();
            assert_eq!(recs.len(), 8);
            wal.append(&commit(9)).unwrap();
            drop(wal);
            // A next segment created but never written: zeros, or a short header.
            let mut last = 9;
            for junk in [vec![0u8; 64], b"OMENW".to_vec()] {
                let next = segment_path(dir.path(), list_segments(dir.path()).unwrap().last().unwrap() + 1);
                std::fs::write(&next, &junk).unwrap();
                let (wal, recs) = open_with(&io, dir.path(), Durability::Full, 300).unwrap();
                assert_eq!(recs.last(), Some(&commit(last)));
                last += 1;
                wal.append(&commit(last)).unwrap();
                drop(wal);
                let (_, again) = open_with(&io, dir.path(), Durability::Full, 300).unwrap();
                assert_eq!(again.last(), Some(&commit(last)), "the repaired segment takes appends");
            }
        }
    }
}
