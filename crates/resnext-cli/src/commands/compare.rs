//! `resnext compare A B`: two runs on the same part of the same split, or two cross-validation
//! directories with the same `folds.json` on their pooled out-of-fold predictions; their paired
//! differences of accuracy and ROC-AUC with patient-bootstrap intervals, DeLong's and McNemar's
//! tests (`resnext_infer::compare`). A run and a cv directory are refused.

use crate::args::CompareArgs;
use crate::progress::Bars;
use anyhow::Result;
use resnext_train::compare::Comparison;
use resnext_train::cv::CvDir;
use resnext_train::metric::operating_point::Interval;
use resnext_train::run_eval::EvalOptions;
use resnext_train::Run;
use std::process::ExitCode;

pub fn run(a: CompareArgs) -> Result<ExitCode> {
    let c = match (CvDir::is_cv_dir(&a.a), CvDir::is_cv_dir(&a.b)) {
        (true, true) => CvDir::open(&a.a)?.compare(
            &CvDir::open(&a.b)?,
            a.positive.as_deref(),
            &a.intervals.options(),
        )?,
        (false, false) => compare_runs(&a)?,
        (cv_a, _) => {
            let (cv, run) = if cv_a { (&a.a, &a.b) } else { (&a.b, &a.a) };
            anyhow::bail!(
                "{} is a cross-validation directory and {} is not: compare two runs, or two cv directories with the same folds.json",
                cv.display(),
                run.display()
            );
        }
    };
    print(&a, &c)
}

/// Two runs on `--split` of the split they share.
fn compare_runs(a: &CompareArgs) -> Result<Comparison> {
    let (ra, rb) = (Run::open(&a.a)?, Run::open(&a.b)?);
    let opts = EvalOptions {
        part: a.split.into(),
        checkpoint: a.checkpoint.into(),
        run: crate::args::run_options(a.device, Default::default(), Default::default(), false)?,
        batch_size: a.batch_size,
        bootstrap: a.intervals.options(),
        ..EvalOptions::default()
    };
    Ok(ra.compare(&rb, &opts, a.positive.as_deref(), &Bars::new())?)
}

fn print(a: &CompareArgs, c: &Comparison) -> Result<ExitCode> {
    if a.json {
        println!("{}", serde_json::to_string(&c)?);
        return Ok(ExitCode::SUCCESS);
    }
    let show = |v: &Option<Interval>| v.map_or("n/a".to_string(), |i| format!("{i:+}"));
    println!(
        "A {} against B {} on the {} predictions: {} images of {} patients (differences A − B, 95% patient bootstrap)",
        a.a.display(),
        a.b.display(),
        c.part,
        c.images,
        c.groups
    );
    println!(
        "accuracy {:.4} against {:.4}: difference {}; McNemar p = {:.4} ({} right only in A, {} only in B)",
        c.accuracy_a,
        c.accuracy_b,
        show(&c.accuracy_difference),
        c.mcnemar.p_value,
        c.mcnemar.b,
        c.mcnemar.c
    );
    match (&c.positive, &c.delong) {
        (Some(p), Some(d)) => println!(
            "ROC-AUC of `{p}` {:.4} against {:.4}: difference {}; DeLong z = {:.3}, p = {:.4}",
            d.auc_a,
            d.auc_b,
            show(&c.roc_auc_difference),
            d.z,
            d.p_value
        ),
        (Some(p), None) => println!("ROC-AUC of `{p}`: no DeLong test (the two rank the images alike, or a class is missing)"),
        (None, _) => println!("ROC-AUC: give --positive CLASS to compare one class's"),
    }
    Ok(ExitCode::SUCCESS)
}
