//! `resnext export`: a run's checkpoint (or a bare weights file) as TorchScript or ONNX, with a
//! `FILE.json` sidecar (classes, input size, normalisation, eval transform, architecture).

use crate::args::{BatchArg, ExportArgs, FormatArg};
use anyhow::{bail, Context, Result};
use resnext_data::TransformConfig;
use resnext_export::{export, ExportOptions, Format};
use resnext_train::{Checkpoint, Predictor, Run, RunFile, RunOptions};
use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(a: ExportArgs) -> Result<ExitCode> {
    let opts = RunOptions::cpu();
    let (predictor, source, inputs): (Predictor, PathBuf, Vec<PathBuf>) = if let Some(dir) = &a.run
    {
        if a.num_classes.is_some()
            || a.model.layers.is_some()
            || a.model.groups.is_some()
            || a.model.width_per_group.is_some()
        {
            bail!("--run brings its own architecture; drop --arch/--num-classes/--layers/--groups/--width-per-group");
        }
        let run = Run::open(dir)?;
        let which: Checkpoint = a.checkpoint.into();
        let source = run.path(RunFile::Weights(which));
        let inputs = vec![source.clone(), run.path(RunFile::Sidecar(which))];
        (run.predictor(which, opts)?, source, inputs)
    } else {
        let Some(weights) = &a.weights else {
            bail!("give --run DIR or --weights FILE");
        };
        let num_classes = a.num_classes.context("--weights needs --num-classes")?;
        let config = super::model_config(&a.model, num_classes)?;
        let p = Predictor::from_weights(
            weights,
            &config,
            TransformConfig::resize_exact(a.image_size),
            opts,
        )?;
        (p, weights.clone(), vec![weights.clone()])
    };
    let sidecar_out = PathBuf::from(format!("{}.json", a.out.display()));
    for input in &inputs {
        for out in [&a.out, &sidecar_out] {
            if crate::image_input::same_file(out, input) {
                bail!(
                    "--out {} would overwrite the input {}; choose another file",
                    a.out.display(),
                    input.display()
                );
            }
        }
    }
    let options = ExportOptions {
        format: match a.format {
            FormatArg::Torchscript => Format::TorchScript,
            FormatArg::Onnx => Format::Onnx,
        },
        batch: match a.batch {
            BatchArg::Dynamic => None,
            BatchArg::Fixed(n) => Some(n),
        },
        fold_bn: a.fold_bn,
        opset: a.opset,
    };
    if options.format == Format::TorchScript && a.opset != 17 {
        bail!("--opset is for --format onnx");
    }
    let sidecar = export(predictor, &source, &options, &a.out)?;
    println!(
        "{} ({} classes, input [N, 3, {}, {}]) -> {} and {}",
        match sidecar.format {
            Format::TorchScript => "TorchScript",
            Format::Onnx => "ONNX",
        },
        sidecar.classes.len(),
        sidecar.image_size[0],
        sidecar.image_size[1],
        a.out.display(),
        sidecar_out.display()
    );
    Ok(ExitCode::SUCCESS)
}
