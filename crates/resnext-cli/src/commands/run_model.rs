//! Loading a trained model from a run directory: sidecar, weights (strict), eval transform.

use anyhow::{Context, Result};
use resnext_data::Transform;
use resnext_model::weights::{load_weights, HeadPolicy};
use resnext_model::ResNeXt;
use resnext_train::checkpoint::{CheckpointInfo, RunDir, Which};
use std::path::Path;
use tch::nn::VarStore;
use tch::Device;

pub struct RunModel {
    pub run: RunDir,
    pub info: CheckpointInfo,
    /// Holds the weights `net` uses.
    pub vs: VarStore,
    pub net: ResNeXt,
    pub transform: Transform,
}

pub fn load(dir: &Path, which: &str, device: Device) -> Result<RunModel> {
    let which = Which::parse(which)?;
    let run = RunDir::new(dir);
    let info = run.info(which)?;
    let vs = VarStore::new(device);
    let net = ResNeXt::new(&vs.root(), &info.model)?;
    let weights = run.weights(which);
    load_weights(&vs, &weights, HeadPolicy::Strict)
        .with_context(|| format!("cannot load the weights of run {}", dir.display()))?;
    let transform = Transform::new(info.eval_transform.clone())?;
    Ok(RunModel {
        run,
        info,
        vs,
        net,
        transform,
    })
}
