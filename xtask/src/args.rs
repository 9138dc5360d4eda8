//! The `--flag value` arguments of the benchmark commands, parsed once and validated by kind.

use crate::cmd;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::PathBuf;

/// Values by flag, from `--flag value` pairs; any flag outside `known` is an error naming them.
#[derive(Debug)]
pub struct Flags(HashMap<&'static str, String>);

impl Flags {
    pub fn parse(args: &[String], known: &[&'static str]) -> Result<Self> {
        let mut values = HashMap::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(&flag) = known.iter().find(|k| **k == a) else {
                bail!("unknown argument `{a}` (expected {})", known.join(", "));
            };
            let v = it.next().with_context(|| format!("{flag} needs a value"))?;
            values.insert(flag, v.clone());
        }
        Ok(Self(values))
    }

    /// The text given for `flag`, if any.
    pub fn text(&self, flag: &str) -> Option<&str> {
        self.0.get(flag).map(String::as_str)
    }

    /// A count of at least 1 (`default` when the flag is absent).
    pub fn count(&self, flag: &str, default: usize) -> Result<usize> {
        let n = match self.text(flag) {
            None => default,
            Some(v) => v
                .parse()
                .with_context(|| format!("{flag} needs a whole number, got `{v}`"))?,
        };
        if n == 0 {
            bail!("{flag} must be at least 1");
        }
        Ok(n)
    }

    /// The photo folder: `--root`, or the MSLD photos of `../shared` beside the workspace;
    /// checked to be a folder.
    pub fn photos_root(&self) -> Result<PathBuf> {
        let root = self
            .text("--root")
            .map(PathBuf::from)
            .unwrap_or_else(|| cmd::root().join("../shared/datasets/msld-original"));
        if !root.is_dir() {
            bail!("{} is not a folder; pass --root DIR", root.display());
        }
        Ok(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_counts_and_rejects_bad_input() {
        let f = Flags::parse(&strings(&["--repeats", "4"]), &["--root", "--repeats"]).unwrap();
        assert_eq!(f.count("--repeats", 1).unwrap(), 4);
        assert_eq!(f.count("--epochs", 7).unwrap(), 7);
        let e = Flags::parse(&strings(&["--steps", "2"]), &["--repeats"]).unwrap_err();
        assert!(e.to_string().contains("unknown argument `--steps`"), "{e}");
        let e = Flags::parse(&strings(&["--repeats"]), &["--repeats"]).unwrap_err();
        assert!(e.to_string().contains("needs a value"), "{e}");
        let f = Flags::parse(&strings(&["--repeats", "0"]), &["--repeats"]).unwrap();
        assert!(f.count("--repeats", 1).is_err());
        let f = Flags::parse(&strings(&["--repeats", "x"]), &["--repeats"]).unwrap();
        assert!(f.count("--repeats", 1).is_err());
    }
}
