//! Per-object access history and the features the model reads from it (LRB's deltas and EDCs, plus size,
//! kind and scan position).
//!
//! Time here is *virtual*: the number of accesses seen so far, so that features do not depend on how fast the
//! store runs. Wall time (µs) is kept only for prefetch timing.

use rustc_hash::FxHashMap;

use crate::{Access, AccessKind, ObjectId};

/// Number of features, the bias included.
pub(crate) const FEATURES: usize = 13;
/// Gaps between past accesses kept per object (LRB keeps up to 32; a few carry most of the signal).
const GAPS: usize = 3;
/// Half-lives of the exponentially decayed counters, in accesses.
const HALF_LIVES: [f64; 3] = [512.0, 8_192.0, 131_072.0];
/// "Not resident" in [`Meta::slot`].
pub(crate) const NOT_RESIDENT: u32 = u32::MAX;

/// What is remembered of one object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    /// Virtual time of the last access.
    pub(crate) last: u64,
    /// Wall time of the last access, µs.
    pub(crate) last_us: u64,
    /// Gaps between the last accesses, newest first; 0 = unknown.
    gaps: [u64; GAPS],
    /// Accesses seen (saturating).
    pub(crate) count: u32,
    /// Decayed counters as of `last`.
    edc: [f32; HALF_LIVES.len()],
    pub(crate) bytes: u64,
    last_was_scan: bool,
    /// Share of its scan left after the last access (0 outside scans).
    scan_left: f32,
    /// Index in the resident vector, or [`NOT_RESIDENT`].
    pub(crate) slot: u32,
    /// The training sample waiting for this object's next access, by sequence number.
    pub(crate) open_sample: Option<u64>,
    /// Smoothed wall-time gap between accesses, µs (0 until two accesses), and its smoothed absolute deviation.
    pub(crate) period_us: f64,
    pub(crate) period_dev_us: f64,
}

/// The history of every object seen recently.
#[derive(Debug, Clone, Default)]
pub(crate) struct History {
    pub(crate) map: FxHashMap<ObjectId, Meta>,
}

impl History {
    /// Records `access` at virtual time `now`; returns the object's metadata and its previous last access time
    /// (None if it is new).
    pub(crate) fn record(&mut self, access: &Access, now: u64) -> (&mut Meta, Option<u64>) {
        let mut prev = None;
        let meta = self
            .map
            .entry(access.id)
            .and_modify(|m| {
                prev = Some(m.last);
                let gap = now.saturating_sub(m.last).max(1);
                m.gaps.rotate_right(1);
                m.gaps[0] = gap;
                for (c, h) in m.edc.iter_mut().zip(HALF_LIVES) {
                    *c = 1.0 + *c * (-(gap as f64) / h).exp2() as f32;
                }
                let gap_us = access.time_us.saturating_sub(m.last_us) as f64;
                if m.period_us == 0.0 {
                    m.period_us = gap_us;
                } else {
                    m.period_dev_us = 0.75 * m.period_dev_us + 0.25 * (gap_us - m.period_us).abs();
                    m.period_us = 0.75 * m.period_us + 0.25 * gap_us;
                }
                m.count = m.count.saturating_add(1);
            })
            .or_insert(Meta {
                last: now,
                last_us: access.time_us,
                gaps: [0; GAPS],
                count: 1,
                edc: [1.0; HALF_LIVES.len()],
                bytes: access.bytes,
                last_was_scan: false,
                scan_left: 0.0,
                slot: NOT_RESIDENT,
                open_sample: None,
                period_us: 0.0,
                period_dev_us: 0.0,
            });
        meta.last = now;
        meta.last_us = access.time_us;
        meta.last_was_scan = access.kind == AccessKind::Scan;
        meta.scan_left = match access.scan_position {
            Some((i, n)) if n > 0 => 1.0 - (i as f32 + 1.0) / n as f32,
            _ => 0.0,
        };
        if meta.bytes == 0 {
            meta.bytes = access.bytes;
        }
        (meta, prev)
    }

    /// Forgets objects not accessed since `before` that are not resident and wait for no label: bounds the
    /// history to what the window can still use.
    pub(crate) fn forget_older_than(&mut self, before: u64) {
        self.map.retain(|_, m| m.last >= before || m.slot != NOT_RESIDENT || m.open_sample.is_some());
    }
}

/// The features of `m` at virtual time `now`; `horizon` is the label window (a missing gap reads as twice it,
/// like a censored label).
pub(crate) fn features(m: &Meta, now: u64, horizon: u64) -> [f32; FEATURES] {
    let age = now.saturating_sub(m.last) as f64;
    let ln1p = |x: f64| x.ln_1p() as f32;
    let missing = ln1p(2.0 * horizon as f64);
    let mut f = [0f32; FEATURES];
    f[0] = 1.0;
    f[1] = ln1p(age);
    let mut known = 0;
    for (k, &g) in m.gaps.iter().enumerate() {
        f[2 + k] = if g == 0 { missing } else { ln1p(g as f64) };
        known += usize::from(g != 0);
    }
    f[5] = known as f32 / GAPS as f32;
    for (k, (&c, h)) in m.edc.iter().zip(HALF_LIVES).enumerate() {
        let now_value = f64::from(c) * (-age / h).exp2();
        f[6 + k] = (now_value + 1e-4).ln() as f32;
    }
    f[9] = (m.bytes.max(1) as f64).ln() as f32;
    f[10] = f32::from(u8::from(m.last_was_scan));
    f[11] = m.scan_left;
    f[12] = ln1p(f64::from(m.count));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_and_counters_follow_accesses() {
        let mut h = History::default();
        let a = Access::point(5, 1_000, 0);
        h.record(&a, 10);
        let (_, prev) = h.record(&Access::point(5, 1_000, 100), 30);
        assert_eq!(prev, Some(10));
        h.record(&Access::point(5, 1_000, 200), 70);
        let m = h.map[&5];
        assert_eq!(m.gaps, [40, 20, 0]);
        assert_eq!(m.count, 3);
        assert!((m.period_us - 100.0).abs() < 1e-9, "regular 100 µs gaps");
        let f = features(&m, 170, 1_000);
        assert!((f[1] - (101f64).ln() as f32).abs() < 1e-6, "age 100");
        assert!((f[4] - (2_001f64).ln() as f32).abs() < 1e-6, "unknown gap reads as twice the horizon");
        assert!((f[5] - 2.0 / 3.0).abs() < 1e-6);
        // Recent, frequent objects have larger decayed counts than the same object later.
        assert!(features(&m, 70, 1_000)[6] > features(&m, 5_000, 1_000)[6]);
        h.forget_older_than(100);
        assert!(h.map.is_empty());
    }
}
