//! [`TensorBoard`]: the training loop's observer that writes a run's `tb/` event file: per
//! optimiser step `train/loss`, `train/lr` and `train/throughput` (images per second); per
//! epoch every `metrics.csv` column as `epoch/<column>` (the same [`EpochRow`] values), the
//! validation ECE (`epoch/val_ece`) and the confusion matrix (`val/confusion_matrix`, feature
//! `plot`); once, the resolved config as hyper-parameters (the hparams plugin) and as text
//! (`config`), and a grid of the first step's augmented training inputs, de-normalised
//! (`train/inputs`).

use super::writer::{flatten_toml, EventWriter, SessionStatus};
use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::trainer::observer::{Observer, StepInfo};
use resnext_data::loader::BatchImages;
use resnext_data::Batch;
use resnext_infer::evaluate::Predictions;
use resnext_infer::metric::argmax::argmax;
use resnext_infer::metric::calibration::ece;
use resnext_infer::metric::EpochRow;
use std::path::Path;

/// Images in the grid of training inputs.
pub const INPUT_GRID_IMAGES: usize = 16;

/// The scalar tags the hparams plugin shows next to the hyper-parameters.
pub const HPARAM_METRICS: [&str; 5] = [
    "epoch/val_acc",
    "epoch/val_loss",
    "epoch/val_ece",
    "epoch/train_acc",
    "epoch/train_loss",
];

/// Writes a run's TensorBoard events as the loop reports them. Write errors are kept and given
/// back by [`TensorBoard::take_error`] (the trainer checks after every epoch).
pub struct TensorBoard {
    writer: EventWriter,
    classes: Vec<String>,
    mean: [f32; 3],
    std: [f32; 3],
    inputs_written: bool,
    /// The last validation's ECE and confusion matrix, written with its epoch's row.
    validated: Option<(usize, f64, Vec<Vec<u64>>)>,
    error: Option<TrainError>,
}

impl std::fmt::Debug for TensorBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorBoard")
            .field("file", &self.writer.path())
            .finish()
    }
}

impl TensorBoard {
    /// A new event file in `dir` (a run's `tb/`) for a run of `cfg` with `classes`, starting with
    /// the hyper-parameters and the config's text.
    pub fn create(dir: &Path, cfg: &TrainConfig, classes: &[String]) -> Result<Self, TrainError> {
        let mut writer = EventWriter::create(dir)?;
        let text = cfg.to_toml()?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| TrainError::InvalidValue {
            key: "config",
            reason: format!("cannot be read back as TOML: {e}"),
        })?;
        writer.hparams(&flatten_toml(&table), &HPARAM_METRICS)?;
        // Markdown: a code block keeps the TOML as it is
        let indented: String = text.lines().map(|l| format!("    {l}\n")).collect();
        writer.text("config", 0, &indented)?;
        writer.flush()?;
        let t = &cfg.data.train_transform;
        Ok(TensorBoard {
            writer,
            classes: classes.to_vec(),
            mean: t.mean,
            std: t.std,
            inputs_written: false,
            validated: None,
            error: None,
        })
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        self.writer.path()
    }

    /// The first write error since the last call, if any.
    pub fn take_error(&mut self) -> Result<(), TrainError> {
        self.error.take().map_or(Ok(()), Err)
    }

    /// Ends the session (the hparams plugin's status) and flushes the file.
    pub fn finish(&mut self, status: SessionStatus) -> Result<(), TrainError> {
        self.take_error()?;
        self.writer.session_end(status)?;
        self.writer.flush()
    }

    fn keep(&mut self, r: Result<(), TrainError>) {
        if let (Err(e), None) = (r, &self.error) {
            self.error = Some(e);
        }
    }

    fn write_step(&mut self, s: &StepInfo<'_>) -> Result<(), TrainError> {
        let step = s.global_step() as i64;
        let w = &mut self.writer;
        w.scalar("train/loss", step, s.loss)?;
        w.scalar("train/lr", step, s.lr)?;
        let throughput = s.images as f64 / s.seconds.max(1e-9);
        w.scalar("train/throughput", step, throughput)?;
        if !self.inputs_written {
            self.inputs_written = true;
            if let Some((png, size)) = input_grid(s.batch_data, self.mean, self.std)? {
                self.writer.image_png("train/inputs", step, png, size)?;
            }
        }
        Ok(())
    }

    fn write_epoch(&mut self, row: &EpochRow) -> Result<(), TrainError> {
        let step = row.epoch as i64;
        for (name, value) in row.values() {
            self.writer.scalar(&format!("epoch/{name}"), step, value)?;
        }
        if let Some((epoch, ece, cm)) = self.validated.take() {
            if epoch == row.epoch {
                self.writer.scalar("epoch/val_ece", step, ece)?;
                self.confusion(step, &cm)?;
            }
        }
        // each epoch is on disk when it is done, for a TensorBoard that is watching
        self.writer.flush()
    }

    #[cfg(feature = "plot")]
    fn confusion(&mut self, step: i64, cm: &[Vec<u64>]) -> Result<(), TrainError> {
        let title = format!("Confusion matrix (validation, epoch {step})");
        let (png, size) = resnext_infer::plot::confusion_matrix_png(&self.classes, cm, &title)?;
        self.writer
            .image_png("val/confusion_matrix", step, png, size)
    }

    #[cfg(not(feature = "plot"))]
    fn confusion(&mut self, _step: i64, _cm: &[Vec<u64>]) -> Result<(), TrainError> {
        Ok(())
    }
}

impl Observer for TensorBoard {
    fn on_step(&mut self, step: &StepInfo<'_>) {
        let r = self.write_step(step);
        self.keep(r);
    }

