//! `resnext predict`: the eval transform (never the training one), class names from the run,
//! top-k, JSON lines, test-time flip, and Grad-CAM overlays.

use super::gradcam;
use crate::args::PredictArgs;
use anyhow::{bail, Context, Result};
use resnext_data::rng::Rng;
use resnext_data::{decode_file, DecodeLimits, Transform, TransformConfig};
use resnext_model::weights::{load_weights, HeadPolicy};
use resnext_model::ResNeXt;
use resnext_train::evaluate::{logits, RunOptions};
use std::process::ExitCode;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

pub fn run(a: PredictArgs) -> Result<ExitCode> {
    let device = resnext_train::trainer::parse_device(&a.device)?;
    let (net, transform, classes, _vs) = if let Some(dir) = &a.run {
        if a.num_classes.is_some()
            || a.model.layers.is_some()
            || a.model.groups.is_some()
            || a.model.width_per_group.is_some()
        {
            bail!("--run brings its own architecture; drop --arch/--num-classes/--layers/--groups/--width-per-group");
        }
        let m = super::run_model::load(dir, &a.checkpoint, device)?;
        (m.net, m.transform, Some(m.info.classes), m.vs)
    } else {
        let Some(weights) = a.weights.clone() else {
            bail!("give --run DIR or --weights FILE");
        };
        let num_classes = a.num_classes.context("--weights needs --num-classes")?;
        let config = super::model_config(&a.model, num_classes)?;
        let vs = VarStore::new(device);
        let net = ResNeXt::new(&vs.root(), &config)?;
        load_weights(&vs, &weights, HeadPolicy::Strict)?;
        (
            net,
            Transform::new(TransformConfig::resize_exact(a.image_size))?,
            None,
            vs,
        )
    };
    let images = crate::image_input::expand(&a.images)?;
    if a.cam.is_some() && images.len() != 1 {
        bail!(
            "--cam writes one overlay: give exactly one image (got {})",
            images.len()
        );
    }
    if a.top_k == 0 {
        bail!("--top-k must be at least 1");
    }
    let opts = RunOptions {
        device,
        tta: a.tta,
        ..RunOptions::cpu()
    };
    let [h, w] = transform.size();
    for path in &images {
        let img = decode_file(path, DecodeLimits::default())?;
        let v = transform.apply(&img, &mut Rng::new(0));
        let x = Tensor::from_slice(&v).view([1, 3, h as i64, w as i64]);
        let l = logits(&net, &x, opts);
        let mut probs_t = l.softmax(1, Kind::Float);
        if a.tta {
            probs_t = (probs_t + logits(&net, &x.flip([3]), opts).softmax(1, Kind::Float)) / 2.0;
        }
        let lv: Vec<f32> = Vec::<f32>::try_from(l.view([-1]))?;
        let probs: Vec<f32> = Vec::<f32>::try_from(probs_t.view([-1]))?;
        let class = argmax(&probs);
        let label = classes.as_ref().map(|c| c[class].clone());
        if let Some(out) = &a.cam {
            let target = a.cam_class.unwrap_or(class as i64);
            if target < 0 || target as usize >= probs.len() {
                bail!(
                    "--cam-class {target} is not a class index (0..{})",
                    probs.len()
                );
            }
            let cam = resnext_train::explain::grad_cam(&net, &x.to_device(device), target)?;
            gradcam::write_overlay(&img, &cam, out)?;
            eprintln!(
                "Grad-CAM of class {target} (relative spread {:.3}) -> {}",
                cam.relative_spread(),
                out.display()
            );
        }
        if a.json {
            let mut obj = serde_json::json!({"path": path.to_string_lossy(), "class": class, "probs": probs, "logits": lv});
            if let Some(l) = &label {
                obj["label"] = serde_json::Value::String(l.clone());
            }
            println!("{obj}");
        } else {
            let mut order: Vec<usize> = (0..probs.len()).collect();
            order.sort_by(|&i, &j| probs[j].total_cmp(&probs[i]));
            let name = |i: usize| {
                classes
                    .as_ref()
                    .map(|c| c[i].clone())
                    .unwrap_or_else(|| format!("class {i}"))
            };
            let tops: Vec<String> = order
                .iter()
                .take(a.top_k)
                .map(|&i| format!("{} {:.4}", name(i), probs[i]))
                .collect();
            println!("{}: {}", path.display(), tops.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv {
                (i, x)
            } else {
                (bi, bv)
            }
        })
        .0
}
