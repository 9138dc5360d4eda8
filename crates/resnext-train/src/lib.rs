//! Training ResNeXt classifiers (Xie et al. 2017) on ImageFolder data, done as torchvision's and
//! timm's reference trainers do it, and correctly where the original tutorial was not: logits
//! into cross-entropy (no double softmax), the best checkpoint really the best, evaluation with
//! the eval transform, a seeded (and optionally grouped) split.
//!
//! - [`config`]: the TOML training config, `--set` overrides, validation.
//! - [`optim`]: Adam, AdamW and SGD with state the project owns (saved for exact resume).
//! - [`schedule`]: constant, step and cosine learning rates with linear warmup.
//! - [`loss`]: cross-entropy on logits with label smoothing and soft targets.
//! - [`metric`]: running loss/accuracy, the per-epoch row and `metrics.csv`; classification
//!   reports (precision/recall/F1, confusion matrix, ROC-AUC).
//! - [`checkpoint`]: the run directory, torchvision-loadable weights, sidecars, resume state.
//! - [`ema`]: an exponential moving average of the weights.
//! - [`trainer`]: the loop.
//! - [`explain`]: Grad-CAM class-activation maps.
//! - [`evaluate`]: predictions of a checkpoint over a dataset part.
//! - [`memory`]: keeping freed memory in the process between steps (glibc malloc tuning).
//! - [`precision`]: fp32 / bf16 / fp16 and memory-format handling of inputs.

pub mod checkpoint;
pub mod config;
pub mod ema;
pub mod error;
pub mod evaluate;
pub mod explain;
pub mod loss;
pub mod memory;
pub mod metric;
pub mod optim;
pub mod precision;
pub mod schedule;
pub mod trainer;

pub use config::TrainConfig;
pub use error::TrainError;
pub use trainer::{EpochRow, Observer, Trainer};
