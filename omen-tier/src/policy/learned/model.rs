//! The model: ridge regression of log time-to-next-access on the history features, refit periodically on a
//! sliding window of labelled samples.
//!
//! Why linear: under a stationary popularity the log distance to the next access is close to linear in the log
//! gaps and log decayed counts (both estimate log 1/rate), and recency shifts it; a linear model in log space
//! captures that at 13 multiply-adds per prediction, so sampling 64 eviction candidates stays cheap. The refit
//! solves the 13×13 normal equations exactly (no learning rate to tune), on standardized features.

use std::collections::VecDeque;
use std::time::Instant;

use super::history::FEATURES;

/// Labelled samples kept for fitting.
const WINDOW: usize = 32_768;
/// Samples between refits.
const REFIT_EVERY: usize = 8_192;
/// Samples needed before the first fit.
const MIN_SAMPLES: usize = 1_024;
/// Ridge penalty on standardized features (not on the bias).
const LAMBDA: f64 = 1.0;

/// A linear predictor and the samples it is fitted on.
#[derive(Debug, Clone)]
pub(crate) struct Model {
    weights: Option<[f32; FEATURES]>,
    window: VecDeque<([f32; FEATURES], f32)>,
    since_fit: usize,
    pub(crate) fits: u64,
    pub(crate) fit_nanos: u128,
}

impl Model {
    pub(crate) fn new() -> Self {
        Self { weights: None, window: VecDeque::with_capacity(WINDOW), since_fit: 0, fits: 0, fit_nanos: 0 }
    }

    /// Labelled samples in the window.
    pub(crate) fn samples(&self) -> usize {
        self.window.len()
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.weights.is_some()
    }

    /// Adds a labelled sample (label: ln(1 + accesses until the next access)); refits when due.
    pub(crate) fn add(&mut self, x: [f32; FEATURES], y: f32) {
        if self.window.len() == WINDOW {
            self.window.pop_front();
        }
        self.window.push_back((x, y));
        self.since_fit += 1;
        let due = if self.weights.is_none() { MIN_SAMPLES } else { REFIT_EVERY };
        if self.since_fit >= due && self.window.len() >= MIN_SAMPLES {
            self.fit();
        }
    }

    /// The predicted label, once fitted.
    pub(crate) fn predict(&self, x: &[f32; FEATURES]) -> Option<f32> {
        self.weights.map(|w| w.iter().zip(x).map(|(a, b)| a * b).sum())
    }

    #[expect(clippy::needless_range_loop, reason = "dense matrix code reads clearer with row and column indexes")]
    fn fit(&mut self) {
        let started = Instant::now();
        self.since_fit = 0;
        let n = self.window.len() as f64;
        // Standardize features 1.. (0 is the bias) so one penalty fits all scales.
        let mut mean = [0f64; FEATURES];
        let mut var = [0f64; FEATURES];
        for (x, _) in &self.window {
            for j in 1..FEATURES {
                mean[j] += f64::from(x[j]);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        for (x, _) in &self.window {
            for j in 1..FEATURES {
                var[j] += (f64::from(x[j]) - mean[j]).powi(2);
            }
        }
        let scale: Vec<f64> = (0..FEATURES).map(|j| if j == 0 { 1.0 } else { (var[j] / n).sqrt().max(1e-6) }).collect();
        let mut a = [[0f64; FEATURES]; FEATURES];
        let mut b = [0f64; FEATURES];
        let mut z = [0f64; FEATURES];
        for (x, y) in &self.window {
            z[0] = 1.0;
            for j in 1..FEATURES {
                z[j] = (f64::from(x[j]) - mean[j]) / scale[j];
            }
            for i in 0..FEATURES {
                b[i] += z[i] * f64::from(*y);
                for j in i..FEATURES {
                    a[i][j] += z[i] * z[j];
                }
            }
        }
        for i in 0..FEATURES {
            for j in 0..i {
                a[i][j] = a[j][i];
            }
            if i > 0 {
                a[i][i] += LAMBDA;
            }
        }
        if let Some(w) = solve(a, b) {
            // Back to raw features: w_raw_j = w_j / scale_j, bias absorbs the means.
            let mut raw = [0f32; FEATURES];
            let mut bias = w[0];
            for j in 1..FEATURES {
                raw[j] = (w[j] / scale[j]) as f32;
                bias -= w[j] * mean[j] / scale[j];
            }
            raw[0] = bias as f32;
            self.weights = Some(raw);
        }
        self.fits += 1;
        self.fit_nanos += started.elapsed().as_nanos();
    }
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting; None if singular.
#[expect(clippy::needless_range_loop, reason = "dense matrix code reads clearer with row and column indexes")]
fn solve(mut a: [[f64; FEATURES]; FEATURES], mut b: [f64; FEATURES]) -> Option<[f64; FEATURES]> {
    for col in 0..FEATURES {
        let pivot = (col..FEATURES).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..FEATURES {
            let f = a[row][col] / a[col][col];
            for k in col..FEATURES {
                a[row][k] -= f * a[col][k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0f64; FEATURES];
    for row in (0..FEATURES).rev() {
        let s: f64 = (row + 1..FEATURES).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn recovers_a_linear_relation() {
        let mut m = Model::new();
        let mut rng = Rng::new(5);
        assert!(m.predict(&[0.0; FEATURES]).is_none());
        for _ in 0..4 * MIN_SAMPLES {
            let mut x = [0f32; FEATURES];
            x[0] = 1.0;
            for v in x.iter_mut().skip(1) {
                *v = (rng.unit() * 10.0) as f32;
            }
            // y = 2 + 0.5 x1 - 1.5 x9, other features irrelevant.
            let y = 2.0 + 0.5 * x[1] - 1.5 * x[9];
            m.add(x, y);
        }
        assert!(m.is_ready());
        let mut probe = [0f32; FEATURES];
        probe[0] = 1.0;
        probe[1] = 4.0;
        probe[9] = 2.0;
        let p = m.predict(&probe).unwrap();
        assert!((p - (2.0 + 2.0 - 3.0)).abs() < 0.05, "predicted {p}");
        assert_eq!(m.fits, 1);
    }
}
