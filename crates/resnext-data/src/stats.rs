//! A dataset's own per-channel mean and standard deviation (on pixel values scaled to 0..1, as
//! torchvision's `ToTensor` gives them), for `mean`/`std` in a transform config.

use crate::decode::{decode_file, DecodeLimits};
use crate::error::DataError;
use rayon::prelude::*;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ChannelStats {
    pub mean: [f64; 3],
    pub std: [f64; 3],
    pub pixels: u64,
    pub images: usize,
}

#[derive(Clone, Copy, Default)]
struct Acc {
    sum: [f64; 3],
    sumsq: [f64; 3],
    n: u64,
    images: usize,
}

impl Acc {
    fn merge(mut self, o: Acc) -> Acc {
        for k in 0..3 {
            self.sum[k] += o.sum[k];
            self.sumsq[k] += o.sumsq[k];
        }
        self.n += o.n;
        self.images += o.images;
        self
    }
}

/// Mean and (population) std of every pixel of every image, decoded in parallel, calling
/// `done(1)` from the workers after each image (for progress).
pub fn channel_stats_with(
    paths: &[PathBuf],
    limits: DecodeLimits,
    done: &(dyn Fn(usize) + Sync),
) -> Result<ChannelStats, DataError> {
    let acc = paths
        .par_iter()
        .map(|p| -> Result<Acc, DataError> {
            let img = decode_file(p, limits)?;
            done(1);
            // Integer sums per image are exact; f64 across images.
            let (mut s, mut q) = ([0u64; 3], [0u64; 3]);
            for px in img.as_raw().chunks_exact(3) {
                for k in 0..3 {
                    let v = px[k] as u64;
                    s[k] += v;
                    q[k] += v * v;
                }
            }
            let mut a = Acc {
                n: (img.width() as u64) * (img.height() as u64),
                images: 1,
                ..Acc::default()
            };
            for k in 0..3 {
                a.sum[k] = s[k] as f64 / 255.0;
                a.sumsq[k] = q[k] as f64 / (255.0 * 255.0);
            }
            Ok(a)
        })
        .try_reduce(Acc::default, |a, b| Ok(a.merge(b)))?;
    if acc.n == 0 {
        return Err(DataError::InvalidLoader(
            "no images to compute statistics from".into(),
        ));
    }
    let n = acc.n as f64;
    let mean: [f64; 3] = std::array::from_fn(|k| acc.sum[k] / n);
    let std: [f64; 3] =
        std::array::from_fn(|k| (acc.sumsq[k] / n - mean[k] * mean[k]).max(0.0).sqrt());
    Ok(ChannelStats {
        mean,
        std,
        pixels: acc.n,
        images: acc.images,
    })
}
