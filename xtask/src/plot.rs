//! `cargo xtask plot DIR`: the run's PNG figures (curves, confusion matrix, ROC).

use crate::flags::Plot;
use crate::launch;
use anyhow::Result;

pub fn run(flags: Plot) -> Result<()> {
    launch::release("plot", vec![flags.dir])
}
