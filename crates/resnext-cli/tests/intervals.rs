//! Confidence intervals where a metric is printed: `eval` and `cv` report every metric with a
//! 95% bootstrap interval that resamples patients (the run's `group_regex`), reproducible from
//! its seed, stored in `eval.json` and `cv.json`; `--bootstrap 0` leaves them out.

mod common;

use common::{ok, synth, tiny_config, tiny_cv, GROUPS};
use std::path::Path;

fn eval_json(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("eval.json")).unwrap()).unwrap()
}

#[test]
fn eval_reports_patient_bootstrap_intervals_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 24);
    let cfg = tiny_config(dir.path(), &data, 1, "");
    let run = dir.path().join("run");
    let (c, r) = (cfg.to_str().unwrap(), run.to_str().unwrap());
    ok(&["train", "--config", c, "--out", r, GROUPS]);
    let printed = ok(&["eval", "--run", r, "--split", "all", "--bootstrap", "300"]);
    assert!(printed.contains("95% intervals"), "{printed}");
    let e = eval_json(&run);
    let i = &e["intervals"];
    // 96 images of 12 patients (two groups of ten and one of four per class)
    assert_eq!(i["images"], 96, "{i}");
    assert_eq!(i["groups"], 12, "{i}");
    assert_eq!(i["bootstrap"]["n_resamples"], 300);
    let acc = &i["metrics"]["accuracy"];
    let (est, lo, hi) = (
        acc["estimate"].as_f64().unwrap(),
        acc["low"].as_f64().unwrap(),
        acc["high"].as_f64().unwrap(),
    );
    assert!((est - e["accuracy"].as_f64().unwrap()).abs() < 1e-9, "{e}");
    assert!(lo <= est && est <= hi && lo < hi, "{acc}");
    for key in [
        "sensitivity",
        "specificity",
        "ppv",
        "npv",
        "f1",
        "roc_auc",
        "pr_auc",
        "ece",
    ] {
        assert!(i["metrics"].get(key).is_some(), "{key} missing: {i}");
    }
    assert_eq!(i["calibration"].as_array().unwrap().len(), 4, "{i}");
    // the same seed gives the same intervals; another seed other ones
    ok(&["eval", "--run", r, "--split", "all", "--bootstrap", "300"]);
    assert_eq!(eval_json(&run)["intervals"], *i);
    ok(&[
        "eval",
        "--run",
        r,
        "--split",
        "all",
        "--bootstrap",
        "300",
        "--bootstrap-seed",
        "7",
    ]);
    assert_ne!(eval_json(&run)["intervals"], *i);
    // patients, not images: without the grouping the same predictions give narrower intervals
    let ungrouped = dir.path().join("ungrouped");
    ok(&["train", "--config", c, "--out", ungrouped.to_str().unwrap()]);
    ok(&[
        "eval",
        "--run",
        ungrouped.to_str().unwrap(),
        "--split",
        "all",
        "--bootstrap",
        "300",
    ]);
    assert_eq!(eval_json(&ungrouped)["intervals"]["groups"], 96);
    ok(&["eval", "--run", r, "--bootstrap", "0"]);
    assert!(eval_json(&run).get("intervals").is_none());
}

#[test]
fn cv_reports_intervals_over_the_pooled_out_of_fold_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 12);
    let cfg = tiny_config(dir.path(), &data, 1, "");
    let out = dir.path().join("cv");
    let printed = tiny_cv(
        &cfg,
        &out,
        &[
            "--bootstrap",
            "200",
            "--positive",
            "dots",
            "--operating-point",
            "youden",
        ],
    );
    assert!(
        printed.contains("pooled out-of-fold, 95% intervals"),
        "{printed}"
    );
    assert!(printed.contains("cross-fitted"), "{printed}");
    let cv: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("cv.json")).unwrap()).unwrap();
    let i = &cv["pooled"]["intervals"];
    assert_eq!(i["images"], 48, "{i}");
    assert_eq!(i["groups"], 8, "{i}");
    assert!(i["metrics"]["accuracy"]["low"].as_f64().is_some(), "{i}");
    let op = &cv["operating_point"];
    assert_eq!(op["chosen_on"], "out-of-fold", "{op}");
    assert_eq!(op["images"], 48, "{op}");
    assert!(op["threshold"].as_f64().is_some(), "{op}");
}

