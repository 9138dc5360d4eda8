//! `train.tensorboard = true`: a tiny training run's `tb/` event file read back by the
//! `tensorboard` Python package (`scripts/read_tensorboard.py`, EventAccumulator, in the setup
//! venv): every per-epoch scalar equals `metrics.csv`, one step scalar per optimiser step, the
//! images decode, the hyper-parameters are there. `cv` writes one per fold.

mod common;

use common::{ok, synth, tiny_config};
use std::path::{Path, PathBuf};

/// The setup venv's Python (`.libtorch` is `<venv>/lib/python3.X/site-packages/torch`) when it
/// imports `tensorboard`; else a counted skip.
fn tensorboard_python() -> Option<PathBuf> {
    let lib = Path::new(option_env!("RESNEXT_LIBTORCH_LIB").unwrap_or(""));
    let python = lib
        .join("../../../../..")
        .canonicalize()
        .map(|venv| venv.join("bin/python"))
        .unwrap_or_default();
    let imports = std::process::Command::new(&python)
        .args(["-c", "import tensorboard"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !imports {
        resnext_testkit::skip(
            "needs the setup venv's Python with tensorboard (cargo xtask setup installs it)",
        );
    }
    imports.then_some(python)
}

/// What `scripts/read_tensorboard.py` found in `folder`.
fn read_back(python: &Path, folder: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/read_tensorboard.py");
    let o = std::process::Command::new(python)
        .arg(&script)
        .arg(folder)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "read_tensorboard.py failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The event files of a `tb` folder.
fn event_files(tb: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(tb)
        .unwrap_or_else(|e| panic!("{}: {e}", tb.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("events.out.tfevents."))
        })
        .collect();
    files.sort();
    files
}

/// How far a `metrics.csv` field may be from the exact value: its printed rounding, plus f32's.
fn tolerance(field: &str, value: f64) -> f64 {
    let printed = match (field.find('e'), field.find('.')) {
        // {:.6e}: 6 decimals of the mantissa
        (Some(_), _) => 0.5e-6 * value.abs() * 10.0,
        (None, Some(dot)) => 0.5 * 10f64.powi(-((field.len() - dot - 1) as i32)),
        (None, None) => 0.5,
    };
    printed + value.abs() * f32::EPSILON as f64
}

#[test]
fn tensorboard_events_match_metrics_csv() {
    let Some(python) = tensorboard_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 12);
    let cfg = tiny_config(dir.path(), &data, 2, "tensorboard = true");
    let run = dir.path().join("run");
    ok(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(event_files(&run.join("tb")).len(), 1);
    // a resumed run adds its own file; the steps go on
    ok(&["train", "--resume", run.to_str().unwrap(), "--epochs", "3"]);
    let files = event_files(&run.join("tb"));
    assert_eq!(files.len(), 2, "{files:?}");
    let tb = read_back(&python, &run.join("tb"));
    let scalars = &tb["scalars"];

    // per epoch: every metrics.csv column, as the file prints it
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3);
    for (c, name) in header.iter().enumerate().skip(1) {
        let series = scalars[format!("epoch/{name}")]
            .as_array()
            .unwrap_or_else(|| panic!("no epoch/{name} in {scalars}"));
        assert_eq!(series.len(), rows.len(), "epoch/{name}");
        for (row, point) in rows.iter().zip(series) {
            let (step, got) = (point[0].as_i64().unwrap(), point[1].as_f64().unwrap());
            let want: f64 = row[c].parse().unwrap();
            assert_eq!(step.to_string(), row[0], "epoch/{name}'s step");
            assert!(
                (got - want).abs() <= tolerance(row[c], want),
                "epoch/{name} at epoch {step}: TensorBoard {got}, metrics.csv {want}"
            );
        }
    }
    let ece = scalars["epoch/val_ece"].as_array().unwrap();
    assert_eq!(ece.len(), 3);
    assert!(ece
        .iter()
        .all(|p| (0.0..=1.0).contains(&p[1].as_f64().unwrap())));

    // per step: one of each per optimiser step (36 training images in batches of 8: 5 steps an
    // epoch, none of one image), steps growing across the resume
    let split: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("split.json")).unwrap()).unwrap();
    let train = split["train"].as_array().unwrap().len();
    let per_epoch = train.div_ceil(8) - usize::from(train % 8 == 1);
    for tag in ["train/loss", "train/lr", "train/throughput"] {
        let series = scalars[tag]
            .as_array()
            .unwrap_or_else(|| panic!("no {tag}"));
        assert_eq!(series.len(), 3 * per_epoch, "{tag}");
        let steps: Vec<i64> = series.iter().map(|p| p[0].as_i64().unwrap()).collect();
        assert!(steps.windows(2).all(|w| w[0] < w[1]), "{tag}: {steps:?}");
        assert!(series.iter().all(|p| p[1].as_f64().unwrap() > 0.0), "{tag}");
    }
    let lr = scalars["train/lr"].as_array().unwrap();
    assert!(lr
        .iter()
        .all(|p| (p[1].as_f64().unwrap() - 0.001).abs() < 1e-9));

    // images: the augmented inputs once a session, the confusion matrix each epoch; all decode
    let images = &tb["images"];
    let inputs = images["train/inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 2);
    let cms = images["val/confusion_matrix"].as_array().unwrap();
    assert_eq!(cms.len(), 3);
    for img in inputs.iter().chain(cms) {
        assert_eq!(img["decodes"], true, "{img}");
    }
    // 8 images of 32 px in a 3 x 3 grid with 2 px gaps
    assert_eq!(inputs[0]["width"], 3 * 34 + 2);

    // hyper-parameters: the resolved config, the metrics, a successful end
    let h = &tb["hparams"];
    assert_eq!(h["hparams"]["optim.lr"], 0.001, "{h}");
    assert_eq!(h["hparams"]["train.tensorboard"], true, "{h}");
    assert_eq!(h["hparams"]["model.arch"], "custom", "{h}");
    assert!(h["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "epoch/val_acc"));
    assert_eq!(h["status"], 1, "{h}");
    let text = tb["text"]["config"][0].as_str().unwrap();
    assert!(text.contains("[optim]"), "{text}");
}

#[test]
fn cv_writes_one_event_file_per_fold_and_tb_must_be_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 9);
    let cfg = tiny_config(dir.path(), &data, 1, "tensorboard = true");
    let out = dir.path().join("cv");
    ok(&[
        "cv",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--folds",
        "2",
        "--bootstrap",
        "0",
    ]);
    for fold in ["fold-0", "fold-1"] {
        let files = event_files(&out.join(fold).join("tb"));
        assert_eq!(files.len(), 1, "{fold}: {files:?}");
        let bytes = std::fs::read(&files[0]).unwrap();
        // the first record is the file version event
        let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let first = &bytes[12..12 + len];
        assert!(
            first.windows(13).any(|w| w == b"brain.Event:2"),
            "{fold}: {first:?}"
        );
    }
    // a file where the tb folder goes is refused before training, named
    let run = dir.path().join("refused");
    std::fs::create_dir(&run).unwrap();
    std::fs::write(run.join("tb"), b"not a folder").unwrap();
    let o = common::run(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = common::stderr(&o);
    assert!(
        err.contains("tb") && err.contains("not a directory"),
        "{err}"
    );
    assert_eq!(std::fs::read(run.join("tb")).unwrap(), b"not a folder");
    // and nothing of the run was written beside it
    let left: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["tb"], "{left:?}");
    // an --out that is a file is refused as the run's directory, not as a TensorBoard folder
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"kept").unwrap();
    let o = common::run(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = common::stderr(&o);
    assert!(
        err.contains("a-file") && !err.contains("TensorBoard"),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"kept");
}

#[test]
fn with_accumulation_there_is_one_step_scalar_per_optimiser_step() {
    let Some(python) = tensorboard_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 12);
    let cfg = tiny_config(dir.path(), &data, 2, "tensorboard = true\naccumulate = 2");
    let run = dir.path().join("run");
    ok(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    let split: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("split.json")).unwrap()).unwrap();
    let batches = split["train"].as_array().unwrap().len().div_ceil(8);
    let tb = read_back(&python, &run.join("tb"));
    let steps: Vec<i64> = tb["scalars"]["train/loss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_i64().unwrap())
        .collect();
    // ceil(batches / 2) steps an epoch, each at its last batch
    assert_eq!(steps.len(), 2 * batches.div_ceil(2), "{steps:?}");
    assert_eq!(*steps.last().unwrap(), 2 * batches as i64, "{steps:?}");
}
