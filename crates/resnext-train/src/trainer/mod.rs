//! The training loop: per epoch, train on shuffled augmented batches, validate with the eval
//! transform, keep the best checkpoint by validation accuracy (really the best, unlike the
//! original tutorial), write the last checkpoint and an atomic resume point.
//!
//! - [`start`]: building the loop, fresh or resumed;
//! - [`loaders`]: the loaders built from a config and a split;
//! - [`step`]: one optimisation step (loss scaling, clipping, EMA, finite weights);
//! - [`early_stopping`]: when to stop before `train.epochs`;
//! - [`observer`]: what the loop reports as it goes.

pub mod early_stopping;
pub(crate) mod loaders;
pub mod observer;
mod start;
pub mod step;
pub(crate) mod sweep;

pub use early_stopping::EarlyStopping;
pub use observer::{Observer, Silent, StartInfo, StepInfo};

use crate::config::TrainConfig;
use crate::dist::Comm;
use crate::ema::Ema;
use crate::error::TrainError;
use crate::loss::weighted_soft_cross_entropy;
use crate::optim::Optimizer;
use crate::resume::{LoopState, ResumePoint};
use crate::schedule::Schedule;
use resnext_data::split::Split;
use resnext_data::Loader;
use resnext_infer::checkpoint::{Checkpoint, CheckpointInfo};
use resnext_infer::evaluate::{batch_tensor, predict_loader, RunOptions};
use resnext_infer::metric::calibration::{nll, softmax_t};
pub use resnext_infer::metric::EpochRow;
use resnext_infer::metric::{metrics_csv, Running};
use resnext_infer::precision::{prepare_input, with_autocast};
use resnext_infer::progress::Progress;
use resnext_infer::run::{Run, RunFile, RunLock};
use resnext_infer::run_eval::EvalOptions;
use resnext_io::write_atomic;
use resnext_model::sync_bn::SyncBatchNorm;
use resnext_model::weights::save_weights;
use resnext_model::ResNeXt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use step::{apply_step, LossScaler, StepAt, StepConfig, StepDist};
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
    class_weight_values: Option<Vec<f64>>,
    /// This process's write lock on the run directory, held for the trainer's life (rank 0
    /// only: the other ranks of a data-parallel job never write).
    lock: Option<RunLock>,
    /// The processes of a data-parallel job ([`crate::dist::Single`] for one).
    comm: Comm,
    /// `train.swa`'s running average.
    swa: Option<crate::swa::Swa>,
    /// Synchronised BatchNorm (`train.sync_batchnorm` on several processes).
    sync_bn: Option<Arc<SyncBatchNorm>>,
    /// Index in the whole validation part of this rank's first validation image.
    val_offset: usize,
    /// The precision and layout this process runs, `auto` resolved on its device.
    numerics: resnext_infer::precision::Numerics,
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

    /// The precision and layout in use, with what `auto` chose and why.
    pub fn numerics(&self) -> &resnext_infer::precision::Numerics {
        &self.numerics
    }

    /// How the network runs here: this trainer's device, precision and layout, no TTA.
    fn run_options(&self) -> RunOptions {
        RunOptions {
            device: self.device,
            precision: self.numerics.precision,
            channels_last: self.numerics.channels_last,
            tta: false,
        }
    }

    /// The evaluation of the run once trained: on this trainer's device and numerics, in
    /// batches of `data.eval_batch_size` (or `data.batch_size`), every other option its default.
    pub fn eval_options(&self) -> EvalOptions {
        let data = &self.cfg.data;
        EvalOptions {
            run: self.run_options(),
            batch_size: data.eval_batch_size.unwrap_or(data.batch_size),
            ..EvalOptions::default()
        }
    }

    /// Frees the model, optimiser and loaders but keeps the run's write lock (to evaluate and
    /// plot the finished run before another writer may start); `None` on ranks other than 0.
    pub fn into_lock(self) -> Option<RunLock> {
        self.lock
    }

    /// This process's rank in a data-parallel job (0 on one process).
    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    /// The number of processes training this run.
    pub fn ranks(&self) -> usize {
        self.comm.size()
    }

    /// Whether this process writes the run directory (rank 0).
    pub fn writes(&self) -> bool {
        self.comm.rank() == 0
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
        // `train.tensorboard`: the run's `tb/` events beside what `obs` reports (rank 0)
        let mut tb = crate::tensorboard::observer::for_run(
            &self.cfg,
            self.run.dir(),
            &self.split.classes,
            self.writes(),
        )?;
        let mut tee = crate::tensorboard::observer::Tee(obs, tb.as_mut());
        let fitted = self.fit_observed(&mut tee);
        let finished = crate::tensorboard::observer::finish(tb, fitted.is_ok());
        // training's own error first: an event file that cannot be closed does not hide it
        let outcome = fitted?;
        finished?;
        Ok(outcome)
    }

    fn fit_observed(
        &mut self,
        obs: &mut crate::tensorboard::observer::Tee<'_>,
    ) -> Result<Outcome, TrainError> {
        let params: i64 = self
            .vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        // the run's first lines: what `auto` chose and why, and warnings
        for note in &self.numerics.notes {
            obs.on_note(note);
        }
        obs.on_start(&StartInfo {
            run_dir: self.run.dir().to_path_buf(),
            classes: self.split.classes.clone(),
            train_images: self.train.num_samples(),
            val_images: self.split.val.len(),
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
            self.check_replicas(epoch)?;
            if let Some(swa) = &mut self.swa {
                if swa.config().averages(epoch) {
                    swa.update()?;
                }
            }
            self.commit_epoch(&row, is_best)?;
            obs.on_epoch(&row, is_best);
            obs.take_error()?;
            if stopping.should_stop(&self.state) {
                obs.on_note(&format!(
                    "early stopping: no improvement of {:?} for {} epochs",
                    stopping.metric, self.state.stale_epochs
                ));
                early_stopped = true;
                break;
            }
        }
        self.finish_swa(obs)?;
        Ok(Outcome {
            best_epoch: self.state.best_epoch,
            best_val_acc: self.state.best_val_acc,
            epochs_run: self.state.epoch,
            early_stopped,
        })
    }

    /// One epoch: the training part, then validation. Every step goes through the collective
    /// (`comm`); one process is its single-rank case (sums over one rank), not a branch.
    fn run_epoch(&mut self, epoch: usize, obs: &mut dyn Observer) -> Result<EpochRow, TrainError> {
        let start = Instant::now();
        let lr_at_start = self.schedule.lr((epoch - 1) as f64);
        let train = self.train_epoch(epoch, obs)?;
        let val = self.validate(epoch, obs)?;
        obs.on_validated(epoch, &val);
        Ok(EpochRow {
            epoch,
            train_loss: train.running.loss(),
            train_acc: train.running.acc(),
            val_loss: val.loss,
            val_acc: val.accuracy(),
            lr: lr_at_start,
            seconds: start.elapsed().as_secs_f64(),
            images_per_s: train.running.count as f64 / train.seconds.max(1e-9),
            data_wait_s: train.data_wait.as_secs_f64(),
            allreduce_s: train.reduce.as_secs_f64(),
        })
    }

    /// The training part of an epoch, over every process: its loss and accuracy, and where the
    /// time went. The optimiser steps once per `train.accumulate` micro-batches (the loader's
    /// batches); the epoch's last step takes the micro-batches that are left, so every epoch
    /// ends on a step boundary, where the resume point is written.
    fn train_epoch(
        &mut self,
        epoch: usize,
        obs: &mut dyn Observer,
    ) -> Result<TrainPart, TrainError> {
        let num_batches = self.train.num_batches();
        obs.on_epoch_start(epoch, num_batches);
        let frozen = self.frozen_at(epoch);
        self.opt.set_frozen(frozen);
        let accumulate = self.cfg.train.accumulate.max(1);
        let steps = crate::schedule::steps_per_epoch(num_batches, accumulate);
        let mut part = TrainPart::default();
        let started = Instant::now();
        let mut batches = self.train.epoch(epoch as u64).enumerate();
        let mut step = 0;
        let mut group = Vec::with_capacity(accumulate);
        let mut exhausted = false;
        let mut step_started = Instant::now();
        while !exhausted {
            group.clear();
            while group.len() < accumulate {
                let asked = Instant::now();
                let Some((bi, batch)) = batches.next() else {
                    exhausted = true;
                    break;
                };
                part.data_wait += asked.elapsed();
                group.push((bi, batch?));
            }
            if group.is_empty() {
                break;
            }
            // the schedule counts optimiser steps
            let t = (epoch - 1) as f64 + step as f64 / steps.max(1) as f64;
            step += 1;
            let (results, reduce) = self.train_step(&group, epoch, t, !frozen.batchnorm)?;
            part.reduce += reduce;
            let (mut step_loss, mut step_images) = (0.0, 0);
            for ((bi, batch), result) in group.iter().zip(results) {
                let Some((loss, correct)) = result else {
                    continue;
                };
                part.running.add(loss, correct, batch.len());
                step_loss += loss * batch.len() as f64;
                step_images += batch.len();
                tracing::debug!(epoch, batch = bi + 1, num_batches, loss, "train step");
                obs.on_batch(epoch, bi + 1, part.running.loss(), part.running.acc());
            }
            if step_images > 0 {
                obs.on_step(&StepInfo {
                    epoch,
                    batch: group.last().map_or(0, |g| g.0 + 1),
                    batches: num_batches,
                    loss: step_loss / step_images as f64,
                    lr: self.schedule.lr(t),
                    images: step_images,
                    seconds: step_started.elapsed().as_secs_f64(),
                    batch_data: &group[0].1,
                });
                step_started = Instant::now();
            }
        }
        part.seconds = started.elapsed().as_secs_f64();
        self.average_running_stats()?;
        // the epoch's training figures over every process
        let r = &part.running;
        let mut sums = [r.loss_sum, r.correct, r.count as f64];
        self.comm.sum_f64(&mut sums)?;
        part.running = Running {
            loss_sum: sums[0],
            correct: sums[1],
            count: sums[2] as usize,
        };
        Ok(part)
    }

    /// One optimisation step on this process's micro-batches `group` (`(index, batch)`, each its
    /// share of a global batch), at fractional epoch `t`: each micro-batch's loss and correct
    /// predictions, and the time summing gradients took. Each micro-batch's loss is weighted by
    /// its share of the whole step's (the sum of the sample weights of every micro-batch on every
    /// process), so `accumulate` micro-batches of B give the gradients of one batch of
    /// `accumulate`·B, class weights and mixup's soft targets included; the gradients are summed
    /// across processes once, at the step. A micro-batch is `None` when its global batch is
    /// skipped (BatchNorm cannot take the statistics of one sample: PyTorch refuses it, the
    /// unbiased running variance would become infinite; the sample reappears next epoch, and
    /// every process skips together); when all are, the step is.
    #[allow(clippy::type_complexity)]
    fn train_step(
        &mut self,
        group: &[(usize, resnext_data::Batch)],
        epoch: usize,
        t: f64,
        bn_learns: bool,
    ) -> Result<(Vec<Option<(f64, f64)>>, std::time::Duration), TrainError> {
        let classes = self.split.classes.len();
        let (precision, channels_last, device) = (
            self.numerics.precision,
            self.numerics.channels_last,
            self.device,
        );
        let softs: Vec<_> = group.iter().map(|(_, b)| b.soft_targets(classes)).collect();
        // this process's images and loss weight per micro-batch, and every process's
        let mut local = Vec::with_capacity(2 * group.len());
        let class_weights = self.class_weight_values.as_deref();
        for ((_, batch), soft) in group.iter().zip(&softs) {
            local.push(batch.len() as f64);
            local.push(step::loss_weight(soft.view(), class_weights));
        }
        let all = self.comm.gather_f64(&local)?;
        // one process's batch, or its share in the BatchNorm statistics of every process
        let min_share = if self.sync_bn.is_some() { 1.0 } else { 2.0 };
        let kept: Vec<bool> = (0..group.len())
            .map(|i| {
                let global_len: f64 = all.iter().map(|v| v[2 * i]).sum();
                let min_len = all.iter().map(|v| v[2 * i]).fold(f64::INFINITY, f64::min);
                global_len >= 2.0 && min_len >= min_share
            })
            .collect();
        let step_weight: f64 = (0..group.len())
            .filter(|&i| kept[i])
            .map(|i| all.iter().map(|v| v[2 * i + 1]).sum::<f64>())
            .sum();
        let fp16 = precision == crate::config::Precision::Fp16;
        let mut results = Vec::with_capacity(group.len());
        let mut last_at = None;
        for (i, ((bi, batch), soft)) in group.iter().zip(&softs).enumerate() {
            let at = StepAt {
                epoch,
                batch: bi + 1,
            };
            if !kept[i] {
                tracing::debug!(
                    epoch,
                    batch = at.batch,
                    "skipped a training batch of fewer than 2 images (per process without sync_batchnorm)"
                );
                results.push(None);
                continue;
            }
            tracing::debug!(
                rank = self.comm.rank(),
                epoch,
                batch = at.batch,
                samples = ?batch.indices,
                "batch"
            );
            let x = prepare_input(batch_tensor(batch)?, precision, channels_last, device)?;
            let soft = soft
                .as_slice()
                .ok_or(resnext_infer::InferError::BatchLayout("contiguous targets"))?;
            let targets = Tensor::f_from_slice(soft)?
                .f_view([batch.len() as i64, classes as i64])?
                .f_to_device(device)?;
            let logits = with_autocast(precision, device, || self.net.f_forward_t(&x, bn_learns))?;
            let loss = weighted_soft_cross_entropy(
                &logits,
                &targets,
                self.cfg.train.label_smoothing,
                self.class_weights.as_ref(),
            )?;
            let loss_value = loss.f_double_value(&[])?;
            if !loss_value.is_finite() {
                return Err(TrainError::NonFinite {
                    epoch,
                    batch: at.batch,
                    value: loss_value,
                });
            }
            // this process's share of the step's mean loss; the shares' gradients add up
            let share = loss.f_mul_scalar(local[2 * i + 1] / step_weight)?;
            let backward = step::micro_backward(
                &mut self.opt,
                &share,
                fp16.then_some(&self.scaler),
                self.sync_bn.as_deref(),
                last_at.is_some(),
            );
            if let Some(sync) = &self.sync_bn {
                sync.clear();
            }
            backward?;
            last_at = Some(at);
            let pred = logits.detach().f_argmax(1, false)?;
            let want = targets.f_argmax(1, false)?;
            let correct = pred
                .f_eq_tensor(&want)?
                .f_to_kind(Kind::Float)?
                .f_sum(Kind::Float)?
                .f_double_value(&[])?;
            results.push(Some((loss_value, correct)));
        }
        let Some(at) = last_at else {
            return Ok((results, std::time::Duration::ZERO));
        };
        let reduce = apply_step(
            &mut self.opt,
            self.schedule.lr(t),
            StepConfig {
                clip_grad_norm: self.cfg.optim.clip_grad_norm,
            },
            fp16.then_some(&mut self.scaler),
            self.ema.as_mut(),
            at,
            Some(StepDist {
                comm: self.comm.as_ref(),
                sync_batchnorm: self.sync_bn.as_deref(),
            }),
        )?;
        Ok((results, reduce.elapsed))
    }

    /// Validation of an epoch (with the EMA's weights when there is one): every process
    /// predicts its share of the validation part, and the loss and accuracy are those of the
    /// whole part.
    fn validate(
        &mut self,
        epoch: usize,
        obs: &mut dyn Observer,
    ) -> Result<resnext_infer::evaluate::Predictions, TrainError> {
        // progress counts this rank's share of the validation images
        obs.on_validate(epoch, self.val.num_samples());
        if let Some(ema) = &mut self.ema {
            ema.swap()?;
        }
        let preds = predict_loader(
            &self.net,
            &self.val,
            self.run_options(),
            &ValidationProgress(std::cell::RefCell::new(obs)),
        );
        if let Some(ema) = &mut self.ema {
            ema.swap()?;
        }
        let non_finite = |value| TrainError::NonFinite {
            epoch,
            batch: 0,
            value,
        };
        let preds = match preds {
            Err(resnext_infer::InferError::NonFiniteOutput) => return Err(non_finite(f64::NAN)),
            other => other?,
        };
        let classes = self.split.classes.len();
        let preds = gather_predictions(self.comm.as_ref(), &preds, self.val_offset, classes)?;
        if !preds.loss.is_finite() {
            return Err(non_finite(preds.loss));
        }
        Ok(preds)
    }

    /// BatchNorm's running statistics, averaged over the processes. Each process's statistics
    /// follow its own share of the batches unless BatchNorm is synchronised; DDP keeps rank 0's
    /// (it broadcasts them before every forward pass), the mean of all ranks' is the better
    /// estimate, and it costs one sum per epoch instead of one broadcast per step.
    fn average_running_stats(&mut self) -> Result<(), TrainError> {
        let mut stats: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .filter(|(n, _)| n.ends_with(".running_mean") || n.ends_with(".running_var"))
            .collect();
        stats.sort_by(|a, b| a.0.cmp(&b.0));
        let mut flat: Vec<f64> = Vec::new();
        for (_, t) in &stats {
            flat.extend(Vec::<f64>::try_from(
                t.f_detach()?.f_to_kind(Kind::Double)?.f_view(-1)?,
            )?);
        }
        self.comm.sum_f64(&mut flat)?;
        let n = self.comm.size() as f64;
        let mut at = 0;
        tch::no_grad(|| -> Result<(), TrainError> {
            for (_, t) in &mut stats {
                let len = t.numel();
                let mean: Vec<f64> = flat[at..at + len].iter().map(|v| v / n).collect();
                at += len;
                let src = Tensor::f_from_slice(&mean)?
                    .f_view(t.size().as_slice())?
                    .f_to_kind(t.kind())?
                    .f_to_device(t.device())?;
                t.f_copy_(&src)?;
            }
            Ok(())
        })
    }

    /// Checks that every process holds the same weights after `epoch` (they must: they start from
    /// rank 0's and take the same summed gradients), by a hash of the exact bits of every
    /// variable, BatchNorm's running statistics included.
    fn check_replicas(&self, epoch: usize) -> Result<(), TrainError> {
        // one process is its own replica: hashing every weight would be pure cost
        if self.comm.size() == 1 {
            return Ok(());
        }
        let hash = weights_hash(&self.vs)?;
        let all = self
            .comm
            .gather_f64(&[(hash >> 32) as f64, (hash & 0xffff_ffff) as f64])?;
        if let Some(r) = all.iter().position(|h| *h != all[0]) {
            return Err(TrainError::Dist(format!(
                "after epoch {epoch} the weights of rank {r} differ from rank 0's"
            )));
        }
        tracing::debug!(
            epoch,
            hash = format!("{hash:016x}"),
            ranks = all.len(),
            "every rank holds the same weights"
        );
        Ok(())
    }

    /// Writes the epoch's checkpoints and commits the resume point (rank 0; the other ranks only
    /// keep the loop state).
    fn commit_epoch(&mut self, row: &EpochRow, is_best: bool) -> Result<(), TrainError> {
        let mut state = self.state.clone();
        state.epoch = row.epoch;
        state.history.push(row.clone());
        if is_best {
            state.best_val_acc = row.val_acc;
            state.best_epoch = row.epoch;
        }
        self.early_stopping().record(&mut state, row);
        if !self.writes() {
            self.state = state;
            return Ok(());
        }
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
            self.keep_epoch_weights(row.epoch)?;
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

    /// `train.keep_checkpoints = K`: the weights of epoch `epoch` (those validated and saved as
    /// `last`) as `epoch-NNN.safetensors`, and those of epochs before the last K removed.
    fn keep_epoch_weights(&self, epoch: usize) -> Result<(), TrainError> {
        let keep = self.cfg.train.keep_checkpoints;
        if keep == 0 {
            return Ok(());
        }
        save_weights(&self.vs, &self.run.epoch_weights(epoch))?;
        for (e, path) in self.run.kept_epochs()? {
            if e + keep <= epoch {
                std::fs::remove_file(&path).map_err(|source| TrainError::Remove {
                    path: path.clone(),
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// `train.swa`'s end: the average with BatchNorm statistics recomputed over the training
    /// part, validated, saved as the `swa` checkpoint (rank 0); the live weights are restored.
    /// Run again when a finished run resumes, so a run killed here still gets it.
    fn finish_swa(&mut self, obs: &mut dyn Observer) -> Result<(), TrainError> {
        let Some(swa) = &mut self.swa else {
            return Ok(());
        };
        if swa.count() == 0 {
            obs.on_note(&format!(
                "swa: no epoch reached train.swa.start_epoch {}; no swa checkpoint",
                swa.config().start_epoch
            ));
            return Ok(());
        }
        swa.swap()?;
        let saved = self.save_swa(obs);
        if let Some(swa) = &mut self.swa {
            swa.swap()?;
        }
        saved
    }

    /// [`Self::finish_swa`] with the average in the live weights.
    fn save_swa(&mut self, obs: &mut dyn Observer) -> Result<(), TrainError> {
        let epoch = self.state.epoch;
        let count = self.swa.as_ref().map_or(0, |s| s.count());
        let batchnorm = if self.frozen_at(epoch).batchnorm {
            "BatchNorm frozen, its statistics kept".to_string()
        } else {
            let (images, batches) = self.recompute_batchnorm()?;
            format!("BatchNorm statistics from {images} training images ({batches} batches)")
        };
        // validated as they are saved: the average's weights, not the EMA's
        let ema = self.ema.take();
        let preds = self.validate(epoch, obs);
        self.ema = ema;
        let preds = preds?;
        if self.writes() {
            let last = self.state.history.last();
            let mut row = last.unwrap_or(&self.info.metrics).clone();
            row.val_loss = preds.loss;
            row.val_acc = preds.accuracy();
            let info = CheckpointInfo {
                epoch,
                metrics: row,
                ..self.info.clone()
            };
            save_weights(&self.vs, &self.run.path(RunFile::Weights(Checkpoint::Swa)))?;
            self.run.write_info(Checkpoint::Swa, &info)?;
        }
        obs.on_note(&format!(
            "swa: the average of {count} epochs' weights, {batchnorm}: val_acc {:.2}% -> {}",
            preds.accuracy() * 100.0,
            self.run.path(RunFile::Weights(Checkpoint::Swa)).display()
        ));
        Ok(())
    }

    /// BatchNorm's running statistics recomputed for the live weights with one pass over this
    /// process's share of the training part (training transform, no mixing), averaged over the
    /// processes: the images and batches of this process's pass.
    fn recompute_batchnorm(&mut self) -> Result<(usize, usize), TrainError> {
        let shard = crate::dist::shard::Shard {
            rank: self.comm.rank(),
            ranks: self.comm.size(),
        };
        let loader = loaders::batchnorm_loader(&self.cfg, &self.split, self.data_threads, shard)?;
        // each process its own statistics (no collective per batch), averaged below
        let sync = self.sync_bn.take();
        self.net.set_sync_batchnorm(None);
        let used = crate::swa::batchnorm_pass(
            &self.net,
            &self.vs,
            &loader,
            self.state.epoch as u64 + 1,
            self.run_options(),
        );
        self.net.set_sync_batchnorm(sync.clone());
        self.sync_bn = sync;
        let used = used?;
        self.average_running_stats()?;
        Ok(used)
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
        if let Some(swa) = &self.swa {
            tensors.extend(swa.state_tensors());
        }
        tensors.push((
            "loss_scale".into(),
            Tensor::f_from_slice(&[self.scaler.scale])?,
        ));
        Ok(tensors)
    }
}

/// A hash (FNV-1a over the bits) of every variable, in name order.
fn weights_hash(vs: &VarStore) -> Result<u64, TrainError> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = crate::fnv::Fnv1a::default();
    let mut feed = |bytes: &[u8]| h.feed(bytes);
    for (_, t) in vars {
        let t = t.f_detach()?.f_to_device(Device::Cpu)?.f_contiguous()?;
        let n = t.numel();
        if t.kind() == Kind::Int64 {
            let mut v = vec![0i64; n];
            t.f_copy_data(&mut v, n)?;
            v.iter().for_each(|x| feed(&x.to_le_bytes()));
        } else {
            let mut v = vec![0f32; n];
            t.f_to_kind(Kind::Float)?.f_copy_data(&mut v, n)?;
            v.iter().for_each(|x| feed(&x.to_bits().to_le_bytes()));
        }
    }
    Ok(h.finish())
}

/// The training part of an epoch, summed over the processes.
#[derive(Default)]
struct TrainPart {
    running: Running,
    seconds: f64,
    data_wait: std::time::Duration,
    reduce: std::time::Duration,
}

/// Every rank's validation predictions, in the order of the whole validation part: rows of
/// (index, label, logits) are gathered, and the loss and accuracy are those of one process
/// evaluating every image (the loss as the mean of per-image cross-entropies).
fn gather_predictions(
    comm: &dyn crate::dist::Collective,
    local: &resnext_infer::evaluate::Predictions,
    offset: usize,
    classes: usize,
) -> Result<resnext_infer::evaluate::Predictions, TrainError> {
    let width = 2 + classes;
    let mut rows = Vec::with_capacity(local.labels.len() * width);
    for ((i, y), l) in local.indices.iter().zip(&local.labels).zip(&local.logits) {
        rows.push((offset + i) as f64);
        rows.push(*y as f64);
        rows.extend(l);
    }
    let mut all: Vec<Vec<f64>> = comm
        .gather_f64(&rows)?
        .into_iter()
        .flat_map(|r| r.chunks(width).map(|c| c.to_vec()).collect::<Vec<_>>())
        .collect();
    all.sort_by(|a, b| a[0].total_cmp(&b[0]));
    let mut out = resnext_infer::evaluate::Predictions::default();
    for row in all {
        let logits = &row[2..];
        out.indices.push(row[0] as usize);
        out.labels.push(row[1] as usize);
        out.probs.push(softmax_t(logits, 1.0));
        out.logits.push(logits.to_vec());
    }
    out.loss = nll(&out.logits, &out.labels, 1.0);
    Ok(out)
}
