//! Scanning an ImageFolder root, compatible with torchvision's `ImageFolder`: one folder per
//! class; class index = position in the sorted class-folder names; files found recursively and
//! sorted, so labels and order are the same on every machine whatever `read_dir` returns.
//!
//! Only regular files are images: a FIFO, socket or device named like an image is skipped and
//! reported with its kind (opening a FIFO would block forever). Folder cycles are walked once. A
//! file reachable under two classes (through a link) is an error, as is a file name that is not
//! UTF-8 (names are written to `split.json`, which must read them back exactly).

use crate::error::DataError;
use std::collections::{HashMap, HashSet};
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
    /// Entries named like images that are not regular files, with their kind (`fifo`,
    /// `socket`, `device`, `dangling link`), relative to the root.
    pub skipped: Vec<(PathBuf, String)>,
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
    path.extension().is_some_and(|e| {
        let e = e.to_string_lossy().to_ascii_lowercase();
        IMAGE_EXTENSIONS.contains(&e.as_str())
    })
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
        if std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir()) {
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
    let mut skipped = Vec::new();
    let mut owners: HashMap<FileId, (usize, PathBuf)> = HashMap::new();
    for (label, class) in classes.iter().enumerate() {
        let dir = root.join(class);
        let mut found = Found::default();
        let mut visited = HashSet::new();
        walk(&dir, Path::new(class), &mut found, &mut visited)?;
        for (rel, id) in &found.ids {
            if let Some((other, first)) = owners.get(id) {
                if *other != label {
                    return Err(DataError::FileInTwoClasses {
                        first: first.clone(),
                        second: rel.clone(),
                    });
                }
            } else {
                owners.insert(*id, (label, rel.clone()));
            }
        }
        ignored.extend(found.ignored);
        skipped.extend(found.skipped);
        let mut files = found.files;
        if files.is_empty() {
            return Err(DataError::EmptyClass(dir));
        }
        files.sort();
        samples.extend(files.into_iter().map(|path| Sample { path, label }));
    }
    ignored.sort();
    skipped.sort();
    for path in &ignored {
        tracing::info!(path = %path.display(), "not an image by its extension; ignored");
    }
    for (path, kind) in &skipped {
        tracing::warn!(path = %path.display(), kind = %kind, "named like an image but not a regular file; skipped");
    }
    Ok(ImageFolder {
        root: root.to_path_buf(),
        classes,
        samples,
        ignored,
        skipped,
    })
}

/// A file's identity on disk (device, inode), to find one file reached by two paths.
type FileId = (u64, u64);

#[cfg(unix)]
fn file_id(m: &std::fs::Metadata) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    Some((m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(_m: &std::fs::Metadata) -> Option<FileId> {
    None
}

/// The kind of a non-regular, non-folder entry.
#[cfg(unix)]
pub fn special_kind(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() || t.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

/// The kind of a non-regular, non-folder entry.
#[cfg(not(unix))]
pub fn special_kind(_m: &std::fs::Metadata) -> &'static str {
    "special file"
}

/// What a walk of one class folder found.
#[derive(Debug, Default)]
struct Found {
    files: Vec<PathBuf>,
    ids: Vec<(PathBuf, FileId)>,
    ignored: Vec<PathBuf>,
    skipped: Vec<(PathBuf, String)>,
}

/// Recursively collects image files under `dir` (following symlinks, each real folder once).
fn walk(
    dir: &Path,
    rel: &Path,
    found: &mut Found,
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
            Ok(m) if m.is_dir() => {
                if name.to_str().is_none() {
                    return Err(DataError::NonUtf8Name(path));
                }
                walk(&path, &rel_path, found, visited)?
            }
            Ok(_) if !has_image_extension(&path) => found.ignored.push(rel_path),
            Ok(m) if m.is_file() => {
                if name.to_str().is_none() {
                    return Err(DataError::NonUtf8Name(path));
                }
                if let Some(id) = file_id(&m) {
                    found.ids.push((rel_path.clone(), id));
                }
                found.files.push(rel_path);
            }
            Ok(m) => found.skipped.push((rel_path, special_kind(&m).to_string())),
            Err(_) if has_image_extension(&path) => {
                found.skipped.push((rel_path, "dangling link".to_string()))
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable entry; ignored");
                found.ignored.push(rel_path);
            }
        }
    }
    Ok(())
}
