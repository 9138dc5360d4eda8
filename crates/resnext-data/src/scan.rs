//! Scanning an ImageFolder root, compatible with torchvision's `ImageFolder`: one folder per
//! class; class index = position in the sorted class-folder names; files found recursively and
//! sorted, so labels and order are the same on every machine whatever `read_dir` returns.

use crate::error::DataError;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// File extensions taken as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "bmp", "gif", "tif", "tiff", "webp"];

/// One image and its class index. `path` is relative to the dataset root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub path: PathBuf,
    pub label: usize,
}

/// A scanned dataset.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    pub root: PathBuf,
    pub classes: Vec<String>,
    pub samples: Vec<Sample>,
    /// Files that are not images by their extension (reported, not used), relative to the root.
    pub ignored: Vec<PathBuf>,
}

impl ImageFolder {
    /// Number of samples of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for s in &self.samples {
            counts[s.label] += 1;
        }
        counts
    }

    /// The absolute path of a sample.
    pub fn abs_path(&self, sample: &Sample) -> PathBuf {
        self.root.join(&sample.path)
    }
}

/// True for names starting with a dot.
fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}

/// True when the file name has one of [`IMAGE_EXTENSIONS`].
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .map(|e| {
            let e = e.to_string_lossy().to_ascii_lowercase();
            IMAGE_EXTENSIONS.contains(&e.as_str())
        })
        .unwrap_or(false)
}

/// Scans `root`. Errors: missing root, no class folders, a single class, a class without images.
pub fn scan(root: &Path) -> Result<ImageFolder, DataError> {
    if !root.exists() {
        return Err(DataError::RootMissing(root.to_path_buf()));
    }
    if !root.is_dir() {
        return Err(DataError::RootNotDir(root.to_path_buf()));
    }
    let mut classes: Vec<String> = Vec::new();
    let mut ignored = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| DataError::io(root, e))? {
        let entry = entry.map_err(|e| DataError::io(root, e))?;
        let name = entry.file_name();
        if is_hidden(&name) {
            continue;
        }
        // `metadata` follows symlinks, as torchvision's `entry.is_dir()` does.
        let is_dir = std::fs::metadata(entry.path())
            .map(|m| m.is_dir())
            .unwrap_or(false);
        if is_dir {
            classes.push(
                name.into_string()
                    .map_err(|_| DataError::NonUtf8Class(entry.path()))?,
            );
        } else {
            ignored.push(PathBuf::from(name));
        }
    }
    // Byte order of UTF-8 equals code-point order, which is Python's `sorted` on str.
    classes.sort();
    if classes.is_empty() {
        return Err(DataError::NoClasses(root.to_path_buf()));
    }
    if classes.len() == 1 {
        return Err(DataError::SingleClass {
            root: root.to_path_buf(),
            class: classes[0].clone(),
        });
    }
    let mut samples = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let dir = root.join(class);
        let mut files = Vec::new();
        let mut visited = HashSet::new();
        walk(
            &dir,
            Path::new(class),
            &mut files,
            &mut ignored,
            &mut visited,
        )?;
        if files.is_empty() {
            return Err(DataError::EmptyClass(dir));
        }
        files.sort();
        samples.extend(files.into_iter().map(|path| Sample { path, label }));
    }
    ignored.sort();
    for path in &ignored {
        tracing::info!(path = %path.display(), "not an image by its extension; ignored");
    }
    Ok(ImageFolder {
        root: root.to_path_buf(),
        classes,
        samples,
        ignored,
    })
}

/// Recursively collects image files under `dir` (following symlinks, each real folder once).
fn walk(
    dir: &Path,
    rel: &Path,
    files: &mut Vec<PathBuf>,
    ignored: &mut Vec<PathBuf>,
    visited: &mut HashSet<PathBuf>,
) -> Result<(), DataError> {
    let real = std::fs::canonicalize(dir).map_err(|e| DataError::io(dir, e))?;
    if !visited.insert(real) {
        tracing::warn!(path = %dir.display(), "symlink loop or repeated folder; visited once");
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name();
        if is_hidden(&name) {
            continue;
        }
        let path = entry.path();
        let rel_path = rel.join(&name);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => walk(&path, &rel_path, files, ignored, visited)?,
            Ok(_) if has_image_extension(&path) => files.push(rel_path),
            Ok(_) => ignored.push(rel_path),
            Err(e) => {
                // A dangling symlink: report it rather than fail the scan.
                tracing::warn!(path = %path.display(), error = %e, "unreadable entry; ignored");
                ignored.push(rel_path);
            }
        }
    }
    Ok(())
}
