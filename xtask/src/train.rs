//! `cargo xtask train [ARGS]`: release build, setup on first use, then `resnext train` with
//! `configs/monkeypox.toml` and `data/monkeypox` unless ARGS say otherwise.

use crate::{cmd, setup};
use anyhow::{bail, Result};
use std::process::Command;

pub fn run(args: &[String]) -> Result<()> {
    let mut args = args.to_vec();
    let resuming = cmd::has_flag(&args, "--resume");
    let default_config = !resuming && !cmd::has_flag(&args, "--config");
    if default_config {
        args.extend(["--config".into(), "configs/monkeypox.toml".into()]);
        let data = cmd::root().join("data/monkeypox");
        if !cmd::has_flag(&args, "--data") && !data.is_dir() {
            bail!(
                "{} not found: put the MSLD images there (one folder per class, as in the dataset's \
                 `Original Images` archive), or pass --data DIR (e.g. --data ../shared/datasets/msld-original)",
                data.display()
            );
        }
    }
    setup::run(&[])?;
    let bin = cmd::build_cli_release()?;
    let mut c = Command::new(bin);
    c.current_dir(cmd::root()).arg("train").args(&args);
    cmd::run(c, "resnext train")
}
