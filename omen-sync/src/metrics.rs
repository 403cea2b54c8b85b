//! What the sync worker reports: the applied watermark, batches and
//! commit records applied, and the lag from a commit's publication to its
//! application, as a histogram.
//!
//! The histogram has four buckets per power of two of microseconds, so a
//! quantile it reports is the upper edge of the bucket holding it: at
//! most 19% above the true value, never below. Counters only grow; take
//! two snapshots and [`LagSnapshot::since`] for an interval's figures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use omen_rowstore::Ts;

/// Buckets per power of two.
const PER_OCTAVE: usize = 4;
/// Bucket `i` holds lags up to `2^((i + 1) / 4)` microseconds; the last
/// also holds everything longer (2^40 us, about 12 days).
const BUCKETS: usize = 40 * PER_OCTAVE;

/// The bucket of a lag.
fn bucket(lag: Duration) -> usize {
    let micros = lag.as_secs_f64() * 1e6;
    if micros <= 1.0 {
        return 0;
    }
    // Bucket i covers (2^(i/4), 2^((i+1)/4)]: the ceiling, minus one.
    let index = (micros.log2() * PER_OCTAVE as f64).ceil() as usize;
    index.saturating_sub(1).min(BUCKETS - 1)
}

/// The largest lag bucket `i` holds.
fn upper_edge(i: usize) -> Duration {
    Duration::from_secs_f64(2f64.powf((i + 1) as f64 / PER_OCTAVE as f64) / 1e6)
}

/// The worker's counters, updated as it applies batches.
#[derive(Debug)]
pub(crate) struct Counters {
    lag: Vec<AtomicU64>,
    max_lag_micros: AtomicU64,
    batches: AtomicU64,
    records: AtomicU64,
    pub(crate) overlaid: AtomicU64,
    pub(crate) waited: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            lag: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max_lag_micros: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            records: AtomicU64::new(0),
            overlaid: AtomicU64::new(0),
            waited: AtomicU64::new(0),
        }
    }
}

impl Counters {
    /// One batch applied, whose records waited `lags` since publication.
    pub(crate) fn applied(&self, lags: impl Iterator<Item = Duration>) {
        let mut records = 0;
        for lag in lags {
            records += 1;
            self.lag[bucket(lag)].fetch_add(1, Ordering::Relaxed);
            self.max_lag_micros.fetch_max(u64::try_from(lag.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
        self.records.fetch_add(records, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, watermark: Ts) -> SyncMetrics {
        SyncMetrics {
            watermark,
            batches: self.batches.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            overlaid: self.overlaid.load(Ordering::Relaxed),
            waited: self.waited.load(Ordering::Relaxed),
            lag: LagSnapshot {
                counts: self.lag.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
                max: Duration::from_micros(self.max_lag_micros.load(Ordering::Relaxed)),
            },
        }
    }
}

/// The sync worker's figures at one moment.
#[derive(Debug, Clone)]
pub struct SyncMetrics {
    /// The applied watermark W: every commit at or below it is in the
    /// column store.
    pub watermark: Ts,
    /// Micro-batches applied since the database opened.
    pub batches: u64,
    /// Commit records (one per transaction or DDL) applied since then.
    pub records: u64,
    /// Snapshots that read commits the column store had not applied yet
    /// from the stream instead (see [`crate::Syncer::snapshot`]).
    pub overlaid: u64,
    /// Snapshots that waited for the watermark instead: too many commits
    /// were waiting, or DDL was among them.
    pub waited: u64,
    /// Lag from each record's publication (just before its commit becomes
    /// visible) to its application.
    pub lag: LagSnapshot,
}

/// A histogram of sync lags (see the module docs for its precision).
#[derive(Debug, Clone)]
pub struct LagSnapshot {
    counts: Vec<u64>,
    max: Duration,
}

impl LagSnapshot {
    /// How many lags it holds.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q`-quantile (0 <= q <= 1) as the upper edge of its bucket;
    /// `None` if the histogram is empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        // The rank of the quantile, 1-based: the smallest lag with at least
        // q of all lags at or below it.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        self.counts
            .iter()
            .position(|&c| {
                seen += c;
                seen >= rank
            })
            .map(upper_edge)
    }

    /// The longest lag: exact since the database opened; for an interval
    /// from [`LagSnapshot::since`], the upper edge of its highest bucket.
    pub fn max(&self) -> Option<Duration> {
        (self.count() > 0).then_some(self.max)
    }

    /// The lags recorded after `earlier` (a snapshot of the same worker).
    pub fn since(&self, earlier: &LagSnapshot) -> LagSnapshot {
        let counts: Vec<u64> = self.counts.iter().zip(&earlier.counts).map(|(now, then)| now.saturating_sub(*then)).collect();
        let max = counts.iter().rposition(|&c| c > 0).map_or(Duration::ZERO, |i| upper_edge(i).min(self.max));
        LagSnapshot { counts, max }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn buckets_hold_their_lags() {
        for micros in [0u64, 1, 2, 3, 10, 999, 1_000, 65_536, 1 << 39, 1 << 45] {
            let lag = Duration::from_micros(micros);
            let i = bucket(lag);
            assert!(lag <= upper_edge(i) || i == BUCKETS - 1, "{micros} us in bucket {i} up to {:?}", upper_edge(i));
            assert!(i == 0 || lag > upper_edge(i - 1), "{micros} us belongs to a lower bucket than {i}");
        }
    }

    proptest! {
        /// Against a sorted Vec: a quantile is never below the true one
        /// and at most 19% (one bucket) above it.
        #[test]
        fn quantiles_bound_the_exact_ones(lags in prop::collection::vec(1u64..10_000_000, 1..300), q in 0.0f64..=1.0) {
            let counters = Counters::default();
            let before = counters.snapshot(0);
            counters.applied(lags.iter().map(|&m| Duration::from_micros(m)));
            let snap = counters.snapshot(1).lag;
            let mut sorted = lags.clone();
            sorted.sort_unstable();
            let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
            let exact = Duration::from_micros(sorted[rank - 1]);
            for histogram in [snap.clone(), snap.since(&before.lag)] {
                let got = histogram.quantile(q).unwrap();
                prop_assert!(got >= exact, "{got:?} < {exact:?}");
                prop_assert!(got.as_secs_f64() <= exact.as_secs_f64() * 2f64.powf(0.25) * 1.000_001, "{got:?} vs {exact:?}");
                prop_assert_eq!(histogram.count(), lags.len() as u64);
            }
            prop_assert_eq!(snap.max(), Some(Duration::from_micros(*sorted.last().unwrap())));
        }
    }

    #[test]
    fn an_interval_holds_only_its_lags() {
        let counters = Counters::default();
        counters.applied([Duration::from_millis(50)].into_iter());
        let first = counters.snapshot(1);
        counters.applied([Duration::from_micros(100), Duration::from_micros(120)].into_iter());
        let second = counters.snapshot(2);
        let interval = second.lag.since(&first.lag);
        assert_eq!(interval.count(), 2);
        assert!(interval.quantile(1.0).unwrap() < Duration::from_micros(150));
        assert!(interval.max().unwrap() < Duration::from_millis(1));
        assert_eq!(second.records, 3);
        assert_eq!(second.batches, 2);
        assert!(LagSnapshot { counts: vec![0; BUCKETS], max: Duration::ZERO }.quantile(0.5).is_none());
    }
}
