//! `cargo xtask eval [ARGS]`: release build, then `resnext eval` (default `--run runs/monkeypox`).

use crate::cmd;
use crate::launch;
use anyhow::Result;

pub fn run(mut args: Vec<String>) -> Result<()> {
    if !cmd::has_flag(&args, "--run") {
        args.extend(["--run".into(), "runs/monkeypox".into()]);
    }
    launch::release("eval", args)
}
