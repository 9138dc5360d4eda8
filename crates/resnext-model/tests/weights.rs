//! Weight import and export under torchvision names.

use resnext_model::weights::{load_weights, save_weights, HeadPolicy};
use resnext_model::{ModelConfig, ModelError, ResNeXt};
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

fn tiny(num_classes: i64) -> (VarStore, ResNeXt) {
    let vs = VarStore::new(Device::Cpu);
    let net = ResNeXt::new(
        &vs.root(),
        &ModelConfig::custom([1, 1, 1, 1], 2, 4, num_classes),
    )
    .unwrap();
    (vs, net)
}

#[test]
fn save_then_load_reproduces_outputs_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let (vs, net) = tiny(3);
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    tch::no_grad(|| net.f_forward_t(&x, true))
        .map(drop)
        .unwrap(); // move the running stats and counters
    save_weights(&vs, &path).unwrap();
    let (vs2, net2) = tiny(3);
    let report = load_weights(&vs2, &path, HeadPolicy::Strict).unwrap();
    assert_eq!(report.loaded.len(), vs.variables().len());
    let a = tch::no_grad(|| net.forward_t(&x, false));
    let b = tch::no_grad(|| net2.forward_t(&x, false));
    assert_eq!((a - b).abs().max().double_value(&[]), 0.0);
    assert_eq!(
        vs2.variables()["bn1.num_batches_tracked"].int64_value(&[]),
        1
    );
    assert_eq!(
        vs2.variables()["bn1.num_batches_tracked"].kind(),
        Kind::Int64
    );
    assert!(!dir.path().join(".w.safetensors.tmp").exists());
}

#[test]
fn head_with_other_class_count_is_replaced_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let (vs, _net) = tiny(5);
    save_weights(&vs, &path).unwrap();
    let (vs2, _net2) = tiny(2);
    let fc_before = vs2.variables()["fc.weight"].copy();
    let conv_before = vs2.variables()["conv1.weight"].copy();
    match load_weights(&vs2, &path, HeadPolicy::Strict) {
        Err(ModelError::ShapeMismatch { name, .. }) => assert!(name.starts_with("fc.")),
        other => panic!("expected a shape mismatch, got {other:?}"),
    }
    // A failed load leaves the model untouched.
    assert!(vs2.variables()["conv1.weight"].equal(&conv_before));
    let report = load_weights(&vs2, &path, HeadPolicy::ReplaceIfMismatched).unwrap();
    assert_eq!(
        report.kept,
        vec!["fc.bias".to_string(), "fc.weight".to_string()]
    );
    assert!(vs2.variables()["fc.weight"].equal(&fc_before));
    assert!(vs2.variables()["conv1.weight"].equal(&vs.variables()["conv1.weight"]));
}

#[test]
fn other_architecture_is_an_error_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let (vs, _net) = tiny(3);
    save_weights(&vs, &path).unwrap();
    let vs2 = VarStore::new(Device::Cpu);
    let _ = ResNeXt::new(&vs2.root(), &ModelConfig::custom([2, 1, 1, 1], 2, 4, 3)).unwrap();
    let err = load_weights(&vs2, &path, HeadPolicy::ReplaceIfMismatched).unwrap_err();
    assert!(err.to_string().contains("layer1.1."), "{err}");
    let vs3 = VarStore::new(Device::Cpu);
    let _ = ResNeXt::new(&vs3.root(), &ModelConfig::custom([1, 1, 1, 1], 4, 4, 3)).unwrap();
    let err = load_weights(&vs3, &path, HeadPolicy::Strict).unwrap_err();
    assert!(matches!(err, ModelError::ShapeMismatch { .. }), "{err}");
}

#[test]
fn not_a_safetensors_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.safetensors");
    std::fs::write(&path, b"hello").unwrap();
    let (vs, _net) = tiny(3);
    let err = load_weights(&vs, &path, HeadPolicy::Strict).unwrap_err();
    assert!(err.to_string().contains("not a safetensors file"), "{err}");
}

#[test]
fn summary_totals_match_torchvision() {
    let s = resnext_model::summarize(&ModelConfig::resnext50_32x4d(1000), 224).unwrap();
    assert_eq!(s.total_params, 25_028_904);
    assert_eq!(s.rows.last().unwrap().output_shape, vec![1, 1000]);
    assert_eq!(s.rows[4].output_shape, vec![1, 2048, 7, 7]);
    let s2 = resnext_model::summarize(&ModelConfig::resnext50_32x4d(2), 224).unwrap();
    assert_eq!(s2.total_params, 22_984_002);
    assert!(s2.to_string().contains("Total params: 22,984,002"));
    let stage_sum: i64 = s2.rows.iter().map(|r| r.params).sum();
    assert_eq!(stage_sum, s2.total_params);
}

