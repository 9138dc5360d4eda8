//! `resnext eval`: the classification report of a run on its val, test or every image, printed
//! as a table and written to `<run>/eval.json` (each image's prediction to
//! `eval_predictions.json`, the page to `report.html`); `--calibrate` fits and stores a
//! temperature.

use crate::args::EvalArgs;
use crate::progress::Bars;
use anyhow::Result;
use resnext_train::report::predictions::EvalPredictions;
use resnext_train::report::ReportOptions;
use resnext_train::{EvalOptions, Run};
use std::process::ExitCode;

pub fn run(a: EvalArgs) -> Result<ExitCode> {
    let run = Run::open(&a.run)?;
    let opts = EvalOptions {
        part: a.split.into(),
        checkpoint: a.checkpoint.into(),
        run: a.numerics.resolve(a.tta)?,
        batch_size: a.batch_size,
        data: a.data,
        fold_bn: a.fold_bn,
        bootstrap: a.intervals.options(),
        positive: a.analysis.positive.clone(),
    };
    // a writer: refused at once while another process writes the run
    let lock = if a.no_write { None } else { Some(run.lock()?) };
    let (mut report, preds) = match &a.analysis.positive {
        Some(positive) => run.evaluate_at(
            &opts,
            positive,
            a.analysis.operating_point,
            a.analysis.pauc_min_tpr,
            &Bars::new(),
        )?,
        None => run.evaluate_with_predictions(&opts, &Bars::new())?,
    };
    if let (Some(file), Some(column)) = (&a.analysis.metadata, &a.analysis.by) {
        let meta = resnext_train::subgroups::read_metadata(file, column)?;
        let positive = a
            .analysis
            .positive
            .as_deref()
            .map(|p| resnext_train::metric::operating_point::class_index(&report.classes, p))
            .transpose()?;
        report.subgroups = resnext_train::subgroups::subgroups(
            column,
            &meta,
            &preds,
            &run.groups_of(&preds)?,
            &opts.bootstrap,
            positive,
        );
    }
    print!("{}", report.report.table());
    if let Some(i) = &report.intervals {
        print!("{}", i.table(&report.classes));
    }
    if let Some(op) = &report.operating_point {
        println!("{}", op.line());
    }
    for g in &report.subgroups {
        println!("{}", resnext_train::subgroups::line(g));
    }
    if let Some(p) = &report.partial_auc {
        println!("{}", p.line());
    }
    if lock.is_some() {
        let path = run.save_eval(&report)?;
        println!("-> {}", path.display());
        // each image's prediction, for the report's curve bands and gallery
        let root = match &opts.data {
            Some(d) => d.clone(),
            None => run.info(opts.checkpoint)?.data_root,
        };
        run.save_eval_predictions(&EvalPredictions::of(&report, &preds, root))?;
        if let Some(op) = &report.operating_point {
            run.store_operating_point(opts.checkpoint, &op.point)?;
            println!(
                "-> {}: predict and serve decide at threshold {:.4}",
                run.path(resnext_train::RunFile::Sidecar(opts.checkpoint))
                    .display(),
                op.point.threshold
            );
        }
        match super::report::write_run(&run, None, &ReportOptions::default()) {
            Ok(p) => println!("-> {}", p.display()),
            Err(e) => eprintln!("warning: report.html not written: {e:#}"),
        }
    }
    if a.calibrate {
        let c = run.calibrate(&opts, &Bars::new())?;
        println!(
            "temperature {:.4} (fitted on {} validation images): NLL {:.4} -> {:.4}, ECE {:.4} -> {:.4}; stored in {}",
            c.temperature,
            c.samples,
            c.nll_before,
            c.nll_after,
            c.ece_before,
            c.ece_after,
            run.path(resnext_train::RunFile::Sidecar(opts.checkpoint)).display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
