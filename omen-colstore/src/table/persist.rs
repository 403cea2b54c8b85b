//! A table's files: loading its segments from them, writing what changed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arrow::array::AsArray;
use arrow::datatypes::SchemaRef;

use super::{ColumnTable, SEGMENT_ROWS, State};
use crate::error::{Error, Result};
use crate::files;
use crate::hot::HotTier;
use crate::keymap::Place;
use crate::manifest::{SegmentEntry, deletes_path, segment_path};
use crate::segment::{OPEN, Parts, Segment};

/// Segments (by id) and the files a persist wrote for them.
pub(crate) type NotedFiles = Vec<(u64, OnDisk)>;

/// A segment's files (see [`crate::files`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OnDisk {
    file: u64,
    /// 0: no delete file.
    deletes: u64,
    /// Ended rows the files hold.
    ended: usize,
}

/// What [`crate::ColumnStore::persist`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PersistStats {
    /// Parquet segment files written.
    pub segment_files: usize,
    /// Rows in them.
    pub rows_written: usize,
    /// Their bytes.
    pub bytes_written: u64,
    /// Delete files written.
    pub delete_files: usize,
}

impl ColumnTable {
    /// Loads the segments of `entries` from `dir` as of `watermark`: rows
    /// that began after it are left out and ends after it are reopened (a
    /// persist may have caught changes past its watermark; replaying from
    /// the watermark brings them back exactly).
    pub(crate) fn load(
        schema: SchemaRef,
        dir: &Path,
        entries: &[SegmentEntry],
        watermark: u64,
        tracker: &Arc<files::FileTracker>,
        hot: &Arc<HotTier>,
    ) -> Result<Self> {
        let table = Self::new(schema, hot);
        let mut guard = table.state.write();
        let state = &mut *guard;
        for e in entries {
            let path = segment_path(dir, e.file);
            let files::SegmentIndex { keys, begin, mut end, zones, column_bytes } = files::read_index(&path, &table.schema)?;
            if begin.len() as u64 != e.rows || begin.len() > SEGMENT_ROWS {
                let reason = format!("{} rows, the manifest says {}", begin.len(), e.rows);
                return Err(Error::Corruption { file: path, reason });
            }
            if e.deletes != 0 {
                for (row, ts) in files::read_deletes(&deletes_path(dir, e.deletes), end.len())? {
                    end[row as usize] = ts;
                }
            }
            let ended = end.iter().filter(|&&t| t != OPEN).count();
            let id = state.next_segment;
            state.next_segment += 1;
            let complete = begin.iter().all(|&b| b <= watermark);
            let reopened = |end: Vec<u64>| -> Box<[AtomicU64]> {
                end.into_iter().map(|t| AtomicU64::new(if t > watermark { OPEN } else { t })).collect()
            };
            let segment = match zones {
                // The usual case: the columns stay on disk until a scan reads them.
                Some(zones) if complete => {
                    let file = tracker.track(path, Arc::clone(&table.schema));
                    Segment::on_disk(hot, file, Parts { keys, begin, end: reopened(end) }, zones, column_bytes)
                }
                _ => {
                    // Read now (and a failure is the table's): nothing to track.
                    let rows = files::read_all_columns(&path, &table.schema, begin.len())?;
                    let keep = arrow::array::BooleanArray::from_iter(begin.iter().map(|&b| Some(b <= watermark)));
                    let (rows, keys, begin, end) = if complete {
                        (rows, keys, begin, end)
                    } else {
                        let rows = arrow::compute::filter_record_batch(&rows, &keep)?;
                        let keys = arrow::compute::filter(&keys, &keep)?.as_binary::<i32>().clone();
                        let pick =
                            |v: &[u64]| v.iter().zip(keep.values().iter()).filter(|(_, k)| *k).map(|(x, _)| *x).collect::<Vec<u64>>();
                        (rows, keys, pick(&begin), pick(&end))
                    };
                    if rows.num_rows() == 0 {
                        continue;
                    }
                    Segment::new(hot, rows, keys, begin, reopened(end))
                }
            };
            // A changed segment is written again at the next persist.
            if segment.len() as u64 == e.rows && segment.ended() == ended {
                state.files.insert(id, OnDisk { file: e.file, deletes: e.deletes, ended });
            }
            state.segments.insert(id, Arc::new(segment));
        }
        let State { segments, newest, .. } = state;
        for (id, s) in segments.iter() {
            for (row, e) in s.ends().iter().enumerate() {
                if *e == OPEN {
                    newest.insert(s.keys.value(row), Place::new(*id, row), segments);
                }
            }
        }
        drop(guard);
        Ok(table)
    }

