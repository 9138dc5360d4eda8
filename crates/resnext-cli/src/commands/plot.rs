//! `resnext plot DIR`: the run's PNG figures (training curves; confusion matrix and ROC from
//! `eval.json`), drawn by `resnext_train::plot`.

use crate::args::PlotArgs;
use crate::progress::Bars;
use anyhow::Result;
use resnext_train::Run;
use std::process::ExitCode;

pub fn run(a: PlotArgs) -> Result<ExitCode> {
    let run = Run::open(&a.run)?;
    let _lock = run.lock()?;
    for p in run.plot(&Bars::new())? {
        println!("{}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}
