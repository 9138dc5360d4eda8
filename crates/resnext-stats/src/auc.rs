//! Areas under the curves of one class against the rest: ROC-AUC, PR-AUC (average precision)
//! and the partial ROC-AUC above a minimum sensitivity of ISIC 2024.
//!
//! All three come from the ROC curve's vertices: one per distinct score, from the highest, with
//! the cumulative (false positive, true positive) counts of the images scoring at least that.
//! Tied scores give one vertex, so a tie is a diagonal segment of the curve.
//!
//! - **ROC-AUC**: the trapezoidal area under that curve, which is the Mann–Whitney statistic
//!   P(score of a positive > score of a negative) with ties counted as 1/2. Range [0, 1].
//! - **PR-AUC**: the average precision of scikit-learn's `average_precision_score`,
//!   Σₖ (Rₖ − Rₖ₋₁) Pₖ over the vertices (recall R, precision P; no interpolation). Range
//!   (0, 1].
//! - **pAUC above a minimum sensitivity** ([`pauc_min_tpr`]): the area of the region under the
//!   ROC curve (segments as drawn above) and above the horizontal line TPR = `min_tpr`, that is
//!   ∫₀¹ max(TPR(FPR) − min_tpr, 0) dFPR. This is exactly the ISIC 2024 challenge metric, which
//!   flips the labels and negates the scores, then takes scikit-learn's `roc_curve` and the
//!   trapezoidal area up to FPR' = 1 − `min_tpr` with linear interpolation at the end, *not*
//!   standardised (McClish). Range [0, 1 − `min_tpr`]: 0.2 at most for ISIC's `min_tpr` = 0.8,
//!   a ranking no better than chance gets (1 − `min_tpr`)² / 2 (0.02), and `min_tpr` = 0 gives
//!   the ROC-AUC.

use crate::error::StatsError;
use crate::input::{check, check_both, check_positive};

/// One class's scores sorted once, so that a resample (image weights) is scored in O(n).
pub(crate) struct Ranked {
    /// Image indices by descending score.
    order: Vec<usize>,
    /// In that order: whether the image is of the class, and whether it is the last of its
    /// tie (the next scores lower).
    positive: Vec<bool>,
    last_of_tie: Vec<bool>,
}

impl Ranked {
    /// The scores `probs[i][class]` of class `class` against the rest (inputs already checked).
    pub(crate) fn new(probs: &[Vec<f64>], labels: &[usize], class: usize) -> Ranked {
        let score = |i: usize| probs[i][class];
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
        let positive = order.iter().map(|&i| labels[i] == class).collect();
        let last_of_tie = (0..order.len())
            .map(|k| {
                order
                    .get(k + 1)
                    .is_none_or(|&j| score(j) != score(order[k]))
            })
            .collect();
        Ranked {
            order,
            positive,
            last_of_tie,
        }
    }

    /// The ROC curve's vertices as weighted (false positive, true positive) counts, from (0, 0)
    /// to (N, P). Image `i` counts `w[i]` times.
    pub(crate) fn vertices(&self, w: &[u32]) -> Vec<(u64, u64)> {
        let mut v = Vec::with_capacity(self.order.len() + 1);
        v.push((0, 0));
        let (mut fp, mut tp) = (0u64, 0u64);
        for (k, &i) in self.order.iter().enumerate() {
            if self.positive[k] {
                tp += u64::from(w[i]);
            } else {
                fp += u64::from(w[i]);
            }
            if self.last_of_tie[k] && v.last() != Some(&(fp, tp)) {
                v.push((fp, tp));
            }
        }
        v
    }

    /// The vertices, None unless the last, (N, P), has both > 0.
    fn curve(&self, w: &[u32]) -> Option<Vec<(u64, u64)>> {
        let v = self.vertices(w);
        let &(n, p) = v.last()?;
        (n > 0 && p > 0).then_some(v)
    }

    pub(crate) fn roc_auc(&self, w: &[u32]) -> Option<f64> {
        let v = self.curve(w)?;
        let (n, p) = v[v.len() - 1];
        let twice: u128 = v
            .windows(2)
            .map(|s| u128::from(s[1].0 - s[0].0) * u128::from(s[0].1 + s[1].1))
            .sum();
        Some(twice as f64 / (2.0 * n as f64 * p as f64))
    }

