//! A seeded SplitMix64 generator and a Zipf sampler. The synthetic workloads must be identical on every machine
//! and every version of every dependency, and the learned policy's candidate sampling must be reproducible, so
//! neither uses `rand`'s algorithms or relies on its stream stability.

/// SplitMix64 (Steele, Lea, Flood 2014): 64 bits of state, statistically sound for workload generation.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (n > 0), by multiply-shift (no modulo bias worth noting at these ranges).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in lo..=hi.
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Log-uniform in [lo, hi]: object sizes spread evenly over orders of magnitude.
    pub(crate) fn log_uniform(&mut self, lo: u64, hi: u64) -> u64 {
        let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
        (l + (h - l) * self.unit()).exp().round() as u64
    }

    /// A random permutation of 0..n (Fisher–Yates).
    pub(crate) fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i as u64 + 1) as usize;
            p.swap(i, j);
        }
        p
    }
}

/// Zipf over ranks 0..n with exponent `alpha`: P(rank k) ∝ 1/(k+1)^alpha, by inverse CDF (binary search).
#[derive(Debug, Clone)]
pub(crate) struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub(crate) fn new(n: usize, alpha: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += 1.0 / (k as f64).powf(alpha);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Self { cdf }
    }

    /// A rank, 0 the most popular.
    pub(crate) fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len().saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_one_puts_the_harmonic_share_on_rank_zero() {
        let z = Zipf::new(100, 1.0);
        let mut rng = Rng::new(1);
        let n = 200_000;
        let top = (0..n).filter(|_| z.sample(&mut rng) == 0).count() as f64 / n as f64;
        let h100: f64 = (1..=100).map(|k| 1.0 / k as f64).sum();
        assert!((top - 1.0 / h100).abs() < 0.01, "rank 0 share {top}, expected {}", 1.0 / h100);
    }

    #[test]
    fn same_seed_same_stream() {
        let (mut a, mut b) = (Rng::new(9), Rng::new(9));
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
        let p = Rng::new(3).permutation(50);
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        let s = Rng::new(4).log_uniform(4096, 1 << 20);
        assert!((4096..=1 << 20).contains(&s));
    }
}
