//! `resnext train`, `eval`, `predict --run`, `plot` on tiny models and synthetic data.

mod common;

use common::{ok, run, stderr};
use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::csv_rows as rows;

#[test]
fn a_run_writes_every_artifact_and_eval_agrees_with_predict() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth(dir.path(), 12);
    let cfg = common::tiny_config(dir.path(), &data, 2, "");
    let out = dir.path().join("run dir");
    let stdout = ok(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(stdout.contains("Epoch: 1, Train_acc: "), "{stdout}");
    assert!(stdout.contains("Epoch: 2, Train_acc: "), "{stdout}");
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
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(
        csv.lines().next().unwrap(),
        "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_s,data_wait_s,allreduce_s"
    );
    let r = rows(&csv);
    assert_eq!(
        r.iter().map(|x| x[0].clone()).collect::<Vec<_>>(),
        vec!["1", "2"]
    );
    for row in &r {
        for (i, v) in row.iter().enumerate() {
            let v: f64 = v.parse().unwrap();
            assert!(v.is_finite());
            if i == 2 || i == 4 {
                assert!((0.0..=1.0).contains(&v), "accuracy {v} is not a fraction");
            }
        }
        // the wait for data is part of the epoch's time
        let (seconds, wait): (f64, f64) = (row[6].parse().unwrap(), row[8].parse().unwrap());
        assert!(
            (0.0..seconds).contains(&wait),
            "data wait {wait} s outside the epoch's {seconds} s"
        );
    }
    // the best checkpoint is the best by validation accuracy, not the last one
    let best: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("best.json")).unwrap()).unwrap();
    let best_epoch = best["epoch"].as_u64().unwrap() as usize;
    let val_accs: Vec<f64> = r.iter().map(|x| x[4].parse().unwrap()).collect();
    let max = val_accs.iter().cloned().fold(f64::MIN, f64::max);
    assert_eq!(
        best_epoch,
        val_accs.iter().position(|&v| v == max).unwrap() + 1
    );
    // the resolved config rebuilds the run: it parses back with the same model
    let resolved = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(resolved.contains("arch = \"custom\""), "{resolved}");

    // eval.json agrees with predict --json over the same split
    let ev = ok(&["eval", "--run", out.to_str().unwrap(), "--split", "val"]);
    assert!(ev.contains("confusion matrix"), "{ev}");
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("eval.json")).unwrap()).unwrap();
    let split: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("split.json")).unwrap()).unwrap();
    let classes: Vec<String> = serde_json::from_value(split["classes"].clone()).unwrap();
    let val: Vec<String> = serde_json::from_value(split["val"].clone()).unwrap();
    let paths: Vec<String> = val
        .iter()
        .map(|p| data.join(p).to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["predict", "--run", out.to_str().unwrap(), "--json"];
    args.extend(paths.iter().map(String::as_str));
    let pred = ok(&args);
    let lines: Vec<serde_json::Value> = pred
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), val.len());
    let mut cm = vec![vec![0u64; classes.len()]; classes.len()];
    let mut nll = 0.0;
    for (line, rel) in lines.iter().zip(&val) {
        let truth = classes
            .iter()
            .position(|c| rel.starts_with(&format!("{c}/")))
            .unwrap();
        let pred_class = line["class"].as_u64().unwrap() as usize;
        assert_eq!(line["label"].as_str().unwrap(), classes[pred_class]);
        cm[truth][pred_class] += 1;
        let probs: Vec<f64> = serde_json::from_value(line["probs"].clone()).unwrap();
        nll -= probs[truth].ln();
    }
    let eval_cm: Vec<Vec<u64>> = serde_json::from_value(eval["confusion_matrix"].clone()).unwrap();
    assert_eq!(cm, eval_cm);
    let acc = (0..classes.len()).map(|i| cm[i][i]).sum::<u64>() as f64 / val.len() as f64;
    assert!((eval["accuracy"].as_f64().unwrap() - acc).abs() < 1e-9);
    assert!((eval["loss"].as_f64().unwrap() - nll / val.len() as f64).abs() < 1e-4);
    for k in ["per_class", "macro", "weighted", "roc_auc"] {
        assert!(eval.get(k).is_some(), "eval.json lacks {k}");
    }
    // a folder argument predicts every image in it; top-k lists k classes
    let folder_pred = ok(&[
        "predict",
        "--run",
        out.to_str().unwrap(),
        "--top-k",
        "2",
        data.join("rings").to_str().unwrap(),
    ]);
    assert_eq!(folder_pred.lines().count(), 12);
    assert!(
        folder_pred.lines().all(|l| l.matches(", ").count() == 1),
        "{folder_pred}"
    );
    // a second run into the same directory is refused rather than overwriting it
    let again = run(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--resume"), "{}", stderr(&again));
}

