//! The serialized index, so a memory-mapped run file can carry its index.
//!
//! ```text
//! offset  size        field
//!      0     8        magic "OMENPGM\0"
//!      8     4        format version (1), u32 LE
//!     12     1        last mile (0 binary, 1 linear); 3 bytes reserved (0)
//!     16     8        epsilon, u64 LE
//!     24     8        number of keys indexed, u64 LE
//!     32     4        height (levels), u32 LE
//!     36     4        epsilon of the internal levels, u32 LE
//!     40     8*h      segments per level, leaves first, u64 LE each
//!      .     24*s     segments, level by level: first_key u64, slope f64,
//!                     intercept f64, all LE
//!      .     4        crc32c of every byte before it, u32 LE
//! ```
//!
//! Loading copies the segments out of the borrowed buffer (they are about
//! 0.3% of the keys' size at the default epsilon), so the buffer needs no
//! alignment and may be dropped afterwards.

use omen_files::codec::{DecodeError, Reader, Writer};

use crate::error::{Error, Result};
use crate::lastmile::LastMile;
use crate::pgm::{PgmIndex, ROOT_MAX};
use crate::segment::Segment;

const MAGIC: &[u8; 8] = b"OMENPGM\0";
const VERSION: u32 = 1;
const HEADER: usize = 40;
const SEGMENT: usize = std::mem::size_of::<Segment>();
const MAX_HEIGHT: usize = 64;

// Segments are written as their in-memory bytes, which are little-endian
// only on little-endian hosts.
const _: () = assert!(cfg!(target_endian = "little"), "OmenDB's file formats assume a little-endian host");

impl PgmIndex {
    /// Appends the serialized index to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }

    /// The serialized index.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::framed(MAGIC);
        w.reserve(HEADER - MAGIC.len() + 8 * self.levels.len() + self.size_bytes() + 4);
        w.u32(VERSION);
        w.u8(match self.last_mile {
            LastMile::Binary => 0,
            LastMile::Linear => 1,
        });
        w.raw(&[0; 3]);
        w.u64(self.epsilon as u64);
        w.u64(self.len as u64);
        w.u32(self.levels.len() as u32);
        w.u32(u32::try_from(self.epsilon_recursive).unwrap_or(u32::MAX));
        for level in &self.levels {
            w.u64(level.len() as u64);
        }
        for level in &self.levels {
            w.raw(bytemuck::cast_slice(level));
        }
        w.seal()
    }

    /// Loads an index written by [`PgmIndex::write_to`]. The buffer must be
    /// exactly one serialized index. Any truncation or corruption is an
    /// [`Error::Corrupt`]; loading never panics and never reads out of bounds.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let corrupt = |what: &str| Error::Corrupt(what.to_owned());
        let decode = |e: DecodeError| Error::Corrupt(e.to_string());
        let mut r = Reader::unseal(bytes, MAGIC).map_err(decode)?;
        let version = r.u32().map_err(decode)?;
        if version != VERSION {
            return Err(Error::Corrupt(format!("unsupported format version {version}")));
        }
        let last_mile = match r.u8().map_err(decode)? {
            0 => LastMile::Binary,
            1 => LastMile::Linear,
            _ => return Err(corrupt("unknown last-mile strategy")),
        };
        r.take(3).map_err(decode)?; // reserved
        let epsilon = usize::try_from(r.u64().map_err(decode)?).ok().filter(|&e| e >= 1).ok_or_else(|| corrupt("epsilon out of range"))?;
        let len = usize::try_from(r.u64().map_err(decode)?).map_err(|_| corrupt("key count out of range"))?;
        let height = r.u32().map_err(decode)? as usize;
        let epsilon_recursive = (r.u32().map_err(decode)? as usize).max(1);
        if height == 0 || height > MAX_HEIGHT {
            return Err(corrupt("height out of range"));
        }
        let sizes: Vec<u64> = (0..height).map(|_| r.u64()).collect::<Result<_, _>>().map_err(decode)?;
        let total = sizes.iter().try_fold(0usize, |acc, &s| usize::try_from(s).ok().and_then(|s| acc.checked_add(s)));
        let seg_bytes = total.and_then(|t| t.checked_mul(SEGMENT)).ok_or_else(|| corrupt("segment count overflows"))?;
        if r.remaining() != seg_bytes {
            return Err(corrupt("segment bytes do not match the level table"));
        }
        let all: Vec<Segment> = bytemuck::pod_collect_to_vec(r.take(seg_bytes).map_err(decode)?);
        let mut levels = Vec::with_capacity(height);
        let mut at = 0;
        for &s in &sizes {
            let s = s as usize; // fits: checked in the sum above
            levels.push(all[at..at + s].to_vec());
            at += s;
        }
        validate(&levels, len).map_err(corrupt)?;
        Ok(Self { epsilon, epsilon_recursive, last_mile, len, levels })
    }
}

