//! `cargo xtask cv [ARGS]`: release build, then `resnext cv` with `configs/monkeypox.toml`,
//! `data/msld`, 3 folds and `--out runs/cv-monkeypox` unless ARGS say otherwise.

use crate::launch;
use crate::{cmd, train};
use anyhow::Result;

pub fn run(mut args: Vec<String>) -> Result<()> {
    train::default_config(&mut args)?;
    if !cmd::has_flag(&args, "--out") {
        args.extend(["--out".into(), "runs/cv-monkeypox".into()]);
    }
    launch::release("cv", args)
}
