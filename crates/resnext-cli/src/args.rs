//! Command-line arguments (clap). Choices are enums ([`clap::ValueEnum`]), a device is parsed
//! into [`DeviceChoice`] by clap itself, so commands receive validated values.

use clap::{Args, Parser, Subcommand, ValueEnum};
use resnext_model::weights::WeightsFile;
use resnext_model::Arch;
use resnext_train::config::Overrides;
use resnext_train::precision::{LayoutChoice, PrecisionChoice};
use resnext_train::{
    Checkpoint, Criterion, DeviceChoice, Precision, SplitPart, TrainConfig, TrainError,
};
use std::path::PathBuf;

/// `--operating-point`: `sensitivity=T`, `specificity=T` or `youden`, parsed with the flag.
fn parse_criterion(s: &str) -> Result<Criterion, String> {
    s.parse::<Criterion>().map_err(|e| e.to_string())
}

/// A [`ValueEnum`] whose variants are those of a library enum of the same variant names, and
/// its `From` into that enum: each variant is written once.
macro_rules! value_enum_into {
    ($(#[$meta:meta])* $name:ident => $target:ty {
        $($(#[$variant_meta:meta])* $variant:ident,)*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)*
        }

        impl From<$name> for $target {
            fn from(v: $name) -> $target {
                match v {
                    $($name::$variant => <$target>::$variant,)*
                }
            }
        }
    };
}

value_enum_into! {
    /// An architecture preset, or `custom` with explicit shapes.
    ArchArg => Arch {
        #[value(name = "resnext50_32x4d")]
        Resnext50_32x4d,
        #[value(name = "resnext101_32x8d")]
        Resnext101_32x8d,
        #[value(name = "resnext101_64x4d")]
        Resnext101_64x4d,
        #[value(name = "resnet50")]
        Resnet50,
        Custom,
    }
}

value_enum_into! {
    /// Which saved weights of a run.
    CheckpointArg => Checkpoint {
        Best,
        Last,
        /// Stochastic weight averaging's (`train.swa`).
        Swa,
        /// `resnext average`'s.
        Average,
    }
}

/// Numeric precision of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrecisionArg {
    /// bf16 where the device computes it natively (AVX512-BF16/AMX-BF16 CPUs, CUDA), else fp32.
    Auto,
    Fp32,
    Bf16,
    /// CUDA only.
    Fp16,
    /// float64 activations over fp32 weights: a numerical reference, several times slower.
    Fp64,
}

impl From<PrecisionArg> for PrecisionChoice {
    fn from(p: PrecisionArg) -> PrecisionChoice {
        match p {
            PrecisionArg::Auto => PrecisionChoice::Auto,
            PrecisionArg::Fp32 => Precision::Fp32.into(),
            PrecisionArg::Bf16 => Precision::Bf16.into(),
            PrecisionArg::Fp16 => Precision::Fp16.into(),
            PrecisionArg::Fp64 => Precision::Fp64.into(),
        }
    }
}

value_enum_into! {
    /// Which images of a run's split.
    SplitArg => SplitPart {
        Val,
        Test,
        Train,
        All,
    }
}

value_enum_into! {
    /// An export format.
    FormatArg => resnext_export::Format {
        #[value(name = "torchscript")]
        TorchScript,
        Onnx,
    }
}

/// `--batch dynamic` (`None`) or a fixed size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchArg(pub Option<i64>);

impl std::str::FromStr for BatchArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "dynamic" {
            return Ok(BatchArg(None));
        }
        match s.parse::<i64>() {
            Ok(n) if (1..=4096).contains(&n) => Ok(BatchArg(Some(n))),
            _ => Err(format!(
                "`{s}` is not `dynamic` or a batch size from 1 to 4096"
            )),
        }
    }
}

/// Training steps (forward, backward, optimiser) or inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchMode {
    Train,
    Eval,
}

/// A layer kind `bench --ablate` can skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AblateArg {
    None,
    Batchnorm,
    Relu,
}

