//! Building the loop: a fresh run (scan, split, model, optimiser, loaders, the epoch-0 resume
//! point) or a resumed one (config, split and state from the run directory).

use super::loaders::{cores, data_threads, eval_loader_config, train_loader_config};
use super::step::LossScaler;
use super::Trainer;
use crate::config::TrainConfig;
use crate::dist::{self, shard::Shard, Comm, StatsSum};
use crate::ema::Ema;
use crate::error::TrainError;
use crate::optim::Optimizer;
use crate::resume::{LoopState, ResumePoint};
use crate::schedule::Schedule;
use resnext_data::scan::scan;
use resnext_data::split::Split;
use resnext_data::{Loader, Transform};
use resnext_infer::checkpoint::CheckpointInfo;
use resnext_infer::device::DeviceChoice;
use resnext_infer::metric::{metrics_csv, EpochRow};
use resnext_infer::run::{Run, RunFile, RunLock};
use resnext_io::write_atomic;
use resnext_model::sync_bn::SyncBatchNorm;
use resnext_model::weights::{load_weights_from, HeadPolicy, LoadReport, WeightsFile};
use resnext_model::ResNeXt;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use tch::nn::VarStore;
use tch::Tensor;

impl Trainer {
    /// Starts a fresh run in `run_dir`, refusing to overwrite a run that is already there.
    pub fn new(
        cfg: TrainConfig,
        run_dir: &Path,
        init_weights: Option<&WeightsFile>,
    ) -> Result<(Self, Option<LoadReport>), TrainError> {
        Self::new_on(dist::single(), cfg, run_dir, init_weights)
    }

    /// [`Self::new`] as one process of a data-parallel job: rank 0 scans, splits, builds the
    /// model (random or `init_weights`) and writes the run directory as one process would, then
    /// hands its config, split, weights and optimiser state to every other rank, which need not
    /// see the run directory at all.
    pub fn new_on(
        comm: Comm,
        mut cfg: TrainConfig,
        run_dir: &Path,
        init_weights: Option<&WeightsFile>,
    ) -> Result<(Self, Option<LoadReport>), TrainError> {
        if comm.rank() != 0 {
            return Ok((Self::follow(comm, run_dir)?, None));
        }
        cfg.train.ranks = comm.size();
        let split = data_split(&cfg)?;
        let (trainer, report) = Self::start_fresh(comm, cfg, run_dir, split, init_weights)?;
        trainer.lead()?;
        Ok((trainer, report))
    }

    /// Starts a fresh run in `run_dir` on a given split (cross-validation's folds), refusing to
    /// overwrite a run that is already there.
    pub fn with_split(
        cfg: TrainConfig,
        run_dir: &Path,
        split: Split,
        init_weights: Option<&WeightsFile>,
    ) -> Result<(Self, Option<LoadReport>), TrainError> {
        Self::start_fresh(dist::single(), cfg, run_dir, split, init_weights)
    }

