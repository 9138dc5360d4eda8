//! `resnext eval --calibrate`: a temperature fitted on the validation part lowers its NLL, is
//! stored in the sidecar, and `predict` then answers `softmax(logits / T)`. `eval` reports the
//! ECE and `plot` draws the reliability diagram.

mod common;

use common::{ok, synth, tiny_config};

#[test]
fn a_fitted_temperature_lowers_the_validation_nll_and_predict_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 8);
    let cfg = tiny_config(dir.path(), &data, 3, "");
    let run = dir.path().join("run");
    let r = run.to_str().unwrap();
    ok(&["train", "--config", cfg.to_str().unwrap(), "--out", r]);
    let report = ok(&["eval", "--run", r]);
    assert!(report.contains("ECE "), "{report}");
    let eval: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("eval.json")).unwrap()).unwrap();
    let ece = eval["ece"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ece));
    assert_eq!(eval["reliability"].as_array().unwrap().len(), 15);
    ok(&["plot", r]);
    assert!(run.join("reliability.png").is_file());

    let image = data.join("dots/dots_0003.png");
    let before: serde_json::Value = serde_json::from_str(&ok(&[
        "predict",
        "--run",
        r,
        "--json",
        image.to_str().unwrap(),
    ]))
    .unwrap();
    let out = ok(&["eval", "--run", r, "--calibrate"]);
    let line = out.lines().find(|l| l.starts_with("temperature ")).unwrap();
    // "temperature T (...): NLL a -> b, ECE c -> d; ..."
    let nums: Vec<f64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|w| w.parse().ok())
        .collect();
    let (t, nll_before, nll_after) = (nums[0], nums[2], nums[3]);
    assert!(nll_after <= nll_before, "{line}");
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("best.json")).unwrap()).unwrap();
    let stored = sidecar["temperature"].as_f64().unwrap();
    assert!((stored - t).abs() < 1e-3, "{stored} vs {line}");

    let after: serde_json::Value = serde_json::from_str(&ok(&[
        "predict",
        "--run",
        r,
        "--json",
        image.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(before["logits"], after["logits"], "logits do not change");
    let z: Vec<f64> = after["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let m = z
        .iter()
        .map(|v| v / stored)
        .fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v / stored - m).exp()).collect();
    let s: f64 = e.iter().sum();
    for (p, want) in after["probs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(e.iter().map(|v| v / s))
    {
        assert!((p.as_f64().unwrap() - want).abs() < 1e-5);
    }
    assert_eq!(
        before["class"], after["class"],
        "temperature changes no prediction"
    );
}
