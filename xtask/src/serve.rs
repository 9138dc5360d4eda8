//! `cargo xtask serve [RUN] [ARGS]`: release build, then `resnext serve --run RUN` (default
//! `runs/monkeypox`, or `runs/demo` when that is all there is).

use crate::launch;
use crate::{cmd, flags::Serve, run_files};
use anyhow::{Context, Result};

pub fn run(flags: &Serve) -> Result<()> {
    let (run, rest) = flags.split();
    let run = match run {
        Some(r) => r.to_owned(),
        None => ["runs/monkeypox", "runs/demo"]
            .into_iter()
            .find(|r| run_files::has_best(&cmd::root().join(r)))
            .context("no run to serve: train one (`cargo xtask train` or `cargo xtask demo`) or name it: cargo xtask serve RUN_DIR")?
            .to_owned(),
    };
    launch::release(
        "serve",
        ["--run".into(), run].into_iter().chain(rest).collect(),
    )
}
