//! Pointwise bootstrap bands of the ROC and precision-recall curves of one class against the
//! rest, resampling patients as [`mod@crate::bootstrap`] does.
//!
//! Each curve is read at a grid of evenly spaced abscissae (`points` from 0 to 1):
//!
//! - **ROC**, vertical averaging (Fawcett 2006): the true positive rate at each false positive
//!   rate, linear along the curve's segments (a tie of scores is a diagonal segment), the
//!   highest where the curve rises vertically.
//! - **PR**: the interpolated precision at each recall, the highest precision at that recall or
//!   above (Manning et al. 2008), which is defined at every recall in [0, 1].
//!
//! The band at a grid point is the percentile interval of the resampled curves' values there,
//! from the same resamples (one seed) for every point and both curves. A resample without a
//! positive or a negative is skipped. The bands are pointwise, not simultaneous: each point
//! covers its own value at the level, the whole curve less often.

use crate::auc::Ranked;
use crate::bootstrap::{bootstrap_many, counts, BootstrapOptions, Groups};
use crate::error::StatsError;
use crate::input::{check, check_both, check_positive};
use serde::{Deserialize, Serialize};

/// A curve's value at one abscissa on the whole set, and its band.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BandPoint {
    pub x: f64,
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

/// The ROC and PR curves of one class, exact on the whole set and banded on the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurveBands {
    pub class: usize,
    /// The ROC curve's vertices on the whole set, (false positive rate, true positive rate).
    pub roc_curve: Vec<(f64, f64)>,
    /// The precision-recall curve's vertices on the whole set, (recall, precision).
    pub pr_curve: Vec<(f64, f64)>,
    /// The true positive rate at each false positive rate of the grid.
    pub roc: Vec<BandPoint>,
    /// The interpolated precision at each recall of the grid.
    pub pr: Vec<BandPoint>,
    pub level: f64,
    /// The resamples with both positives and negatives, out of `n_resamples`.
    pub resamples_used: usize,
}

/// The vertices as rates: (false positive rate, true positive rate), None without both kinds.
fn roc_rates(v: &[(u64, u64)]) -> Option<Vec<(f64, f64)>> {
    let &(n, p) = v.last()?;
    (n > 0 && p > 0).then(|| {
        v.iter()
            .map(|&(fp, tp)| (fp as f64 / n as f64, tp as f64 / p as f64))
            .collect()
    })
}

/// (recall, precision) at every vertex after the first (where something is called positive).
fn pr_points(v: &[(u64, u64)]) -> Option<Vec<(f64, f64)>> {
    let &(_, p) = v.last()?;
    (p > 0).then(|| {
        v.iter()
            .skip(1)
            .map(|&(fp, tp)| (tp as f64 / p as f64, tp as f64 / (fp + tp) as f64))
            .collect()
    })
}

/// The true positive rate at each `grid` value (increasing), along the curve `rates`.
fn roc_at(rates: &[(f64, f64)], grid: &[f64]) -> Vec<f64> {
    let mut k = 0;
    grid.iter()
        .map(|&x| {
            while k + 1 < rates.len() && rates[k + 1].0 <= x {
                k += 1;
            }
            let (f0, t0) = rates[k];
            match rates.get(k + 1) {
                Some(&(f1, t1)) if f1 > f0 => t0 + (x - f0) / (f1 - f0) * (t1 - t0),
                _ => t0,
            }
        })
        .collect()
}

/// The highest precision at each `grid` recall (increasing) or above, along `points`.
fn pr_at(points: &[(f64, f64)], grid: &[f64]) -> Vec<f64> {
    // the highest precision from each point on
    let mut best = vec![0.0; points.len()];
    let mut m = 0.0f64;
    for (k, &(_, p)) in points.iter().enumerate().rev() {
        m = m.max(p);
        best[k] = m;
    }
    let mut k = 0;
    grid.iter()
        .map(|&r| {
            while k < points.len() && points[k].0 < r {
                k += 1;
            }
            best.get(k).copied().unwrap_or(0.0)
        })
        .collect()
}