/// The transform `data bench` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchTransform {
    /// RandomResizedCrop + flip.
    Train,
    /// Resize + normalise.
    Eval,
}

#[derive(Debug, Parser)]
#[command(
    name = "resnext",
    version,
    about = "Train, evaluate, predict and explain ResNeXt image classifiers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Per-stage output shapes and parameter counts of an architecture.
    Summary(SummaryArgs),
    /// Predict the class of images with a trained model.
    Predict(PredictArgs),
    /// Train a model from a TOML config.
    Train(TrainArgs),
    /// Evaluate a run on its validation or test part.
    Eval(EvalArgs),
    /// Draw a run's training curves, confusion matrix and ROC curve as PNGs.
    Plot(PlotArgs),
    /// Throughput of the network alone: train (forward, backward, Adam) or eval steps.
    Bench(BenchArgs),
    /// Export a model to TorchScript or ONNX (with a FILE.json sidecar).
    Export(ExportArgs),
    /// Convert a `torch.save` state dict (.pth, zip or legacy) to safetensors, without Python.
    Convert(ConvertArgs),
    /// Serve a trained model over HTTP: a JSON API with dynamic batching, and a web page.
    Serve(ServeArgs),
    /// Grouped, stratified k-fold cross-validation: a run per fold, out-of-fold predictions, a summary.
    Cv(CvArgs),
    /// Compare two runs on the same images, or two cv directories with the same folds: paired
    /// differences with intervals, DeLong, McNemar.
    Compare(CompareArgs),
    /// Write report.html of a run (its last eval) or of a cross-validation directory.
    Report(ReportArgs),
    /// Learning-rate finder: an exponential sweep on a fresh model, lr_find.csv and lr_find.png.
    LrFind(LrFindArgs),
    /// Average a run's last N epoch checkpoints (or weights files) into its `average`
    /// checkpoint, with BatchNorm statistics recomputed on its training part.
    Average(AverageArgs),
    /// Inspect and prepare ImageFolder datasets.
    #[command(subcommand)]
    Data(DataCommand),
}

value_enum_into! {
    /// The rule of `lr-find`'s suggestion.
    SuggestArg => resnext_train::lr_find::SuggestRule {
        /// fastai's valley: in the longest descent of the smoothed loss, 1/3 + 1/6 of the way
        /// along.
        Valley,
        /// Where the smoothed loss falls fastest against log(lr), before its minimum.
        Steepest,
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "The sweep trains a fresh model of the config (or --init-weights) through the \
training step itself, with the learning rate growing exponentially from --start-lr to --end-lr; it \
stops when the smoothed loss exceeds 4 times its best or the loss is not finite. Nothing is written \
but --out/lr_find.csv and --out/lr_find.png; --out may not be a run or cross-validation directory.",
    // a sweep runs --steps optimiser steps; --epochs is refused, so not offered
    mut_arg("epochs", |a| a.hide(true))
)]
pub struct LrFindArgs {
    #[command(flatten)]
    pub training: TrainingArgs,
    /// The folder for lr_find.csv and lr_find.png (created when absent).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1e-7)]
    pub start_lr: f64,
    #[arg(long, default_value_t = 10.0)]
    pub end_lr: f64,
    /// Optimiser steps of the sweep (at most: it stops at divergence).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub steps: u32,
    /// How the suggested learning rate is read off the curve.
    #[arg(long, value_enum, default_value = "valley")]
    pub suggest: SuggestArg,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Run A, or cross-validation directory A.
    pub a: PathBuf,
    /// Run B (trained on the same split), or cross-validation directory B (the same folds.json).
    pub b: PathBuf,
    /// The part of the split both runs are evaluated on (two cv directories: their pooled
    /// out-of-fold predictions).
    #[arg(long, value_enum, default_value = "test")]
    pub split: SplitArg,
    /// The class whose ROC-AUC is compared (needed with more than two classes).
    #[arg(long)]
    pub positive: Option<String>,
    #[arg(long, value_enum, default_value = "best")]
    pub checkpoint: CheckpointArg,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    #[arg(long, default_value_t = 32, value_parser = batch_size)]
    pub batch_size: usize,
    /// Print the comparison as one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub intervals: IntervalArgs,
}

