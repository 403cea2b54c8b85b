//! Learned index vs binary search vs std BTreeMap, same keys, same run.
//!
//! `cargo bench -p omen-learned --bench lookup`; set `OMEN_BENCH_SIZES`
//! (comma-separated key counts, default `1000000,10000000,50000000`) to
//! change the scale. Build rate and index size are printed as
//! `build: ...` lines; lookups are criterion measurements (ns per lookup).
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use omen_learned::{DynamicPgm, LastMile, PgmIndex};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: fast, fixed seed, reproducible.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.unit().max(1e-300), self.unit());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// Sorted, distinct keys of a distribution.
fn keys(dist: &str, n: usize) -> Vec<u64> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ n as u64);
    let mut clusters = Vec::new();
    let mut keys: Vec<u64> = (0..n + n / 10)
        .map(|_| match dist {
            "uniform" => rng.next(),
            "normal" => (rng.normal() * 1e15 + 9e18) as u64,
            "lognormal" => (rng.normal() * 2.0).exp().mul_add(1e12, 0.0) as u64,
            // Map-like: dense clusters of random width at random places.
            "clustered" => {
                if clusters.is_empty() {
                    clusters = (0..1000).map(|_| (rng.next() >> 2, 1 + rng.next() % 1_000_000_000)).collect();
                }
                let (start, width) = clusters[(rng.next() % 1000) as usize];
                start + rng.next() % width
            }
            _ => unreachable!(),
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys.truncate(n);
    keys
}

/// Query keys drawn uniformly from the set (existing keys).
fn uniform_queries(keys: &[u64], count: usize) -> Vec<u64> {
    let mut rng = Rng(42);
    (0..count).map(|_| keys[(rng.next() % keys.len() as u64) as usize]).collect()
}

/// Zipfian (theta 0.99) ranks, mapped to scattered keys (rank r -> a
/// pseudo-random position), by inverse-CDF sampling over a table of
/// cumulative weights of the first 1M ranks (they carry most of the mass).
fn zipf_queries(keys: &[u64], count: usize) -> Vec<u64> {
    let ranks = keys.len().min(1_000_000);
    let mut cdf = Vec::with_capacity(ranks);
    let mut sum = 0.0;
    for r in 1..=ranks {
        sum += 1.0 / (r as f64).powf(0.99);
        cdf.push(sum);
    }
    let mut rng = Rng(7);
    (0..count)
        .map(|_| {
            let r = cdf.partition_point(|&c| c < rng.unit() * sum) as u64;
            let pos = r.wrapping_mul(0x9E37_79B9_7F4A_7C15) % keys.len() as u64;
            keys[pos as usize]
        })
        .collect()
}

fn sizes() -> Vec<usize> {
    std::env::var("OMEN_BENCH_SIZES")
        .unwrap_or_else(|_| "1000000,10000000,50000000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect()
}

/// True when only the tuning sweep should run.
fn tuning_only() -> bool {
    std::env::var("OMEN_BENCH_TUNING").is_ok()
}

fn lookups(c: &mut Criterion) {
    if tuning_only() {
        return;
    }
    for n in sizes() {
        for dist in ["uniform", "normal", "lognormal", "clustered"] {
            let keys = keys(dist, n);
            let t = Instant::now();
            let pgm = PgmIndex::build(&keys).unwrap();
            let secs = t.elapsed().as_secs_f64();
            println!(
                "build: {dist} n={} eps={} segments={} height={} bytes/key={:.4} index/keys={:.4}% build={:.1}M keys/s",
                keys.len(),
                pgm.epsilon(),
                pgm.segments(),
                pgm.height(),
                pgm.size_bytes() as f64 / keys.len() as f64,
                100.0 * pgm.size_bytes() as f64 / (keys.len() * 8) as f64,
                keys.len() as f64 / secs / 1e6
            );
            let binary = PgmIndex::builder().last_mile(LastMile::Binary).build(&keys).unwrap();
            let btree: BTreeMap<u64, u32> = keys.iter().enumerate().map(|(i, &k)| (k, i as u32)).collect();
            let mut queries = vec![("uniform", uniform_queries(&keys, 1 << 20))];
            if dist == "uniform" {
                queries.push(("zipf", zipf_queries(&keys, 1 << 20)));
            }
            for (qname, qs) in &queries {
                let mut g = c.benchmark_group(format!("lookup/{dist}/{qname}"));
                let id = |name: &str| BenchmarkId::new(name, n);
                let mut i = 0usize;
                let mut next = || {
                    i = (i + 1) & ((1 << 20) - 1);
                    qs[i]
                };
                g.bench_function(id("pgm"), |b| b.iter(|| black_box(pgm.lower_bound(&keys, &next()))));
                g.bench_function(id("pgm_binary"), |b| b.iter(|| black_box(binary.lower_bound(&keys, &next()))));
                g.bench_function(id("binary_search"), |b| {
                    b.iter(|| {
                        let q = next();
                        black_box(keys.partition_point(|&k| k < q))
                    })
                });
                g.bench_function(id("btreemap"), |b| b.iter(|| black_box(btree.get(&next()))));
                g.finish();
            }
            if dist == "uniform" {
                let qs = &queries[0].1;
                let mut g = c.benchmark_group("range100/uniform");
                let mut i = 0usize;
                let mut next = || {
                    i = (i + 1) & ((1 << 20) - 1);
                    qs[i]
                };
                g.bench_function(BenchmarkId::new("pgm", n), |b| {
                    b.iter(|| {
                        let s = pgm.lower_bound(&keys, &next());
                        black_box(keys[s..(s + 100).min(keys.len())].iter().sum::<u64>())
                    })
                });
                g.bench_function(BenchmarkId::new("btreemap", n), |b| {
                    b.iter(|| black_box(btree.range(next()..).take(100).map(|(k, _)| *k).sum::<u64>()))
                });
                g.finish();
                if n == *sizes().last().unwrap() {
                    let mut g = c.benchmark_group(format!("epsilon/uniform/{n}"));
                    for eps in [8usize, 16, 32, 64, 128, 256] {
                        let idx = PgmIndex::with_epsilon(&keys, eps).unwrap();
                        println!("build: epsilon sweep n={n} eps={eps} bytes={} segments={}", idx.size_bytes(), idx.segments());
                        g.bench_function(BenchmarkId::new("pgm", eps), |b| b.iter(|| black_box(idx.lower_bound(&keys, &next()))));
                    }
                    g.finish();
                }
            }
        }
    }
}

/// The updatable index: bulk insert rate, then a 50/50 insert/lookup mix,
/// against BTreeMap doing the same.
fn dynamic(c: &mut Criterion) {
    if tuning_only() {
        return;
    }
    let n = 1_000_000;
    let mut rng = Rng(99);
    let keys: Vec<u64> = (0..n).map(|_| rng.next()).collect();
    let t = Instant::now();
    let mut map = DynamicPgm::new();
    for &k in &keys {
        map.insert(k, k);
    }
    let pgm_rate = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut btree = BTreeMap::new();
    for &k in &keys {
        btree.insert(k, k);
    }
    let btree_rate = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "build: dynamic inserts of {n} random keys: DynamicPgm {:.2}M/s, BTreeMap {:.2}M/s; {:?}",
        pgm_rate / 1e6,
        btree_rate / 1e6,
        map.stats()
    );
    let mut g = c.benchmark_group("dynamic_mixed_50_50");
    let mut i = 0usize;
    g.bench_function(BenchmarkId::new("dynamic_pgm", n), |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            if i.is_multiple_of(2) {
                black_box(map.insert(rng.next(), 0));
            } else {
                black_box(map.get(keys[i % keys.len()]));
            }
        })
    });
    g.bench_function(BenchmarkId::new("btreemap", n), |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            if i.is_multiple_of(2) {
                black_box(btree.insert(rng.next(), 0));
            } else {
                black_box(btree.get(&keys[i % keys.len()]));
            }
        })
    });
    g.finish();
}

