//! Training ResNeXt classifiers (Xie et al. 2017) on ImageFolder data, done as torchvision's and
//! timm's reference trainers do it, and correctly where the original tutorial was not: logits
//! into cross-entropy (no double softmax), the best checkpoint really the best, evaluation with
//! the eval transform, a seeded (and optionally grouped) split.
//!
//! The way in for a library user is [`Run`]: open a run directory, get a [`Predictor`], evaluate
//! and plot, with nothing from the CLI:
//!
//! ```no_run
//! # fn main() -> Result<(), resnext_train::TrainError> {
//! use resnext_train::{Checkpoint, EvalOptions, NoProgress, Run, RunOptions};
//! let run = Run::open("runs/demo")?;
//! let predictor = run.predictor(Checkpoint::Best, RunOptions::cpu())?;
//! let image = resnext_data::decode_file("photo.jpg".as_ref(), Default::default())?;
//! let prediction = &predictor.predict(&[image])?[0];
//! println!("{:?} {:.3}", prediction.label, prediction.probs[prediction.class]);
//! let report = run.evaluate(&EvalOptions::default(), &NoProgress)?;
//! run.save_eval(&report)?;
//! # Ok(()) }
//! ```
//!
//! Inference (the run directory, checkpoints, the predictor, evaluation, metrics, plots) is the
//! `resnext-infer` crate, re-exported here under the same paths; this crate adds training:
//!
//! - [`config`]: the TOML training config, `--set` overrides, validation.
//! - [`dist`]: data-parallel training across processes (MPI with feature `mpi`).
//! - [`optim`]: Adam, AdamW and SGD with state the project owns (saved for exact resume).
//! - [`schedule`]: constant, step and cosine learning rates with linear warmup.
//! - [`loss`]: cross-entropy on logits with label smoothing and soft targets.
//! - [`ema`]: an exponential moving average of the weights.
//! - [`swa`]: stochastic weight averaging and BatchNorm's statistics pass.
//! - [`average`]: averaging saved checkpoints (`resnext average`).
//! - [`resume`]: the resume point's loop state, saved and loaded with the weights.
//! - [`trainer`]: the loop (building it, one step, early stopping, the observer).
//! - [`tensorboard`]: TensorBoard event files (`train.tensorboard = true`), and their writer.
//! - [`lr_find`]: the learning-rate finder (an exponential sweep, fastai's valley or steepest).
//! - [`memory`]: keeping freed memory in the process between steps (glibc malloc tuning).

pub mod average;
pub mod component;
pub mod config;
pub mod cv;
#[cfg(feature = "plot")]
pub mod cv_report;
pub mod dist;
pub mod ema;
pub mod error;
pub mod fnv;
pub mod loss;
pub mod lr_find;
pub mod memory;
pub mod optim;
pub mod resume;
pub mod schedule;
pub mod swa;
pub mod tensorboard;
pub mod trainer;

// Inference lives in resnext-infer; its modules keep their paths here (`resnext_train::run`, …).
pub use resnext_infer::{
    checkpoint, compare, device, evaluate, explain, metric, operating, owned, precision, predictor,
    progress, run, run_eval, subgroups,
};
#[cfg(feature = "plot")]
pub use resnext_infer::{plot, report};

pub use checkpoint::Checkpoint;
pub use config::{Precision, TrainConfig};
pub use device::DeviceChoice;
pub use error::TrainError;
pub use evaluate::RunOptions;
pub use metric::{EvalReport, Report};
pub use predictor::{Prediction, Predictor, Preprocessor};
pub use progress::{NoProgress, Progress};
pub use resnext_infer::InferError;
/// How `--operating-point` chooses a threshold (`sensitivity=T`, `specificity=T`, `youden`).
pub use resnext_stats::Criterion;
pub use run::{Run, RunFile, SplitPart};
pub use run_eval::EvalOptions;
pub use trainer::{EpochRow, Observer, Trainer};
