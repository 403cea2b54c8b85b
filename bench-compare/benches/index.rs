//! Candidates for the row heap's primary index, measured before choosing
//! (issue #4: "crossbeam-skiplist or the updatable learned index — measure
//! and choose"). Each maps memcomparable 8-byte keys (BIGINT primary keys,
//! as `encode_key` writes them) to a value; the benches are a random point
//! lookup and an ordered 100-key range walk, at 100k and 1M keys.
//!
//!   cd bench-compare && cargo bench --bench index
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::ops::Bound;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use crossbeam_skiplist::SkipMap;
use omen_learned::DynamicPgm;
use parking_lot::RwLock;

/// A key stored inline: comparisons touch no other cache line.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
struct InlineKey([u8; 8]);

fn key(i: u64) -> [u8; 8] {
    (i ^ (1 << 63)).to_be_bytes()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn benches(c: &mut Criterion) {
    for n in [100_000u64, 1_000_000] {
        // Keys inserted in random order, as a table fills over time.
        let mut order: Vec<u64> = (0..n).collect();
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.next(i as u64 + 1) as usize);
        }
        let vec_map: RwLock<BTreeMap<Vec<u8>, u64>> = RwLock::new(order.iter().map(|&i| (key(i).to_vec(), i)).collect());
        let inline_map: RwLock<BTreeMap<InlineKey, u64>> = RwLock::new(order.iter().map(|&i| (InlineKey(key(i)), i)).collect());
        let skip: SkipMap<InlineKey, u64> = SkipMap::new();
        let tree: scc::TreeIndex<InlineKey, u64> = scc::TreeIndex::new();
        let mut pgm: DynamicPgm<u64> = DynamicPgm::new();
        for &i in &order {
            skip.insert(InlineKey(key(i)), i);
            tree.insert_sync(InlineKey(key(i)), i).unwrap();
            pgm.insert(i, i);
        }
        let pgm = RwLock::new(pgm);
        let hash: RwLock<rustc_hash::FxHashMap<InlineKey, u64>> = RwLock::new(order.iter().map(|&i| (InlineKey(key(i)), i)).collect());

        let mut g = c.benchmark_group(format!("index_get_{n}"));
        g.bench_function("btreemap_vec_rwlock", |b| b.iter(|| black_box(vec_map.read().get(&key(rng.next(n))[..]).copied())));
        g.bench_function("btreemap_inline_rwlock", |b| b.iter(|| black_box(inline_map.read().get(&InlineKey(key(rng.next(n)))).copied())));
        g.bench_function("crossbeam_skiplist", |b| b.iter(|| black_box(skip.get(&InlineKey(key(rng.next(n)))).map(|e| *e.value()))));
        g.bench_function("scc_treeindex", |b| b.iter(|| black_box(tree.peek_with(&InlineKey(key(rng.next(n))), |_, v| *v))));
        g.bench_function("dynamic_pgm_rwlock", |b| b.iter(|| black_box(pgm.read().get(rng.next(n)).copied())));
        // Not ordered: a point-lookup side index would come on top of one of the above.
        g.bench_function("fx_hashmap_rwlock", |b| b.iter(|| black_box(hash.read().get(&InlineKey(key(rng.next(n)))).copied())));
        g.finish();

        let mut g = c.benchmark_group(format!("index_range100_{n}"));
        let lo = |rng: &mut Rng| InlineKey(key(rng.next(n - 100)));
        g.bench_function("btreemap_vec_rwlock", |b| {
            b.iter(|| {
                let k = lo(&mut rng).0;
                vec_map.read().range::<[u8], _>((Bound::Included(&k[..]), Bound::Unbounded)).take(100).map(|(_, v)| *v).sum::<u64>()
            })
        });
        g.bench_function("btreemap_inline_rwlock", |b| {
            b.iter(|| inline_map.read().range(lo(&mut rng)..).take(100).map(|(_, v)| *v).sum::<u64>())
        });
        g.bench_function("crossbeam_skiplist", |b| b.iter(|| skip.range(lo(&mut rng)..).take(100).map(|e| *e.value()).sum::<u64>()));
        g.bench_function("scc_treeindex", |b| {
            b.iter(|| {
                let guard = scc::Guard::new();
                tree.range(lo(&mut rng).., &guard).take(100).map(|(_, v)| *v).sum::<u64>()
            })
        });
        g.bench_function("dynamic_pgm_rwlock", |b| {
            b.iter(|| {
                let k = rng.next(n - 100);
                pgm.read().range(k..k + 100).into_iter().map(|(_, v)| *v).sum::<u64>()
            })
        });
        g.finish();

        let mut g = c.benchmark_group(format!("index_insert_remove_{n}"));
        g.bench_function(BenchmarkId::new("btreemap_inline_rwlock", n), |b| {
            b.iter(|| {
                let k = InlineKey(key(n + rng.next(n)));
                inline_map.write().insert(k.clone(), 1);
                inline_map.write().remove(&k)
            })
        });
        g.bench_function(BenchmarkId::new("crossbeam_skiplist", n), |b| {
            b.iter(|| {
                let k = InlineKey(key(n + rng.next(n)));
                skip.insert(k.clone(), 1);
                skip.remove(&k).is_some()
            })
        });
        g.bench_function(BenchmarkId::new("scc_treeindex", n), |b| {
            b.iter(|| {
                let k = InlineKey(key(n + rng.next(n)));
                let _ = tree.insert_sync(k.clone(), 1);
                tree.remove_sync(&k)
            })
        });
        g.bench_function(BenchmarkId::new("dynamic_pgm_rwlock", n), |b| {
            b.iter(|| {
                let k = n + rng.next(n);
                pgm.write().insert(k, 1);
                pgm.write().remove(k)
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = index;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2));
    targets = benches
}
criterion_main!(index);
