//! ResNeXt and ResNet image classifiers on libtorch, with torchvision's exact structure and
//! parameter names (Xie et al. 2017, "Aggregated Residual Transformations for Deep Neural
//! Networks"; He et al. 2016, "Deep Residual Learning for Image Recognition").
//!
//! - [`config`]: named presets ([`ModelConfig::resnext50_32x4d`], ...) and custom shapes.
//! - [`layers`]: convolution and BatchNorm building blocks (BatchNorm keeps
//!   `num_batches_tracked`, as torchvision's `state_dict` has it).
//! - [`block`]: the bottleneck block with grouped 3×3 convolution (ResNet v1.5 strides).
//! - [`network`]: the whole classifier; `forward_t` returns logits.
//! - [`ablation`]: diagnostic networks without BatchNorm and/or ReLU, for `bench --ablate`.
//! - [`weights`]: safetensors import and export under torchvision's names.
//! - [`summary`]: per-stage output shapes and parameter counts.
//! - [`torch_file`]: state dicts from `torch.save` files (zip and legacy), parsed, never run.

pub mod ablation;
pub mod block;
pub mod config;
pub mod error;
pub mod layers;
pub mod network;
pub mod summary;
pub mod sync_bn;
pub mod torch_file;
pub mod weights;

pub use ablation::Ablation;
pub use config::{Arch, ModelConfig};
pub use error::ModelError;
pub use network::ResNeXt;
pub use summary::{summarize, Summary};
pub use weights::{load_weights, save_weights, LoadReport};
