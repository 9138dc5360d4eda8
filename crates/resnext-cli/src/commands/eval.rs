//! `resnext eval`: the classification report of a run on its val, test or every image, printed
//! as a table and written to `<run>/eval.json`.

use crate::args::EvalArgs;
use crate::progress::Bars;
use anyhow::Result;
use resnext_train::{EvalOptions, Run, RunOptions};
use std::process::ExitCode;

pub fn run(a: EvalArgs) -> Result<ExitCode> {
    let run = Run::open(&a.run)?;
    let opts = EvalOptions {
        part: a.split.into(),
        checkpoint: a.checkpoint.into(),
        run: RunOptions {
            device: a.device.resolve()?,
            precision: a.precision.into(),
            channels_last: a.channels_last,
            tta: a.tta,
        },
        batch_size: a.batch_size,
        data: a.data,
        fold_bn: a.fold_bn,
    };
    // a writer: refused at once while another process writes the run
    let lock = if a.no_write { None } else { Some(run.lock()?) };
    let report = run.evaluate(&opts, &Bars::new())?;
    print!("{}", report.report.table());
    if lock.is_some() {
        let path = run.save_eval(&report)?;
        println!("-> {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
