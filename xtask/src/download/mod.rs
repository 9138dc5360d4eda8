//! `cargo xtask download [NAME] [--url URL] [--sha256 HEX] [--from FILE_OR_DIR] [--out DIR]
//! [--subdir PATH] [--force]`: fetches a dataset (default `msld`) from the registry in
//! `configs/datasets.toml`, an explicit URL, Kaggle, or a local archive or folder, verifies its
//! sha256, extracts it into a temporary folder next to the output and renames the ImageFolder
//! root into place, so a failure at any point leaves no half dataset.

mod archive;
mod http;
mod layout;
pub(crate) mod registry;
pub mod weights;

use crate::{cmd, flags::Download};
use anyhow::{anyhow, bail, Context, Result};
use registry::{hex, sha256_file, Registry};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Where the data comes from.
enum Source {
    Http { url: String, auth: Option<String> },
    Archive(PathBuf),
    Folder(PathBuf),
}

pub fn run(args: &Download) -> Result<()> {
    if let Some(w) = args
        .name
        .as_deref()
        .and_then(|n| n.strip_prefix("weights/"))
    {
        return weights::run(w, args).map(drop);
    }
    let registry_path = cmd::root().join("configs/datasets.toml");
    let registry = Registry::load(&registry_path)?;
    let name = args.name.clone().unwrap_or_else(|| "msld".into());
    let entry = registry.get(&name);
    if entry.is_none() && args.url.is_none() && args.from.is_none() {
        bail!(
            "unknown dataset `{name}`; known: {}; see {}, or pass --url URL or --from FILE_OR_DIR",
            registry.listing().join("; "),
            registry_path.display()
        );
    }
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!("`{name}` cannot be a dataset name (it names the folder data/<name>)");
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| cmd::root().join("data").join(&name));
    if out.exists() && !args.force {
        let n = std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0);
        if n > 0 {
            eprintln!(
                "{} already exists and is not empty; nothing done (pass --force to replace it)",
                out.display()
            );
            return Ok(());
        }
    }
    let expected = args
        .sha256
        .clone()
        .or_else(|| entry.and_then(|e| e.sha256.clone()));
    let subdir = args
        .subdir
        .clone()
        .or_else(|| entry.and_then(|e| e.subdir.clone()));
    let source = match (&args.from, &args.url, entry) {
        (Some(p), _, _) if p.is_dir() => Source::Folder(p.clone()),
        (Some(p), _, _) if p.is_file() => Source::Archive(p.clone()),
        (Some(p), _, _) => bail!("{} does not exist (--from)", p.display()),
        (None, Some(url), _) => Source::Http {
            url: url.clone(),
            auth: None,
        },
        (None, None, Some(e)) => match (&e.url, &e.kaggle) {
            (Some(url), _) => Source::Http {
                url: url.clone(),
                auth: None,
            },
            (None, Some(dataset)) => kaggle_source(dataset)?,
            (None, None) => unreachable!("registry entries are validated"),
        },
        (None, None, None) => unreachable!("checked above"),
    };

    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let out_name = out
        .file_name()
        .ok_or_else(|| anyhow!("--out {} has no folder name", out.display()))?
        .to_string_lossy()
        .into_owned();

    // 1. The archive, downloaded and verified, or the local one.
    let archive = match &source {
        Source::Http { url, auth } => Some(download(
            &parent.join(".downloads"),
            &name,
            url,
            auth.as_deref(),
            expected.as_deref(),
        )?),
        Source::Archive(p) => {
            let got = sha256_file(p)?;
            if let Some(want) = &expected {
                if &got != want {
                    bail!(
                        "sha256 mismatch for {}: expected {want}, got {got}",
                        p.display()
                    );
                }
                eprintln!("sha256 verified: {got}");
            } else {
                eprintln!("sha256 of {}: {got}", p.display());
            }
            Some(p.clone())
        }
        Source::Folder(_) => None,
    };

    // 2. Extraction (or copy) into a temporary folder beside the output.
    let tmp = TempDir::new(parent.join(format!(".{out_name}.partial-{}", std::process::id())))?;
    match (&source, &archive) {
        (Source::Folder(dir), _) => {
            let n = layout::copy_tree(dir, tmp.path())?;
            eprintln!("copied {n} files from {}", dir.display());
        }
        (_, Some(a)) => {
            let stats = archive::extract(a, tmp.path())?;
            eprintln!(
                "extracted {} files ({:.1} MB) from {}",
                stats.files,
                stats.bytes as f64 / 1e6,
                a.display()
            );
        }
        (_, None) => unreachable!("non-folder sources have an archive"),
    }
    let root = layout::find_root(tmp.path(), subdir.as_deref())?;
    let classes = layout::check(&root)?;

    // 3. Into place with renames (the old output, if replaced, goes only once the new one is in).
    let old = parent.join(format!(".{out_name}.old-{}", std::process::id()));
    let replacing = out.exists();
    if replacing {
        std::fs::rename(&out, &old)
            .with_context(|| format!("moving the old {} aside", out.display()))?;
    }
    if let Err(e) = std::fs::rename(&root, &out) {
        if replacing {
            let _ = std::fs::rename(&old, &out);
        }
        return Err(anyhow!(e).context(format!("moving the data into {}", out.display())));
    }
    if replacing {
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("removing the replaced data in {}", old.display()))?;
    }
    drop(tmp);

    let total: usize = classes.iter().map(|(_, n)| n).sum();
    let list: Vec<String> = classes.iter().map(|(c, n)| format!("{c} {n}")).collect();
    println!(
        "{}: {total} images in {} classes ({})",
        out.display(),
        classes.len(),
        list.join(", ")
    );
    Ok(())
}

