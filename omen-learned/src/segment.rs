//! One linear piece of the key -> position model.

/// Keys from `first_key` up to the next segment's first key are predicted at
/// `intercept + slope * (key - first_key)`. The slope is relative to the
/// segment's own first key and the intercept is an exact integer, so
/// predictions stay precise for keys anywhere in the u64 range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Segment {
    pub(crate) first_key: u64,
    pub(crate) slope: f64,
    pub(crate) intercept: u64,
}

impl Segment {
    /// The predicted position of `key` (at least the intercept).
    pub(crate) fn predict(&self, key: u64) -> usize {
        let dx = key.saturating_sub(self.first_key) as f64;
        let offset = (self.slope * dx).round();
        // Saturating float-to-int conversion: a huge offset clamps, it never wraps.
        (self.intercept as usize).saturating_add(offset as usize)
    }
}

/// Builds segments over points `(x, y)`, `x` strictly increasing, so that
/// every point is predicted within `epsilon` of its `y` (the shrinking-cone
/// algorithm: one pass, O(1) per point).
pub(crate) fn segment(points: impl Iterator<Item = (u64, usize)>, epsilon: usize) -> Vec<Segment> {
    let eps = epsilon as f64;
    let mut out = Vec::new();
    // The open segment: its origin and the cone of slopes that keep every
    // point seen so far within epsilon.
    let mut open: Option<(u64, usize, f64, f64)> = None;
    for (x, y) in points {
        match &mut open {
            Some((x0, y0, lo, hi)) => {
                let dx = (x - *x0) as f64;
                let dy = y as f64 - *y0 as f64;
                let (plo, phi) = ((dy - eps) / dx, (dy + eps) / dx);
                let (nlo, nhi) = (lo.max(plo), hi.min(phi));
                if nlo <= nhi {
                    *lo = nlo;
                    *hi = nhi;
                } else {
                    out.push(close(*x0, *y0, *lo, *hi));
                    open = Some((x, y, 0.0, f64::INFINITY));
                }
            }
            None => open = Some((x, y, 0.0, f64::INFINITY)),
        }
    }
    if let Some((x0, y0, lo, hi)) = open {
        out.push(close(x0, y0, lo, hi));
    }
    out
}

fn close(x0: u64, y0: usize, lo: f64, hi: f64) -> Segment {
    let slope = if hi.is_finite() { (lo + hi) / 2.0 } else { lo };
    Segment { first_key: x0, slope, intercept: y0 as u64 }
}
