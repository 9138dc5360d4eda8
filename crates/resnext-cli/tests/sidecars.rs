//! A sidecar (`best.json`) is checked field by field on every load: a hand-edited or corrupted
//! temperature, class list, input size, normalisation or architecture is an error naming the file
//! and the field, never a silently different model. `eval --calibrate` refuses a validation part
//! that cannot determine a temperature, and stores nothing then.

mod common;

use common::{ok, run, stderr};
use std::path::{Path, PathBuf};

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Asserts a failed command with exactly one `error` line that names every needle.
fn refused(args: &[&str], needles: &[&str]) {
    let o = run(args);
    let err = stderr(&o);
    assert!(!o.status.success(), "{args:?} succeeded:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "{args:?}: {err}");
    for n in needles {
        assert!(lines[0].contains(n), "{args:?}: `{n}` not in {err}");
    }
}

fn train(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let data = dir.join("synth data");
    if !data.exists() {
        common::synth(dir, 8);
    }
    let cfg = common::tiny_config(dir, &data, 1, "");
    let out = dir.join(name);
    let mut args = vec![
        "train".to_string(),
        "--config".into(),
        s(&cfg),
        "--out".into(),
        s(&out),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&refs);
    out
}

#[test]
fn every_sidecar_field_is_checked_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let r = train(dir.path(), "run", &[]);
    let sidecar = r.join("best.json");
    let good = std::fs::read_to_string(&sidecar).unwrap();
    let photo = s(&dir.path().join("synth data/dots/dots_0000.png"));
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "temperature",
            Box::new(|v| v["temperature"] = (-1.0).into()),
        ),
        ("temperature", Box::new(|v| v["temperature"] = 1e300.into())),
        ("temperature", Box::new(|v| v["temperature"] = 0.0.into())),
        (
            "classes",
            Box::new(|v| v["classes"][1] = v["classes"][0].clone()),
        ),
        ("classes", Box::new(|v| v["classes"][2] = "".into())),
        (
            "image_size",
            Box::new(|v| v["image_size"] = serde_json::json!([0, 0])),
        ),
        (
            "image_size",
            Box::new(|v| v["image_size"] = serde_json::json!([64, 64])),
        ),
        (
            "std",
            Box::new(|v| v["std"] = serde_json::json!([0.0, 0.0, 0.0])),
        ),
        (
            "mean",
            Box::new(|v| v["mean"] = serde_json::json!([9.0, 0.0, 0.0])),
        ),
        (
            "resnet50",
            Box::new(|v| v["model"]["arch"] = "resnet50".into()),
        ),
        (
            "image_size",
            Box::new(|v| {
                v["image_size"] = serde_json::json!([8192, 8192]);
                v["eval_transform"]["resize"] = serde_json::json!([8192, 8192]);
            }),
        ),
        ("classes", Box::new(|v| v["classes"][0] = "a\nb".into())),
        (
            "metrics.val_acc",
            Box::new(|v| v["metrics"]["val_acc"] = 2.0.into()),
        ),
        (
            "metrics.epoch",
            Box::new(|v| v["metrics"]["epoch"] = 7.into()),
        ),
    ];
    let rs = s(&r);
    let unused = dir.path().join("unused.onnx");
    let unused = s(&unused);
    for (field, edit) in &edits {
        let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
        edit(&mut v);
        std::fs::write(&sidecar, serde_json::to_string_pretty(&v).unwrap()).unwrap();
        for args in [
            vec!["predict", "--run", &rs, &photo],
            vec!["eval", "--run", &rs, "--no-write"],
            vec!["export", "--run", &rs, "--format", "onnx", "--out", &unused],
        ] {
            refused(&args, &["best.json", field]);
        }
    }
    assert!(!Path::new(&unused).exists());
    // the untouched sidecar still loads
    std::fs::write(&sidecar, &good).unwrap();
    ok(&["predict", "--run", &rs, &photo]);
}

#[test]
fn calibration_refuses_a_validation_part_that_cannot_fit_a_temperature() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("synth data");
    common::synth(d, 8);
    let classes = r#"["checker","dots","rings","stripes"]"#;
    let all: Vec<String> = ["checker", "dots", "rings", "stripes"]
        .iter()
        .flat_map(|c| (0..8).map(move |i| format!("{c}/{c}_{i:04}.png")))
        .collect();
    let quoted = |v: &[String]| {
        v.iter()
            .map(|p| format!("{p:?}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    // one validation image; then a validation part of one class (dots)
    let one = (all[1..].to_vec(), vec![all[0].clone()]);
    let (dots, rest): (Vec<String>, Vec<String>) =
        all.iter().cloned().partition(|p| p.starts_with("dots/"));
    let one_class = (rest, dots);
    for (name, (train_part, val_part), needle) in [
        ("one-image", one, "1 image"),
        ("one-class", one_class, "1 class"),
    ] {
        let split = d.join(format!("{name}.json"));
        std::fs::write(
            &split,
            format!(
                r#"{{"classes":{classes},"train":[{}],"val":[{}]}}"#,
                quoted(&train_part),
                quoted(&val_part)
            ),
        )
        .unwrap();
        let r = train(
            d,
            name,
            &["--set", &format!("data.split_file={:?}", s(&split))],
        );
        assert!(data.is_dir());
        let before = std::fs::read(r.join("best.json")).unwrap();
        refused(
            &["eval", "--run", &s(&r), "--calibrate"],
            &["--calibrate", needle],
        );
        assert_eq!(std::fs::read(r.join("best.json")).unwrap(), before);
    }
}
