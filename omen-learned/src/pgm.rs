//! The static PGM-style index.

use std::borrow::Borrow;
use std::ops::Range;

use crate::error::{Error, Result};
use crate::key::Key;
use crate::lastmile::{self, LastMile};
use crate::plr::segment_points;
use crate::segment::Segment;

/// Default maximum prediction error, in positions: the fastest in the
/// sweep at 50M keys (crate README), at 0.3% of the keys' size.
pub const DEFAULT_EPSILON: usize = 16;
/// Default maximum error of the internal levels (segments over segments):
/// small, so routing touches a cache line or two per level.
pub const DEFAULT_EPSILON_RECURSIVE: usize = 4;
/// Levels stop recursing once the top has at most this many segments (two
/// cache lines of 24-byte segments).
pub(crate) const ROOT_MAX: usize = 4;

/// Where a key is predicted to be: `pos`, and the window `lo..hi` that
/// holds the first position of its prefix when the prefix is indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApproxPos {
    /// Predicted position.
    pub pos: usize,
    /// Start of the window (inclusive).
    pub lo: usize,
    /// End of the window (exclusive).
    pub hi: usize,
}

/// Options for building a [`PgmIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgmBuilder {
    epsilon: usize,
    epsilon_recursive: usize,
    last_mile: LastMile,
}

impl Default for PgmBuilder {
    fn default() -> Self {
        Self { epsilon: DEFAULT_EPSILON, epsilon_recursive: DEFAULT_EPSILON_RECURSIVE, last_mile: LastMile::default() }
    }
}

impl PgmBuilder {
    /// Maximum prediction error in positions; default [`DEFAULT_EPSILON`].
    /// Smaller: more segments, shorter last mile.
    pub fn epsilon(mut self, epsilon: usize) -> Self {
        self.epsilon = epsilon;
        self
    }

    /// Maximum error of the internal levels; default
    /// [`DEFAULT_EPSILON_RECURSIVE`].
    pub fn epsilon_recursive(mut self, epsilon: usize) -> Self {
        self.epsilon_recursive = epsilon;
        self
    }

    /// How lookups search the window; default [`LastMile::Linear`].
    pub fn last_mile(mut self, last_mile: LastMile) -> Self {
        self.last_mile = last_mile;
        self
    }

    /// Builds over `keys`, sorted ascending (duplicates allowed), then
    /// verifies every distinct prefix against its window.
    pub fn build<K: Key>(&self, keys: &[K]) -> Result<PgmIndex> {
        if self.epsilon == 0 || self.epsilon_recursive == 0 {
            return Err(Error::InvalidEpsilon);
        }
        if let Some(i) = keys.windows(2).position(|w| w[1] < w[0]) {
            return Err(Error::NotSorted { position: i + 1 });
        }
        let build = |points: &mut dyn Iterator<Item = (u64, usize)>, eps| -> Vec<Segment> {
            segment_points(points, eps).into_iter().map(Segment::from).collect()
        };
        let mut levels = vec![build(&mut first_positions(keys), self.epsilon)];
        while let Some(top) = levels.last().filter(|l| l.len() > ROOT_MAX) {
            let next = build(&mut top.iter().enumerate().map(|(i, s)| (s.first_key, i)), self.epsilon_recursive);
            levels.push(next);
        }
        let index = PgmIndex {
            epsilon: self.epsilon,
            epsilon_recursive: self.epsilon_recursive,
            last_mile: self.last_mile,
            len: keys.len(),
            levels,
        };
        index.verify(keys)?;
        Ok(index)
    }
}

/// A learned index over a sorted slice of keys that the caller keeps: a
/// piecewise-linear model of prefix -> position with error at most epsilon,
/// and recursive levels of the same over the segments' first keys.
///
/// Duplicates are allowed; lookups have lower-bound semantics.
#[derive(Debug, Clone, PartialEq)]
pub struct PgmIndex {
    pub(crate) epsilon: usize,
    pub(crate) epsilon_recursive: usize,
    pub(crate) last_mile: LastMile,
    pub(crate) len: usize,
    /// `levels[0]` models the keys; each next level models the first keys
    /// of the one below; the last is the root.
    pub(crate) levels: Vec<Vec<Segment>>,
}

impl PgmIndex {
    /// Options for building an index.
    pub fn builder() -> PgmBuilder {
        PgmBuilder::default()
    }

