//! The batch loader: each batch decoded and transformed in parallel on a rayon pool into a reused
//! buffer, a bounded number of batches prefetched on a background thread, per-epoch shuffling,
//! optional drop_last, Mixup/CutMix and an in-memory cache of decoded images.

use crate::decode::{decode_file, DecodeLimits};
use crate::error::DataError;
use crate::mix::{mix_batch, one_hot, MixConfig};
use crate::rng::Rng;
use crate::scan::Sample;
use crate::shard::Shard;
pub use crate::transform::Layout;
use crate::transform::Transform;
use crossbeam_channel::{bounded, Receiver, Sender};
use image::RgbImage;
use ndarray::{Array2, Array4};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

/// What to do with an image that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BadImagePolicy {
    /// Stop with an error that names the file.
    #[default]
    Error,
    /// Log the file, leave it out of the batch, and count it.
    Skip,
}

/// Pixel type of the batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PixelType {
    /// Normalised floats.
    #[default]
    F32,
    /// Raw bytes after the geometric and colour stages (no normalisation, no Mixup).
    U8,
}

#[derive(Debug, Clone)]
pub struct LoaderConfig {
    pub batch_size: usize,
    pub shuffle: bool,
    pub drop_last: bool,
    pub seed: u64,
    /// Batches prepared ahead of the consumer.
    pub prefetch: usize,
    /// Worker threads for decoding; 0 means one per core.
    pub threads: usize,
    /// Keep decoded images in memory after their first use.
    pub cache: bool,
    pub layout: Layout,
    pub pixels: PixelType,
    pub on_bad_image: BadImagePolicy,
    pub limits: DecodeLimits,
    pub mix: Option<MixConfig>,
    pub num_classes: usize,
    /// Data-parallel training: this process's share of every batch of `batch_size` (the global
    /// batch), cut from the epoch's permutation as on one process. Batch counts are the global
    /// ones, so every process steps in time; a batch may be empty on some process.
    pub shard: Shard,
}

impl LoaderConfig {
    pub fn new(batch_size: usize, num_classes: usize) -> Self {
        Self {
            batch_size,
            shuffle: false,
            drop_last: false,
            seed: 0,
            prefetch: 2,
            threads: 0,
            cache: false,
            layout: Layout::Nchw,
            pixels: PixelType::F32,
            on_bad_image: BadImagePolicy::Error,
            limits: DecodeLimits::default(),
            mix: None,
            num_classes,
            shard: Shard::whole(),
        }
    }
}

/// Pixels of a batch.
#[derive(Debug)]
pub enum BatchImages {
    F32(Array4<f32>),
    U8(Array4<u8>),
}

/// One batch. Its float buffer goes back to the loader for reuse when it is dropped.
#[derive(Debug)]
pub struct Batch {
    pub images: BatchImages,
    pub labels: Vec<usize>,
    /// Soft targets [N, classes] when Mixup/CutMix is on.
    pub targets: Option<Array2<f32>>,
    /// Indices of the samples in the loader's sample list.
    pub indices: Vec<usize>,
    /// Images of this batch that were skipped as unreadable.
    pub skipped: Vec<(PathBuf, String)>,
    /// Memory layout of `images`.
    pub layout: Layout,
    recycle: Option<Sender<Vec<f32>>>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn f32(&self) -> Option<&Array4<f32>> {
        match &self.images {
            BatchImages::F32(a) => Some(a),
            BatchImages::U8(_) => None,
        }
    }
    /// Targets as probabilities: the soft targets, or one-hot labels.
    pub fn soft_targets(&self, num_classes: usize) -> Array2<f32> {
        self.targets
            .clone()
            .unwrap_or_else(|| one_hot(&self.labels, num_classes))
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if let (Some(tx), BatchImages::F32(a)) = (self.recycle.take(), &mut self.images) {
            let a = std::mem::replace(a, Array4::zeros((0, 0, 0, 0)));
            let (v, _) = a.into_raw_vec_and_offset();
            // A full or closed pool just lets the buffer go.
            tx.try_send(v).ok();
        }
    }
}

struct Shared {
    items: Vec<(PathBuf, usize)>,
    transform: Transform,
    config: LoaderConfig,
    pool: rayon::ThreadPool,
    cache: Option<Vec<OnceLock<Arc<RgbImage>>>>,
    recycle_tx: Sender<Vec<f32>>,
    recycle_rx: Receiver<Vec<f32>>,
}

