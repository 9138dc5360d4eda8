//! Parity with torchvision: the fixtures in tests/fixtures/torchvision were made with
//! torchvision 0.28 / PyTorch 2.13 by `scripts/make_torchvision_fixtures.py`.

mod common;

use resnext_model::weights::{dtype_name, load_weights, state_dict, HeadPolicy};
use resnext_model::{ModelConfig, ResNeXt};
use std::collections::HashMap;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

fn io() -> HashMap<String, Tensor> {
    let p = common::fixture("torchvision/tiny_resnext_io.safetensors");
    Tensor::read_safetensors(p).unwrap().into_iter().collect()
}

fn tiny() -> (VarStore, ResNeXt) {
    let w = common::fixture("torchvision/tiny_resnext.safetensors");
    let vs = VarStore::new(Device::Cpu);
    let net = ResNeXt::new(&vs.root(), &ModelConfig::custom([1, 1, 1, 1], 4, 4, 3)).unwrap();
    let report = load_weights(&vs, &w, HeadPolicy::Strict).unwrap();
    assert!(report.kept.is_empty(), "strict load kept {:?}", report.kept);
    (vs, net)
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// How far float32 rounding moves these logits on this CPU: ours in float32 against ours in
/// float64 (the fixture was rounded the same way on the CPU that made it), times 100, and at
/// least 100 float32 ulps of the largest logit. A tolerance derived on the machine, not tuned on
/// one.
fn rounding_tolerance(logits32: &Tensor, input: &Tensor, train: bool) -> f64 {
    let (mut vs, net) = tiny();
    vs.double();
    let logits64 = tch::no_grad(|| net.forward_t(&input.to_kind(Kind::Double), train));
    let scale = logits64.abs().max().double_value(&[]);
    100.0 * max_abs(logits32, &logits64).max(f32::EPSILON as f64 * scale)
}

#[test]
fn tiny_eval_logits_match_torchvision() {
    let (io, (_vs, net)) = (io(), tiny());
    let logits = tch::no_grad(|| net.forward_t(&io["input"], false));
    let err = max_abs(&logits, &io["logits_eval"]);
    let tol = rounding_tolerance(&logits, &io["input"], false);
    eprintln!("eval logits: {err:.2e} from torchvision's, tolerance {tol:.2e}");
    assert!(err <= tol, "eval logits differ by {err}, more than {tol}");
}

#[test]
fn tiny_train_logits_and_running_stats_match_torchvision() {
    let (io, (vs, net)) = (io(), tiny());
    let vars = vs.variables();
    let before = vars["bn1.num_batches_tracked"].int64_value(&[]);
    let logits = tch::no_grad(|| net.forward_t(&io["input"], true));
    let err = max_abs(&logits, &io["logits_train"]);
    let tol = rounding_tolerance(&logits, &io["input"], true);
    eprintln!("train logits: {err:.2e} from torchvision's, tolerance {tol:.2e}");
    assert!(err <= tol, "train logits differ by {err}, more than {tol}");
    let mean_err = max_abs(
        &vars["bn1.running_mean"],
        &io["bn1_running_mean_after_train_forward"],
    );
    let var_err = max_abs(
        &vars["bn1.running_var"],
        &io["bn1_running_var_after_train_forward"],
    );
    assert!(mean_err <= 1e-6, "running_mean differs by {mean_err}");
    assert!(var_err <= 1e-6, "running_var differs by {var_err}");
    assert_eq!(vars["bn1.num_batches_tracked"].int64_value(&[]), before + 1);
}

#[test]
fn presets_equal_torchvision_manifests() {
    for (name, config) in [
        ("resnext50_32x4d", ModelConfig::resnext50_32x4d(1000)),
        ("resnext101_32x8d", ModelConfig::resnext101_32x8d(1000)),
        ("resnext101_64x4d", ModelConfig::resnext101_64x4d(1000)),
        ("resnet50", ModelConfig::resnet50(1000)),
    ] {
        let path = common::fixture(&format!("torchvision/{name}.keys.json"));
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let expected: Vec<(String, Vec<i64>, String)> = manifest["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let shape = t["shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_i64().unwrap())
                    .collect();
                (
                    t["name"].as_str().unwrap().to_string(),
                    shape,
                    t["dtype"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let vs = VarStore::new(Device::Cpu);
        let _net = ResNeXt::new(&vs.root(), &config).unwrap();
        let mut ours: Vec<(String, Vec<i64>, String)> = state_dict(&vs)
            .into_iter()
            .map(|(n, t)| (n, t.size(), dtype_name(t.kind()).to_string()))
            .collect();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort();
        ours.sort();
        assert_eq!(ours.len(), expected_sorted.len(), "{name}: tensor count");
        for (a, b) in ours.iter().zip(&expected_sorted) {
            assert_eq!(a, b, "{name}");
        }
        let params: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        assert_eq!(
            params,
            manifest["parameters"].as_i64().unwrap(),
            "{name}: parameter count"
        );
    }
}

#[test]
fn full_resnext50_forward_at_224_on_cpu() {
    let vs = VarStore::new(Device::Cpu);
    let net = ResNeXt::new(&vs.root(), &ModelConfig::resnext50_32x4d(2)).unwrap();
    let x = Tensor::randn([1, 3, 224, 224], (tch::Kind::Float, Device::Cpu));
    let logits = tch::no_grad(|| net.forward_t(&x, false));
    assert_eq!(logits.size(), vec![1, 2]);
    assert!(bool::try_from(logits.isfinite().all()).unwrap());
    let features = tch::no_grad(|| net.features(&x, false)).unwrap();
    assert_eq!(features.size(), vec![1, 2048, 7, 7]);
}

/// Folding BatchNorm into the convolutions keeps torchvision's eval logits (the fixture's
/// BatchNorms have random statistics and affine parameters, so folding changes every weight).
#[test]
fn folded_batchnorm_keeps_the_eval_logits() {
    let (io, (_vs, mut net)) = (io(), tiny());
    let before = tch::no_grad(|| net.f_forward_t(&io["input"], false)).unwrap();
    net.fold_batchnorm().unwrap();
    assert!(net.is_folded());
    let after = tch::no_grad(|| net.f_forward_t(&io["input"], false)).unwrap();
    let err = max_abs(&after, &io["logits_eval"]);
    // folding rounds the weights once more (w·γ/σ): twice the unfolded network's rounding
    let tol = 2.0 * rounding_tolerance(&before, &io["input"], false);
    assert!(
        err <= tol,
        "folded logits differ from torchvision's by {err}, more than {tol}"
    );
    assert!(max_abs(&after, &before) <= tol);
    // folding twice is folding once
    net.fold_batchnorm().unwrap();
    let again = tch::no_grad(|| net.f_forward_t(&io["input"], false)).unwrap();
    assert!(max_abs(&again, &after) == 0.0);
}
