//! A split-block Bloom filter over a run's keys, so a point read skips the
//! runs that lack its key without searching them.
//!
//! The layout is Parquet's split-block filter: 32-byte blocks of eight
//! little-endian `u32` words; a key picks a block with its hash's upper
//! half and sets one bit in each word with its lower half times eight
//! fixed odd salts. A probe touches one cache line. At [`BITS_PER_KEY`]
//! bits a key about 1% of absent keys pass.
//!
//! The hash is CRC32C (hardware-accelerated, stable across builds: the
//! filter is on disk), widened to 64 bits by the splitmix64 finalizer.
//! Keys whose CRCs collide share a hash, which adds n / 2^32 to the
//! false-positive rate (0.2% at ten million keys).

/// Filter bits per key.
pub(crate) const BITS_PER_KEY: usize = 10;
/// Bytes per block.
pub(crate) const BLOCK_BYTES: usize = 32;

const SALT: [u32; 8] = [0x47b6_137b, 0x4497_4d91, 0x8824_ad5b, 0xa2b7_289d, 0x7054_95c7, 0x2df1_424b, 0x9efc_4947, 0x5c6b_fb31];

/// The key's 64-bit hash.
pub(crate) fn hash(key: &[u8]) -> u64 {
    let mut z = u64::from(crc32c::crc32c(key)) ^ ((key.len() as u64) << 32);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn block_of(hash: u64, blocks: usize) -> usize {
    (((hash >> 32) * blocks as u64) >> 32) as usize
}

fn bit(hash: u64, word: usize) -> u32 {
    1 << ((hash as u32).wrapping_mul(SALT[word]) >> 27)
}

/// The filter's bytes for keys with these hashes: [`BLOCK_BYTES`] per
/// block, enough blocks for [`BITS_PER_KEY`] bits a key.
pub(crate) fn build(hashes: &[u64]) -> Vec<u8> {
    let blocks = (hashes.len() * BITS_PER_KEY).div_ceil(8 * BLOCK_BYTES).max(1);
    let mut words = vec![0u32; blocks * 8];
    for &h in hashes {
        let b = block_of(h, blocks);
        for (w, word) in words[b * 8..b * 8 + 8].iter_mut().enumerate() {
            *word |= bit(h, w);
        }
    }
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Whether a key with this hash may be in the filter `bytes` (a whole
/// number of blocks, at least one); false means it is not.
pub(crate) fn may_contain(bytes: &[u8], hash: u64) -> bool {
    let blocks = bytes.len() / BLOCK_BYTES;
    let at = block_of(hash, blocks) * BLOCK_BYTES;
    (0..8).all(|w| {
        let word = u32::from_le_bytes(bytes[at + 4 * w..at + 4 * w + 4].try_into().expect("4 bytes"));
        word & bit(hash, w) != 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_always_pass_and_few_others_do() {
        let keys: Vec<Vec<u8>> = (0..100_000u64).map(|i| (i * 2).to_be_bytes().to_vec()).collect();
        let filter = build(&keys.iter().map(|k| hash(k)).collect::<Vec<_>>());
        assert_eq!(filter.len() % BLOCK_BYTES, 0);
        assert!(keys.iter().all(|k| may_contain(&filter, hash(k))));
        let passed = (0..100_000u64).filter(|i| may_contain(&filter, hash(&(i * 2 + 1).to_be_bytes()))).count();
        assert!(passed < 2_000, "{passed} of 100000 absent keys passed");
    }

    #[test]
    fn an_empty_filter_has_one_block_and_passes_nothing() {
        let filter = build(&[]);
        assert_eq!(filter.len(), BLOCK_BYTES);
        assert!(!may_contain(&filter, hash(b"k")));
    }
}