#[test]
fn forward_mult_adds_match_torchvision_tables() {
    // torchvision's model tables (`GFLOPS`, which count multiply-adds of convolutions and linear
    // layers, rounded to two decimals) for the 1000-class ImageNet models at 224 px.
    use resnext_model::summary::forward_mult_adds;
    for (config, giga) in [
        (ModelConfig::resnext50_32x4d(1000), 4.23),
        (ModelConfig::resnext101_32x8d(1000), 16.41),
        (ModelConfig::resnext101_64x4d(1000), 15.46),
        (ModelConfig::resnet50(1000), 4.09),
    ] {
        let g = forward_mult_adds(&config, 224) as f64 / 1e9;
        assert!(
            (g - giga).abs() < 0.006,
            "{}: {g} G, torchvision {giga}",
            config.arch
        );
    }
    let s = resnext_model::summarize(&ModelConfig::resnext50_32x4d(2), 224).unwrap();
    assert!(
        s.to_string()
            .contains("Forward mult-adds: 4.23 G per image"),
        "{s}"
    );
}

#[test]
fn double_softmax_is_gone_logits_are_unnormalised() {
    let (_vs, net) = tiny(3);
    let x = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu)) * 10.0;
    let logits = tch::no_grad(|| net.forward_t(&x, false));
    let sums = logits.sum_dim_intlist(1, false, Kind::Float);
    // softmax outputs would sum to one per row; logits in general do not
    assert!((sums - 1.0).abs().max().double_value(&[]) > 1e-3);
}

#[test]
fn channels_last_weights_compute_the_same_and_save_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (vs, net) = tiny(3);
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let before = tch::no_grad(|| net.forward_t(&x, false));
    let a = dir.path().join("a.safetensors");
    save_weights(&vs, &a).unwrap();
    resnext_model::weights::convert_to_channels_last(&vs).unwrap();
    let w = &vs.variables()["layer1.0.conv2.weight"];
    assert!(
        !w.is_contiguous(),
        "weights should have channels-last strides"
    );
    let after = tch::no_grad(|| net.forward_t(&x, false));
    assert!((before - after).abs().max().double_value(&[]) < 1e-5);
    let b = dir.path().join("b.safetensors");
    save_weights(&vs, &b).unwrap();
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
}

/// A network built zeroed (for loading) has the same variables as a random one, all zero, and
/// loads the same weights to the same outputs.
#[test]
fn a_zeroed_network_loads_like_a_random_one() {
    let config = ModelConfig::custom([1, 1, 1, 1], 2, 4, 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let vs = VarStore::new(Device::Cpu);
    let net = ResNeXt::new(&vs.root(), &config).unwrap();
    save_weights(&vs, &path).unwrap();
    let zs = VarStore::new(Device::Cpu);
    let zeroed = ResNeXt::new_zeroed(&zs.root(), &config).unwrap();
    let (a, b) = (vs.variables(), zs.variables());
    assert_eq!(a.len(), b.len());
    for (name, t) in &b {
        assert_eq!(t.size(), a[name].size(), "{name}");
        // convolutions and the head (BatchNorm's constants are cheap and stay as they are)
        if name.contains("conv") || name.contains("downsample.0") || name.starts_with("fc.") {
            assert_eq!(
                t.abs().sum(tch::Kind::Double).double_value(&[]),
                0.0,
                "{name}"
            );
        }
    }
    load_weights(&zs, &path, HeadPolicy::Strict).unwrap();
    let x = Tensor::randn([2, 3, 32, 32], (tch::Kind::Float, Device::Cpu));
    let (ya, yb) = tch::no_grad(|| {
        (
            net.f_forward_t(&x, false).unwrap(),
            zeroed.f_forward_t(&x, false).unwrap(),
        )
    });
    assert_eq!((ya - yb).abs().max().double_value(&[]), 0.0);
    // and the flag does not leak: the next network is random again
    let rs = VarStore::new(Device::Cpu);
    ResNeXt::new(&rs.root(), &config).unwrap();
    let w = &rs.variables()["conv1.weight"];
    assert!(w.abs().sum(tch::Kind::Double).double_value(&[]) > 0.0);
}