    fn start_fresh(
        comm: Comm,
        cfg: TrainConfig,
        run_dir: &Path,
        split: Split,
        init_weights: Option<&WeightsFile>,
    ) -> Result<(Self, Option<LoadReport>), TrainError> {
        if resnext_data::safe_path::is_inside(run_dir, &cfg.data.root) {
            return Err(TrainError::RunInsideData {
                run: run_dir.to_path_buf(),
                root: cfg.data.root.clone(),
            });
        }
        split.validate()?;
        // a cross-validation directory is not a run's: its folds are
        let cv = resnext_infer::cv_dir::CvFile::ALL;
        if let Some(f) = cv.iter().find(|f| run_dir.join(f.name()).exists()) {
            return Err(TrainError::InvalidValue {
                key: "--out",
                reason: format!(
                    "{} is a cross-validation directory (it holds {}); choose another directory for a run",
                    run_dir.display(),
                    f.name()
                ),
            });
        }
        // a `--out` that is not a directory, and one that holds a run (busy or finished), are
        // refused below as such, not for their TensorBoard folder
        let planned = Run::at(run_dir);
        let fresh = run_dir.is_dir() && !planned.holds_run();
        if cfg.train.tensorboard && comm.rank() == 0 && fresh {
            // before anything of the run is written: a `tb` that cannot be the events' folder
            crate::tensorboard::writer::check_target(&planned.path(RunFile::TensorBoard))?;
        }
        let run = Run::create(run_dir)?;
        let lock = run.lock()?;
        if run.holds_run() {
            return Err(TrainError::RunExists(run_dir.to_path_buf()));
        }
        let mut trainer = Self::build(cfg, run, split, Some(lock), comm)?;
        let report = init_weights
            .map(|w| load_weights_from(&trainer.vs, w, HeadPolicy::ReplaceIfMismatched))
            .transpose()?;
        if let (Some(_), Some(ema)) = (&report, &mut trainer.ema) {
            *ema = Ema::new(ema.decay(), trainer.vs.variables().into_iter().collect());
        }
        write_atomic(
            &trainer.run.path(RunFile::Config),
            trainer.cfg.to_toml()?.as_bytes(),
        )?;
        trainer.split.save(&trainer.run.path(RunFile::Split))?;
        // An epoch-0 resume point (initial or imported weights, fresh optimiser), so a run killed
        // during its first epoch resumes too, from the same start as the uninterrupted run.
        trainer
            .run
            .save_resume(trainer.resume_tensors()?, &trainer.state)?;
        Ok((trainer, report))
    }

    /// Continues the run in `run_dir` from its resume point. `epochs` may extend it; `device`
    /// may move it.
    pub fn resume(
        run_dir: &Path,
        epochs: Option<usize>,
        device: Option<DeviceChoice>,
    ) -> Result<Self, TrainError> {
        Self::resume_on(dist::single(), run_dir, epochs, device)
    }

    /// [`Self::resume`] as one process of a data-parallel job, on any number of processes: rank 0
    /// reads the resume point and hands it to the others. The run's `config.toml` notes the new
    /// number in `train.ranks`.
    pub fn resume_on(
        comm: Comm,
        run_dir: &Path,
        epochs: Option<usize>,
        device: Option<DeviceChoice>,
    ) -> Result<Self, TrainError> {
        if comm.rank() != 0 {
            return Self::follow(comm, run_dir);
        }
        let run = Run::at(run_dir);
        if !run.path(RunFile::Resume).exists() {
            return Err(TrainError::NothingToResume(run_dir.to_path_buf()));
        }
        let lock = run.lock()?;
        let (tensors, state) = run.load_resume()?;
        let mut cfg = TrainConfig::of_run(&run)?;
        if let Some(e) = epochs {
            if e <= state.epoch {
                return Err(TrainError::InvalidValue {
                    key: "train.epochs",
                    reason: format!(
                        "--epochs {e} does not extend the run: {} already finished {} epoch(s); give more than {}",
                        run_dir.display(),
                        state.epoch,
                        state.epoch
                    ),
                });
            }
            cfg.train.epochs = e;
        }
        if let Some(d) = device {
            cfg.train.device = d;
        }
        let ranks_changed = cfg.train.ranks != comm.size();
        cfg.train.ranks = comm.size();
        cfg.validate()?;
        let split = run.split()?;
        let mut t = Self::build(cfg, run, split, Some(lock), comm)?;
        let resume_path = t.run.path(RunFile::Resume);
        t.apply_state(&tensors, &resume_path)?;
        t.state = state;
        // metrics.csv may lag the resume point if the process died between the two writes.
        write_atomic(
            &t.run.path(RunFile::Metrics),
            metrics_csv(&t.state.history).as_bytes(),
        )?;
        if ranks_changed {
            write_atomic(&t.run.path(RunFile::Config), t.cfg.to_toml()?.as_bytes())?;
        }
        t.lead()?;
        Ok(t)
    }

