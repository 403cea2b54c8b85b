//! Untrusted bytes as a serialized index: loading must return an error or a
//! valid index, never panic or read out of bounds, and a loaded index must
//! answer lookups exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omen_learned::PgmIndex;

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = PgmIndex::from_bytes(data) {
        let keys: Vec<u64> = (0..index.len().min(4096) as u64).map(|i| i * 3).collect();
        for q in [0u64, 1, 3, 4000, u64::MAX] {
            assert_eq!(index.lower_bound(&keys, &q), keys.partition_point(|&k| k < q));
        }
    }
});
