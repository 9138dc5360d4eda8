//! Safe extraction of zip, tar, tar.gz and RAR archives into a folder. The format comes from the
//! file's first bytes. Every entry name is checked before anything is written: absolute paths,
//! drive prefixes and `..` are refused, and so are links (symbolic or hard) and device files, so
//! nothing can be written outside the destination. Encrypted and multi-volume entries are
//! refused too. Files are created with `create_new`, so a duplicate entry is an error rather
//! than a silent overwrite.

use anyhow::{anyhow, bail, Context, Result};
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

/// Archive formats `extract` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Zip,
    Tar,
    TarGz,
    Rar,
}

/// Most bytes an archive may expand to (a guard against archive bombs).
pub const MAX_TOTAL_BYTES: u64 = 64 << 30;
/// Most entries an archive may hold.
pub const MAX_ENTRIES: u64 = 10_000_000;

/// What was extracted.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub files: u64,
    pub bytes: u64,
}

/// Detects the format from the first bytes of `path`.
pub fn detect(path: &Path) -> Result<Format> {
    let mut head = Vec::with_capacity(512);
    File::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .take(512)
        .read_to_end(&mut head)
        .with_context(|| format!("reading {}", path.display()))?;
    if head.starts_with(b"Rar!\x1a\x07") {
        Ok(Format::Rar)
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Ok(Format::Zip)
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Format::TarGz)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Ok(Format::Tar)
    } else {
        bail!(
            "{} is not a zip, tar, tar.gz or RAR archive ({} bytes)",
            path.display(),
            std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
        )
    }
}

/// Turns an archive entry name into a relative path inside the destination, or refuses it.
pub fn safe_relative(name: &str) -> Result<PathBuf> {
    if name.contains('\0') {
        bail!("archive entry {name:?} has a NUL in its name");
    }
    // Windows tools sometimes write `\` as the separator.
    let unified = name.replace('\\', "/");
    let bytes = unified.as_bytes();
    if unified.starts_with('/') || (bytes.len() >= 2 && bytes[1] == b':') {
        bail!("archive entry {name:?} has an absolute path");
    }
    let mut out = PathBuf::new();
    for c in Path::new(&unified).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                bail!("archive entry {name:?} points outside the archive (`..`)")
            }
            Component::RootDir | Component::Prefix(_) => {
                bail!("archive entry {name:?} has an absolute path")
            }
        }
    }
    if out.as_os_str().is_empty() {
        bail!("archive entry {name:?} has an empty name");
    }
    Ok(out)
}

/// Writes extracted entries under `dest`, counting files and bytes against the limits.
struct Writer<'a> {
    dest: &'a Path,
    stats: Stats,
    entries: u64,
}

impl Writer<'_> {
    fn count_entry(&mut self) -> Result<()> {
        self.entries += 1;
        if self.entries > MAX_ENTRIES {
            bail!("archive has more than {MAX_ENTRIES} entries");
        }
        Ok(())
    }

    fn dir(&mut self, name: &str) -> Result<()> {
        self.count_entry()?;
        let path = self.dest.join(safe_relative(name)?);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))
    }

    fn file(&mut self, name: &str, mut data: impl Read) -> Result<()> {
        self.count_entry()?;
        let rel = safe_relative(name)?;
        let path = self.dest.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut out = File::create_new(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow!("archive entry {name:?} appears twice")
            } else {
                anyhow!(e).context(format!("creating {}", path.display()))
            }
        })?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(anyhow!(e).context(format!("archive entry {name:?}"))),
            };
            self.stats.bytes += n as u64;
            if self.stats.bytes > MAX_TOTAL_BYTES {
                bail!("archive expands to more than {} GiB", MAX_TOTAL_BYTES >> 30);
            }
            out.write_all(&buf[..n])
                .with_context(|| format!("writing {}", path.display()))?;
        }
        out.sync_all()
            .with_context(|| format!("writing {}", path.display()))?;
        self.stats.files += 1;
        Ok(())
    }
}

