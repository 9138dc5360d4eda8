//! Calibration intercept and slope (Cox 1958; Van Calster et al. 2019, "Calibration: the
//! Achilles heel of predictive analytics"), of one class against the rest.
//!
//! With x = logit(p), p the predicted probability of the class clamped to [1e-12, 1 − 1e-12],
//! and y = 1 for images of the class:
//!
//! - the **slope** is b of the logistic regression logit P(y = 1) = a + b·x, a and b fitted
//!   jointly by maximum likelihood (Newton–Raphson, which for this model is IRLS). 1 is ideal;
//!   below 1 the predictions are too extreme (overconfident), above 1 too moderate.
//! - the **intercept** (calibration-in-the-large) is a of logit P(y = 1) = a + x, the slope
//!   fixed at 1 (x as an offset). 0 is ideal; above 0 the probabilities are too low on average.
//!
//! Each comes with its standard error from the inverse of the observed information at the
//! maximum. Predictions that separate the outcome (the slope's maximum is at infinity) and a
//! fit that does not converge are errors, not numbers.

use crate::error::StatsError;
use crate::input::{check, check_both, check_positive};
use serde::{Deserialize, Serialize};

/// How far from 0 and 1 a probability is clamped before its logit is taken.
pub const P_CLAMP: f64 = 1e-12;
const MAX_ITERATIONS: usize = 100;
/// The fit has converged when no parameter moves by more than this in one step.
const STEP_TOLERANCE: f64 = 1e-10;
/// Newton steps longer than this (in a or b) are checked to raise the log-likelihood.
const LINE_SEARCH_ABOVE: f64 = 0.5;

/// Calibration of one class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Calibration-in-the-large: the intercept with the slope fixed at 1.
    pub intercept: f64,
    pub intercept_se: f64,
    pub slope: f64,
    pub slope_se: f64,
}

/// One class's logits and outcomes, computed once for many fits.
pub(crate) struct Outcome {
    class: usize,
    logit: Vec<f64>,
    y: Vec<bool>,
}

impl Outcome {
    /// Inputs already checked.
    pub(crate) fn new(probs: &[Vec<f64>], labels: &[usize], class: usize) -> Outcome {
        let logit = probs
            .iter()
            .map(|p| {
                let p = p[class].clamp(P_CLAMP, 1.0 - P_CLAMP);
                (p / (1.0 - p)).ln()
            })
            .collect();
        let y = labels.iter().map(|&l| l == class).collect();
        Outcome { class, logit, y }
    }

    /// Calibration-in-the-large and its standard error, image `i` counted `w[i]` times; the
    /// fit starts from `start` (0 when unknown).
    ///
    /// The score Σ w (y − σ(a + x)) falls strictly with a, so its one root is bracketed first and
    /// then found by Newton's steps kept inside the bracket, bisecting where a step would leave
    /// it: confident predictions (logits near the clamp, where the information is almost 0) send
    /// plain Newton steps far past the root.
    pub(crate) fn intercept(&self, w: &[u32], start: f64) -> Result<(f64, f64), StatsError> {
        self.check_counts(w)?;
        let diverged = StatsError::NoConvergence {
            class: self.class,
            iterations: MAX_ITERATIONS,
        };
        let score = |a: f64| {
            let (_, g, h) = self.evaluate(w, a, 1.0, false);
            (g[0], h[0])
        };
        let start = if start.is_finite() { start } else { 0.0 };
        // widen by 1, 2, 4, … until the score changes sign: the root lies within the logits'
        // range plus log of the counts, so a few dozen doublings always reach it
        // (down: while the score is not yet positive; up: while it is not yet negative)
        let widen = |direction: f64| {
            let (mut bound, mut width) = (start, 1.0);
            while direction * score(bound).0 >= 0.0 {
                bound += direction * width;
                width *= 2.0;
                if width > 1e12 {
                    return None;
                }
            }
            Some(bound)
        };
        let (Some(mut lo), Some(mut hi)) = (widen(-1.0), widen(1.0)) else {
            return Err(diverged);
        };
        let mut a = start.clamp(lo, hi);
        for _ in 0..MAX_ITERATIONS {
            let (g, h) = score(a);
            if g > 0.0 {
                lo = a;
            } else {
                hi = a;
            }
            let newton = a + g / h;
            let next = if newton > lo && newton < hi {
                newton
            } else {
                0.5 * (lo + hi)
            };
            if (next - a).abs() < STEP_TOLERANCE || hi - lo < STEP_TOLERANCE {
                let h = score(next).1;
                let var = 1.0 / h;
                if !(var.is_finite() && var > 0.0) {
                    return Err(diverged);
                }
                return Ok((next, var.sqrt()));
            }
            a = next;
        }
        Err(diverged)
    }

