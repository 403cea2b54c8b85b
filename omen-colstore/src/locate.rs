//! Two ways to find the row holding a key, side by side for
//! `benches/colstore.rs`: the table's hash key map (`KeyMap`: what
//! updates and deletes use), and a learned index per key-sorted segment
//! (omen-learned's PGM over the segment's keys, the segment picked by its
//! first keys), which the column-store issue proposed for segments that
//! compaction sorted. Not part of the API: built with the
//! `bench-internals` feature only.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arrow::array::{Array, BinaryArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use omen_learned::{Key, PgmIndex};

use crate::keymap::{KeyMap, Place, Segments};
use crate::segment::{OPEN, Segment};
use crate::table::SEGMENT_ROWS;

/// Sorted keys in segments of [`SEGMENT_ROWS`], with both locators.
pub struct Locators {
    segments: Segments,
    map: KeyMap,
    /// Each segment's first key, id and index, in key order.
    learned: Vec<(Vec<u8>, u64, PgmIndex)>,
}

impl Locators {
    /// `keys` must be sorted and distinct.
    pub fn new(keys: &[Vec<u8>]) -> crate::Result<Self> {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let (mut segments, mut map, mut learned) = (Segments::default(), KeyMap::default(), Vec::new());
        for (id, chunk) in keys.chunks(SEGMENT_ROWS).enumerate() {
            let id = id as u64;
            let n = chunk.len();
            let rows = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int64Array::from_iter_values(0..n as i64))])?;
            let keys = BinaryArray::from_iter_values(chunk);
            let end = (0..n).map(|_| AtomicU64::new(OPEN)).collect();
            segments.insert(id, Arc::new(Segment::new(&crate::hot::HotTier::unbounded(), rows, keys, vec![1; n], end)));
            let prefixes: Vec<u64> = chunk.iter().map(|k| k.prefix()).collect();
            let index = PgmIndex::build(&prefixes).map_err(|e| crate::Error::Schema(e.to_string()))?;
            learned.push((chunk[0].clone(), id, index));
        }
        for (id, s) in &segments {
            for row in 0..s.len() {
                map.insert(s.keys.value(row), Place::new(*id, row), &segments);
            }
        }
        Ok(Self { segments, map, learned })
    }

    /// The (segment, row) of `key` through the hash key map.
    pub fn hashed(&self, key: &[u8]) -> Option<(u64, usize)> {
        self.map.get(key, &self.segments).map(|p| (p.segment(), p.row()))
    }

    /// The (segment, row) of `key` through the segments' learned indexes.
    pub fn learned(&self, key: &[u8]) -> Option<(u64, usize)> {
        let at = self.learned.partition_point(|(first, _, _)| first.as_slice() <= key).checked_sub(1)?;
        let (_, id, index) = &self.learned[at];
        let keys = &self.segments.get(id)?.keys;
        let row = index.lower_bound_by(key.prefix(), |i| keys.value(i) < key);
        (row < keys.len() && keys.value(row) == key).then_some((*id, row))
    }

    /// Bytes the hash key map allocates.
    pub fn hashed_bytes(&self) -> usize {
        self.map.allocated_bytes()
    }

    /// Bytes the learned indexes and the segments' first keys take.
    pub fn learned_bytes(&self) -> usize {
        self.learned.iter().map(|(first, _, index)| first.len() + 24 + index.size_bytes()).sum()
    }
}
