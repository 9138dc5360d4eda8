//! `cargo xtask eval [ARGS]`: release build, then `resnext eval` (default `--run runs/monkeypox`).

use crate::{cmd, setup};
use anyhow::Result;
use std::process::Command;

pub fn run(args: &[String]) -> Result<()> {
    let mut args = args.to_vec();
    if !cmd::has_flag(&args, "--run") {
        args.extend(["--run".into(), "runs/monkeypox".into()]);
    }
    setup::run(&[])?;
    let bin = cmd::build_cli_release()?;
    let mut c = Command::new(bin);
    c.current_dir(cmd::root()).arg("eval").args(&args);
    cmd::run(c, "resnext eval")
}
