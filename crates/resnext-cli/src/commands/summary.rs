//! `resnext summary`.

use crate::args::SummaryArgs;
use anyhow::Result;
use std::process::ExitCode;

pub fn run(a: SummaryArgs) -> Result<ExitCode> {
    let config = crate::source::model_config(&a.model, a.num_classes)?;
    let summary = resnext_model::summarize(&config, a.image_size)?;
    println!("{summary}");
    Ok(ExitCode::SUCCESS)
}
