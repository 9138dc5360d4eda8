//! Building and launching the `resnext` binary: the release and dev builds (with data-parallel
//! training where MPI is installed) and the `cargo xtask train|eval|cv|plot|serve` launcher.
//! Apart from `cmd.rs`, which it uses, so that setup and downloads can use `cmd` too.

use crate::cmd::{cargo, resnext, run, target_dir};
use anyhow::Result;
use std::path::PathBuf;

/// `cargo xtask train|eval|cv|plot|serve`: setup on first use, `--init-weights weights/NAME`
/// fetched on first use (what `train` and `cv` take), the release build, then `resnext SUB ARGS`.
pub fn release(sub: &str, mut args: Vec<String>) -> Result<()> {
    crate::setup::run(&Default::default())?;
    crate::download::weights::resolve_init_weights(&mut args)?;
    resnext(&build_cli_release()?, sub, &args)
}

/// Builds the `resnext` binary in release mode and returns its path; with data-parallel training
/// (feature `mpi`) when MPI is installed (`cargo xtask setup --mpi`).
pub fn build_cli_release() -> Result<PathBuf> {
    let mut c = cargo();
    c.args([
        "build",
        "--release",
        "--package",
        "resnext-cli",
        "--bin",
        "resnext",
    ]);
    c.args(mpi_features());
    run(c, "cargo build --release")?;
    Ok(target_dir()?.join("release/resnext"))
}

/// Builds the `resnext` binary in the dev profile (dependencies optimised, the workspace's own
/// crates not; what `cargo xtask test` builds too, so after it this is near-instant) and returns
/// its path. The network's time is libtorch's, so for a small training it runs as fast as the
/// release build, without the release build's minutes of optimising every dependency again.
pub fn build_cli_dev() -> Result<PathBuf> {
    let mut c = cargo();
    c.args(["build", "--package", "resnext-cli", "--bin", "resnext"]);
    c.args(mpi_features());
    run(c, "cargo build")?;
    Ok(target_dir()?.join("debug/resnext"))
}

/// `--features resnext-cli/mpi` where MPI is installed, else nothing (the default build needs
/// no MPI).
pub fn mpi_features() -> Vec<&'static str> {
    if crate::setup::mpi_available() {
        vec!["--features", "resnext-cli/mpi"]
    } else {
        Vec::new()
    }
}
