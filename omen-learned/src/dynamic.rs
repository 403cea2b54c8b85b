//! An updatable learned index: the logarithmic method over static indexes.
//!
//! Writes land in a small sorted buffer. When it fills, it is merged with
//! the runs of the smallest levels into the first level with room (level i
//! holds up to `buffer * 2^i` entries), and that run gets a fresh
//! [`PgmIndex`]. Each entry is rewritten O(log n) times in all, so inserts
//! cost amortized O(log n) sequential work; lookups probe the buffer, then
//! each level's index, newest first. Deletes are tombstones, dropped when a
//! merge produces the oldest level; when dead entries outnumber live keys,
//! everything is merged into one run, so memory stays within about twice
//! the live data.

use std::ops::Range;

use crate::pgm::PgmIndex;

/// Entries the write buffer holds before it is merged into the levels.
const BUFFER: usize = 256;

/// One sorted run: keys, values (`None` = tombstone) and its index.
#[derive(Debug, Clone)]
struct Run<V> {
    keys: Vec<u64>,
    values: Vec<Option<V>>,
    index: PgmIndex,
}

impl<V> Run<V> {
    fn get(&self, key: u64) -> Option<&Option<V>> {
        let i = self.index.lower_bound(&self.keys, &key);
        (self.keys.get(i) == Some(&key)).then(|| &self.values[i])
    }
}

/// Size and memory of a [`DynamicPgm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DynamicStats {
    /// Live keys.
    pub len: usize,
    /// Entries held, tombstones and shadowed versions included.
    pub entries: usize,
    /// Occupied levels (the buffer not counted).
    pub levels: usize,
    /// Bytes of the learned indexes.
    pub index_bytes: usize,
    /// Bytes of keys and values.
    pub data_bytes: usize,
}

/// A sorted map from `u64` keys to values on learned indexes. See the module docs.
#[derive(Debug, Clone)]
pub struct DynamicPgm<V> {
    /// Sorted by key; one entry per key.
    buffer: Vec<(u64, Option<V>)>,
    /// `levels[i]` holds at most `BUFFER << (i + 1)` entries; newer levels
    /// have smaller `i`.
    levels: Vec<Option<Run<V>>>,
    len: usize,
    epsilon: usize,
}

impl<V: Clone> Default for DynamicPgm<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Clone> DynamicPgm<V> {
    /// An empty map with the default epsilon.
    pub fn new() -> Self {
        Self::with_epsilon(crate::DEFAULT_EPSILON)
    }

    /// An empty map whose runs use `epsilon` (at least 1).
    pub fn with_epsilon(epsilon: usize) -> Self {
        Self { buffer: Vec::with_capacity(BUFFER), levels: Vec::new(), len: 0, epsilon: epsilon.max(1) }
    }

    /// The value of `key`.
    pub fn get(&self, key: u64) -> Option<&V> {
        if let Ok(i) = self.buffer.binary_search_by_key(&key, |(k, _)| *k) {
            return self.buffer[i].1.as_ref();
        }
        self.levels.iter().flatten().find_map(|run| run.get(key)).and_then(Option::as_ref)
    }