/// The architecture: a preset name, or `custom` with explicit shapes.
#[derive(Debug, Args, Clone)]
pub struct ModelArgs {
    #[arg(long, value_enum, default_value = "resnext50_32x4d")]
    pub arch: ArchArg,
    /// Blocks per stage for --arch custom, e.g. 1,1,1,1.
    #[arg(long)]
    pub layers: Option<Layers>,
    /// Groups (cardinality) for --arch custom.
    #[arg(long)]
    pub groups: Option<i64>,
    /// Width per group for --arch custom.
    #[arg(long)]
    pub width_per_group: Option<i64>,
}

/// `--batch-size` of inference: 1 to 4096 images per forward pass.
fn batch_size(s: &str) -> Result<usize, String> {
    batch_up_to(s, 4096)
}

/// A batch size from 1 to `top`.
fn batch_up_to(s: &str, top: usize) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=top).contains(&n) => Ok(n),
        _ => Err(format!("`{s}` is not a batch size from 1 to {top}")),
    }
}

/// `--pauc-min-tpr`: a sensitivity in [0, 1).
fn min_tpr(s: &str) -> Result<f64, String> {
    match s.parse::<f64>().map_err(|e| e.to_string())? {
        t if (0.0..1.0).contains(&t) => Ok(t),
        t => Err(format!("{t} must be in [0, 1)")),
    }
}

/// Where and how the network runs (`predict`, `eval`, `serve`, `bench`).
#[derive(Debug, Args)]
pub struct NumericsArgs {
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    #[arg(long, value_enum, default_value = "fp32")]
    pub precision: PrecisionArg,
    /// Channels-last memory format: `--channels-last` (true), `--channels-last=false` or
    /// `--channels-last=auto` (the faster layout for the precision on the device).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub channels_last: LayoutChoice,
}

impl NumericsArgs {
    /// The device, and `auto` precision and layout resolved on it ([`run_options`]).
    pub fn resolve(&self, tta: bool) -> anyhow::Result<resnext_train::RunOptions> {
        run_options(self.device, self.precision.into(), self.channels_last, tta)
    }
}

/// How `eval`, `predict` and `serve` run the network: the device, and `auto` precision and
/// layout resolved on it; what `auto` chose (and a warning for emulated bf16) goes to stderr.
pub fn run_options(
    device: resnext_train::DeviceChoice,
    precision: resnext_train::precision::PrecisionChoice,
    layout: resnext_train::precision::LayoutChoice,
    tta: bool,
) -> anyhow::Result<resnext_train::RunOptions> {
    let device = device.resolve()?;
    let n = resnext_train::precision::resolve(precision, layout, device)?;
    for note in &n.notes {
        eprintln!("{note}");
    }
    Ok(resnext_train::RunOptions {
        device,
        precision: n.precision,
        channels_last: n.channels_last,
        tta,
    })
}

/// `--layers`: four block counts, `1,1,1,1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layers(pub [usize; 4]);

impl std::str::FromStr for Layers {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',')
            .map(|p| p.trim().parse::<usize>().ok())
            .collect::<Option<Vec<usize>>>()
            .and_then(|parts| parts.try_into().ok())
            .map(Layers)
            .ok_or_else(|| format!("`{s}` must be four comma-separated counts, e.g. 1,1,1,1"))
    }
}

#[derive(Debug, Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long, default_value_t = 1000)]
    pub num_classes: i64,
    #[arg(long, default_value_t = 224)]
    pub image_size: i64,
}

