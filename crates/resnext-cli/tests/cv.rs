//! `resnext cv` from the outside: every output file, patient groups that never cross folds
//! (synthetic data and the MSLD photos), the same results from the same seed, a killed run that
//! resumes to the uninterrupted result, folds run one by one and summarised, and bad arguments.

mod common;

use common::{ok, run, stderr, synth, tiny_config};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Synthetic images grouped ten by ten within a class (`checker_000`, `checker_001`, ...).
const GROUPS: &str = r#"--set=data.group_regex="^([a-z]+_\\d{3})""#;

fn cv(cfg: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "cv",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        GROUPS,
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

/// Checks folds.json: every image once, each group in one fold per repeat.
fn check_groups(folds: &serde_json::Value, repeats: usize) -> usize {
    let images = folds["images"].as_array().unwrap();
    for r in 0..repeats {
        let mut fold_of_group: HashMap<&str, u64> = HashMap::new();
        for img in images {
            let g = img["group"].as_str().unwrap();
            let f = img["folds"][r].as_u64().unwrap();
            assert_eq!(
                *fold_of_group.entry(g).or_insert(f),
                f,
                "group {g} crosses folds"
            );
        }
    }
    images.len()
}

/// Checks each fold's split.json: no group in two parts, and its test part is the fold.
fn check_fold_splits(out: &Path, folds: &serde_json::Value, group: impl Fn(&str) -> String) {
    let k = folds["k"].as_u64().unwrap() as usize;
    let images = folds["images"].as_array().unwrap();
    for f in 0..k {
        let split = read_json(&out.join(format!("fold-{f}/split.json")));
        let part = |name: &str| -> HashSet<String> {
            split[name]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_owned())
                .collect()
        };
        let (train, val, test) = (part("train"), part("val"), part("test"));
        let want: HashSet<String> = images
            .iter()
            .filter(|i| i["folds"][0] == f)
            .map(|i| i["path"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(test, want, "fold {f}'s test part is its fold");
        let groups = |s: &HashSet<String>| s.iter().map(|p| group(p)).collect::<HashSet<_>>();
        let (gt, gv, gs) = (groups(&train), groups(&val), groups(&test));
        assert!(!val.is_empty(), "fold {f} has a validation part");
        assert!(
            gt.is_disjoint(&gv) && gt.is_disjoint(&gs) && gv.is_disjoint(&gs),
            "fold {f}"
        );
    }
}

fn setup(dir: &Path, epochs: usize) -> PathBuf {
    let data = synth(dir, 12);
    tiny_config(dir, &data, epochs, "")
}

#[test]
fn cv_writes_every_file_and_the_same_seed_gives_the_same_results() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), 2);
    let out = dir.path().join("cv");
    let table = cv(&cfg, &out, &["--folds", "3"]);
    for line in ["fold-0", "fold-2", "mean", "std", "pooled"] {
        assert!(table.contains(line), "{table}");
    }
    for f in ["folds.json", "oof.csv", "cv.json", "cv.png"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let folds = read_json(&out.join("folds.json"));
    assert_eq!(check_groups(&folds, 1), 48);
    check_fold_splits(&out, &folds, |p| {
        let name = p.rsplit('/').next().unwrap();
        name[..name.len() - 5].to_owned()
    });
    // oof.csv: header, then every image once
    let oof = std::fs::read_to_string(out.join("oof.csv")).unwrap();
    let mut lines = oof.lines();
    assert_eq!(
        lines.next(),
        Some("path,repeat,fold,true,pred,checker,dots,rings,stripes")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 48);
    let paths: HashSet<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(paths.len(), 48);
    for r in &rows {
        assert_eq!(r.len(), 9);
        assert_eq!(r[3], r[0].split('/').next().unwrap(), "true class");
        let p: f64 = r[5..].iter().map(|v| v.parse::<f64>().unwrap()).sum();
        assert!((p - 1.0).abs() < 1e-4);
    }
    // cv.json
    let j = read_json(&out.join("cv.json"));
    assert_eq!(j["folds"].as_array().unwrap().len(), 3);
    for key in [
        "repeat",
        "fold",
        "n",
        "accuracy",
        "macro_precision",
        "macro_recall",
        "macro_f1",
        "roc_auc",
        "ece",
    ] {
        assert!(j["folds"][0].get(key).is_some(), "{key}");
    }
    let n: u64 = j["folds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["n"].as_u64().unwrap())
        .sum();
    assert_eq!(n, 48);
    assert_eq!(j["pooled"]["n"], 48);
    for part in ["mean", "std", "pooled"] {
        assert!(j[part]["accuracy"].is_number(), "{part}");
    }
    // each fold's run is a complete run directory tested on its fold
    let eval = read_json(&out.join("fold-1/eval.json"));
    assert_eq!(eval["split"], "test");
    assert!(out.join("fold-1/best.safetensors").is_file());

    // the same config and seed: the same folds.json and cv.json
    let again = dir.path().join("cv-again");
    cv(&cfg, &again, &["--folds", "3"]);
    for f in ["folds.json", "cv.json", "oof.csv"] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(again.join(f)).unwrap(),
            "{f} differs between two runs"
        );
    }
    // repeats get their own folders and one oof row per image per repeat
    let rep = dir.path().join("cv-repeats");
    cv(
        &cfg,
        &rep,
        &["--folds", "3", "--repeats", "2", "--epochs", "1"],
    );
    assert!(rep.join("repeat-1/fold-2/eval.json").is_file());
    let oof = std::fs::read_to_string(rep.join("oof.csv")).unwrap();
    assert_eq!(oof.lines().count(), 1 + 96);
    check_groups(&read_json(&rep.join("folds.json")), 2);
}

