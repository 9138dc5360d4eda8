//! ImageFolder datasets for image classification without libtorch: scanning compatible with
//! torchvision's `ImageFolder`, leak-free grouped splits, decoding of every common image kind,
//! torchvision-compatible transforms (ResNeXt training as in Xie et al. 2017 and the
//! augmentations of Zhong et al. 2020 "Random Erasing", Zhang et al. 2018 "mixup" and Yun et al.
//! 2019 "CutMix"), and a rayon-parallel, prefetching loader that yields `ndarray` batches.
//!
//! - [`scan`]: classes and samples of an ImageFolder root, sorted so labels agree everywhere.
//! - [`split`]: seeded, stratified, optionally grouped train/val/test splits, saved as JSON.
//! - [`folds`]: grouped, stratified k-fold cross-validation folds, repeated.
//! - [`decode`]: bytes to RGB8 with EXIF orientation and decompression-bomb limits.
//! - [`resize`]: Pillow's antialiased bilinear resampling, bit for bit.
//! - [`transform`]: the per-sample pipeline from config, deterministic per (seed, epoch, index).
//! - [`mix`]: batch-level Mixup and CutMix with soft targets.
//! - [`loader`]: parallel decoding into reused batch buffers with bounded prefetch.
//! - [`stats`]: a dataset's per-channel mean and std.
//! - [`check`]: a whole-folder health check.
//! - [`synth`]: a procedurally drawn four-class dataset for offline demos and tests.
//! - [`rng`]: the small deterministic generator behind all randomness here.
//! - [`safe_path`]: paths from files stay under their root.

pub mod check;
pub mod decode;
pub mod error;
pub mod folds;
pub mod loader;
pub mod mix;
pub mod resize;
pub mod rng;
pub mod safe_path;
pub mod scan;
pub mod shard;
pub mod split;
pub mod stats;
pub mod synth;
pub mod transform;

pub use decode::{decode_file, DecodeLimits};
pub use error::DataError;
pub use loader::{BadImagePolicy, Batch, Layout, Loader, LoaderConfig};
pub use scan::{scan, ImageFolder, Sample};
pub use split::{Split, SplitConfig};
pub use transform::{Transform, TransformConfig};

pub use transform::config::{IMAGENET_MEAN, IMAGENET_STD};
