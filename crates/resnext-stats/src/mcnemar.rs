//! McNemar's test of paired correctness: do two models, on the same images, err equally often
//! where they disagree?
//!
//! b counts the images model a gets right and model b wrong, c the reverse. Under the null b
//! is Binomial(b + c, 1/2).
//!
//! - b + c < 25: the exact two-sided binomial p-value, min(1, 2·P(X ≤ min(b, c))), X ~
//!   Binomial(b + c, 1/2) (statsmodels' `mcnemar(exact=True)`; 1 when b + c = 0).
//! - b + c ≥ 25: the chi-square with continuity correction, (|b − c| − 1)² / (b + c) on one
//!   degree of freedom, as R's `mcnemar.test` and statsmodels' `mcnemar(exact=False)`. As
//!   there, b = c gives a statistic of 1/(b + c), not 0.

use crate::error::StatsError;
use crate::input::check_len;
use crate::normal::erfc;
use serde::{Deserialize, Serialize};

/// Below this many discordant images the p-value is exact.
pub const EXACT_BELOW: u64 = 25;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum McNemarMethod {
    ExactBinomial,
    ChiSquareCorrected,
}

/// The result of [`mcnemar`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Images a gets right and b wrong.
    pub b: u64,
    /// Images a gets wrong and b right.
    pub c: u64,
    pub method: McNemarMethod,
    /// Two-sided.
    pub p_value: f64,
}

/// McNemar's test from whether each model is right on each image.
pub fn mcnemar(correct_a: &[bool], correct_b: &[bool]) -> Result<McNemar, StatsError> {
    if correct_a.is_empty() {
        return Err(StatsError::Empty);
    }
    check_len("model b's correctness", correct_a.len(), correct_b.len())?;
    let count = |x: bool| {
        correct_a
            .iter()
            .zip(correct_b)
            .filter(|&(&a, &b)| a == x && b != x)
            .count() as u64
    };
    let (b, c) = (count(true), count(false));
    let n = b + c;
    let (method, p_value) = if n < EXACT_BELOW {
        // P(X ≤ k) = Σᵢ C(n, i) / 2ⁿ, C(n, i) exact in f64 for n < 25
        let mut choose = 1.0;
        let mut tail = 0.0;
        for i in 0..=b.min(c) {
            tail += choose;
            choose = choose * (n - i) as f64 / (i + 1) as f64;
        }
        let p = 2.0 * tail / 2f64.powi(n as i32);
        (McNemarMethod::ExactBinomial, p.min(1.0))
    } else {
        let chi2 = ((b.abs_diff(c) as f64) - 1.0).powi(2) / n as f64;
        // the chi-square(1) tail is P(|Z| ≥ √x) = erfc(√(x/2))
        (McNemarMethod::ChiSquareCorrected, erfc((chi2 / 2.0).sqrt()))
    };
    Ok(McNemar {
        b,
        c,
        method,
        p_value,
    })
}
