//! A count-min sketch of 4-bit counters with periodic halving: TinyLFU's frequency estimate (Caffeine's
//! `FrequencySketch`, simplified to four independent rows).
//!
//! Each key has one counter in each of 4 rows; an increment adds one to all four (saturating at 15) and the
//! estimate is their minimum. After `10 × width` increments every counter is halved, so the sketch forgets old
//! popularity ("aging"). Sixteen counters pack into each `u64`.

use crate::ObjectId;

const ROWS: usize = 4;
/// Counters per u64 word.
const PER_WORD: usize = 16;
/// Smallest table, in counters per row.
const MIN_WIDTH: usize = 256;
/// Seeds of the four row hashes (odd 64-bit constants).
const SEEDS: [u64; ROWS] = [0x9E37_79B9_7F4A_7C15, 0xC2B2_AE3D_27D4_EB4F, 0x1656_67B1_9E37_79F9, 0xD6E8_FEB8_6659_FD93];

/// Frequency estimates for object ids, in bounded memory.
#[derive(Debug, Clone)]
pub(crate) struct FrequencySketch {
    /// `ROWS` rows of `width` counters each, row-major.
    words: Vec<u64>,
    /// Counters per row: a power of two.
    width: usize,
    additions: u64,
    sample_size: u64,
}

impl FrequencySketch {
    pub(crate) fn new() -> Self {
        Self::with_width(MIN_WIDTH)
    }

    fn with_width(width: usize) -> Self {
        let width = width.next_power_of_two().max(MIN_WIDTH);
        Self { words: vec![0; ROWS * width / PER_WORD], width, additions: 0, sample_size: 10 * width as u64 }
    }

    /// Grows the table (and forgets all counts, as Caffeine does) when the cache tracks more objects than one
    /// row has counters; a table much smaller than the population makes every estimate a collision.
    pub(crate) fn ensure_capacity(&mut self, objects: usize) {
        if objects > self.width {
            *self = Self::with_width(objects.saturating_mul(2));
        }
    }

    fn counter(&self, row: usize, id: ObjectId) -> (usize, u32) {
        let h = (id ^ SEEDS[row]).wrapping_mul(SEEDS[(row + 1) % ROWS]);
        let h = h ^ (h >> 29);
        let index = (h as usize) & (self.width - 1);
        let word = row * self.width / PER_WORD + index / PER_WORD;
        (word, ((index % PER_WORD) * 4) as u32)
    }

    /// The estimated number of recent increments of `id`, 0..=15.
    pub(crate) fn estimate(&self, id: ObjectId) -> u8 {
        (0..ROWS)
            .map(|row| {
                let (word, shift) = self.counter(row, id);
                ((self.words[word] >> shift) & 0xF) as u8
            })
            .min()
            .unwrap_or(0)
    }

    /// Counts one occurrence of `id`.
    pub(crate) fn increment(&mut self, id: ObjectId) {
        let mut added = false;
        for row in 0..ROWS {
            let (word, shift) = self.counter(row, id);
            if (self.words[word] >> shift) & 0xF < 15 {
                self.words[word] += 1 << shift;
                added = true;
            }
        }
        if added {
            self.additions += 1;
            if self.additions >= self.sample_size {
                self.halve();
            }
        }
    }

    /// Halves every counter; the addition count drops by the halved amount (Caffeine's correction: odd counters
    /// lose half a count each, a quarter of them per row-set of four).
    fn halve(&mut self) {
        let mut odd = 0u64;
        for w in &mut self.words {
            odd += u64::from((*w & 0x1111_1111_1111_1111).count_ones());
            *w = (*w >> 1) & 0x7777_7777_7777_7777;
        }
        self.additions = (self.additions - (odd >> 2).min(self.additions)) >> 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate_at_fifteen_and_halve_with_age() {
        let mut s = FrequencySketch::new();
        for _ in 0..5 {
            s.increment(7);
        }
        assert_eq!(s.estimate(7), 5);
        for _ in 0..20 {
            s.increment(8);
        }
        assert_eq!(s.estimate(8), 15);
        assert_eq!(s.estimate(9), 0);
        // Enough other increments to reach the sample size: everything halves.
        for id in 0..s.sample_size {
            s.increment(1_000_000 + id);
            if s.additions == 0 || s.estimate(8) < 15 {
                break;
            }
        }
        assert_eq!(s.estimate(8), 7, "15 halves to 7");
        assert!(s.estimate(7) >= 2, "5 halves to 2; collisions only add");
    }

    #[test]
    fn growing_resets() {
        let mut s = FrequencySketch::new();
        s.increment(1);
        s.ensure_capacity(100);
        assert_eq!(s.estimate(1), 1, "within capacity: no change");
        s.ensure_capacity(10_000);
        assert_eq!(s.estimate(1), 0);
        assert!(s.width >= 10_000);
    }
}
