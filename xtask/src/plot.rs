//! `cargo xtask plot DIR`: the run's PNG figures (curves, confusion matrix, ROC).

use crate::{cmd, setup};
use anyhow::{bail, Result};
use std::process::Command;

pub fn run(args: &[String]) -> Result<()> {
    let [dir] = args else {
        bail!("usage: cargo xtask plot RUN_DIR");
    };
    setup::run(&[])?;
    let bin = cmd::build_cli_release()?;
    let mut c = Command::new(bin);
    c.current_dir(cmd::root()).args(["plot", dir]);
    cmd::run(c, "resnext plot")
}
