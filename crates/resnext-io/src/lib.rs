//! The one writer: every file resnext-rs writes (checkpoints, weights, sidecars, splits, plots,
//! exports, explanations) goes through [`write_atomic`] or [`write_atomic_with`].
//!
//! - **Atomic.** The bytes go to a temporary file next to the target (`.NAME.tmp`, created
//!   exclusively), which is fsynced and then renamed over the target; the directory is fsynced
//!   after the rename. A reader sees the old file or the new one, never a part.
//! - **Only regular files are replaced.** An existing target that is a directory, a device node,
//!   a FIFO, a socket or a symbolic link is refused with a one-line error, and nothing is
//!   written. A link is not followed: one planted in a run directory (`eval.json` → another
//!   run's `config.toml`) would redirect the run's own writes.
//! - **Nothing is left on failure.** A failed write (a full disk, a refused target, an error from
//!   the caller's encoder) removes the temporary file; the target is untouched.
//!
//! The crate has no dependencies, so the data crate and xtask use it without linking libtorch.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why a file was not written. Its `Display` is one line naming the path.
#[derive(Debug)]
pub struct WriteError {
    path: PathBuf,
    reason: Reason,
}

#[derive(Debug)]
enum Reason {
    /// The target exists and is not a regular file (what it is).
    NotRegular(&'static str),
    /// A symbolic link whose target does not exist.
    DanglingLink,
    /// A symbolic link to a regular file (not followed).
    Link,
    /// The path names no file (`/`, `..`, empty).
    NotAFilePath,
    Io(io::Error),
}

impl WriteError {
    /// The path that was to be written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The operating system's error, when there was one (a full disk, a missing directory).
    pub fn io_error(&self) -> Option<&io::Error> {
        match &self.reason {
            Reason::Io(e) => Some(e),
            _ => None,
        }
    }

    /// True when the target exists and is not a regular file (so it was refused, not tried).
    pub fn is_not_regular(&self) -> bool {
        matches!(
            self.reason,
            Reason::NotRegular(_) | Reason::DanglingLink | Reason::Link
        )
    }