/// The structural invariants every lookup relies on.
fn validate(levels: &[Vec<Segment>], len: usize) -> std::result::Result<(), &'static str> {
    if len == 0 {
        return if levels.len() == 1 && levels[0].is_empty() { Ok(()) } else { Err("an empty index has one empty level") };
    }
    if levels.iter().any(Vec::is_empty) {
        return Err("empty level");
    }
    if levels.windows(2).any(|w| w[1].len() > w[0].len()) || levels.last().is_some_and(|l| l.len() > ROOT_MAX) {
        return Err("level sizes do not shrink to a root");
    }
    for level in levels {
        if level.windows(2).any(|w| w[1].first_key <= w[0].first_key) {
            return Err("segment keys not increasing");
        }
        if level.iter().any(|s| !s.slope.is_finite() || !s.intercept.is_finite()) {
            return Err("non-finite segment");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> (Vec<u64>, PgmIndex) {
        let keys: Vec<u64> = (0..50_000u64).map(|i| i * i / 7 + i).collect();
        let index = PgmIndex::with_epsilon(&keys, 8).unwrap();
        (keys, index)
    }

    #[test]
    fn round_trip_is_identical_and_answers_alike() {
        let (keys, index) = sample();
        let bytes = index.to_bytes();
        let loaded = PgmIndex::from_bytes(&bytes).unwrap();
        assert_eq!(loaded, index);
        for q in [0, 1, 500, keys[1000], u64::MAX] {
            assert_eq!(loaded.lower_bound(&keys, &q), keys.partition_point(|&k| k < q));
        }
        let empty = PgmIndex::build::<u64>(&[]).unwrap();
        assert_eq!(PgmIndex::from_bytes(&empty.to_bytes()).unwrap(), empty);
        // Loading works from any alignment.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        assert_eq!(PgmIndex::from_bytes(&shifted[1..]).unwrap(), index);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let (_, index) = sample();
        let bytes = index.to_bytes();
        for cut in 0..bytes.len() {
            assert!(PgmIndex::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    proptest! {
        /// Mutated buffers (the bounded, stable-toolchain stand-in for a
        /// fuzzer) load as an error or as a valid index, and never panic.
        #[test]
        fn mutations_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), fix_crc: bool) {
            let (keys, index) = sample();
            let mut bytes = index.to_bytes();
            let n = bytes.len();
            for (at, x) in flips {
                bytes[at % n] ^= x.max(1);
            }
            if fix_crc {
                // Make the checksum pass, so structural validation is what stands guard.
                let crc = crc32c::crc32c(&bytes[..n - 4]);
                bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
            }
            if let Ok(loaded) = PgmIndex::from_bytes(&bytes) {
                // A structurally valid index may predict badly; lookups
                // still must not panic, and on its own keys stay exact.
                if loaded.len() == keys.len() {
                    for q in [0, keys[7], keys[keys.len() / 2], u64::MAX] {
                        prop_assert_eq!(loaded.lower_bound(&keys, &q), keys.partition_point(|&k| k < q));
                    }
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = PgmIndex::from_bytes(&bytes);
        }
    }
}
