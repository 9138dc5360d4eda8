//! The dataset registry, `configs/datasets.toml`: names `cargo xtask download` knows.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// One known dataset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub description: String,
    /// An HTTP(S) URL of an archive.
    pub url: Option<String>,
    /// A Kaggle dataset, `owner/name`.
    pub kaggle: Option<String>,
    /// Expected sha256 of the archive, lowercase hex.
    pub sha256: Option<String>,
    /// The ImageFolder root inside the archive.
    pub subdir: Option<String>,
}

/// Named entries, sorted by name.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    pub entries: BTreeMap<String, Entry>,
}

impl Registry {
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let entries: BTreeMap<String, Entry> =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        for (name, e) in &entries {
            if e.url.is_some() == e.kaggle.is_some() {
                bail!(
                    "{}: dataset `{name}` needs exactly one of `url` and `kaggle`",
                    path.display()
                );
            }
            if let Some(h) = &e.sha256 {
                parse_sha256(h).with_context(|| format!("{}: dataset `{name}`", path.display()))?;
            }
        }
        Ok(Self { entries })
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// `name (description)` of every entry.
    pub fn listing(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|(n, e)| format!("{n} ({})", e.description))
            .collect()
    }
}

/// Validates a sha256 given as 64 hex digits and returns it in lowercase.
pub fn parse_sha256(hex: &str) -> Result<String> {
    let hex = hex.trim().to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("`{hex}` is not a sha256 (64 hex digits)");
    }
    Ok(hex)
}

pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Lower-case hexadecimal of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_projects_registry_loads_and_has_msld() {
        let r = Registry::load(&crate::cmd::root().join("configs/datasets.toml")).unwrap();
        let msld = r.get("msld").unwrap();
        assert!(msld.url.as_deref().unwrap().ends_with(".rar"));
        assert_eq!(
            msld.sha256.as_deref(),
            Some("8f5c70bcbce6d046b1faaeebf9685579270bfb8af6ee8529ee64d112d3bda8b9")
        );
        assert!(r.get("msld-kaggle").unwrap().kaggle.is_some());
    }

    #[test]
    fn bad_sha256_is_refused() {
        assert!(parse_sha256("abc").is_err());
        assert!(parse_sha256(&"g".repeat(64)).is_err());
        assert_eq!(parse_sha256(&"AB".repeat(32)).unwrap(), "ab".repeat(32));
    }
}
