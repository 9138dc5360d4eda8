//! `resnext export` from the command line: both formats and their sidecars, and every bad
//! option a one-line error that leaves no file behind.

mod common;

use common::{ok, run, stderr};

#[test]
fn export_writes_both_formats_and_refuses_bad_options_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = common::synth(d, 4);
    let cfg = common::tiny_config(d, &data, 1, "");
    let r = d.join("run");
    let r = r.to_str().unwrap();
    ok(&["train", "--config", cfg.to_str().unwrap(), "--out", r]);
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let onnx = d.join("m.onnx");
    let out = ok(&[
        "export",
        "--run",
        r,
        "--format",
        "onnx",
        "--out",
        &s(&onnx),
        "--fold-bn",
    ]);
    assert!(out.contains("ONNX (4 classes"), "{out}");
    assert!(std::fs::metadata(&onnx).unwrap().len() > 1000);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("m.onnx.json")).unwrap()).unwrap();
    assert_eq!(json["fold_bn"], true);
    assert_eq!(json["opset"], 17);
    let ts = d.join("m.pt");
    ok(&[
        "export",
        "--run",
        r,
        "--format",
        "torchscript",
        "--out",
        &s(&ts),
        "--batch",
        "2",
    ]);
    assert!(tch::CModule::load(&ts).is_ok());
    // a bare weights file: torchvision's tiny fixture
    let fixture = resnext_testkit::fixture("torchvision/tiny_resnext.safetensors");
    let bare = d.join("bare.onnx");
    ok(&[
        "export",
        "--weights",
        &s(&fixture),
        "--arch",
        "custom",
        "--layers",
        "1,1,1,1",
        "--groups",
        "4",
        "--width-per-group",
        "4",
        "--num-classes",
        "3",
        "--image-size",
        "64",
        "--format",
        "onnx",
        "--out",
        &s(&bare),
    ]);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("bare.onnx.json")).unwrap()).unwrap();
    assert_eq!(
        json["classes"],
        serde_json::json!(["class 0", "class 1", "class 2"])
    );
    assert_eq!(json["image_size"], serde_json::json!([64, 64]));
    let weights = d.join("run/best.safetensors");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--run".into(), r.into(), "--format".into(), "tflite".into()],
            "tflite",
        ),
        (
            vec![
                "--run".into(),
                r.into(),
                "--format".into(),
                "onnx".into(),
                "--opset".into(),
                "99".into(),
            ],
            "opset 99",
        ),
        (
            vec![
                "--run".into(),
                r.into(),
                "--format".into(),
                "onnx".into(),
                "--batch".into(),
                "0".into(),
            ],
            "batch",
        ),
        (
            vec![
                "--run".into(),
                s(&d.join("missing")),
                "--format".into(),
                "onnx".into(),
            ],
            "missing",
        ),
        (
            vec![
                "--run".into(),
                r.into(),
                "--format".into(),
                "torchscript".into(),
                "--opset".into(),
                "13".into(),
            ],
            "--opset",
        ),
    ];
    for (mut args, needle) in cases {
        let target = d.join("bad.onnx");
        if !args.contains(&"--out".to_string()) {
            args.extend(["--out".into(), s(&target)]);
        }
        let mut full = vec!["export".to_string()];
        full.extend(args);
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let o = run(&refs);
        let err = stderr(&o);
        assert!(!o.status.success(), "{full:?}");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(lines.len(), 1, "{full:?}: {err}");
        assert!(lines[0].contains(needle), "{full:?}: {err}");
        assert!(!target.exists(), "{full:?} left a file");
    }
    // an unwritable --out, and an --out that is the input
    let o = run(&[
        "export",
        "--run",
        r,
        "--format",
        "onnx",
        "--out",
        &s(&d.join("nowhere/m.onnx")),
    ]);
    assert_eq!(
        stderr(&o)
            .lines()
            .filter(|l| l.starts_with("error"))
            .count(),
        1,
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("cannot write"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("frame #"), "{}", stderr(&o));
    let before = std::fs::read(&weights).unwrap();
    let o = run(&[
        "export",
        "--run",
        r,
        "--format",
        "onnx",
        "--out",
        &s(&weights),
    ]);
    assert!(stderr(&o).contains("overwrite"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&weights).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