    pub(crate) fn pr_auc(&self, w: &[u32]) -> Option<f64> {
        let v = self.curve(w)?;
        let p = v[v.len() - 1].1;
        let ap = v
            .windows(2)
            .filter(|s| s[1].1 > s[0].1)
            .map(|s| (s[1].1 - s[0].1) as f64 * s[1].1 as f64 / (s[1].0 + s[1].1) as f64)
            .sum::<f64>();
        Some(ap / p as f64)
    }

    /// `min_tpr` in [0, 1).
    pub(crate) fn pauc_min_tpr(&self, w: &[u32], min_tpr: f64) -> Option<f64> {
        let v = self.curve(w)?;
        let (n, p) = v[v.len() - 1];
        let rate = |&(fp, tp): &(u64, u64)| (fp as f64 / n as f64, tp as f64 / p as f64);
        let area = v
            .windows(2)
            .map(|s| {
                let ((f0, t0), (f1, t1)) = (rate(&s[0]), rate(&s[1]));
                if t1 <= min_tpr {
                    0.0
                } else if t0 >= min_tpr {
                    (f1 - f0) * ((t0 + t1) / 2.0 - min_tpr)
                } else {
                    // the segment crosses the line: only the part above it counts
                    let f_cross = f0 + (min_tpr - t0) / (t1 - t0) * (f1 - f0);
                    (f1 - f_cross) * (t1 - min_tpr) / 2.0
                }
            })
            .sum();
        Some(area)
    }
}

fn ranked(probs: &[Vec<f64>], labels: &[usize], positive: usize) -> Result<Ranked, StatsError> {
    let classes = check(probs, labels)?;
    check_positive(positive, classes)?;
    check_both(labels, positive)?;
    Ok(Ranked::new(probs, labels, positive))
}

/// ROC-AUC of class `positive` against the rest (Mann–Whitney, ties counted as 1/2).
pub fn roc_auc(probs: &[Vec<f64>], labels: &[usize], positive: usize) -> Result<f64, StatsError> {
    ranked(probs, labels, positive)?
        .roc_auc(&vec![1; probs.len()])
        .ok_or(StatsError::Undefined)
}

/// PR-AUC of class `positive` against the rest: average precision as scikit-learn's
/// `average_precision_score`.
pub fn pr_auc(probs: &[Vec<f64>], labels: &[usize], positive: usize) -> Result<f64, StatsError> {
    ranked(probs, labels, positive)?
        .pr_auc(&vec![1; probs.len()])
        .ok_or(StatsError::Undefined)
}

/// The ISIC 2024 partial AUC of class `positive`: the area under the ROC curve and above
/// TPR = `min_tpr`, in [0, 1 − `min_tpr`] (see the module's documentation). `min_tpr` must be
/// in [0, 1); ISIC 2024 uses 0.8.
pub fn pauc_min_tpr(
    probs: &[Vec<f64>],
    labels: &[usize],
    positive: usize,
    min_tpr: f64,
) -> Result<f64, StatsError> {
    if !(0.0..1.0).contains(&min_tpr) {
        return Err(StatsError::Invalid(format!(
            "min_tpr {min_tpr} is not in [0, 1)"
        )));
    }
    ranked(probs, labels, positive)?
        .pauc_min_tpr(&vec![1; probs.len()], min_tpr)
        .ok_or(StatsError::Undefined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_count_as_repeated_images() {
        let scores = [0.9, 0.4, 0.4, 0.2, 0.7, 0.4, 0.1];
        let labels = [1, 0, 1, 0, 0, 1, 1];
        let w = [2, 0, 1, 3, 1, 2, 1];
        let row = |s: f64| vec![1.0 - s, s];
        let weighted = Ranked::new(&scores.map(row), &labels, 1);
        let (mut p, mut y) = (Vec::new(), Vec::new());
        for i in 0..scores.len() {
            for _ in 0..w[i] {
                p.push(row(scores[i]));
                y.push(labels[i]);
            }
        }
        let repeated = Ranked::new(&p, &y, 1);
        let ones = vec![1; p.len()];
        assert_eq!(weighted.roc_auc(&w), repeated.roc_auc(&ones));
        assert_eq!(weighted.pr_auc(&w), repeated.pr_auc(&ones));
        assert_eq!(
            weighted.pauc_min_tpr(&w, 0.8),
            repeated.pauc_min_tpr(&ones, 0.8)
        );
        // no negative left
        assert_eq!(weighted.roc_auc(&[1, 0, 1, 0, 0, 1, 1]), None);
    }
}
