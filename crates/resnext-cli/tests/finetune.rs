//! Fine-tuning controls hold what they promise: with `freeze = "backbone"` every tensor but the
//! head's (BatchNorm statistics included) stays bit-identical through an epoch; with
//! `batchnorm = "frozen"` the BatchNorm tensors do while the convolutions learn; `freeze_epochs`
//! thaws the backbone afterwards; class weights and the head's learning rate are accepted and
//! checked.

mod common;

use common::{ok, run, stderr, synth, tiny_config};
use safetensors::SafeTensors;
use std::collections::BTreeMap;
use std::path::Path;

fn tensors(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(p).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n, v.data().to_vec()))
        .collect()
}

fn is_bn(name: &str) -> bool {
    let parent = name.rsplit_once('.').map_or("", |(p, _)| p);
    parent.rsplit('.').next().unwrap_or("").starts_with("bn") || parent.ends_with("downsample.1")
}

/// Trains from `init` with `extra` config lines; returns the last weights.
fn train_from(
    dir: &Path,
    data: &Path,
    init: &Path,
    name: &str,
    epochs: usize,
    extra: &str,
) -> BTreeMap<String, Vec<u8>> {
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub).unwrap();
    let cfg = tiny_config(&sub, data, epochs, extra);
    let out = sub.join("run");
    ok(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--init-weights",
        init.to_str().unwrap(),
    ]);
    tensors(&out.join("last.safetensors"))
}

#[test]
fn frozen_parameters_and_statistics_stay_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 8);
    let cfg = tiny_config(dir.path(), &data, 1, "");
    let base = dir.path().join("base");
    ok(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        base.to_str().unwrap(),
    ]);
    let init_path = base.join("last.safetensors");
    let init = tensors(&init_path);
    assert!(init.keys().any(|k| k.ends_with("running_mean")));

    let head_only = train_from(
        dir.path(),
        &data,
        &init_path,
        "head",
        1,
        "freeze = \"backbone\"",
    );
    let mut changed = Vec::new();
    for (name, v) in &init {
        if name.starts_with("fc.") {
            if head_only[name] != *v {
                changed.push(name.clone());
            }
        } else {
            assert_eq!(
                head_only[name], *v,
                "{name} moved while the backbone was frozen"
            );
        }
    }
    assert_eq!(changed.len(), 2, "the head learned: {changed:?}");

    let bn_frozen = train_from(
        dir.path(),
        &data,
        &init_path,
        "bn",
        1,
        "batchnorm = \"frozen\"",
    );
    let mut conv_moved = 0;
    for (name, v) in &init {
        if is_bn(name) {
            assert_eq!(bn_frozen[name], *v, "{name} moved with batchnorm = frozen");
        } else if name.ends_with("conv1.weight") && bn_frozen[name] != *v {
            conv_moved += 1;
        }
    }
    assert!(conv_moved > 0, "the convolutions learned");

    // thawed after one epoch: the backbone moves in the second
    let thawed = train_from(
        dir.path(),
        &data,
        &init_path,
        "thaw",
        2,
        "freeze = \"backbone\"\nfreeze_epochs = 1",
    );
    assert_ne!(thawed["conv1.weight"], init["conv1.weight"]);
    assert_ne!(thawed["bn1.running_mean"], init["bn1.running_mean"]);
}

#[test]
fn class_weights_and_head_lr_are_accepted_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 6);
    let cfg = tiny_config(dir.path(), &data, 1, "");
    let c = cfg.to_str().unwrap();
    for (i, set) in [
        "loss.class_weights=\"balanced\"",
        "loss.class_weights=[1.0, 2.0, 1.0, 0.5]",
        "optim.head_lr_mult=10.0",
    ]
    .iter()
    .enumerate()
    {
        let out = dir.path().join(format!("ok{i}"));
        ok(&[
            "train",
            "--config",
            c,
            "--out",
            out.to_str().unwrap(),
            &format!("--set={set}"),
        ]);
        let resolved = std::fs::read_to_string(out.join("config.toml")).unwrap();
        let key = set.split('=').next().unwrap().rsplit('.').next().unwrap();
        assert!(
            resolved.contains(key),
            "{key} kept in config.toml:\n{resolved}"
        );
    }
    for (set, needle) in [
        ("loss.class_weights=[1.0, 2.0]", "2 weights for 4 classes"),
        (
            "loss.class_weights=[-1.0, 1.0, 1.0, 1.0]",
            "loss.class_weights",
        ),
        ("loss.class_weights=\"heavy\"", "class_weights"),
        ("optim.head_lr_mult=0", "optim.head_lr_mult"),
        ("train.freeze_epochs=2", "train.freeze_epochs"),
        ("train.freeze=\"everything\"", "freeze"),
    ] {
        let out = dir.path().join("bad");
        let r = run(&[
            "train",
            "--config",
            c,
            "--out",
            out.to_str().unwrap(),
            &format!("--set={set}"),
        ]);
        assert!(!r.status.success(), "{set}");
        let e = stderr(&r);
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        assert!(e.contains(needle), "{set}: {e}");
    }
}
