//! Two models compared honestly on the same images: the paired difference of accuracy and of
//! ROC-AUC with a patient-bootstrap interval (both models see the same resamples), DeLong's test
//! for the AUCs and McNemar's for accuracy. Two runs are compared on a part of a split they share,
//! two cross-validations on their pooled out-of-fold predictions when their `folds.json` are the
//! same (anything else is refused, naming the difference).

use crate::cv_dir::CvDir;
use crate::error::InferError;
use crate::metric::argmax;
use crate::progress::Progress;
use crate::run::Run;
use crate::run_eval::{probs_labels, EvalOptions, SamplePrediction};
use resnext_stats::{BootstrapOptions, DeLong, Groups, Interval, McNemar};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The comparison of model A with model B (differences are A − B).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The part compared on, its images and patients.
    pub part: String,
    pub images: usize,
    pub groups: usize,
    pub accuracy_a: f64,
    pub accuracy_b: f64,
    pub accuracy_difference: Option<Interval>,
    pub mcnemar: McNemar,
    /// The class whose ROC-AUC is compared (the second of two; `--positive` with more).
    pub positive: Option<String>,
    pub roc_auc_difference: Option<Interval>,
    pub delong: Option<DeLong>,
}

fn invalid(reason: String) -> InferError {
    InferError::InvalidValue {
        key: "compare",
        reason,
    }
}

/// The paths only in `a` and those only in `b`: how many, and the first (`-` when none).
fn only_in<'s>(a: &BTreeSet<&'s str>, b: &BTreeSet<&'s str>) -> [(usize, &'s str); 2] {
    [(a, b), (b, a)].map(|(x, y)| {
        let only: Vec<&&str> = x.difference(y).collect();
        (only.len(), only.first().map_or("-", |s| **s))
    })
}

/// The images of `a` and `b`: the same paths in the same order, and the same labels.
fn check_same_images(a: &[SamplePrediction], b: &[SamplePrediction]) -> Result<(), InferError> {
    let pa: BTreeSet<&str> = a.iter().map(|p| p.path.as_str()).collect();
    let pb: BTreeSet<&str> = b.iter().map(|p| p.path.as_str()).collect();
    if pa != pb {
        let [(na, fa), (nb, fb)] = only_in(&pa, &pb);
        return Err(invalid(format!(
            "the two are evaluated on different images: {na} only in A (first {fa:?}), {nb} only in B (first {fb:?})"
        )));
    }
    for (x, y) in a.iter().zip(b) {
        if x.path != y.path || x.label != y.label {
            return Err(invalid(format!(
                "image {} has label {} in A and {} in B",
                x.path, x.label, y.label
            )));
        }
    }
    Ok(())
}

/// Compares predictions of the same images, resampling `groups` (one per image).
pub fn compare_predictions(
    part: &str,
    a: &[SamplePrediction],
    b: &[SamplePrediction],
    classes: &[String],
    groups: &[String],
    positive: Option<usize>,
    bootstrap: &BootstrapOptions,
) -> Result<Comparison, InferError> {
    check_same_images(a, b)?;
    if a.is_empty() {
        return Err(invalid("there are no images to compare on".into()));
    }
    let stats = |e: resnext_stats::StatsError| invalid(e.to_string());
    let g = Groups::new(groups).map_err(stats)?;
    let right = |p: &[SamplePrediction]| -> Vec<bool> {
        p.iter().map(|s| argmax(&s.probs) == s.label).collect()
    };
    let (ra, rb) = (right(a), right(b));
    let acc = |r: &[bool], idx: &[usize]| {
        (!idx.is_empty()).then(|| idx.iter().filter(|&&i| r[i]).count() as f64 / idx.len() as f64)
    };
    let all: Vec<usize> = (0..a.len()).collect();
    let accuracy_difference =
        resnext_stats::bootstrap_paired(&g, bootstrap, |i| acc(&ra, i), |i| acc(&rb, i)).ok();
    let mcnemar = resnext_stats::mcnemar(&ra, &rb).map_err(stats)?;
    let positive = positive.or((classes.len() == 2).then_some(1));
    let ((pa, labels), (pb, _)) = (probs_labels(a), probs_labels(b));
    let (roc_auc_difference, delong) = match positive {
        Some(p) => {
            let auc = |probs: &[Vec<f64>], idx: &[usize]| {
                let sp: Vec<Vec<f64>> = idx.iter().map(|&i| probs[i].clone()).collect();
                let sl: Vec<usize> = idx.iter().map(|&i| labels[i]).collect();
                resnext_stats::roc_auc(&sp, &sl, p).ok()
            };
            (
                resnext_stats::bootstrap_paired(&g, bootstrap, |i| auc(&pa, i), |i| auc(&pb, i))
                    .ok(),
                resnext_stats::delong(&pa, &pb, &labels, p).ok(),
            )
        }
        None => (None, None),
    };
    Ok(Comparison {
        part: part.to_string(),
        images: a.len(),
        groups: g.len(),
        accuracy_a: acc(&ra, &all).unwrap_or(0.0),
        accuracy_b: acc(&rb, &all).unwrap_or(0.0),
        accuracy_difference,
        mcnemar,
        positive: positive.and_then(|p| classes.get(p).cloned()),
        roc_auc_difference,
        delong,
    })
}

