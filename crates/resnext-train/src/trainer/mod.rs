//! The training loop: per epoch, train on shuffled augmented batches, validate with the eval
//! transform, keep the best checkpoint by validation accuracy (really the best, unlike the
//! original tutorial), write the last checkpoint and an atomic resume point.
//!
//! - [`start`]: building the loop, fresh or resumed;
//! - [`step`]: one optimisation step (loss scaling, clipping, EMA, finite weights);
//! - [`early_stopping`]: when to stop before `train.epochs`;
//! - [`observer`]: what the loop reports as it goes.

pub mod early_stopping;
pub mod observer;
mod start;
pub mod step;

pub use early_stopping::EarlyStopping;
pub use observer::{Observer, Silent, StartInfo};

use crate::checkpoint::{write_atomic, Checkpoint, CheckpointInfo, LoopState};
use crate::config::TrainConfig;
use crate::ema::Ema;
use crate::error::TrainError;
use crate::evaluate::{batch_tensor, predict_loader, RunOptions};
use crate::loss::weighted_soft_cross_entropy;
pub use crate::metric::EpochRow;
use crate::metric::{metrics_csv, Running};
use crate::optim::Optimizer;
use crate::precision::{prepare_input, with_autocast};
use crate::progress::Progress;
use crate::run::{Run, RunFile, RunLock};
use crate::schedule::Schedule;
use resnext_data::split::Split;
use resnext_data::Loader;
use resnext_model::weights::save_weights;
use resnext_model::ResNeXt;
use std::path::Path;
use std::time::Instant;
use step::{optimisation_step, LossScaler, StepAt, StepConfig};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

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
    run: Run,
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
    scaler: LossScaler,
    /// `loss.class_weights`, resolved on the training part.
    class_weights: Option<Tensor>,
    /// This process's write lock on the run directory, held for the trainer's life.
    lock: RunLock,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("run", &self.run.dir())
            .field("epoch", &self.state.epoch)
            .finish()
    }
}

/// Validation progress, forwarded to the observer.
struct ValidationProgress<'a>(std::cell::RefCell<&'a mut dyn Observer>);

impl Progress for ValidationProgress<'_> {
    fn advance(&self, n: usize) {
        self.0.borrow_mut().on_validate_progress(n);
    }
}

impl Trainer {
    pub fn run_dir(&self) -> &Path {
        self.run.dir()
    }

    pub fn run(&self) -> &Run {
        &self.run
    }

    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Frees the model, optimiser and loaders but keeps the run's write lock (to evaluate and
    /// plot the finished run before another writer may start).
    pub fn into_lock(self) -> RunLock {
        self.lock
    }

    fn early_stopping(&self) -> EarlyStopping {
        EarlyStopping {
            metric: self.cfg.train.early_stopping_metric,
            patience: self.cfg.train.early_stopping_patience,
        }
    }

