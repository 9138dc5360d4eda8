//! `cargo xtask download` against a local HTTP server on 127.0.0.1 serving the MSLD RAR archive
//! from `../shared` (no internet needed): success, wrong checksum, a transfer cut off and
//! resumed, a server error, Kaggle's API, and hostile archives given with `--from`.

use resnext_testkit::{can_mount_tmpfs, shared};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

const MSLD_SHA256: &str = "8f5c70bcbce6d046b1faaeebf9685579270bfb8af6ee8529ee64d112d3bda8b9";

fn xtask(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.arg("download").args(args);
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[derive(Clone)]
enum Mode {
    Normal,
    /// Every response closes the connection after this many body bytes.
    CutEvery(usize),
    Status(u16),
    /// Requires this `Authorization` header.
    Auth(String),
}

#[derive(Debug, Clone)]
struct Request {
    path: String,
    range_start: Option<u64>,
}

struct Server {
    base: String,
    log: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

fn serve(body: Vec<u8>, mode: Mode) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = handle(stream, &body, &mode, &log2);
        }
    });
    Server { base, log }
}

fn handle(
    mut s: TcpStream,
    body: &[u8],
    mode: &Mode,
    log: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let path = lines
        .next()
        .unwrap_or("")
        .split(' ')
        .nth(1)
        .unwrap_or("")
        .to_string();
    let mut range_start = None;
    let mut auth = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "range" => {
                    range_start = v
                        .trim()
                        .strip_prefix("bytes=")
                        .and_then(|r| r.trim_end_matches('-').parse().ok())
                }
                "authorization" => auth = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    log.lock().unwrap().push(Request { path, range_start });
    let reply = |s: &mut TcpStream, status: &str| {
        write!(
            s,
            "HTTP/1.1 {status}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nerror"
        )
    };
    match mode {
        Mode::Status(code) => return reply(&mut s, &format!("{code} Oops")),
        Mode::Auth(want) if auth.as_deref() != Some(want) => {
            return reply(&mut s, "401 Unauthorized")
        }
        _ => {}
    }
    let start = range_start.unwrap_or(0) as usize;
    if start >= body.len() {
        return write!(
            s,
            "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            body.len()
        );
    }
    if range_start.is_some() {
        write!(
            s,
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len() - 1,
            body.len(),
            body.len() - start
        )?;
    } else {
        write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
    }
    let end = match mode {
        Mode::CutEvery(n) => (start + n).min(body.len()),
        _ => body.len(),
    };
    s.write_all(&body[start..end])?;
    s.flush()?;
    s.shutdown(std::net::Shutdown::Both)
}

/// Image files per class folder of `root`.
fn class_counts(root: &Path) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| {
            let n = std::fs::read_dir(&p)
                .unwrap()
                .filter(|e| {
                    let p = e.as_ref().unwrap().path();
                    p.extension().is_some_and(|x| x.eq_ignore_ascii_case("jpg"))
                })
                .count();
            (p.file_name().unwrap().to_string_lossy().into_owned(), n)
        })
        .collect();
    out.sort();
    out
}

/// Names in `dir` other than the `.downloads` cache: what a failure must not leave behind.
fn leftovers(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Err(_) => vec![],
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".downloads")
            .collect(),
    }
}

fn assert_msld(out: &Path) {
    assert_eq!(
        class_counts(out),
        vec![("Monkey Pox".to_string(), 102), ("Others".to_string(), 126)]
    );
}

