//! The library path from a run directory to predictions, reports and plots, with no CLI: train
//! a tiny model with `Trainer`, then `Run::open`, `predictor`, `evaluate`, `save_eval`, `plot`.

use resnext_data::{decode_file, DecodeLimits};
use resnext_train::trainer::Silent;
use resnext_train::{
    Checkpoint, EvalOptions, NoProgress, Run, RunFile, RunOptions, SplitPart, TrainConfig, Trainer,
};
use std::path::Path;

/// The tests' tiny config with another eval transform.
fn tiny_config(root: &Path, eval_transform: &str) -> TrainConfig {
    let text = resnext_testkit::tiny_config_text(root, 2, "").replace(
        "[data.eval_transform]\nresize = [32, 32]",
        &format!("[data.eval_transform]\n{eval_transform}"),
    );
    TrainConfig::from_toml(&text, Path::new("<test>")).unwrap()
}

#[test]
fn a_run_opens_predicts_evaluates_and_plots_without_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    resnext_data::synth::write_dataset(&data, 6, 32, 0).unwrap();
    let out = dir.path().join("run");
    let (mut trainer, _) =
        Trainer::new(tiny_config(&data, "resize = [32, 32]"), &out, None).unwrap();
    trainer.fit(&mut Silent).unwrap();
    drop(trainer);

    let run = Run::open(&out).unwrap();
    let predictor = run.predictor(Checkpoint::Best, RunOptions::cpu()).unwrap();
    let classes = predictor.classes().unwrap().to_vec();
    assert_eq!(
        classes,
        resnext_data::synth::CLASSES.map(String::from).to_vec()
    );

    // predict: batched answers equal one-by-one answers, probabilities sum to one
    let split = run.split().unwrap();
    let images: Vec<_> = split.val[..5]
        .iter()
        .map(|p| decode_file(&data.join(p), DecodeLimits::default()).unwrap())
        .collect();
    let batched = predictor.with_batch_size(2).predict(&images).unwrap();
    let predictor = run.predictor(Checkpoint::Best, RunOptions::cpu()).unwrap();
    for (img, b) in images.iter().zip(&batched) {
        let single = &predictor.predict(std::slice::from_ref(img)).unwrap()[0];
        assert_eq!(single.class, b.class);
        for (x, y) in single.probs.iter().zip(&b.probs) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
        let sum: f32 = b.probs.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4);
        assert_eq!(b.label.as_deref(), Some(classes[b.class].as_str()));
    }

    // BatchNorm folded into the convolutions: the same logits to 1e-4
    let folded = run
        .predictor(Checkpoint::Best, RunOptions::cpu())
        .unwrap()
        .with_folded_batchnorm()
        .unwrap()
        .predict(&images)
        .unwrap();
    for (a, b) in batched.iter().zip(&folded) {
        for (x, y) in a.logits.iter().zip(&b.logits) {
            assert!((x - y).abs() <= 1e-4, "unfolded {x} vs folded {y}");
        }
    }

    // bf16 + channels-last: the same answers within bf16's precision
    let bf16 = run
        .predictor(
            Checkpoint::Best,
            RunOptions {
                precision: resnext_train::Precision::Bf16,
                channels_last: true,
                ..RunOptions::cpu()
            },
        )
        .unwrap()
        .predict(&images)
        .unwrap();
    for (a, b) in batched.iter().zip(&bf16) {
        for (x, y) in a.probs.iter().zip(&b.probs) {
            assert!((x - y).abs() < 0.05, "fp32 {x} vs bf16 {y}");
        }
    }

    // evaluate: the report covers the val part; eval.json round-trips; TTA changes the numbers
    let report = run.evaluate(&EvalOptions::default(), &NoProgress).unwrap();
    assert_eq!(report.report.samples, split.val.len());
    assert_eq!(report.split, "val");
    run.save_eval(&report).unwrap();
    assert_eq!(run.eval_report().unwrap().unwrap(), report);
    let text = std::fs::read_to_string(run.path(RunFile::Eval)).unwrap();
    assert!(text.contains("\"macro\""), "eval.json keeps its keys");
    let tta = run
        .evaluate(
            &EvalOptions {
                run: RunOptions {
                    tta: true,
                    ..RunOptions::cpu()
                },
                ..EvalOptions::default()
            },
            &NoProgress,
        )
        .unwrap();
    assert!(tta.tta);
    assert_ne!(
        tta.report.loss, report.report.loss,
        "--tta must change the mean loss"
    );
    let all = run
        .evaluate(
            &EvalOptions {
                part: SplitPart::All,
                ..EvalOptions::default()
            },
            &NoProgress,
        )
        .unwrap();
    assert_eq!(all.report.samples, 24);

    // plot: the three figures from metrics.csv and eval.json
    let written = run.plot(&NoProgress).unwrap();
    for f in [RunFile::Curves, RunFile::ConfusionMatrix, RunFile::Roc] {
        let expected = run.path(f);
        if f == RunFile::Roc {
            // four classes: no binary ROC curve
            assert!(!written.contains(&expected));
            continue;
        }
        assert!(written.contains(&expected), "{}", expected.display());
        let png = std::fs::read(&expected).unwrap();
        assert_eq!(&png[..4], b"\x89PNG");
    }
}

#[test]
fn the_grad_cam_overlay_covers_exactly_the_pixels_the_model_saw() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    resnext_data::synth::write_dataset(&data, 4, 48, 1).unwrap();
    let out = dir.path().join("run");
    // resize the shorter side to 40 and centre-crop 32×32: a 90×60 photo becomes 60×40, the crop
    // keeps x in [14, 46) and y in [4, 36) of it, which is [21, 69) × [6, 54) of the photo
    let cfg = tiny_config(&data, "resize_shorter = 40\ncenter_crop = [32, 32]");
    let (mut trainer, _) = Trainer::new(cfg, &out, None).unwrap();
    trainer.fit(&mut Silent).unwrap();
    drop(trainer);
    let predictor = Run::open(&out)
        .unwrap()
        .predictor(Checkpoint::Last, RunOptions::cpu())
        .unwrap();
    let photo = image::RgbImage::from_fn(90, 60, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 3) as u8, 200])
    });
    let heatmap = predictor.explain(&photo, Some(1)).unwrap();
    assert_eq!(heatmap.class, 1);
    let [l, t, r, b] = heatmap.region;
    assert_eq!([l, t, r, b], [21.0, 6.0, 69.0, 54.0]);
    let overlay = heatmap.overlay(&photo);
    assert_eq!(overlay.dimensions(), photo.dimensions());
    let norm = heatmap.cam.normalised();
    for (x, y) in [
        (0, 0),
        (89, 59),
        (20, 30),
        (69, 30),
        (45, 5),
        (21, 6),
        (45, 30),
        (68, 53),
    ] {
        let inside = heatmap.value_at(&norm, x, y).is_some();
        let fx = x as f32 + 0.5;
        let fy = y as f32 + 0.5;
        assert_eq!(inside, fx >= l && fx < r && fy >= t && fy < b);
        if !inside {
            // dimmed, no colour map
            let p = photo.get_pixel(x, y).0;
            let o = overlay.get_pixel(x, y).0;
            for k in 0..3 {
                assert_eq!(o[k], (p[k] as f32 * 0.35).round() as u8);
            }
        }
    }
}