#[test]
fn an_operating_point_is_chosen_on_validation_reported_elsewhere_and_used() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 16);
    let cfg = tiny_config(dir.path(), &data, 2, "");
    let run = dir.path().join("run");
    let (c, r) = (cfg.to_str().unwrap(), run.to_str().unwrap());
    ok(&[
        "train",
        "--config",
        c,
        "--out",
        r,
        "--set",
        "data.test=0.25",
    ]);
    let args = [
        "eval",
        "--run",
        r,
        "--split",
        "test",
        "--positive",
        "dots",
        "--operating-point",
        "sensitivity=0.5",
        "--pauc-min-tpr",
        "0.8",
        "--bootstrap",
        "200",
    ];
    let printed = ok(&args);
    assert!(
        printed.contains("operating point sensitivity=0.5 for `dots`"),
        "{printed}"
    );
    let e = eval_json(&run);
    let op = &e["operating_point"];
    assert_eq!(op["chosen_on"], "val", "{op}");
    assert_eq!(op["reported_on"], "test", "{op}");
    assert!(op["sensitivity"]["estimate"].as_f64().is_some(), "{op}");
    assert!(
        e["partial_auc"]["pauc"]["estimate"].as_f64().unwrap() <= 0.2 + 1e-9,
        "{e}"
    );
    // stored, and predict decides with it
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("best.json")).unwrap()).unwrap();
    let threshold = sidecar["operating_point"]["threshold"].as_f64().unwrap();
    assert_eq!(threshold, op["threshold"].as_f64().unwrap());
    let photo = data.join("dots/dots_0000.png");
    let line = ok(&["predict", "--run", r, "--json", photo.to_str().unwrap()]);
    let p: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    let d = &p["decision"];
    let prob = p["probs"][1].as_f64().unwrap(); // dots is class 1
    assert_eq!(
        d["positive"].as_bool().unwrap(),
        prob >= threshold - 1e-6,
        "{p}"
    );
    assert_eq!(d["threshold"].as_f64().unwrap(), threshold);
    // never reported on the part it was chosen on
    let mut on_val = args.to_vec();
    on_val[4] = "val";
    let o = common::run(&on_val);
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("--split test"),
        "{}",
        common::stderr(&o)
    );
    // an unknown class is named with the classes
    let o = common::run(&[
        "eval",
        "--run",
        r,
        "--split",
        "test",
        "--positive",
        "nope",
        "--operating-point",
        "youden",
    ]);
    assert!(
        common::stderr(&o).contains("checker, dots, rings, stripes"),
        "{}",
        common::stderr(&o)
    );
}