/// The ROC and PR curves of class `class` of `probs` with pointwise bootstrap bands at `points`
/// evenly spaced abscissae (at least 2), resampling `groups` (each image its own when None).
pub fn curve_bands(
    probs: &[Vec<f64>],
    labels: &[usize],
    class: usize,
    groups: Option<&Groups>,
    options: &BootstrapOptions,
    points: usize,
) -> Result<CurveBands, StatsError> {
    let classes = check(probs, labels)?;
    check_positive(class, classes)?;
    check_both(labels, class)?;
    if points < 2 {
        return Err(StatsError::Invalid(format!(
            "a band needs at least 2 points, not {points}"
        )));
    }
    let n = probs.len();
    let groups = &*Groups::or_singletons(groups, n)?;
    let grid: Vec<f64> = (0..points)
        .map(|i| i as f64 / (points - 1) as f64)
        .collect();
    let ranked = Ranked::new(probs, labels, class);
    let curves = |w: &[u32]| {
        let v = ranked.vertices(w);
        Some((roc_rates(&v)?, pr_points(&v)?))
    };
    let (roc_curve, pr_curve) = curves(&vec![1; n]).ok_or(StatsError::Undefined)?;
    let intervals = bootstrap_many(groups, options, |indices| {
        match curves(&counts(indices, n)) {
            Some((roc, pr)) => roc_at(&roc, &grid)
                .into_iter()
                .chain(pr_at(&pr, &grid))
                .map(Some)
                .collect(),
            None => vec![None; 2 * points],
        }
    })?;
    let mut resamples_used = 0;
    let mut banded = Vec::with_capacity(2 * points);
    for (k, i) in intervals.into_iter().enumerate() {
        let i = i?;
        resamples_used = i.resamples_used;
        banded.push(BandPoint {
            x: grid[k % points],
            estimate: i.estimate,
            low: i.low,
            high: i.high,
        });
    }
    let pr = banded.split_off(points);
    Ok(CurveBands {
        class,
        roc_curve,
        pr_curve,
        roc: banded,
        pr,
        level: options.level,
        resamples_used,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roc_is_read_linearly_and_at_its_top_where_it_rises() {
        let rates = [(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (1.0, 1.0)];
        assert_eq!(
            roc_at(&rates, &[0.0, 0.25, 0.75, 1.0]),
            [0.5, 0.5, 0.75, 1.0]
        );
    }

    #[test]
    fn precision_is_interpolated_from_the_right() {
        let pts = [(0.25, 1.0), (0.5, 0.5), (0.75, 0.6), (1.0, 0.4)];
        assert_eq!(
            pr_at(&pts, &[0.0, 0.25, 0.3, 0.75, 1.0]),
            [1.0, 1.0, 0.6, 0.6, 0.4]
        );
    }

    #[test]
    fn bands_are_rates_and_reproducible() {
        let scores = [
            0.9, 0.8, 0.7, 0.65, 0.6, 0.4, 0.35, 0.3, 0.2, 0.1, 0.55, 0.45,
        ];
        let labels = [1, 1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 1];
        let probs: Vec<Vec<f64>> = scores.iter().map(|&s| vec![1.0 - s, s]).collect();
        let o = BootstrapOptions {
            n_resamples: 300,
            ..BootstrapOptions::default()
        };
        let b = curve_bands(&probs, &labels, 1, None, &o, 11).unwrap();
        assert_eq!((b.roc.len(), b.pr.len()), (11, 11));
        for p in b.roc.iter().chain(&b.pr) {
            assert!(0.0 <= p.low && p.low <= p.high && p.high <= 1.0, "{p:?}");
        }
        assert_eq!(b.roc.last().map(|p| p.estimate), Some(1.0));
        assert_eq!(b.roc_curve.first(), Some(&(0.0, 0.0)));
        assert_eq!(curve_bands(&probs, &labels, 1, None, &o, 11).unwrap(), b);
        assert!(curve_bands(&probs, &[1; 12], 1, None, &o, 11).is_err());
    }
}
