//! The loaders a trainer and its neighbours build from a config and a split: training
//! (shuffled, mixed, this process's shard), validation (in order, the whole part), and the
//! BatchNorm statistics pass of weight averaging (the training part unmixed).

use crate::config::TrainConfig;
use crate::dist::shard::Shard;
use crate::error::TrainError;
use resnext_data::loader::PixelType;
use resnext_data::split::Split;
use resnext_data::{Loader, LoaderConfig, Transform};
use tch::Device;

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Decoding threads: `data.threads`, or from the cores (a quarter of them on the CPU, which
/// libtorch needs too).
pub(crate) fn data_threads(cfg: &TrainConfig, device: Device) -> usize {
    match (cfg.data.threads, device) {
        (0, Device::Cpu) => (cores() / 4).max(1),
        (0, _) => cores().saturating_sub(1).max(1),
        (n, _) => n,
    }
}

/// The training loader's settings: shuffled, `data.*`'s batch size, caching and mixing, this
/// process's `shard`.
pub(crate) fn train_loader_config(
    cfg: &TrainConfig,
    classes: usize,
    threads: usize,
    shard: Shard,
) -> LoaderConfig {
    let mut lc = LoaderConfig::new(cfg.data.batch_size, classes);
    lc.shuffle = true;
    lc.drop_last = cfg.data.drop_last;
    lc.seed = cfg.train.seed;
    lc.threads = threads;
    lc.prefetch = cfg.data.prefetch;
    lc.cache = cfg.data.cache;
    lc.on_bad_image = cfg.data.on_bad_image;
    lc.mix = cfg.data.mix.clone();
    lc.pixels = PixelType::F32;
    lc.shard = shard;
    lc
}

/// The validation loader's settings from the training loader's `lc`: in order, unmixed, every
/// image, `data.eval_batch_size`.
pub(crate) fn eval_loader_config(mut lc: LoaderConfig, cfg: &TrainConfig) -> LoaderConfig {
    lc.shard = Shard::whole();
    lc.shuffle = false;
    lc.drop_last = false;
    lc.mix = None;
    lc.batch_size = cfg.data.eval_batch_size.unwrap_or(cfg.data.batch_size);
    lc
}

/// The validation part's loader with the eval transform (the whole part, one process).
pub(crate) fn validation_loader(
    cfg: &TrainConfig,
    split: &Split,
    threads: usize,
) -> Result<Loader, TrainError> {
    let root = &cfg.data.root;
    let samples = split.samples_with(&split.val, root, cfg.data.follow_links)?;
    let lc = train_loader_config(cfg, split.classes.len(), threads, Shard::whole());
    Ok(Loader::new(
        root,
        &samples,
        Transform::new(cfg.data.eval_transform.clone())?,
        eval_loader_config(lc, cfg),
    )?)
}

/// The loader of a BatchNorm statistics pass ([`crate::swa::recompute_batchnorm`]): the
/// training part with the training transform, as training saw it but without mixing, every
/// batch kept.
pub(crate) fn batchnorm_loader(
    cfg: &TrainConfig,
    split: &Split,
    threads: usize,
    shard: Shard,
) -> Result<Loader, TrainError> {
    let root = &cfg.data.root;
    let samples = split.samples_with(&split.train, root, cfg.data.follow_links)?;
    let mut lc = train_loader_config(cfg, split.classes.len(), threads, shard);
    lc.mix = None;
    lc.drop_last = false;
    Ok(Loader::new(
        root,
        &samples,
        Transform::new(cfg.data.train_transform.clone())?,
        lc,
    )?)
}
