//! `resnext eval`: the classification report of a run on its val, test or every image, printed
//! as a table and written to `<run>/eval.json`.

use crate::args::EvalArgs;
use anyhow::{bail, Result};
use resnext_data::loader::PixelType;
use resnext_data::split::Split;
use resnext_data::{Loader, LoaderConfig};
use resnext_train::checkpoint::{write_atomic, SPLIT};
use resnext_train::evaluate::{predict, RunOptions};
use resnext_train::metric::{roc_curve, Report};
use std::path::Path;
use std::process::ExitCode;

pub fn run(a: EvalArgs) -> Result<ExitCode> {
    let device = resnext_train::trainer::parse_device(&a.device)?;
    let report = evaluate(
        &a.run,
        a.data.as_deref(),
        &a.split,
        &a.checkpoint,
        a.tta,
        device,
        a.batch_size,
    )?;
    print!("{}", report.0.table());
    println!("-> {}", a.run.join("eval.json").display());
    Ok(ExitCode::SUCCESS)
}

/// Evaluates and writes eval.json; returns the report and its JSON.
pub fn evaluate(
    dir: &Path,
    data: Option<&Path>,
    part: &str,
    checkpoint: &str,
    tta: bool,
    device: tch::Device,
    batch_size: Option<usize>,
) -> Result<(Report, serde_json::Value)> {
    let m = super::run_model::load(dir, checkpoint, device)?;
    let split = Split::load(&m.run.path(SPLIT))?;
    let root = data
        .map(Path::to_path_buf)
        .unwrap_or_else(|| m.info.data_root.clone());
    let paths: Vec<String> = match part {
        "val" => split.val.clone(),
        "test" => split.test.clone(),
        "train" => split.train.clone(),
        "all" => split
            .train
            .iter()
            .chain(&split.val)
            .chain(&split.test)
            .cloned()
            .collect(),
        other => bail!("unknown --split `{other}` (expected val, test or all)"),
    };
    if paths.is_empty() {
        bail!("the run's split has no `{part}` images");
    }
    let samples = split.samples(&paths, &root)?;
    let mut lc = LoaderConfig::new(batch_size.unwrap_or(32), m.info.classes.len());
    lc.pixels = PixelType::F32;
    let loader = Loader::new(&root, &samples, m.transform.clone(), lc)?;
    let opts = RunOptions {
        device,
        tta,
        ..RunOptions::cpu()
    };
    let preds = predict(&m.net, &loader, opts)?;
    let report = Report::from_predictions(&m.info.classes, &preds.probs, &preds.labels, preds.loss);
    let mut json = report.to_json();
    json["split"] = serde_json::Value::String(part.to_string());
    json["checkpoint"] = serde_json::Value::String(checkpoint.to_string());
    json["tta"] = serde_json::Value::Bool(tta);
    json["classes"] = serde_json::json!(m.info.classes);
    if m.info.classes.len() == 2 {
        let scores: Vec<f64> = preds.probs.iter().map(|p| p[1]).collect();
        let pos: Vec<bool> = preds.labels.iter().map(|&y| y == 1).collect();
        json["roc_curve"] = serde_json::json!(roc_curve(&scores, &pos));
    }
    write_atomic(
        &dir.join("eval.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    Ok((report, json))
}