    /// Weights, optimiser, EMA and loss scale from resume tensors (`origin` names them in errors).
    fn apply_state(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        origin: &Path,
    ) -> Result<(), TrainError> {
        let bad = |reason: String| TrainError::BadResume {
            path: origin.to_path_buf(),
            reason,
        };
        // Shapes first: a checkpoint of another model is one line, not a libtorch trace.
        for (name, var) in self.vs.variables() {
            let src = tensors
                .get(&format!("model.{name}"))
                .ok_or_else(|| bad(format!("lacks model.{name}")))?;
            if src.size() != var.size() {
                return Err(bad(format!(
                    "holds model.{name} of shape {:?}; the run's config needs {:?}",
                    src.size(),
                    var.size()
                )));
            }
        }
        tch::no_grad(|| -> Result<(), TrainError> {
            for (name, mut var) in self.vs.variables() {
                if let Some(src) = tensors.get(&format!("model.{name}")) {
                    var.f_copy_(&src.f_to_kind(var.kind())?.f_to_device(var.device())?)?;
                }
            }
            Ok(())
        })?;
        self.opt.load_state(tensors, origin)?;
        if let Some(ema) = &mut self.ema {
            ema.load_state(tensors)?;
        }
        if let Some(swa) = &mut self.swa {
            swa.load_state(tensors)?;
        }
        if let Some(s) = tensors.get("loss_scale") {
            self.scaler = LossScaler::with_scale(s.f_double_value(&[0])?);
        }
        Ok(())
    }

    /// Rank 0 of a job of several processes: sends the config, split, loop state and resume
    /// tensors to every other rank ([`Self::follow`]).
    fn lead(&self) -> Result<(), TrainError> {
        if self.comm.size() == 1 {
            return Ok(());
        }
        let start = Start {
            config: self.cfg.to_toml()?,
            split: self.split.clone(),
            state: self.state.clone(),
        };
        let mut header = serde_json::to_vec(&start)
            .map_err(|e| TrainError::Dist(format!("cannot encode the start: {e}")))?;
        self.comm.broadcast(&mut header)?;
        let tensors = self.resume_tensors()?;
        let mut bytes = resnext_model::weights::tensors_to_bytes(&tensors)?;
        self.comm.broadcast(&mut bytes)?;
        Ok(())
    }

    /// Ranks other than 0: receive rank 0's start and build the same trainer (nothing is read
    /// from or written to `run_dir`).
    fn follow(comm: Comm, run_dir: &Path) -> Result<Self, TrainError> {
        let mut header = Vec::new();
        comm.broadcast(&mut header)?;
        let start: Start = serde_json::from_slice(&header)
            .map_err(|e| TrainError::Dist(format!("cannot decode rank 0's start: {e}")))?;
        let run = Run::at(run_dir);
        let cfg = TrainConfig::from_toml(&start.config, &run.path(RunFile::Config))?;
        let mut t = Self::build(cfg, run, start.split, None, comm)?;
        let mut bytes = Vec::new();
        t.comm.broadcast(&mut bytes)?;
        let tensors = resnext_model::weights::tensors_from_bytes(&bytes)?;
        t.apply_state(&tensors, Path::new("rank 0's resume point"))?;
        t.state = start.state;
        Ok(t)
    }

