//! `resnext average RUN --last N` (or `RUN FILE...`): averaged weights with BatchNorm statistics
//! recomputed, saved as the run's `average` checkpoint ([`resnext_train::average`]).

use crate::args::AverageArgs;
use crate::progress::Bars;
use anyhow::Result;
use resnext_train::average::{average, Sources};
use resnext_train::Run;
use std::process::ExitCode;

pub fn run(a: AverageArgs) -> Result<ExitCode> {
    let run = Run::open(&a.run)?;
    let sources = a
        .last
        .map_or_else(|| Sources::Files(a.files.clone()), Sources::Last);
    let device = a.device.resolve()?;
    let done = average(&run, &sources, device, &Bars::new())?;
    for f in &done.files {
        eprintln!("averaged {}", f.display());
    }
    println!(
        "the average of {} checkpoints, BatchNorm statistics from {} training images ({} batches): val_loss {:.4} val_acc {:.2}% -> {}",
        done.files.len(),
        done.images,
        done.batches,
        done.val_loss,
        done.val_acc * 100.0,
        done.path.display()
    );
    Ok(ExitCode::SUCCESS)
}
