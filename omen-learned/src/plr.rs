//! The optimal piecewise-linear approximation (PLA) of a monotone point set
//! under a maximum vertical error epsilon, computed in one streaming pass.
//!
//! This is the algorithm of the PGM-index (Ferragina and Vinciguerra, VLDB
//! 2020, after O'Rourke 1981): keep the convex hulls of the upper points
//! `(x, y + eps)` and lower points `(x, y - eps)` and the rectangle of the
//! extreme feasible lines; a point that leaves the feasible region closes the
//! segment. Every segment is as long as any line with error <= eps can make
//! it, so the number of segments is minimal.
//!
//! Decisions use exact integer arithmetic (`i128`: x spans up to 2^64,
//! y spans up to 2^40 here, products stay below 2^105); floats appear only
//! when a closed segment is turned into a slope and an intercept.

/// A point of the hull, in exact integers.
#[derive(Debug, Clone, Copy, Default)]
struct Point {
    x: i128,
    y: i128,
}

/// The direction `to - from`, compared exactly by cross multiplication.
/// Only directions whose `dx` have the same sign are ever compared.
#[derive(Debug, Clone, Copy)]
struct Slope {
    dx: i128,
    dy: i128,
}

impl Slope {
    fn between(from: Point, to: Point) -> Self {
        Self { dx: to.x - from.x, dy: to.y - from.y }
    }

    fn lt(self, o: Slope) -> bool {
        self.dy * o.dx < self.dx * o.dy
    }

    fn gt(self, o: Slope) -> bool {
        self.dy * o.dx > self.dx * o.dy
    }

    fn as_f64(self) -> f64 {
        self.dy as f64 / self.dx as f64
    }
}

/// `(a - o) x (b - o)`: positive when `o -> a -> b` turns counter-clockwise.
fn cross(o: Point, a: Point, b: Point) -> i128 {
    (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x)
}

/// A closed segment: the line `y = intercept + slope * (x - first_x)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Line {
    pub(crate) first_x: u64,
    pub(crate) slope: f64,
    pub(crate) intercept: f64,
}

/// The streaming model: feed points with strictly increasing `x`.
pub(crate) struct Plr {
    epsilon: i128,
    lower: Vec<Point>,
    upper: Vec<Point>,
    lower_start: usize,
    upper_start: usize,
    points: usize,
    first_x: u64,
    /// The feasible region's corners: 0/2 span the lowest-slope line,
    /// 1/3 the highest-slope line.
    rect: [Point; 4],
}

impl Plr {
    pub(crate) fn new(epsilon: usize) -> Self {
        Self {
            epsilon: epsilon as i128,
            lower: Vec::new(),
            upper: Vec::new(),
            lower_start: 0,
            upper_start: 0,
            points: 0,
            first_x: 0,
            rect: [Point::default(); 4],
        }
    }

    /// Adds a point to the open segment; false, leaving the model as it
    /// was, if no line within epsilon of all its points takes this one too.
    fn add(&mut self, x: u64, y: usize) -> bool {
        let p1 = Point { x: i128::from(x), y: y as i128 + self.epsilon };
        let p2 = Point { x: i128::from(x), y: y as i128 - self.epsilon };
        match self.points {
            0 => {
                self.first_x = x;
                self.rect[0] = p1;
                self.rect[1] = p2;
                self.upper.clear();
                self.lower.clear();
                self.upper.push(p1);
                self.lower.push(p2);
                self.upper_start = 0;
                self.lower_start = 0;
                self.points = 1;
                return true;
            }
            1 => {
                self.rect[2] = p2;
                self.rect[3] = p1;
                self.upper.push(p1);
                self.lower.push(p2);
                self.points = 2;
                return true;
            }
            _ => {}
        }
        let slope1 = Slope::between(self.rect[0], self.rect[2]);
        let slope2 = Slope::between(self.rect[1], self.rect[3]);
        if Slope::between(self.rect[2], p1).lt(slope1) || Slope::between(self.rect[3], p2).gt(slope2) {
            return false;
        }
        if Slope::between(self.rect[1], p1).lt(slope2) {
            // The highest feasible line now passes through p1: find its
            // other support on the lower hull.
            let mut min = Slope::between(p1, self.lower[self.lower_start]);
            let mut min_i = self.lower_start;
            for i in self.lower_start + 1..self.lower.len() {
                let val = Slope::between(p1, self.lower[i]);
                if val.gt(min) {
                    break;
                }
                min = val;
                min_i = i;
            }
            self.rect[1] = self.lower[min_i];
            self.rect[3] = p1;
            self.lower_start = min_i;
            let mut end = self.upper.len();
            while end >= self.upper_start + 2 && cross(self.upper[end - 2], self.upper[end - 1], p1) <= 0 {
                end -= 1;
            }
            self.upper.truncate(end);
            self.upper.push(p1);
        }
        if Slope::between(self.rect[0], p2).gt(slope1) {
            // The lowest feasible line now passes through p2.
            let mut max = Slope::between(p2, self.upper[self.upper_start]);
            let mut max_i = self.upper_start;
            for i in self.upper_start + 1..self.upper.len() {
                let val = Slope::between(p2, self.upper[i]);
                if val.lt(max) {
                    break;
                }
                max = val;
                max_i = i;
            }
            self.rect[0] = self.upper[max_i];
            self.rect[2] = p2;
            self.upper_start = max_i;
            let mut end = self.lower.len();
            while end >= self.lower_start + 2 && cross(self.lower[end - 2], self.lower[end - 1], p2) >= 0 {
                end -= 1;
            }
            self.lower.truncate(end);
            self.lower.push(p2);
        }
        self.points += 1;
        true
    }