/// Where a trained model comes from: a run directory, or a bare weights file and its
/// architecture (`predict`, `export`).
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// A run directory (weights, classes and eval transform come from it).
    #[arg(long, conflicts_with = "weights")]
    pub run: Option<PathBuf>,
    /// Which checkpoint of the run.
    #[arg(long, value_enum, default_value = "best")]
    pub checkpoint: CheckpointArg,
    /// A safetensors or torch.save file with torchvision names (needs --arch and --num-classes).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// The entry of a torch.save dict to take (`state_dict`, `model`, …) when it holds several.
    #[arg(long, requires = "weights")]
    pub key: Option<String>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub num_classes: Option<i64>,
    /// Square input size for --weights (resize to exactly this size).
    #[arg(long, default_value_t = 224)]
    pub image_size: u32,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// One JSON object per line per image.
    #[arg(long)]
    pub json: bool,
    /// Show the K most likely classes.
    #[arg(long, default_value_t = 1)]
    pub top_k: usize,
    /// Write a Grad-CAM overlay to this PNG (one image only).
    #[arg(long)]
    pub cam: Option<PathBuf>,
    /// The class index Grad-CAM explains (default: the predicted class).
    #[arg(long)]
    pub cam_class: Option<i64>,
    /// Average with the horizontally flipped image.
    #[arg(long)]
    pub tta: bool,
    #[command(flatten)]
    pub numerics: NumericsArgs,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16, value_parser = batch_size)]
    pub batch_size: usize,
    /// Fold BatchNorm into the convolutions (same answers, faster).
    #[arg(long)]
    pub fold_bn: bool,
    /// Take images through links in a folder that lead outside it (refused by default, as in
    /// a data root).
    #[arg(long)]
    pub follow_links: bool,
    /// Images or folders of images.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "With --resume DIR only --epochs (to extend the run) and --device may be \
given: the run keeps its own config, data, output folder and weights."
)]
pub struct TrainArgs {
    #[command(flatten)]
    pub training: TrainingArgs,
    /// The run directory (default runs/<name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory where it stopped (takes --epochs and --device only).
    #[arg(long, conflicts_with_all = ["config", "data", "out", "batch_size", "sets", "init_weights", "key", "precision", "channels_last", "accumulate"])]
    pub resume: Option<PathBuf>,
    /// The positive class (by name) of `--operating-point`.
    #[arg(long, requires = "operating_point")]
    pub positive: Option<String>,
    /// At the end of training, choose a threshold for --positive on the validation part
    /// (`sensitivity=0.95`, `specificity=0.90` or `youden`), report it on the test part when
    /// there is one, and store it in best.json: `predict` and `serve` then answer with a decision.
    #[arg(long, requires = "positive", value_parser = parse_criterion)]
    pub operating_point: Option<Criterion>,
}

/// The confidence intervals of `eval` and `cv`.
#[derive(Debug, Args)]
pub struct IntervalArgs {
    /// Bootstrap resamples of the 95% intervals (patients are resampled: the run's
    /// data.group_regex); 0 leaves the intervals out.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub bootstrap: u32,
    /// The bootstrap's seed: the same seed gives the same intervals.
    #[arg(long = "bootstrap-seed", default_value_t = 0)]
    pub seed: u64,
}

impl IntervalArgs {
    pub fn options(&self) -> resnext_train::run_eval::BootstrapOptions {
        resnext_train::run_eval::BootstrapOptions {
            n_resamples: self.bootstrap as usize,
            seed: self.seed,
            level: 0.95,
        }
    }
}

/// What `train` and `cv` share: the config and what overrides it, and the starting weights.
#[derive(Debug, Args)]
pub struct TrainingArgs {
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The ImageFolder root (overrides data.root).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Epochs to train (with `train --resume`: the new total, more than the run has finished).
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Gradient accumulation: step the optimiser every N batches (overrides train.accumulate).
    #[arg(long, value_name = "N")]
    pub accumulate: Option<usize>,
    /// Override any config key: --set optim.lr=0.001 (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub sets: Vec<String>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long)]
    pub device: Option<DeviceChoice>,
    /// The precision (overrides train.precision).
    #[arg(long, value_enum)]
    pub precision: Option<PrecisionArg>,
    /// Channels-last memory format (overrides train.channels_last): `--channels-last`,
    /// `--channels-last=false` or `--channels-last=auto`.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub channels_last: Option<LayoutChoice>,
    /// Start from these weights (torchvision names; the head is replaced if the class count
    /// differs); `cv` starts every fold from them.
    #[arg(long)]
    pub init_weights: Option<PathBuf>,
    /// The entry of a torch.save dict to take (`state_dict`, `model`, …) when it holds several.
    #[arg(long, requires = "init_weights")]
    pub key: Option<String>,
}

