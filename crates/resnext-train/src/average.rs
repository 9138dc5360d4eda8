//! Checkpoint averaging (`resnext average`, as timm's `avg_checkpoints.py`): the equal-weight
//! mean of a run's last N kept epoch checkpoints (`train.keep_checkpoints`) or of weights files
//! of the run's model, with BatchNorm's statistics recomputed by one pass over the run's training
//! part ([`crate::swa::recompute_batchnorm`]), validated and saved as the run's `average`
//! checkpoint (`average.safetensors` with its sidecar `average.json`).

use crate::config::TrainConfig;
use crate::dist::shard::Shard;
use crate::error::TrainError;
use crate::swa::{batchnorm_pass, mean_state};
use crate::trainer::loaders::{batchnorm_loader, data_threads, validation_loader};
use resnext_infer::checkpoint::{Checkpoint, CheckpointInfo};
use resnext_infer::evaluate::{predict_loader, RunOptions};
use resnext_infer::progress::Progress;
use resnext_infer::run::{Run, RunFile};
use resnext_model::weights::{load_weights, save_weights, state_dict, HeadPolicy};
use resnext_model::ResNeXt;
use std::collections::HashMap;
use std::path::PathBuf;
use tch::nn::VarStore;
use tch::Tensor;

/// Which weights to average.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sources {
    /// The run's last N kept epoch checkpoints.
    Last(usize),
    /// These weights files (of the run's model).
    Files(Vec<PathBuf>),
}

/// What [`average`] did.
#[derive(Debug, Clone)]
pub struct Averaged {
    /// The files averaged, in order.
    pub files: Vec<PathBuf>,
    /// The training images and batches of the BatchNorm pass.
    pub images: usize,
    pub batches: usize,
    /// The average's validation loss and accuracy.
    pub val_loss: f64,
    pub val_acc: f64,
    /// Where it was saved (`average.safetensors`).
    pub path: PathBuf,
}

/// The files `sources` names in `run`; too few kept epochs is an error naming what there is.
pub fn source_files(run: &Run, sources: &Sources) -> Result<Vec<PathBuf>, TrainError> {
    match sources {
        Sources::Files(files) if files.is_empty() => {
            Err(TrainError::Average("no checkpoint files given".into()))
        }
        Sources::Files(files) => Ok(files.clone()),
        Sources::Last(0) => Err(TrainError::Average("--last must be at least 1".into())),
        Sources::Last(n) => {
            let kept = run.kept_epochs()?;
            if kept.len() < *n {
                return Err(TrainError::Average(format!(
                    "--last {n} asks for more epoch checkpoints than {} keeps ({}; set train.keep_checkpoints to keep more)",
                    run.dir().display(),
                    kept.len()
                )));
            }
            Ok(kept[kept.len() - n..]
                .iter()
                .map(|(_, p)| p.clone())
                .collect())
        }
    }
}

/// Averages `sources` of `run` on `device` into the run's `average` checkpoint, holding the run's
/// write lock; `progress` sees the validation.
pub fn average(
    run: &Run,
    sources: &Sources,
    device: tch::Device,
    progress: &dyn Progress,
) -> Result<Averaged, TrainError> {
    let files = source_files(run, sources)?;
    let _lock = run.lock()?;
    let cfg = TrainConfig::of_run(run)?;
    let split = run.split()?;
    let model = cfg.model.to_config(split.classes.len() as i64)?;
    let vs = VarStore::new(device);
    let net = ResNeXt::new(&vs.root(), &model)?;
    let mut dicts: Vec<HashMap<String, Tensor>> = Vec::with_capacity(files.len());
    for f in &files {
        load_weights(&vs, f, HeadPolicy::Strict)?;
        dicts.push(state_dict(&vs).into_iter().collect());
    }
    let mean = mean_state(&dicts).map_err(TrainError::Average)?;
    let mean: HashMap<String, Tensor> = mean.into_iter().collect();
    tch::no_grad(|| -> Result<(), TrainError> {
        for (name, mut var) in vs.variables() {
            let src = mean
                .get(&name)
                .ok_or_else(|| TrainError::Average(format!("the average lacks {name}")))?;
            var.f_copy_(&src.f_to_kind(var.kind())?.f_to_device(device)?)?;
        }
        Ok(())
    })?;
    let threads = data_threads(&cfg, device);
    let opts = RunOptions {
        device,
        ..RunOptions::cpu()
    };
    let loader = batchnorm_loader(&cfg, &split, threads, Shard::whole())?;
    let (images, batches) = batchnorm_pass(&net, &vs, &loader, 0, opts)?;
    let val = validation_loader(&cfg, &split, threads)?;
    let preds = predict_loader(&net, &val, opts, progress)?;
    let base = run.info(Checkpoint::Last)?;
    let mut metrics = base.metrics.clone();
    metrics.val_loss = preds.loss;
    metrics.val_acc = preds.accuracy();
    let info = CheckpointInfo { metrics, ..base };
    let path = run.path(RunFile::Weights(Checkpoint::Average));
    save_weights(&vs, &path)?;
    run.write_info(Checkpoint::Average, &info)?;
    Ok(Averaged {
        files,
        images,
        batches,
        val_loss: preds.loss,
        val_acc: preds.accuracy(),
        path,
    })
}
