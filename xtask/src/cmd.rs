//! Running child processes and locating the workspace.

use anyhow::{bail, Context, Result};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root (the parent of this crate's folder).
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// The cargo that runs us.
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(cargo);
    c.current_dir(root());
    c
}

/// Runs `cmd`, failing with its description when it does not succeed.
pub fn run(mut cmd: Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` and returns what it printed, failing with its stderr when it does not succeed.
pub fn output(cmd: &mut Command, what: &str) -> Result<Output> {
    succeeded(
        cmd.output().with_context(|| format!("cannot run {what}"))?,
        what,
    )
}

/// `out` of a finished run of `what`, or its stderr as the error when the run did not succeed.
pub fn succeeded(out: Output, what: &str) -> Result<Output> {
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// Runs `bin SUB ARGS` (SUB such as `train` or `data synth`) in the workspace root, failing as
/// `resnext SUB`: the shape of every launcher.
pub fn resnext<S: AsRef<OsStr>>(
    bin: &Path,
    sub: &str,
    args: impl IntoIterator<Item = S>,
) -> Result<()> {
    let mut c = Command::new(bin);
    c.current_dir(root()).args(sub.split(' ')).args(args);
    run(c, &format!("resnext {sub}"))
}

/// Cargo's target directory: `target/` in the workspace unless `CARGO_TARGET_DIR` or a
/// `build.target-dir` setting moves it (asked of `cargo metadata`, which knows both).
pub fn target_dir() -> Result<PathBuf> {
    let mut c = cargo();
    c.args(["metadata", "--format-version", "1", "--no-deps"]);
    let out = output(&mut c, "cargo metadata")?;
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("cargo metadata printed no JSON")?;
    let dir = meta["target_directory"]
        .as_str()
        .context("cargo metadata has no target_directory")?;
    Ok(PathBuf::from(dir))
}

/// True when `args` already hold `flag` (as `--flag` or `--flag=...`).
pub fn has_flag(args: &[String], flag: &str) -> bool {
    args.iter()
        .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
}
