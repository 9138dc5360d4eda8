//! End to end on the real MSLD photos in ../shared (skipped without RESNEXT_SHARED).

mod common;

use common::ok;
use std::collections::HashSet;

fn group(p: &str) -> String {
    let name = p.rsplit('/').next().unwrap();
    name.split(['_', '.']).next().unwrap().to_string()
}

/// Issue: a 2-epoch ResNeXt-50 run with patient grouping writes every artifact, and its best
/// checkpoint has torchvision's names, shapes and dtypes and loads back strictly.
#[test]
fn resnext50_two_epochs_on_msld_grouped() {
    let Some(data) = common::shared("datasets/msld-original") else {
        return;
    };
    let keys = resnext_testkit::fixture("torchvision/resnext50_32x4d.keys.json");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("msld run");
    let config =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/monkeypox.toml");
    ok(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--set",
        "data.batch_size=16",
    ]);
    for f in [
        "config.toml",
        "split.json",
        "metrics.csv",
        "best.safetensors",
        "best.json",
        "last.safetensors",
        "last.json",
        "checkpoint.safetensors",
        "eval.json",
        "curves.png",
        "confusion_matrix.png",
        "roc.png",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    // grouping came from the config: no patient in both parts
    let split: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("split.json")).unwrap()).unwrap();
    let train: HashSet<String> = split["train"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}:{}",
                p.as_str().unwrap().split('/').next().unwrap(),
                group(p.as_str().unwrap())
            )
        })
        .collect();
    let val: HashSet<String> = split["val"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}:{}",
                p.as_str().unwrap().split('/').next().unwrap(),
                group(p.as_str().unwrap())
            )
        })
        .collect();
    assert!(
        train.is_disjoint(&val),
        "{:?}",
        train.intersection(&val).collect::<Vec<_>>()
    );
    let n = split["train"].as_array().unwrap().len() + split["val"].as_array().unwrap().len();
    assert_eq!(n, 228);

    // names, shapes and dtypes equal torchvision's, apart from the head's class count
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(keys).unwrap()).unwrap();
    let bytes = std::fs::read(out.join("best.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut ours: Vec<(String, Vec<usize>, String)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec(), format!("{:?}", v.dtype())))
        .collect();
    ours.sort();
    let mut want: Vec<(String, Vec<usize>, String)> = manifest["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let name = t["name"].as_str().unwrap().to_string();
            let mut shape: Vec<usize> = t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            if name.starts_with("fc.") {
                shape[0] = 2;
            }
            let dtype = match t["dtype"].as_str().unwrap() {
                "float32" => "F32",
                "int64" => "I64",
                other => panic!("unexpected dtype {other}"),
            };
            (name, shape, dtype.to_string())
        })
        .collect();
    want.sort();
    assert_eq!(ours, want);
    // loads back strictly into a fresh model
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let _net =
        resnext_model::ResNeXt::new(&vs.root(), &resnext_model::ModelConfig::resnext50_32x4d(2))
            .unwrap();
    let report = resnext_model::weights::load_weights(
        &vs,
        &out.join("best.safetensors"),
        resnext_model::weights::HeadPolicy::Strict,
    )
    .unwrap();
    assert!(report.kept.is_empty());
    assert_eq!(
        vs.variables()["bn1.num_batches_tracked"].int64_value(&[]),
        2 * 12
    );
}

/// predict works on the real class folder whose name has a space, and `eval` agrees with it.
#[test]
fn tiny_model_on_msld_eval_agrees_with_predict_on_paths_with_spaces() {
    let Some(data) = common::shared("datasets/msld-original") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::tiny_config(dir.path(), &data, 1, "");
    let out = dir.path().join("tiny msld");
    ok(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        "data.group_regex=\"^([^_.]+)\"",
    ]);
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("eval.json")).unwrap()).unwrap();
    let split: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("split.json")).unwrap()).unwrap();
    let val: Vec<String> = serde_json::from_value(split["val"].clone()).unwrap();
    assert!(val.iter().any(|p| p.starts_with("Monkey Pox/")));
    let paths: Vec<String> = val
        .iter()
        .map(|p| data.join(p).to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["predict", "--run", out.to_str().unwrap(), "--json"];
    args.extend(paths.iter().map(String::as_str));
    let lines: Vec<serde_json::Value> = ok(&args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut correct = 0;
    for (line, rel) in lines.iter().zip(&val) {
        let truth = if rel.starts_with("Monkey Pox/") { 0 } else { 1 };
        if line["class"].as_u64().unwrap() == truth {
            correct += 1;
        }
        assert!(line["path"].as_str().unwrap().ends_with(rel.as_str()));
    }
    let acc = correct as f64 / val.len() as f64;
    assert!(
        (eval["accuracy"].as_f64().unwrap() - acc).abs() < 1e-9,
        "{} vs {acc}",
        eval["accuracy"]
    );
}

#[test]
fn data_commands_on_msld() {
    let Some(data) = common::shared("datasets/msld-original") else {
        return;
    };
    let check: serde_json::Value = serde_json::from_str(&ok(&[
        "data",
        "check",
        "--root",
        data.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(
        check["classes"],
        serde_json::json!([{"name": "Monkey Pox", "count": 102}, {"name": "Others", "count": 126}])
    );
    assert_eq!(check["bad"], serde_json::json!([]));
    let bench = ok(&[
        "data",
        "bench",
        "--root",
        data.to_str().unwrap(),
        "--transform",
        "train",
        "--threads",
        "2",
    ]);
    assert!(
        bench.lines().last().unwrap().starts_with("throughput: "),
        "{bench}"
    );
    let stats = ok(&["data", "stats", "--root", data.to_str().unwrap(), "--json"]);
    let s: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(s["images"], 228);
    for k in 0..3 {
        let m = s["mean"][k].as_f64().unwrap();
        assert!(m > 0.2 && m < 0.9, "{stats}");
    }
}
