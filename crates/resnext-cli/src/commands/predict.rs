//! `resnext predict`: a [`Predictor`] (the eval transform, never the training one; class names
//! from the run), top-k, JSON lines, test-time flip, and Grad-CAM overlays.

use crate::args::PredictArgs;
use anyhow::{bail, Result};
use resnext_data::{decode_file, DecodeLimits};
use resnext_train::Prediction;
use std::path::Path;
use std::process::ExitCode;

pub fn run(a: PredictArgs) -> Result<ExitCode> {
    if a.top_k == 0 {
        bail!("--top-k must be at least 1");
    }
    let opts = a.numerics.resolve(a.tta)?;
    let predictor = crate::source::load_source(&a.source, opts)?
        .predictor
        .with_batch_size(a.batch_size);
    let predictor = if a.fold_bn {
        predictor.with_folded_batchnorm()?
    } else {
        predictor
    };
    let images = crate::image_input::expand(&a.images, a.follow_links)?;
    if let Some(out) = &a.cam {
        if images.len() != 1 {
            bail!(
                "--cam writes one overlay: give exactly one image (got {})",
                images.len()
            );
        }
        if crate::image_input::same_file(out, &images[0]) {
            bail!(
                "--cam {} would overwrite the input photo; choose another output file",
                out.display()
            );
        }
        resnext_train::owned::refuse_owned(out, "--cam")?;
        resnext_io::check_target(out)?;
    }
    if let Some(c) = a.cam_class {
        if a.cam.is_none() {
            bail!("--cam-class goes with --cam");
        }
        if c < 0 || c as usize >= predictor.num_classes() {
            bail!(
                "--cam-class {c} is not a class index (0..{})",
                predictor.num_classes()
            );
        }
    }
    let top_k = a.top_k.min(predictor.num_classes());
    for chunk in images.chunks(a.batch_size.max(1)) {
        let decoded = chunk
            .iter()
            .map(|p| decode_file(p, DecodeLimits::default()))
            .collect::<Result<Vec<_>, _>>()?;
        let predictions = predictor.predict(&decoded)?;
        for ((path, img), p) in chunk.iter().zip(&decoded).zip(&predictions) {
            if let Some(out) = &a.cam {
                let heatmap = predictor.explain(img, a.cam_class.map(|c| c as usize))?;
                let png = heatmap.overlay_png(img)?;
                resnext_io::write_atomic(out, &png)?;
                eprintln!(
                    "Grad-CAM of class {} (relative spread {:.3}) -> {}",
                    heatmap.class,
                    heatmap.cam.relative_spread(),
                    out.display()
                );
            }
            let decision = predictor
                .info()
                .and_then(|i| Some(i.operating_point.as_ref()?.decide(&p.logits, &i.classes)));
            if a.json {
                let mut line = json_line(path, p);
                if let Some(d) = &decision {
                    line["decision"] = serde_json::to_value(d)?;
                }
                println!("{line}");
            } else {
                let tops: Vec<String> = p
                    .top_k(top_k)
                    .into_iter()
                    .map(|(i, prob)| format!("{} {prob:.4}", predictor.class_name(i)))
                    .collect();
                let decided = decision.map_or(String::new(), |d| {
                    format!(" (decision at {:.4}: {})", d.threshold, d.label)
                });
                println!("{}: {}{decided}", path.display(), tops.join(", "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The JSON object of one prediction (the format is stable: `path`, `class`, `probs`, `logits`,
/// and `label` when the model has class names).
fn json_line(path: &Path, p: &Prediction) -> serde_json::Value {
    let mut obj = serde_json::json!({
        "path": path.to_string_lossy(),
        "class": p.class,
        "probs": p.probs,
        "logits": p.logits,
    });
    if let Some(l) = &p.label {
        obj["label"] = serde_json::Value::String(l.clone());
    }
    obj
}
