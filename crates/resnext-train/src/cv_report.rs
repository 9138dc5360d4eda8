//! `report.html` of a cross-validation directory: its `cv.json` ([`CvSummary`]) and
//! `folds.json` turned into the page's input ([`CvReport`]) and written by
//! `resnext_infer::report`. (A run's page is `Run::write_report`, in the inference crate; this
//! one lives here because `CvSummary` does.)

use crate::cv::{CvFile, CvSummary, Metrics};
use crate::error::TrainError;
use resnext_infer::report::{fold_name, write_cv_report, CvReport, CvRow, ReportOptions};
use resnext_infer::InferError;
use std::path::{Path, PathBuf};

fn row(name: String, pointer: String, n: Option<usize>, m: &Metrics) -> CvRow {
    CvRow {
        name,
        pointer,
        n,
        accuracy: m.accuracy,
        macro_precision: m.macro_precision,
        macro_recall: m.macro_recall,
        macro_f1: m.macro_f1,
        roc_auc: m.roc_auc,
        ece: m.ece,
    }
}

/// Writes the `report.html` of the cross-validation directory `dir` (or `out`) from its
/// `cv.json` and `folds.json`; refused while `cv.json` does not exist (folds left to run).
pub fn write_cv(
    dir: &Path,
    out: Option<&Path>,
    opts: &ReportOptions,
) -> Result<PathBuf, TrainError> {
    let repeats = resnext_data::folds::Folds::load(&dir.join(CvFile::Folds.name()))?.repeats;
    let summary_path = dir.join(CvFile::Summary.name());
    if !summary_path.is_file() {
        return Err(InferError::Read {
            path: summary_path,
            reason: "it does not exist yet: run `resnext cv` until every fold is done".into(),
        }
        .into());
    }
    let bytes = resnext_data::safe_path::read_regular(&summary_path)?;
    let s: CvSummary = serde_json::from_slice(&bytes).map_err(|e| InferError::Read {
        path: summary_path.clone(),
        reason: e.to_string(),
    })?;
    let page = CvReport {
        dir,
        classes: &s.classes,
        folds: s
            .folds
            .iter()
            .enumerate()
            .map(|(i, f)| {
                row(
                    fold_name(repeats, f.repeat, f.fold),
                    format!("/folds/{i}"),
                    Some(f.n),
                    &f.metrics,
                )
            })
            .collect(),
        mean: row("mean".into(), "/mean".into(), None, &s.mean),
        std: row("std".into(), "/std".into(), None, &s.std),
        pooled: row(
            "pooled".into(),
            "/pooled".into(),
            Some(s.pooled.n),
            &s.pooled.metrics,
        ),
        confusion_matrix: &s.pooled.confusion_matrix,
        reliability: &s.pooled.reliability,
        intervals: s.pooled.intervals.as_ref(),
        operating_point: s.operating_point.as_ref(),
        partial_auc: s.partial_auc.as_ref(),
        subgroups: &s.subgroups,
    };
    Ok(write_cv_report(&page, out, opts)?)
}
