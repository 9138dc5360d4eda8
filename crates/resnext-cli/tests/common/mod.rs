//! Helpers for the CLI tests: running the built binary, tiny configs, `../shared` lookup.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The flags of a tiny custom architecture (one block a stage, 2 groups of width 4).
pub const TINY_ARCH: [&str; 8] = [
    "--arch",
    "custom",
    "--layers",
    "1,1,1,1",
    "--groups",
    "2",
    "--width-per-group",
    "4",
];

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_resnext"))
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("resnext runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "resnext {args:?} failed:\n{}\n{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// `../shared` lookup, shared by every crate's tests.
#[allow(unused_imports)] // not every test binary that includes this module uses it
pub use resnext_testkit::shared;

/// A tiny training config on `root` (custom ResNeXt [1,1,1,1], 32 px), written into `dir`.
pub fn tiny_config(dir: &Path, root: &Path, epochs: usize, extra: &str) -> PathBuf {
    let p = dir.join("tiny.toml");
    std::fs::write(&p, resnext_testkit::tiny_config_text(root, epochs, extra)).unwrap();
    p
}

/// Groups the images of [`synth`] ten by ten within a class (`checker_000`, `checker_001`, ...).
pub const GROUPS: &str = r#"--set=data.group_regex="^([a-z]+_\\d{3})""#;

/// `resnext cv` of `cfg` into `out`, three folds grouped by [`GROUPS`], then `extra`; its stdout.
pub fn tiny_cv(cfg: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "cv",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        GROUPS,
        "--folds",
        "3",
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

/// A synthetic dataset from `resnext data synth`.
pub fn synth(dir: &Path, per_class: usize) -> PathBuf {
    let out = dir.join("synth data");
    ok(&[
        "data",
        "synth",
        "--out",
        out.to_str().unwrap(),
        "--per-class",
        &per_class.to_string(),
        "--size",
        "32",
    ]);
    out
}

/// The fields of each row of `metrics.csv` text, header left out.
pub fn csv_rows(csv: &str) -> Vec<Vec<String>> {
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').map(String::from).collect())
        .collect()
}

/// The rows of a run directory's `metrics.csv`.
pub fn metrics_rows(run: &Path) -> Vec<Vec<String>> {
    let path = run.join("metrics.csv");
    let csv = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    csv_rows(&csv)
}

pub mod browser;
pub mod http;
pub mod server;