/// The keys copied into memory backed by 2 MiB transparent huge pages, to
/// measure what TLB misses cost (the kernel here runs THP in `madvise` mode).
struct HugePageKeys {
    ptr: *mut u64,
    len: usize,
    bytes: usize,
}

impl HugePageKeys {
    fn new(keys: &[u64]) -> Self {
        const HUGE: usize = 2 << 20;
        let bytes = (keys.len() * 8).div_ceil(HUGE) * HUGE;
        // SAFETY: an anonymous private mapping of `bytes` bytes (a multiple of
        // 2 MiB); the result is checked against MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), bytes, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap failed");
        // SAFETY: `ptr..ptr + bytes` is the mapping just created. madvise
        // only advises; its failure leaves ordinary pages, which is fine.
        unsafe { libc::madvise(ptr, bytes, libc::MADV_HUGEPAGE) };
        let ptr = ptr.cast::<u64>();
        // SAFETY: the mapping holds at least `keys.len()` u64s, is
        // page-aligned (so u64-aligned) and does not overlap `keys`.
        unsafe { std::ptr::copy_nonoverlapping(keys.as_ptr(), ptr, keys.len()) };
        Self { ptr, len: keys.len(), bytes }
    }

    fn as_slice(&self) -> &[u64] {
        // SAFETY: `ptr` points at `len` initialized u64s that live as long as
        // `self` (unmapped only in Drop).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for HugePageKeys {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, once.
        unsafe { libc::munmap(self.ptr.cast(), self.bytes) };
    }
}