    /// What epoch `epoch` (1-based) holds still: the backbone while `train.freeze` says so, and
    /// BatchNorm with it or when `train.batchnorm = "frozen"`.
    pub fn frozen_at(&self, epoch: usize) -> crate::optim::Frozen {
        let t = &self.cfg.train;
        let backbone = t.freeze == crate::config::Freeze::Backbone
            && (t.freeze_epochs == 0 || epoch <= t.freeze_epochs);
        crate::optim::Frozen {
            backbone,
            batchnorm: backbone || t.batchnorm == crate::config::BatchNormMode::Frozen,
        }
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
            run_dir: self.run.dir().to_path_buf(),
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
        let stopping = self.early_stopping();
        // a resumed run that had already stopped early stays stopped
        let mut early_stopped = self.state.epoch > 0 && stopping.should_stop(&self.state);
        while !early_stopped && self.state.epoch < self.cfg.train.epochs {
            let epoch = self.state.epoch + 1;
            let row = self.run_epoch(epoch, obs)?;
            let is_best = row.val_acc > self.state.best_val_acc;
            self.commit_epoch(&row, is_best)?;
            obs.on_epoch(&row, is_best);
            if stopping.should_stop(&self.state) {
                obs.on_note(&format!(
                    "early stopping: no improvement of {:?} for {} epochs",
                    stopping.metric, self.state.stale_epochs
                ));
                early_stopped = true;
                break;
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
        let step_cfg = StepConfig {
            clip_grad_norm: self.cfg.optim.clip_grad_norm,
        };
        let fp16 = precision == crate::config::Precision::Fp16;
        let frozen = self.frozen_at(epoch);
        self.opt.set_frozen(frozen);
        // frozen BatchNorm normalises with its running statistics and leaves them as they are
        let bn_learns = !frozen.batchnorm;
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
            let x = prepare_input(batch_tensor(&batch)?, precision, channels_last, device)?;
            let soft = batch.soft_targets(classes);
            let soft = soft
                .as_slice()
                .ok_or(TrainError::BatchLayout("contiguous targets"))?;
            let targets = Tensor::f_from_slice(soft)?
                .f_view([batch.len() as i64, classes as i64])?
                .f_to_device(device)?;
            let logits = with_autocast(precision, device, || self.net.f_forward_t(&x, bn_learns))?;
            let loss = weighted_soft_cross_entropy(
                &logits,
                &targets,
                smoothing,
                self.class_weights.as_ref(),
            )?;
            let loss_value = loss.f_double_value(&[])?;
            if !loss_value.is_finite() {
                return Err(TrainError::NonFinite {
                    epoch,
                    batch: bi + 1,
                    value: loss_value,
                });
            }
            optimisation_step(
                &mut self.opt,
                &loss,
                lr,
                step_cfg,
                fp16.then_some(&mut self.scaler),
                self.ema.as_mut(),
                StepAt {
                    epoch,
                    batch: bi + 1,
                },
            )?;
            let pred = logits.detach().f_argmax(1, false)?;
            let want = targets.f_argmax(1, false)?;
            let correct = pred
                .f_eq_tensor(&want)?
                .f_to_kind(Kind::Float)?
                .f_sum(Kind::Float)?
                .f_double_value(&[])?;
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
        obs.on_validate(epoch, self.val.num_samples());
        let opts = RunOptions {
            device,
            precision,
            channels_last,
            tta: false,
        };
        if let Some(ema) = &mut self.ema {
            ema.swap()?;
        }
        let preds = predict_loader(
            &self.net,
            &self.val,
            opts,
            &ValidationProgress(std::cell::RefCell::new(obs)),
        );
        if let Some(ema) = &mut self.ema {
            ema.swap()?;
        }
        let preds = match preds {
            Err(TrainError::NonFiniteOutput) => {
                return Err(TrainError::NonFinite {
                    epoch,
                    batch: 0,
                    value: f64::NAN,
                })
            }
            other => other?,
        };
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
        self.early_stopping().record(&mut state, row);
        let info = CheckpointInfo {
            epoch: row.epoch,
            metrics: row.clone(),
            ..self.info.clone()
        };
        // The weights that were validated: the EMA's when it is on.
        if let Some(ema) = &mut self.ema {
            ema.swap()?;
        }
        let saved = (|| -> Result<(), TrainError> {
            if is_best {
                save_weights(&self.vs, &self.run.path(RunFile::Weights(Checkpoint::Best)))?;
                self.run.write_info(Checkpoint::Best, &info)?;
            }
            save_weights(&self.vs, &self.run.path(RunFile::Weights(Checkpoint::Last)))?;
            self.run.write_info(Checkpoint::Last, &info)?;
            Ok(())
        })();
        if let Some(ema) = &mut self.ema {
            ema.swap()?;
        }
        saved?;
        self.run.save_resume(self.resume_tensors()?, &state)?;
        write_atomic(
            &self.run.path(RunFile::Metrics),
            metrics_csv(&state.history).as_bytes(),
        )?;
        self.state = state;
        Ok(())
    }

    /// Weights, optimiser, EMA and loss scale: everything of the resume point but the loop state.
    fn resume_tensors(&self) -> Result<Vec<(String, Tensor)>, TrainError> {
        let mut tensors: Vec<(String, Tensor)> = resnext_model::weights::state_dict(&self.vs)
            .into_iter()
            .map(|(n, t)| (format!("model.{n}"), t))
            .collect();
        tensors.extend(self.opt.state_tensors());
        if let Some(ema) = &self.ema {
            tensors.extend(ema.state_tensors());
        }
        tensors.push((
            "loss_scale".into(),
            Tensor::f_from_slice(&[self.scaler.scale])?,
        ));
        Ok(tensors)
    }
}