#[test]
fn a_killed_cv_resumes_to_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), 5);
    let whole = dir.path().join("whole");
    cv(&cfg, &whole, &["--folds", "3"]);

    let out = dir.path().join("killed");
    let mut child = common::bin()
        .args([
            "cv",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            GROUPS,
            "--folds",
            "3",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // kill it during fold 1 (fold 0 finished, fold 1 has an epoch)
    let start = Instant::now();
    while !out.join("fold-1/metrics.csv").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "fold 1 never started"
        );
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().ok();
    child.wait().unwrap();
    assert!(out.join("fold-0/eval.json").is_file(), "fold 0 was done");
    assert!(!out.join("cv.json").exists(), "killed before the end");
    let fold0 = std::fs::read(out.join("fold-0/predictions.json")).unwrap();
    let log = cv(&cfg, &out, &["--folds", "3"]);
    assert!(log.contains("pooled"), "{log}");
    assert_eq!(
        std::fs::read(out.join("fold-0/predictions.json")).unwrap(),
        fold0
    );
    for f in ["folds.json", "cv.json", "oof.csv"] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(whole.join(f)).unwrap(),
            "{f}: a resumed cv differs from the uninterrupted one"
        );
    }

    // folds one by one (as a scheduler would), then a summarising call: the same result
    let split = dir.path().join("by-fold");
    for f in ["0", "2", "1"] {
        let o = cv(&cfg, &split, &["--folds", "3", "--fold", f]);
        assert_eq!(split.join("cv.json").exists(), f == "1", "{o}");
    }
    cv(&cfg, &split, &["--folds", "3"]);
    assert_eq!(
        std::fs::read(split.join("cv.json")).unwrap(),
        std::fs::read(whole.join("cv.json")).unwrap()
    );
}

#[test]
fn bad_cv_arguments_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), 1);
    let out = dir.path().join("cv");
    let c = cfg.to_str().unwrap();
    let o = out.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["cv", "--config", c, "--out", o, GROUPS, "--folds", "1"],
            "2 folds",
        ),
        (
            &[
                "cv", "--config", c, "--out", o, GROUPS, "--folds", "3", "--fold", "3",
            ],
            "--fold 3",
        ),
        (
            &["cv", "--config", c, "--out", o, GROUPS, "--folds", "9"],
            "groups",
        ),
        (
            &["cv", "--config", c, "--out", o, GROUPS, "--val", "1.5"],
            "validation fraction",
        ),
    ];
    for (args, needle) in cases {
        let r = run(args);
        assert!(!out.exists(), "{args:?} wrote {}", out.display());
        let e = stderr(&r);
        assert!(!r.status.success(), "{args:?}");
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        assert!(e.contains(needle), "{args:?}: {e}");
    }
    // the same folder with other settings is refused, not mixed
    cv(&cfg, &out, &["--folds", "3", "--fold", "0"]);
    let r = run(&["cv", "--config", c, "--out", o, GROUPS, "--folds", "4"]);
    assert!(!r.status.success());
    assert!(stderr(&r).contains("folds.json"), "{}", stderr(&r));
}

/// Asserts a failed command with one error line that names every needle.
fn refused(args: &[&str], needles: &[&str]) {
    let r = run(args);
    let e = stderr(&r);
    assert!(!r.status.success(), "{args:?} succeeded");
    let errors: Vec<&str> = e.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{args:?}: {e}");
    for n in needles {
        assert!(errors[0].contains(n), "{args:?}: `{n}` not in {e}");
    }
}

