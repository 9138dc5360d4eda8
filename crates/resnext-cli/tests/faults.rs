//! Faults while training: a process killed at any point resumes; a write cut short leaves the
//! previous checkpoint readable; a full disk is reported (and the run resumes elsewhere).

mod common;

use common::ok;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::metrics_rows as rows;

fn rows_if_any(dir: &Path) -> usize {
    if dir.join("metrics.csv").exists() {
        rows(dir).len()
    } else {
        0
    }
}

/// Train and validation losses of every epoch agree within 1e-3.
fn assert_same_losses(a: &Path, b: &Path) {
    let (ra, rb) = (rows(a), rows(b));
    assert_eq!(ra.len(), rb.len(), "{ra:?} vs {rb:?}");
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!(x[0], y[0]);
        for col in [1, 3] {
            let (p, q): (f64, f64) = (x[col].parse().unwrap(), y[col].parse().unwrap());
            assert!(
                (p - q).abs() < 1e-3,
                "epoch {} column {col}: {p} vs {q}",
                x[0]
            );
        }
    }
}

fn train_args<'a>(cfg: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec![
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]
}

#[test]
fn a_run_killed_at_any_point_resumes_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth(dir.path(), 12);
    let cfg = common::tiny_config(dir.path(), &data, 2, "");
    let straight = dir.path().join("straight");
    let t0 = Instant::now();
    ok(&train_args(&cfg, &straight));
    let full = t0.elapsed();
    // Kill points spread over a whole run: start-up, first epoch, checkpoint writes, second epoch.
    for (i, frac) in [0.05, 0.3, 0.55, 0.8, 0.95].into_iter().enumerate() {
        let out = dir.path().join(format!("killed{i}"));
        let mut child = common::bin()
            .args(train_args(&cfg, &out))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full.mul_f64(frac));
        let _ = child.kill(); // SIGKILL (the run may have finished already: fine)
        let _ = child.wait();
        let done = rows_if_any(&out);
        eprintln!("killed at {frac} of a run: {done} epochs were saved");
        if out.join("checkpoint.safetensors").exists() {
            ok(&["train", "--resume", out.to_str().unwrap()]);
        } else {
            // Killed before the first checkpoint: the resume says so, and the same command
            // starts the run afresh (nothing there blocks it).
            let o = common::run(&["train", "--resume", out.to_str().unwrap()]);
            assert!(!o.status.success());
            assert!(
                common::stderr(&o).contains("run the original command again"),
                "{}",
                common::stderr(&o)
            );
            ok(&train_args(&cfg, &out));
        }
        assert_same_losses(&out, &straight);
        let leftovers: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "kill at {frac}: {leftovers:?}");
    }
}

#[test]
fn a_write_cut_short_leaves_the_previous_checkpoint_readable() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth(dir.path(), 12);
    let cfg = common::tiny_config(dir.path(), &data, 1, "");
    let out = dir.path().join("run");
    ok(&train_args(&cfg, &out));
    // What a process killed in the middle of its next saves leaves: half-written temporaries.
    for name in [
        "checkpoint.safetensors",
        "last.safetensors",
        "best.safetensors",
    ] {
        let bytes = std::fs::read(out.join(name)).unwrap();
        std::fs::write(out.join(format!(".{name}.tmp")), &bytes[..bytes.len() / 2]).unwrap();
    }
    std::fs::write(out.join(".metrics.csv.tmp"), "epoch,tr").unwrap();
    // The checkpoints themselves are whole: eval reads best, resume reads checkpoint.
    ok(&["eval", "--run", out.to_str().unwrap()]);
    ok(&["train", "--resume", out.to_str().unwrap(), "--epochs", "2"]);
    assert_eq!(rows(&out).len(), 2);
    for name in ["checkpoint.safetensors", "last.safetensors"] {
        assert!(
            !out.join(format!(".{name}.tmp")).exists(),
            "{name}.tmp left"
        );
    }
}

/// Bytes a folder's files take on a tmpfs (whole 4 KiB pages).
fn pages_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len().div_ceil(4096) * 4096)
        .sum()
}