    fn io(path: &Path, e: io::Error) -> Self {
        WriteError {
            path: path.to_path_buf(),
            reason: Reason::Io(e),
        }
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path.display();
        match &self.reason {
            Reason::NotRegular(what) => write!(
                f,
                "cannot write {p}: it is {what}, not a regular file; it was left as it is"
            ),
            Reason::DanglingLink => write!(
                f,
                "cannot write {p}: it is a symbolic link to nothing; it was left as it is"
            ),
            Reason::Link => write!(
                f,
                "cannot write {p}: it is a symbolic link, which is not followed; it was left as it is"
            ),
            Reason::NotAFilePath => write!(f, "cannot write {p}: not a file path"),
            Reason::Io(e) => write!(f, "cannot write {p}: {e}"),
        }
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.reason {
            Reason::Io(e) => Some(e),
            _ => None,
        }
    }
}

fn describe(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Where a write of `path` lands: `path` itself, when it is absent or a regular file. Anything
/// else (a directory, a device, a FIFO, a socket, a symbolic link) is refused. Commands call
/// this before long work (tracing a model, training a fold), so a bad `--out` costs nothing.
pub fn check_target(path: &Path) -> Result<PathBuf, WriteError> {
    let refuse = |reason| WriteError {
        path: path.to_path_buf(),
        reason,
    };
    if path.file_name().is_none() {
        return Err(refuse(Reason::NotAFilePath));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(WriteError::io(
            path,
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("the folder {} does not exist", dir.display()),
            ),
        ));
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(path.to_path_buf()),
        Err(e) => Err(WriteError::io(path, e)),
        Ok(m) if m.file_type().is_file() => Ok(path.to_path_buf()),
        Ok(m) if m.file_type().is_symlink() => match std::fs::metadata(path) {
            Ok(t) if t.is_file() => Err(refuse(Reason::Link)),
            Ok(t) => Err(refuse(Reason::NotRegular(describe(t.file_type())))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(refuse(Reason::DanglingLink)),
            Err(e) => Err(WriteError::io(path, e)),
        },
        Ok(m) => Err(refuse(Reason::NotRegular(describe(m.file_type())))),
    }
}

/// `path` with its folder resolved (links, `./`, `..`), and the path itself when it exists (a link
/// resolved to what it names); `None` when its folder does not exist. Two spellings of one file
/// resolve alike, so this is how a command tells that an output would land on an input.
pub fn resolve(path: &Path) -> Option<PathBuf> {
    if let Ok(c) = path.canonicalize() {
        return Some(c);
    }
    let parent = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = parent.unwrap_or(Path::new(".")).canonicalize().ok()?;
    Some(dir.join(path.file_name()?))
}

/// The temporary file a write of `target` goes through: `.NAME.tmp` in the same directory.
pub fn temporary_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.tmp"))
}

/// Writes `bytes` to `path` atomically (see the crate's documentation).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// Writes what `fill` writes into the temporary file to `path`, atomically. An error from `fill`
/// leaves the target untouched and no temporary file behind.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), WriteError> {
    let target = check_target(path)?;
    let tmp = temporary_path(&target);
    // The temporary file is a writer's while it holds the file's lock: one left by a killed
    // process is unlocked, stale, and removed (a link is removed, not followed); one that another
    // process is writing is locked, and this write waits for it (then replaces its result).
    // Only the holder of the lock on the file the temporary path names renames or removes that
    // path (a writer that fails removes it before unlocking), so a stale file is removed only
    // while it is locked here and the path still names it: the file opened may have been renamed
    // into place and unlocked since, and the path may name another writer's new file by now.
    let io = |e| WriteError::io(path, e);
    let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
    let mut f = None;
    // a deadline, not a count of tries: a try that finds a file just renamed away does not wait
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        match std::fs::symlink_metadata(&tmp) {
            Ok(m) if m.file_type().is_symlink() => match std::fs::remove_file(&tmp) {
                Err(e) if !gone(&e) => return Err(WriteError::io(&tmp, e)),
                _ => continue,
            },
            Ok(m) if m.file_type().is_file() => match File::open(&tmp) {
                Ok(other) => match other.try_lock() {
                    Ok(()) => {
                        if same_file(&other, &tmp) {
                            match std::fs::remove_file(&tmp) {
                                Err(e) if !gone(&e) => return Err(WriteError::io(&tmp, e)),
                                _ => {}
                            }
                        }
                        // look again: removed, or renamed into place and another's by now
                        continue;
                    }
                    Err(std::fs::TryLockError::WouldBlock) => {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        continue;
                    }
                    Err(std::fs::TryLockError::Error(e)) => return Err(WriteError::io(&tmp, e)),
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(WriteError::io(&tmp, e)),
            },
            Ok(m) => {
                return Err(WriteError {
                    path: tmp,
                    reason: Reason::NotRegular(describe(m.file_type())),
                })
            }
            Err(_) => {}
        }
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(new) => {
                // Another writer may have opened it before this lock and taken it for stale
                // (unlocked): the file is this writer's only if the path still names it once
                // locked; otherwise the other one removed it, and this one looks again.
                new.lock().map_err(io)?;
                if same_file(&new, &tmp) {
                    f = Some(new);
                    break;
                }
                continue;
            }
            // another writer created it between the check and here: look again
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(e)),
        }
    }
    let Some(mut f) = f else {
        return Err(io(io::Error::new(
            io::ErrorKind::WouldBlock,
            "another process has been writing it for 10 s",
        )));
    };
    let mut created = true;
    let result = (|| -> Result<(), WriteError> {
        fill(&mut f).map_err(io)?;
        f.sync_all().map_err(io)?;
        // The target may have changed since it was checked: check again just before the rename.
        check_target(&target)?;
        // renamed while still locked, so no other writer takes it for stale
        std::fs::rename(&tmp, &target).map_err(io)?;
        created = false;
        sync_parent(&target).map_err(io)
    })();
    if result.is_err() && created {
        // Best effort, while still locked: the write already failed, and that error is the one
        // to report.
        std::fs::remove_file(&tmp).ok();
    }
    drop(f);
    result
}

/// Whether `path` (not followed) still names the file `file` has open.
fn same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::symlink_metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

/// Makes a rename in `path`'s directory durable.
fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}
