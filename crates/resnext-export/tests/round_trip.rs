//! Round trips: export a trained tiny run, load the file the way its users will, compare the
//! probabilities with ours on the same input batch (synthetic demo images, and the MSLD photos
//! when `../shared` is there).
//! - TorchScript in Rust (`tch::CModule`): ≤ 1e-5.
//! - TorchScript in Python (`torch.jit.load`) and ONNX (`onnx.checker` with `full_check`, ONNX
//!   Runtime) through the setup venv's Python: ≤ 1e-5 and ≤ 1e-4.

use resnext_data::{decode_file, DecodeLimits};
use resnext_export::{export, ExportOptions, Format, Sidecar};
use resnext_train::trainer::Silent;
use resnext_train::{Checkpoint, Predictor, Run, RunOptions, TrainConfig, Trainer};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// A trained tiny run whose eval transform resizes and centre-crops.
fn tiny_run(dir: &Path) -> (PathBuf, Run) {
    let data = dir.join("data");
    resnext_data::synth::write_dataset(&data, 6, 48, 2).unwrap();
    let text = resnext_testkit::tiny_config_text(&data, 2, "").replace(
        "[data.eval_transform]\nresize = [32, 32]",
        "[data.eval_transform]\nresize_shorter = 36\ncenter_crop = [32, 32]",
    );
    let cfg = TrainConfig::from_toml(&text, Path::new("<test>")).unwrap();
    let out = dir.join("run");
    let (mut t, _) = Trainer::new(cfg, &out, None).unwrap();
    t.fit(&mut Silent).unwrap();
    drop(t);
    (data, Run::open(&out).unwrap())
}

/// Images to compare on: demo images, and MSLD photos when they are there.
fn images(data: &Path) -> Vec<image::RgbImage> {
    let mut paths: Vec<PathBuf> = [
        "checker/checker_0000.png",
        "dots/dots_0001.png",
        "rings/rings_0002.png",
    ]
    .iter()
    .map(|p| data.join(p))
    .collect();
    if let Some(msld) = resnext_testkit::shared("datasets/msld-original") {
        for class in ["Monkey Pox", "Others"] {
            let mut files: Vec<PathBuf> = std::fs::read_dir(msld.join(class))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            paths.extend(files.into_iter().take(3));
        }
    }
    paths
        .iter()
        .map(|p| decode_file(p, DecodeLimits::default()).unwrap())
        .collect()
}

/// The batch the exported models take: the eval transform of each image.
fn batch(p: &Predictor, images: &[image::RgbImage]) -> Tensor {
    let xs: Vec<Tensor> = images.iter().map(|i| p.input(i).unwrap()).collect();
    Tensor::cat(&xs, 0)
}

fn probs_of(logits: &Tensor) -> Vec<Vec<f64>> {
    Vec::<Vec<f64>>::try_from(logits.softmax(1, Kind::Double)).unwrap()
}

fn max_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f64::max)
}

/// The predictor's probabilities for the data's images, and the input batch it made of them.
fn reference(predictor: &Predictor, data: &Path) -> (Vec<Vec<f64>>, Tensor) {
    let imgs = images(data);
    let ours = predictor
        .predict(&imgs)
        .unwrap()
        .iter()
        .map(|p| p.probs.iter().map(|&v| v as f64).collect())
        .collect();
    (ours, batch(predictor, &imgs))
}

/// The setup venv's Python that imports `modules`, or a skip naming `why`.
fn checker_python(modules: &str, why: &str) -> Option<PathBuf> {
    let lib = PathBuf::from(option_env!("RESNEXT_LIBTORCH_LIB").unwrap_or(""));
    // .libtorch is <venv>/lib/python3.X/site-packages/torch; the venv's folder is resolved on
    // disk (Python finds its venv from the path it was started by, read lexically)
    let python = lib
        .join("../../../../..")
        .canonicalize()
        .map(|venv| venv.join("bin/python"))
        .unwrap_or_default();
    let ok = std::process::Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(python)
    } else {
        resnext_testkit::skip(why);
        None
    }
}

