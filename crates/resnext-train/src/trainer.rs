//! The training loop: per epoch, train on shuffled augmented batches, validate with the eval
//! transform, keep the best checkpoint by validation accuracy (really the best, unlike the
//! original tutorial), write the last checkpoint and an atomic resume point.

use crate::checkpoint::{
    write_atomic, CheckpointInfo, LoopState, RunDir, Which, CONFIG, METRICS, SPLIT,
};
use crate::config::{Precision, StopMetric, TrainConfig};
use crate::ema::Ema;
use crate::error::TrainError;
use crate::evaluate::{batch_tensor, predict, RunOptions};
use crate::loss::soft_cross_entropy;
pub use crate::metric::EpochRow;
use crate::metric::{metrics_csv, Running};
use crate::optim::Optimizer;
use crate::precision::{prepare_input, with_autocast};
use crate::schedule::Schedule;
use resnext_data::loader::PixelType;
use resnext_data::scan::scan;
use resnext_data::split::Split;
use resnext_data::{Loader, LoaderConfig, Transform};
use resnext_model::weights::{load_weights, save_weights, HeadPolicy, LoadReport};
use resnext_model::ResNeXt;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

/// What the loop reports as it goes; the CLI draws progress bars and prints lines from it.
pub trait Observer {
    fn on_start(&mut self, _info: &StartInfo) {}
    fn on_epoch_start(&mut self, _epoch: usize, _num_batches: usize) {}
    fn on_batch(&mut self, _epoch: usize, _batch: usize, _loss: f64, _acc: f64) {}
    fn on_validate(&mut self, _epoch: usize) {}
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

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub best_epoch: usize,
    pub best_val_acc: f64,
    pub epochs_run: usize,
    pub early_stopped: bool,
}

pub struct Trainer {
    cfg: TrainConfig,
    run: RunDir,
    device: Device,
    vs: VarStore,
    net: ResNeXt,
    opt: Optimizer,
    schedule: Schedule,
    ema: Option<Ema>,
    train: Loader,
    val: Loader,
    split: Split,
    state: LoopState,
    info: CheckpointInfo,
    torch_threads: usize,
    data_threads: usize,
    loss_scale: f64,
    good_steps: usize,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("run", &self.run.dir)
            .field("epoch", &self.state.epoch)
            .finish()
    }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Parses a device name: cpu, cuda, cuda:N or auto.
pub fn parse_device(s: &str) -> Result<Device, TrainError> {
    let s = s.trim().to_ascii_lowercase();
    let cuda_count = || {
        if tch::Cuda::is_available() {
            tch::Cuda::device_count() as usize
        } else {
            0
        }
    };
    match s.as_str() {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(Device::cuda_if_available()),
        "cuda" | "gpu" if cuda_count() > 0 => Ok(Device::Cuda(0)),
        "cuda" | "gpu" => Err(TrainError::Invalid(
            "device cuda: libtorch sees no CUDA device (use cpu or auto)".into(),
        )),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) if n < cuda_count() => Ok(Device::Cuda(n)),
            Some(Ok(n)) => Err(TrainError::Invalid(format!(
                "device cuda:{n}: libtorch sees {} CUDA device(s)",
                cuda_count()
            ))),
            _ => Err(TrainError::Invalid(format!(
                "unknown device `{other}` (expected cpu, cuda, cuda:N or auto)"
            ))),
        },
    }
}