/// Downloads `url` into `cache` (resuming a previous partial download of the same URL), checks
/// the sha256 and returns the complete file. A mismatching file is deleted.
fn download(
    cache: &Path,
    name: &str,
    url: &str,
    auth: Option<&str>,
    expected: Option<&str>,
) -> Result<PathBuf> {
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    // One file per (name, URL): a partial download of another URL is never resumed.
    let url_hash = hex(&Sha256::digest(url.as_bytes()))[..12].to_string();
    let file = cache.join(format!("{name}-{url_hash}"));
    let part = cache.join(format!("{name}-{url_hash}.part"));
    if file.is_file() {
        eprintln!("using the earlier download {}", file.display());
    } else {
        http::fetch(url, auth, &part)?;
        std::fs::rename(&part, &file).with_context(|| format!("renaming {}", part.display()))?;
    }
    let got = sha256_file(&file)?;
    match expected {
        Some(want) if got != want => {
            let _ = std::fs::remove_file(&file);
            bail!(
                "sha256 mismatch for {url}: expected {want}, got {got} (the download was deleted)"
            );
        }
        Some(_) => eprintln!("sha256 verified: {got}"),
        None => eprintln!("sha256: {got} (no checksum to verify against)"),
    }
    Ok(file)
}

/// The Kaggle API download of `owner/dataset`, with credentials from `KAGGLE_USERNAME` and
/// `KAGGLE_KEY`, or `~/.kaggle/kaggle.json`. `RESNEXT_KAGGLE_API` replaces the API base URL
/// (a mirror, or a test server).
fn kaggle_source(dataset: &str) -> Result<Source> {
    let (user, key) = kaggle_credentials()?;
    let base = std::env::var("RESNEXT_KAGGLE_API")
        .unwrap_or_else(|_| "https://www.kaggle.com/api/v1".into());
    Ok(Source::Http {
        url: format!("{}/datasets/download/{dataset}", base.trim_end_matches('/')),
        auth: Some(format!(
            "Basic {}",
            base64(format!("{user}:{key}").as_bytes())
        )),
    })
}

fn kaggle_credentials() -> Result<(String, String)> {
    if let (Ok(u), Ok(k)) = (
        std::env::var("KAGGLE_USERNAME"),
        std::env::var("KAGGLE_KEY"),
    ) {
        return Ok((u, k));
    }
    let file = std::env::var_os("KAGGLE_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kaggle")))
        .map(|d| d.join("kaggle.json"));
    if let Some(file) = file.filter(|f| f.is_file()) {
        #[derive(serde::Deserialize)]
        struct Creds {
            username: String,
            key: String,
        }
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let c: Creds = serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: expected {{\"username\": ..., \"key\": ...}}",
                file.display()
            )
        })?;
        return Ok((c.username, c.key));
    }
    bail!(
        "Kaggle datasets need credentials: set KAGGLE_USERNAME and KAGGLE_KEY, or put kaggle.json \
         (from kaggle.com → Settings → API) in ~/.kaggle/"
    )
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A folder removed on drop (unless it was renamed away first).
struct TempDir(PathBuf);

impl TempDir {
    fn new(path: PathBuf) -> Result<Self> {
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing the stale {}", path.display()))?;
        }
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"user:key"), "dXNlcjprZXk=");
    }
}
