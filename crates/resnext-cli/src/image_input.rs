//! Images given on the command line: files, or folders whose images are taken in sorted order.

use anyhow::{bail, Context, Result};
use resnext_data::scan::has_image_extension;
use std::path::{Path, PathBuf};

/// Expands folders into their image files (recursively, sorted); files are kept as given.
pub fn expand(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut found = Vec::new();
            collect(p, &mut found)
                .with_context(|| format!("cannot read folder {}", p.display()))?;
            if found.is_empty() {
                bail!("folder {} has no images", p.display());
            }
            found.sort();
            out.extend(found);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("no such file or folder: {}", p.display());
        }
    }
    Ok(out)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if p.is_dir() {
            collect(&p, out)?;
        } else if has_image_extension(&p) {
            out.push(p);
        }
    }
    Ok(())
}
