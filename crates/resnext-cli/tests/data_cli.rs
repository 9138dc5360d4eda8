//! `resnext data check|split|stats|bench` on generated folders.

mod common;

use common::{ok, run, stderr, stdout};

#[test]
fn check_lists_classes_and_bad_files_and_fails_on_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::synth(dir.path(), 3);
    let good = ok(&["data", "check", "--root", root.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&good).unwrap();
    assert_eq!(v["classes"].as_array().unwrap().len(), 4);
    assert_eq!(
        v["classes"][0],
        serde_json::json!({"name": "checker", "count": 3})
    );
    // unusual but valid kinds are not bad
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../resnext-data/tests/data");
    for f in [
        "cmyk.jpg",
        "gray16.png",
        "gray.png",
        "palette.png",
        "exif_rot6.jpg",
        "rgba.png",
    ] {
        std::fs::copy(fixtures.join(f), root.join("dots").join(f)).unwrap();
    }
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "data",
        "check",
        "--root",
        root.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(v["classes"][1]["count"], 9);
    assert_eq!(v["bad"], serde_json::json!([]));
    std::fs::write(root.join("rings/broken.jpg"), b"not a jpeg").unwrap();
    std::fs::write(root.join("rings/empty.png"), b"").unwrap();
    let o = run(&["data", "check", "--root", root.to_str().unwrap(), "--json"]);
    assert!(!o.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let bad: Vec<String> = v["bad"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(bad, vec!["rings/broken.jpg", "rings/empty.png"]);
    assert!(v["bad"][0]["reason"].as_str().unwrap().len() > 3);
}

#[test]
fn split_writes_json_that_train_can_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::synth(dir.path(), 10);
    let out = dir.path().join("split.json");
    let o = ok(&[
        "data",
        "split",
        "--root",
        root.to_str().unwrap(),
        "--val",
        "0.2",
        "--test",
        "0.1",
        "--seed",
        "4",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.contains("train 28 / val 8 / test 4"), "{o}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["classes"].as_array().unwrap().len(), 4);
    let cfg = common::tiny_config(dir.path(), &root, 1, "");
    let run_dir = dir.path().join("r");
    ok(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run_dir.to_str().unwrap(),
        "--set",
        &format!("data.split_file={:?}", out.to_str().unwrap()),
    ]);
    let used: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("split.json")).unwrap())
            .unwrap();
    assert_eq!(used, v);
}

#[test]
fn stats_and_bench_report_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::synth(dir.path(), 4);
    let s = ok(&["data", "stats", "--root", root.to_str().unwrap()]);
    assert!(s.contains("mean = [") && s.contains("std = ["), "{s}");
    for t in ["train", "eval"] {
        let b = ok(&[
            "data",
            "bench",
            "--root",
            root.to_str().unwrap(),
            "--transform",
            t,
            "--threads",
            "1",
            "--image-size",
            "32",
        ]);
        let last = b.lines().last().unwrap();
        let n: f64 = last
            .strip_prefix("throughput: ")
            .unwrap()
            .strip_suffix(" img/s")
            .unwrap()
            .parse()
            .unwrap();
        assert!(n > 0.0);
    }
    let o = run(&[
        "data",
        "bench",
        "--root",
        root.to_str().unwrap(),
        "--transform",
        "fancy",
    ]);
    assert!(!o.status.success() && stderr(&o).contains("fancy"));
}

/// Without a terminal, long commands report a line at each quarter (bars need a terminal).
#[test]
fn long_commands_report_progress_by_quarters_without_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth(dir.path(), 8);
    let root = data.to_str().unwrap();
    for (args, label) in [
        (vec!["data", "check", "--root", root], "checking"),
        (vec!["data", "stats", "--root", root], "measuring"),
        (
            vec![
                "data",
                "bench",
                "--root",
                root,
                "--image-size",
                "32",
                "--batch-size",
                "4",
            ],
            "decoding",
        ),
    ] {
        let o = common::run(&args);
        assert!(o.status.success(), "{args:?}: {}", common::stderr(&o));
        let err = common::stderr(&o);
        let quarters: Vec<&str> = err.lines().filter(|l| l.starts_with(label)).collect();
        assert_eq!(quarters.len(), 4, "{args:?}:\n{err}");
        assert!(quarters[3].ends_with("(100%)"), "{args:?}:\n{err}");
    }
}
