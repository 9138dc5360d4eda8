//! `cargo xtask download weights/NAME [--url URL] [--sha256 HEX] [--out DIR] [--force]`:
//! ImageNet weights from the registry in `configs/weights.toml` (torchvision's files) into
//! `data/weights/<file name>`. The transfer resumes from a `.part` file like the dataset
//! download. The check is the full sha256 where it is known, else torchvision's own rule: the
//! file name's `-<hex>.` part must begin the file's sha256. The file is renamed into place only
//! once it passed.

use super::http;
use super::registry::{sha256_file, Registry};
use crate::{cmd, flags::Download};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// What a downloaded file is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Sha256(String),
    /// torchvision's rule: the sha256 begins with these hex digits (8 in its file names).
    Prefix(String),
}

impl Check {
    fn verify(&self, got: &str) -> bool {
        match self {
            Check::Sha256(want) => got == want,
            Check::Prefix(p) => got.starts_with(p.as_str()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Check::Sha256(h) => format!("sha256 {h}"),
            Check::Prefix(p) => format!("a sha256 beginning {p} (from the file name)"),
        }
    }
}

/// The hex digits torchvision puts in a file name (`resnext50_32x4d-7cdf4587.pth` → `7cdf4587`):
/// its `HASH_REGEX = r"-([a-f0-9]*)\."`, at least 8 digits.
pub fn name_prefix(file_name: &str) -> Option<String> {
    let mut rest = file_name;
    while let Some(i) = rest.find('-') {
        let tail = &rest[i + 1..];
        let hex: String = tail
            .chars()
            .take_while(|c| matches!(c, '0'..='9' | 'a'..='f'))
            .collect();
        if hex.len() >= 8 && tail[hex.len()..].starts_with('.') {
            return Some(hex);
        }
        rest = tail;
    }
    None
}

/// The file name at the end of a URL, if it is a plain one.
fn url_file_name(url: &str) -> Result<String> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.rsplit('/').next().unwrap_or("");
    if name.is_empty() || name.starts_with('.') || name.contains(['\\', '%']) {
        bail!("the URL {url} does not end in a plain file name");
    }
    Ok(name.to_string())
}

/// Downloads the weights `weights/NAME` (or `--url`) and returns the file.
pub fn run(name: &str, args: &Download) -> Result<PathBuf> {
    if args.from.is_some() || args.subdir.is_some() {
        bail!("weights take --url, --sha256, --out and --force (not --from or --subdir)");
    }
    let registry_path = cmd::root().join("configs/weights.toml");
    let registry = Registry::load(&registry_path)?;
    let entry = registry.get(name);
    let url = match (&args.url, entry.and_then(|e| e.url.clone())) {
        (Some(u), _) => u.clone(),
        (None, Some(u)) => u,
        (None, None) => bail!(
            "unknown weights `{name}`; known: {}; see {}, or pass --url URL",
            registry.listing().join("; "),
            registry_path.display()
        ),
    };
    let file_name = url_file_name(&url)?;
    let check = match (&args.sha256, entry.and_then(|e| e.sha256.clone())) {
        (Some(h), _) => Check::Sha256(h.clone()),
        (None, Some(h)) if args.url.is_none() => Check::Sha256(h),
        _ => match name_prefix(&file_name) {
            Some(p) => Check::Prefix(p),
            None => bail!(
                "nothing to check {file_name} against: its name has no `-<hex>.` part; pass --sha256 HEX"
            ),
        },
    };
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| cmd::root().join("data/weights"));
    fetch_checked(&url, &dir, &file_name, &check, args.force)
}

/// `--init-weights weights/NAME` in `cargo xtask train`/`cv`: the registry's file, downloaded
/// on first use.
pub fn ensure(spec: &str) -> Result<PathBuf> {
    let name = spec.strip_prefix("weights/").unwrap_or(spec);
    run(name, &Download::default())
}

fn fetch_checked(
    url: &str,
    dir: &Path,
    file_name: &str,
    check: &Check,
    force: bool,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dest = dir.join(file_name);
    if dest.is_file() && !force {
        let got = sha256_file(&dest)?;
        if check.verify(&got) {
            eprintln!("{} is already here and checks out", dest.display());
            return Ok(dest);
        }
        bail!(
            "{} exists but its sha256 {got} is not {}; pass --force to download it again",
            dest.display(),
            check.describe()
        );
    }
    let part = dir.join(format!(".{file_name}.part"));
    http::fetch(url, None, &part)?;
    let got = sha256_file(&part)?;
    if !check.verify(&got) {
        std::fs::remove_file(&part).ok();
        bail!(
            "sha256 mismatch for {url}: expected {}, got {got} (the download was deleted)",
            check.describe()
        );
    }
    std::fs::rename(&part, &dest).with_context(|| format!("renaming {}", part.display()))?;
    eprintln!("sha256 verified: {got}");
    println!("{}", dest.display());
    Ok(dest)
}

/// Replaces `--init-weights weights/NAME` (or `--init-weights=weights/NAME`) in `args` with the
/// registry's file, downloading it on first use.
pub fn resolve_init_weights(args: &mut [String]) -> Result<()> {
    for i in 0..args.len() {
        if args[i] == "--init-weights" {
            if let Some(v) = args.get(i + 1).filter(|v| v.starts_with("weights/")) {
                let path = ensure(v)?;
                args[i + 1] = path.to_string_lossy().into_owned();
            }
        } else if let Some(v) = args[i].strip_prefix("--init-weights=weights/") {
            let path = ensure(v)?;
            args[i] = format!("--init-weights={}", path.to_string_lossy());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchvisions_file_name_rule() {
        assert_eq!(
            name_prefix("resnext50_32x4d-7cdf4587.pth").as_deref(),
            Some("7cdf4587")
        );
        assert_eq!(
            name_prefix("resnet50-0676ba61.pth").as_deref(),
            Some("0676ba61")
        );
        assert_eq!(
            name_prefix("resnext101_32x8d-8ba56ff5.pth").as_deref(),
            Some("8ba56ff5")
        );
        assert_eq!(name_prefix("model.pth"), None);
        assert_eq!(name_prefix("model-abc.pth"), None, "fewer than 8 digits");
        assert_eq!(
            name_prefix("model-7CDF4587.pth"),
            None,
            "lowercase only, as torchvision"
        );
    }

    #[test]
    fn every_registry_entry_has_something_to_check() {
        let r = Registry::load(&cmd::root().join("configs/weights.toml")).unwrap();
        assert!(r.get("resnext50_32x4d").is_some());
        for (name, e) in &r.entries {
            let url = e.url.as_deref().unwrap();
            let file = url_file_name(url).unwrap();
            assert!(e.sha256.is_some() || name_prefix(&file).is_some(), "{name}");
        }
    }
}