    fn on_validated(&mut self, epoch: usize, preds: &Predictions) {
        let k = self.classes.len();
        let mut cm = vec![vec![0u64; k]; k];
        for (p, &y) in preds.probs.iter().zip(&preds.labels) {
            if let Some(cell) = cm.get_mut(y).and_then(|r| r.get_mut(argmax(p))) {
                *cell += 1;
            }
        }
        self.validated = Some((epoch, ece(&preds.probs, &preds.labels), cm));
    }

    fn on_epoch(&mut self, row: &EpochRow, _is_best: bool) {
        let r = self.write_epoch(row);
        self.keep(r);
    }
}

/// PNG bytes and the image's width and height.
pub type Png = (Vec<u8>, (u32, u32));

/// Up to [`INPUT_GRID_IMAGES`] images of `batch`, de-normalised with `mean` and `std` (u8
/// batches are pixels already), as one PNG grid with 2-pixel gaps; `None` for an empty batch.
pub fn input_grid(batch: &Batch, mean: [f32; 3], std: [f32; 3]) -> Result<Option<Png>, TrainError> {
    let nchw = batch.layout == resnext_data::Layout::Nchw;
    let dims = match &batch.images {
        BatchImages::F32(a) => a.dim(),
        BatchImages::U8(a) => a.dim(),
    };
    let (n, h, w) = if nchw {
        (dims.0, dims.2, dims.3)
    } else {
        (dims.0, dims.1, dims.2)
    };
    let n = n.min(INPUT_GRID_IMAGES);
    if n == 0 || h == 0 || w == 0 {
        return Ok(None);
    }
    let pixel = |i: usize, c: usize, y: usize, x: usize| -> u8 {
        let idx = if nchw { (i, c, y, x) } else { (i, y, x, c) };
        match &batch.images {
            BatchImages::F32(a) => {
                let v = (a[[idx.0, idx.1, idx.2, idx.3]] * std[c] + mean[c]) * 255.0;
                v.round().clamp(0.0, 255.0) as u8
            }
            BatchImages::U8(a) => a[[idx.0, idx.1, idx.2, idx.3]],
        }
    };
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    let gap = 2;
    let (gw, gh) = (cols * (w + gap) + gap, rows * (h + gap) + gap);
    let mut grid = image::RgbImage::new(gw as u32, gh as u32);
    for i in 0..n {
        let (ox, oy) = (gap + (i % cols) * (w + gap), gap + (i / cols) * (h + gap));
        for y in 0..h {
            for x in 0..w {
                let rgb = [pixel(i, 0, y, x), pixel(i, 1, y, x), pixel(i, 2, y, x)];
                grid.put_pixel((ox + x) as u32, (oy + y) as u32, image::Rgb(rgb));
            }
        }
    }
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(grid)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| TrainError::InvalidValue {
            key: "train.tensorboard",
            reason: format!("the grid of training inputs cannot be encoded as PNG: {e}"),
        })?;
    Ok(Some((png, (gw as u32, gh as u32))))
}

/// A run's TensorBoard observer when `train.tensorboard` is on and this process writes the run
/// (`writes`: rank 0): a new event file in `run_dir/tb/`.
pub fn for_run(
    cfg: &TrainConfig,
    run_dir: &Path,
    classes: &[String],
    writes: bool,
) -> Result<Option<TensorBoard>, TrainError> {
    if !(cfg.train.tensorboard && writes) {
        return Ok(None);
    }
    let dir = resnext_infer::run::Run::at(run_dir).path(resnext_infer::run::RunFile::TensorBoard);
    TensorBoard::create(&dir, cfg, classes).map(Some)
}

/// Ends a run's TensorBoard session (when there is one): success or failure, flushed.
pub fn finish(tb: Option<TensorBoard>, ok: bool) -> Result<(), TrainError> {
    let status = if ok {
        SessionStatus::Success
    } else {
        SessionStatus::Failure
    };
    tb.map_or(Ok(()), |mut tb| tb.finish(status))
}

/// The caller's observer and the TensorBoard one, each told everything (a method added to
/// [`Observer`] is forwarded here too, or the caller's observer would stop hearing it).
pub struct Tee<'a>(pub &'a mut dyn Observer, pub Option<&'a mut TensorBoard>);

impl Tee<'_> {
    /// The TensorBoard observer's first write error, if any.
    pub fn take_error(&mut self) -> Result<(), TrainError> {
        self.1.as_mut().map_or(Ok(()), |tb| tb.take_error())
    }
}

/// `impl Observer for Tee`: each method before the `;` told to the caller's observer, each
/// after it to the TensorBoard one too.
macro_rules! tee_observer {
    ($($one:ident($($a:ident: $t:ty),*)),*; $($both:ident($($b:ident: $u:ty),*)),*) => {
        impl Observer for Tee<'_> {
            $(fn $one(&mut self, $($a: $t),*) {
                self.0.$one($($a),*);
            })*
            $(fn $both(&mut self, $($b: $u),*) {
                self.0.$both($($b),*);
                if let Some(tb) = &mut self.1 {
                    tb.$both($($b),*);
                }
            })*
        }
    };
}

tee_observer! {
    on_start(info: &crate::trainer::observer::StartInfo),
    on_epoch_start(epoch: usize, num_batches: usize),
    on_batch(epoch: usize, batch: usize, loss: f64, acc: f64),
    on_validate(epoch: usize, images: usize),
    on_validate_progress(n: usize),
    on_note(note: &str);
    on_step(step: &StepInfo<'_>),
    on_validated(epoch: usize, preds: &Predictions),
    on_epoch(row: &EpochRow, is_best: bool)
}
