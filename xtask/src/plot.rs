//! `cargo xtask plot DIR`: the run's PNG figures (curves, confusion matrix, ROC).

use crate::{cmd, flags::Plot};
use anyhow::Result;

pub fn run(flags: Plot) -> Result<()> {
    cmd::release("plot", vec![flags.dir])
}
