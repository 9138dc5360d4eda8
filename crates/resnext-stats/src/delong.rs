//! DeLong's test of two correlated ROC-AUCs on the same images (DeLong, DeLong &
//! Clarke-Pearson 1988), computed with the midrank algorithm of Sun & Xu (2014) in
//! O(n log n).
//!
//! For m positives and n negatives, each model's structural components are V10ᵢ (the share
//! of negatives a positive outscores, ties 1/2) and V01ⱼ (the share of positives outscoring a
//! negative). Var(AUC_a − AUC_b) = Var(V10_a − V10_b)/m + Var(V01_a − V01_b)/n, sample
//! variances with denominators m − 1 and n − 1, as in the paper and in R's pROC. z is the
//! difference over its standard error, the p-value two-sided from the normal distribution.

use crate::error::StatsError;
use crate::input::{check, check_len, check_positive};
use crate::normal::two_sided_p;
use serde::{Deserialize, Serialize};

/// The result of [`delong`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeLong {
    pub auc_a: f64,
    pub auc_b: f64,
    /// AUC_a − AUC_b.
    pub difference: f64,
    /// Its standard error.
    pub se: f64,
    pub z: f64,
    /// Two-sided.
    pub p_value: f64,
}

/// 1-based ranks of `v`, tied values getting the mean of their ranks.
fn midranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        for &k in &order[i..=j] {
            ranks[k] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    ranks
}

/// One model's AUC and structural components V10 (per positive) and V01 (per negative).
fn components(pos: &[f64], neg: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
    let (m, n) = (pos.len() as f64, neg.len() as f64);
    let tz = midranks(&[pos, neg].concat());
    let (tx, ty) = (midranks(pos), midranks(neg));
    let auc = (tz[..pos.len()].iter().sum::<f64>() - m * (m + 1.0) / 2.0) / (m * n);
    let v10 = tx.iter().zip(&tz).map(|(x, z)| (z - x) / n).collect();
    let v01 = ty
        .iter()
        .zip(&tz[pos.len()..])
        .map(|(y, z)| 1.0 - (z - y) / m)
        .collect();
    (auc, v10, v01)
}

/// The sample variance of `a − b` (denominator len − 1).
fn var_of_difference(a: &[f64], b: &[f64]) -> f64 {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (d.len() - 1) as f64
}

/// DeLong's test of ROC-AUC(a) = ROC-AUC(b) for class `positive` against the rest, two
/// models' predictions of the same images.
pub fn delong(
    probs_a: &[Vec<f64>],
    probs_b: &[Vec<f64>],
    labels: &[usize],
    positive: usize,
) -> Result<DeLong, StatsError> {
    let classes = check(probs_a, labels)?;
    check_len("model b's predictions", probs_a.len(), probs_b.len())?;
    let classes_b = check(probs_b, labels)?;
    if classes_b != classes {
        return Err(StatsError::Invalid(format!(
            "model a predicts {classes} classes, model b {classes_b}"
        )));
    }
    check_positive(positive, classes)?;
    let positives = labels.iter().filter(|&&l| l == positive).count();
    let negatives = labels.len() - positives;
    if positives < 2 || negatives < 2 {
        return Err(StatsError::TooFewForDeLong {
            positives,
            negatives,
        });
    }
    let split = |probs: &[Vec<f64>]| {
        let scores = |of_class: bool| -> Vec<f64> {
            probs
                .iter()
                .zip(labels)
                .filter(|&(_, &l)| (l == positive) == of_class)
                .map(|(p, _)| p[positive])
                .collect()
        };
        components(&scores(true), &scores(false))
    };
    let (auc_a, v10_a, v01_a) = split(probs_a);
    let (auc_b, v10_b, v01_b) = split(probs_b);
    let var = var_of_difference(&v10_a, &v10_b) / positives as f64
        + var_of_difference(&v01_a, &v01_b) / negatives as f64;
    if !(var > 0.0) {
        return Err(StatsError::ZeroVariance);
    }
    let difference = auc_a - auc_b;
    let se = var.sqrt();
    let z = difference / se;
    Ok(DeLong {
        auc_a,
        auc_b,
        difference,
        se,
        z,
        p_value: two_sided_p(z),
    })
}
