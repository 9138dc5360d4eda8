//! `resnext train --positive C --operating-point SPEC`: at the end of training the threshold is
//! chosen on the validation part with the best checkpoint (recomputed here from `predict`'s
//! probabilities of the validation images), reported on the test part (never where it was
//! chosen), stored in best.json, and used by `predict`; without a test part it is only chosen
//! and stored; a bad class or criterion is refused before any epoch.

mod common;

use common::{ok, run, stderr, synth, tiny_config};
use std::path::Path;

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// The probability of class 1 (`dots`) and whether the image is a `dots` photo, for each of the
/// split's `part` images, by `predict --json` with the best checkpoint.
fn dots_scores(run_dir: &Path, data: &Path, part: &str) -> Vec<(f64, bool)> {
    let split = read_json(&run_dir.join("split.json"));
    let paths: Vec<String> = split[part]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            data.join(p.as_str().unwrap())
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(!paths.is_empty(), "no {part} images");
    let mut args = vec!["predict", "--run", run_dir.to_str().unwrap(), "--json"];
    args.extend(paths.iter().map(String::as_str));
    ok(&args)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let path = v["path"].as_str().unwrap().to_string();
            (
                v["probs"][1].as_f64().unwrap(),
                path.contains("/dots/") || path.contains("dots_"),
            )
        })
        .collect()
}

/// `sensitivity=0.5` by hand: the highest threshold calling at least half the positives
/// positive, that is the ⌈P/2⌉-th highest positive score.
fn half_sensitivity(scores: &[(f64, bool)]) -> f64 {
    let mut pos: Vec<f64> = scores.iter().filter(|s| s.1).map(|s| s.0).collect();
    pos.sort_by(|a, b| b.total_cmp(a));
    assert!(!pos.is_empty());
    pos[pos.len().div_ceil(2) - 1]
}

#[test]
fn train_chooses_the_operating_point_on_val_and_reports_it_on_test() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 16);
    let cfg = tiny_config(dir.path(), &data, 2, "");
    let c = cfg.to_str().unwrap();
    let r = dir.path().join("run");
    let printed = ok(&[
        "train",
        "--config",
        c,
        "--out",
        r.to_str().unwrap(),
        "--set",
        "data.test=0.25",
        "--positive",
        "dots",
        "--operating-point",
        "sensitivity=0.5",
    ]);
    let split = read_json(&r.join("split.json"));
    let (n_val, n_test) = (
        split["val"].as_array().unwrap().len(),
        split["test"].as_array().unwrap().len(),
    );
    assert!(
        printed.contains("operating point sensitivity=0.5 for `dots`: threshold")
            && printed.contains(&format!(
                "chosen on val ({n_val} images); on test ({n_test} images): sensitivity"
            )),
        "{printed}"
    );
    let op = read_json(&r.join("best.json"))["operating_point"].clone();
    assert_eq!(op["chosen_on"], "val", "{op}");
    assert_eq!(op["chosen_on_images"], n_val, "{op}");
    assert_eq!(op["positive"], "dots", "{op}");
    let threshold = op["threshold"].as_f64().unwrap();
    // the threshold is the validation part's, recomputed from the best checkpoint's predictions
    let val = dots_scores(&r, &data, "val");
    let want = half_sensitivity(&val);
    assert!((threshold - want).abs() < 1e-5, "{threshold} vs {want}");
    // and not the test part's (when the two differ at all)
    let on_test = half_sensitivity(&dots_scores(&r, &data, "test"));
    if (on_test - want).abs() > 1e-4 {
        assert!((threshold - on_test).abs() > 1e-5, "{threshold}");
    }
    // predict decides with it
    let photo = data.join("dots/dots_0000.png");
    let line = ok(&[
        "predict",
        "--run",
        r.to_str().unwrap(),
        "--json",
        photo.to_str().unwrap(),
    ]);
    let p: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(
        p["decision"]["threshold"].as_f64().unwrap(),
        threshold,
        "{p}"
    );

    // no test part: chosen on val and stored, not reported
    let r2 = dir.path().join("no-test");
    let printed = ok(&[
        "train",
        "--config",
        c,
        "--out",
        r2.to_str().unwrap(),
        "--positive",
        "dots",
        "--operating-point",
        "youden",
    ]);
    assert!(
        printed.contains("no test part to report it on"),
        "{printed}"
    );
    let op = read_json(&r2.join("best.json"))["operating_point"].clone();
    assert_eq!(op["chosen_on"], "val", "{op}");
    assert_eq!(op["criterion"], "youden", "{op}");

    // a typo costs no training
    for (class, criterion, said) in [
        ("nope", "youden", "checker, dots, rings, stripes"),
        ("dots", "sensitivity=2", "not in (0, 1]"),
    ] {
        let r3 = dir.path().join(format!("bad-{class}"));
        let o = run(&[
            "train",
            "--config",
            c,
            "--out",
            r3.to_str().unwrap(),
            "--positive",
            class,
            "--operating-point",
            criterion,
        ]);
        assert!(!o.status.success());
        assert!(stderr(&o).contains(said), "{}", stderr(&o));
        assert!(!r3.join("best.safetensors").exists());
        assert!(!r3.join("metrics.csv").exists());
    }
}
