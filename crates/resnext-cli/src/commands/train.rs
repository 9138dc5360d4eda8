//! `resnext train`: config + overrides -> a run directory, with progress bars on a terminal and
//! plain lines otherwise.

use crate::args::TrainArgs;
use crate::dist::Job;
use crate::progress::{bar, is_tty, Bars};
use anyhow::{Context, Result};
use indicatif::ProgressBar;
use resnext_train::trainer::{Observer, StartInfo};
use resnext_train::{
    Checkpoint, EpochRow, EvalOptions, Progress as _, RunFile, RunOptions, Trainer,
};
use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(a: TrainArgs) -> Result<ExitCode> {
    let job = Job::start()?;
    // one rank's error ends the job, named
    train(a, &job).or_else(|e| match job.size() {
        1 => Err(e),
        _ => job.fail(&crate::one_line::one_line(&e)),
    })
}

fn train(a: TrainArgs, job: &Job) -> Result<ExitCode> {
    let t = &a.training;
    let mut trainer = if let Some(dir) = &a.resume {
        Trainer::resume_on(job.comm(), dir, t.epochs, t.device)
            .with_context(|| format!("cannot resume {}", dir.display()))?
    } else {
        let cfg = t.config()?;
        let out = a
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(&cfg.name));
        let (trainer, report) = Trainer::new_on(job.comm(), cfg, &out, t.init_weights().as_ref())?;
        if let (Some(r), Some(p)) = (report, &t.init_weights) {
            eprintln!("init weights {}: {r}", p.display());
        }
        trainer
    };
    let dir = trainer.run_dir().display().to_string();
    if let (Some(p), Some(_)) = (&a.positive, &a.operating_point) {
        // checked before any epoch: a typo costs no training (the criterion is parsed with
        // the flag)
        let classes = trainer.run().split()?.classes;
        resnext_train::operating::check_request(&classes, p)?;
    }
    if !trainer.writes() {
        // ranks other than 0 train in silence; rank 0 reports, writes, evaluates and plots
        trainer.fit(&mut resnext_train::trainer::Silent)?;
        return Ok(ExitCode::SUCCESS);
    }
    crate::interrupt::on_sigint_say(format!(
        "\ninterrupted: {dir} keeps every finished epoch; continue with `resnext train --resume {dir}`\n"
    ));
    let mut obs = Progress::new();
    if trainer.ranks() > 1 {
        obs.on_note(&format!(
            "data-parallel training on {} processes (MPI); the global batch is data.batch_size",
            trainer.ranks()
        ));
    }
    let outcome = trainer.fit(&mut obs)?;
    obs.finish();
    let run = trainer.run().clone();
    println!(
        "best val_acc {:.2}% at epoch {} -> {}",
        outcome.best_val_acc * 100.0,
        outcome.best_epoch,
        run.path(RunFile::Weights(Checkpoint::Best)).display()
    );
    let cfg = trainer.config();
    let opts = EvalOptions {
        run: RunOptions {
            device: trainer.device(),
            precision: trainer.numerics().precision,
            channels_last: trainer.numerics().channels_last,
            tta: false,
        },
        batch_size: cfg.data.eval_batch_size.unwrap_or(cfg.data.batch_size),
        positive: a.positive.clone(),
        ..EvalOptions::default()
    };
    // the run stays locked until its report and plots are written
    let _lock = trainer.into_lock();
    let bars = Bars::new();
    match run
        .evaluate(&opts, &bars)
        .and_then(|r| run.save_eval(&r).map(|_| r))
    {
        Ok(report) => print!(
            "validation report of the best checkpoint:\n{}",
            report.report.table()
        ),
        Err(e) => eprintln!("warning: evaluation after training failed: {e}"),
    }
    if let Err(e) = run.plot(&bars) {
        eprintln!("warning: plots not drawn: {e}");
    }
    if let (Some(p), Some(c)) = (&a.positive, a.operating_point) {
        operating_point(&run, &opts, p, c, &bars)
            .context("training finished, but the operating point was not chosen")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The operating point chosen on the validation part with the best checkpoint, reported on the
/// test part when the split has one (never on the part it was chosen on), stored in best.json.
fn operating_point(
    run: &resnext_train::Run,
    opts: &EvalOptions,
    positive: &str,
    criterion: resnext_train::Criterion,
    bars: &Bars,
) -> Result<()> {
    let test = EvalOptions {
        part: resnext_train::SplitPart::Test,
        ..opts.clone()
    };
    let point = if run.split()?.test.is_empty() {
        let point = run.choose_on_val(opts, positive, criterion, bars)?;
        println!(
            "operating point {} for `{positive}`: threshold {:.4} chosen on val ({} images); no test part to report it on (data.test = 0)",
            point.criterion, point.threshold, point.chosen_on_images
        );
        point
    } else {
        let (report, _) = run.evaluate_at(&test, positive, Some(criterion), None, bars)?;
        let at = report
            .operating_point
            .context("evaluate_at returned no operating point")?;
        println!("{}", at.line());
        at.point
    };
    run.store_operating_point(Checkpoint::Best, &point)?;
    println!(
        "-> {}: predict and serve decide at threshold {:.4}",
        run.path(RunFile::Sidecar(Checkpoint::Best)).display(),
        point.threshold
    );
    Ok(())
}

/// Progress bars with ETA on a terminal; plain lines otherwise (a line per quarter of the
/// training batches and of the validation images).
#[derive(Default)]
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    /// The training batches' quarter lines, off a terminal.
    training: Bars,
    validation: Bars,
}

impl Progress {
    pub(crate) fn new() -> Self {
        Self::default()
    }
    pub(crate) fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        self.training.end();
        self.validation.end();
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
        if is_tty() {
            self.bar = Some(bar(num_batches, &format!("epoch {epoch}")));
        } else {
            eprintln!("epoch {epoch}: {num_batches} batches");
            self.training
                .begin(&format!("epoch {epoch}: training"), num_batches);
        }
    }
    fn on_batch(&mut self, _epoch: usize, _batch: usize, loss: f64, acc: f64) {
        if let Some(b) = &self.bar {
            b.set_message(format!("loss {loss:.4} acc {:.1}%", acc * 100.0));
            b.inc(1);
        } else {
            self.training.advance(1);
        }
    }
    fn on_validate(&mut self, epoch: usize, images: usize) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        self.validation
            .begin(&format!("epoch {epoch}: validating"), images);
    }
    fn on_validate_progress(&mut self, n: usize) {
        self.validation.advance(n);
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
