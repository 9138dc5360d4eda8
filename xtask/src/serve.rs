//! `cargo xtask serve [RUN] [ARGS]`: release build, then `resnext serve --run RUN` (default
//! `runs/monkeypox`, or `runs/demo` when that is all there is).

use crate::{cmd, setup};
use anyhow::{bail, Result};
use std::process::Command;

pub fn run(args: &[String]) -> Result<()> {
    let (run, rest) = match args.split_first() {
        Some((first, rest)) if !first.starts_with('-') => (first.clone(), rest.to_vec()),
        _ => {
            let root = cmd::root();
            let Some(found) = ["runs/monkeypox", "runs/demo"]
                .into_iter()
                .find(|r| root.join(r).join("best.json").is_file())
            else {
                bail!("no run to serve: train one (`cargo xtask train` or `cargo xtask demo`) or name it: cargo xtask serve RUN_DIR");
            };
            (found.to_owned(), args.to_vec())
        }
    };
    setup::run(&[])?;
    let bin = cmd::build_cli_release()?;
    let mut c = Command::new(bin);
    c.current_dir(cmd::root())
        .args(["serve", "--run", &run])
        .args(&rest);
    cmd::run(c, "resnext serve")
}