    /// Inserts or replaces; returns whether the key is new.
    pub fn insert(&mut self, key: u64, value: V) -> bool {
        let new = self.get(key).is_none();
        self.len += usize::from(new);
        self.write(key, Some(value));
        new
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove(&mut self, key: u64) -> bool {
        let present = self.get(key).is_some();
        if present {
            self.len -= 1;
            self.write(key, None);
        }
        present
    }

    /// Live keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no key is live.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Live entries with keys in `range`, in key order.
    pub fn range(&self, range: Range<u64>) -> Vec<(u64, &V)> {
        // Newest first: the first source to mention a key decides it.
        let mut found: Vec<(u64, usize, Option<&V>)> = Vec::new();
        let lo = self.buffer.partition_point(|(k, _)| *k < range.start);
        let hi = self.buffer.partition_point(|(k, _)| *k < range.end);
        found.extend(self.buffer[lo..hi].iter().map(|(k, v)| (*k, 0, v.as_ref())));
        for (age, run) in self.levels.iter().enumerate() {
            if let Some(run) = run {
                let r = run.index.range(&run.keys, &range.start, &range.end);
                found.extend(r.map(|i| (run.keys[i], age + 1, run.values[i].as_ref())));
            }
        }
        found.sort_unstable_by_key(|&(k, age, _)| (k, age));
        found.dedup_by_key(|e| e.0);
        found.into_iter().filter_map(|(k, _, v)| v.map(|v| (k, v))).collect()
    }

    /// Sizes and memory.
    pub fn stats(&self) -> DynamicStats {
        let runs = self.levels.iter().flatten();
        let entries = self.buffer.len() + runs.clone().map(|r| r.keys.len()).sum::<usize>();
        DynamicStats {
            len: self.len,
            entries,
            levels: runs.clone().count(),
            index_bytes: runs.map(|r| r.index.size_bytes()).sum(),
            data_bytes: entries * (8 + std::mem::size_of::<Option<V>>()),
        }
    }

    fn write(&mut self, key: u64, value: Option<V>) {
        match self.buffer.binary_search_by_key(&key, |(k, _)| *k) {
            Ok(i) => self.buffer[i].1 = value,
            Err(i) => self.buffer.insert(i, (key, value)),
        }
        if self.buffer.len() >= BUFFER {
            self.flush();
            // Deletes and overwrites leave dead entries in older levels;
            // once they outnumber the live keys, merge everything. It takes
            // Θ(n) writes to get here, so the cost is amortized O(1).
            if self.stats().entries > 2 * self.len + 2 * BUFFER {
                self.compact();
            }
        }
    }

    /// Merges the buffer and every level into one run without tombstones.
    fn compact(&mut self) {
        let mut merged = std::mem::take(&mut self.buffer);
        for run in self.levels.drain(..).flatten() {
            merged = merge(merged, run.keys.into_iter().zip(run.values).collect());
        }
        merged.retain(|(_, v)| v.is_some());
        self.buffer = Vec::with_capacity(BUFFER);
        if merged.is_empty() {
            return;
        }
        let mut target = 0;
        while merged.len() > BUFFER << (target + 1) {
            target += 1;
        }
        self.levels.resize_with(target + 1, || None);
        self.install(target, merged);
    }

    fn install(&mut self, level: usize, entries: Vec<(u64, Option<V>)>) {
        let (keys, values): (Vec<u64>, Vec<Option<V>>) = entries.into_iter().unzip();
        // Keys are sorted and distinct by construction, so the build cannot fail.
        match PgmIndex::with_epsilon(&keys, self.epsilon) {
            Ok(index) => self.levels[level] = Some(Run { keys, values, index }),
            Err(e) => unreachable!("merged run is sorted and distinct: {e}"),
        }
    }

    /// Merges the buffer and the smallest levels into the first level with
    /// room for all of them.
    fn flush(&mut self) {
        let mut merged: Vec<(u64, Option<V>)> = std::mem::take(&mut self.buffer);
        let mut target = 0;
        loop {
            if target == self.levels.len() {
                self.levels.push(None);
            }
            match self.levels[target].take() {
                Some(run) => {
                    // `merged` is newer than `run`: it wins on equal keys.
                    merged = merge(merged, run.keys.into_iter().zip(run.values).collect());
                    target += 1;
                }
                None if merged.len() <= BUFFER << (target + 1) => break,
                None => target += 1,
            }
        }
        if self.levels[target + 1..].iter().all(Option::is_none) {
            // Nothing older remains: tombstones have nothing left to hide.
            merged.retain(|(_, v)| v.is_some());
        }
        self.buffer = Vec::with_capacity(BUFFER);
        if !merged.is_empty() {
            self.install(target, merged);
        }
    }
}

/// Merges two sorted runs of distinct keys; `newer` wins on equal keys.
fn merge<V>(newer: Vec<(u64, Option<V>)>, older: Vec<(u64, Option<V>)>) -> Vec<(u64, Option<V>)> {
    let mut out = Vec::with_capacity(newer.len() + older.len());
    let mut a = newer.into_iter().peekable();
    let mut b = older.into_iter().peekable();
    loop {
        let order = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.0.cmp(&y.0),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => return out,
        };
        if order == std::cmp::Ordering::Equal {
            b.next(); // shadowed by the newer entry
        }
        out.extend(if order == std::cmp::Ordering::Greater { b.next() } else { a.next() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u32),
        Remove(u64),
        Get(u64),
        Range(u64, u64),
    }

    fn op(keys: u64) -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..keys, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            3 => (0..keys).prop_map(Op::Remove),
            2 => (0..keys).prop_map(Op::Get),
            1 => (0..keys, 0..keys).prop_map(|(a, b)| Op::Range(a.min(b), a.max(b))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn matches_a_btreemap(ops in proptest::collection::vec(op(3000), 1..6000)) {
            let mut model = BTreeMap::new();
            let mut map = DynamicPgm::with_epsilon(8);
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(map.insert(k, v), model.insert(k, v).is_none()),
                    Op::Remove(k) => prop_assert_eq!(map.remove(k), model.remove(&k).is_some()),
                    Op::Get(k) => prop_assert_eq!(map.get(k), model.get(&k)),
                    Op::Range(a, b) => {
                        let expect: Vec<(u64, &u32)> = model.range(a..b).map(|(k, v)| (*k, v)).collect();
                        prop_assert_eq!(map.range(a..b), expect);
                    }
                }
                prop_assert_eq!(map.len(), model.len());
            }
            let all: Vec<(u64, &u32)> = model.iter().map(|(k, v)| (*k, v)).collect();
            prop_assert_eq!(map.range(0..u64::MAX), all);
        }
    }

    #[test]
    fn deleting_everything_frees_the_levels() {
        let mut map = DynamicPgm::new();
        for k in 0..100_000u64 {
            map.insert(k, k);
        }
        assert!(map.stats().levels >= 1);
        for k in 0..100_000u64 {
            assert!(map.remove(k));
        }
        for k in 0..10_000u64 {
            map.insert(k + 1_000_000, k);
            map.remove(k + 1_000_000);
        }
        let stats = map.stats();
        assert_eq!(stats.len, 0);
        assert!(stats.entries <= 2 * BUFFER, "{stats:?}: dead entries are compacted away");
    }
}
