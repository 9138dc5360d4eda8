//! `resnext train`: config + overrides -> a run directory, with progress bars on a terminal and
//! plain lines otherwise.

use crate::args::TrainArgs;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use resnext_train::trainer::{Observer, StartInfo};
use resnext_train::{EpochRow, TrainConfig, Trainer};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(a: TrainArgs) -> Result<ExitCode> {
    let mut trainer = if let Some(dir) = &a.resume {
        if a.config.is_some()
            || !a.sets.is_empty()
            || a.data.is_some()
            || a.init_weights.is_some()
            || a.batch_size.is_some()
        {
            anyhow::bail!("--resume continues a run with its own config; only --epochs and --device may change");
        }
        Trainer::resume(dir, a.epochs, a.device.clone())
            .with_context(|| format!("cannot resume {}", dir.display()))?
    } else {
        let mut sets = a.sets.clone();
        if let Some(d) = &a.data {
            sets.push(format!("data.root={}", toml_string(&d.to_string_lossy())));
        }
        if let Some(e) = a.epochs {
            sets.push(format!("train.epochs={e}"));
        }
        if let Some(b) = a.batch_size {
            sets.push(format!("data.batch_size={b}"));
        }
        if let Some(d) = &a.device {
            sets.push(format!("train.device={}", toml_string(d)));
        }
        let cfg = TrainConfig::load(a.config.as_deref(), &sets)?;
        let out = a
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(&cfg.name));
        let (trainer, report) = Trainer::new(cfg, &out, a.init_weights.as_deref())?;
        if let (Some(r), Some(p)) = (report, &a.init_weights) {
            eprintln!("init weights {}: {r}", p.display());
        }
        trainer
    };
    let mut obs = Progress::new();
    let outcome = trainer.fit(&mut obs)?;
    obs.finish();
    println!(
        "best val_acc {:.2}% at epoch {} -> {}",
        outcome.best_val_acc * 100.0,
        outcome.best_epoch,
        trainer.run_dir().join("best.safetensors").display()
    );
    let device = resnext_train::trainer::parse_device(&trainer.config().train.device)?;
    match crate::commands::eval::evaluate(
        trainer.run_dir(),
        None,
        "val",
        "best",
        false,
        device,
        None,
    ) {
        Ok((report, _)) => print!(
            "validation report of the best checkpoint:\n{}",
            report.table()
        ),
        Err(e) => eprintln!("warning: evaluation after training failed: {e:#}"),
    }
    if let Err(e) = crate::commands::plot::plot_run(trainer.run_dir()) {
        eprintln!("warning: plots not drawn: {e:#}");
    }
    Ok(ExitCode::SUCCESS)
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Progress bars with ETA on a terminal; plain lines otherwise.
struct Progress {
    tty: bool,
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            bar: None,
        }
    }
    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn on_start(&mut self, i: &StartInfo) {
        eprintln!(
            "run {}: {} classes {:?}; train {} / val {} / test {} images; {:?}; {} parameters; epochs {}..={}; threads: libtorch {}, data {}",
            i.run_dir.display(),
            i.classes.len(),
            i.classes,
            i.train_images,
            i.val_images,
            i.test_images,
            i.device,
            i.parameters,
            i.first_epoch,
            i.epochs,
            i.torch_threads,
            i.data_threads
        );
    }
    fn on_epoch_start(&mut self, epoch: usize, num_batches: usize) {
        if self.tty {
            let bar = ProgressBar::new(num_batches as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}",
                )
                .expect("template")
                .progress_chars("=> "),
            );
            bar.set_prefix(epoch.to_string());
            self.bar = Some(bar);
        } else {
            eprintln!("epoch {epoch}: {num_batches} batches");
        }
    }
    fn on_batch(&mut self, _epoch: usize, _batch: usize, loss: f64, acc: f64) {
        if let Some(b) = &self.bar {
            b.set_message(format!("loss {loss:.4} acc {:.1}%", acc * 100.0));
            b.inc(1);
        }
    }
    fn on_validate(&mut self, epoch: usize) {
        if let Some(b) = &self.bar {
            b.set_message("validating".to_string());
        } else {
            eprintln!("epoch {epoch}: validating");
        }
    }
    fn on_epoch(&mut self, row: &EpochRow, is_best: bool) {
        self.finish();
        println!(
            "{}{}",
            row.log_line(),
            if is_best { "  (best)" } else { "" }
        );
    }
    fn on_note(&mut self, note: &str) {
        eprintln!("{note}");
    }
}
