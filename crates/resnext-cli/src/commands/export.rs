//! `resnext export`: a run's checkpoint (or a bare weights file) as TorchScript or ONNX, with a
//! `FILE.json` sidecar (classes, input size, normalisation, eval transform, architecture).

use crate::args::ExportArgs;
use anyhow::{bail, Result};
use resnext_export::{export, ExportOptions, Format};
use resnext_train::RunOptions;
use std::process::ExitCode;

pub fn run(a: ExportArgs) -> Result<ExitCode> {
    let crate::source::Source {
        predictor,
        weights: source,
        inputs,
    } = crate::source::load_source(&a.source, RunOptions::cpu())?;
    let sidecar_out = resnext_export::sidecar_path(&a.out);
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
    for (out, flag) in [(&a.out, "--out"), (&sidecar_out, "--out's sidecar")] {
        resnext_train::owned::refuse_owned(out, flag)?;
    }
    let options = ExportOptions {
        format: a.format.into(),
        batch: a.batch.0,
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
