//! Deterministic synthetic workloads: the same seed gives the same trace on every machine.
//!
//! Object sizes are log-uniform between 4 KiB and 1 MiB (decoded column chunks span KB to MB) unless a
//! workload says otherwise; time advances 50–150 µs per access.

use crate::rng::{Rng, Zipf};

use crate::{Access, AccessKind, ObjectId};

/// A named trace.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Short name for tables ("zipf-1.0", ...).
    pub name: String,
    /// The accesses, in time order.
    pub accesses: Vec<Access>,
}

/// How big the standard workloads are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    /// Distinct objects (about; the segment workloads round to whole segments).
    pub objects: usize,
    /// Accesses per trace.
    pub requests: usize,
}

impl Scale {
    /// The harness's size: 20,000 objects, 400,000 accesses per trace.
    pub const FULL: Scale = Scale { objects: 20_000, requests: 400_000 };
    /// A tenth of that, for tests.
    pub const SMALL: Scale = Scale { objects: 2_000, requests: 40_000 };
}

/// The standard suite, in table order: Zipf 0.9, 1.0, 1.2; a hot set that shifts halfway; scans mixed with
/// point reads over segments × columns; a periodic dashboard over background traffic.
pub fn standard(scale: Scale, seed: u64) -> Vec<Workload> {
    let Scale { objects, requests } = scale;
    let mut out: Vec<Workload> = [0.9, 1.0, 1.2]
        .into_iter()
        .map(|alpha| Workload { name: format!("zipf-{alpha:.1}"), accesses: zipf(alpha, objects, requests, seed) })
        .collect();
    out.push(Workload { name: "hot-shift".into(), accesses: shifting_hot_set(objects, requests, seed) });
    let columns = 8;
    out.push(Workload { name: "scan-point".into(), accesses: scans_and_points(objects / columns, columns, requests, seed) });
    out.push(Workload { name: "periodic".into(), accesses: periodic(objects, requests, seed) });
    out
}

struct Clock {
    rng: Rng,
    now: u64,
    statement: u64,
}

impl Clock {
    fn new(seed: u64) -> Self {
        Self { rng: Rng::new(seed ^ 0xC10C), now: 0, statement: 0 }
    }

    fn tick(&mut self) -> u64 {
        self.now += self.rng.between(50, 150);
        self.now
    }

    fn next_statement(&mut self) -> u64 {
        self.statement += 1;
        self.statement
    }

    fn point(&mut self, id: ObjectId, bytes: u64) -> Access {
        let statement = self.next_statement();
        Access { id, bytes, kind: AccessKind::Point, statement, time_us: self.tick(), scan_position: None }
    }
}

fn sizes(rng: &mut Rng, n: usize) -> Vec<u64> {
    (0..n).map(|_| rng.log_uniform(4 << 10, 1 << 20)).collect()
}

/// Independent point reads, Zipf(`alpha`) over `objects` objects of random sizes; popularity is independent of
/// size and of id.
pub fn zipf(alpha: f64, objects: usize, requests: usize, seed: u64) -> Vec<Access> {
    let mut rng = Rng::new(seed);
    let size = sizes(&mut rng, objects);
    let rank_to_object = rng.permutation(objects);
    let z = Zipf::new(objects, alpha);
    let mut clock = Clock::new(seed);
    (0..requests)
        .map(|_| {
            let o = rank_to_object[z.sample(&mut rng)];
            clock.point(o as ObjectId, size[o])
        })
        .collect()
}

/// Zipf 1.0 point reads whose popularity ranking is reshuffled halfway: yesterday's hot set goes cold.
pub fn shifting_hot_set(objects: usize, requests: usize, seed: u64) -> Vec<Access> {
    let mut rng = Rng::new(seed ^ 0x5417);
    let size = sizes(&mut rng, objects);
    let z = Zipf::new(objects, 1.0);
    let mut clock = Clock::new(seed);
    let mut rank_to_object = rng.permutation(objects);
    (0..requests)
        .map(|i| {
            if i == requests / 2 {
                rank_to_object = rng.permutation(objects);
            }
            let o = rank_to_object[z.sample(&mut rng)];
            clock.point(o as ObjectId, size[o])
        })
        .collect()
}

/// The id of one column chunk: segment in the high bits, column in the low 16 (the store's layout).
pub fn chunk_id(segment: u64, column: u64) -> ObjectId {
    (segment << 16) | column
}

