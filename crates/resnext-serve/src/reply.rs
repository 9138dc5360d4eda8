//! The JSON replies as types: what `/v1/predict`, `/v1/model`, `/healthz` and `/readyz` send
//! (errors are [`crate::error::ErrorBody`]). The OpenAPI document's schemas derive from them.
//! Types of other crates (the model's config, the eval transform, the epoch's metrics) are
//! documented as objects.

use resnext_data::TransformConfig;
use resnext_infer::metric::operating_point::{Decision, OperatingPoint};
use resnext_infer::metric::EpochRow;
use resnext_infer::{CheckpointInfo, Precision, Predictor};
use resnext_model::ModelConfig;
use serde::{Serialize, Serializer};
use std::fmt;
use utoipa::ToSchema;

/// `/healthz` and `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    pub status: Health,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// The process answers (`/healthz`).
    Ok,
    /// The model is loaded (`/readyz`).
    Ready,
}

/// `/v1/predict`: the object `resnext predict --json` prints, without `path`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PredictReply {
    /// The most likely class index.
    pub class: usize,
    /// Its name.
    pub label: String,
    /// One probability per class (the TTA average with `tta=true`).
    pub probs: Vec<f32>,
    /// One logit per class, of the image itself (not flipped).
    pub logits: Vec<f32>,
    /// With `top_k=K`: the K most likely classes, most likely first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<Vec<Ranked>>,
    /// When the run has an operating point (`eval --operating-point`): the decision at its
    /// threshold on the positive class's probability.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub decision: Option<Decision>,
}

/// One of the most likely classes.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ranked {
    pub class: usize,
    pub label: String,
    pub prob: f32,
}

/// `/v1/model`: the run's sidecar without its server paths (no `data_root`), and how this server
/// runs the network.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelReply {
    /// The architecture (`resnext-model`'s `ModelConfig`).
    #[schema(value_type = Object)]
    pub model: ModelConfig,
    /// One name per class (`class i` when the weights came without names).
    pub classes: Vec<String>,
    #[serde(flatten)]
    #[schema(value_type = Trained)]
    pub trained: Option<Trained>,
    pub serving: Serving,
}

/// What the sidecar says of the training: `image_size` to `metrics` all come, or none when the
/// weights came without a sidecar; the others when the sidecar has them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Trained {
    /// [height, width] of the network input.
    #[schema(required = false)]
    pub image_size: [u32; 2],
    #[schema(required = false)]
    pub mean: [f32; 3],
    #[schema(required = false)]
    pub std: [f32; 3],
    /// The eval transform (`resnext-data`'s `TransformConfig`).
    #[schema(value_type = Object, required = false)]
    pub eval_transform: TransformConfig,
    /// The epoch (1-based) the weights come from.
    #[schema(required = false)]
    pub epoch: usize,
    /// That epoch's metrics.
    #[schema(value_type = Object, required = false)]
    pub metrics: EpochRow,
    /// Temperature scaling from `resnext eval --calibrate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// The precision the training ran in.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "fp32")]
    pub precision: Option<Precision>,
    /// Whether the training ran channels-last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels_last: Option<bool>,
    /// The operating point `predict` replies decide with (`eval --operating-point`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub operating_point: Option<OperatingPoint>,
}

/// How this server runs the network.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Serving {
    #[schema(value_type = String, example = "fp32")]
    pub precision: Precision,
    pub channels_last: bool,
    #[schema(value_type = String, example = "cpu")]
    pub device: DeviceName,
}

/// A device as `--device` names it: `cpu`, `cuda:N` (and `mps`, `vulkan`).
#[derive(Debug, Clone, Copy)]
pub struct DeviceName(pub tch::Device);

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            tch::Device::Cpu => f.write_str("cpu"),
            tch::Device::Cuda(n) => write!(f, "cuda:{n}"),
            tch::Device::Mps => f.write_str("mps"),
            tch::Device::Vulkan => f.write_str("vulkan"),
        }
    }
}

impl Serialize for DeviceName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl ModelReply {
    pub fn of(p: &Predictor, classes: Vec<String>) -> Self {
        let opts = p.options();
        // every field of the sidecar named (once, for the pattern and the reply): one added to
        // the sidecar is a decision here, not a leak
        macro_rules! trained {
            ($info:expr => $($field:ident),*) => {{
                let CheckpointInfo { model, classes: _, data_root: _, $($field),* } = $info;
                (model, Some(Trained { $($field),* }))
            }};
        }
        let (model, trained) = match p.info() {
            None => (p.net().config().clone(), None),
            Some(info) => trained! { info.clone() => image_size, mean, std, eval_transform,
            epoch, metrics, temperature, precision, channels_last, operating_point },
        };
        Self {
            model,
            classes,
            trained,
            serving: Serving {
                precision: opts.precision,
                channels_last: opts.channels_last,
                device: DeviceName(opts.device),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_named_as_the_cli_names_them() {
        for (d, name) in [(tch::Device::Cpu, "cpu"), (tch::Device::Cuda(1), "cuda:1")] {
            assert_eq!(DeviceName(d).to_string(), name);
            assert_eq!(serde_json::to_value(DeviceName(d)).unwrap(), name);
        }
    }
}
