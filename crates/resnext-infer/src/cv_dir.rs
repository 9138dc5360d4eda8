//! The files of a cross-validation directory (`resnext cv`) besides its folds' run directories:
//! spelled here, in [`CvFile`], for the training crate that writes them and for readers; a fold's
//! `predictions.json` ([`PredictionsFile`]) and a finished directory read back ([`CvDir`]: its
//! `folds.json` and every out-of-fold prediction, for `resnext compare`).

use crate::error::InferError;
use crate::run::{Run, RunFile};
use crate::run_eval::SamplePrediction;
use resnext_data::folds::Folds;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The files of a cross-validation directory (besides the fold runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CvFile {
    Settings,
    Folds,
    Oof,
    Summary,
    Figure,
    /// The cross-validation as one self-contained HTML page.
    Report,
}

impl CvFile {
    /// Every file a cross-validation directory holds besides its folds' run directories, but
    /// [`CvFile::Report`]: a run has a `report.html` too, and these lists tell the two kinds
    /// apart (`owned.rs` adds it).
    pub const ALL: [CvFile; 5] = [
        CvFile::Settings,
        CvFile::Folds,
        CvFile::Oof,
        CvFile::Summary,
        CvFile::Figure,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CvFile::Settings => "cv.toml",
            CvFile::Folds => "folds.json",
            CvFile::Oof => "oof.csv",
            CvFile::Summary => "cv.json",
            CvFile::Figure => "cv.png",
            // the same page name as a run's
            CvFile::Report => RunFile::Report.name(),
        }
    }
}

/// `predictions.json` of a fold: the test fold's images with their labels and probabilities.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PredictionsFile {
    pub images: Vec<PredictionRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PredictionRow {
    pub path: String,
    pub label: usize,
    pub probs: Vec<f64>,
}

impl PredictionsFile {
    /// Reads a fold's `predictions.json`, every row checked against `classes` (its label one
    /// of them, one probability for each).
    pub fn read(path: &Path, classes: usize) -> Result<PredictionsFile, InferError> {
        let bytes = resnext_data::safe_path::read_regular(path)?;
        let file: PredictionsFile =
            serde_json::from_slice(&bytes).map_err(|e| InferError::read(path, e))?;
        if let Some(p) = file
            .images
            .iter()
            .find(|p| p.label >= classes || p.probs.len() != classes)
        {
            let reason = format!("a prediction of {} does not fit {classes} classes", p.path);
            return Err(InferError::read(path, reason));
        }
        Ok(file)
    }
}

impl From<&SamplePrediction> for PredictionRow {
    fn from(s: &SamplePrediction) -> Self {
        Self {
            path: s.path.clone(),
            label: s.label,
            probs: s.probs.clone(),
        }
    }
}

impl From<&[SamplePrediction]> for PredictionsFile {
    fn from(p: &[SamplePrediction]) -> Self {
        Self {
            images: p.iter().map(PredictionRow::from).collect(),
        }
    }
}

/// The directory of fold `fold` of repeat `repeat`: `fold-<i>`, or `repeat-<r>/fold-<i>` when
/// there are repeats.
pub fn fold_name(repeats: usize, repeat: usize, fold: usize) -> String {
    if repeats > 1 {
        format!("repeat-{repeat}/fold-{fold}")
    } else {
        format!("fold-{fold}")
    }
}

/// One out-of-fold prediction: the image's prediction by the fold that tested it.
#[derive(Debug, Clone)]
pub struct OutOfFold {
    pub repeat: usize,
    pub fold: usize,
    pub prediction: SamplePrediction,
}

/// A finished cross-validation directory, read: its folds and every fold's test predictions,
/// sorted by repeat, then path.
#[derive(Debug, Clone)]
pub struct CvDir {
    pub dir: PathBuf,
    pub folds: Folds,
    pub predictions: Vec<OutOfFold>,
}

impl CvDir {
    /// Whether `dir` holds a cross-validation (its `folds.json`).
    pub fn is_cv_dir(dir: &Path) -> bool {
        dir.join(CvFile::Folds.name()).is_file()
    }

    /// Reads `folds.json` and every fold's `predictions.json`; refuses a directory that is not
    /// a cross-validation's, a fold not finished, or predictions that do not fit the folds.
    pub fn open(dir: &Path) -> Result<CvDir, InferError> {
        if !Self::is_cv_dir(dir) {
            return Err(InferError::NotARun {
                dir: dir.to_path_buf(),
                reason: "it has no folds.json (not a `resnext cv` directory)",
            });
        }
        let folds = Folds::load(&dir.join(CvFile::Folds.name()))?;
        let mut predictions = Vec::new();
        for repeat in 0..folds.repeats {
            for fold in 0..folds.k {
                let run = Run::at(dir.join(fold_name(folds.repeats, repeat, fold)));
                let path = run.path(RunFile::Predictions);
                if !path.is_file() {
                    return Err(InferError::NotARun {
                        dir: run.dir().to_path_buf(),
                        reason: "this fold is not finished (no predictions.json); run `resnext cv` again to finish it",
                    });
                }
                for p in PredictionsFile::read(&path, folds.classes.len())?.images {
                    predictions.push(OutOfFold {
                        repeat,
                        fold,
                        prediction: SamplePrediction {
                            path: p.path,
                            label: p.label,
                            probs: p.probs,
                            logits: Vec::new(),
                        },
                    });
                }
            }
        }
        predictions
            .sort_by(|a, b| (a.repeat, &a.prediction.path).cmp(&(b.repeat, &b.prediction.path)));
        Ok(CvDir {
            dir: dir.to_path_buf(),
            folds,
            predictions,
        })
    }

    /// The patient (`folds.json`'s group) of each prediction, in order; an image `folds.json`
    /// does not list is its own.
    pub fn groups(&self) -> Vec<String> {
        let group_of = self.folds.group_of();
        self.predictions
            .iter()
            .map(|p| {
                let path = p.prediction.path.as_str();
                group_of.get(path).copied().unwrap_or(path).to_string()
            })
            .collect()
    }
}
