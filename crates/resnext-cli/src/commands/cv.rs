//! `resnext cv`: grouped, stratified k-fold cross-validation on top of `resnext_train::cv`.
//! Runs the folds that are not done (or only `--fold`), then, once all are, writes `oof.csv`,
//! `cv.json`, `cv.png` and `report.html` and prints the table.

use super::train::Progress;
use crate::args::CvArgs;
use crate::progress::Bars;
use anyhow::{Context, Result};
use resnext_train::cv::{CrossValidation, CvFile, CvSettings, FoldId, FoldState};
use resnext_train::plot::{plot_cv, CvFoldPlot};
use std::process::ExitCode;

pub fn run(a: CvArgs) -> Result<ExitCode> {
    let cfg = a.training.config()?;
    if let Some(fold) = a.fold {
        if fold >= a.folds || a.repeat >= a.repeats {
            anyhow::bail!(
                "--fold {fold} --repeat {} does not exist: folds are 0..{} and repeats 0..{}",
                a.repeat,
                a.folds,
                a.repeats
            );
        }
    }
    let settings = CvSettings {
        folds: a.folds,
        repeats: a.repeats,
        val: a.val,
        init_weights: a.training.init_weights(),
        checkpoint: a.checkpoint.into(),
    };
    let mut cv =
        CrossValidation::prepare(cfg, &a.out, &settings)?.with_bootstrap(a.intervals.options());
    if let Some(p) = &a.analysis.positive {
        cv = cv.with_positive(p.clone())?;
    }
    if let (Some(p), Some(c)) = (&a.analysis.positive, a.analysis.operating_point) {
        cv = cv.with_operating_point(p.clone(), c)?;
    }
    if let (Some(p), Some(t)) = (&a.analysis.positive, a.analysis.pauc_min_tpr) {
        cv = cv.with_partial_auc(p.clone(), t)?;
    }
    if let (Some(file), Some(column)) = (&a.analysis.metadata, &a.analysis.by) {
        let meta = resnext_train::subgroups::read_metadata(file, column)?;
        cv = cv.with_subgroups(column.clone(), meta);
    }
    let ids: Vec<FoldId> = match a.fold {
        Some(fold) => vec![FoldId {
            repeat: a.repeat,
            fold,
        }],
        None => cv.ids(),
    };
    let dir = a.out.display().to_string();
    crate::interrupt::on_sigint_say(format!(
        "\ninterrupted: {dir} keeps every finished fold and epoch; run the same `resnext cv` command again to continue\n"
    ));
    let bars = Bars::new();
    for id in ids {
        let name = cv.name(id);
        match cv.state(id) {
            FoldState::Done => {
                eprintln!("{name}: done, skipped");
                continue;
            }
            FoldState::Started => eprintln!("{name}: resuming"),
            FoldState::New => eprintln!("{name}: training"),
        }
        let mut obs = Progress::new();
        let report = cv
            .run_fold(id, &mut obs, &bars)
            .with_context(|| name.clone())?;
        obs.finish();
        eprintln!(
            "{name}: test accuracy {:.4} on {} images",
            report.report.accuracy, report.report.samples
        );
    }
    if !cv.complete() {
        let left: Vec<String> = cv
            .ids()
            .into_iter()
            .filter(|&id| cv.state(id) != FoldState::Done)
            .map(|id| cv.name(id))
            .collect();
        eprintln!(
            "{} fold(s) not done yet ({}); the summary is written once all are",
            left.len(),
            left.join(", ")
        );
        return Ok(ExitCode::SUCCESS);
    }
    let (summary, curves) = cv.summarise()?;
    let names: Vec<String> = cv.ids().into_iter().map(|id| cv.name(id)).collect();
    print!("{}", summary.table(&names));
    if let Some(i) = &summary.pooled.intervals {
        print!("pooled out-of-fold, {}", i.table(&summary.classes));
    }
    if let Some(op) = &summary.operating_point {
        let show = |v: &Option<resnext_train::metric::operating_point::Interval>| {
            v.map_or("n/a".to_string(), |i| i.to_string())
        };
        println!(
            "operating point {} for `{}`, cross-fitted (each fold at the threshold chosen on the others): sensitivity {}, specificity {}, PPV {}, NPV {}; to deploy: threshold {:.4} (chosen on {} out-of-fold predictions)",
            op.point.criterion,
            op.point.positive,
            show(&op.sensitivity),
            show(&op.specificity),
            show(&op.ppv),
            show(&op.npv),
            op.point.threshold,
            op.point.chosen_on_images
        );
    }
    for g in &summary.subgroups {
        println!("pooled out-of-fold, {}", resnext_train::subgroups::line(g));
    }
    if let Some(p) = &summary.partial_auc {
        println!("pooled out-of-fold, {}", p.line());
    }
    let plots: Vec<CvFoldPlot> = summary
        .folds
        .iter()
        .zip(&names)
        .zip(curves)
        .map(|((f, name), roc)| CvFoldPlot {
            name: name.clone(),
            accuracy: f.metrics.accuracy,
            macro_f1: f.metrics.macro_f1,
            roc_auc: f.metrics.roc_auc,
            ece: f.metrics.ece.unwrap_or(0.0),
            roc_curve: roc,
        })
        .collect();
    let png = cv.path(CvFile::Figure);
    if let Err(e) = plot_cv(
        &png,
        &plots,
        &summary.classes,
        &summary.pooled.confusion_matrix,
        &summary.pooled.reliability,
    ) {
        eprintln!("warning: {} not drawn: {e}", png.display());
    }
    println!(
        "-> {}, {}, {}",
        cv.path(CvFile::Summary).display(),
        cv.path(CvFile::Oof).display(),
        png.display()
    );
    let opts = resnext_train::report::ReportOptions::default();
    match super::report::write_cv(&a.out, None, &opts) {
        Ok(p) => println!("-> {}", p.display()),
        Err(e) => eprintln!("warning: report.html not written: {e:#}"),
    }
    Ok(ExitCode::SUCCESS)
}
