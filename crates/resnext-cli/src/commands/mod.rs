//! One module per command.

mod bench;
mod data;
mod eval;
mod export;
mod plot;
mod predict;
mod summary;
mod train;

use crate::args::{ArchArg, Cli, Command, ModelArgs};
use anyhow::{bail, Context, Result};
use resnext_model::ModelConfig;
use std::process::ExitCode;

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Summary(a) => summary::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Train(a) => train::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Data(d) => data::run(d),
        Command::Bench(a) => bench::run(a),
        Command::Export(a) => export::run(a),
    }
}

/// Validates architecture arguments into a model config.
pub fn model_config(m: &ModelArgs, num_classes: i64) -> Result<ModelConfig> {
    let config = if m.arch == ArchArg::Custom {
        let layers = m
            .layers
            .as_deref()
            .context("--arch custom needs --layers, e.g. --layers 1,1,1,1")?;
        let parts: Vec<usize> = layers
            .split(',')
            .map(|s| s.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("--layers `{layers}` must be four comma-separated counts"))?;
        let Ok(layers) = <[usize; 4]>::try_from(parts) else {
            bail!("--layers `{layers}` must be four comma-separated counts");
        };
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
