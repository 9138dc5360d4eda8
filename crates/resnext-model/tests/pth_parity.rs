//! A real model read straight from `torch.save` files gives torchvision's logits: the tiny
//! torchvision ResNeXt saved in the legacy format with bf16 storages (an OrderedDict with
//! `_metadata`), and in the zip format with fp16 storages, wrapped in `{"state_dict": …}` with
//! DataParallel's `module.` prefix. Input: a PNG through ToTensor and ImageNet normalisation.
//! Fixtures: `scripts/make_pth_model_fixtures.py` (torchvision 0.28, PyTorch 2.13).

mod common;

use resnext_model::weights::{load_weights, HeadPolicy};
use resnext_model::{ModelConfig, ResNeXt};
use std::collections::HashMap;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Tensor};

fn io() -> HashMap<String, Tensor> {
    Tensor::read_safetensors(common::fixture("torch/tiny_resnext_pth_io.safetensors"))
        .unwrap()
        .into_iter()
        .collect()
}

/// The PNG as torchvision's `ToTensor` + `Normalize(ImageNet)` makes it, [1, 3, H, W].
fn png_input() -> Tensor {
    let bytes = std::fs::read(common::fixture("torch/tiny_input.png")).unwrap();
    let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
    let (w, h) = img.dimensions();
    let mean = [0.485f32, 0.456, 0.406];
    let std = [0.229f32, 0.224, 0.225];
    let mut v = vec![0f32; 3 * (w * h) as usize];
    for (x, y, p) in img.enumerate_pixels() {
        for c in 0..3 {
            v[c * (w * h) as usize + (y * w + x) as usize] =
                (f32::from(p[c]) / 255.0 - mean[c]) / std[c];
        }
    }
    Tensor::from_slice(&v).view([1, 3, h as i64, w as i64])
}

fn logits_of(file: &str) -> Tensor {
    let vs = VarStore::new(Device::Cpu);
    let net = ResNeXt::new(&vs.root(), &ModelConfig::custom([1, 1, 1, 1], 4, 4, 3)).unwrap();
    let report = load_weights(&vs, &common::fixture(file), HeadPolicy::Strict).unwrap();
    assert!(
        report.kept.is_empty(),
        "{file}: strict load kept {:?}",
        report.kept
    );
    assert_eq!(report.loaded.len(), vs.variables().len(), "{file}");
    tch::no_grad(|| net.forward_t(&png_input(), false))
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn the_png_input_is_torchvisions() {
    let err = max_abs(&png_input(), &io()["input"]);
    assert!(err <= 1e-6, "input differs by {err}");
}

#[test]
fn legacy_bf16_state_dict_gives_torchvisions_logits() {
    let err = max_abs(
        &logits_of("torch/tiny_resnext_legacy_bf16.pth"),
        &io()["logits_legacy_bf16"],
    );
    assert!(err <= 2e-4, "logits differ by {err}");
}

#[test]
fn zip_fp16_wrapped_module_prefixed_state_dict_gives_torchvisions_logits() {
    let ours = logits_of("torch/tiny_resnext_zip_fp16_wrapped.pth");
    let err = max_abs(&ours, &io()["logits_zip_fp16"]);
    assert!(err <= 2e-4, "logits differ by {err}");
    // and fp16 weights are not bf16 weights: the two fixtures really differ
    assert!(max_abs(&io()["logits_zip_fp16"], &io()["logits_legacy_bf16"]) > 0.0);
}