impl TrainingArgs {
    /// The config file, its `--set`s and the flags, resolved and validated once.
    pub fn config(&self) -> Result<TrainConfig, TrainError> {
        let overrides = Overrides {
            data_root: self.data.clone(),
            epochs: self.epochs,
            batch_size: self.batch_size,
            device: self.device,
            precision: self.precision.map(Into::into),
            channels_last: self.channels_last,
            accumulate: self.accumulate,
        };
        TrainConfig::load_with(self.config.as_deref(), &self.sets, &overrides)
    }

    /// `--init-weights` with its `--key`.
    pub fn init_weights(&self) -> Option<WeightsFile> {
        self.init_weights
            .as_deref()
            .map(|p| WeightsFile::new(p).with_key(self.key.clone()))
    }
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[arg(long)]
    pub run: PathBuf,
    /// The ImageFolder root (default: the run's).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Which images of the run's split.
    #[arg(long, value_enum, default_value = "val")]
    pub split: SplitArg,
    #[arg(long, value_enum, default_value = "best")]
    pub checkpoint: CheckpointArg,
    /// Average with the horizontally flipped image.
    #[arg(long)]
    pub tta: bool,
    #[command(flatten)]
    pub numerics: NumericsArgs,
    #[arg(long, default_value_t = 32, value_parser = batch_size)]
    pub batch_size: usize,
    /// Print the report only: do not write eval.json (and do not wait for a run being trained).
    #[arg(long)]
    pub no_write: bool,
    /// Fold BatchNorm into the convolutions (same answers, faster).
    #[arg(long)]
    pub fold_bn: bool,
    /// Fit a temperature on the validation part and store it in the checkpoint's sidecar
    /// (predict and serve then use it).
    #[arg(long, conflicts_with = "no_write")]
    pub calibrate: bool,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    #[command(flatten)]
    pub intervals: IntervalArgs,
}