/// Tuning sweep at the largest size, uniform keys: leaf epsilon x internal
/// epsilon x last mile. Runs only with `OMEN_BENCH_TUNING=1`.
fn tuning(c: &mut Criterion) {
    if !tuning_only() {
        return;
    }
    let n = *sizes().last().unwrap();
    let keys = keys("uniform", n);
    let qs = uniform_queries(&keys, 1 << 20);
    let mut g = c.benchmark_group(format!("tuning/uniform/{n}"));
    for eps in [8usize, 16, 32, 64] {
        for rec in [4usize, 16] {
            for (lm, name) in [(LastMile::Binary, "binary"), (LastMile::Linear, "linear")] {
                let idx = PgmIndex::builder().epsilon(eps).epsilon_recursive(rec).last_mile(lm).build(&keys).unwrap();
                println!("build: tuning eps={eps} rec={rec} height={} bytes={}", idx.height(), idx.size_bytes());
                let mut i = 0usize;
                g.bench_function(BenchmarkId::new(format!("eps{eps}_rec{rec}_{name}"), n), |b| {
                    b.iter(|| {
                        i = (i + 1) & ((1 << 20) - 1);
                        black_box(idx.lower_bound(&keys, &qs[i]))
                    })
                });
            }
        }
    }
    // The same lookups with the keys on 2 MiB pages.
    let huge = HugePageKeys::new(&keys);
    let hk = huge.as_slice();
    let smaps = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    println!("build: THP {}", smaps.lines().find(|l| l.starts_with("AnonHugePages")).unwrap_or("AnonHugePages: unknown"));
    for (eps, lm, name) in [(16usize, LastMile::Linear, "linear"), (64, LastMile::Binary, "binary")] {
        let idx = PgmIndex::builder().epsilon(eps).last_mile(lm).build(hk).unwrap();
        let mut i = 0usize;
        g.bench_function(BenchmarkId::new(format!("hugepages_eps{eps}_{name}"), n), |b| {
            b.iter(|| {
                i = (i + 1) & ((1 << 20) - 1);
                black_box(idx.lower_bound(hk, &qs[i]))
            })
        });
    }
    let mut i = 0usize;
    g.bench_function(BenchmarkId::new("hugepages_binary_search", n), |b| {
        b.iter(|| {
            i = (i + 1) & ((1 << 20) - 1);
            let q = qs[i];
            black_box(hk.partition_point(|&k| k < q))
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = tuning, lookups, dynamic
}
criterion_main!(benches);
