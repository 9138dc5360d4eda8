//! `resnext summary`, `resnext predict --weights` and `resnext bench`.

mod common;

use common::ok;

#[test]
fn summary_prints_torchvision_totals() {
    let out = ok(&[
        "summary",
        "--arch",
        "resnext50_32x4d",
        "--num-classes",
        "1000",
    ]);
    assert!(out.contains("Total params: 25,028,904"), "{out}");
    assert!(
        out.contains("layer4 (3 blocks)") && out.contains("[1, 2048, 7, 7]"),
        "{out}"
    );
    let out = ok(&["summary", "--arch", "resnext50_32x4d", "--num-classes", "2"]);
    assert!(out.contains("Total params: 22,984,002"), "{out}");
    let out = ok(&[
        "summary",
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
    ]);
    assert!(out.contains("Total params: 3,371,075"), "{out}");
}

#[test]
fn predict_with_torchvision_weights_matches_the_model_in_process() {
    let weights = resnext_testkit::fixture("torchvision/tiny_resnext.safetensors");
    let dir = tempfile::tempdir().unwrap();
    // a 64x64 image: the eval transform skips the resize, so the input is exactly ToTensor+Normalize
    let img = image::RgbImage::from_fn(64, 64, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 4) as u8, ((x + y) * 2) as u8])
    });
    let path = dir.path().join("an image.png");
    img.save(&path).unwrap();
    let out = ok(&[
        "predict",
        "--weights",
        weights.to_str().unwrap(),
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
        "--json",
        path.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let logits: Vec<f64> = serde_json::from_value(v["logits"].clone()).unwrap();
    let probs: Vec<f64> = serde_json::from_value(v["probs"].clone()).unwrap();
    assert_eq!(v["path"].as_str().unwrap(), path.to_str().unwrap());
    // the same computation by hand: ToTensor + ImageNet Normalize, then the model
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let net = resnext_model::ResNeXt::new(
        &vs.root(),
        &resnext_model::ModelConfig::custom([1, 1, 1, 1], 4, 4, 3),
    )
    .unwrap();
    resnext_model::weights::load_weights(&vs, &weights, resnext_model::weights::HeadPolicy::Strict)
        .unwrap();
    let mean = [0.485f32, 0.456, 0.406];
    let std = [0.229f32, 0.224, 0.225];
    let mut x = vec![0f32; 3 * 64 * 64];
    for (xx, yy, p) in img.enumerate_pixels() {
        for k in 0..3 {
            x[k * 4096 + (yy * 64 + xx) as usize] = (p[k] as f32 / 255.0 - mean[k]) / std[k];
        }
    }
    let t = tch::Tensor::from_slice(&x).view([1, 3, 64, 64]);
    let want: Vec<f32> =
        Vec::try_from(tch::no_grad(|| tch::nn::ModuleT::forward_t(&net, &t, false)).view([-1]))
            .unwrap();
    for (a, b) in logits.iter().zip(&want) {
        assert!((a - *b as f64).abs() < 1e-4, "{logits:?} vs {want:?}");
    }
    assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-5);
    assert_eq!(
        v["class"].as_u64().unwrap() as usize,
        resnext_cli_argmax(&probs)
    );
}

fn resnext_cli_argmax(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

#[test]
fn bench_reports_throughput_and_peak_memory_and_names_an_ablation() {
    let tiny = ["--batch", "2", "--image-size", "32", "--steps", "2"];
    for (mode, extra) in [("train", vec!["--channels-last"]), ("eval", vec![])] {
        let mut args = vec!["bench", mode];
        args.extend(common::TINY_ARCH);
        args.extend(tiny);
        args.extend(extra);
        let out = ok(&args);
        assert!(out.contains("peak memory (RSS): "), "{out}");
        assert!(
            out.lines().last().unwrap().starts_with("throughput: "),
            "{out}"
        );
        assert!(!out.contains("ablated"), "{out}");
    }
    let mut args = vec!["bench", "train"];
    args.extend(common::TINY_ARCH);
    args.extend(tiny);
    args.extend(["--precision", "bf16", "--ablate", "relu,batchnorm"]);
    let out = ok(&args);
    assert!(
        out.contains("ablated: batchnorm,relu skipped (a diagnostic network, not a ResNeXt)"),
        "{out}"
    );
    assert!(
        out.lines().last().unwrap().starts_with("throughput: "),
        "{out}"
    );
}

#[test]
fn convert_reads_torch_save_files_and_refuses_hostile_pickles() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w.safetensors");
    for f in ["torch/zip.pth", "torch/legacy.pth", "torch/wrapped.pth"] {
        let input = resnext_testkit::fixture(f);
        let text = ok(&["convert", input.to_str().unwrap(), out.to_str().unwrap()]);
        assert!(text.starts_with("7 tensors"), "{f}: {text}");
        let back = tch::Tensor::read_safetensors(&out).unwrap();
        assert!(back.iter().any(|(n, _)| n == "shared.view"), "{f}");
    }
    let hostile = resnext_testkit::fixture("torch/hostile_legacy.pth");
    let bad = dir.path().join("bad.safetensors");
    let o = common::run(&["convert", hostile.to_str().unwrap(), bad.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = common::stderr(&o);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{err}"
    );
    assert!(err.contains("posix.system"), "{err}");
    assert!(!bad.exists());
}
