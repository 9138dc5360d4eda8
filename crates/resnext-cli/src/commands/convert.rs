//! `resnext convert IN.pth OUT.safetensors`: a `torch.save` state dict (zip or legacy format),
//! parsed without running anything in it, written as safetensors with the same names (minus a
//! `module.` prefix).

use crate::args::ConvertArgs;
use anyhow::{bail, Result};
use resnext_model::torch_file::read_torch_file;
use resnext_model::weights::write_tensors_atomic;
use std::process::ExitCode;

pub fn run(a: ConvertArgs) -> Result<ExitCode> {
    if crate::image_input::same_file(&a.output, &a.input) {
        bail!(
            "the output {} would overwrite the input; choose another file",
            a.output.display()
        );
    }
    resnext_train::owned::refuse_owned(&a.output, "OUT")?;
    resnext_io::check_target(&a.output)?;
    let tensors = read_torch_file(&a.input, a.key.as_deref())?;
    write_tensors_atomic(&tensors, &a.output)?;
    let params: i64 = tensors.iter().map(|(_, t)| t.numel() as i64).sum();
    println!(
        "{} tensors ({params} values) -> {}",
        tensors.len(),
        a.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