/// A loader over samples of one dataset root.
#[derive(Clone)]
pub struct Loader {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("samples", &self.shared.items.len())
            .field("config", &self.shared.config)
            .finish()
    }
}

impl Loader {
    pub fn new(
        root: &Path,
        samples: &[Sample],
        transform: Transform,
        config: LoaderConfig,
    ) -> Result<Self, DataError> {
        if config.batch_size == 0 {
            return Err(DataError::InvalidLoader(
                "batch_size must be at least 1".into(),
            ));
        }
        if config.num_classes == 0 {
            return Err(DataError::InvalidLoader(
                "num_classes must be at least 1".into(),
            ));
        }
        if let Some(m) = &config.mix {
            m.validate()?;
            if m.enabled() && config.pixels == PixelType::U8 {
                return Err(DataError::InvalidLoader(
                    "Mixup/CutMix need float batches".into(),
                ));
            }
        }
        if let Some(s) = samples.iter().find(|s| s.label >= config.num_classes) {
            return Err(DataError::InvalidLoader(format!(
                "{} has label {} but there are {} classes",
                s.path.display(),
                s.label,
                config.num_classes
            )));
        }
        if config.threads > 256 {
            return Err(DataError::InvalidLoader(format!(
                "{} decoding threads asked for; at most 256",
                config.threads
            )));
        }
        let threads = if config.threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            config.threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("resnext-data-{i}"))
            .build()
            .map_err(|e| {
                DataError::InvalidLoader(format!("cannot start {threads} threads: {e}"))
            })?;
        let items = samples
            .iter()
            .map(|s| (root.join(&s.path), s.label))
            .collect::<Vec<_>>();
        let cache = config
            .cache
            .then(|| (0..items.len()).map(|_| OnceLock::new()).collect());
        let (recycle_tx, recycle_rx) = bounded(2 * config.prefetch.max(2) + 4);
        Ok(Self {
            shared: Arc::new(Shared {
                items,
                transform,
                config,
                pool,
                cache,
                recycle_tx,
                recycle_rx,
            }),
        })
    }

    pub fn num_samples(&self) -> usize {
        self.shared.items.len()
    }

    /// Batches per epoch.
    pub fn num_batches(&self) -> usize {
        let (n, b) = (self.shared.items.len(), self.shared.config.batch_size);
        if self.shared.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.shared.config
    }

    /// The decoding threads it runs (`threads`, or one per core for 0).
    pub fn threads(&self) -> usize {
        self.shared.pool.current_num_threads()
    }

    /// The sample order of an epoch.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.shared.items.len()).collect();
        if self.shared.config.shuffle {
            Rng::keyed(
                self.shared.config.seed,
                &[crate::rng::stream::SHUFFLE, epoch],
            )
            .shuffle(&mut order);
        }
        order
    }

    /// Path and label of sample `i`.
    pub fn item(&self, i: usize) -> (&Path, usize) {
        let (p, l) = &self.shared.items[i];
        (p, *l)
    }

    /// Iterates over the batches of `epoch`, prepared `prefetch` ahead on a background thread.
    pub fn epoch(&self, epoch: u64) -> EpochIter {
        self.epochs(epoch, 1)
    }

    /// The batches of `count` epochs from `first`, as one stream: the pool starts on the next
    /// epoch's first batches while the last ones of the current epoch finish.
    pub fn epochs(&self, first: u64, count: u64) -> EpochIter {
        let b = self.shared.config.batch_size;
        let mut chunks: Vec<(u64, u64, Vec<usize>)> = Vec::new();
        for epoch in first..first + count {
            let order = self.order(epoch);
            let mut epoch_chunks: Vec<Vec<usize>> = order.chunks(b).map(|c| c.to_vec()).collect();
            if self.shared.config.drop_last && epoch_chunks.last().is_some_and(|c| c.len() < b) {
                epoch_chunks.pop();
            }
            let shard = self.shared.config.shard;
            chunks.extend(
                epoch_chunks
                    .into_iter()
                    .enumerate()
                    .map(|(bi, c)| (epoch, bi as u64, c[shard.range(c.len())].to_vec())),
            );
        }
        let (tx, rx) = bounded(self.shared.config.prefetch.max(1));
        let shared = Arc::clone(&self.shared);
        // Several batches are built at once on the pool, so that workers that finish their part
        // of one batch start on the next instead of waiting at the batch's end; they are handed
        // out in order.
        // Two more than the prefetch depth: while the prefetch thread waits to be scheduled (both
        // cores busy with workers), the workers still find queued images (1.93 → 1.96–1.98 cores
        // busy with 2 threads on 224 px photos, docs/data-pipeline.md). Each holds one buffer.
        let in_flight = self.shared.config.prefetch.max(2) + 2;
        let handle = std::thread::Builder::new()
            .name("resnext-prefetch".into())
            .spawn(move || {
                let mut pending: std::collections::VecDeque<Receiver<Result<Batch, DataError>>> =
                    Default::default();
                let mut chunks = chunks.into_iter();
                loop {
                    while pending.len() < in_flight {
                        let Some((epoch, bi, chunk)) = chunks.next() else {
                            break;
                        };
                        let (otx, orx) = bounded(1);
                        let job = Arc::clone(&shared);
                        shared.pool.spawn(move || {
                            // The receiver is gone only when the epoch was dropped early.
                            otx.send(job.make_batch(epoch, bi, &chunk)).ok();
                        });
                        pending.push_back(orx);
                    }
                    let Some(next) = pending.pop_front() else {
                        break;
                    };
                    let Ok(batch) = next.recv() else { break };
                    let failed = batch.is_err();
                    if tx.send(batch).is_err() || failed {
                        break;
                    }
                }
                // wait for jobs still running so none outlives the epoch
                for p in pending {
                    p.recv().ok();
                }
            });
        match handle {
            Ok(handle) => EpochIter {
                rx: Some(rx),
                handle: Some(handle),
            },
            // No thread to spare: the iteration yields that error instead of panicking.
            Err(e) => EpochIter::failed(DataError::InvalidLoader(format!(
                "cannot start the prefetch thread: {e}"
            ))),
        }
    }

    /// Prepares one batch of the given sample indices on the calling thread's pool.
    pub fn batch(
        &self,
        epoch: u64,
        batch_index: u64,
        indices: &[usize],
    ) -> Result<Batch, DataError> {
        self.shared.make_batch(epoch, batch_index, indices)
    }
}

