//! A segment: immutable Arrow columns plus per-row keys and MVCC timestamps.
//!
//! `begin` is fixed when the row is appended; `end` starts [`OPEN`] and is set
//! once, atomically, when a later commit supersedes or deletes the row.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{ArrayRef, BinaryArray, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;

use crate::error::Result;

/// End timestamp of a row no commit has superseded.
pub const OPEN: u64 = u64::MAX;

#[derive(Debug)]
pub(crate) struct Segment {
    /// The table's columns.
    pub(crate) rows: RecordBatch,
    /// The encoded primary key of each row.
    pub(crate) keys: BinaryArray,
    pub(crate) begin: Vec<u64>,
    pub(crate) end: Box<[AtomicU64]>,
}

impl Segment {
    pub(crate) fn len(&self) -> usize {
        self.rows.num_rows()
    }

    pub(crate) fn end_row(&self, row: usize, ts: u64) {
        self.end[row].store(ts, Ordering::Release);
    }

    /// The rows visible at `ts` whose keys are not in `exclude`, projected,
    /// with the key column last if `with_keys`. `None` if no row qualifies.
    pub(crate) fn scan(&self, ts: u64, projection: &[usize], exclude: &HashSet<Vec<u8>>, with_keys: bool) -> Result<Option<RecordBatch>> {
        let visible: BooleanArray = (0..self.len())
            .map(|i| {
                let live = self.begin[i] <= ts && ts < self.end[i].load(Ordering::Acquire);
                Some(live && (exclude.is_empty() || !exclude.contains(self.keys.value(i))))
            })
            .collect();
        let count = visible.true_count();
        if count == 0 {
            return Ok(None);
        }
        let mut batch = self.rows.project(projection)?;
        if with_keys {
            let keys: ArrayRef = std::sync::Arc::new(self.keys.clone());
            batch = crate::with_key_column(&batch, keys)?;
        }
        if count == self.len() {
            return Ok(Some(batch));
        }
        Ok(Some(filter_record_batch(&batch, &visible)?))
    }
}

#[cfg(test)]
impl Segment {
    pub(crate) fn end_of(&self, row: usize) -> u64 {
        self.end[row].load(Ordering::Acquire)
    }

    pub(crate) fn key_len(&self) -> usize {
        arrow::array::Array::len(&self.keys)
    }
}