impl Run {
    /// Compares this run's checkpoint (A) with `other`'s (B) on `opts.part` of the split both
    /// share (refused when their classes or the part's images differ), resampling this run's
    /// patients.
    pub fn compare(
        &self,
        other: &Run,
        opts: &EvalOptions,
        positive: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<Comparison, InferError> {
        let (sa, sb) = (self.split()?, other.split()?);
        if sa.classes != sb.classes {
            return Err(invalid(format!(
                "the runs have other classes: {:?} and {:?}",
                sa.classes, sb.classes
            )));
        }
        let (ia, ib) = (opts.part.paths(&sa), opts.part.paths(&sb));
        if ia != ib {
            let a: BTreeSet<&String> = ia.iter().collect();
            let b: BTreeSet<&String> = ib.iter().collect();
            return Err(invalid(format!(
                "the runs' {} parts differ ({} images only in A, {} only in B): compare runs trained on the same split (data.split_file)",
                opts.part.name(),
                a.difference(&b).count(),
                b.difference(&a).count()
            )));
        }
        let quiet = opts.without_intervals();
        let (_, pa) = self.evaluate_with_predictions(&quiet, progress)?;
        let (_, pb) = other.evaluate_with_predictions(&quiet, progress)?;
        let p = positive
            .map(|name| crate::metric::operating_point::class_index(&sa.classes, name))
            .transpose()?;
        let groups = self.groups_of(&pa)?;
        compare_predictions(
            opts.part.name(),
            &pa,
            &pb,
            &sa.classes,
            &groups,
            p,
            &opts.bootstrap,
        )
    }
}

/// The first difference between two cross-validations' folds, named; None when they agree.
fn folds_difference(a: &CvDir, b: &CvDir) -> Option<String> {
    let (fa, fb) = (&a.folds, &b.folds);
    if fa.classes != fb.classes {
        return Some(format!(
            "the cross-validations have other classes: {:?} and {:?}",
            fa.classes, fb.classes
        ));
    }
    let setting = |what: &str, x: String, y: String| {
        (x != y).then(|| format!("their folds.json differ: {what} {x} in A, {y} in B"))
    };
    let regex = |r: &Option<String>| r.clone().unwrap_or_else(|| "(none)".into());
    if let Some(d) = setting("k (folds)", fa.k.to_string(), fb.k.to_string())
        .or_else(|| setting("repeats", fa.repeats.to_string(), fb.repeats.to_string()))
        .or_else(|| setting("seed", fa.seed.to_string(), fb.seed.to_string()))
        .or_else(|| {
            setting(
                "group_regex",
                regex(&fa.group_regex),
                regex(&fb.group_regex),
            )
        })
    {
        return Some(d);
    }
    let pa: BTreeSet<&str> = fa.images.iter().map(|i| i.path.as_str()).collect();
    let pb: BTreeSet<&str> = fb.images.iter().map(|i| i.path.as_str()).collect();
    if pa != pb {
        let [(na, fa), (nb, fb)] = only_in(&pa, &pb);
        return Some(format!(
            "their folds.json hold other images: {na} only in A (first {fa}), {nb} only in B (first {fb})"
        ));
    }
    let by_path: std::collections::HashMap<&str, _> =
        fb.images.iter().map(|i| (i.path.as_str(), i)).collect();
    fa.images.iter().find_map(|x| {
        let y = by_path.get(x.path.as_str())?;
        if x.class != y.class {
            Some(format!(
                "their folds.json differ: {} is of class `{}` in A, `{}` in B",
                x.path, x.class, y.class
            ))
        } else if x.group != y.group {
            Some(format!(
                "their folds.json differ: {} is of patient `{}` in A, `{}` in B",
                x.path, x.group, y.group
            ))
        } else if x.folds != y.folds {
            Some(format!(
                "their folds.json differ: {} is in test fold(s) {:?} in A, {:?} in B",
                x.path, x.folds, y.folds
            ))
        } else {
            None
        }
    })
}

impl CvDir {
    /// Compares this cross-validation's pooled out-of-fold predictions (A) with `other`'s (B),
    /// paired by image (and repeat), resampling `folds.json`'s patients; refused when the two
    /// `folds.json` differ (classes, folds, repeats, seed, grouping, images or their folds).
    pub fn compare(
        &self,
        other: &CvDir,
        positive: Option<&str>,
        bootstrap: &BootstrapOptions,
    ) -> Result<Comparison, InferError> {
        if let Some(d) = folds_difference(self, other) {
            return Err(invalid(format!(
                "{d}: compare cross-validations made with the same folds (the same data, --folds, --repeats, data.split_seed and data.group_regex)"
            )));
        }
        let classes = &self.folds.classes;
        let p = positive
            .map(|name| crate::metric::operating_point::class_index(classes, name))
            .transpose()?;
        let preds = |c: &CvDir| -> Vec<SamplePrediction> {
            c.predictions.iter().map(|o| o.prediction.clone()).collect()
        };
        let part = if self.folds.repeats > 1 {
            format!("out-of-fold ({} repeats)", self.folds.repeats)
        } else {
            "out-of-fold".to_string()
        };
        compare_predictions(
            &part,
            &preds(self),
            &preds(other),
            classes,
            &self.groups(),
            p,
            bootstrap,
        )
    }
}
