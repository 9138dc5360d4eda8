//! `resnext compare A B` on two cross-validation directories: their pooled out-of-fold
//! predictions paired by image, patient-bootstrap intervals of the paired differences, DeLong and
//! McNemar; folds.json that differ (classes, seed, an image's fold) and a run against a cv
//! directory refused, naming the difference.

mod common;

use common::{ok, run, stderr, synth, tiny_config, tiny_cv};
use std::path::Path;

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn cv(cfg: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["--bootstrap", "0"];
    args.extend_from_slice(extra);
    tiny_cv(cfg, out, &args);
}

/// A copy of cv directory `from` (folds.json, cv.json and every fold's predictions.json) at
/// `to`, its folds.json changed by `edit`.
fn edited_copy(from: &Path, to: &Path, edit: impl Fn(&mut serde_json::Value)) {
    for f in 0..3 {
        let fold = to.join(format!("fold-{f}"));
        std::fs::create_dir_all(&fold).unwrap();
        let p = format!("fold-{f}/predictions.json");
        std::fs::copy(from.join(&p), to.join(&p)).unwrap();
    }
    let mut folds = read_json(&from.join("folds.json"));
    edit(&mut folds);
    std::fs::write(to.join("folds.json"), folds.to_string()).unwrap();
}

fn refused(a: &Path, b: &Path) -> String {
    let o = run(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    e
}

#[test]
fn two_cross_validations_with_the_same_folds_are_compared_image_by_image() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 12);
    let cfg = tiny_config(dir.path(), &data, 1, "");
    let (a, b) = (dir.path().join("cv-a"), dir.path().join("cv-b"));
    cv(&cfg, &a, &[]);
    // B: the same folds (data, --folds, split seed, grouping), another training seed
    cv(&cfg, &b, &["--set", "train.seed=5"]);
    assert_eq!(
        read_json(&a.join("folds.json")),
        read_json(&b.join("folds.json"))
    );
    let (sa, sb) = (a.to_str().unwrap(), b.to_str().unwrap());
    let args = [
        "compare",
        sa,
        sb,
        "--positive",
        "dots",
        "--bootstrap",
        "300",
        "--json",
    ];
    let out = ok(&args);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["part"], "out-of-fold", "{v}");
    // every image once (one repeat), 8 patients (two of ten and one of four per class)
    assert_eq!(v["images"], 48, "{v}");
    assert_eq!(v["groups"], 8, "{v}");
    // paired by image: each side's accuracy is its own cv's pooled accuracy
    let pooled = |d: &Path| {
        read_json(&d.join("cv.json"))["pooled"]["accuracy"]
            .as_f64()
            .unwrap()
    };
    let (acc_a, acc_b) = (
        v["accuracy_a"].as_f64().unwrap(),
        v["accuracy_b"].as_f64().unwrap(),
    );
    assert!((acc_a - pooled(&a)).abs() < 1e-9, "{v}");
    assert!((acc_b - pooled(&b)).abs() < 1e-9, "{v}");
    let d = &v["accuracy_difference"];
    assert!(
        (d["estimate"].as_f64().unwrap() - (acc_a - acc_b)).abs() < 1e-9,
        "{v}"
    );
    assert_eq!(d["resamples_used"], 300, "{v}");
    assert!(
        d["low"].as_f64().unwrap() <= d["high"].as_f64().unwrap(),
        "{v}"
    );
    let m = &v["mcnemar"];
    let (only_a, only_b) = (m["b"].as_u64().unwrap(), m["c"].as_u64().unwrap());
    // the discordant images account for the accuracy difference exactly
    assert!(
        ((only_a as f64 - only_b as f64) / 48.0 - (acc_a - acc_b)).abs() < 1e-9,
        "{v}"
    );
    assert_eq!(v["positive"], "dots");
    if let Some(delong) = v["delong"].as_object() {
        let auc = v["roc_auc_difference"]["estimate"].as_f64().unwrap();
        assert!(
            (delong["difference"].as_f64().unwrap() - auc).abs() < 1e-9,
            "{v}"
        );
    }
    // the same seed gives the same intervals
    assert_eq!(ok(&args), out);
    // the printed form
    let printed = ok(&["compare", sa, sb, "--bootstrap", "100"]);
    assert!(
        printed.contains("on the out-of-fold predictions: 48 images of 8 patients"),
        "{printed}"
    );

    // other folds.json: named
    let c = dir.path().join("cv-c");
    edited_copy(&b, &c, |f| f["seed"] = serde_json::json!(99));
    let e = refused(&a, &c);
    assert!(e.contains("seed"), "{e}");
    let c2 = dir.path().join("cv-c2");
    edited_copy(&b, &c2, |f| {
        let img = &mut f["images"][0];
        let fold = img["folds"][0].as_u64().unwrap();
        img["folds"][0] = serde_json::json!((fold + 1) % 3);
    });
    let e = refused(&a, &c2);
    assert!(e.contains("test fold(s)"), "{e}");
    let c3 = dir.path().join("cv-c3");
    edited_copy(&b, &c3, |f| f["classes"][0] = serde_json::json!("squares"));
    let e = refused(&a, &c3);
    assert!(e.contains("other classes") && e.contains("squares"), "{e}");
    // a run against a cv directory
    let e = refused(&a, &b.join("fold-0"));
    assert!(e.contains("is a cross-validation directory"), "{e}");
    let e = refused(&b.join("fold-0"), &a);
    assert!(e.contains("is a cross-validation directory"), "{e}");
}
