//! `resnext cv --checkpoint best|last|swa`: the checkpoint each fold is tested with, recorded in
//! cv.toml (a rerun with another is refused), `swa` only with `train.swa`.

mod common;

use common::{run, stderr, synth, tiny_config, tiny_cv, GROUPS};

fn read_json(p: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn cv_tests_every_fold_with_the_chosen_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 12);
    let cfg = tiny_config(
        dir.path(),
        &data,
        2,
        "swa = { start_epoch = 1, lr = 0.0005 }",
    );
    let out = dir.path().join("cv");
    tiny_cv(&cfg, &out, &["--bootstrap", "0", "--checkpoint", "swa"]);
    for fold in 0..3 {
        let f = out.join(format!("fold-{fold}"));
        assert!(f.join("swa.safetensors").is_file(), "fold {fold}");
        let eval = read_json(&f.join("eval.json"));
        assert_eq!(eval["checkpoint"], "swa", "fold {fold}: {eval}");
        assert_eq!(eval["split"], "test", "fold {fold}");
    }
    let toml = std::fs::read_to_string(out.join("cv.toml")).unwrap();
    assert!(toml.contains("checkpoint = \"swa\""), "{toml}");
    // the page explains the folds with the checkpoint that tested them
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(page.contains("swa weights of epoch"), "{page}");
    assert!(!page.contains("best weights of epoch"), "{page}");

    // the same directory with another checkpoint is refused, naming the key
    let o = run(&[
        "cv",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        GROUPS,
        "--folds",
        "3",
        "--checkpoint",
        "best",
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    // (the warnings before it are the tiny data's few patients)
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("cv.checkpoint = \"swa\""), "{err}");
}

#[test]
fn a_checkpoint_a_fold_cannot_have_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 4);
    let cfg = tiny_config(dir.path(), &data, 1, "");
    for (checkpoint, says) in [("swa", "train.swa"), ("average", "resnext average")] {
        let out = dir.path().join(format!("cv-{checkpoint}"));
        let o = run(&[
            "cv",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            GROUPS,
            "--checkpoint",
            checkpoint,
        ]);
        assert!(!o.status.success(), "{checkpoint}");
        let err = stderr(&o);
        assert!(err.contains("--checkpoint") && err.contains(says), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(!out.exists(), "{checkpoint}: {} was created", out.display());
    }
}
