//! The static PGM-style index.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::plr::segment_points;
use crate::segment::Segment;

/// Default maximum prediction error, in positions.
pub const DEFAULT_EPSILON: usize = 64;
/// Levels stop recursing once the top has at most this many segments.
const ROOT_MAX: usize = 4;

/// Where a key is predicted to be: `pos`, and the window `lo..hi` that holds
/// its lower bound when the key is in the indexed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApproxPos {
    /// Predicted position.
    pub pos: usize,
    /// Start of the window (inclusive).
    pub lo: usize,
    /// End of the window (exclusive).
    pub hi: usize,
}

/// A learned index over a sorted slice of `u64` keys that the caller keeps:
/// a piecewise-linear model of key -> position with error at most epsilon,
/// and recursive levels of the same over the segments' first keys.
///
/// Duplicates are allowed; lookups have lower-bound semantics.
#[derive(Debug, Clone)]
pub struct PgmIndex {
    epsilon: usize,
    len: usize,
    /// `levels[0]` models the keys; each next level models the first keys
    /// of the one below; the last is the root.
    levels: Vec<Vec<Segment>>,
}

impl PgmIndex {
    /// Builds an index over `keys` (sorted ascending) with [`DEFAULT_EPSILON`].
    pub fn build(keys: &[u64]) -> Result<Self> {
        Self::with_epsilon(keys, DEFAULT_EPSILON)
    }

    /// Builds an index with maximum error `epsilon`, then verifies that every
    /// distinct key's first position lies in its predicted window.
    pub fn with_epsilon(keys: &[u64], epsilon: usize) -> Result<Self> {
        if epsilon == 0 {
            return Err(Error::InvalidEpsilon);
        }
        if let Some(i) = keys.windows(2).position(|w| w[1] < w[0]) {
            return Err(Error::NotSorted { position: i + 1 });
        }
        let build = |points: &mut dyn Iterator<Item = (u64, usize)>| segment_points(points, epsilon).into_iter().map(Segment::from).collect();
        let mut levels: Vec<Vec<Segment>> = vec![build(&mut first_positions(keys))];
        while let Some(top) = levels.last().filter(|l| l.len() > ROOT_MAX) {
            let next = build(&mut top.iter().enumerate().map(|(i, s)| (s.first_key, i)));
            levels.push(next);
        }
        let index = Self { epsilon, len: keys.len(), levels };
        index.verify(keys)?;
        Ok(index)
    }

    /// Checks every distinct key against its window: O(n).
    fn verify(&self, keys: &[u64]) -> Result<()> {
        for (key, position) in first_positions(keys) {
            let ApproxPos { lo, hi, .. } = self.search(key);
            if !(lo..hi).contains(&position) {
                return Err(Error::Verification { key, position, lo, hi });
            }
        }
        Ok(())
    }

    /// Number of keys indexed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no keys are indexed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The index's own size in bytes (the keys are the caller's).
    pub fn size_bytes(&self) -> usize {
        self.levels.iter().map(|l| l.len() * std::mem::size_of::<Segment>()).sum()
    }

    /// Number of leaf segments.
    pub fn segments(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    /// The predicted window for `key`.
    pub fn search(&self, key: u64) -> ApproxPos {
        if self.len == 0 {
            return ApproxPos { pos: 0, lo: 0, hi: 0 };
        }
        let root = &self.levels[self.levels.len() - 1];
        let mut idx = root.iter().rposition(|s| s.first_key <= key).unwrap_or(0);
        for level in (0..self.levels.len() - 1).rev() {
            let segs = &self.levels[level];
            let (lo, hi) = self.window(self.levels[level + 1][idx].predict(key), segs.len());
            // Count the segments starting at or before the key: the window
            // holds the answer by the error bound; the edges repair the rest.
            let mut i = lo + segs[lo..hi].partition_point(|s| s.first_key <= key);
            if i == lo {
                while i > 0 && segs[i - 1].first_key > key {
                    i -= 1;
                }
            }
            if i == hi {
                while i < segs.len() && segs[i].first_key <= key {
                    i += 1;
                }
            }
            idx = i.saturating_sub(1);
        }
        let pos = self.levels[0][idx].predict(key).min(self.len);
        let (lo, hi) = self.window(pos, self.len);
        ApproxPos { pos, lo, hi }
    }

    fn window(&self, pos: usize, len: usize) -> (usize, usize) {
        let lo = pos.saturating_sub(self.epsilon + 1).min(len);
        let hi = pos.saturating_add(self.epsilon + 2).min(len);
        (lo, hi)
    }

    /// The first position whose key is `>= key` in `keys`, the slice the
    /// index was built over. Exact: if the answer lies outside the window
    /// (many duplicates before it), the search gallops past the edge.
    pub fn lower_bound(&self, keys: &[u64], key: u64) -> usize {
        self.bound(keys, key, |k| k < key)
    }

    /// The first position whose key is `> key`.
    pub fn upper_bound(&self, keys: &[u64], key: u64) -> usize {
        self.bound(keys, key, |k| k <= key)
    }

    /// Whether `key` is in `keys`.
    pub fn contains(&self, keys: &[u64], key: u64) -> bool {
        keys.get(self.lower_bound(keys, key)) == Some(&key)
    }

    /// Positions of the keys in `keys_in` (start inclusive, end exclusive).
    pub fn range(&self, keys: &[u64], keys_in: Range<u64>) -> Range<usize> {
        let start = self.lower_bound(keys, keys_in.start);
        start..self.lower_bound(keys, keys_in.end).max(start)
    }

    /// The first position where `before` turns false: a binary search of
    /// the model's window for `key`, widened by galloping when the answer
    /// lies past an edge, so the result is exact for any sorted slice.
    fn bound(&self, keys: &[u64], key: u64, before: impl Fn(u64) -> bool) -> usize {
        debug_assert_eq!(keys.len(), self.len, "lookups use the slice the index was built over");
        let ApproxPos { lo, hi, .. } = self.search(key);
        let (mut lo, mut hi) = (lo.min(keys.len()), hi.min(keys.len()));
        let mut step = 1;
        while lo > 0 && !before(keys[lo - 1]) {
            hi = lo;
            lo = lo.saturating_sub(step);
            step *= 2;
        }
        step = 1;
        while hi < keys.len() && before(keys[hi]) {
            lo = hi + 1;
            hi = hi.saturating_add(step).min(keys.len());
            step *= 2;
        }
        lo + keys[lo..hi.max(lo)].partition_point(|&k| before(k))
    }
}

/// Each distinct key with the position of its first occurrence.
fn first_positions(keys: &[u64]) -> impl Iterator<Item = (u64, usize)> + '_ {
    keys.iter().enumerate().filter(|&(i, k)| i == 0 || keys[i - 1] != *k).map(|(i, &k)| (k, i))
}