impl Trainer {
    /// Starts a fresh run in `run_dir`, refusing to overwrite a run that is already there.
    pub fn new(
        cfg: TrainConfig,
        run_dir: &Path,
        init_weights: Option<&Path>,
    ) -> Result<(Self, Option<LoadReport>), TrainError> {
        cfg.validate()?;
        let run = RunDir::new(run_dir);
        if run.path(crate::checkpoint::RESUME).exists() || run.path(METRICS).exists() {
            return Err(TrainError::Invalid(format!(
                "{} already holds a run; continue it with --resume {} or choose another --out",
                run_dir.display(),
                run_dir.display()
            )));
        }
        let folder = scan(&cfg.data.root)?;
        let split = match &cfg.data.split_file {
            Some(f) => {
                let s = Split::load(f)?;
                s.check_classes(&folder.classes)?;
                s
            }
            None => cfg.data.split_config().split(&folder)?,
        };
        run.create()?;
        let mut trainer = Self::build(cfg, run, split)?;
        let report = match init_weights {
            Some(p) => Some(load_weights(
                &trainer.vs,
                p,
                HeadPolicy::ReplaceIfMismatched,
            )?),
            None => None,
        };
        if report.is_some() {
            if let Some(ema) = &mut trainer.ema {
                *ema = Ema::new(
                    ema_decay(&trainer.cfg),
                    trainer.vs.variables().into_iter().collect(),
                );
            }
        }
        write_atomic(&trainer.run.path(CONFIG), trainer.cfg.to_toml().as_bytes())?;
        trainer.split.save(&trainer.run.path(SPLIT))?;
        // An epoch-0 resume point (initial or imported weights, fresh optimiser), so a run killed
        // during its first epoch resumes too, from the same start as the uninterrupted run.
        trainer
            .run
            .save_resume(trainer.resume_tensors(), &trainer.state)?;
        Ok((trainer, report))
    }