/// An HTAP column store: `segments` × `columns` chunks, segments arriving over time (half exist at the start).
/// A fifth of the statements scan a contiguous range of segments over 1–3 columns (skewed toward the first
/// columns), touching chunks in order with their scan position; the rest are point reads of 1–3 columns of one
/// segment, Zipf(1.0)-skewed toward the newest segments. Column widths differ (8 KiB to 1 MiB per chunk), with
/// ±50% jitter per segment.
pub fn scans_and_points(segments: usize, columns: usize, requests: usize, seed: u64) -> Vec<Access> {
    let mut rng = Rng::new(seed ^ 0x5CA4);
    let width: Vec<u64> = (0..columns).map(|_| rng.log_uniform(8 << 10, 1 << 20)).collect();
    let jitter: Vec<f64> = (0..segments * columns).map(|_| 0.5 + rng.unit()).collect();
    let bytes = |s: usize, c: usize| ((width[c] as f64) * jitter[s * columns + c]) as u64;
    let column_pick = Zipf::new(columns, 1.0);
    let recent = Zipf::new(segments, 1.0);
    let mut clock = Clock::new(seed);
    let mut out = Vec::with_capacity(requests);
    let pick_columns = |rng: &mut Rng| {
        let n = rng.between(1, 3.min(columns as u64)) as usize;
        let mut cols: Vec<usize> = Vec::with_capacity(n);
        while cols.len() < n {
            let c = column_pick.sample(rng);
            if !cols.contains(&c) {
                cols.push(c);
            }
        }
        cols
    };
    while out.len() < requests {
        let progress = out.len() as f64 / requests as f64;
        let live = ((segments as f64) * (0.5 + 0.5 * progress)).ceil().max(1.0) as usize;
        let cols = pick_columns(&mut rng);
        let statement = clock.next_statement();
        if rng.unit() < 0.2 {
            let len = rng.between(1, (live / 4).max(1) as u64) as usize;
            let start = rng.below((live - len + 1) as u64) as usize;
            let count = (len * cols.len()) as u32;
            let mut index = 0u32;
            for s in start..start + len {
                for &c in &cols {
                    let id = chunk_id(s as u64, c as u64);
                    let scan_position = Some((index, count));
                    out.push(Access { id, bytes: bytes(s, c), kind: AccessKind::Scan, statement, time_us: clock.tick(), scan_position });
                    index += 1;
                }
            }
        } else {
            let s = live - 1 - recent.sample(&mut rng).min(live - 1);
            for &c in &cols {
                let id = chunk_id(s as u64, c as u64);
                out.push(Access { id, bytes: bytes(s, c), kind: AccessKind::Point, statement, time_us: clock.tick(), scan_position: None });
            }
        }
    }
    out.truncate(requests);
    out
}

/// A dashboard query repeating: every ~2.5% of the trace (jittered ±10%) one statement scans the same 2% of
/// the objects in the same order; between runs, Zipf(0.8) point reads over the other objects. A policy that
/// learns the period can keep or prefetch the dashboard's objects; recency alone sees them go cold between runs.
pub fn periodic(objects: usize, requests: usize, seed: u64) -> Vec<Access> {
    let mut rng = Rng::new(seed ^ 0xDA5B);
    let size = sizes(&mut rng, objects);
    let dashboard = (objects / 50).max(1);
    let background = Zipf::new(objects - dashboard, 0.8);
    let order = rng.permutation(objects - dashboard);
    let period = (requests / 40).max(dashboard * 2);
    let mut clock = Clock::new(seed);
    let mut out = Vec::with_capacity(requests);
    let mut next_run = period / 2;
    while out.len() < requests {
        if out.len() >= next_run {
            let statement = clock.next_statement();
            let count = dashboard as u32;
            for (i, o) in (0..dashboard).enumerate() {
                let scan_position = Some((i as u32, count));
                out.push(Access {
                    id: o as ObjectId,
                    bytes: size[o],
                    kind: AccessKind::Scan,
                    statement,
                    time_us: clock.tick(),
                    scan_position,
                });
            }
            let jitter = rng.between(0, period as u64 / 5) as usize;
            next_run = out.len() + period - period / 10 + jitter;
        } else {
            let o = dashboard + order[background.sample(&mut rng)];
            out.push(clock.point(o as ObjectId, size[o]));
        }
    }
    out.truncate(requests);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_are_deterministic_and_sized() {
        let a = standard(Scale { objects: 400, requests: 5_000 }, 7);
        let b = standard(Scale { objects: 400, requests: 5_000 }, 7);
        assert_eq!(a.len(), 6);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.name, y.name);
            assert_eq!(x.accesses, y.accesses);
            assert_eq!(x.accesses.len(), 5_000, "{}", x.name);
            assert!(x.accesses.windows(2).all(|w| w[0].time_us < w[1].time_us), "{}: time moves forward", x.name);
        }
        let c = standard(Scale { objects: 400, requests: 5_000 }, 8);
        assert_ne!(a[0].accesses, c[0].accesses, "another seed, another trace");
    }

    #[test]
    fn scans_touch_segments_in_order_with_positions() {
        let trace = scans_and_points(40, 4, 20_000, 1);
        let scans: Vec<&Access> = trace.iter().filter(|a| a.kind == AccessKind::Scan).collect();
        assert!(scans.len() > 1_000);
        for w in scans.windows(2) {
            if w[0].statement == w[1].statement {
                let (i, n) = w[0].scan_position.unwrap();
                assert_eq!(w[1].scan_position, Some((i + 1, n)));
                assert!(w[1].id >> 16 >= w[0].id >> 16, "segments in order");
            }
        }
    }

    #[test]
    fn the_dashboard_repeats() {
        let trace = periodic(1_000, 50_000, 2);
        let runs: std::collections::BTreeSet<u64> = trace.iter().filter(|a| a.kind == AccessKind::Scan).map(|a| a.statement).collect();
        assert!((35..=45).contains(&runs.len()), "{} dashboard runs", runs.len());
        let first: Vec<ObjectId> = trace.iter().filter(|a| a.kind == AccessKind::Scan).take(20).map(|a| a.id).collect();
        assert_eq!(first, (0..20).collect::<Vec<_>>());
    }
}
