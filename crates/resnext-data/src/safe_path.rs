//! Paths that come from a file or a request (a split file, a hand-edited `split.json`) are
//! resolved lexically and must stay under their root: no `..`, no `.`, no absolute path, no
//! empty component, and, once resolved on disk, no symlink that leads outside the root.

use crate::error::DataError;
use std::path::{Component, Path, PathBuf};

/// Reads a file that must be a regular file (a FIFO or device named like a config or weights
/// file would block the read forever, or never end).
pub fn read_regular(path: &Path) -> Result<Vec<u8>, DataError> {
    check_regular(path)?;
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

/// Checks that `path` is a regular file (following links).
pub fn check_regular(path: &Path) -> Result<(), DataError> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if meta.is_file() {
        Ok(())
    } else if meta.is_dir() {
        Err(DataError::UnsafePath {
            path: path.display().to_string(),
            reason: "it is a folder, not a file".into(),
        })
    } else {
        Err(DataError::UnsafePath {
            path: path.display().to_string(),
            reason: format!(
                "it is not a regular file ({})",
                crate::scan::special_kind(&meta)
            ),
        })
    }
}

/// True when `path` (which need not exist yet) lies inside `root` once links are resolved: an
/// output there would mix with the dataset it was made from.
pub fn is_inside(path: &Path, root: &Path) -> bool {
    let Ok(root) = root.canonicalize() else {
        return false;
    };
    // the nearest existing ancestor, resolved, plus the rest
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            let full = rest.iter().rev().fold(c, |p: PathBuf, n| p.join(n));
            return full.starts_with(&root);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = if parent.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    parent.to_path_buf()
                };
            }
            _ => return false,
        }
    }
}

/// Checks that `rel` (with `/` separators) is a plain relative path, component by component.
pub fn check_relative(rel: &str) -> Result<(), DataError> {
    let bad = |why: &str| {
        Err(DataError::UnsafePath {
            path: rel.to_string(),
            reason: why.to_string(),
        })
    };
    if rel.is_empty() {
        return bad("it is empty");
    }
    if rel.contains('\0') || rel.contains('\\') {
        return bad("it holds a NUL or a backslash");
    }
    if rel.split('/').any(str::is_empty) {
        return bad("it has an empty component (`//`, or a leading or trailing `/`)");
    }
    // `Path::components` drops inner `.` components, so look at the text too
    if rel.split('/').any(|c| c == ".") {
        return bad("it has a `.` component");
    }
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(_) => {}
            Component::ParentDir => return bad("it has a `..` component"),
            Component::CurDir => return bad("it has a `.` component"),
            Component::RootDir | Component::Prefix(_) => return bad("it is absolute"),
        }
    }
    Ok(())
}

/// `root/rel`, checked: `rel` is a plain relative path and the file it names on disk is a
/// regular file inside `root` once links are resolved.
pub fn resolve_under(root: &Path, rel: &str) -> Result<PathBuf, DataError> {
    let canon_root = root.canonicalize().map_err(|e| DataError::io(root, e))?;
    resolve_under_canonical(root, &canon_root, rel)
}

/// [`resolve_under`] with the root's canonical form computed once by the caller.
pub fn resolve_under_canonical(
    root: &Path,
    canon_root: &Path,
    rel: &str,
) -> Result<PathBuf, DataError> {
    check_relative(rel)?;
    let path = root.join(rel);
    let canon = match path.canonicalize() {
        Ok(c) => c,
        Err(_) => {
            return Err(DataError::InvalidSplit(format!(
                "`{rel}` is in the split but not under {}",
                root.display()
            )))
        }
    };
    if !canon.starts_with(canon_root) {
        return Err(DataError::UnsafePath {
            path: rel.to_string(),
            reason: format!(
                "a link leads outside {} (set data.follow_links = true if the data root is made of links on purpose)",
                root.display()
            ),
        });
    }
    let meta = std::fs::metadata(&canon).map_err(|e| DataError::io(&path, e))?;
    if !meta.is_file() {
        return Err(DataError::UnsafePath {
            path: rel.to_string(),
            reason: "it is not a regular file".into(),
        });
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_pass() {
        for ok in ["a/b.jpg", "Monkey Pox/P1_1.jpg", "a..b/c"] {
            assert!(check_relative(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../x",
            "class/..",
            "checker/../../../../etc/passwd",
            "/etc/passwd",
            "a/./b",
            "a//b",
            "a/",
            "a\\..\\b",
            "a\0b",
        ] {
            assert!(check_relative(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths_inside_a_root_are_found_before_they_exist() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join("a")).unwrap();
        assert!(is_inside(&root.join("a/new/run"), &root));
        assert!(is_inside(&root.join("a/../x.json"), &root));
        assert!(is_inside(&root, &root));
        assert!(!is_inside(&dir.path().join("runs/x"), &root));
        assert!(!is_inside(&root.join("../elsewhere"), &root));
        let fifo_like = dir.path().join("f.toml");
        std::fs::create_dir(&fifo_like).unwrap();
        assert!(check_regular(&fifo_like).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn links_out_of_the_root_and_special_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("a/in.png"), b"x").unwrap();
        std::fs::write(dir.path().join("secret.png"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.png"), root.join("a/out.png")).unwrap();
        std::os::unix::fs::symlink(root.join("a/in.png"), root.join("a/inside.png")).unwrap();
        std::fs::create_dir(root.join("a/dir.png")).unwrap();
        assert!(resolve_under(&root, "a/in.png").is_ok());
        assert!(
            resolve_under(&root, "a/inside.png").is_ok(),
            "a link inside the root is fine"
        );
        let e = resolve_under(&root, "a/out.png").unwrap_err().to_string();
        assert!(e.contains("outside"), "{e}");
        let e = resolve_under(&root, "a/dir.png").unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        assert!(resolve_under(&root, "a/missing.png").is_err());
    }
}