    /// Continues the run in `run_dir` from its resume point. `epochs` may extend it; `device`
    /// may move it.
    pub fn resume(
        run_dir: &Path,
        epochs: Option<usize>,
        device: Option<String>,
    ) -> Result<Self, TrainError> {
        let run = RunDir::new(run_dir);
        let (tensors, state) = run.load_resume()?;
        let cfg_path = run.path(CONFIG);
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| TrainError::Read {
            path: cfg_path.clone(),
            reason: e.to_string(),
        })?;
        let mut cfg = TrainConfig::from_toml(&text, &cfg_path)?;
        if let Some(e) = epochs {
            cfg.train.epochs = e;
        }
        if let Some(d) = device {
            cfg.train.device = d;
        }
        cfg.validate()?;
        let split = Split::load(&run.path(SPLIT))?;
        let mut t = Self::build(cfg, run, split)?;
        tch::no_grad(|| -> Result<(), TrainError> {
            for (name, mut var) in t.vs.variables() {
                let src = tensors.get(&format!("model.{name}")).ok_or_else(|| {
                    TrainError::Invalid(format!("resume checkpoint lacks model.{name}"))
                })?;
                var.f_copy_(&src.to_kind(var.kind()).to_device(var.device()))?;
            }
            Ok(())
        })?;
        t.opt.load_state(&tensors)?;
        if let Some(ema) = &mut t.ema {
            ema.load_state(&tensors);
        }
        if let Some(s) = tensors.get("loss_scale") {
            t.loss_scale = s.double_value(&[0]);
        }
        t.state = state;
        // metrics.csv may lag the resume point if the process died between the two writes.
        write_atomic(
            &t.run.path(METRICS),
            metrics_csv(&t.state.history).as_bytes(),
        )?;
        Ok(t)
    }

    fn build(cfg: TrainConfig, run: RunDir, split: Split) -> Result<Self, TrainError> {
        let device = parse_device(&cfg.train.device)?;
        if cfg.train.precision == Precision::Fp16 && device == Device::Cpu {
            return Err(TrainError::Invalid(
                "precision fp16 needs a CUDA device; use bf16 on the CPU".into(),
            ));
        }
        let torch_threads = if cfg.train.threads == 0 {
            cores()
        } else {
            cfg.train.threads
        };
        tch::set_num_threads(torch_threads as i32);
        let data_threads = match (cfg.data.threads, device) {
            (0, Device::Cpu) => (cores() / 4).max(1),
            (0, _) => cores().saturating_sub(1).max(1),
            (n, _) => n,
        };
        tch::manual_seed(cfg.train.seed as i64);
        let root = cfg.data.root.clone();
        let classes = split.classes.clone();
        let model_cfg = cfg.model.to_config(classes.len() as i64)?;
        let vs = VarStore::new(device);
        let net = ResNeXt::new(&vs.root(), &model_cfg)?;
        if cfg.train.channels_last {
            resnext_model::weights::convert_to_channels_last(&vs);
        }
        let train_samples = split.samples(&split.train, &root)?;
        let val_samples = split.samples(&split.val, &root)?;
        if train_samples.is_empty() || val_samples.is_empty() {
            return Err(TrainError::Invalid(format!(
                "the split has {} training and {} validation images; both parts need some (lower data.val or add images)",
                train_samples.len(),
                val_samples.len()
            )));
        }
        let mut lc = LoaderConfig::new(cfg.data.batch_size, classes.len());
        lc.shuffle = true;
        lc.drop_last = cfg.data.drop_last;
        lc.seed = cfg.train.seed;
        lc.threads = data_threads;
        lc.prefetch = cfg.data.prefetch;
        lc.cache = cfg.data.cache;
        lc.on_bad_image = cfg.data.on_bad_image;
        lc.mix = cfg.data.mix.clone();
        lc.pixels = PixelType::F32;
        let train = Loader::new(
            &root,
            &train_samples,
            Transform::new(cfg.data.train_transform.clone())?,
            lc.clone(),
        )?;
        let mut vc = lc;
        vc.shuffle = false;
        vc.drop_last = false;
        vc.mix = None;
        vc.batch_size = cfg.data.eval_batch_size.unwrap_or(cfg.data.batch_size);
        let eval_t = Transform::new(cfg.data.eval_transform.clone())?;
        let val = Loader::new(&root, &val_samples, eval_t.clone(), vc)?;
        let trainable: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        let opt = Optimizer::new(&cfg.optim, trainable);
        let schedule = Schedule::new(&cfg.schedule, cfg.optim.lr, cfg.train.epochs);
        let ema = cfg
            .train
            .ema_decay
            .map(|d| Ema::new(d, vs.variables().into_iter().collect()));
        let et = &cfg.data.eval_transform;
        let info = CheckpointInfo {
            model: model_cfg,
            classes: classes.clone(),
            image_size: eval_t.size(),
            mean: et.mean,
            std: et.std,
            eval_transform: et.clone(),
            data_root: root,
            epoch: 0,
            metrics: EpochRow {
                epoch: 0,
                train_loss: 0.0,
                train_acc: 0.0,
                val_loss: 0.0,
                val_acc: 0.0,
                lr: 0.0,
                seconds: 0.0,
                images_per_s: 0.0,
                data_wait_s: 0.0,
            },
        };
        let state = LoopState {
            best_val_acc: -1.0,
            seed: cfg.train.seed,
            ..LoopState::default()
        };
        Ok(Self {
            cfg,
            run,
            device,
            vs,
            net,
            opt,
            schedule,
            ema,
            train,
            val,
            split,
            state,
            info,
            torch_threads,
            data_threads,
            loss_scale: 65536.0,
            good_steps: 0,
        })
    }

    pub fn run_dir(&self) -> &Path {
        &self.run.dir
    }

    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Trains until `train.epochs` (or early stopping).
    pub fn fit(&mut self, obs: &mut dyn Observer) -> Result<Outcome, TrainError> {
        let params: i64 = self
            .vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        obs.on_start(&StartInfo {
            run_dir: self.run.dir.clone(),
            classes: self.split.classes.clone(),
            train_images: self.train.num_samples(),
            val_images: self.val.num_samples(),
            test_images: self.split.test.len(),
            device: self.device,
            parameters: params,
            first_epoch: self.state.epoch + 1,
            epochs: self.cfg.train.epochs,
            torch_threads: self.torch_threads,
            data_threads: self.data_threads,
        });
        let mut early_stopped = false;
        while self.state.epoch < self.cfg.train.epochs {
            let epoch = self.state.epoch + 1;
            let row = self.run_epoch(epoch, obs)?;
            let is_best = row.val_acc > self.state.best_val_acc;
            self.commit_epoch(&row, is_best)?;
            obs.on_epoch(&row, is_best);
            if let Some(patience) = self.cfg.train.early_stopping_patience {
                if self.state.stale_epochs >= patience {
                    obs.on_note(&format!(
                        "early stopping: no improvement of {:?} for {patience} epochs",
                        self.cfg.train.early_stopping_metric
                    ));
                    early_stopped = true;
                    break;
                }
            }
        }
        Ok(Outcome {
            best_epoch: self.state.best_epoch,
            best_val_acc: self.state.best_val_acc,
            epochs_run: self.state.epoch,
            early_stopped,
        })
    }

    fn run_epoch(&mut self, epoch: usize, obs: &mut dyn Observer) -> Result<EpochRow, TrainError> {
        let start = Instant::now();
        let num_batches = self.train.num_batches();
        obs.on_epoch_start(epoch, num_batches);
        let lr_at_start = self.schedule.lr((epoch - 1) as f64);
        let mut running = Running::default();
        let classes = self.split.classes.len();
        let (precision, channels_last, device) = (
            self.cfg.train.precision,
            self.cfg.train.channels_last,
            self.device,
        );
        let smoothing = self.cfg.train.label_smoothing;
        let train_start = Instant::now();
        let mut data_wait = std::time::Duration::ZERO;
        let mut batches = self.train.epoch(epoch as u64).enumerate();
        loop {
            let asked = Instant::now();
            let Some((bi, batch)) = batches.next() else {
                break;
            };
            data_wait += asked.elapsed();
            let batch = batch?;
            if batch.len() < 2 {
                // BatchNorm cannot take statistics of one sample (PyTorch refuses it; the unbiased
                // running variance would become infinite). The sample reappears next epoch.
                tracing::debug!(
                    epoch,
                    batch = bi + 1,
                    "skipped a training batch of fewer than 2 images"
                );
                continue;
            }
            let lr = self
                .schedule
                .lr((epoch - 1) as f64 + bi as f64 / num_batches.max(1) as f64);
            let x = prepare_input(batch_tensor(&batch)?, precision, channels_last, device);
            let soft = batch.soft_targets(classes);
            let targets = Tensor::from_slice(soft.as_slice().expect("contiguous"))
                .view([batch.len() as i64, classes as i64])
                .to_device(device);
            let logits = with_autocast(precision, device, || self.net.forward_t(&x, true));
            let loss = soft_cross_entropy(&logits, &targets, smoothing);
            let loss_value = loss.double_value(&[]);
            if !loss_value.is_finite() {
                return Err(TrainError::NonFinite {
                    epoch,
                    batch: bi + 1,
                    value: loss_value,
                });
            }
            let fp16 = precision == Precision::Fp16;
            if fp16 {
                self.opt.backward(&(&loss * self.loss_scale))?;
            } else {
                self.opt.backward(&loss)?;
            }
            let mut step = true;
            if fp16 {
                // dynamic loss scaling: unscale, skip the step on overflow
                let norm = self.opt.grad_norm() / self.loss_scale;
                if !norm.is_finite() {
                    self.loss_scale /= 2.0;
                    self.good_steps = 0;
                    step = false;
                } else {
                    self.opt.scale_grads(1.0 / self.loss_scale);
                    self.good_steps += 1;
                    if self.good_steps.is_multiple_of(2000) {
                        self.loss_scale *= 2.0;
                    }
                }
            }
            if step {
                if let Some(max) = self.cfg.optim.clip_grad_norm {
                    self.opt.clip_grad_norm(max);
                }
                self.opt.step(lr);
                if let Some(ema) = &mut self.ema {
                    ema.update();
                }
            }
            let pred = logits.detach().argmax(1, false);
            let want = targets.argmax(1, false);
            let correct = pred
                .eq_tensor(&want)
                .to_kind(Kind::Float)
                .sum(Kind::Float)
                .double_value(&[]);
            running.add(loss_value, correct, batch.len());
            tracing::debug!(
                epoch,
                batch = bi + 1,
                num_batches,
                loss = loss_value,
                "train step"
            );
            obs.on_batch(epoch, bi + 1, running.loss(), running.acc());
        }
        let train_secs = train_start.elapsed().as_secs_f64();
        obs.on_validate(epoch);
        if let Some(ema) = &mut self.ema {
            ema.swap();
        }
        let opts = RunOptions {
            device,
            precision,
            channels_last,
            tta: false,
        };
        let preds = predict(&self.net, &self.val, opts)?;
        if let Some(ema) = &mut self.ema {
            ema.swap();
        }
        if !preds.loss.is_finite() {
            return Err(TrainError::NonFinite {
                epoch,
                batch: 0,
                value: preds.loss,
            });
        }
        Ok(EpochRow {
            epoch,
            train_loss: running.loss(),
            train_acc: running.acc(),
            val_loss: preds.loss,
            val_acc: preds.accuracy(),
            lr: lr_at_start,
            seconds: start.elapsed().as_secs_f64(),
            images_per_s: running.count as f64 / train_secs.max(1e-9),
            data_wait_s: data_wait.as_secs_f64(),
        })
    }

    /// Writes the epoch's checkpoints and commits the resume point.
    fn commit_epoch(&mut self, row: &EpochRow, is_best: bool) -> Result<(), TrainError> {
        let mut state = self.state.clone();
        state.epoch = row.epoch;
        state.history.push(row.clone());
        if is_best {
            state.best_val_acc = row.val_acc;
            state.best_epoch = row.epoch;
        }
        let metric = match self.cfg.train.early_stopping_metric {
            StopMetric::ValAcc => row.val_acc,
            StopMetric::ValLoss => -row.val_loss,
        };
        match state.stop_best {
            Some(b) if metric <= b => state.stale_epochs += 1,
            _ => {
                state.stop_best = Some(metric);
                state.stale_epochs = 0;
            }
        }
        let info = CheckpointInfo {
            epoch: row.epoch,
            metrics: row.clone(),
            ..self.info.clone()
        };
        // The weights that were validated: the EMA's when it is on.
        if let Some(ema) = &mut self.ema {
            ema.swap();
        }
        let saved = (|| -> Result<(), TrainError> {
            if is_best {
                save_weights(&self.vs, &self.run.weights(Which::Best))?;
                self.run.write_info(Which::Best, &info)?;
            }
            save_weights(&self.vs, &self.run.weights(Which::Last))?;
            self.run.write_info(Which::Last, &info)?;
            Ok(())
        })();
        if let Some(ema) = &mut self.ema {
            ema.swap();
        }
        saved?;
        self.run.save_resume(self.resume_tensors(), &state)?;
        write_atomic(
            &self.run.path(METRICS),
            metrics_csv(&state.history).as_bytes(),
        )?;
        self.state = state;
        Ok(())
    }
}

impl Trainer {
    /// Weights, optimiser, EMA and loss scale: everything of the resume point but the loop state.
    fn resume_tensors(&self) -> Vec<(String, Tensor)> {
        let mut tensors: Vec<(String, Tensor)> = resnext_model::weights::state_dict(&self.vs)
            .into_iter()
            .map(|(n, t)| (format!("model.{n}"), t))
            .collect();
        tensors.extend(self.opt.state_tensors());
        if let Some(ema) = &self.ema {
            tensors.extend(ema.state_tensors());
        }
        tensors.push(("loss_scale".into(), Tensor::from_slice(&[self.loss_scale])));
        tensors
    }
}

fn ema_decay(cfg: &TrainConfig) -> f64 {
    cfg.train.ema_decay.unwrap_or(0.999)
}