#[test]
fn a_rerun_with_other_settings_is_refused_and_a_bad_setup_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), 1);
    let out = dir.path().join("cv");
    let (c, o) = (cfg.to_str().unwrap(), out.to_str().unwrap());
    cv(
        &cfg,
        &out,
        &["--folds", "3", "--fold", "0", "--val", "0.125"],
    );
    // the fold's config says the validation share it used
    let fold_cfg = std::fs::read_to_string(out.join("fold-0/config.toml")).unwrap();
    assert!(fold_cfg.contains("val = 0.125"), "{fold_cfg}");
    let recorded = std::fs::read(out.join("cv.toml")).unwrap();
    let base = ["cv", "--config", c, "--out", o, GROUPS, "--folds", "3"];
    let cases: &[(&[&str], &str)] = &[
        (&["--val", "0.125", "--set", "optim.name=sgd"], "optim.name"),
        (&["--val", "0.125", "--set", "optim.lr=0.5"], "optim.lr"),
        (&["--val", "0.125", "--epochs", "2"], "train.epochs"),
        (&["--val", "0.1"], "data.val"),
        (&["--val", "0.125", "--init-weights", c], "init_weights"),
    ];
    for (extra, key) in cases {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        refused(&args, &["cv.toml", key]);
    }
    // the same --init-weights path with other content is other settings too
    let w = dir.path().join("w.safetensors");
    std::fs::write(&w, b"first").unwrap();
    let with_w = dir.path().join("with-w");
    let ww = with_w.to_str().unwrap();
    let mut first = vec!["cv", "--config", c, "--out", ww, GROUPS, "--folds", "3"];
    first.extend(["--init-weights", w.to_str().unwrap(), "--fold", "0"]);
    let _ = run(&first); // the bytes are not weights: the fold fails after cv.toml is written
    assert!(with_w.join("cv.toml").exists());
    std::fs::write(&w, b"second").unwrap();
    first.truncate(first.len() - 2);
    refused(&first, &["cv.toml", "init_weights_fnv64"]);
    assert!(
        !out.join("fold-1").exists(),
        "a refused rerun trained a fold"
    );
    assert_eq!(std::fs::read(out.join("cv.toml")).unwrap(), recorded);
    // the same settings continue, on whatever device
    cv(
        &cfg,
        &out,
        &[
            "--folds", "3", "--fold", "1", "--val", "0.125", "--device", "cpu",
        ],
    );
    assert!(out.join("fold-1/eval.json").is_file());

    // a validation share no fold can take: refused before anything is written
    let fresh = dir.path().join("fresh");
    let f = fresh.to_str().unwrap();
    refused(
        &[
            "cv", "--config", c, "--out", f, GROUPS, "--folds", "3", "--val", "0.999",
        ],
        &[],
    );
    assert!(!fresh.exists(), "a refused cv left {}", fresh.display());
}

#[test]
fn a_class_held_by_one_patient_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), 1);
    let data = dir.path().join("synth data");
    // `dots_0010` and `dots_0011` are the second group of `dots`: without them, every `dots`
    // image is one patient's
    for i in [10, 11] {
        std::fs::remove_file(data.join(format!("dots/dots_{i:04}.png"))).unwrap();
    }
    let out = dir.path().join("cv");
    let (c, o) = (cfg.to_str().unwrap(), out.to_str().unwrap());
    refused(
        &["cv", "--config", c, "--out", o, GROUPS, "--folds", "3"],
        &["class `dots`", "only 1"],
    );
    assert!(!out.exists());
}

#[test]
fn cv_on_the_msld_photos_keeps_each_patient_in_one_fold() {
    let Some(root) = common::shared("datasets/msld-original") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path(), &root, 1, "");
    let out = dir.path().join("cv");
    let o = ok(&[
        "cv",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set=data.group_regex=\"^([^_.]+)\"",
        "--folds",
        "3",
    ]);
    assert!(o.contains("pooled"), "{o}");
    for f in ["folds.json", "oof.csv", "cv.json", "cv.png"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let folds = read_json(&out.join("folds.json"));
    assert_eq!(check_groups(&folds, 1), 228);
    // the patient is the file name up to the first `_` or `.`
    let patient = |p: &str| {
        let name = p.rsplit('/').next().unwrap();
        name.split(['_', '.']).next().unwrap().to_owned()
    };
    for img in folds["images"].as_array().unwrap() {
        assert_eq!(
            img["group"].as_str().unwrap(),
            format!("g:{}", patient(img["path"].as_str().unwrap()))
        );
    }
    check_fold_splits(&out, &folds, patient);
    let j = read_json(&out.join("cv.json"));
    assert_eq!(j["pooled"]["n"], 228);
    assert!(j["pooled"]["roc_auc"].is_number());
}
