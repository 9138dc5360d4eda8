//! What `predict`, `eval`, `export`, `serve`, `summary` and `bench` share: the model given by
//! `--run` or by `--weights --arch …` ([`load_source`]) on the device that
//! [`crate::args::run_options`] resolved, and architecture flags validated into a model config ([`model_config`]).
//! Its own module, so that the commands depend on it and it on none of them.

use crate::args::{ArchArg, ModelArgs, SourceArgs};
use anyhow::{bail, Context, Result};
use resnext_data::TransformConfig;
use resnext_model::ModelConfig;
use resnext_train::{Checkpoint, Predictor, Run, RunFile, RunOptions};
use std::path::PathBuf;

/// A predictor from `--run` or `--weights`, the weights file it was made from, and every file it
/// read (outputs must not replace them).
pub struct Source {
    pub predictor: Predictor,
    pub weights: PathBuf,
    pub inputs: Vec<PathBuf>,
}

/// Builds the predictor that `predict` and `export` use.
pub fn load_source(a: &SourceArgs, opts: RunOptions) -> Result<Source> {
    if let Some(dir) = &a.run {
        if a.num_classes.is_some()
            || a.model.layers.is_some()
            || a.model.groups.is_some()
            || a.model.width_per_group.is_some()
        {
            bail!("--run brings its own architecture; drop --arch/--num-classes/--layers/--groups/--width-per-group");
        }
        let run = Run::open(dir)?;
        let which: Checkpoint = a.checkpoint.into();
        let weights = run.path(RunFile::Weights(which));
        return Ok(Source {
            predictor: run.predictor(which, opts)?,
            inputs: vec![weights.clone(), run.path(RunFile::Sidecar(which))],
            weights,
        });
    }
    let Some(weights) = &a.weights else {
        bail!("give --run DIR or --weights FILE");
    };
    let num_classes = a.num_classes.context("--weights needs --num-classes")?;
    let config = model_config(&a.model, num_classes)?;
    let predictor = Predictor::from_weights_file(
        &resnext_model::weights::WeightsFile::new(weights).with_key(a.key.clone()),
        &config,
        TransformConfig::resize_exact(a.image_size),
        opts,
    )?;
    Ok(Source {
        predictor,
        weights: weights.clone(),
        inputs: vec![weights.clone()],
    })
}

/// Validates architecture arguments into a model config.
pub fn model_config(m: &ModelArgs, num_classes: i64) -> Result<ModelConfig> {
    let config = if m.arch == ArchArg::Custom {
        let layers = m
            .layers
            .context("--arch custom needs --layers, e.g. --layers 1,1,1,1")?
            .0;
        let groups = m.groups.context("--arch custom needs --groups")?;
        let width = m
            .width_per_group
            .context("--arch custom needs --width-per-group")?;
        ModelConfig::custom(layers, groups, width, num_classes)
    } else {
        if m.layers.is_some() || m.groups.is_some() || m.width_per_group.is_some() {
            bail!("--layers, --groups and --width-per-group go with --arch custom only");
        }
        ModelConfig::from_arch(m.arch.into(), num_classes)?
    };
    config.validate()?;
    Ok(config)
}
