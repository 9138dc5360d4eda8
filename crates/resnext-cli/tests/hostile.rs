//! A hostile user's afternoon: two writers on one run, paths out of the data root, NaN models,
//! outputs over inputs, special files and cycles, non-UTF-8 names, huge requests, and messages
//! that say what is wrong. Each case is a one-line error (or a sane result), never a panic, a
//! hang or a lost file.

mod common;

use common::{ok, run, stderr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Asserts a failed command with exactly one `error` line that contains `needle`.
fn refused(o: &Output, needle: &str) -> String {
    let err = stderr(o);
    assert!(!o.status.success(), "succeeded:\n{err}");
    assert!(
        o.status.code().unwrap_or(99) <= 2,
        "exit {:?}:\n{err}",
        o.status
    );
    assert!(
        !err.contains("panicked") && !err.contains("stack backtrace"),
        "panicked:\n{err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "expected one error line:\n{err}");
    assert!(lines[0].contains(needle), "`{needle}` not in:\n{err}");
    lines[0].to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `train` of `cfg` into `out` with `split` as its split file.
fn train_with_split(cfg: &Path, out: &Path, split: &Path) -> Output {
    run(&[
        "train",
        "--config",
        s(cfg),
        "--out",
        s(out),
        "--set",
        &format!("data.split_file={:?}", s(split)),
    ])
}

/// A finished tiny run on synthetic data: (tempdir, data root, config, run dir).
fn tiny_run(epochs: usize) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth(dir.path(), 6);
    let cfg = common::tiny_config(dir.path(), &data, epochs, "");
    let out = dir.path().join("run");
    ok(&["train", "--config", s(&cfg), "--out", s(&out)]);
    (dir, data, cfg, out)
}

/// Waits (at most two minutes) until a training run in `out` has committed its first epoch.
fn wait_for_first_epoch(out: &Path) {
    let start = Instant::now();
    while !out.join("metrics.csv").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no epoch finished"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a command with a deadline; a hang is a failure, not a stuck test.
fn run_with_deadline(args: &[&str], secs: u64) -> Output {
    let mut child = common::bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > Duration::from_secs(secs) {
            child.kill().ok();
            let out = child.wait_with_output().unwrap();
            panic!("resnext {args:?} hung for {secs} s:\n{}", stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_run_being_written_refuses_other_writers_and_serves_readers() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth(dir.path(), 6);
    let cfg = common::tiny_config(dir.path(), &data, 400, "");
    let out = dir.path().join("busy");
    let mut trainer = Command::new(env!("CARGO_BIN_EXE_resnext"))
        .args(["train", "--config", s(&cfg), "--out", s(&out)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = trainer.id().to_string();
    // wait until the first epoch is committed (readers need its checkpoint)
    wait_for_first_epoch(&out);
    let other = dir.path().join("other.toml");
    std::fs::copy(&cfg, &other).unwrap();
    for args in [
        vec!["train", "--config", s(&other), "--out", s(&out)],
        vec!["train", "--resume", s(&out)],
        vec!["eval", "--run", s(&out)],
        vec!["plot", s(&out)],
    ] {
        let line = refused(&run(&args), "in use by process");
        assert!(
            line.contains(&pid),
            "{args:?}: the holder's pid {pid} is not named: {line}"
        );
    }
    // readers are not blocked
    ok(&[
        "predict",
        "--run",
        s(&out),
        s(&data.join("dots/dots_0000.png")),
    ]);
    ok(&["eval", "--run", s(&out), "--no-write"]);
    trainer.kill().ok();
    trainer.wait().ok();
    // the lock died with its process: writers may go on
    ok(&["eval", "--run", s(&out)]);
    // the resume point may be one epoch ahead of metrics.csv (killed between the two writes)
    let next = common::metrics_rows(&out).len() + 2;
    ok(&["train", "--resume", s(&out), "--epochs", &next.to_string()]);
}

#[test]
fn paths_from_split_files_stay_under_the_data_root() {
    let (dir, data, cfg, out) = tiny_run(1);
    // a secret next to the data, named like an image
    std::fs::copy(
        data.join("dots/dots_0000.png"),
        dir.path().join("secret.png"),
    )
    .unwrap();
    for bad in [
        "dots/../../secret.png",
        "dots/..",
        "/etc/passwd",
        "dots/./dots_0000.png",
    ] {
        let split = dir.path().join("split.json");
        std::fs::write(
            &split,
            format!(
                r#"{{"classes":["checker","dots","rings","stripes"],"train":["{bad}","dots/dots_0001.png"],"val":["dots/dots_0002.png"]}}"#
            ),
        )
        .unwrap();
        refused(
            &train_with_split(&cfg, &dir.path().join("escape"), &split),
            "refused",
        );
    }
    // a hand-edited split.json of a run
    let text = std::fs::read_to_string(out.join("split.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let first = v["val"][0].as_str().unwrap().to_string();
    let class = first.split('/').next().unwrap();
    let edited = text.replacen(&first, &format!("{class}/../../secret.png"), 1);
    std::fs::write(out.join("split.json"), edited).unwrap();
    refused(&run(&["eval", "--run", s(&out)]), "..");
    // a link out of the data root
    #[cfg(unix)]
    {
        std::fs::write(out.join("split.json"), &text).unwrap();
        let victim = data.join(&first);
        std::fs::remove_file(&victim).unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.png"), &victim).unwrap();
        refused(&run(&["eval", "--run", s(&out)]), "outside");
        // unless the run's config asks to follow links
        let cfg_path = out.join("config.toml");
        let text = std::fs::read_to_string(&cfg_path).unwrap();
        assert!(text.contains("follow_links = false"), "{text}");
        let text = text.replace("follow_links = false", "follow_links = true");
        std::fs::write(&cfg_path, text).unwrap();
        ok(&["eval", "--run", s(&out), "--no-write"]);
    }
}

#[test]
fn a_split_with_one_image_in_two_parts_is_refused() {
    let (dir, data, cfg, _out) = tiny_run(1);
    let split = dir.path().join("leak.json");
    std::fs::write(
        &split,
        r#"{"classes":["checker","dots","rings","stripes"],"train":["dots/dots_0001.png","dots/dots_0002.png"],"val":["dots/dots_0001.png"]}"#,
    )
    .unwrap();
    assert!(data.join("dots/dots_0001.png").exists());
    refused(
        &train_with_split(&cfg, &dir.path().join("leak"), &split),
        "one part only",
    );
}

#[test]
fn a_model_with_non_finite_weights_is_not_a_model() {
    let (_dir, data, _cfg, out) = tiny_run(1);
    // break the best weights: every float times NaN
    let weights = out.join("best.safetensors");
    let broken: Vec<(String, tch::Tensor)> = tch::Tensor::read_safetensors(&weights)
        .unwrap()
        .into_iter()
        .map(|(n, t)| {
            let t = if t.is_floating_point() {
                t * f64::NAN
            } else {
                t
            };
            (n, t)
        })
        .collect();
    tch::Tensor::write_safetensors(&broken, &weights).unwrap();
    let img = data.join("dots/dots_0000.png");
    refused(&run(&["predict", "--run", s(&out), s(&img)]), "not finite");
    refused(
        &run(&["predict", "--run", s(&out), "--json", s(&img)]),
        "not finite",
    );
    refused(
        &run(&["eval", "--run", s(&out), "--no-write"]),
        "not finite",
    );
}

#[test]
fn numeric_settings_outside_their_domain_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth(dir.path(), 4);
    let cfg = common::tiny_config(dir.path(), &data, 1, "");
    for (set, key) in [
        ("optim.eps=0", "optim.eps"),
        ("optim.eps=nan", "optim.eps"),
        ("optim.momentum=1", "optim.momentum"),
        ("optim.momentum=-0.5", "optim.momentum"),
        ("optim.weight_decay=inf", "optim.weight_decay"),
        ("schedule.gamma=0", "schedule.gamma"),
        ("schedule.min_lr=-1", "schedule.min_lr"),
        (
            "schedule.warmup_start_factor=0",
            "schedule.warmup_start_factor",
        ),
        ("train.threads=100000", "train.threads"),
        ("data.threads=5000", "data.threads"),
        ("data.eval_batch_size=0", "eval_batch_size"),
        ("train.early_stopping_patience=0", "early_stopping_patience"),
        ("train.label_smoothing=1", "label_smoothing"),
    ] {
        let line = refused(
            &run(&[
                "train",
                "--config",
                s(&cfg),
                "--out",
                s(&dir.path().join("x")),
                "--set",
                set,
            ]),
            key,
        );
        assert!(
            line.contains("--set"),
            "blamed on the file, not the --set: {line}"
        );
    }
    assert!(!dir.path().join("x").join("metrics.csv").exists());
}

#[test]
fn outputs_never_overwrite_inputs_and_conflicting_flags_are_refused() {
    let (dir, data, cfg, out) = tiny_run(1);
    let photo = dir.path().join("photo.png");
    std::fs::copy(data.join("dots/dots_0000.png"), &photo).unwrap();
    let before = std::fs::read(&photo).unwrap();
    refused(
        &run(&["predict", "--run", s(&out), "--cam", s(&photo), s(&photo)]),
        "overwrite",
    );
    let same = dir.path().join(".").join("photo.png");
    refused(
        &run(&["predict", "--run", s(&out), "--cam", s(&same), s(&photo)]),
        "overwrite",
    );
    assert_eq!(std::fs::read(&photo).unwrap(), before);
    // a generator refuses a non-empty target unless told --force
    let checker = std::fs::read(data.join("checker/checker_0000.png")).unwrap();
    refused(
        &run(&[
            "data",
            "synth",
            "--out",
            s(&data),
            "--per-class",
            "2",
            "--size",
            "16",
        ]),
        "not empty",
    );
    assert_eq!(
        std::fs::read(data.join("checker/checker_0000.png")).unwrap(),
        checker
    );
    // --resume takes --epochs and --device only
    let other = dir.path().join("elsewhere");
    refused(
        &run(&["train", "--resume", s(&out), "--out", s(&other)]),
        "--out",
    );
    refused(
        &run(&["train", "--resume", s(&out), "--config", s(&cfg)]),
        "--config",
    );
    assert!(!other.exists());
    let help = ok(&["train", "--help"]);
    assert!(
        help.contains("--resume") && help.contains("--epochs and --device"),
        "{help}"
    );
}

#[cfg(unix)]
#[test]
fn fifos_link_loops_and_links_between_classes() {
    let (dir, data, _cfg, out) = tiny_run(1);
    let root = dir.path().join("special");
    std::fs::create_dir_all(root.join("a")).unwrap();
    std::fs::create_dir_all(root.join("b")).unwrap();
    std::fs::copy(data.join("dots/dots_0000.png"), root.join("a/one.png")).unwrap();
    std::fs::copy(data.join("dots/dots_0001.png"), root.join("b/two.png")).unwrap();
    let fifo = root.join("a/pipe.png");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    std::os::unix::fs::symlink(root.join("a"), root.join("a/loop")).unwrap();
    // no hang, the FIFO reported as skipped with its kind
    let o = run_with_deadline(&["data", "check", "--root", s(&root)], 60);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = common::stdout(&o);
    assert!(text.contains("fifo") && text.contains("pipe.png"), "{text}");
    let o = run_with_deadline(&["data", "stats", "--root", s(&root)], 60);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(common::stdout(&o).contains("images: 2"));
    let o = run_with_deadline(
        &[
            "data",
            "bench",
            "--root",
            s(&root),
            "--image-size",
            "16",
            "--batch-size",
            "2",
        ],
        60,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // predict on the folder: each image once, the FIFO skipped, the loop walked once
    let o = run_with_deadline(&["predict", "--run", s(&out), "--json", s(&root)], 60);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        common::stdout(&o).lines().count(),
        2,
        "{}",
        common::stdout(&o)
    );
    assert!(stderr(&o).contains("fifo"));
    refused(
        &run_with_deadline(&["predict", "--run", s(&out), s(&fifo)], 60),
        "not a regular file",
    );
    // a folder of class b linked into class a: the same file under two classes
    std::os::unix::fs::symlink(root.join("b"), root.join("a/from-b")).unwrap();
    refused(
        &run_with_deadline(&["data", "check", "--root", s(&root)], 60),
        "two classes",
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_file_name_that_is_not_utf8_is_an_error_naming_it() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth(dir.path(), 4);
    let name = std::ffi::OsStr::from_bytes(b"photo\xff.png");
    std::fs::copy(
        data.join("dots/dots_0000.png"),
        data.join("dots").join(name),
    )
    .unwrap();
    refused(
        &run(&["data", "check", "--root", s(&data)]),
        "not valid UTF-8",
    );
    let cfg = common::tiny_config(dir.path(), &data, 1, "");
    refused(
        &run(&[
            "train",
            "--config",
            s(&cfg),
            "--out",
            s(&dir.path().join("r")),
        ]),
        "not valid UTF-8",
    );
}

#[test]
fn huge_requests_and_mismatched_files_are_one_line_errors() {
    refused(
        &run(&["summary", "--num-classes", "10000000"]),
        "parameters",
    );
    refused(
        &run(&[
            "summary",
            "--arch",
            "custom",
            "--layers",
            "1,1,1,1",
            "--groups",
            "4096",
            "--width-per-group",
            "4096",
        ]),
        "parameters",
    );
    let (dir, data, _cfg, out) = tiny_run(1);
    let img = data.join("dots/dots_0000.png");
    // a sidecar that lists fewer classes than the model has outputs
    let sidecar = out.join("best.json");
    let text = std::fs::read_to_string(&sidecar).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["classes"] = serde_json::json!(["checker", "dots"]);
    std::fs::write(&sidecar, v.to_string()).unwrap();
    refused(
        &run(&["predict", "--run", s(&out), "--top-k", "4", s(&img)]),
        "classes",
    );
    std::fs::write(&sidecar, &text).unwrap();
    ok(&["predict", "--run", s(&out), "--top-k", "9", s(&img)]);
    // a resume checkpoint whose shapes do not match the config
    let cfg_path = out.join("config.toml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(
        &cfg_path,
        cfg.replace("width_per_group = 4", "width_per_group = 8"),
    )
    .unwrap();
    let line = refused(
        &run(&["train", "--resume", s(&out), "--epochs", "3"]),
        "shape",
    );
    assert!(line.len() < 400, "{line}");
    drop(dir);
}

#[test]
fn messages_say_what_is_wrong() {
    let (dir, _data, cfg, out) = tiny_run(2);
    refused(
        &run(&[
            "eval",
            "--run",
            s(&out),
            "--data",
            s(&dir.path().join("nonexistent")),
        ]),
        "does not exist",
    );
    refused(
        &run(&["train", "--resume", s(&out), "--epochs", "1"]),
        "already finished 2",
    );
    refused(
        &run(&[
            "train",
            "--config",
            s(&cfg),
            "--out",
            s(&dir.path().join("b")),
            "--batch-size",
            "0",
        ]),
        "--batch-size",
    );
    refused(
        &run(&["predict", "--run", s(&out), "--device", "cuda", s(&cfg)]),
        "cuda",
    );
    let line = refused(
        &run(&[
            "train",
            "--config",
            s(&cfg),
            "--out",
            s(&dir.path().join("c")),
            "--set",
            "data.mix={mixup_alpha=-1}",
        ]),
        "data.mix.mixup_alpha",
    );
    assert!(!line.contains("MixConfig") && !line.contains('{'), "{line}");
}

/// Without a GPU, `--device cuda` either loads libtorch's CUDA library and says that no device
/// or driver was found (the CUDA install), or says in one line that CUDA support is not
/// installed and how to install it (the CPU-only install), naming a library that is indeed
/// missing next to libtorch.
#[test]
fn cuda_is_loaded_and_reports_a_missing_device() {
    let mut args = vec!["bench", "eval"];
    args.extend(common::TINY_ARCH);
    args.extend([
        "--image-size",
        "32",
        "--batch",
        "2",
        "--steps",
        "1",
        "--device",
        "cuda",
    ]);
    let o = run(&args);
    if o.status.success() {
        // a machine with a GPU: CUDA works, which is what the message is about
        assert!(
            common::stdout(&o).contains("Cuda(0)"),
            "{}",
            common::stdout(&o)
        );
        return;
    }
    let line = common::stderr(&o);
    if line.contains("CUDA support is not installed") {
        let line = refused(&o, "cargo xtask setup --cuda");
        // the library it names is not in the install (wheels put CUDA in nvidia/*/lib)
        let lib = line
            .split_whitespace()
            .find(|w| w.starts_with("lib") && w.contains(".so"))
            .unwrap_or_else(|| panic!("no library named: {line}"))
            .trim_end_matches(',');
        let torch_lib = std::path::PathBuf::from(option_env!("RESNEXT_LIBTORCH_LIB").unwrap_or(""));
        let nvidia = torch_lib.join("../../nvidia");
        let found = std::fs::read_dir(&nvidia)
            .into_iter()
            .flatten()
            .flatten()
            .any(|d| d.path().join("lib").join(lib).exists())
            || torch_lib.join(lib).exists();
        assert!(!found, "{lib} is installed, yet: {line}");
    } else {
        refused(
            &o,
            "CUDA support is loaded, but no CUDA device or driver was found",
        );
    }
}

#[cfg(unix)]
#[test]
fn sigint_says_how_to_resume_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth(dir.path(), 6);
    let cfg = common::tiny_config(dir.path(), &data, 400, "");
    let out = dir.path().join("interrupted");
    let child = Command::new(env!("CARGO_BIN_EXE_resnext"))
        .args(["train", "--config", s(&cfg), "--out", s(&out)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_first_epoch(&out);
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("--resume") && err.contains(s(&out)), "{err}");
    // the resume point may be one epoch ahead of metrics.csv (killed between the two writes)
    let next = common::metrics_rows(&out).len() + 2;
    ok(&["train", "--resume", s(&out), "--epochs", &next.to_string()]);
}

/// Files named by flags are opened only when they are regular files; outputs may not go into
/// the dataset; oversized requests are refused before anything is allocated.
#[cfg(unix)]
#[test]
fn fifos_as_inputs_outputs_in_the_data_and_oversized_requests() {
    let (dir, data, cfg, out) = tiny_run(1);
    let fifo = dir.path().join("config.toml");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    refused(
        &run_with_deadline(
            &[
                "train",
                "--config",
                s(&fifo),
                "--out",
                s(&dir.path().join("f")),
            ],
            60,
        ),
        "not a regular file",
    );
    let weights = dir.path().join("w.safetensors");
    assert!(Command::new("mkfifo")
        .arg(&weights)
        .status()
        .unwrap()
        .success());
    let mut args = vec!["predict", "--weights", s(&weights), "--num-classes", "4"];
    args.extend(common::TINY_ARCH);
    args.push(s(&cfg));
    refused(&run_with_deadline(&args, 60), "not a regular file");
    // outputs inside the data root
    refused(
        &run(&[
            "data",
            "split",
            "--root",
            s(&data),
            "--out",
            s(&data.join("dots/split.json")),
        ]),
        "inside the data root",
    );
    refused(
        &run(&[
            "train",
            "--config",
            s(&cfg),
            "--out",
            s(&data.join("dots/run")),
        ]),
        "inside the data root",
    );
    assert!(!data.join("dots/run").exists() && !data.join("dots/split.json").exists());
    // oversized requests
    let mut args = vec!["bench", "eval", "--batch", "100000"];
    args.extend(common::TINY_ARCH);
    refused(&run(&args), "--batch");
    refused(
        &run(&["data", "bench", "--root", s(&data), "--threads", "100000"]),
        "threads",
    );
    ok(&[
        "predict",
        "--run",
        s(&out),
        s(&data.join("dots/dots_0000.png")),
    ]);
}

#[test]
fn predict_does_not_follow_links_out_of_its_folder() {
    let (dir, data, _cfg, out) = tiny_run(1);
    let folder = dir.path().join("two");
    std::fs::create_dir(&folder).unwrap();
    for i in [0, 1] {
        std::fs::copy(
            data.join(format!("dots/dots_000{i}.png")),
            folder.join(format!("{i}.png")),
        )
        .unwrap();
    }
    let up = folder.join("up");
    std::os::unix::fs::symlink("..", &up).unwrap();
    let o = run(&["predict", "--run", s(&out), "--json", s(&folder)]);
    refused(&o, "outside");
    // a link that stays inside is followed; asked for, links out are followed too
    std::fs::remove_file(&up).unwrap();
    std::os::unix::fs::symlink("0.png", folder.join("same.png")).unwrap();
    let lines = ok(&["predict", "--run", s(&out), "--json", s(&folder)]);
    assert_eq!(lines.lines().count(), 2, "{lines}");
    std::os::unix::fs::symlink(&data, folder.join("data")).unwrap();
    let lines = ok(&[
        "predict",
        "--run",
        s(&out),
        "--json",
        "--follow-links",
        s(&folder),
    ]);
    assert!(lines.lines().count() > 2, "{lines}");
}

#[test]
fn a_closed_pipe_ends_the_process_quietly_and_batch_sizes_are_bounded() {
    let (_dir, data, _cfg, out) = tiny_run(1);
    let mut child = common::bin()
        .args(["predict", "--run", s(&out), s(&data)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // the reader goes away before the first line (as `| head -0` does)
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(o.status.code(), Some(101), "{err}");
    for flag in ["0", "5000"] {
        refused(
            &run(&["predict", "--run", s(&out), "--batch-size", flag, s(&data)]),
            "batch size",
        );
        refused(
            &run(&["eval", "--run", s(&out), "--batch-size", flag]),
            "batch size",
        );
    }
}
