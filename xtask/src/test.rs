//! `cargo xtask test`: setup on first use, then `cargo test --workspace`.

use crate::{cmd, setup};
use anyhow::Result;

pub fn run(args: &[String]) -> Result<()> {
    setup::run(&[])?;
    let mut c = cmd::cargo();
    c.args(["test", "--workspace"]).args(args);
    cmd::run(c, "cargo test --workspace")
}