#[test]
fn a_full_disk_is_reported_and_the_last_checkpoint_survives() {
    if !resnext_testkit::can_mount_tmpfs() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth(dir.path(), 12);
    // Size the disk from a one-epoch run: room for everything epoch 1 writes plus half a resume
    // checkpoint, so epoch 2's checkpoint write runs out of space.
    let cfg1 = common::tiny_config(dir.path(), &data, 1, "");
    let probe = dir.path().join("probe");
    ok(&train_args(&cfg1, &probe));
    let size = pages_bytes(&probe)
        + std::fs::metadata(probe.join("checkpoint.safetensors"))
            .unwrap()
            .len()
            / 2;
    let cfg = dir.path().join("three.toml");
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg1)
            .unwrap()
            .replace("epochs = 1", "epochs = 3"),
    )
    .unwrap();
    let mnt = dir.path().join("disk");
    let keep = dir.path().join("kept");
    std::fs::create_dir_all(&mnt).unwrap();
    let script = r#"mount -t tmpfs -o size="$SIZE" tmpfs "$MNT" || exit 99
"$BIN" train --config "$CFG" --out "$MNT/run" 2>"$MNT/../stderr.txt"
rc=$?
cp -a "$MNT/run" "$KEEP"
exit $rc"#;
    let o = Command::new("unshare")
        .args(["-r", "-m", "sh", "-c", script])
        .env("SIZE", size.to_string())
        .env("MNT", &mnt)
        .env("KEEP", &keep)
        .env("BIN", env!("CARGO_BIN_EXE_resnext"))
        .env("CFG", &cfg)
        .output()
        .unwrap();
    let err = std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap_or_default();
    assert_ne!(o.status.code(), Some(99), "mount failed");
    assert!(!o.status.success(), "a full disk went unnoticed:\n{err}");
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("error:") && last.contains("No space left on device"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !last.contains("IoError") && !last.contains("Os {"),
        "the disk-full error is in words, not a Rust struct: {last}"
    );
    eprintln!("full disk of {size} bytes: {last}");
    // Epoch 1 is whole in what the disk held, and the run continues on a disk with room.
    assert!(!rows(&keep).is_empty());
    ok(&["train", "--resume", keep.to_str().unwrap()]);
    assert_eq!(rows(&keep).len(), 3);
    let straight = dir.path().join("straight");
    ok(&train_args(&cfg, &straight));
    assert_same_losses(&keep, &straight);
}

/// The resume point carries the EMA's averages and SGD's momentum buffers: a run stopped after
/// its first epoch and resumed computes the second epoch exactly as an uninterrupted run does
/// (the EMA weights are what validation and the checkpoints use).
#[test]
fn resume_is_exact_with_ema_and_sgd_momentum() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth(dir.path(), 12);
    let cfg = common::tiny_config(dir.path(), &data, 2, "ema_decay = 0.9");
    let sets = [
        "--set",
        "optim.name=sgd",
        "--set",
        "optim.momentum=0.9",
        "--set",
        "optim.lr=0.05",
    ];
    let straight = dir.path().join("straight");
    let mut args = train_args(&cfg, &straight);
    args.extend(sets);
    ok(&args);
    let split = dir.path().join("split");
    let mut args = train_args(&cfg, &split);
    args.extend(sets);
    args.extend(["--epochs", "1"]);
    ok(&args);
    ok(&[
        "train",
        "--resume",
        split.to_str().unwrap(),
        "--epochs",
        "2",
    ]);
    let (a, b) = (rows(&straight), rows(&split));
    assert_eq!(a.len(), 2);
    for (x, y) in a.iter().zip(&b) {
        for col in [1, 2, 3, 4] {
            assert_eq!(x[col], y[col], "epoch {} column {col}", x[0]);
        }
    }
    let wa = tch::Tensor::read_safetensors(straight.join("last.safetensors")).unwrap();
    let wb: std::collections::HashMap<String, tch::Tensor> =
        tch::Tensor::read_safetensors(split.join("last.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    for (name, t) in wa {
        let diff = (&t - &wb[&name]).abs().max().double_value(&[]);
        assert!(diff <= 1e-6, "{name} differs by {diff}");
    }
}
