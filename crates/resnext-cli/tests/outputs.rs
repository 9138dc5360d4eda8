//! No output replaces what is not its to replace: every command that writes a file the user names
//! (`export`, `convert`, `predict --cam`, `data split`) refuses a target that is not a regular
//! file (a FIFO, a directory, a link to a device) and one that is a run's own file, however it is
//! spelled; a full disk is one line and leaves nothing behind.

mod common;

use common::{ok, run, stderr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Asserts a failed command with exactly one `error` line that contains `needle`.
fn refused(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "succeeded:\n{err}");
    assert!(
        !err.contains("panicked") && !err.contains("terminate called"),
        "{err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "expected one error line:\n{err}");
    assert!(lines[0].contains(needle), "`{needle}` not in:\n{err}");
}

fn tmp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// A finished one-epoch run: (tempdir, data root, run dir).
fn tiny_run() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth(dir.path(), 6);
    let cfg = common::tiny_config(dir.path(), &data, 1, "");
    let out = dir.path().join("run");
    ok(&["train", "--config", &s(&cfg), "--out", &s(&out)]);
    (dir, data, out)
}

fn mkfifo(p: &Path) {
    assert!(Command::new("mkfifo").arg(p).status().unwrap().success());
}

#[test]
fn special_files_are_refused_and_left_as_they_are() {
    use std::os::unix::fs::FileTypeExt;
    let (dir, data, r) = tiny_run();
    let d = dir.path();
    let fifo = d.join("out.fifo");
    mkfifo(&fifo);
    let folder = d.join("a-folder");
    std::fs::create_dir(&folder).unwrap();
    // a link to a device node: replacing the link would turn it into a regular file
    let null = d.join("null.onnx");
    std::os::unix::fs::symlink("/dev/null", &null).unwrap();
    let photo = s(&data.join("dots/dots_0000.png"));
    let weights = s(&r.join("best.safetensors"));
    for (target, what) in [
        (&fifo, "a FIFO"),
        (&folder, "a directory"),
        (&null, "a character device"),
    ] {
        let t = s(target);
        let cases: Vec<Vec<&str>> = vec![
            vec![
                "export",
                "--run",
                r.to_str().unwrap(),
                "--format",
                "onnx",
                "--out",
                &t,
            ],
            vec![
                "export",
                "--run",
                r.to_str().unwrap(),
                "--format",
                "torchscript",
                "--out",
                &t,
            ],
            vec!["predict", "--run", r.to_str().unwrap(), "--cam", &t, &photo],
            vec!["convert", &weights, &t],
            vec![
                "data",
                "split",
                "--root",
                data.to_str().unwrap(),
                "--out",
                &t,
            ],
        ];
        // `convert` checks its output before it reads the input
        for args in cases {
            refused(&run(&args), what);
        }
    }
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(folder.is_dir());
    assert!(std::fs::symlink_metadata(&null)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(tmp_files(d).is_empty(), "{:?}", tmp_files(d));
    // a sidecar path that is a FIFO refuses the export before the model is written
    let m = d.join("m.onnx");
    mkfifo(&d.join("m.onnx.json"));
    refused(
        &run(&[
            "export",
            "--run",
            &s(&r),
            "--format",
            "onnx",
            "--out",
            &s(&m),
        ]),
        "a FIFO",
    );
    assert!(!m.exists());
}

#[test]
fn no_output_lands_on_a_runs_own_files() {
    let (dir, data, r) = tiny_run();
    let d = dir.path();
    let before: Vec<(String, Vec<u8>)> = std::fs::read_dir(&r)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (s(&p), std::fs::read(&p).unwrap()))
        .collect();
    let link = d.join("link-to-run");
    std::os::unix::fs::symlink(&r, &link).unwrap();
    let photo = s(&data.join("dots/dots_0000.png"));
    let rs = s(&r);
    let spelled = [
        r.join("last.safetensors"),
        r.join("checkpoint.safetensors"),
        r.join("config.toml"),
        // the `FILE.json` sidecar of `split` is split.json
        r.join("split"),
        r.join("metrics.csv"),
        r.join("./eval.json"),
        r.join("../run/last.json"),
        link.join("config.toml"),
    ];
    for out in &spelled {
        let o = s(out);
        refused(
            &run(&["export", "--run", &rs, "--format", "onnx", "--out", &o]),
            "only that run writes",
        );
        if !o.ends_with("split") {
            refused(
                &run(&["predict", "--run", &rs, "--cam", &o, &photo]),
                "only that run writes",
            );
            refused(
                &run(&["data", "split", "--root", &s(&data), "--out", &o]),
                "only that run writes",
            );
        }
    }
    for (p, bytes) in &before {
        assert_eq!(&std::fs::read(p).unwrap(), bytes, "{p} changed");
    }
    // the run still evaluates and resumes, and an output beside its files is fine
    ok(&["eval", "--run", &rs]);
    ok(&[
        "export",
        "--run",
        &rs,
        "--format",
        "onnx",
        "--out",
        &s(&r.join("model.onnx")),
    ]);
    assert!(r.join("model.onnx.json").is_file());
}