/// Extracts `archive` (of any supported format) into the existing folder `dest`.
pub fn extract(archive: &Path, dest: &Path) -> Result<Stats> {
    let format = detect(archive)?;
    let mut w = Writer {
        dest,
        stats: Stats::default(),
        entries: 0,
    };
    let what = || format!("extracting {}", archive.display());
    match format {
        Format::Zip => extract_zip(archive, &mut w).with_context(what)?,
        Format::Tar => {
            let f = File::open(archive).with_context(what)?;
            extract_tar(BufReader::new(f), &mut w).with_context(what)?
        }
        Format::TarGz => {
            let f = File::open(archive).with_context(what)?;
            extract_tar(flate2::read::GzDecoder::new(BufReader::new(f)), &mut w)
                .with_context(what)?
        }
        Format::Rar => extract_rar(archive, &mut w).with_context(what)?,
    }
    Ok(w.stats)
}

fn extract_zip(archive: &Path, w: &mut Writer) -> Result<()> {
    let f = File::open(archive)?;
    let mut zip = zip::ZipArchive::new(BufReader::new(f))?;
    for i in 0..zip.len() {
        let entry = zip.by_index(i)?;
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        if entry.encrypted() {
            bail!("archive entry {name:?} is encrypted");
        }
        let mode = entry.unix_mode().unwrap_or(0);
        if entry.is_symlink() || mode & 0o170000 == 0o120000 {
            bail!("archive entry {name:?} is a link");
        }
        if entry.is_dir() {
            w.dir(&name)?;
        } else {
            w.file(&name, entry)?;
        }
    }
    Ok(())
}

fn extract_tar(reader: impl Read, w: &mut Writer) -> Result<()> {
    let mut tar = tar::Archive::new(reader);
    for entry in tar.entries()? {
        let entry = entry?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => w.file(&name, entry)?,
            tar::EntryType::Directory => w.dir(&name)?,
            tar::EntryType::Symlink | tar::EntryType::Link => {
                bail!("archive entry {name:?} is a link")
            }
            // Extended headers that carry metadata only.
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            other => bail!("archive entry {name:?} is not a file or folder ({other:?})"),
        }
    }
    Ok(())
}

fn extract_rar(archive: &Path, w: &mut Writer) -> Result<()> {
    let mut open = unrar::Archive::new(archive)
        .open_for_processing()
        .map_err(|e| anyhow!("{e}"))?;
    while let Some(header) = open.read_header().map_err(|e| anyhow!("{e}"))? {
        let e = header.entry();
        let name = e.filename.to_string_lossy().into_owned();
        let (is_dir, size) = (e.is_directory(), e.unpacked_size);
        if e.is_encrypted() {
            bail!("archive entry {name:?} is encrypted");
        }
        if e.is_split() {
            bail!("archive entry {name:?} continues in another volume (multi-volume archives are not supported)");
        }
        // Unix symlink mode, or a Windows reparse point.
        if e.file_attr & 0o170000 == 0o120000 || e.file_attr & 0x400 != 0 {
            bail!("archive entry {name:?} is a link");
        }
        if is_dir {
            w.dir(&name)?;
            open = header.skip().map_err(|e| anyhow!("{e}"))?;
        } else {
            // Check the name before unpacking anything.
            safe_relative(&name)?;
            if w.stats.bytes.saturating_add(size) > MAX_TOTAL_BYTES {
                bail!("archive expands to more than {} GiB", MAX_TOTAL_BYTES >> 30);
            }
            let (data, rest) = header
                .read()
                .map_err(|e| anyhow!("archive entry {name:?}: {e}"))?;
            w.file(&name, data.as_slice())?;
            open = rest;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names() {
        assert_eq!(
            safe_relative("a/b/c.jpg").unwrap(),
            PathBuf::from("a/b/c.jpg")
        );
        assert_eq!(
            safe_relative("./a\\b.jpg").unwrap(),
            PathBuf::from("a/b.jpg")
        );
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "C:\\x",
            "\\\\server\\x",
            "",
            ".",
            "a\0b",
        ] {
            assert!(safe_relative(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn unknown_format_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.rar");
        std::fs::write(&p, b"not an archive").unwrap();
        let err = format!("{:#}", detect(&p).unwrap_err());
        assert!(err.contains("x.rar") && err.contains("not a zip"), "{err}");
    }
}