    /// Builds an index over sorted `keys` with default options.
    pub fn build<K: Key>(keys: &[K]) -> Result<Self> {
        PgmBuilder::default().build(keys)
    }

    /// Builds an index with maximum error `epsilon`.
    pub fn with_epsilon<K: Key>(keys: &[K], epsilon: usize) -> Result<Self> {
        PgmBuilder::default().epsilon(epsilon).build(keys)
    }

    /// Checks that every point of every level lies in the window its own
    /// segment predicts: one sequential O(n) pass.
    ///
    /// This is what makes served windows right: the router finds a key's
    /// leaf segment exactly (it widens the window when a prediction misses,
    /// see [`PgmIndex::search`]), and the keys between a leaf segment's first
    /// key and the next one's are that segment's own points, checked here.
    /// Upper levels are checked too, so a slow router is reported as well.
    pub(crate) fn verify<K: Key>(&self, keys: &[K]) -> Result<()> {
        let check = |level: &[Segment], len: usize, eps: usize, points: &mut dyn Iterator<Item = (u64, usize)>| -> Result<()> {
            let mut seg = 0;
            for (key, position) in points {
                while seg + 1 < level.len() && level[seg + 1].first_key <= key {
                    seg += 1;
                }
                let (lo, hi) = Self::window(level[seg].predict(key), len, eps);
                if !(lo..hi).contains(&position) {
                    return Err(Error::Verification { key, position, lo, hi });
                }
            }
            Ok(())
        };
        if self.len == 0 {
            return Ok(());
        }
        check(&self.levels[0], self.len, self.epsilon, &mut first_positions(keys))?;
        for w in self.levels.windows(2) {
            check(&w[1], w[0].len(), self.epsilon_recursive, &mut w[0].iter().enumerate().map(|(i, s)| (s.first_key, i)))?;
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

    /// The maximum prediction error of the leaf level.
    pub fn epsilon(&self) -> usize {
        self.epsilon
    }

    /// The maximum prediction error of the internal levels.
    pub fn epsilon_recursive(&self) -> usize {
        self.epsilon_recursive
    }

    /// The index's own size in bytes (the keys are the caller's).
    pub fn size_bytes(&self) -> usize {
        self.levels.iter().map(|l| std::mem::size_of_val(l.as_slice())).sum()
    }

    /// Number of leaf segments.
    pub fn segments(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    /// Number of levels, leaves included.
    pub fn height(&self) -> usize {
        self.levels.len()
    }

    /// The predicted window for a key with this prefix.
    pub fn search(&self, prefix: u64) -> ApproxPos {
        if self.len == 0 {
            return ApproxPos { pos: 0, lo: 0, hi: 0 };
        }
        let root = &self.levels[self.levels.len() - 1];
        let mut idx = root.iter().rposition(|s| s.first_key <= prefix).unwrap_or(0);
        for level in (0..self.levels.len() - 1).rev() {
            let segs = &self.levels[level];
            let (lo, hi) = Self::window(self.levels[level + 1][idx].predict(prefix), segs.len(), self.epsilon_recursive);
            // Count the segments starting at or before the key: the window
            // holds the answer by the error bound; the edges repair the rest
            // (only reachable through a corrupted or hand-made index).
            let mut i = lo + lastmile::binary(hi - lo, |j| segs[lo + j].first_key <= prefix);
            if i == lo {
                while i > 0 && segs[i - 1].first_key > prefix {
                    i -= 1;
                }
            }
            if i == hi {
                while i < segs.len() && segs[i].first_key <= prefix {
                    i += 1;
                }
            }
            idx = i.saturating_sub(1);
        }
        let pos = self.levels[0][idx].predict(prefix).min(self.len);
        let (lo, hi) = Self::window(pos, self.len, self.epsilon);
        ApproxPos { pos, lo, hi }
    }

    /// The window around a prediction made with error at most `eps`.
    #[inline]
    fn window(pos: usize, len: usize, eps: usize) -> (usize, usize) {
        let pos = pos.min(len);
        (pos.saturating_sub(eps + 1), pos.saturating_add(eps + 2).min(len))
    }

    /// The first position in `keys` whose key is `>= key`.
    ///
    /// Exact for any sorted slice; fast (one window) for the slice the index
    /// was built over, which is what it is for.
    pub fn lower_bound<K: Borrow<Q>, Q: Key + ?Sized>(&self, keys: &[K], key: &Q) -> usize {
        self.bound(keys, key, |k| k.borrow() < key)
    }

    /// The first position whose key is `> key`.
    pub fn upper_bound<K: Borrow<Q>, Q: Key + ?Sized>(&self, keys: &[K], key: &Q) -> usize {
        self.bound(keys, key, |k| k.borrow() <= key)
    }

    /// Whether `key` is in `keys`.
    pub fn contains<K: Borrow<Q>, Q: Key + ?Sized>(&self, keys: &[K], key: &Q) -> bool {
        keys.get(self.lower_bound(keys, key)).is_some_and(|k| k.borrow() == key)
    }

    /// Positions of the keys `>= start` and `< end`.
    pub fn range<K: Borrow<Q>, Q: Key + ?Sized>(&self, keys: &[K], start: &Q, end: &Q) -> Range<usize> {
        let s = self.lower_bound(keys, start);
        s..self.lower_bound(keys, end).max(s)
    }

    fn bound<K, Q: Key + ?Sized>(&self, keys: &[K], key: &Q, before: impl Fn(&K) -> bool) -> usize {
        let ApproxPos { lo, hi, .. } = self.search(key.prefix());
        let (lo, hi) = (lo.min(keys.len()), hi.min(keys.len()));
        let r = match self.last_mile {
            LastMile::Binary => lo + lastmile::binary(hi - lo, |i| before(&keys[lo + i])),
            LastMile::Linear => lo + keys[lo..hi].iter().filter(|k| before(k)).count(),
        };
        self.repair(r, lo, hi, keys.len(), |i| before(&keys[i]))
    }

    /// The lower bound for data that is not a slice (a memory-mapped run,
    /// keys compared through a callback): `before(i)` must say whether the
    /// key at position `i` sorts before the one sought, `prefix` is the
    /// sought key's prefix, and positions run `0..self.len()`.
    pub fn lower_bound_by(&self, prefix: u64, mut before: impl FnMut(usize) -> bool) -> usize {
        let ApproxPos { lo, hi, .. } = self.search(prefix);
        let r = lo + lastmile::binary(hi - lo, |i| before(lo + i));
        self.repair(r, lo, hi, self.len, before)
    }

    /// `r` is the first position in `lo..hi` where `before` is false. Inside
    /// the window that is the answer (`before(r - 1)` and not `before(r)`).
    /// On an edge the answer may lie beyond it (runs of equal prefixes, a
    /// damaged model): gallop outward, then search the span found. Exact for
    /// any sorted data; costs nothing when the model is right.
    #[inline]
    fn repair(&self, r: usize, lo: usize, hi: usize, len: usize, mut before: impl FnMut(usize) -> bool) -> usize {
        if r == lo && lo > 0 && !before(lo - 1) {
            let (mut a, mut b, mut step) = (lo - 1, lo - 1, 1);
            while a > 0 && !before(a - 1) {
                b = a - 1;
                a = a.saturating_sub(step);
                step *= 2;
            }
            return a + lastmile::binary(b - a, |i| before(a + i));
        }
        if r == hi && hi < len && before(hi) {
            let (mut a, mut b, mut step) = (hi + 1, hi + 1, 1);
            while b < len && before(b) {
                a = b + 1;
                b = b.saturating_add(step).min(len);
                step *= 2;
            }
            return a + lastmile::binary(b.max(a) - a, |i| before(a + i));
        }
        r
    }
}

/// Each distinct prefix with the position of its first occurrence.
fn first_positions<K: Key>(keys: &[K]) -> impl Iterator<Item = (u64, usize)> + '_ {
    let mut last = None;
    keys.iter().enumerate().filter_map(move |(i, k)| {
        let p = k.prefix();
        (last.replace(p) != Some(p)).then_some((p, i))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifier_rejects_a_model_that_misses() {
        let keys: Vec<u64> = (0..10_000u64).map(|i| i * 3).collect();
        let mut index = PgmIndex::with_epsilon(&keys, 4).unwrap();
        assert!(index.verify(&keys).is_ok());
        index.levels[0][0].intercept += 100.0;
        assert!(matches!(index.verify(&keys), Err(Error::Verification { .. })));
        // Lookups through the bad model are still exact (the last mile
        // gallops), only slower: a wrong window is never served as an answer.
        assert_eq!(index.lower_bound(&keys, &300), 100);
    }
}