/// What `eval` and `cv` add to the metrics: a positive class, its operating point and partial
/// ROC-AUC, and every metric per subgroup of the images' metadata.
#[derive(Debug, Args)]
pub struct AnalysisArgs {
    /// The positive class (by name) of the binary intervals (class 1 without it), of
    /// `--operating-point` and of `--pauc-min-tpr`.
    #[arg(long)]
    pub positive: Option<String>,
    /// A threshold for --positive (`sensitivity=0.95`, `specificity=0.90` or `youden`). `eval`
    /// chooses it on the validation part, reports it on --split (not val), and stores it in the
    /// sidecar: `predict` and `serve` then answer with a decision. `cv` chooses it on the
    /// out-of-fold predictions: the summary reports each fold at the threshold chosen on the
    /// other folds, and the threshold chosen on all of them.
    #[arg(long, requires = "positive", value_parser = parse_criterion)]
    pub operating_point: Option<Criterion>,
    /// Report the partial ROC-AUC of --positive above this sensitivity (e.g. 0.8), of `eval`'s
    /// --split or of `cv`'s pooled out-of-fold predictions.
    #[arg(long, requires = "positive", value_parser = min_tpr)]
    pub pauc_min_tpr: Option<f64>,
    /// A CSV of image metadata: a column `path` (as in split.json, or folds.json for `cv`) and
    /// any others; with --by, every metric per subgroup (`cv`: of the pooled out-of-fold
    /// predictions).
    #[arg(long, requires = "by")]
    pub metadata: Option<PathBuf>,
    /// The metadata column whose values are the subgroups (skin tone, site, source).
    #[arg(long, requires = "metadata")]
    pub by: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[arg(long, value_enum)]
    pub format: FormatArg,
    /// The exported file (FILE.json is written beside it).
    #[arg(long)]
    pub out: PathBuf,
    /// `dynamic` or a fixed batch size.
    #[arg(long, default_value = "dynamic")]
    pub batch: BatchArg,
    /// Fold BatchNorm into the convolutions.
    #[arg(long)]
    pub fold_bn: bool,
    /// ONNX opset (13 to 21).
    #[arg(long, default_value_t = 17)]
    pub opset: i64,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// A file written by `torch.save` (a state dict, or a dict wrapping one).
    pub input: PathBuf,
    /// The safetensors file to write.
    pub output: PathBuf,
    /// The key of the wrapped state dict (`state_dict`, `model`, ...) when there are several.
    #[arg(long)]
    pub key: Option<String>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "The weights are averaged with equal weight, BatchNorm's running statistics are \
recomputed by one pass over the run's training part (training transform, no mixing), the average is \
validated and saved as RUN/average.safetensors with average.json; evaluate it with \
`resnext eval --run RUN --checkpoint average`. --last N takes the run's last N epoch-NNN.safetensors, \
which train.keep_checkpoints = K keeps."
)]
pub struct AverageArgs {
    /// The run directory (its config and split rebuild the model and the data).
    pub run: PathBuf,
    /// Average the run's last N kept epoch checkpoints.
    #[arg(
        long,
        value_name = "N",
        conflicts_with = "files",
        required_unless_present = "files"
    )]
    pub last: Option<usize>,
    /// Weights files of the run's model to average instead.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The run directory.
    pub run: PathBuf,
}

#[derive(Debug, Args)]
#[command(
    after_help = "One self-contained page (inline figures, no script, no request; readable on a phone): the data, the config, the metrics with their intervals, training curves, confusion matrix, ROC and PR curves with bootstrap bands, reliability, the operating point, subgroups, the most confident errors with Grad-CAM, a model card."
)]
pub struct ReportArgs {
    /// A run directory (with eval.json) or a cross-validation directory (with cv.json).
    pub dir: PathBuf,
    /// Where to write the page (default: DIR/report.html).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// How many of the most confident errors the gallery shows (0: none; no model is loaded).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(0..=64))]
    pub gallery: u16,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Class names and counts, and every bad file with its reason.
    Check {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Write a seeded, stratified (optionally grouped) split as JSON.
    Split {
        #[arg(long)]
        root: PathBuf,
        #[arg(long, default_value_t = 0.2)]
        val: f64,
        #[arg(long, default_value_t = 0.0)]
        test: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Regex whose first capture group on the file name is the group key, e.g. '^([^_.]+)'.
        #[arg(long)]
        group_regex: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Per-channel mean and std of a dataset.
    Stats {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Draw a synthetic four-class ImageFolder (checkerboard, dots, rings, stripes).
    Synth {
        #[arg(long)]
        out: std::path::PathBuf,
        #[arg(long, default_value_t = 150)]
        per_class: usize,
        #[arg(long, default_value_t = 64)]
        size: u32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Write into a folder that is not empty (its files of the same names are replaced).
        #[arg(long)]
        force: bool,
    },
    /// Decode, transform and batch the whole folder; report throughput.
    Bench {
        #[arg(long)]
        root: PathBuf,
        #[arg(long, value_enum, default_value = "eval")]
        transform: BenchTransform,
        #[arg(long, default_value_t = 0)]
        threads: usize,
        #[arg(long, default_value_t = 1)]
        epochs: usize,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long, default_value_t = 224)]
        image_size: u32,
        /// Print the figures as one JSON object on stdout instead of lines of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[arg(value_enum)]
    pub mode: BenchMode,
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long, default_value_t = 2)]
    pub num_classes: i64,
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[arg(long, default_value_t = 224)]
    pub image_size: u32,
    #[command(flatten)]
    pub numerics: NumericsArgs,
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// libtorch threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Diagnostic: skip `batchnorm` and/or `relu` (comma-separated) to measure what the rest of
    /// a step costs. The network is not a real ResNeXt then.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "none")]
    pub ablate: Vec<AblateArg>,
    /// Eval mode: fold BatchNorm into the convolutions first.
    #[arg(long)]
    pub fold_bn: bool,
    /// Print the figures as one JSON object on stdout instead of lines of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "The API key may also come from the environment (RESNEXT_API_KEY), \
which other users of the machine cannot read from the process list."
)]
pub struct ServeArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Address to listen on (loopback by default; 0.0.0.0:PORT opens it to the network).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    #[command(flatten)]
    pub numerics: NumericsArgs,
    /// Fold BatchNorm into the convolutions (same answers, faster).
    #[arg(long)]
    pub fold_bn: bool,
    /// Most requests in one forward pass.
    #[arg(long, default_value_t = 16, value_parser = max_batch)]
    pub max_batch: usize,
    /// How long a batch may wait to fill, in milliseconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub max_wait_ms: u64,
    /// Most requests admitted at once (1 to 4096); beyond it the answer is 503 with Retry-After.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub queue: u16,
    /// Largest request body: bytes, or with KiB, MiB, KB, MB.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    pub max_body: usize,
    /// Require `Authorization: Bearer KEY` on /v1/*.
    #[arg(long, env = "RESNEXT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Allow browsers on these origins to call the API: scheme://host[:port], comma-separated or
    /// repeated (e.g. https://example.org,http://localhost:3000), or *.
    #[arg(long, value_delimiter = ',', value_name = "ORIGIN")]
    pub cors: Vec<String>,
    /// Seconds a request may take before it is answered 408 (1 to 3600).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout_s: u64,
}