#[test]
fn same_config_and_seed_give_the_same_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth(dir.path(), 8);
    let extra = "";
    let cfg = common::tiny_config(dir.path(), &data, 2, extra);
    let metrics = |name: &str| {
        let out = dir.path().join(name);
        ok(&[
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--set",
            "data.mix={mixup_alpha=0.2}",
        ]);
        let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
        // every column but the two timings
        rows(&csv)
            .into_iter()
            .map(|r| r[..6].to_vec())
            .collect::<Vec<_>>()
    };
    assert_eq!(metrics("a"), metrics("b"));
}

#[test]
fn a_run_killed_mid_epoch_resumes_with_each_epoch_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth(dir.path(), 20);
    let cfg = common::tiny_config(dir.path(), &data, 3, "");
    let out = dir.path().join("killed");
    let mut child = common::bin()
        .args([
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .env("RUST_LOG", "resnext_train=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reader = BufReader::new(child.stderr.take().unwrap());
    let mut killed = false;
    for line in reader.lines() {
        let line = line.unwrap();
        if line.contains("train step") && line.contains("epoch=2") && line.contains("batch=3") {
            child.kill().unwrap(); // SIGKILL
            killed = true;
            break;
        }
    }
    let _ = child.wait();
    assert!(killed, "never saw epoch 2 start");
    let before = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(rows(&before).len(), 1, "{before}");
    ok(&["train", "--resume", out.to_str().unwrap()]);
    let after = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let r = rows(&after);
    assert_eq!(
        r.iter().map(|x| x[0].as_str()).collect::<Vec<_>>(),
        vec!["1", "2", "3"],
        "{after}"
    );
    assert_eq!(r[0], rows(&before)[0], "epoch 1 must be kept as it was");
    // the resumed run computes what an uninterrupted one does
    let straight = dir.path().join("straight");
    ok(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        straight.to_str().unwrap(),
    ]);
    let s = common::metrics_rows(&straight);
    for (a, b) in r.iter().zip(&s) {
        for col in [1, 3] {
            let (x, y): (f64, f64) = (a[col].parse().unwrap(), b[col].parse().unwrap());
            assert!(
                (x - y).abs() < 1e-3,
                "epoch {}: column {col} {x} vs {y}",
                a[0]
            );
        }
    }
    // resuming a finished run with more epochs extends it
    ok(&["train", "--resume", out.to_str().unwrap(), "--epochs", "4"]);
    let ext = common::metrics_rows(&out);
    assert_eq!(ext.len(), 4);
}

#[test]
fn a_diverging_loss_stops_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth(dir.path(), 8);
    let cfg = common::tiny_config(dir.path(), &data, 2, "");
    let out = dir.path().join("nan");
    let o = run(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        "optim.name=\"sgd\"",
        "--set",
        "optim.lr=1e30",
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("loss became"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn grad_cam_highlights_a_region() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth(dir.path(), 12);
    let cfg = common::tiny_config(dir.path(), &data, 2, "");
    let out = dir.path().join("cam");
    ok(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let img = data.join("dots/dots_0000.png");
    let cam = dir.path().join("cam out.png");
    let o = run(&[
        "predict",
        "--run",
        out.to_str().unwrap(),
        "--cam",
        cam.to_str().unwrap(),
        img.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let overlay = image::open(&cam).unwrap().to_rgb8();
    let original = image::open(&img).unwrap().to_rgb8();
    assert_eq!(overlay.dimensions(), original.dimensions());
    assert_ne!(overlay.as_raw(), original.as_raw());
}

/// The offline demo (configs/demo.toml on the synthetic patterns) reaches 90% validation accuracy.
#[test]
fn demo_config_reaches_ninety_percent() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    ok(&[
        "data",
        "synth",
        "--out",
        data.to_str().unwrap(),
        "--per-class",
        "150",
        "--size",
        "64",
    ]);
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/demo.toml");
    let out = dir.path().join("run");
    ok(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let best: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("best.json")).unwrap()).unwrap();
    let acc = best["metrics"]["val_acc"].as_f64().unwrap();
    assert!(acc >= 0.9, "demo reached only {acc}");

    // Grad-CAM of the trained model is not a uniform map: on a 128x128 image of stripes with a
    // 64x64 patch of dots, the map of the dots class has cells near zero and cells near its peak.
    // (That the map is Grad-CAM is tested in resnext-train's tests/explain.rs.)
    let config: resnext_model::ModelConfig = serde_json::from_value(best["model"].clone()).unwrap();
    let classes: Vec<String> = serde_json::from_value(best["classes"].clone()).unwrap();
    let dots = classes.iter().position(|c| c == "dots").unwrap() as i64;
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let net = resnext_model::ResNeXt::new(&vs.root(), &config).unwrap();
    resnext_model::weights::load_weights(
        &vs,
        &out.join("best.safetensors"),
        resnext_model::weights::HeadPolicy::Strict,
    )
    .unwrap();
    let stripes = classes.iter().position(|c| c == "stripes").unwrap() as i64;
    let mut canvas =
        resnext_data::synth::draw(stripes as usize, 128, &mut resnext_data::rng::Rng::new(7));
    let patch = resnext_data::synth::draw(dots as usize, 64, &mut resnext_data::rng::Rng::new(99));
    image::imageops::replace(&mut canvas, &patch, 0, 0);
    let t = resnext_data::Transform::new(resnext_data::TransformConfig::resize_exact(128)).unwrap();
    let v = t.apply(&canvas, &mut resnext_data::rng::Rng::new(0));
    let x = tch::Tensor::from_slice(&v).view([1, 3, 128, 128]);
    let cam = resnext_train::explain::grad_cam(&net, &x, dots).unwrap();
    assert_eq!((cam.width, cam.height), (4, 4));
    assert!(
        cam.relative_spread() > 0.5,
        "nearly uniform map: {:?}",
        cam.values
    );
}

/// `--init-weights` from a run with another class count keeps everything but the head.
#[test]
fn init_weights_replace_a_mismatched_head() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth(dir.path(), 8);
    let cfg = common::tiny_config(dir.path(), &data, 1, "");
    let first = dir.path().join("four classes");
    ok(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        first.to_str().unwrap(),
    ]);
    // a two-class dataset from two of the four folders
    let two = dir.path().join("two");
    for class in ["dots", "rings"] {
        std::fs::create_dir_all(two.join(class)).unwrap();
        for e in std::fs::read_dir(data.join(class)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), two.join(class).join(e.file_name())).unwrap();
        }
    }
    let second = dir.path().join("two classes");
    let o = common::run(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--data",
        two.to_str().unwrap(),
        "--out",
        second.to_str().unwrap(),
        "--init-weights",
        first.join("best.safetensors").to_str().unwrap(),
        "--epochs",
        "1",
        "--set",
        "optim.lr=1e-12",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("kept the model's own fc.bias, fc.weight"),
        "{}",
        stderr(&o)
    );
    // with a vanishing learning rate the backbone is still the first run's
    let a = safetensors_tensor(&first.join("best.safetensors"), "layer1.0.conv2.weight");
    let b = safetensors_tensor(&second.join("best.safetensors"), "layer1.0.conv2.weight");
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-6, "backbone changed by {diff}");
    assert_eq!(
        safetensors_tensor(&second.join("best.safetensors"), "fc.bias").len(),
        2
    );
}

fn safetensors_tensor(path: &std::path::Path, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