impl Shared {
    fn image(&self, i: usize) -> Result<Arc<RgbImage>, DataError> {
        let load = || decode_file(&self.items[i].0, self.config.limits).map(Arc::new);
        match &self.cache {
            Some(cache) => {
                if let Some(img) = cache[i].get() {
                    return Ok(Arc::clone(img));
                }
                let img = load()?;
                Ok(Arc::clone(cache[i].get_or_init(|| img)))
            }
            None => load(),
        }
    }

    fn make_batch(
        &self,
        epoch: u64,
        batch_index: u64,
        indices: &[usize],
    ) -> Result<Batch, DataError> {
        let cfg = &self.config;
        let mut skipped = Vec::new();
        let mut keep = vec![true; indices.len()];
        let mut images = match cfg.pixels {
            PixelType::F32 => BatchImages::F32(self.build(
                self.recycle_rx.try_recv().unwrap_or_default(),
                (epoch, indices),
                &mut keep,
                &mut skipped,
                |t, img, slot, rng| t.write_f32(img, slot, cfg.layout, rng),
            )?),
            PixelType::U8 => BatchImages::U8(self.build(
                Vec::new(),
                (epoch, indices),
                &mut keep,
                &mut skipped,
                |t, img, slot, rng| t.write_u8(img, slot, cfg.layout, rng),
            )?),
        };
        let kept_indices: Vec<usize> = indices
            .iter()
            .zip(&keep)
            .filter(|(_, &k)| k)
            .map(|(&i, _)| i)
            .collect();
        let labels: Vec<usize> = kept_indices.iter().map(|&i| self.items[i].1).collect();
        let targets = match (&cfg.mix, &mut images) {
            (Some(m), BatchImages::F32(a)) if m.enabled() => {
                let mut rng = Rng::keyed(cfg.seed, &[crate::rng::stream::MIX, epoch, batch_index]);
                Some(mix_batch(
                    a,
                    cfg.layout,
                    &labels,
                    cfg.num_classes,
                    m,
                    &mut rng,
                ))
            }
            _ => None,
        };
        let recycle = matches!(images, BatchImages::F32(_)).then(|| self.recycle_tx.clone());
        Ok(Batch {
            images,
            labels,
            targets,
            indices: kept_indices,
            skipped,
            layout: cfg.layout,
            recycle,
        })
    }