/// `16MiB`, `512KiB`, `2MB`, `1000`: a size in bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size like 16MiB or 1000000"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        u => {
            return Err(format!(
                "unknown size unit `{u}` (use B, KB, KiB, MB, MiB, GB or GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .filter(|&b| b > 0 && b <= 1 << 30)
        .ok_or_else(|| format!("`{s}` is not a size from 1 byte to 1GiB"))
}

/// `--max-batch`: 1 to the server's largest batch.
fn max_batch(s: &str) -> Result<usize, String> {
    batch_up_to(s, resnext_serve::config::MAX_BATCH)
}

#[derive(Debug, Args)]
#[command(
    after_help = "A killed cv continues where it stopped when run again with the same \
arguments: finished folds are skipped, a started one resumes from its checkpoint. --fold runs one \
fold alone (e.g. one per SLURM array task); a final call without --fold summarises."
)]
pub struct CvArgs {
    #[command(flatten)]
    pub training: TrainingArgs,
    /// The cross-validation directory.
    #[arg(long)]
    pub out: PathBuf,
    /// K.
    #[arg(long, default_value_t = 3)]
    pub folds: usize,
    /// Repeat the K folds with other shuffles.
    #[arg(long, default_value_t = 1)]
    pub repeats: usize,
    /// Run only this fold (0-based), of --repeat.
    #[arg(long)]
    pub fold: Option<usize>,
    /// The repeat of --fold.
    #[arg(long, default_value_t = 0, requires = "fold")]
    pub repeat: usize,
    /// Fraction of each fold's training part held out for validation (picks the checkpoint);
    /// 0.125 is the paper's 70:10 of train to validation.
    #[arg(long, default_value_t = 0.125)]
    pub val: f64,
    /// The checkpoint each fold is tested with: `best` (by validation accuracy), `last`, or
    /// `swa` (needs `train.swa`).
    #[arg(long, value_enum, default_value_t = CheckpointArg::Best)]
    pub checkpoint: CheckpointArg,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    #[command(flatten)]
    pub intervals: IntervalArgs,
}
