//! `resnext report DIR`: `report.html` of a run (its last `eval.json`) or of a cross-validation
//! directory (its `cv.json`), regenerated from what is on disk (`resnext_train::report`);
//! `resnext eval` and `resnext cv` write it too, through [`write_run`] and [`write_cv`].

use crate::args::ReportArgs;
use anyhow::{Context, Result};
use resnext_train::cv::{CvFile, CvSummary, Metrics};
use resnext_train::report::{fold_name, write_cv_report, CvReport, CvRow, ReportOptions};
use resnext_train::Run;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn run(a: ReportArgs) -> Result<ExitCode> {
    let opts = ReportOptions {
        gallery: usize::from(a.gallery),
        ..ReportOptions::default()
    };
    if let Some(out) = &a.out {
        // not over another of a run's or a cross-validation's own files
        if let Some((dir, name)) = resnext_train::owned::owner(out) {
            if name != CvFile::Report.name() {
                let _ = dir;
                resnext_train::owned::refuse_owned(out, "--out")?;
            }
        }
    }
    let path = if a.dir.join(CvFile::Folds.name()).is_file() {
        write_cv(&a.dir, a.out.as_deref(), &opts)?
    } else {
        let run = Run::open(&a.dir)?;
        let _lock = run.lock()?;
        write_run(&run, a.out.as_deref(), &opts)?
    };
    println!("-> {}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes a run's `report.html` (or `out`); the caller holds the run's lock.
pub fn write_run(run: &Run, out: Option<&Path>, opts: &ReportOptions) -> Result<PathBuf> {
    Ok(run.write_report(out, opts)?)
}

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

/// Writes a cross-validation directory's `report.html` (or `out`) from its `cv.json` and
/// `folds.json`.
pub fn write_cv(dir: &Path, out: Option<&Path>, opts: &ReportOptions) -> Result<PathBuf> {
    let repeats = resnext_data::folds::Folds::load(&dir.join(CvFile::Folds.name()))?.repeats;
    let summary_path = dir.join(CvFile::Summary.name());
    if !summary_path.is_file() {
        anyhow::bail!(
            "{} has no cv.json yet: run `resnext cv` until every fold is done",
            dir.display()
        );
    }
    let bytes = resnext_data::safe_path::read_regular(&summary_path)?;
    let s: CvSummary = serde_json::from_slice(&bytes)
        .with_context(|| format!("reading {}", summary_path.display()))?;
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
