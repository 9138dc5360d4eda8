//! Helpers of the integration tests: binary probability rows from scores, and a small random
//! generator of their own (independent of the crate's) for simulated data.
#![allow(dead_code)]

/// Rows [1 − s, s]: class 1's probability is the score.
pub fn binary(scores: &[f64]) -> Vec<Vec<f64>> {
    scores.iter().map(|&s| vec![1.0 - s, s]).collect()
}

/// A 64-bit LCG (Knuth's MMIX constants), top 53 bits as a uniform in [0, 1).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal by Box–Muller.
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.uniform();
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

pub fn close(got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol,
        "got {got}, expected {want} (tolerance {tol})"
    );
}
