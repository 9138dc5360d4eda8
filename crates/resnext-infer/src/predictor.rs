//! A trained model ready to predict: the network, its eval transform (never the training one),
//! class names, device and precision. `resnext predict`, `eval`, Grad-CAM and the server use it.

use crate::checkpoint::{Checkpoint, CheckpointInfo};
use crate::error::InferError;
use crate::evaluate::{logits_and_probs_at, RunOptions};
use crate::explain::{grad_cam, Heatmap};
use crate::metric::argmax;
use crate::run::{Run, RunFile};
use image::RgbImage;
use resnext_data::rng::Rng;
use resnext_data::{Transform, TransformConfig};
use resnext_model::weights::{load_weights_from, HeadPolicy, WeightsFile};
use resnext_model::{ModelConfig, ResNeXt};
use std::path::Path;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

/// The prediction for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The most likely class index.
    pub class: usize,
    /// Its name, when the model came with class names.
    pub label: Option<String>,
    /// Class probabilities (the TTA average when TTA is on).
    pub probs: Vec<f32>,
    /// Logits of the image itself (not flipped).
    pub logits: Vec<f32>,
}

impl Prediction {
    /// The `k` most likely classes with their probabilities, most likely first.
    pub fn top_k(&self, k: usize) -> Vec<(usize, f32)> {
        let mut order: Vec<usize> = (0..self.probs.len()).collect();
        order.sort_by(|&i, &j| self.probs[j].total_cmp(&self.probs[i]));
        order
            .into_iter()
            .take(k)
            .map(|i| (i, self.probs[i]))
            .collect()
    }
}

/// A predictor's eval transform, detached from the model: decode and preprocess on any thread,
/// then hand the inputs to [`Predictor::predict_inputs`] on the model's.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    transform: Transform,
}

impl Preprocessor {
    /// The network input of one image: CHW floats, resized and normalised.
    pub fn input(&self, image: &RgbImage) -> Vec<f32> {
        // an eval transform is deterministic (checked when the predictor is built): the RNG is
        // never drawn from
        self.transform.apply(image, &mut Rng::new(0))
    }

    /// `[height, width]` of the input.
    pub fn size(&self) -> [u32; 2] {
        self.transform.size()
    }

    pub fn transform(&self) -> &Transform {
        &self.transform
    }
}

/// A model that predicts.
pub struct Predictor {
    /// Holds the weights `net` uses.
    _vs: VarStore,
    net: ResNeXt,
    transform: Transform,
    classes: Option<Vec<String>>,
    info: Option<CheckpointInfo>,
    opts: RunOptions,
    batch_size: usize,
}

impl std::fmt::Debug for Predictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Predictor")
            .field("arch", &self.net.config().arch)
            .field("classes", &self.classes)
            .field("opts", &self.opts)
            .finish()
    }
}

impl Predictor {
    /// The weights of a run's checkpoint, with its classes and eval transform.
    pub fn from_run(run: &Run, which: Checkpoint, opts: RunOptions) -> Result<Self, InferError> {
        let info = run.info(which)?;
        let n = info.model.num_classes;
        if info.classes.len() as i64 != n {
            return Err(InferError::ClassCountMismatch {
                sidecar: run.path(RunFile::Sidecar(which)),
                classes: info.classes.len(),
                outputs: n,
            });
        }
        let mut p = Self::from_weights_file(
            &WeightsFile::new(run.path(RunFile::Weights(which))),
            &info.model,
            info.eval_transform.clone(),
            opts,
        )?;
        p.classes = Some(info.classes.clone());
        p.info = Some(info);
        Ok(p)
    }

    /// A bare weights file (torchvision names) for `model`, with `transform` as the eval
    /// transform and no class names.
    pub fn from_weights(
        weights: &Path,
        model: &ModelConfig,
        transform: TransformConfig,
        opts: RunOptions,
    ) -> Result<Self, InferError> {
        Self::from_weights_file(&WeightsFile::new(weights), model, transform, opts)
    }

    /// [`Self::from_weights`] of a [`WeightsFile`] (a `torch.save` dict's entry chosen by key).
    pub fn from_weights_file(
        weights: &WeightsFile,
        model: &ModelConfig,
        transform: TransformConfig,
        opts: RunOptions,
    ) -> Result<Self, InferError> {
        let transform = Transform::new(transform)?;
        if transform.config().is_random() {
            return Err(InferError::RandomEvalTransform);
        }
        let mut vs = VarStore::new(opts.device);
        // every weight is loaded next: zeros are cheaper than a random draw
        let net = ResNeXt::new_zeroed(&vs.root(), model)?;
        load_weights_from(&vs, weights, HeadPolicy::Strict)?;
        // inference only: no weight needs a gradient (Grad-CAM differentiates w.r.t. the input)
        vs.freeze();
        if opts.channels_last {
            resnext_model::weights::convert_to_channels_last(&vs)?;
        }
        Ok(Self {
            _vs: vs,
            net,
            transform,
            classes: None,
            info: None,
            opts,
            batch_size: 16,
        })
    }