    pub(super) fn build(
        cfg: TrainConfig,
        run: Run,
        split: Split,
        lock: Option<RunLock>,
        comm: Comm,
    ) -> Result<Self, TrainError> {
        let device = cfg.train.device.resolve()?;
        // `auto` is resolved anew on every start, so a resumed run fits its new machine
        let numerics = resnext_infer::precision::resolve(
            cfg.train.precision,
            cfg.train.channels_last,
            device,
        )?;
        let torch_threads = match cfg.train.threads {
            0 => cores(),
            n => n,
        };
        tch::set_num_threads(torch_threads as i32);
        let data_threads = data_threads(&cfg, device);
        tch::manual_seed(cfg.train.seed as i64);
        let root = cfg.data.root.clone();
        let classes = split.classes.clone();
        let model_cfg = cfg.model.to_config(classes.len() as i64)?;
        let vs = VarStore::new(device);
        let mut net = ResNeXt::new(&vs.root(), &model_cfg)?;
        let shard = Shard {
            rank: comm.rank(),
            ranks: comm.size(),
        };
        let sync_bn = (cfg.train.sync_batchnorm && comm.size() > 1)
            .then(|| SyncBatchNorm::new(Arc::new(StatsSum(comm.clone()))));
        net.set_sync_batchnorm(sync_bn.clone());
        if numerics.channels_last {
            resnext_model::weights::convert_to_channels_last(&vs)?;
        }
        let follow = cfg.data.follow_links;
        let train_samples = split.samples_with(&split.train, &root, follow)?;
        let all_val = split.samples_with(&split.val, &root, follow)?;
        if train_samples.is_empty() || all_val.is_empty() {
            return Err(TrainError::EmptySplit {
                train: train_samples.len(),
                val: all_val.len(),
            });
        }
        // validation is sharded by contiguous ranges; the predictions are gathered
        let val_range = shard.range(all_val.len());
        let val_samples = all_val[val_range.clone()].to_vec();
        let lc = train_loader_config(&cfg, classes.len(), data_threads, shard);
        let train = Loader::new(
            &root,
            &train_samples,
            Transform::new(cfg.data.train_transform.clone())?,
            lc.clone(),
        )?;
        let vc = eval_loader_config(lc, &cfg);
        let eval_t = Transform::new(cfg.data.eval_transform.clone())?;
        let val = Loader::new(&root, &val_samples, eval_t.clone(), vc)?;
        let trainable: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        let opt = Optimizer::new(&cfg.optim, trainable, &net.parameter_roles());
        let mut counts = vec![0usize; classes.len()];
        for smp in &train_samples {
            counts[smp.label] += 1;
        }
        let class_weight_values = cfg.loss.class_weights.resolve(&counts)?;
        let class_weights = match &class_weight_values {
            Some(w) => {
                let w: Vec<f32> = w.iter().map(|&v| v as f32).collect();
                Some(Tensor::f_from_slice(&w)?.f_to_device(device)?)
            }
            None => None,
        };
        let mut schedule = Schedule::new(&cfg.schedule, cfg.optim.lr, cfg.train.epochs);
        if let Some(s) = &cfg.train.swa {
            schedule = schedule.with_swa(s.start_epoch, s.lr);
        }
        let swa = cfg
            .train
            .swa
            .clone()
            .map(|s| crate::swa::Swa::new(s, vs.variables().into_iter().collect()));
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
                allreduce_s: 0.0,
            },
            temperature: None,
            precision: Some(numerics.precision),
            channels_last: Some(numerics.channels_last),
            operating_point: None,
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
            scaler: LossScaler::default(),
            class_weights,
            class_weight_values,
            lock,
            comm,
            sync_bn,
            swa,
            val_offset: val_range.start,
            numerics,
        })
    }
}

/// The split of `cfg`'s data: `data.split_file`'s (checked against the classes found under
/// `data.root`), or one made by `data.*`'s settings.
pub(super) fn data_split(cfg: &TrainConfig) -> Result<Split, TrainError> {
    let folder = scan(&cfg.data.root)?;
    Ok(match &cfg.data.split_file {
        Some(f) => {
            let s = Split::load(f)?;
            s.check_classes(&folder.classes)?;
            s
        }
        None => cfg.data.split_config().split(&folder)?,
    })
}

/// What rank 0 sends the other ranks at the start of a job.
#[derive(serde::Serialize, serde::Deserialize)]
struct Start {
    config: String,
    split: Split,
    state: LoopState,
}
