//! `resnext lr-find`: the learning-rate finder ([`resnext_train::lr_find`]) on a fresh model of
//! the config; writes `--out/lr_find.csv` and `--out/lr_find.png` and prints the suggestion with
//! its rule. `--out` may not be (or lie inside) a run or cross-validation directory: the sweep
//! touches no run.

use crate::args::LrFindArgs;
use crate::progress::Bars;
use anyhow::{bail, Context, Result};
use resnext_train::cv::CvFile;
use resnext_train::lr_find::{self, LrFindSettings, SweepStop};
use resnext_train::run::{Run, RunFile};
use std::path::Path;
use std::process::ExitCode;

/// The CSV and the figure, in `--out`.
pub const CSV: &str = "lr_find.csv";
pub const PNG: &str = "lr_find.png";

/// Refuses an `--out` that is a run or cross-validation directory, or lies inside one.
fn refuse_run_dir(out: &Path) -> Result<()> {
    let resolved = resnext_io::resolve(out).unwrap_or_else(|| out.to_path_buf());
    for (i, dir) in resolved.ancestors().enumerate() {
        let run = Run::at(dir);
        let kind = if run.holds_run() || (i == 0 && run.path(RunFile::Config).exists()) {
            "a run"
        } else if dir.join(CvFile::Folds.name()).exists() {
            "a cross-validation"
        } else {
            continue;
        };
        bail!(
            "--out {}: {} is {kind} directory; lr-find writes no run's files, choose another folder",
            out.display(),
            dir.display()
        );
    }
    Ok(())
}

pub fn run(a: LrFindArgs) -> Result<ExitCode> {
    // an epoch count, as a flag or through --set, means nothing to a sweep
    let set_epochs = a
        .training
        .sets
        .iter()
        .find(|s| s.split('=').next().map(str::trim) == Some("train.epochs"))
        .map(|s| format!("--set {s}"));
    if let Some(given) = a
        .training
        .epochs
        .map(|e| format!("--epochs {e}"))
        .or(set_epochs)
    {
        bail!("{given}: lr-find runs --steps optimiser steps (default 100), not epochs; drop it");
    }
    let settings = LrFindSettings {
        start_lr: a.start_lr,
        end_lr: a.end_lr,
        steps: a.steps as usize,
        rule: a.suggest.into(),
        ..LrFindSettings::default()
    };
    settings.validate()?;
    refuse_run_dir(&a.out)?;
    match std::fs::symlink_metadata(&a.out) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!(
            "--out {} exists and is not a directory (links are not followed)",
            a.out.display()
        ),
        Err(_) => std::fs::create_dir_all(&a.out)
            .with_context(|| format!("--out {}: cannot create the folder", a.out.display()))?,
    }
    let (csv_path, png_path) = (a.out.join(CSV), a.out.join(PNG));
    // a bad target costs nothing: checked before the sweep
    resnext_io::check_target(&csv_path)?;
    resnext_io::check_target(&png_path)?;
    let cfg = a.training.config()?;
    let bars = Bars::new();
    let found = lr_find::lr_find(cfg, a.training.init_weights().as_ref(), &settings, &bars)?;
    resnext_io::write_atomic(&csv_path, lr_find::csv(&found.points).as_bytes())?;
    let curve: Vec<(f64, f64, f64)> = found
        .points
        .iter()
        .map(|p| (p.lr, p.loss, p.smoothed))
        .collect();
    let png =
        resnext_train::plot::lr_find_png(&curve, found.suggestion.map(|s| (s.lr, s.rule.name())))?;
    resnext_io::write_atomic(&png_path, &png)?;
    let steps = found.points.len();
    let (step, why) = match found.stop {
        SweepStop::Completed => (None, ""),
        SweepStop::Diverged { step } => (Some(step), "the smoothed loss exceeded 4x its best"),
        SweepStop::NonFinite { step } => (Some(step), "the loss became non-finite"),
    };
    match step {
        None => eprintln!("lr-find: {steps} steps"),
        Some(step) => eprintln!(
            "lr-find: stopped at step {} of {} (lr {:.2e}): {why}",
            step + 1,
            settings.steps,
            settings.lr_at(step)
        ),
    }
    eprintln!("wrote {} and {}", csv_path.display(), png_path.display());
    let Some(s) = found.suggestion else {
        bail!(
            "lr-find: {steps} step(s) are too few to suggest a learning rate; raise --steps or --start-lr"
        );
    };
    println!(
        "suggested learning rate: {:.3e} ({} rule)",
        s.lr,
        s.rule.name()
    );
    Ok(ExitCode::SUCCESS)
}