    /// Writes what `persist` needs of this table to `dir`: a segment file
    /// for each segment without one, a delete file for each whose ends
    /// changed since its files were written. Returns the manifest's
    /// entries and the files to note once the manifest names them
    /// ([`ColumnTable::note_files`]).
    pub(crate) fn write_files(
        &self,
        dir: &Path,
        codec: files::Codec,
        next_file: &mut u64,
        stats: &mut PersistStats,
    ) -> Result<(Vec<SegmentEntry>, NotedFiles)> {
        let current: Vec<(u64, Arc<Segment>, Option<OnDisk>)> = {
            let state = self.state.read();
            state.segments.iter().map(|(id, s)| (*id, Arc::clone(s), state.files.get(id).copied())).collect()
        };
        let mut entries = Vec::with_capacity(current.len());
        let mut noted = Vec::new();
        for (id, segment, on_disk) in current {
            // Ends only go from open to set: the same count as the files
            // hold means nothing to write (an end still being counted
            // belongs to a commit past the watermark).
            if let Some(d) = on_disk.filter(|d| d.ended == segment.ended()) {
                entries.push(SegmentEntry { file: d.file, rows: segment.len() as u64, deletes: d.deletes });
                noted.push((id, d));
                continue;
            }
            let ends = segment.ends();
            let ended = ends.iter().filter(|&&t| t != OPEN).count();
            let disk = match on_disk {
                Some(d) if d.ended == ended => d,
                Some(d) => {
                    let file = std::mem::replace(next_file, *next_file + 1);
                    let set: Vec<(u32, u64)> = ends.iter().enumerate().filter(|(_, t)| **t != OPEN).map(|(r, t)| (r as u32, *t)).collect();
                    files::write_deletes(&deletes_path(dir, file), &set)?;
                    stats.delete_files += 1;
                    OnDisk { deletes: file, ended, ..d }
                }
                None => {
                    let file = std::mem::replace(next_file, *next_file + 1);
                    stats.bytes_written += files::write_segment(
                        &segment_path(dir, file),
                        &self.schema,
                        &segment.all_columns()?,
                        &segment.keys,
                        &segment.begins(),
                        &ends,
                        codec,
                    )?;
                    stats.segment_files += 1;
                    stats.rows_written += segment.len();
                    OnDisk { file, deletes: 0, ended }
                }
            };
            entries.push(SegmentEntry { file: disk.file, rows: segment.len() as u64, deletes: disk.deletes });
            noted.push((id, disk));
        }
        Ok((entries, noted))
    }

    /// Notes the files a stored manifest names for these segments (those
    /// still in the table; a merge may have replaced some meanwhile), in
    /// `dir`: their columns may leave memory from now on.
    pub(crate) fn note_files(&self, noted: NotedFiles, dir: &Path, tracker: &Arc<files::FileTracker>) {
        let mut state = self.state.write();
        for (id, disk) in noted {
            if let Some(segment) = state.segments.get(&id) {
                if !segment.has_file() {
                    segment.persisted(tracker.track(segment_path(dir, disk.file), Arc::clone(&self.schema)));
                }
                state.files.insert(id, disk);
            }
        }
        let State { files, segments, .. } = &mut *state;
        files.retain(|id, _| segments.contains_key(id));
    }
}