#[test]
fn torchscript_export_on_a_full_disk_is_one_line_and_leaves_nothing() {
    if !resnext_testkit::can_mount_tmpfs() {
        return;
    }
    let (dir, _data, r) = tiny_run();
    let mnt = dir.path().join("disk");
    std::fs::create_dir_all(&mnt).unwrap();
    // 64 KiB takes the sidecar but not the traced module (several hundred KiB)
    let script = r#"mount -t tmpfs -o size=64k tmpfs "$MNT" || exit 99
"$BIN" export --run "$RUN" --format torchscript --out "$MNT/m.pt" 2>"$MNT/../stderr.txt"
rc=$?
ls -a "$MNT" > "$MNT/../left.txt"
exit $rc"#;
    let o = Command::new("unshare")
        .args(["-r", "-m", "sh", "-c", script])
        .env("MNT", &mnt)
        .env("RUN", &r)
        .env("BIN", env!("CARGO_BIN_EXE_resnext"))
        .output()
        .unwrap();
    let err = std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap_or_default();
    assert_ne!(o.status.code(), Some(99), "mount failed");
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        !err.contains("terminate called") && !err.contains("frame #"),
        "{err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("No space left on device"), "{err}");
    let left = std::fs::read_to_string(dir.path().join("left.txt")).unwrap();
    let left: Vec<&str> = left.lines().filter(|l| *l != "." && *l != "..").collect();
    assert!(left.is_empty(), "left on the full disk: {left:?}");
}

#[test]
fn a_runs_own_writes_do_not_follow_links_planted_in_it() {
    let (dir, data, r) = tiny_run();
    let d = dir.path();
    let other = d.join("other");
    ok(&[
        "train",
        "--config",
        &s(&common::tiny_config(d, &data, 1, "")),
        "--out",
        &s(&other),
    ]);
    let config_before = std::fs::read(other.join("config.toml")).unwrap();
    let photo = data.join("dots/dots_0001.png");
    let photo_before = std::fs::read(&photo).unwrap();
    // eval.json -> another run's config.toml; curves.png -> a training image
    std::fs::remove_file(r.join("eval.json")).ok();
    std::os::unix::fs::symlink(other.join("config.toml"), r.join("eval.json")).unwrap();
    refused(&run(&["eval", "--run", &s(&r)]), "symbolic link");
    std::fs::remove_file(r.join("eval.json")).unwrap();
    std::fs::remove_file(r.join("curves.png")).ok();
    std::os::unix::fs::symlink(&photo, r.join("curves.png")).unwrap();
    refused(&run(&["plot", &s(&r)]), "symbolic link");
    // a new run whose folder holds a link to another run's config
    let e = d.join("e");
    std::fs::create_dir(&e).unwrap();
    std::os::unix::fs::symlink(other.join("config.toml"), e.join("config.toml")).unwrap();
    let cfg = common::tiny_config(d, &data, 1, "");
    refused(
        &run(&["train", "--config", &s(&cfg), "--out", &s(&e)]),
        "symbolic link",
    );
    // synthetic data into a class folder that is a link
    let sx = d.join("sx");
    std::fs::create_dir(&sx).unwrap();
    std::os::unix::fs::symlink(&other, sx.join("dots")).unwrap();
    refused(
        &run(&[
            "data",
            "synth",
            "--out",
            &s(&sx),
            "--per-class",
            "1",
            "--size",
            "16",
            "--force",
        ]),
        "symbolic link",
    );
    assert_eq!(
        std::fs::read(other.join("config.toml")).unwrap(),
        config_before
    );
    assert_eq!(std::fs::read(&photo).unwrap(), photo_before);
    assert!(!other.join("dots_0000.png").exists());
    // a run directory is not a cross-validation's, nor the other way round
    refused(
        &run(&[
            "cv",
            "--config",
            &s(&cfg),
            "--out",
            &s(&other),
            "--folds",
            "2",
        ]),
        "is a run directory",
    );
    let cvdir = d.join("cvdir");
    std::fs::create_dir(&cvdir).unwrap();
    std::fs::write(cvdir.join("folds.json"), "{}").unwrap();
    refused(
        &run(&["train", "--config", &s(&cfg), "--out", &s(&cvdir)]),
        "cross-validation directory",
    );
    assert!(!cvdir.join("run.lock").exists());
}
