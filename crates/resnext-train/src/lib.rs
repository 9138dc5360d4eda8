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
//! - [`run`]: the run directory, every file name in it, evaluation of a run.
//! - [`predictor`]: a trained model with its classes and eval transform, batched prediction,
//!   Grad-CAM.
//! - [`config`]: the TOML training config, `--set` overrides, validation.
//! - [`dist`]: data-parallel training across processes (MPI with feature `mpi`).
//! - [`device`]: `cpu`/`cuda[:N]`/`auto`, and loading libtorch's CUDA library.
//! - [`optim`]: Adam, AdamW and SGD with state the project owns (saved for exact resume).
//! - [`schedule`]: constant, step and cosine learning rates with linear warmup.
//! - [`loss`]: cross-entropy on logits with label smoothing and soft targets.
//! - [`metric`]: the per-epoch row and `metrics.csv`, running means, classification reports and
//!   `eval.json`.
//! - [`checkpoint`]: sidecars and resume state.
//! - [`owned`]: whether a path is one of a run's (or a cross-validation's) own files.
//! - [`ema`]: an exponential moving average of the weights.
//! - [`trainer`]: the loop (building it, one step, early stopping, the observer).
//! - [`explain`]: Grad-CAM class-activation maps and their overlays.
//! - [`evaluate`]: predictions of a network over a dataset part.
//! - [`progress`]: how long operations report progress.
//! - [`plot`] (feature `plot`): PNG figures of a run.
//! - [`memory`]: keeping freed memory in the process between steps (glibc malloc tuning).
//! - [`precision`]: fp32 / bf16 / fp16 and memory-format handling of inputs.

pub mod checkpoint;
pub mod config;
pub mod cv;
pub mod device;
pub mod dist;
pub mod ema;
pub mod error;
pub mod evaluate;
pub mod explain;
pub mod loss;
pub mod memory;
pub mod metric;
pub mod optim;
pub mod owned;
#[cfg(feature = "plot")]
pub mod plot;
pub mod precision;
pub mod predictor;
pub mod progress;
pub mod run;
pub mod schedule;
pub mod trainer;

pub use checkpoint::Checkpoint;
pub use config::{Precision, TrainConfig};
pub use device::DeviceChoice;
pub use error::TrainError;
pub use evaluate::RunOptions;
pub use metric::{EvalReport, Report};
pub use predictor::{Prediction, Predictor, Preprocessor};
pub use progress::{NoProgress, Progress};
pub use run::{EvalOptions, Run, RunFile, SplitPart};
pub use trainer::{EpochRow, Observer, Trainer};