    /// The open segment's line: the mean of the extreme feasible slopes,
    /// through the intersection of the two extreme lines, so predictions sit
    /// in the middle of the feasible band.
    fn line(&self) -> Line {
        let first_x = self.first_x;
        if self.points == 1 {
            let y = (self.rect[0].y + self.rect[1].y) as f64 / 2.0;
            return Line { first_x, slope: 0.0, intercept: y };
        }
        let [p0, p1, p2, p3] = self.rect;
        let (s1, s2) = (Slope::between(p0, p2), Slope::between(p1, p3));
        let slope = (s1.as_f64() + s2.as_f64()) / 2.0;
        let origin = i128::from(first_x);
        let a = s1.dx * s2.dy - s1.dy * s2.dx;
        let (ix, iy) = if a == 0 {
            // Parallel extremes: take the middle of the two lines at p0.x
            // (line 2 at p0.x is p1.y - s2 * (p1.x - p0.x)).
            ((p0.x - origin) as f64, (p0.y + p1.y) as f64 / 2.0 - s2.as_f64() * (p1.x - p0.x) as f64 / 2.0)
        } else {
            let b = (p1.x - p0.x) * s2.dy - (p1.y - p0.y) * s2.dx;
            let t = b as f64 / a as f64;
            ((p0.x - origin) as f64 + t * s1.dx as f64, p0.y as f64 + t * s1.dy as f64)
        };
        Line { first_x, slope, intercept: iy - ix * slope }
    }
}

/// Segments the points (strictly increasing `x`) into the minimal number of
/// lines, each predicting every one of its points within `epsilon`.
pub(crate) fn segment_points(points: impl Iterator<Item = (u64, usize)>, epsilon: usize) -> Vec<Line> {
    let mut model = Plr::new(epsilon);
    let mut out = Vec::new();
    for (x, y) in points {
        if !model.add(x, y) {
            out.push(model.line());
            model.points = 0;
            let fits = model.add(x, y);
            debug_assert!(fits, "a fresh segment takes any point");
        }
    }
    if model.points > 0 {
        out.push(model.line());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_error(points: &[(u64, usize)], lines: &[Line]) -> f64 {
        let mut worst = 0.0f64;
        for &(x, y) in points {
            let i = lines.partition_point(|l| l.first_x <= x) - 1;
            let l = lines[i];
            let pred = l.intercept + l.slope * (x - l.first_x) as f64;
            worst = worst.max((pred - y as f64).abs());
        }
        worst
    }

    #[test]
    fn a_line_is_one_segment() {
        let pts: Vec<(u64, usize)> = (0..10_000).map(|i| (i * 3 + 7, i as usize)).collect();
        let lines = segment_points(pts.iter().copied(), 1);
        assert_eq!(lines.len(), 1);
        assert!(max_error(&pts, &lines) < 1e-6);
    }

    #[test]
    fn error_stays_within_epsilon_on_random_gaps() {
        let mut x = 0u64;
        let mut state = 7u64;
        let pts: Vec<(u64, usize)> = (0..200_000)
            .map(|i| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                x += 1 + (state >> 58);
                (x, i)
            })
            .collect();
        for eps in [1, 4, 16, 64] {
            let lines = segment_points(pts.iter().copied(), eps);
            let err = max_error(&pts, &lines);
            assert!(err <= eps as f64 + 1e-6, "eps {eps}: max error {err} over {} segments", lines.len());
        }
    }

    proptest::proptest! {
        /// Every point lies within epsilon of its segment's line, for random
        /// gaps (including runs where the extreme lines come out parallel).
        #[test]
        fn every_point_within_epsilon(gaps in proptest::collection::vec(1u64..100, 1..3000), eps in 1usize..20) {
            let mut x = 0u64;
            let pts: Vec<(u64, usize)> = gaps.iter().enumerate().map(|(i, g)| { x += g; (x, i) }).collect();
            let lines = segment_points(pts.iter().copied(), eps);
            let err = max_error(&pts, &lines);
            proptest::prop_assert!(err <= eps as f64 + 1e-6, "max error {} > {}", err, eps);
        }
    }

    #[test]
    fn extreme_coordinates() {
        let pts = [(0u64, 0usize), (1, 1), (u64::MAX / 2, 2), (u64::MAX - 1, 3), (u64::MAX, 4)];
        let lines = segment_points(pts.iter().copied(), 1);
        assert!(max_error(&pts, &lines) <= 1.0 + 1e-6);
    }
}
