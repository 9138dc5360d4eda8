//! `cargo xtask train [ARGS]`: release build, setup on first use, then `resnext train` with
//! `configs/monkeypox.toml` and `data/msld` unless ARGS say otherwise.

use crate::cmd;
use crate::launch;
use anyhow::{bail, Result};

pub fn run(mut args: Vec<String>) -> Result<()> {
    if !cmd::has_flag(&args, "--resume") {
        default_config(&mut args)?;
    }
    launch::release("train", args)
}

/// `--config configs/monkeypox.toml` unless `args` name a config; its data, `data/msld`, must be
/// there unless they name `--data`. (`train` and `cv`.)
pub fn default_config(args: &mut Vec<String>) -> Result<()> {
    if cmd::has_flag(args, "--config") {
        return Ok(());
    }
    args.extend(["--config".into(), "configs/monkeypox.toml".into()]);
    let data = cmd::root().join("data/msld");
    if !cmd::has_flag(args, "--data") && !data.is_dir() {
        bail!(
            "{} not found: run `cargo xtask download` (the MSLD images, 1.5 MB; offline: \
             `cargo xtask download --from ARCHIVE_OR_FOLDER`), or pass --data DIR",
            data.display()
        );
    }
    Ok(())
}
