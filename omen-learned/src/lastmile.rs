//! The last mile: find the lower bound inside the predicted window.

/// How lookups search the window around a prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LastMile {
    /// Branchless binary search: log2(window) dependent loads, few
    /// comparisons. Prefer it for keys that are costly to compare (long
    /// byte strings) or for a large epsilon.
    Binary,
    /// Count the keys below the target across the whole window: every load
    /// independent (one round of cache misses), vectorizable for `u64`. The
    /// default: fastest for `u64` keys at the default epsilon (crate README).
    #[default]
    Linear,
}

/// First index in `0..len` where `before` is false, given that `before` is
/// true then false along the range (a sorted predicate).
#[inline]
pub(crate) fn binary(len: usize, mut before: impl FnMut(usize) -> bool) -> usize {
    if len == 0 {
        return 0;
    }
    let mut base = 0;
    let mut size = len;
    while size > 1 {
        let half = size / 2;
        // Compiles to a conditional move: no branch to mispredict.
        base = if before(base + half) { base + half } else { base };
        size -= half;
    }
    base + usize::from(before(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_agrees_with_partition_point() {
        let keys: Vec<u64> = vec![1, 3, 3, 3, 7, 9, 9, 12];
        for len in 0..=keys.len() {
            for q in 0..14 {
                assert_eq!(binary(len, |i| keys[i] < q), keys[..len].partition_point(|&k| k < q));
                assert_eq!(binary(len, |i| keys[i] <= q), keys[..len].partition_point(|&k| k <= q));
            }
        }
    }
}
