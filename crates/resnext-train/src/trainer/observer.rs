//! What the training loop reports as it goes; the CLI draws progress bars and prints lines from
//! it, a library user may pass [`Silent`].

use resnext_data::Batch;
use resnext_infer::evaluate::Predictions;
use resnext_infer::metric::EpochRow;
use std::path::PathBuf;
use tch::Device;

/// Receives the loop's events; every method has a do-nothing default.
pub trait Observer {
    fn on_start(&mut self, _info: &StartInfo) {}
    fn on_epoch_start(&mut self, _epoch: usize, _num_batches: usize) {}
    fn on_batch(&mut self, _epoch: usize, _batch: usize, _loss: f64, _acc: f64) {}
    /// An optimiser step is done (once per step, after its last micro-batch).
    fn on_step(&mut self, _step: &StepInfo<'_>) {}
    /// Validation of `epoch` starts, over `images` images.
    fn on_validate(&mut self, _epoch: usize, _images: usize) {}
    /// `n` more validation images are done.
    fn on_validate_progress(&mut self, _n: usize) {}
    /// Validation of `epoch` is done: the predictions of the whole validation part.
    fn on_validated(&mut self, _epoch: usize, _preds: &Predictions) {}
    fn on_epoch(&mut self, _row: &EpochRow, _is_best: bool) {}
    fn on_note(&mut self, _note: &str) {}
}

/// An observer that reports nothing.
#[derive(Debug, Default)]
pub struct Silent;
impl Observer for Silent {}

/// Facts about a run, reported once at its start.
#[derive(Debug, Clone)]
pub struct StartInfo {
    pub run_dir: PathBuf,
    pub classes: Vec<String>,
    pub train_images: usize,
    pub val_images: usize,
    pub test_images: usize,
    pub device: Device,
    pub parameters: i64,
    pub first_epoch: usize,
    pub epochs: usize,
    pub torch_threads: usize,
    pub data_threads: usize,
}

/// One optimiser step, as [`Observer::on_step`] reports it.
#[derive(Debug, Clone, Copy)]
pub struct StepInfo<'a> {
    pub epoch: usize,
    /// The 1-based index in the epoch of the step's last (micro-)batch.
    pub batch: usize,
    /// The loader's batches per epoch.
    pub batches: usize,
    /// The step's training loss (the mean over its images of this process).
    pub loss: f64,
    /// The learning rate the step used.
    pub lr: f64,
    /// Images in the step (this process's).
    pub images: usize,
    /// Seconds since the previous step ended (loading the data included).
    pub seconds: f64,
    /// The step's first (micro-)batch, as the model saw it (augmented and normalised).
    pub batch_data: &'a Batch,
}

impl StepInfo<'_> {
    /// A step number that grows over the whole run, resumed runs included:
    /// `(epoch - 1) · batches + batch`.
    pub fn global_step(&self) -> usize {
        (self.epoch - 1) * self.batches + self.batch
    }
}
