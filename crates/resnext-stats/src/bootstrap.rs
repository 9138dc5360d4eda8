//! Percentile bootstrap confidence intervals that resample groups (patients), so that images of
//! one patient, which are not independent, are drawn together.
//!
//! A resample draws as many groups as there are, uniformly with replacement, and takes every
//! image of each drawn group (so its size varies when groups do). The statistic is computed on
//! each resample; resamples where it is undefined (a class missing, say) are skipped and
//! counted out of [`Interval::resamples_used`]. The interval is the pair of percentiles
//! (1 − level)/2 and (1 + level)/2 of the resampled values, each interpolated linearly between
//! order statistics (numpy's default `percentile`). The random numbers are SplitMix64's from
//! the seed, so one seed gives bit-identical intervals on every machine.

use crate::error::StatsError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::Hash;

/// The images of each group, groups in order of first appearance.
#[derive(Debug, Clone, PartialEq)]
pub struct Groups {
    members: Vec<Vec<usize>>,
    images: usize,
}

impl Groups {
    /// Groups from the group (patient) of each image.
    pub fn new<T: Eq + Hash>(group_of_image: &[T]) -> Result<Groups, StatsError> {
        if group_of_image.is_empty() {
            return Err(StatsError::Empty);
        }
        let mut index: HashMap<&T, usize> = HashMap::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        for (i, g) in group_of_image.iter().enumerate() {
            let k = *index.entry(g).or_insert_with(|| {
                members.push(Vec::new());
                members.len() - 1
            });
            members[k].push(i);
        }
        Ok(Groups {
            members,
            images: group_of_image.len(),
        })
    }

    /// Every image its own group.
    pub fn singletons(images: usize) -> Result<Groups, StatsError> {
        if images == 0 {
            return Err(StatsError::Empty);
        }
        Ok(Groups {
            members: (0..images).map(|i| vec![i]).collect(),
            images,
        })
    }

    /// `groups`, checked to have `images` images, or (None) every image its own group.
    pub(crate) fn or_singletons(
        groups: Option<&Groups>,
        images: usize,
    ) -> Result<std::borrow::Cow<'_, Groups>, StatsError> {
        match groups {
            Some(g) => {
                crate::input::check_len("groups", images, g.images())?;
                Ok(std::borrow::Cow::Borrowed(g))
            }
            None => Ok(std::borrow::Cow::Owned(Groups::singletons(images)?)),
        }
    }

    /// The number of groups.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false: a `Groups` has at least one image.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The number of images.
    pub fn images(&self) -> usize {
        self.images
    }
}

/// How many resamples, from which seed, at which level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapOptions {
    pub n_resamples: usize,
    pub seed: u64,
    /// The interval's coverage, in (0, 1).
    pub level: f64,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        BootstrapOptions {
            n_resamples: 2000,
            seed: 0,
            level: 0.95,
        }
    }
}

/// A statistic on the whole set and its percentile bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    pub level: f64,
    /// The resamples on which the statistic was defined, out of `n_resamples`.
    pub resamples_used: usize,
}

/// `0.8553 [0.7763, 0.9211]`; with `{:+}` the signs are shown (differences).
impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (e, l, h) = (self.estimate, self.low, self.high);
        if f.sign_plus() {
            write!(f, "{e:+.4} [{l:+.4}, {h:+.4}]")
        } else {
            write!(f, "{e:.4} [{l:.4}, {h:.4}]")
        }
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014), the generator of the resamples.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n by multiply-shift (bias below n / 2^64).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

/// How many times each of `images` images occurs among `indices`.
pub(crate) fn counts(indices: &[usize], images: usize) -> Vec<u32> {
    let mut w = vec![0; images];
    for &i in indices {
        w[i] += 1;
    }
    w
}

