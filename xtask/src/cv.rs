//! `cargo xtask cv [ARGS]`: release build, then `resnext cv` with `configs/monkeypox.toml`,
//! `data/msld`, 3 folds and `--out runs/cv-monkeypox` unless ARGS say otherwise.

use crate::{cmd, setup};
use anyhow::{bail, Result};
use std::process::Command;

pub fn run(args: &[String]) -> Result<()> {
    let mut args = args.to_vec();
    if !cmd::has_flag(&args, "--config") {
        args.extend(["--config".into(), "configs/monkeypox.toml".into()]);
        let data = cmd::root().join("data/msld");
        if !cmd::has_flag(&args, "--data") && !data.is_dir() {
            bail!(
                "{} not found: run `cargo xtask download`, or pass --data DIR",
                data.display()
            );
        }
    }
    if !cmd::has_flag(&args, "--out") {
        args.extend(["--out".into(), "runs/cv-monkeypox".into()]);
    }
    setup::run(&[])?;
    crate::download::weights::resolve_init_weights(&mut args)?;
    let bin = cmd::build_cli_release()?;
    let mut c = Command::new(bin);
    c.current_dir(cmd::root()).arg("cv").args(&args);
    cmd::run(c, "resnext cv")
}