#[test]
fn two_runs_are_compared_on_the_same_images_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 16);
    let cfg = tiny_config(dir.path(), &data, 1, "");
    let a = dir.path().join("a");
    let c = cfg.to_str().unwrap();
    ok(&[
        "train",
        "--config",
        c,
        "--out",
        a.to_str().unwrap(),
        "--set",
        "data.test=0.25",
    ]);
    // B: the same split, another seed
    let split = a.join("split.json");
    let b = dir.path().join("b");
    ok(&[
        "train",
        "--config",
        c,
        "--out",
        b.to_str().unwrap(),
        "--set",
        &format!("data.split_file={:?}", split.to_str().unwrap()),
        "--set",
        "train.seed=5",
    ]);
    let out = ok(&[
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--positive",
        "dots",
        "--bootstrap",
        "200",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["part"], "test", "{v}");
    assert!(v["images"].as_u64().unwrap() > 0, "{v}");
    let d = &v["accuracy_difference"];
    let diff = v["accuracy_a"].as_f64().unwrap() - v["accuracy_b"].as_f64().unwrap();
    assert!((d["estimate"].as_f64().unwrap() - diff).abs() < 1e-9, "{v}");
    assert!(v["mcnemar"]["p_value"].as_f64().unwrap() <= 1.0, "{v}");
    assert_eq!(v["positive"], "dots");
    // a run on another split is refused, naming the difference
    let other = dir.path().join("other");
    ok(&[
        "train",
        "--config",
        c,
        "--out",
        other.to_str().unwrap(),
        "--set",
        "data.test=0.25",
        "--set",
        "data.split_seed=9",
    ]);
    let o = common::run(&["compare", a.to_str().unwrap(), other.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("parts differ"),
        "{}",
        common::stderr(&o)
    );
}

#[test]
fn subgroups_get_every_metric_with_their_size() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 12);
    let cfg = tiny_config(dir.path(), &data, 1, "");
    let run = dir.path().join("run");
    let r = run.to_str().unwrap();
    ok(&["train", "--config", cfg.to_str().unwrap(), "--out", r]);
    // tone A for even images, B for odd ones; the "rings" class is not listed
    let mut csv = String::from("path,site,tone\n");
    for class in ["checker", "dots", "stripes"] {
        for i in 0..12 {
            let tone = if i % 2 == 0 { "\"A\"" } else { "B" };
            csv += &format!("{class}/{class}_{i:04}.png,arm,{tone}\n");
        }
    }
    let meta = dir.path().join("meta.csv");
    std::fs::write(&meta, csv).unwrap();
    let m = meta.to_str().unwrap();
    let printed = ok(&[
        "eval",
        "--run",
        r,
        "--split",
        "all",
        "--metadata",
        m,
        "--by",
        "tone",
        "--bootstrap",
        "100",
    ]);
    assert!(
        printed.contains("tone = A (18 images, under 20"),
        "{printed}"
    );
    let e = eval_json(&run);
    let groups = e["subgroups"].as_array().unwrap();
    let n: Vec<(String, u64)> = groups
        .iter()
        .map(|g| {
            (
                g["value"].as_str().unwrap().to_string(),
                g["n"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        n,
        [
            ("(not listed)".to_string(), 12),
            ("A".to_string(), 18),
            ("B".to_string(), 18)
        ],
        "{e}"
    );
    assert!(groups.iter().all(|g| g["small"] == true));
    // an unknown column is named with the columns there are
    let o = common::run(&["eval", "--run", r, "--metadata", m, "--by", "skin"]);
    assert!(
        common::stderr(&o).contains("no column `skin` (its columns: path, site, tone)"),
        "{}",
        common::stderr(&o)
    );
}

#[test]
fn binary_intervals_are_of_the_class_named_positive() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 24);
    for c in ["dots", "stripes"] {
        std::fs::remove_dir_all(data.join(c)).unwrap();
    }
    // classes: checker (0), rings (1)
    let cfg = tiny_config(dir.path(), &data, 1, "");
    let run = dir.path().join("run");
    let (c, r) = (cfg.to_str().unwrap(), run.to_str().unwrap());
    ok(&["train", "--config", c, "--out", r, GROUPS]);
    let base = ["eval", "--run", r, "--split", "all", "--bootstrap", "200"];
    let printed = ok(&base);
    assert!(
        printed.contains("positive class `rings` at 0.5"),
        "{printed}"
    );
    let e = eval_json(&run);
    assert_eq!(e["intervals"]["mode"]["positive"], 1, "{}", e["intervals"]);
    let mut named = base.to_vec();
    named.extend(["--positive", "checker", "--pauc-min-tpr", "0.8"]);
    let printed = ok(&named);
    assert!(
        printed.contains("positive class `checker` at 0.5"),
        "{printed}"
    );
    let e = eval_json(&run);
    let i = &e["intervals"];
    assert_eq!(i["mode"]["positive"], 0, "{i}");
    // its sensitivity is checker's recall, its specificity rings' recall
    let recall = |class: &str| {
        e["per_class"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["class"] == class)
            .unwrap()["recall"]
            .as_f64()
            .unwrap()
    };
    for (interval, class) in [("sensitivity", "checker"), ("specificity", "rings")] {
        let est = i["metrics"][interval]["estimate"].as_f64().unwrap();
        let want = recall(class);
        assert!(
            (est - want).abs() < 1e-9,
            "{interval} {est} != {class}'s recall {want}: {e}"
        );
    }
}