#[test]
fn downloads_verifies_and_extracts_msld() {
    let Some(rar) = shared("datasets/msld-original-images.rar") else {
        return;
    };
    let server = serve(std::fs::read(&rar).unwrap(), Mode::Normal);
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("data/msld");
    let url = format!("{}/Original%20Images.rar", server.base);
    // The name `msld` brings the registry's sha256, checked against the served bytes.
    let o = xtask(&["msld", "--url", &url, "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("228 images in 2 classes"), "{}", text(&o));
    assert!(text(&o).contains(&format!("sha256 verified: {MSLD_SHA256}")));
    assert_msld(&out);
    assert_eq!(leftovers(&t.path().join("data")), vec!["msld".to_string()]);
    // A second run finds the data there and leaves it alone; --force replaces it from the
    // cached archive without another request.
    let o = xtask(&["msld", "--url", &url, "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        o.status.success() && text(&o).contains("already exists"),
        "{}",
        text(&o)
    );
    let o = xtask(&[
        "msld",
        "--url",
        &url,
        "--out",
        out.to_str().unwrap(),
        "--force",
    ])
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(server.requests().len(), 1);
    assert_msld(&out);
    assert_eq!(leftovers(&t.path().join("data")), vec!["msld".to_string()]);
}

#[test]
fn a_wrong_checksum_leaves_nothing() {
    let Some(rar) = shared("datasets/msld-original-images.rar") else {
        return;
    };
    let server = serve(std::fs::read(&rar).unwrap(), Mode::Normal);
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let out = data.join("msld");
    let wrong = "0".repeat(64);
    let url = format!("{}/msld.rar", server.base);
    let o = xtask(&[
        "msld",
        "--url",
        &url,
        "--sha256",
        &wrong,
        "--out",
        out.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(!o.status.success());
    let msg = text(&o);
    assert!(
        msg.contains("sha256 mismatch") && msg.contains(MSLD_SHA256),
        "{msg}"
    );
    assert!(!out.exists());
    assert!(leftovers(&data).is_empty(), "{:?}", leftovers(&data));
    // The bad download is not kept to be "resumed" later.
    let cached: Vec<_> = std::fs::read_dir(data.join(".downloads"))
        .unwrap()
        .collect();
    assert!(cached.is_empty(), "{cached:?}");
}

#[test]
fn a_cut_off_transfer_resumes_with_range_requests() {
    let Some(rar) = shared("datasets/msld-original-images.rar") else {
        return;
    };
    let bytes = std::fs::read(&rar).unwrap();
    let len = bytes.len() as u64;
    let cut = 300_000u64;
    let server = serve(bytes, Mode::CutEvery(cut as usize));
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let out = data.join("msld");
    let url = format!("{}/msld.rar", server.base);
    // First run: one request and three resumes, each cut after 300,000 bytes: not enough.
    let o = xtask(&["msld", "--url", &url, "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("run the same command again to resume"),
        "{}",
        text(&o)
    );
    assert!(!out.exists());
    let starts: Vec<_> = server.requests().iter().map(|r| r.range_start).collect();
    assert_eq!(starts, vec![None, Some(cut), Some(2 * cut), Some(3 * cut)]);
    let parts: Vec<PathBuf> = std::fs::read_dir(data.join(".downloads"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(parts.len(), 1);
    assert!(parts[0].to_string_lossy().ends_with(".part"));
    assert_eq!(std::fs::metadata(&parts[0]).unwrap().len(), 4 * cut);
    // Second run: resumes at the partial file's length and completes.
    assert!(4 * cut < len && len - 4 * cut <= cut);
    let o = xtask(&["msld", "--url", &url, "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(server.requests().last().unwrap().range_start, Some(4 * cut));
    assert_msld(&out);
}

#[test]
fn a_server_error_is_reported() {
    let server = serve(Vec::new(), Mode::Status(500));
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("data/x");
    let url = format!("{}/x.zip", server.base);
    let o = xtask(&["x", "--url", &url, "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let msg = text(&o);
    assert!(msg.contains("500") && msg.contains("/x.zip"), "{msg}");
    assert!(!msg.contains("panicked"), "{msg}");
    assert!(!out.exists());
    assert!(leftovers(&t.path().join("data")).is_empty());
    // Nothing listens on a port that was just closed: a connection error, named.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = xtask(&[
        "x",
        "--url",
        &format!("http://127.0.0.1:{port}/x.zip"),
        "--out",
        out.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("cannot fetch"), "{}", text(&o));
}

/// A zip in the layout of the Kaggle dataset: the original images nested twice, beside folds.
fn kaggle_like_zip(images: &Path) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for class in ["Monkey Pox", "Others"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(images.join(class))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in &files {
            let name = f.file_name().unwrap().to_string_lossy();
            let data = std::fs::read(f).unwrap();
            w.start_file(
                format!("Original Images/Original Images/{class}/{name}"),
                opts,
            )
            .unwrap();
            w.write_all(&data).unwrap();
        }
        w.start_file(format!("Fold1/Fold1/Train/{class}/extra.jpg"), opts)
            .unwrap();
        w.write_all(&std::fs::read(&files[0]).unwrap()).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn kaggle_datasets_use_the_api_with_credentials() {
    let Some(images) = shared("datasets/msld-original") else {
        return;
    };
    // base64("user:key")
    let server = serve(
        kaggle_like_zip(&images),
        Mode::Auth("Basic dXNlcjprZXk=".into()),
    );
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("data/msld-kaggle");
    let o = xtask(&["msld-kaggle", "--out", out.to_str().unwrap()])
        .env("RESNEXT_KAGGLE_API", format!("{}/api/v1", server.base))
        .env("KAGGLE_USERNAME", "user")
        .env("KAGGLE_KEY", "key")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        server.requests()[0].path,
        "/api/v1/datasets/download/nafin59/monkeypox-skin-lesion-dataset"
    );
    assert_msld(&out);

    // Without credentials: an error that says which are needed, and no request.
    let home = tempfile::tempdir().unwrap();
    let out2 = t.path().join("data/other");
    let o = xtask(&["msld-kaggle", "--out", out2.to_str().unwrap()])
        .env("RESNEXT_KAGGLE_API", format!("{}/api/v1", server.base))
        .env_remove("KAGGLE_USERNAME")
        .env_remove("KAGGLE_KEY")
        .env_remove("KAGGLE_CONFIG_DIR")
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("KAGGLE_USERNAME"), "{}", text(&o));
    assert_eq!(server.requests().len(), 1);
    // Wrong credentials: the server's 401, reported. (Another folder: the archive fetched above
    // sits in t's `.downloads` and would be reused without a request.)
    let t2 = tempfile::tempdir().unwrap();
    let out2 = t2.path().join("data/other");
    let o = xtask(&["msld-kaggle", "--out", out2.to_str().unwrap()])
        .env("RESNEXT_KAGGLE_API", format!("{}/api/v1", server.base))
        .env("KAGGLE_USERNAME", "user")
        .env("KAGGLE_KEY", "wrong")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("401"), "{}", text(&o));
    assert!(!out2.exists());
}

#[test]
fn local_archives_and_folders_work_offline() {
    let Some(rar) = shared("datasets/msld-original-images.rar") else {
        return;
    };
    let images = shared("datasets/msld-original").unwrap();
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("a");
    let o = xtask(&[
        "msld",
        "--from",
        rar.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_msld(&out);
    let out = t.path().join("b");
    let o = xtask(&[
        "mine",
        "--from",
        images.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_msld(&out);
    // tar.gz of the same folder, nested once.
    let tgz = t.path().join("msld.tar.gz");
    {
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&tgz).unwrap(),
            flate2::Compression::fast(),
        );
        let mut b = tar::Builder::new(gz);
        b.append_dir_all("msld", &images).unwrap();
        b.into_inner().unwrap().finish().unwrap();
    }
    let out = t.path().join("c");
    let o = xtask(&[
        "mine",
        "--from",
        tgz.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_msld(&out);
}

/// A tar holding one raw header (name and type as given, no sanitising) and then a good file.
fn raw_tar(name: &str, kind: tar::EntryType, link: Option<&str>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let data = b"payload";
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(0o644);
    if let Some(l) = link {
        h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        h.set_size(0);
        h.set_cksum();
        b.append(&h, std::io::empty()).unwrap();
    } else {
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_path("ok/a.jpg").unwrap();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &data[..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn hostile_archives_are_refused_and_leave_nothing() {
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let zip_traversal = {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.start_file("../evil.jpg", zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(b"payload").unwrap();
        w.finish().unwrap().into_inner()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "traversal.tar",
            raw_tar("../evil.jpg", tar::EntryType::Regular, None),
            "outside",
        ),
        (
            "deep.tar",
            raw_tar("a/../../evil.jpg", tar::EntryType::Regular, None),
            "outside",
        ),
        (
            "absolute.tar",
            raw_tar("/tmp/evil.jpg", tar::EntryType::Regular, None),
            "absolute",
        ),
        (
            "symlink.tar",
            raw_tar("ok/link.jpg", tar::EntryType::Symlink, Some("/etc/passwd")),
            "link",
        ),
        (
            "hardlink.tar",
            raw_tar("ok/hard.jpg", tar::EntryType::Link, Some("/etc/passwd")),
            "link",
        ),
        ("traversal.zip", zip_traversal, "outside"),
        (
            "notes.rar",
            b"plain text, not an archive".to_vec(),
            "not a zip, tar, tar.gz or RAR",
        ),
        ("cut.zip", b"PK\x03\x04 truncated".to_vec(), "cut.zip"),
    ];
    for (file, bytes, needle) in cases {
        let archive = t.path().join(file);
        std::fs::write(&archive, bytes).unwrap();
        let out = work.join("data/x");
        let o = xtask(&[
            "x",
            "--from",
            archive.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
        let msg = text(&o);
        assert!(!o.status.success(), "{file} accepted:\n{msg}");
        assert!(
            msg.contains(needle),
            "{file}: expected `{needle}` in:\n{msg}"
        );
        assert!(!msg.contains("panicked"), "{file}:\n{msg}");
        assert!(!out.exists(), "{file} left {}", out.display());
        assert!(
            leftovers(&work.join("data")).is_empty(),
            "{file} left {:?}",
            leftovers(&work.join("data"))
        );
        assert!(!t.path().join("evil.jpg").exists() && !work.join("evil.jpg").exists());
    }
    assert!(!Path::new("/tmp/evil.jpg").exists());
}

#[test]
fn unknown_names_and_bad_options_are_one_line_errors() {
    for (args, needle) in [
        (vec!["no-such-dataset"], "unknown dataset `no-such-dataset`"),
        (vec!["msld", "--sha256", "xyz"], "not a sha256"),
        (
            vec!["msld", "--from", "/nonexistent/x.rar"],
            "/nonexistent/x.rar",
        ),
        (vec!["msld", "--bogus"], "unexpected argument '--bogus'"),
    ] {
        let o = xtask(&args).output().unwrap();
        assert!(!o.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.lines().next().unwrap_or("").contains(needle),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn a_full_disk_is_reported_and_leaves_no_dataset() {
    let Some(rar) = shared("datasets/msld-original-images.rar") else {
        return;
    };
    if !can_mount_tmpfs() {
        return;
    }
    let server = serve(std::fs::read(&rar).unwrap(), Mode::Normal);
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("disk");
    std::fs::create_dir_all(&mnt).unwrap();
    // 512 KiB: a third of the archive fits.
    let script = r#"mount -t tmpfs -o size=512k tmpfs "$MNT" || exit 99
"$BIN" download msld --url "$URL" --out "$MNT/data/msld" 2>"$MNT/../stderr.txt"
rc=$?
ls -A "$MNT/data" > "$MNT/../left.txt"
exit $rc"#;
    let o = Command::new("unshare")
        .args(["-r", "-m", "sh", "-c", script])
        .env("MNT", &mnt)
        .env("BIN", env!("CARGO_BIN_EXE_xtask"))
        .env("URL", format!("{}/msld.rar", server.base))
        .output()
        .unwrap();
    let err = std::fs::read_to_string(t.path().join("stderr.txt")).unwrap_or_default();
    assert_ne!(o.status.code(), Some(99), "mount failed");
    assert!(!o.status.success(), "a full disk went unnoticed:\n{err}");
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("error:")
            && last.contains("No space left on device")
            && last.contains(".part"),
        "{err}"
    );
    let left = std::fs::read_to_string(t.path().join("left.txt")).unwrap();
    assert_eq!(left.trim(), ".downloads", "{left}");
}

/// The committed real-model `.pth` fixture, and its name as torchvision would give it
/// (`<name>-<first 8 hex digits of its sha256>.pth`).
fn weights_fixture() -> (Vec<u8>, String) {
    use sha2::Digest;
    let bytes = std::fs::read(resnext_testkit::fixture(
        "torch/tiny_resnext_legacy_bf16.pth",
    ))
    .unwrap();
    let digest: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (bytes, format!("tiny_resnext-{}.pth", &digest[..8]))
}

#[test]
fn weights_are_checked_against_the_hash_in_their_name_and_resume() {
    let (bytes, name) = weights_fixture();
    let cut = 2_000_000usize;
    let server = serve(bytes.clone(), Mode::CutEvery(cut));
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("weights");
    let url = format!("{}/{name}", server.base);
    // 6.8 MB cut every 2 MB: one request and three resumes complete it
    let o = xtask(&[
        "weights/tiny",
        "--url",
        &url,
        "--out",
        out.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let starts: Vec<_> = server.requests().iter().map(|r| r.range_start).collect();
    assert_eq!(
        starts,
        vec![
            None,
            Some(cut as u64),
            Some(2 * cut as u64),
            Some(3 * cut as u64)
        ]
    );
    assert_eq!(std::fs::read(out.join(&name)).unwrap(), bytes);
    assert!(text(&o).contains("sha256 verified"), "{}", text(&o));
    assert_eq!(leftovers(&out), vec![name.clone()], "no .part left");
    // a second call finds it in place
    let o = xtask(&[
        "weights/tiny",
        "--url",
        &url,
        "--out",
        out.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(
        o.status.success() && text(&o).contains("already here"),
        "{}",
        text(&o)
    );
    assert_eq!(server.requests().len(), 4, "nothing downloaded again");
}

#[test]
fn weights_whose_hash_does_not_match_their_name_are_deleted() {
    let (bytes, _) = weights_fixture();
    let server = serve(bytes, Mode::Normal);
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("weights");
    let url = format!("{}/resnext50_32x4d-7cdf4587.pth", server.base);
    let o = xtask(&[
        "weights/resnext50_32x4d",
        "--url",
        &url,
        "--out",
        out.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(!o.status.success());
    let msg = text(&o);
    assert!(
        msg.contains("sha256 mismatch") && msg.contains("7cdf4587"),
        "{msg}"
    );
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
    // a name without a hash needs --sha256
    let url = format!("{}/model.pth", server.base);
    let o = xtask(&["weights/x", "--url", &url, "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("--sha256"), "{}", text(&o));
    // unknown registry names list the known ones
    let o = xtask(&["weights/resnext9000"]).output().unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("resnext50_32x4d"), "{}", text(&o));
}
