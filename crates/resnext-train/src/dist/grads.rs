//! Gradients summed across processes, as DDP does: flattened into buckets of about
//! [`BUCKET_BYTES`] and summed one bucket per call, not one call per parameter (ResNeXt-50 has 161
//! parameter tensors; one bucket is 4 calls for its 92 MB of fp32 gradients).

use super::Collective;
use crate::error::TrainError;
use crate::optim::Optimizer;
use std::time::{Duration, Instant};
use tch::{Device, Kind, Tensor};

/// About 25 MB per bucket, DDP's default `bucket_cap_mb`.
pub const BUCKET_BYTES: usize = 25 << 20;

/// What one sum of the gradients cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReduceStats {
    pub buckets: usize,
    pub bytes: usize,
    /// Time in the collective calls, packing and unpacking included.
    pub elapsed: Duration,
}

/// Sums the gradients of this step over every process, in place: each process then holds the
/// gradient of the sum of the processes' losses. Parameters the loss did not reach (`None`) take
/// no part; every process has the same ones, since they run the same network.
pub fn sum_gradients(
    comm: &dyn Collective,
    opt: &mut Optimizer,
    bucket_bytes: usize,
) -> Result<ReduceStats, TrainError> {
    let start = Instant::now();
    let mut stats = ReduceStats::default();
    if comm.size() == 1 {
        return Ok(stats);
    }
    let cap = (bucket_bytes / 4).max(1);
    let grads: Vec<&mut Option<Tensor>> = opt
        .active_grads_mut()
        .filter_map(|(_, g)| if g.is_some() { Some(g) } else { None })
        .collect();
    let mut buffers = Buffers::default();
    let mut bucket: Vec<&mut Option<Tensor>> = Vec::new();
    let mut filled = 0usize;
    for g in grads {
        let n = g.as_ref().map_or(0, |t| t.numel());
        if !bucket.is_empty() && filled + n > cap {
            buffers.flush(comm, &mut bucket, &mut stats)?;
            filled = 0;
        }
        filled += n;
        bucket.push(g);
    }
    buffers.flush(comm, &mut bucket, &mut stats)?;
    stats.elapsed = start.elapsed();
    Ok(stats)
}

/// The send and receive buffers of one bucket, reused from bucket to bucket.
#[derive(Default)]
struct Buffers {
    send: Vec<f32>,
    recv: Vec<f32>,
}

impl Buffers {
    /// Sums one bucket: its gradients are copied into `send`, summed into `recv`, and replaced by
    /// views of one tensor made from `recv` (one copy in, one out).
    fn flush(
        &mut self,
        comm: &dyn Collective,
        bucket: &mut Vec<&mut Option<Tensor>>,
        stats: &mut ReduceStats,
    ) -> Result<(), TrainError> {
        if bucket.is_empty() {
            return Ok(());
        }
        self.send.clear();
        for g in bucket.iter() {
            let Some(t) = g.as_ref() else { continue };
            // in memory order: a channels-last gradient needs no reordering either way
            let ordered = if channels_last(t) {
                t.f_permute([0, 2, 3, 1])?
            } else {
                t.shallow_clone()
            };
            let flat = ordered
                .f_detach()?
                .f_to_device(Device::Cpu)?
                .f_to_kind(Kind::Float)?
                .f_contiguous()?
                .f_view(-1)?;
            let at = self.send.len();
            self.send.resize(at + flat.numel(), 0.0);
            flat.f_copy_data(&mut self.send[at..], flat.numel())?;
        }
        self.recv.resize(self.send.len(), 0.0);
        comm.sum_f32(&self.send, &mut self.recv)?;
        stats.buckets += 1;
        stats.bytes += self.send.len() * 4;
        let summed = Tensor::f_from_slice(&self.recv)?;
        let mut at = 0i64;
        for g in bucket.drain(..) {
            let Some(t) = g.as_ref() else { continue };
            let n = t.numel() as i64;
            let part = summed.f_narrow(0, at, n)?;
            // the same shape and strides as the gradient it replaces (the fused Adam kernel
            // takes a gradient strided as its parameter)
            let shaped = if channels_last(t) {
                let s = t.size();
                part.f_view([s[0], s[2], s[3], s[1]])?
                    .f_permute([0, 3, 1, 2])?
            } else {
                part.f_view(t.size().as_slice())?
            };
            let view = shaped.f_to_kind(t.kind())?.f_to_device(t.device())?;
            at += n;
            // a fresh tensor (a view of the bucket's), never the parameter's `.grad` in place
            *g = Some(view);
        }
        Ok(())
    }
}