/// Writes `x` as raw little-endian f32 for `check_export.py`; returns the file and its shape.
fn raw_input(dir: &Path, x: &Tensor) -> (PathBuf, String) {
    let input = dir.join("x.f32");
    let flat: Vec<f32> = Vec::<f32>::try_from(x.flatten(0, -1)).unwrap();
    std::fs::write(
        &input,
        flat.iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let shape = x
        .size()
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(",");
    (input, shape)
}

/// `scripts/check_export.py` on `input` with `args`; its JSON answer.
fn check_export(python: &Path, input: &Path, shape: &str, args: &[&str]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/check_export.py");
    let o = std::process::Command::new(python)
        .arg(&script)
        .args(["--input", input.to_str().unwrap(), "--shape", shape])
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn exports_load_elsewhere_with_the_same_probabilities() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = tiny_run(dir.path());
    let predictor = || run.predictor(Checkpoint::Best, RunOptions::cpu()).unwrap();
    let (ours, x) = reference(&predictor(), &data);
    let source = run.dir().join("best.safetensors");

    // TorchScript, loaded back in Rust
    let ts = dir.path().join("model.pt");
    let sidecar = export(predictor(), &source, &ExportOptions::default(), &ts).unwrap();
    let module = tch::CModule::load(&ts).unwrap();
    let back = probs_of(&module.forward_ts(&[&x]).unwrap());
    assert!(
        max_diff(&back, &ours) <= 1e-5,
        "TorchScript in Rust: {}",
        max_diff(&back, &ours)
    );
    let json: Sidecar =
        serde_json::from_slice(&std::fs::read(dir.path().join("model.pt.json")).unwrap()).unwrap();
    assert_eq!(json, sidecar);
    assert_eq!(
        json.classes,
        resnext_data::synth::CLASSES.map(String::from).to_vec()
    );
    assert_eq!(json.image_size, [32, 32]);
    assert_eq!(json.eval_transform.center_crop, Some([32, 32]));

    // ONNX: dynamic batch, a fixed batch, BatchNorm folded
    let onnx_variants = [
        (
            "dynamic.onnx",
            ExportOptions {
                format: Format::Onnx,
                ..ExportOptions::default()
            },
        ),
        (
            "fixed.onnx",
            ExportOptions {
                format: Format::Onnx,
                batch: Some(x.size()[0]),
                opset: 13,
                ..ExportOptions::default()
            },
        ),
        (
            "folded.onnx",
            ExportOptions {
                format: Format::Onnx,
                fold_bn: true,
                opset: 21,
                ..ExportOptions::default()
            },
        ),
    ];
    for (name, opts) in &onnx_variants {
        export(predictor(), &source, opts, &dir.path().join(name)).unwrap();
    }
    let Some(python) = checker_python(
        "onnx, onnxruntime, numpy",
        "needs the setup venv's Python with onnx and onnxruntime (cargo xtask setup installs them)",
    ) else {
        return;
    };
    let (input, shape) = raw_input(dir.path(), &x);
    for (name, _) in &onnx_variants {
        let onnx_file = dir.path().join(name);
        let v = check_export(
            &python,
            &input,
            &shape,
            &["--onnx", onnx_file.to_str().unwrap()],
        );
        let onnx: Vec<Vec<f64>> = serde_json::from_value(v["onnx"].clone()).unwrap();
        let d = max_diff(&onnx, &ours);
        assert!(d <= 1e-4, "{name}: ONNX Runtime differs by {d}");
        assert_eq!(
            v["metadata"]["classes"].as_str().unwrap(),
            r#"["checker","dots","rings","stripes"]"#
        );
    }
}

/// `torch.jit.load` in Python. Python's torch links all of CUDA (cuDNN, cuBLAS, NCCL), so this
/// runs on the CUDA install only (`cargo xtask setup --cuda`); the CPU-only install checks the
/// file with libtorch's own loader (above), which `torch.jit.load` wraps.
#[test]
fn torchscript_loads_in_python_torch() {
    let Some(python) = checker_python(
        "torch, numpy",
        "needs Python's torch, which links CUDA's libraries (cargo xtask setup --cuda)",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = tiny_run(dir.path());
    let predictor = || run.predictor(Checkpoint::Best, RunOptions::cpu()).unwrap();
    let (ours, x) = reference(&predictor(), &data);
    let ts = dir.path().join("model.pt");
    let source = run.dir().join("best.safetensors");
    export(predictor(), &source, &ExportOptions::default(), &ts).unwrap();
    let (input, shape) = raw_input(dir.path(), &x);
    let v = check_export(
        &python,
        &input,
        &shape,
        &["--torchscript", ts.to_str().unwrap()],
    );
    let got: Vec<Vec<f64>> = serde_json::from_value(v["torchscript"].clone()).unwrap();
    let d = max_diff(&got, &ours);
    assert!(d <= 1e-5, "torch.jit.load differs by {d}");
}

#[test]
fn bad_options_fail_and_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_data, run) = tiny_run(dir.path());
    let predictor = || run.predictor(Checkpoint::Last, RunOptions::cpu()).unwrap();
    let source = run.dir().join("last.safetensors");
    let out = dir.path().join("m.onnx");
    let bad_opset = ExportOptions {
        format: Format::Onnx,
        opset: 9,
        ..ExportOptions::default()
    };
    let e = export(predictor(), &source, &bad_opset, &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("opset 9"), "{e}");
    let bad_batch = ExportOptions {
        format: Format::Onnx,
        batch: Some(0),
        ..ExportOptions::default()
    };
    assert!(export(predictor(), &source, &bad_batch, &out).is_err());
    let missing = dir.path().join("no such folder").join("m.onnx");
    let e = export(predictor(), &source, &ExportOptions::default(), &missing)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot write"), "{e}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("m.onnx") || n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