    /// The joint fit (a, b), b the calibration slope, and the standard error of b, image `i`
    /// counted `w[i]` times; the fit starts from `start` ((0, 1) when unknown).
    pub(crate) fn slope(
        &self,
        w: &[u32],
        start: (f64, f64),
    ) -> Result<((f64, f64), f64), StatsError> {
        let mut seen = self.logit.iter().zip(w).filter(|(_, &w)| w > 0);
        let first = seen.next().map(|(&x, _)| x);
        self.check_counts(w)?;
        if seen.all(|(&x, _)| Some(x) == first) {
            return Err(StatsError::ConstantPredictions(self.class));
        }
        if self.separated(w) {
            return Err(StatsError::Separated(self.class));
        }
        let (a, b, se_b) = self.fit(w, start)?;
        Ok(((a, b), se_b))
    }

    /// Both outcomes must be among the counted images.
    fn check_counts(&self, w: &[u32]) -> Result<(), StatsError> {
        let (mut positives, mut negatives) = (0u64, 0u64);
        for (&y, &w) in self.y.iter().zip(w) {
            *(if y { &mut positives } else { &mut negatives }) += u64::from(w);
        }
        if positives == 0 {
            return Err(StatsError::NoPositives(self.class));
        }
        if negatives == 0 {
            return Err(StatsError::NoNegatives(self.class));
        }
        Ok(())
    }

    /// Whether the counted images' logits separate the class from the rest, completely or
    /// quasi-completely (ties on the boundary): then the slope's likelihood rises without bound
    /// and no Newton step can converge (Albert and Anderson 1984). In one dimension a finite
    /// maximum exists exactly when each outcome reaches strictly past the other's extreme.
    fn separated(&self, w: &[u32]) -> bool {
        let (mut pos, mut neg) = (
            (f64::INFINITY, f64::NEG_INFINITY),
            (f64::INFINITY, f64::NEG_INFINITY),
        );
        for ((&x, &y), _) in self
            .logit
            .iter()
            .zip(&self.y)
            .zip(w)
            .filter(|(_, &w)| w > 0)
        {
            let range = if y { &mut pos } else { &mut neg };
            *range = (range.0.min(x), range.1.max(x));
        }
        !(neg.1 > pos.0 && pos.1 > neg.0)
    }

    /// At (a, b), in one pass: the log-likelihood (when `with_ll`, else 0), its gradient and
    /// the observed information [h_aa, h_ab, h_bb] (minus its Hessian).
    fn evaluate(&self, w: &[u32], a: f64, b: f64, with_ll: bool) -> (f64, [f64; 2], [f64; 3]) {
        let (mut ll, mut g, mut h) = (0.0, [0.0; 2], [0.0; 3]);
        let terms = self.logit.iter().zip(&self.y).zip(w);
        for ((&x, &y), &w) in terms.filter(|(_, &w)| w > 0) {
            let w = f64::from(w);
            let eta = a + b * x;
            // σ(η) and log σ(η) when y, log(1 − σ(η)) otherwise, without overflow
            let e = (-eta.abs()).exp();
            let p = if eta >= 0.0 { 1.0 } else { e } / (1.0 + e);
            let y = f64::from(u8::from(y));
            if with_ll {
                ll += w * (y * eta - eta.max(0.0) - e.ln_1p());
            }
            let (r, v) = (w * (y - p), w * p * (1.0 - p));
            g[0] += r;
            g[1] += r * x;
            h[0] += v;
            h[1] += v * x;
            h[2] += v * x * x;
        }
        (ll, g, h)
    }

