//! The one writer's promises: atomic replacement, refusal of non-regular targets and of links,
//! and nothing left behind on failure.

use resnext_io::{check_target, temporary_path, write_atomic, write_atomic_with};
use std::path::Path;

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn writes_and_replaces_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.json");
    write_atomic(&p, b"one").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"one");
    write_atomic(&p, b"two").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"two");
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn refuses_a_directory_and_leaves_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d");
    std::fs::create_dir(&p).unwrap();
    std::fs::write(p.join("inside"), b"keep").unwrap();
    let e = write_atomic(&p, b"x").unwrap_err();
    assert!(e.is_not_regular(), "{e}");
    assert!(e.to_string().contains("a directory"), "{e}");
    assert_eq!(std::fs::read(p.join("inside")).unwrap(), b"keep");
    assert!(leftovers(dir.path()).is_empty());
}

#[cfg(unix)]
#[test]
fn refuses_a_fifo_and_a_device() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("f");
    // mkfifo from coreutils keeps the crate free of libc
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        let e = write_atomic(&fifo, b"x").unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
    }
    // /dev/null is a character device on every Unix; it must stay one (this matters as root)
    let e = check_target(Path::new("/dev/null")).unwrap_err();
    assert!(e.to_string().contains("a character device"), "{e}");
    // and through a link to it
    let link = dir.path().join("null.onnx");
    std::os::unix::fs::symlink("/dev/null", &link).unwrap();
    let e = write_atomic(&link, b"x").unwrap_err();
    assert!(e.to_string().contains("a character device"), "{e}");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(leftovers(dir.path()).is_empty());
}

#[cfg(unix)]
#[test]
fn a_link_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.bin");
    std::fs::write(&real, b"old").unwrap();
    let link = dir.path().join("link.bin");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let e = write_atomic(&link, b"new").unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&real).unwrap(), b"old");
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink(dir.path().join("nothing"), &dangling).unwrap();
    let e = write_atomic(&dangling, b"x").unwrap_err();
    assert!(e.to_string().contains("symbolic link to nothing"), "{e}");
    assert!(!dir.path().join("nothing").exists());
}

#[test]
fn a_failed_fill_leaves_the_target_and_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.onnx");
    std::fs::write(&p, b"old").unwrap();
    let e = write_atomic_with(&p, |f| {
        use std::io::Write;
        f.write_all(b"half")?;
        Err(std::io::Error::other("the encoder failed"))
    })
    .unwrap_err();
    assert!(e.to_string().contains("the encoder failed"), "{e}");
    assert_eq!(std::fs::read(&p).unwrap(), b"old");
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn a_stale_temporary_is_replaced_and_a_missing_directory_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.safetensors");
    std::fs::write(temporary_path(&p), b"stale from a killed run").unwrap();
    write_atomic(&p, b"fresh").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"fresh");
    assert!(leftovers(dir.path()).is_empty());
    let missing = dir.path().join("no/such/dir/x.json");
    let e = write_atomic(&missing, b"x").unwrap_err();
    assert!(
        e.io_error().is_some() && e.to_string().contains("no/such/dir"),
        "{e}"
    );
    let e = write_atomic(Path::new("/"), b"x").unwrap_err();
    assert!(e.to_string().contains("not a file path"), "{e}");
}

#[test]
fn two_writers_of_one_file_never_mix_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("folds.json");
    // four writers of small files, so that one often finds another's temporary file between
    // its creation and its lock, or just after its rename: neither may be taken for stale
    let writers: Vec<_> = [b'a', b'b', b'c', b'd']
        .into_iter()
        .map(|byte| {
            let p = p.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    write_atomic(&p, &vec![byte; 1 << 16]).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let got = std::fs::read(&p).unwrap();
    assert_eq!(got.len(), 1 << 16);
    assert!(
        got.iter().all(|&b| b == got[0]),
        "the bytes of two writers mixed"
    );
    assert!(leftovers(dir.path()).is_empty());
}
