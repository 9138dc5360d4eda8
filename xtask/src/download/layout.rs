//! Finding the ImageFolder root inside an extracted archive, copying a local folder, and
//! checking the result with the same scanner training uses.

use super::archive::safe_relative;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Visible entries of `dir`, sorted (hidden files and macOS `__MACOSX` folders left out).
fn visible(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "__MACOSX" {
            continue;
        }
        out.push(e.path());
    }
    out.sort();
    Ok(out)
}

/// The ImageFolder root under `extracted`: `subdir` when given, else the folder reached by
/// unwrapping single-folder nesting (`Original Images/Original Images/<class>/` → the inner
/// `Original Images`). A folder that holds images itself is a class, so unwrapping stops above it.
pub fn find_root(extracted: &Path, subdir: Option<&str>) -> Result<PathBuf> {
    if let Some(sub) = subdir {
        let root = extracted.join(safe_relative(sub)?);
        if !root.is_dir() {
            let top: Vec<String> = visible(extracted)?
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            bail!(
                "the archive has no folder `{sub}` (its top level holds: {})",
                if top.is_empty() {
                    "nothing".into()
                } else {
                    top.join(", ")
                }
            );
        }
        return Ok(root);
    }
    let mut cur = extracted.to_path_buf();
    loop {
        let entries = visible(&cur)?;
        match entries.as_slice() {
            [only] if only.is_dir() && !holds_images(only)? => cur = only.clone(),
            _ => return Ok(cur),
        }
    }
}

fn holds_images(dir: &Path) -> Result<bool> {
    Ok(visible(dir)?
        .iter()
        .any(|p| p.is_file() && resnext_data::scan::has_image_extension(p)))
}

/// Copies the folder `src` into the new folder `dest`, following symlinks to files and folders.
pub fn copy_tree(src: &Path, dest: &Path) -> Result<u64> {
    let mut files = 0;
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    for entry in std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let entry = entry.with_context(|| format!("reading {}", src.display()))?;
        let from = entry.path();
        let to = dest.join(entry.file_name());
        // `metadata` follows links; a dangling link is an error that names it.
        let meta =
            std::fs::metadata(&from).with_context(|| format!("reading {}", from.display()))?;
        if meta.is_dir() {
            files += copy_tree(&from, &to)?;
        } else if meta.is_file() {
            std::fs::copy(&from, &to)
                .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
            files += 1;
        }
    }
    Ok(files)
}

/// Class names and image counts of an ImageFolder root, or why it is not one.
pub fn check(root: &Path) -> Result<Vec<(String, usize)>> {
    let folder = resnext_data::scan::scan(root).with_context(|| {
        format!(
            "the data does not form an ImageFolder at {}",
            root.display()
        )
    })?;
    let counts = folder.class_counts();
    Ok(folder.classes.into_iter().zip(counts).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_unwrapped_down_to_the_class_folders() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("Original Images/Original Images");
        for class in ["Monkey Pox", "Others"] {
            std::fs::create_dir_all(root.join(class)).unwrap();
            std::fs::write(root.join(class).join("a.jpg"), b"x").unwrap();
        }
        std::fs::create_dir_all(t.path().join("__MACOSX")).unwrap();
        assert_eq!(find_root(t.path(), None).unwrap(), root);
        assert_eq!(
            find_root(t.path(), Some("Original Images/Original Images")).unwrap(),
            root
        );
        let err = format!("{:#}", find_root(t.path(), Some("Fold1")).unwrap_err());
        assert!(
            err.contains("Fold1") && err.contains("Original Images"),
            "{err}"
        );
    }

    #[test]
    fn a_single_class_folder_is_not_unwrapped() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("cats")).unwrap();
        std::fs::write(t.path().join("cats/a.png"), b"x").unwrap();
        assert_eq!(find_root(t.path(), None).unwrap(), t.path());
    }
}
