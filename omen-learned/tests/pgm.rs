//! PgmIndex against a sorted Vec (`partition_point`) as the model.
#![allow(clippy::unwrap_used, missing_docs)]

use omen_learned::{Error, LastMile, PgmIndex};
use proptest::prelude::*;

fn check(keys: &[u64], epsilon: usize, probes: &[u64]) {
    let index = PgmIndex::with_epsilon(keys, epsilon).unwrap();
    let linear = PgmIndex::builder().epsilon(epsilon).last_mile(LastMile::Linear).build(keys).unwrap();
    for &q in probes.iter().chain(keys) {
        let lb = keys.partition_point(|&k| k < q);
        let ub = keys.partition_point(|&k| k <= q);
        assert_eq!(index.lower_bound(keys, &q), lb, "lower_bound({q})");
        assert_eq!(index.upper_bound(keys, &q), ub, "upper_bound({q})");
        assert_eq!(index.contains(keys, &q), lb < ub);
        assert_eq!(linear.lower_bound(keys, &q), lb, "linear lower_bound({q})");
        assert_eq!(linear.upper_bound(keys, &q), ub, "linear upper_bound({q})");
        assert_eq!(index.lower_bound_by(q, |i| keys[i] < q), lb, "lower_bound_by({q})");
    }
    for w in probes.windows(2) {
        let (a, b) = (w[0].min(w[1]), w[0].max(w[1]));
        let expect = keys.partition_point(|&k| k < a)..keys.partition_point(|&k| k < b);
        assert_eq!(index.range(keys, &a, &b), expect);
    }
}

fn edges() -> Vec<u64> {
    vec![0, 1, 2, u64::MAX, u64::MAX - 1, 1 << 63, (1 << 63) - 1]
}

proptest! {
    #[test]
    fn random_keys(mut keys in proptest::collection::vec(any::<u64>(), 0..2000), probes in proptest::collection::vec(any::<u64>(), 0..50), eps in 1usize..40) {
        keys.sort_unstable();
        check(&keys, eps, &[probes, edges()].concat());
    }

    #[test]
    fn duplicates_and_dense_runs(runs in proptest::collection::vec((0u64..1000, 1usize..300), 1..40), eps in 1usize..8) {
        let mut keys: Vec<u64> = runs.iter().flat_map(|&(k, n)| std::iter::repeat_n(k, n)).collect();
        keys.sort_unstable();
        check(&keys, eps, &(0..1001).collect::<Vec<_>>());
    }

    #[test]
    fn huge_gaps_and_clusters(base in proptest::collection::vec(any::<u64>(), 1..20), width in 1u64..100) {
        let mut keys: Vec<u64> = base.iter().flat_map(|&b| (0..50).map(move |i| b.saturating_add(i * width))).collect();
        keys.sort_unstable();
        check(&keys, 4, &[base, edges()].concat());
    }
}

#[test]
fn adversarial_shapes() {
    check(&[], 4, &edges());
    check(&[42], 4, &[0, 41, 42, 43, u64::MAX]);
    check(&vec![7; 10_000], 4, &[6, 7, 8]);
    check(&[0, u64::MAX], 1, &edges());
    let mut both_ends: Vec<u64> = (0..1000).chain((0..1000).map(|i| u64::MAX - i)).collect();
    both_ends.sort_unstable();
    check(&both_ends, 2, &edges());
    let powers: Vec<u64> = (0..64).map(|i| 1u64 << i).collect();
    check(&powers, 1, &edges());
}

#[test]
fn bad_input_is_an_error() {
    assert_eq!(PgmIndex::with_epsilon(&[1u64, 2], 0).unwrap_err(), Error::InvalidEpsilon);
    assert_eq!(PgmIndex::build(&[1u64, 3, 2]).unwrap_err(), Error::NotSorted { position: 2 });
}

/// At scale the model must stay within its bound (the verifier runs inside
/// `build`) and lookups stay exact.
#[test]
fn ten_million_keys() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut keys: Vec<u64> = (0..10_000_000).map(|_| next()).collect();
    keys.sort_unstable();
    let index = PgmIndex::build(&keys).unwrap();
    assert!(index.size_bytes() * 100 <= keys.len() * 8, "index is {} bytes", index.size_bytes());
    for _ in 0..100_000 {
        let q = next();
        assert_eq!(index.lower_bound(&keys, &q), keys.partition_point(|&k| k < q));
        let i = (q % keys.len() as u64) as usize;
        let a = index.search(keys[i]);
        assert!((a.lo..a.hi).contains(&keys.partition_point(|&k| k < keys[i])));
    }
}

proptest! {
    #[test]
    fn signed_keys(mut keys in proptest::collection::vec(any::<i64>(), 0..2000), probes in proptest::collection::vec(any::<i64>(), 0..50)) {
        keys.sort_unstable();
        let index = PgmIndex::with_epsilon(&keys, 8).unwrap();
        for q in probes.iter().chain(&keys).chain(&[i64::MIN, -1, 0, 1, i64::MAX]) {
            prop_assert_eq!(index.lower_bound(&keys, q), keys.partition_point(|k| k < q));
        }
    }

    /// Byte-string keys, many sharing their first 8 bytes: the model sees
    /// equal prefixes, the last mile compares whole keys.
    #[test]
    fn byte_keys_with_shared_prefixes(suffixes in proptest::collection::vec((0u8..4, proptest::collection::vec(any::<u8>(), 0..6)), 0..500), probes in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..14), 0..40)) {
        let mut keys: Vec<Vec<u8>> = suffixes.into_iter().map(|(head, tail)| {
            let mut k = b"prefix_".to_vec();
            k.push(head);
            k.extend(tail);
            k
        }).collect();
        keys.sort();
        let index = PgmIndex::with_epsilon(&keys, 2).unwrap();
        for q in probes.iter().chain(&keys) {
            let expect = keys.partition_point(|k| k < q);
            prop_assert_eq!(index.lower_bound(&keys, q.as_slice()), expect);
            prop_assert_eq!(index.contains(&keys, q.as_slice()), keys.binary_search(q).is_ok());
        }
    }
}

/// Replays the cargo-fuzz corpus (`fuzz/corpus/load_index`): every input
/// the fuzzer kept must load as an error or an exact index, without panic.
#[test]
fn fuzz_corpus() {
    // Cargo sets the variable when it runs the test; read it then, not at
    // build time, so a binary built in another checkout reads this one.
    let root = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from);
    let dir = root.join("fuzz/corpus/load_index");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        seen += 1;
        if let Ok(index) = PgmIndex::from_bytes(&data) {
            let keys: Vec<u64> = (0..index.len().min(4096) as u64).map(|i| i * 3).collect();
            for q in [0u64, 1, 3, 4000, u64::MAX] {
                assert_eq!(index.lower_bound(&keys, &q), keys.partition_point(|&k| k < q));
            }
        }
    }
    assert!(seen > 10, "the corpus in {} is missing", dir.display());
}