/// A 4-D tensor laid out channels-last (NHWC memory order), and not also contiguous NCHW.
fn channels_last(t: &Tensor) -> bool {
    let (size, stride) = (t.size(), t.stride());
    if size.len() != 4 || t.is_contiguous() {
        return false;
    }
    let (c, h, w) = (size[1], size[2], size[3]);
    stride == [h * w * c, 1, w * c, c]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_last_is_recognised() {
        let t = Tensor::zeros([2, 3, 4, 5], (Kind::Float, Device::Cpu));
        assert!(!channels_last(&t));
        let cl = t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
        assert!(channels_last(&cl));
        assert!(!channels_last(&Tensor::zeros(
            [6],
            (Kind::Float, Device::Cpu)
        )));
    }

    /// Three "ranks" holding the same gradients: a sum that triples what it is sent.
    struct Thrice;

    impl Collective for Thrice {
        fn rank(&self) -> usize {
            0
        }
        fn size(&self) -> usize {
            3
        }
        fn engine(&self) -> &'static str {
            "test"
        }
        fn broadcast(&self, _: &mut Vec<u8>) -> Result<(), TrainError> {
            Ok(())
        }
        fn sum_f32(&self, send: &[f32], recv: &mut [f32]) -> Result<(), TrainError> {
            for (r, s) in recv.iter_mut().zip(send) {
                *r = 3.0 * s;
            }
            Ok(())
        }
        fn sum_f64(&self, _: &mut [f64]) -> Result<(), TrainError> {
            Ok(())
        }
        fn gather_f64(&self, local: &[f64]) -> Result<Vec<Vec<f64>>, TrainError> {
            Ok(vec![local.to_vec(); 3])
        }
    }

    #[test]
    fn buckets_sum_every_gradient_in_its_own_layout() {
        let opts = (Kind::Float, Device::Cpu);
        let conv = Tensor::randn([4, 3, 3, 3], opts)
            .permute([0, 2, 3, 1])
            .contiguous()
            .permute([0, 3, 1, 2])
            .set_requires_grad(true);
        let fc = Tensor::randn([5, 7], opts).set_requires_grad(true);
        let bias = Tensor::randn([5], opts).set_requires_grad(true);
        let mut opt = Optimizer::new(
            &crate::config::OptimSection::default(),
            vec![
                ("conv.weight".into(), conv.shallow_clone()),
                ("fc.weight".into(), fc.shallow_clone()),
                ("fc.bias".into(), bias.shallow_clone()),
            ],
            &[],
        );
        let x = Tensor::randn([2, 3, 6, 6], opts);
        let h = x
            .conv2d(&conv, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)
            .mean_dim([2i64, 3].as_slice(), false, Kind::Float);
        let loss = (h.matmul(&Tensor::ones([4, 7], opts)).matmul(&fc.tr()) + &bias)
            .square()
            .sum(Kind::Float);
        opt.backward(&loss).unwrap();
        let before: Vec<(Vec<i64>, Tensor)> = opt
            .active_grads_mut()
            .map(|(_, g)| {
                let g = g.as_ref().unwrap();
                (g.stride(), g.copy())
            })
            .collect();
        // the convolution's gradient comes channels-last, like its weight
        let (conv_stride, _) = &before[0];
        assert_eq!(conv_stride, &vec![27, 1, 9, 3]);
        // buckets of 16 values, in name order: conv.weight (108) alone, fc.bias (5), then
        // fc.weight (35) in a third
        let stats = sum_gradients(&Thrice, &mut opt, 64).unwrap();
        assert_eq!(stats.buckets, 3);
        assert_eq!(stats.bytes, (108 + 35 + 5) * 4);
        for ((_, g), (stride, old)) in opt.active_grads_mut().zip(&before) {
            let g = g.as_ref().unwrap();
            assert_eq!(&g.stride(), stride, "the gradient keeps its layout");
            let d = (g - old * 3.0).abs().max().double_value(&[]);
            assert!(d < 1e-5, "{d}");
        }
    }
}
