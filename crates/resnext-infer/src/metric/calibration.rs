//! Calibration: the reliability of the top class's probability. The expected calibration error
//! (ECE, Guo et al. 2017) bins predictions by confidence (15 equal-width bins) and averages
//! |accuracy − confidence| weighted by the bin's share of samples. Temperature scaling divides
//! the logits by one scalar T, fitted on the validation part by minimising the negative
//! log-likelihood; it changes no prediction, only how sure they are.

use super::argmax::argmax;
use serde::{Deserialize, Serialize};

/// The number of bins of the ECE and the reliability diagram.
pub const ECE_BINS: usize = 15;

/// One confidence bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    /// Mean top-class probability of the bin's samples (0 when empty).
    pub confidence: f64,
    /// Their accuracy (0 when empty).
    pub accuracy: f64,
}

/// The reliability diagram's bins.
pub fn reliability(probs: &[Vec<f64>], labels: &[usize], bins: usize) -> Vec<ReliabilityBin> {
    let bins = bins.max(1);
    let mut count = vec![0usize; bins];
    let mut conf = vec![0f64; bins];
    let mut correct = vec![0usize; bins];
    for (p, &y) in probs.iter().zip(labels) {
        let pred = argmax(p);
        let c = p.get(pred).copied().unwrap_or(0.0).clamp(0.0, 1.0);
        // bins are (lower, upper]; a confidence of 0 goes to the first
        let b = ((c * bins as f64).ceil() as usize).clamp(1, bins) - 1;
        count[b] += 1;
        conf[b] += c;
        correct[b] += usize::from(pred == y);
    }
    (0..bins)
        .map(|b| {
            // an empty bin's sums are 0
            let n = count[b].max(1) as f64;
            ReliabilityBin {
                lower: b as f64 / bins as f64,
                upper: (b + 1) as f64 / bins as f64,
                count: count[b],
                confidence: conf[b] / n,
                accuracy: correct[b] as f64 / n,
            }
        })
        .collect()
}

/// The expected calibration error of these bins.
pub fn ece_of(bins: &[ReliabilityBin]) -> f64 {
    let n: usize = bins.iter().map(|b| b.count).sum();
    if n == 0 {
        return 0.0;
    }
    bins.iter()
        .map(|b| b.count as f64 / n as f64 * (b.accuracy - b.confidence).abs())
        .sum()
}

/// The expected calibration error with [`ECE_BINS`] bins.
pub fn ece(probs: &[Vec<f64>], labels: &[usize]) -> f64 {
    ece_of(&reliability(probs, labels, ECE_BINS))
}

/// Softmax of `logits / t`.
pub fn softmax_t(logits: &[f64], t: f64) -> Vec<f64> {
    let m = logits
        .iter()
        .map(|&z| z / t)
        .fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logits.iter().map(|&z| (z / t - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// Mean negative log-likelihood of the labels under `softmax(logits / t)`.
pub fn nll(logits: &[Vec<f64>], labels: &[usize], t: f64) -> f64 {
    if logits.is_empty() {
        return 0.0;
    }
    let total: f64 = logits
        .iter()
        .zip(labels)
        .map(|(z, &y)| {
            let m = z.iter().map(|&v| v / t).fold(f64::NEG_INFINITY, f64::max);
            let lse = m + z.iter().map(|&v| (v / t - m).exp()).sum::<f64>().ln();
            lse - z[y] / t
        })
        .sum();
    total / logits.len() as f64
}

/// The temperature in [0.05, 20] that minimises the NLL: golden-section search on 1/T, where the
/// NLL is convex.
pub fn fit_temperature(logits: &[Vec<f64>], labels: &[usize]) -> f64 {
    let f = |beta: f64| nll(logits, labels, 1.0 / beta);
    let (mut a, mut b) = (0.05f64, 20.0f64);
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let mut c = b - g * (b - a);
    let mut d = a + g * (b - a);
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..100 {
        if (b - a).abs() < 1e-7 {
            break;
        }
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = f(d);
        }
    }
    1.0 / ((a + b) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfectly_calibrated_set_has_zero_ece_and_an_overconfident_one_does_not() {
        // 10 predictions at 0.8 confidence, 8 right: calibrated
        let probs: Vec<Vec<f64>> = (0..10).map(|_| vec![0.8, 0.2]).collect();
        let labels: Vec<usize> = (0..10).map(|i| usize::from(i >= 8)).collect();
        assert!(ece(&probs, &labels).abs() < 1e-12);
        // same confidence, half right: |0.5 − 0.8| = 0.3
        let labels: Vec<usize> = (0..10).map(|i| i % 2).collect();
        assert!((ece(&probs, &labels) - 0.3).abs() < 1e-12);
        let bins = reliability(&probs, &labels, ECE_BINS);
        assert_eq!(bins.len(), 15);
        assert_eq!(bins.iter().map(|b| b.count).sum::<usize>(), 10);
        assert_eq!(bins[11].count, 10, "0.8 falls in (11/15, 12/15]");
    }

    #[test]
    fn the_fitted_temperature_lowers_the_nll_of_overconfident_logits() {
        // logits 4x too large for the 70% accuracy they come with
        let mut logits = Vec::new();
        let mut labels = Vec::new();
        for i in 0..100 {
            logits.push(vec![4.0 * 2.0, 0.0]);
            labels.push(usize::from(i % 10 >= 7));
        }
        let t = fit_temperature(&logits, &labels);
        assert!(t > 1.0, "overconfidence is softened: T = {t}");
        assert!(nll(&logits, &labels, t) < nll(&logits, &labels, 1.0) - 0.1);
        // the optimum: softmax(8 / T)[0] = 0.7
        assert!((softmax_t(&logits[0], t)[0] - 0.7).abs() < 1e-4, "{t}");
        // temperature changes no prediction
        assert_eq!(argmax(&softmax_t(&logits[0], t)), 0);
    }
}
