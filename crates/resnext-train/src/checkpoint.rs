//! The run directory and its checkpoints. Everything `eval` and `predict` need is in it:
//!
//! | file | what |
//! | --- | --- |
//! | `config.toml` | the fully resolved training config |
//! | `split.json` | `{"classes", "train", "val", "test"}`, paths relative to the data root |
//! | `metrics.csv` | one row per finished epoch |
//! | `best.safetensors` / `best.json` | weights of the best validation accuracy and their sidecar |
//! | `last.safetensors` / `last.json` | weights after the last finished epoch and their sidecar |
//! | `checkpoint.safetensors` | the resume point: weights, optimiser, EMA and loop state |
//!
//! The `.safetensors` weights carry torchvision's names (with `num_batches_tracked`), so
//! `torchvision.models.resnext50_32x4d(num_classes=2).load_state_dict(load_file(...), strict=True)`
//! accepts them. Every file is written atomically: a temporary file, flushed, then renamed.

use crate::error::TrainError;
use crate::metric::EpochRow;
use resnext_data::TransformConfig;
use resnext_model::ModelConfig;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::Tensor;

pub const CONFIG: &str = "config.toml";
pub const SPLIT: &str = "split.json";
pub const METRICS: &str = "metrics.csv";
pub const RESUME: &str = "checkpoint.safetensors";

/// Which saved weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Best,
    Last,
}

impl Which {
    pub fn parse(s: &str) -> Result<Self, TrainError> {
        match s {
            "best" => Ok(Which::Best),
            "last" => Ok(Which::Last),
            other => Err(TrainError::Invalid(format!(
                "unknown checkpoint `{other}` (expected best or last)"
            ))),
        }
    }
    pub fn stem(self) -> &'static str {
        match self {
            Which::Best => "best",
            Which::Last => "last",
        }
    }
}

/// The sidecar of a weights file: enough to rebuild the model and its eval transform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointInfo {
    pub model: ModelConfig,
    pub classes: Vec<String>,
    /// [height, width] of the network input.
    pub image_size: [u32; 2],
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub eval_transform: TransformConfig,
    /// The dataset the run trained on.
    pub data_root: PathBuf,
    /// The epoch (1-based) these weights come from.
    pub epoch: usize,
    pub metrics: EpochRow,
}

/// The loop state stored in the resume checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LoopState {
    /// Epochs finished.
    pub epoch: usize,
    pub best_val_acc: f64,
    pub best_epoch: usize,
    /// The early-stopping metric's best value and the epochs since it improved.
    pub stop_best: Option<f64>,
    pub stale_epochs: usize,
    pub history: Vec<EpochRow>,
    pub seed: u64,
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let err = |source: std::io::Error| TrainError::Write {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

/// Paths of a run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub dir: PathBuf,
}

impl RunDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn create(&self) -> Result<(), TrainError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| TrainError::Write {
            path: self.dir.clone(),
            source,
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn weights(&self, which: Which) -> PathBuf {
        self.dir.join(format!("{}.safetensors", which.stem()))
    }

    pub fn info_path(&self, which: Which) -> PathBuf {
        self.dir.join(format!("{}.json", which.stem()))
    }

    /// Reads a sidecar; a missing or malformed one is an error naming the file.
    pub fn info(&self, which: Which) -> Result<CheckpointInfo, TrainError> {
        let p = self.info_path(which);
        if !self.dir.is_dir() {
            return Err(TrainError::Read {
                path: self.dir.clone(),
                reason: "not a run directory (no such folder)".into(),
            });
        }
        let text = std::fs::read_to_string(&p).map_err(|e| TrainError::Read {
            path: p.clone(),
            reason: format!("{e} (is {} a finished run directory?)", self.dir.display()),
        })?;
        serde_json::from_str(&text).map_err(|e| TrainError::Read {
            path: p,
            reason: e.to_string(),
        })
    }

    pub fn write_info(&self, which: Which, info: &CheckpointInfo) -> Result<(), TrainError> {
        let json = serde_json::to_string_pretty(info).expect("info serialises");
        write_atomic(&self.info_path(which), json.as_bytes())
    }

    /// Saves the resume point: named tensors plus the loop state as a byte tensor `state.json`,
    /// in one file renamed into place, so weights, optimiser and state always agree.
    pub fn save_resume(
        &self,
        mut tensors: Vec<(String, Tensor)>,
        state: &LoopState,
    ) -> Result<(), TrainError> {
        let json = serde_json::to_vec(state).expect("state serialises");
        tensors.push(("state.json".into(), Tensor::from_slice(&json)));
        resnext_model::weights::write_tensors_atomic(&tensors, &self.path(RESUME))?;
        Ok(())
    }

    /// Loads the resume point.
    pub fn load_resume(&self) -> Result<(HashMap<String, Tensor>, LoopState), TrainError> {
        let p = self.path(RESUME);
        if !p.exists() {
            return Err(TrainError::NothingToResume(self.dir.clone()));
        }
        let tensors: HashMap<String, Tensor> = Tensor::read_safetensors(&p)
            .map_err(|e| TrainError::Read {
                path: p.clone(),
                reason: e.to_string(),
            })?
            .into_iter()
            .collect();
        let state = tensors.get("state.json").ok_or_else(|| TrainError::Read {
            path: p.clone(),
            reason: "no state.json entry".into(),
        })?;
        let bytes: Vec<u8> = Vec::<u8>::try_from(state).map_err(|e| TrainError::Read {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        let state: LoopState = serde_json::from_slice(&bytes).map_err(|e| TrainError::Read {
            path: p,
            reason: e.to_string(),
        })?;
        Ok((tensors, state))
    }
}
