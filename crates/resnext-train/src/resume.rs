//! The resume point of a run (`checkpoint.safetensors`): the weights, the optimiser's and the
//! EMA's state, and the loop state ([`LoopState`]) as a byte tensor `state.json`, in one file
//! renamed into place, so that they always agree. Training's part of the run directory, added to
//! [`Run`] by [`ResumePoint`].

use crate::error::TrainError;
use resnext_infer::metric::EpochRow;
use resnext_infer::run::{Run, RunFile};
use resnext_infer::InferError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tch::Tensor;

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

/// Saving and loading a run's resume point.
pub trait ResumePoint {
    /// Saves the resume point: named tensors plus the loop state.
    fn save_resume(
        &self,
        tensors: Vec<(String, Tensor)>,
        state: &LoopState,
    ) -> Result<(), TrainError>;
    /// Loads the resume point.
    fn load_resume(&self) -> Result<(HashMap<String, Tensor>, LoopState), TrainError>;
}

impl ResumePoint for Run {
    /// Saves the resume point: named tensors plus the loop state as a byte tensor `state.json`,
    /// in one file renamed into place, so weights, optimiser and state always agree.
    fn save_resume(
        &self,
        mut tensors: Vec<(String, Tensor)>,
        state: &LoopState,
    ) -> Result<(), TrainError> {
        let json = serde_json::to_vec(state).map_err(|e| InferError::Read {
            path: self.path(RunFile::Resume),
            reason: e.to_string(),
        })?;
        tensors.push(("state.json".into(), Tensor::from_slice(&json)));
        resnext_model::weights::write_tensors_atomic(&tensors, &self.path(RunFile::Resume))?;
        Ok(())
    }

    /// Loads the resume point.
    fn load_resume(&self) -> Result<(HashMap<String, Tensor>, LoopState), TrainError> {
        let p = self.path(RunFile::Resume);
        if !p.exists() {
            return Err(TrainError::NothingToResume(self.dir().to_path_buf()));
        }
        let bad = |reason: String| InferError::Read {
            path: p.clone(),
            reason,
        };
        resnext_data::safe_path::check_regular(&p)?;
        let tensors: HashMap<String, Tensor> = Tensor::read_safetensors(&p)
            .map_err(|e| bad(e.to_string()))?
            .into_iter()
            .collect();
        let state = tensors
            .get("state.json")
            .ok_or_else(|| bad("no state.json entry".into()))?;
        let bytes: Vec<u8> = Vec::<u8>::try_from(state).map_err(|e| bad(e.to_string()))?;
        let state: LoopState = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        Ok((tensors, state))
    }
}