    /// The joint (a, b) by Newton–Raphson from `start`, halving a step longer than
    /// [`LINE_SEARCH_ABOVE`] until the log-likelihood does not fall. (Shorter steps go
    /// unchecked: any point where Newton's steps vanish is the one maximum, and steps that do
    /// not vanish end in [`StatsError::NoConvergence`], as does a long step that finds no point
    /// at least as likely.) Returns (a, b, se(b)). The counts are checked and the predictions
    /// neither constant nor separated, so the maximum exists.
    fn fit(&self, w: &[u32], start: (f64, f64)) -> Result<(f64, f64, f64), StatsError> {
        let diverged = StatsError::NoConvergence {
            class: self.class,
            iterations: MAX_ITERATIONS,
        };
        let (mut a, mut b) = start;
        let (_, mut g, mut h) = self.evaluate(w, a, b, false);
        for _ in 0..MAX_ITERATIONS {
            let det = h[0] * h[2] - h[1] * h[1];
            let (da, db) = (
                (h[2] * g[0] - h[1] * g[1]) / det,
                (h[0] * g[1] - h[1] * g[0]) / det,
            );
            if !(da.is_finite() && db.is_finite()) {
                return Err(diverged);
            }
            if da.abs().max(db.abs()) < STEP_TOLERANCE {
                // converged: the information here is that at the maximum to within the step
                let var_b = h[0] / det;
                if !(var_b.is_finite() && var_b > 0.0) {
                    return Err(diverged);
                }
                return Ok((a + da, b + db, var_b.sqrt()));
            }
            let mut t = 1.0;
            if da.abs().max(db.abs()) > LINE_SEARCH_ABOVE {
                let ll = self.evaluate(w, a, b, true).0;
                while self.evaluate(w, a + t * da, b + t * db, true).0 < ll {
                    t /= 2.0;
                    if t < 1e-9 {
                        return Err(diverged);
                    }
                }
            }
            (a, b) = (a + t * da, b + t * db);
            (_, g, h) = self.evaluate(w, a, b, false);
        }
        Err(diverged)
    }
}

/// The calibration intercept and slope of class `positive` against the rest (binary: the
/// positive class; multi-class: one-vs-rest on that class's probability).
pub fn calibration(
    probs: &[Vec<f64>],
    labels: &[usize],
    positive: usize,
) -> Result<Calibration, StatsError> {
    let classes = check(probs, labels)?;
    check_positive(positive, classes)?;
    check_both(labels, positive)?;
    let outcome = Outcome::new(probs, labels, positive);
    let w = vec![1; probs.len()];
    let (intercept, intercept_se) = outcome.intercept(&w, 0.0)?;
    let ((_, slope), slope_se) = outcome.slope(&w, (0.0, 1.0))?;
    Ok(Calibration {
        intercept,
        intercept_se,
        slope,
        slope_se,
    })
}

#[cfg(test)]
mod tests {
    use super::{Outcome, P_CLAMP};

    #[test]
    fn the_intercept_of_predictions_at_the_clamp_is_found() {
        // every probability 1: logits all at the clamp, where Newton's first step from 0 is
        // about −5e11; the maximum is where σ(x + a) = 1/2
        let probs = vec![vec![0.0, 1.0]; 4];
        let outcome = Outcome::new(&probs, &[0, 0, 1, 1], 1);
        let (a, se) = outcome.intercept(&[1; 4], 0.0).unwrap();
        let p = 1.0 - P_CLAMP; // as Outcome::new computes it
        let x = (p / (1.0 - p)).ln();
        assert!((a + x).abs() < 1e-8, "{a} against {}", -x);
        // the information at the maximum is 4 · 1/4
        assert!((se - 1.0).abs() < 1e-8, "{se}");
        // and from a start on the other side, or not finite
        for start in [-100.0, 100.0, f64::NAN] {
            let (b, _) = outcome.intercept(&[1; 4], start).unwrap();
            assert!((a - b).abs() < 1e-8, "from {start}: {b}");
        }
        // a counted resample with one outcome only is named as such
        assert!(matches!(
            outcome.intercept(&[1, 1, 0, 0], 0.0),
            Err(crate::StatsError::NoPositives(1))
        ));
        assert!(matches!(
            outcome.slope(&[0, 0, 1, 1], (0.0, 1.0)),
            Err(crate::StatsError::NoNegatives(1))
        ));
    }
}
