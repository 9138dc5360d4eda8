//! `cargo xtask test`: setup on first use, then `cargo test --workspace --no-fail-fast` (every
//! test binary runs, so one red binary hides no other), then a closing line that counts the tests
//! that skipped themselves and names what they needed.
//!
//! Tests record a skip through `resnext_testkit::skip` into the file named by `RESNEXT_SKIP_LOG`,
//! which this command points at a fresh file in the target directory.

use crate::launch;
use crate::{cmd, setup};
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};

pub fn run(args: &[String]) -> Result<()> {
    setup::run(&Default::default())?;
    let log = cmd::target_dir()?.join("skipped-tests.tsv");
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    resnext_io::write_atomic(&log, b"")?;
    let mut c = cmd::cargo();
    let features = launch::mpi_features();
    if features.is_empty() {
        eprintln!(
            "test: MPI is not installed, so the data-parallel tests skip (cargo xtask setup --mpi)"
        );
    }
    c.args(["test", "--workspace"])
        .args(features)
        .args(
            (!args.iter().any(|a| a == "--no-fail-fast" || a == "--")).then_some("--no-fail-fast"),
        )
        .args(args)
        .env("RESNEXT_SKIP_LOG", &log);
    let result = cmd::run(c, "cargo test --workspace");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    print!("{}", summary(&text));
    result
}

/// `skipped: N tests` and, per reason, the tests it skipped.
fn summary(log: &str) -> String {
    let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for line in log.lines() {
        if let Some((test, reason)) = line.split_once('\t') {
            let tests = by_reason.entry(reason).or_default();
            if !tests.contains(&test) {
                tests.push(test);
            }
        }
    }
    let count = by_reason.values().flatten().collect::<BTreeSet<_>>().len();
    if count == 0 {
        return "skipped: 0 tests\n".into();
    }
    let mut s = format!("skipped: {count} tests\n");
    for (reason, tests) in by_reason {
        s += &format!("  {} ({}): {}\n", reason, tests.len(), tests.join(", "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn counts_each_skipped_test_once_and_groups_by_reason() {
        let log = "a\tneeds x\nb\tneeds x\na\tneeds x\nc\tneeds y\n";
        let s = summary(log);
        assert!(s.starts_with("skipped: 3 tests\n"), "{s}");
        assert!(s.contains("needs x (2): a, b"), "{s}");
        assert!(s.contains("needs y (1): c"), "{s}");
        assert_eq!(summary(""), "skipped: 0 tests\n");
    }
}
