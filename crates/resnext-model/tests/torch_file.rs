//! Reading `torch.save` files (fixtures made by `scripts/make_torch_file_fixtures.py` with
//! PyTorch 2.13): both formats, views into shared storages, fp16/bf16, a wrapped dict with the
//! `module.` prefix, and pickles that would run a command, which must be refused.

mod common;

use resnext_model::torch_file::read_torch_file;
use std::collections::HashMap;
use tch::{Kind, Tensor};

fn expected() -> HashMap<String, Tensor> {
    Tensor::read_safetensors(common::fixture("torch/expected.safetensors"))
        .unwrap()
        .into_iter()
        .collect()
}

fn check(read: Vec<(String, Tensor)>) {
    let want = expected();
    assert_eq!(
        read.len(),
        want.len(),
        "{:?}",
        read.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for (name, t) in read {
        let w = &want[&name];
        assert_eq!(t.kind(), w.kind(), "{name}");
        assert_eq!(t.size(), w.size(), "{name}");
        let diff = (t.to_kind(Kind::Double) - w.to_kind(Kind::Double))
            .abs()
            .max()
            .double_value(&[]);
        assert_eq!(diff, 0.0, "{name}");
    }
}

#[test]
fn both_formats_read_back_every_tensor_exactly() {
    for f in ["torch/zip.pth", "torch/legacy.pth"] {
        check(read_torch_file(&common::fixture(f), None).unwrap());
    }
}

#[test]
fn wrapped_dicts_and_the_module_prefix() {
    let p = common::fixture("torch/wrapped.pth");
    check(read_torch_file(&p, None).unwrap());
    check(read_torch_file(&p, Some("state_dict")).unwrap());
    let e = read_torch_file(&p, Some("model")).unwrap_err().to_string();
    assert!(e.contains("`model`"), "{e}");
}

#[test]
fn pickles_that_would_run_code_are_refused_naming_the_global() {
    for (f, global) in [
        ("torch/hostile_legacy.pth", "system"),
        ("torch/hostile_zip.pth", "eval"),
    ] {
        let e = read_torch_file(&common::fixture(f), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("refuses the global") && e.contains(global),
            "{f}: {e}"
        );
    }
}

#[test]
fn damaged_files_are_errors_not_panics() {
    let bytes = std::fs::read(common::fixture("torch/legacy.pth")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for cut in [1, 10, bytes.len() / 2, bytes.len() - 1] {
        let p = dir.path().join("cut.pth");
        std::fs::write(&p, &bytes[..cut]).unwrap();
        assert!(read_torch_file(&p, None).is_err(), "cut at {cut}");
    }
    let zip = std::fs::read(common::fixture("torch/zip.pth")).unwrap();
    let p = dir.path().join("cut.zip.pth");
    std::fs::write(&p, &zip[..zip.len() / 2]).unwrap();
    assert!(read_torch_file(&p, None).is_err());
}

/// `load_weights` (behind `--init-weights` and `predict --weights`) takes `.pth` files as they
/// are: the same values as the safetensors twin, cast to the model's dtypes.
#[test]
fn load_weights_takes_torch_save_files() {
    use resnext_model::weights::{load_weights, HeadPolicy};
    let want = expected();
    for f in ["torch/zip.pth", "torch/legacy.pth", "torch/wrapped.pth"] {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        for (name, t) in &want {
            let parts: Vec<&str> = name.split('.').collect();
            let (last, dirs) = parts.split_last().unwrap();
            let p = dirs.iter().fold(vs.root(), |p, d| &p / *d);
            drop(p.var(last, &t.size(), tch::nn::Init::Const(0.0)));
        }
        let report = load_weights(&vs, &common::fixture(f), HeadPolicy::Strict).unwrap();
        assert_eq!(report.loaded.len(), want.len(), "{f}");
        for (name, var) in vs.variables() {
            let diff = (var.to_kind(Kind::Double) - want[&name].to_kind(Kind::Double))
                .abs()
                .max()
                .double_value(&[]);
            assert_eq!(diff, 0.0, "{f}: {name}");
        }
    }
}

/// A dict with both `state_dict` and `model` is refused without a key, and the key chooses
/// (`--key` of convert, train, cv, predict, export and serve).
#[test]
fn a_key_chooses_between_candidate_dicts() {
    use resnext_model::weights::{load_weights_from, HeadPolicy, WeightsFile};
    let p = common::fixture("torch/ambiguous.pth");
    let e = read_torch_file(&p, None).unwrap_err().to_string();
    assert!(e.contains("--key"), "{e}");
    let want = expected();
    for (key, offset) in [("state_dict", 0.0), ("model", 1.0)] {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        for (name, t) in &want {
            let parts: Vec<&str> = name.split('.').collect();
            let (last, dirs) = parts.split_last().unwrap();
            let p = dirs.iter().fold(vs.root(), |p, d| &p / *d);
            drop(p.var(last, &t.size(), tch::nn::Init::Const(0.0)));
        }
        let file = WeightsFile::new(&p).with_key(Some(key.to_string()));
        load_weights_from(&vs, &file, HeadPolicy::Strict).unwrap();
        for (name, var) in vs.variables() {
            let w = &want[&name];
            // `v + 1` in the tensor's own dtype, as the script computed it
            let w = if w.is_floating_point() {
                (w + offset).to_kind(Kind::Double)
            } else {
                w.to_kind(Kind::Double)
            };
            let diff = (var.to_kind(Kind::Double) - w)
                .abs()
                .max()
                .double_value(&[]);
            assert_eq!(diff, 0.0, "{key}: {name}");
        }
    }
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let bad = WeightsFile::new(&p).with_key(Some("optimizer".into()));
    let e = load_weights_from(&vs, &bad, HeadPolicy::Strict)
        .unwrap_err()
        .to_string();
    assert!(e.contains("optimizer"), "{e}");
}
