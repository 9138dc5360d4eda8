//! Images given on the command line: files, or folders whose images are taken in sorted order.
//! Only regular files are opened (a FIFO named like an image would block forever); anything else
//! is reported as skipped with its kind. Each real folder is walked once, so a link loop neither
//! hangs nor repeats images.

use anyhow::{bail, Context, Result};
use resnext_data::scan::{has_image_extension, special_kind};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Expands folders into their image files (recursively, sorted); files are kept as given.
pub fn expand(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut seen_files = HashSet::new();
    for p in inputs {
        let meta = std::fs::metadata(p)
            .with_context(|| format!("no such file or folder: {}", p.display()))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            let mut visited = HashSet::new();
            collect(p, &mut found, &mut visited)
                .with_context(|| format!("cannot read folder {}", p.display()))?;
            if found.is_empty() {
                bail!("folder {} has no images", p.display());
            }
            found.sort();
            for f in found {
                let real = f.canonicalize().unwrap_or_else(|_| f.clone());
                if seen_files.insert(real) {
                    out.push(f);
                }
            }
        } else if meta.is_file() {
            out.push(p.clone());
        } else {
            bail!(
                "{} is not a regular file ({}); give an image file or a folder",
                p.display(),
                special_kind(&meta)
            );
        }
    }
    Ok(out)
}

fn collect(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    visited: &mut HashSet<PathBuf>,
) -> std::io::Result<()> {
    if !visited.insert(dir.canonicalize()?) {
        return Ok(());
    }
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => collect(&p, out, visited)?,
            Ok(m) if has_image_extension(&p) && m.is_file() => out.push(p),
            Ok(m) if has_image_extension(&p) => {
                eprintln!(
                    "skipped {} (not a regular file: {})",
                    p.display(),
                    special_kind(&m)
                );
            }
            _ => {}
        }
    }
    Ok(())
}

/// True when `out` names the same file as `input` (through links, `..` or a different spelling).
pub fn same_file(out: &Path, input: &Path) -> bool {
    match (resnext_io::resolve(out), resnext_io::resolve(input)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}