    /// Folds every BatchNorm into the convolution before it (`--fold-bn`): the same logits up to
    /// rounding, fewer ops per forward pass.
    pub fn with_folded_batchnorm(mut self) -> Result<Self, InferError> {
        self.net.fold_batchnorm()?;
        Ok(self)
    }

    /// Images per forward pass in [`Self::predict`] (default 16).
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    pub fn net(&self) -> &ResNeXt {
        &self.net
    }

    pub fn transform(&self) -> &Transform {
        &self.transform
    }

    pub fn classes(&self) -> Option<&[String]> {
        self.classes.as_deref()
    }

    pub fn num_classes(&self) -> usize {
        self.net.config().num_classes as usize
    }

    /// The sidecar, for a predictor built from a run.
    pub fn info(&self) -> Option<&CheckpointInfo> {
        self.info.as_ref()
    }

    pub fn options(&self) -> RunOptions {
        self.opts
    }

    /// The class name of index `i`, or `class i` without names.
    pub fn class_name(&self, i: usize) -> String {
        self.classes
            .as_ref()
            .and_then(|c| c.get(i).cloned())
            .unwrap_or_else(|| format!("class {i}"))
    }

    /// The eval transform of one image as a `[1, 3, H, W]` tensor.
    pub fn input(&self, image: &RgbImage) -> Result<Tensor, InferError> {
        let [h, w] = self.transform.size();
        let v = self.transform.apply(image, &mut Rng::new(0));
        Ok(Tensor::f_from_slice(&v)?.f_view([1, 3, h as i64, w as i64])?)
    }

    /// The eval transform alone, to run on other threads than the model's (it is `Send + Sync`).
    pub fn preprocessor(&self) -> Preprocessor {
        Preprocessor {
            transform: self.transform.clone(),
        }
    }

    /// Predictions for `images`, in batches.
    pub fn predict(&self, images: &[RgbImage]) -> Result<Vec<Prediction>, InferError> {
        let pre = self.preprocessor();
        let mut out = Vec::with_capacity(images.len());
        let batch = crate::checkpoint::capped_batch(self.batch_size, self.transform.size());
        for chunk in images.chunks(batch) {
            let inputs: Vec<Vec<f32>> = chunk.iter().map(|img| pre.input(img)).collect();
            out.extend(self.predict_inputs(&inputs, self.opts.tta)?);
        }
        Ok(out)
    }

    /// Predictions for inputs that [`Preprocessor::input`] made, as one batch, with or without
    /// flip TTA (whatever the options say).
    pub fn predict_inputs(
        &self,
        inputs: &[Vec<f32>],
        tta: bool,
    ) -> Result<Vec<Prediction>, InferError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let [h, w] = self.transform.size();
        let per = 3 * h as usize * w as usize;
        let mut buf = Vec::with_capacity(per * inputs.len());
        for v in inputs {
            if v.len() != per {
                return Err(InferError::InputSize {
                    expected: per,
                    got: v.len(),
                });
            }
            buf.extend_from_slice(v);
        }
        let x = Tensor::f_from_slice(&buf)?.f_view([inputs.len() as i64, 3, h as i64, w as i64])?;
        let temperature = self.info.as_ref().and_then(|i| i.temperature);
        let (l, p) =
            logits_and_probs_at(&self.net, &x, RunOptions { tta, ..self.opts }, temperature)?;
        let logits: Vec<Vec<f32>> = Vec::<Vec<f32>>::try_from(l.f_to_kind(Kind::Float)?)?;
        let probs: Vec<Vec<f32>> = Vec::<Vec<f32>>::try_from(p.f_to_kind(Kind::Float)?)?;
        Ok(logits
            .into_iter()
            .zip(probs)
            .map(|(logits, probs)| {
                let class = argmax(&probs);
                Prediction {
                    class,
                    label: self.classes.as_ref().and_then(|c| c.get(class).cloned()),
                    probs,
                    logits,
                }
            })
            .collect())
    }

    /// The Grad-CAM heatmap of `class` (default: the predicted class) for one image, placed on
    /// the part of the image the eval transform keeps.
    pub fn explain(&self, image: &RgbImage, class: Option<usize>) -> Result<Heatmap, InferError> {
        let x = self.input(image)?;
        let class = match class {
            Some(c) if c < self.num_classes() => c,
            Some(c) => {
                return Err(InferError::ClassOutOfRange {
                    class: c,
                    classes: self.num_classes(),
                })
            }
            None => self.predict(std::slice::from_ref(image))?[0].class,
        };
        let x = crate::precision::prepare_input(
            x,
            crate::precision::Precision::Fp32,
            false,
            self.opts.device,
        )?
        .set_requires_grad(true);
        let cam = grad_cam(&self.net, &x, class as i64)?;
        let region = self.transform.view_region(image.width(), image.height());
        Ok(Heatmap { cam, class, region })
    }
}

impl Run {
    /// A predictor of a checkpoint, with the run's classes and eval transform.
    pub fn predictor(&self, which: Checkpoint, opts: RunOptions) -> Result<Predictor, InferError> {
        Predictor::from_run(self, which, opts)
    }
}
