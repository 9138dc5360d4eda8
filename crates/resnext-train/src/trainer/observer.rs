//! What the training loop reports as it goes; the CLI draws progress bars and prints lines from
//! it, a library user may pass [`Silent`].

use resnext_infer::metric::EpochRow;
use std::path::PathBuf;
use tch::Device;

/// Receives the loop's events; every method has a do-nothing default.
pub trait Observer {
    fn on_start(&mut self, _info: &StartInfo) {}
    fn on_epoch_start(&mut self, _epoch: usize, _num_batches: usize) {}
    fn on_batch(&mut self, _epoch: usize, _batch: usize, _loss: f64, _acc: f64) {}
    /// Validation of `epoch` starts, over `images` images.
    fn on_validate(&mut self, _epoch: usize, _images: usize) {}
    /// `n` more validation images are done.
    fn on_validate_progress(&mut self, _n: usize) {}
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
