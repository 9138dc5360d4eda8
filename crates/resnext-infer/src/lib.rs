//! Inference for ResNeXt classifiers trained by resnext-rs, without the training loop: a run
//! directory and its files, checkpoints and their sidecars, a [`Predictor`] (the eval transform,
//! batched prediction, test-time flip, Grad-CAM), evaluation and temperature calibration of a
//! run, the metrics of `eval.json`, and (feature `plot`) the figures.
//!
//! ```no_run
//! # fn main() -> Result<(), resnext_infer::InferError> {
//! use resnext_infer::{Checkpoint, EvalOptions, NoProgress, Run, RunOptions};
//! let run = Run::open("runs/demo")?;
//! let predictor = run.predictor(Checkpoint::Best, RunOptions::cpu())?;
//! let image = resnext_data::decode_file("photo.jpg".as_ref(), Default::default())?;
//! let prediction = &predictor.predict(&[image])?[0];
//! let report = run.evaluate(&EvalOptions::default(), &NoProgress)?;
//! run.save_eval(&report)?;
//! # Ok(()) }
//! ```
//!
//! - [`run`]: the run directory, every file name in it, its lock.
//! - [`checkpoint`]: which weights, and their sidecar (validated on load).
//! - [`predictor`]: a trained model with its classes and eval transform.
//! - [`run_eval`]: evaluating and calibrating a run's checkpoint.
//! - [`evaluate`]: a network's predictions over a loader; how the network runs.
//! - [`explain`]: Grad-CAM class-activation maps and their overlays.
//! - [`metric`]: the per-epoch row and `metrics.csv`, reports, calibration, ROC.
//! - [`precision`]: fp32 / bf16 / fp16 / fp64 and the memory format of inputs.
//! - [`device`]: `cpu`/`cuda[:N]`/`auto`, and loading libtorch's CUDA library.
//! - [`owned`]: whether a path is a run's (or a cross-validation's) own file.
//! - [`cv_dir`]: the file names of a cross-validation directory.
//! - [`progress`]: how long operations report progress.
//! - [`plot`] (feature `plot`): PNG figures of a run.
//! - [`report`] (feature `plot`): `report.html`, a run's or a cross-validation's page.
//!
//! No module depends on one listed after it that depends back on it: `run` knows no consumer.

pub mod checkpoint;
pub mod compare;
pub mod cv_dir;
pub mod device;
pub mod error;
pub mod evaluate;
pub mod explain;
pub mod metric;
pub mod operating;
pub mod owned;
#[cfg(feature = "plot")]
pub mod plot;
pub mod precision;
pub mod predictor;
pub mod progress;
#[cfg(feature = "plot")]
pub mod report;
pub mod run;
pub mod run_eval;
pub mod subgroups;

pub use checkpoint::{Checkpoint, CheckpointInfo};
pub use device::DeviceChoice;
pub use error::InferError;
pub use evaluate::RunOptions;
pub use metric::{EvalReport, Report};
pub use precision::Precision;
pub use predictor::{Prediction, Predictor, Preprocessor};
pub use progress::{NoProgress, Progress};
pub use run::{Run, RunFile, SplitPart};
pub use run_eval::{Calibration, EvalOptions, SamplePrediction};