/// The percentile `q` in [0, 1] of sorted `v` (not empty), linear between order statistics.
fn percentile(v: &[f64], q: f64) -> f64 {
    let h = (v.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    match v.get(lo + 1) {
        Some(&next) => v[lo] + (h - lo as f64) * (next - v[lo]),
        None => v[lo],
    }
}

fn check_options(o: &BootstrapOptions) -> Result<(), StatsError> {
    if o.n_resamples == 0 {
        return Err(StatsError::Invalid("n_resamples is 0".into()));
    }
    if !(o.level > 0.0 && o.level < 1.0) {
        return Err(StatsError::Invalid(format!(
            "the interval level {} is not in (0, 1)",
            o.level
        )));
    }
    Ok(())
}

/// Intervals of several statistics from the same resamples: `stats` maps the image indices of
/// a resample (an image repeated as often as its group was drawn) to one value per statistic.
/// Entry k is [`StatsError::Undefined`] when statistic k is undefined (None or not finite) on
/// the whole set, [`StatsError::NoUsableResample`] when on every resample.
pub(crate) fn bootstrap_many(
    groups: &Groups,
    options: &BootstrapOptions,
    stats: impl Fn(&[usize]) -> Vec<Option<f64>>,
) -> Result<Vec<Result<Interval, StatsError>>, StatsError> {
    check_options(options)?;
    let all: Vec<usize> = (0..groups.images).collect();
    let estimates = stats(&all);
    let mut values: Vec<Vec<f64>> = vec![Vec::with_capacity(options.n_resamples); estimates.len()];
    let mut rng = SplitMix64(options.seed);
    let mut indices = Vec::with_capacity(groups.images);
    for _ in 0..options.n_resamples {
        indices.clear();
        for _ in 0..groups.len() {
            // (a loop: groups are small, and a memcpy per group costs more)
            for &i in &groups.members[rng.below(groups.len())] {
                indices.push(i);
            }
        }
        for (k, v) in stats(&indices).into_iter().enumerate() {
            if let Some(v) = v.filter(|v| v.is_finite()) {
                values[k].push(v);
            }
        }
    }
    let tail = (1.0 - options.level) / 2.0;
    Ok(estimates
        .into_iter()
        .zip(values)
        .map(|(estimate, mut v)| {
            let estimate = estimate
                .filter(|e| e.is_finite())
                .ok_or(StatsError::Undefined)?;
            if v.is_empty() {
                return Err(StatsError::NoUsableResample(options.n_resamples));
            }
            v.sort_by(f64::total_cmp);
            Ok(Interval {
                estimate,
                low: percentile(&v, tail),
                high: percentile(&v, 1.0 - tail),
                level: options.level,
                resamples_used: v.len(),
            })
        })
        .collect())
}

/// The percentile bootstrap interval of `stat`, which maps the image indices of a resample
/// (an image repeated as often as its group was drawn) to the statistic, None where undefined.
/// The estimate is `stat` on all images, in order.
pub fn bootstrap(
    groups: &Groups,
    options: &BootstrapOptions,
    stat: impl Fn(&[usize]) -> Option<f64>,
) -> Result<Interval, StatsError> {
    bootstrap_many(groups, options, |idx| vec![stat(idx)])?
        .pop()
        .ok_or(StatsError::Undefined)?
}

/// The interval of `stat_a − stat_b` for two models on the same images: both are computed on
/// the same resampled indices, and a resample counts only where both are defined.
pub fn bootstrap_paired(
    groups: &Groups,
    options: &BootstrapOptions,
    stat_a: impl Fn(&[usize]) -> Option<f64>,
    stat_b: impl Fn(&[usize]) -> Option<f64>,
) -> Result<Interval, StatsError> {
    bootstrap(groups, options, |idx| Some(stat_a(idx)? - stat_b(idx)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_as_numpy() {
        // numpy.percentile([1, 2, 3, 4, 5], [2.5, 97.5]) = [1.1, 4.9]
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert!((percentile(&v, 0.025) - 1.1).abs() < 1e-12);
        assert!((percentile(&v, 0.975) - 4.9).abs() < 1e-12);
        assert_eq!(percentile(&v, 1.0), 5.0);
        assert_eq!(percentile(&[7.0], 0.5), 7.0);
    }

    #[test]
    fn splitmix64_matches_its_reference_sequence() {
        // the first outputs from seed 1234567 of the reference splitmix64.c (Vigna)
        let mut r = SplitMix64(1234567);
        let first: Vec<u64> = (0..5).map(|_| r.next()).collect();
        assert_eq!(
            first,
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423,
                4593380528125082431,
                16408922859458223821
            ]
        );
    }

    #[test]
    fn draws_are_uniform_enough() {
        let mut r = SplitMix64(7);
        let mut c = [0usize; 5];
        for _ in 0..50_000 {
            c[r.below(5)] += 1;
        }
        assert!(c.iter().all(|&k| (9_500..10_500).contains(&k)), "{c:?}");
    }
}
