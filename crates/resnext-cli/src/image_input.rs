//! Images given on the command line: files, or folders whose images are taken in sorted order.
//! Only regular files are opened (a FIFO named like an image would block forever); anything else
//! is reported as skipped with its kind. Each real folder is walked once, so a link loop neither
//! hangs nor repeats images. A link inside a folder that leads out of it is refused, as in a data
//! root, unless `--follow-links` asks for it.

use anyhow::{bail, Context, Result};
use resnext_data::scan::{has_image_extension, special_kind};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Expands folders into their image files (recursively, sorted); files are kept as given.
/// Without `follow_links`, a link in a folder that leads outside that folder is an error.
pub fn expand(inputs: &[PathBuf], follow_links: bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut seen_files = HashSet::new();
    for p in inputs {
        let meta = std::fs::metadata(p)
            .with_context(|| format!("no such file or folder: {}", p.display()))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            let walk = Walk {
                root: p,
                real_root: &p
                    .canonicalize()
                    .with_context(|| format!("cannot read folder {}", p.display()))?,
                follow_links,
            };
            walk.collect(p, &mut found, &mut HashSet::new())?;
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

/// One folder given on the command line, walked.
struct Walk<'a> {
    root: &'a Path,
    real_root: &'a Path,
    follow_links: bool,
}

impl Walk<'_> {
    fn collect(
        &self,
        dir: &Path,
        out: &mut Vec<PathBuf>,
        visited: &mut HashSet<PathBuf>,
    ) -> Result<()> {
        let read = |e: std::io::Error| anyhow::anyhow!("cannot read folder {}: {e}", dir.display());
        if !visited.insert(dir.canonicalize().map_err(read)?) {
            return Ok(());
        }
        for e in std::fs::read_dir(dir).map_err(read)? {
            let e = e.map_err(read)?;
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if !self.follow_links && e.file_type().is_ok_and(|t| t.is_symlink()) {
                if let Ok(target) = p.canonicalize() {
                    if !target.starts_with(self.real_root) {
                        bail!(
                            "{} is a link to {}, outside {}; give --follow-links to take images from there",
                            p.display(),
                            target.display(),
                            self.root.display()
                        );
                    }
                }
            }
            match std::fs::metadata(&p) {
                Ok(m) if m.is_dir() => self.collect(&p, out, visited)?,
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
}

/// True when `out` names the same file as `input` (through links, `..` or a different spelling).
pub fn same_file(out: &Path, input: &Path) -> bool {
    resnext_io::resolve(out).is_some_and(|a| resnext_io::resolve(input) == Some(a))
}
