//! Evaluating a run at an operating point: the threshold chosen on the validation part, the
//! figures reported on another part, and the point stored in the sidecar (so `predict` and
//! `serve` decide with it). The record and the statistics are `metric::operating_point`.

use crate::checkpoint::{Checkpoint, CheckpointInfo};
use crate::error::InferError;
use crate::metric::operating_point::{
    choose, class_index, partial_auc, report, AtOperatingPoint, OperatingPoint, PartialAuc,
};
use crate::metric::report::EvalReport;
use crate::progress::Progress;
use crate::run::{Run, RunFile, SplitPart};
use crate::run_eval::{probs_labels, EvalOptions, SamplePrediction};
use resnext_stats::Criterion;

/// Checks a requested operating point before any work is done: `positive` is one of `classes`
/// (its criterion is parsed with the flag).
pub fn check_request(classes: &[String], positive: &str) -> Result<(), InferError> {
    class_index(classes, positive).map(|_| ())
}

impl Run {
    /// The operating point for class `positive` by `criterion`, chosen on the validation part
    /// with `opts`' checkpoint and run options (its part is ignored; no intervals).
    pub fn choose_on_val(
        &self,
        opts: &EvalOptions,
        positive: &str,
        criterion: Criterion,
        progress: &dyn Progress,
    ) -> Result<OperatingPoint, InferError> {
        if opts.run.tta {
            return Err(InferError::InvalidValue {
                key: "--operating-point",
                reason:
                    "decides on the image itself (predict and serve), so it is chosen without --tta"
                        .into(),
            });
        }
        let val = EvalOptions {
            part: SplitPart::Val,
            ..opts.without_intervals()
        };
        let (out, val_preds) = self.evaluate_with_predictions(&val, progress)?;
        let p = class_index(&out.classes, positive)?;
        let (vp, vl) = probs_labels(&val_preds);
        choose(&vp, &vl, p, positive, criterion, SplitPart::Val.name())
    }

    /// Evaluates `opts.part` at an operating point chosen by `criterion` for class `positive`
    /// on the validation part (so the part evaluated must not be it), and with the partial AUC
    /// above `pauc_min_tpr` when given. Nothing is written; [`Run::store_operating_point`]
    /// stores the point in the sidecar.
    pub fn evaluate_at(
        &self,
        opts: &EvalOptions,
        positive: &str,
        criterion: Option<Criterion>,
        pauc_min_tpr: Option<f64>,
        progress: &dyn Progress,
    ) -> Result<(EvalReport, Vec<SamplePrediction>), InferError> {
        let (mut out, preds) = self.evaluate_with_predictions(opts, progress)?;
        let p = class_index(&out.classes, positive)?;
        let groups = self.groups_of(&preds)?;
        let (probs, labels) = probs_labels(&preds);
        if let Some(criterion) = criterion {
            if matches!(opts.part, SplitPart::Val | SplitPart::All) {
                return Err(InferError::InvalidValue {
                    key: "--operating-point",
                    reason: "is chosen on the validation part, so it is reported on another: give --split test (or train)".into(),
                });
            }
            let point = self.choose_on_val(opts, positive, criterion, progress)?;
            out.operating_point = Some(report(
                &point,
                &probs,
                &labels,
                &groups,
                opts.part.name(),
                &opts.bootstrap,
            )?);
        }
        if let Some(min_tpr) = pauc_min_tpr {
            out.partial_auc = Some(partial_auc(
                &probs,
                &labels,
                &groups,
                p,
                positive,
                min_tpr,
                &opts.bootstrap,
            )?);
        }
        Ok((out, preds))
    }

    /// Stores an operating point in a checkpoint's sidecar (the caller holds the run's lock).
    pub fn store_operating_point(
        &self,
        which: Checkpoint,
        point: &OperatingPoint,
    ) -> Result<(), InferError> {
        let mut info: CheckpointInfo = self.info(which)?;
        info.operating_point = Some(point.clone());
        // what is stored must load again
        info.validate()
            .map_err(|reason| InferError::read(self.path(RunFile::Sidecar(which)), reason))?;
        self.write_info(which, &info)
    }
}

impl PartialAuc {
    /// The printed line (`eval` and `cv`).
    pub fn line(&self) -> String {
        format!(
            "partial AUC of `{}` above sensitivity {} (range 0 to {:.2}): {}",
            self.positive,
            self.min_tpr,
            1.0 - self.min_tpr,
            self.pauc.map_or("n/a".to_string(), |i| i.to_string())
        )
    }
}

impl AtOperatingPoint {
    /// The printed line (`eval` and `train`): the threshold, where it was chosen, and the
    /// figures with their intervals on the part reported on.
    pub fn line(&self) -> String {
        let show =
            |v: &Option<resnext_stats::Interval>| v.map_or("n/a".to_string(), |i| i.to_string());
        format!(
            "operating point {} for `{}`: threshold {:.4} chosen on {} ({} images); on {} ({} images): sensitivity {}, specificity {}, PPV {}, NPV {}",
            self.point.criterion,
            self.point.positive,
            self.point.threshold,
            self.point.chosen_on,
            self.point.chosen_on_images,
            self.reported_on,
            self.images,
            show(&self.sensitivity),
            show(&self.specificity),
            show(&self.ppv),
            show(&self.npv)
        )
    }
}