    /// Decodes and transforms each sample of the batch into its slot of `buf` (resized to fit) on
    /// the pool, applies the bad-image policy (a skipped sample is logged, added to `skipped`
    /// and cleared in `keep`), and shapes the kept slots as the batch array.
    fn build<T: Copy + Default + Send>(
        &self,
        mut buf: Vec<T>,
        (epoch, indices): (u64, &[usize]),
        keep: &mut [bool],
        skipped: &mut Vec<(PathBuf, String)>,
        write: impl Fn(&Transform, &RgbImage, &mut [T], &mut Rng) + Sync,
    ) -> Result<Array4<T>, DataError> {
        let [h, w] = self.transform.size();
        let (h, w) = (h as usize, w as usize);
        let per = 3 * h * w;
        let seed = self.config.seed;
        buf.resize(indices.len() * per, T::default());
        let results: Vec<Result<(), DataError>> = self.pool.install(|| {
            buf.par_chunks_mut(per)
                .zip(indices.par_iter())
                .map(|(slot, &i)| {
                    let img = self.image(i)?;
                    let img = self
                        .transform
                        .apply_u8(&img, &mut Transform::sample_rng(seed, epoch, i as u64));
                    // a stream of its own for the stages after the u8 ones (random erasing)
                    let mut rng = Rng::keyed(
                        Transform::sample_rng(seed, epoch, i as u64).next_u64(),
                        &[crate::rng::stream::ERASE],
                    );
                    write(&self.transform, &img, slot, &mut rng);
                    Ok(())
                })
                .collect()
        });
        for (k, r) in results.into_iter().enumerate() {
            if let Err(e) = r {
                match self.config.on_bad_image {
                    BadImagePolicy::Error => return Err(e),
                    BadImagePolicy::Skip => {
                        let path = self.items[indices[k]].0.clone();
                        tracing::warn!(path = %path.display(), error = %e, "skipping unreadable image");
                        skipped.push((path, e.to_string()));
                        keep[k] = false;
                    }
                }
            }
        }
        let n = compact(&mut buf, per, keep);
        let shape = match self.config.layout {
            Layout::Nchw => (n, 3, h, w),
            Layout::Nhwc => (n, h, w, 3),
        };
        Ok(Array4::from_shape_vec(shape, buf).expect("buffer size matches"))
    }
}

/// Moves the kept slots to the front and truncates; returns how many were kept.
fn compact<T: Copy>(buf: &mut Vec<T>, per: usize, keep: &[bool]) -> usize {
    let mut dst = 0;
    for (src, &k) in keep.iter().enumerate() {
        if k {
            if src != dst {
                buf.copy_within(src * per..(src + 1) * per, dst * per);
            }
            dst += 1;
        }
    }
    buf.truncate(dst * per);
    dst
}

/// The batches of one epoch. Dropping it early stops the background thread.
pub struct EpochIter {
    rx: Option<Receiver<Result<Batch, DataError>>>,
    handle: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EpochIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EpochIter")
    }
}

impl EpochIter {
    /// An iteration whose only item is `err`.
    fn failed(err: DataError) -> Self {
        let (tx, rx) = bounded(1);
        // The receiver is held just below: this send cannot fail.
        tx.send(Err(err)).ok();
        Self {
            rx: Some(rx),
            handle: None,
        }
    }
}

impl Iterator for EpochIter {
    type Item = Result<Batch, DataError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        // Closing the channel makes the producer's next send fail, so it stops.
        drop(self.rx.take());
        if let Some(h) = self.handle.take() {
            // A producer that panicked has already reported through the channel.
            h.join().ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When the prefetch thread cannot start, the iteration reports it once and ends.
    #[test]
    fn a_failed_start_yields_one_error() {
        let mut it = EpochIter::failed(DataError::InvalidLoader("no threads".into()));
        let first = it.next().expect("one item");
        assert!(first.is_err_and(|e| e.to_string().contains("no threads")));
        assert!(it.next().is_none());
    }
}
