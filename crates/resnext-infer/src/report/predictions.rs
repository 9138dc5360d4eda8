//! `eval_predictions.json`: each image's probabilities of the last `eval` (beside `eval.json`),
//! which the report's curve bands and its gallery of errors are drawn from: a fold's
//! `predictions.json` ([`crate::cv_dir::PredictionsFile`]) with what was evaluated and where.

use crate::checkpoint::Checkpoint;
use crate::cv_dir::{PredictionRow, PredictionsFile};
use crate::error::InferError;
use crate::metric::EvalReport;
use crate::run::{Run, RunFile};
use crate::run_eval::SamplePrediction;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The file: what was evaluated, where its images are, and each image's prediction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalPredictions {
    /// The part evaluated (as `eval.json`'s `split`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// The data root the images were read from; absent: the sidecar's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_root: Option<PathBuf>,
    pub images: Vec<PredictionRow>,
}

impl From<PredictionsFile> for EvalPredictions {
    fn from(f: PredictionsFile) -> Self {
        Self {
            split: None,
            checkpoint: None,
            data_root: None,
            images: f.images,
        }
    }
}

impl EvalPredictions {
    /// The predictions of an evaluation.
    pub fn of(report: &EvalReport, preds: &[SamplePrediction], data_root: PathBuf) -> Self {
        Self {
            split: Some(report.split.clone()),
            checkpoint: Some(report.checkpoint),
            data_root: Some(data_root),
            images: preds.iter().map(PredictionRow::from).collect(),
        }
    }

    /// Whether these are the predictions `report` was computed from (same part, same size,
    /// labels within its classes).
    pub fn matches(&self, report: &EvalReport) -> bool {
        let k = report.classes.len();
        self.split.as_ref().is_none_or(|s| *s == report.split)
            && self.images.len() == report.report.samples
            && self
                .images
                .iter()
                .all(|p| p.label < k && p.probs.len() == k)
    }

    /// The probabilities and labels.
    pub fn probs_labels(&self) -> (Vec<Vec<f64>>, Vec<usize>) {
        (
            self.images.iter().map(|p| p.probs.clone()).collect(),
            self.images.iter().map(|p| p.label).collect(),
        )
    }
}

/// A JSON file of the run, if it is there.
fn read<T: serde::de::DeserializeOwned>(
    run: &Run,
    which: RunFile,
) -> Result<Option<T>, InferError> {
    let path = run.path(which);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = resnext_data::safe_path::read_regular(&path)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| InferError::read(path, e))
}

impl Run {
    /// Writes `eval_predictions.json`.
    pub fn save_eval_predictions(&self, file: &EvalPredictions) -> Result<PathBuf, InferError> {
        let path = self.path(RunFile::EvalPredictions);
        let json = serde_json::to_vec(file).map_err(|e| InferError::read(&path, e))?;
        resnext_io::write_atomic(&path, &json)?;
        Ok(path)
    }

    /// The predictions `eval.json` was computed from: `eval_predictions.json`, else a
    /// cross-validation fold's `predictions.json`, when they match `report`.
    pub fn predictions_of(
        &self,
        report: &EvalReport,
    ) -> Result<Option<EvalPredictions>, InferError> {
        let own: Option<EvalPredictions> = read(self, RunFile::EvalPredictions)?;
        if let Some(p) = own.filter(|p| p.matches(report)) {
            return Ok(Some(p));
        }
        let fold: Option<PredictionsFile> = read(self, RunFile::Predictions)?;
        Ok(fold
            .map(EvalPredictions::from)
            .filter(|p| p.matches(report)))
    }
}
