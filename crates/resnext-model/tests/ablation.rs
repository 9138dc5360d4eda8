//! Diagnostic ablations: skipping BatchNorm/ReLU changes the computation and nothing else.

use resnext_model::{Ablation, ModelConfig, ResNeXt};
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

fn tiny() -> (VarStore, ResNeXt) {
    tch::manual_seed(1);
    let vs = VarStore::new(Device::Cpu);
    let net = ResNeXt::new(&vs.root(), &ModelConfig::custom([1, 1, 1, 1], 4, 4, 3)).unwrap();
    (vs, net)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn ablation_changes_the_output_and_can_be_undone() {
    let (_vs, mut net) = tiny();
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let full = net.forward_t(&x, false);
    net.set_ablation(Ablation::parse("batchnorm,relu").unwrap());
    assert_eq!(net.ablation().describe(), "batchnorm,relu");
    let ablated = net.forward_t(&x, false);
    assert!(max_diff(&full, &ablated) > 1e-3);
    net.set_ablation(Ablation::default());
    assert!(max_diff(&full, &net.forward_t(&x, false)) < 1e-6);
}

#[test]
fn without_relu_and_batchnorm_the_features_are_linear_in_the_input() {
    // Convolutions, additions and average pooling are linear; max-pooling commutes with a
    // positive scale. So with BatchNorm and ReLU skipped, features(2x) = 2·features(x), which
    // no real layer of them would allow (BatchNorm in train mode normalises the scale away).
    let (_vs, mut net) = tiny();
    net.set_ablation(Ablation::parse("batchnorm,relu").unwrap());
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let f1 = net.features(&x, true).unwrap();
    let f2 = net.features(&(&x * 2.0), true).unwrap();
    let scale = f1.abs().max().double_value(&[]);
    assert!(max_diff(&(&f1 * 2.0), &f2) < 1e-4 * scale.max(1.0));
    net.set_ablation(Ablation::default());
    let g1 = net.features(&x, true).unwrap();
    let g2 = net.features(&(&x * 2.0), true).unwrap();
    assert!(max_diff(&(&g1 * 2.0), &g2) > 1e-2);
}

#[test]
fn skipped_batchnorm_leaves_running_statistics_alone() {
    let (vs, mut net) = tiny();
    net.set_ablation(Ablation::parse("batchnorm").unwrap());
    let before: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(n, _)| n.contains("running_") || n.contains("num_batches"))
        .map(|(n, t)| (n, t.copy()))
        .collect();
    assert!(!before.is_empty());
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    net.f_forward_t(&x, true).map(drop).unwrap();
    let after = vs.variables();
    for (name, t) in &before {
        assert!(
            max_diff(t, &after[name].to_kind(t.kind())) == 0.0,
            "{name} changed"
        );
    }
}

#[test]
fn without_relu_a_stage_is_odd_in_its_input() {
    // A fresh network in eval mode: each BatchNorm is y = x / sqrt(1 + eps) (running mean 0,
    // variance 1, weight 1, bias 0), so a stage's convolutions, BatchNorms and additions are
    // linear and stage(-h) = -stage(h) once its ReLUs are skipped. With ReLU the stage ends in
    // a ReLU, so its output is never negative and the identity fails.
    let (_vs, mut net) = tiny();
    let h = Tensor::randn([2, 64, 8, 8], (Kind::Float, Device::Cpu)); // the stem's 64 channels
    let odd_gap = |net: &ResNeXt| {
        let a = net.stage(0, &h, false).unwrap();
        let b = net.stage(0, &(-&h), false).unwrap();
        (max_diff(&a, &(-b)), a.abs().max().double_value(&[]))
    };
    net.set_ablation(Ablation::parse("relu").unwrap());
    let (gap, scale) = odd_gap(&net);
    assert!(gap < 1e-4 * scale.max(1.0), "{gap} at scale {scale}");
    net.set_ablation(Ablation::default());
    let (gap, scale) = odd_gap(&net);
    assert!(gap > 1e-2 * scale, "{gap} at scale {scale}");
}
