//! `cargo xtask train [ARGS]`: release build, setup on first use, then `resnext train` with
//! `configs/monkeypox.toml` and `data/msld` unless ARGS say otherwise.

use crate::{cmd, setup};
use anyhow::{bail, Result};
use std::process::Command;

pub fn run(args: &[String]) -> Result<()> {
    let mut args = args.to_vec();
    let resuming = cmd::has_flag(&args, "--resume");
    let default_config = !resuming && !cmd::has_flag(&args, "--config");
    if default_config {
        args.extend(["--config".into(), "configs/monkeypox.toml".into()]);
        let data = cmd::root().join("data/msld");
        if !cmd::has_flag(&args, "--data") && !data.is_dir() {
            bail!(
                "{} not found: run `cargo xtask download` (the MSLD images, 1.5 MB; offline: \
                 `cargo xtask download --from ARCHIVE_OR_FOLDER`), or pass --data DIR",
                data.display()
            );
        }
    }
    setup::run(&[])?;
    crate::download::weights::resolve_init_weights(&mut args)?;
    let bin = cmd::build_cli_release()?;
    let mut c = Command::new(bin);
    c.current_dir(cmd::root()).arg("train").args(&args);
    cmd::run(c, "resnext train")
}
