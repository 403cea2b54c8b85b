//! From each key to the place of its newest live version, so an update or
//! delete can end it: a hash table of (hash, place) that holds no copy of
//! the keys. A lookup compares the key stored in the segment at the place,
//! so the map costs 16 bytes a key (about 18 with the table's slack)
//! instead of a second copy of every key.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;
use rustc_hash::{FxBuildHasher, FxHashMap};

use crate::segment::Segment;

/// A table's segments by id.
pub(crate) type Segments = FxHashMap<u64, Arc<Segment>>;

/// Bits of a place that hold the row: segments hold at most 2^16 rows.
const ROW_BITS: u32 = 16;

/// A version's place: its segment's id and its row there, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place(u64);

impl Place {
    pub(crate) fn new(segment: u64, row: usize) -> Self {
        debug_assert!(row < 1 << ROW_BITS && segment < 1 << (64 - ROW_BITS));
        Self((segment << ROW_BITS) | row as u64)
    }

    pub(crate) fn segment(self) -> u64 {
        self.0 >> ROW_BITS
    }

    pub(crate) fn row(self) -> usize {
        (self.0 & ((1 << ROW_BITS) - 1)) as usize
    }
}

fn hash(key: &[u8]) -> u64 {
    FxBuildHasher.hash_one(key)
}

#[derive(Default)]
pub(crate) struct KeyMap {
    table: HashTable<(u64, Place)>,
}

impl KeyMap {
    /// Keys with a live newest version.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    fn holds(segments: &Segments, place: Place, key: &[u8]) -> bool {
        segments.get(&place.segment()).is_some_and(|s| s.keys.value(place.row()) == key)
    }

    /// Bytes the table allocates: 16 per slot and a control byte.
    #[cfg(feature = "bench-internals")]
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.table.capacity() * 17
    }

    /// The place of `key`'s newest live version (updates and deletes take
    /// it out with `remove` instead).
    #[cfg(any(test, feature = "bench-internals"))]
    pub(crate) fn get(&self, key: &[u8], segments: &Segments) -> Option<Place> {
        let h = hash(key);
        self.table.find(h, |&(eh, place)| eh == h && Self::holds(segments, place, key)).map(|&(_, p)| p)
    }

    /// Forgets `key` (its newest version ended); returns where it was.
    pub(crate) fn remove(&mut self, key: &[u8], segments: &Segments) -> Option<Place> {
        let h = hash(key);
        let entry = self.table.find_entry(h, |&(eh, place)| eh == h && Self::holds(segments, place, key)).ok()?;
        Some(entry.remove().0.1)
    }

    /// Makes `place` (whose segment is in `segments`) `key`'s newest version.
    pub(crate) fn insert(&mut self, key: &[u8], place: Place, segments: &Segments) {
        let h = hash(key);
        match self.table.find_entry(h, |&(eh, p)| eh == h && Self::holds(segments, p, key)) {
            Ok(mut entry) => entry.get_mut().1 = place,
            Err(absent) => {
                absent.into_table().insert_unique(h, (h, place), |&(eh, _)| eh);
            }
        }
    }

    /// Moves `key`'s entry from `from` to `to` if it is at `from` (a
    /// segment merge moved the version).
    pub(crate) fn repoint(&mut self, key: &[u8], from: Place, to: Place) {
        let h = hash(key);
        if let Some(entry) = self.table.find_mut(h, |&(eh, p)| eh == h && p == from) {
            entry.1 = to;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BinaryArray, Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::sync::atomic::AtomicU64;

    /// Segments 1 and 2, each holding keys 0..n (as bytes) at row = key.
    fn segments(n: usize) -> Segments {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let make = || {
            let rows = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int64Array::from_iter_values(0..n as i64))]).unwrap();
            let keys = BinaryArray::from_iter_values((0..n).map(|k| vec![k as u8; 1 + k % 3]));
            Arc::new(Segment::new(
                &crate::hot::HotTier::unbounded(),
                rows,
                keys,
                vec![1; n],
                (0..n).map(|_| AtomicU64::new(u64::MAX)).collect(),
            ))
        };
        [(1, make()), (2, make())].into_iter().collect()
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(usize, u64),
        Remove(usize),
        Repoint(usize, u64, u64),
    }

    proptest! {
        /// Inserts, removes and repoints agree with a HashMap of the keys.
        #[test]
        fn matches_a_hash_map(ops in proptest::collection::vec(
            prop_oneof![
                (0usize..40, 1u64..3).prop_map(|(k, s)| Op::Insert(k, s)),
                (0usize..40).prop_map(Op::Remove),
                (0usize..40, 1u64..3, 1u64..3).prop_map(|(k, a, b)| Op::Repoint(k, a, b)),
            ],
            0..200,
        )) {
            let segs = segments(40);
            let key = |k: usize| vec![k as u8; 1 + k % 3];
            let mut map = KeyMap::default();
            let mut model: HashMap<Vec<u8>, Place> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, s) => {
                        map.insert(&key(k), Place::new(s, k), &segs);
                        model.insert(key(k), Place::new(s, k));
                    }
                    Op::Remove(k) => prop_assert_eq!(map.remove(&key(k), &segs), model.remove(&key(k))),
                    Op::Repoint(k, a, b) => {
                        map.repoint(&key(k), Place::new(a, k), Place::new(b, k));
                        if let Some(p) = model.get_mut(&key(k)).filter(|p| **p == Place::new(a, k)) {
                            *p = Place::new(b, k);
                        }
                    }
                }
                prop_assert_eq!(map.len(), model.len());
            }
            for k in 0..40 {
                prop_assert_eq!(map.get(&key(k), &segs), model.get(&key(k)).copied());
            }
        }
    }

    #[test]
    fn places_pack_segment_and_row() {
        let p = Place::new(123_456_789, 65_535);
        assert_eq!((p.segment(), p.row()), (123_456_789, 65_535));
    }
}
