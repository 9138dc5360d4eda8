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
    let mut bucket: Vec<&mut Option<Tensor>> = Vec::new();
    let mut filled = 0usize;
    let mut buf: Vec<f32> = Vec::with_capacity(cap);
    for g in grads {
        let n = g.as_ref().map_or(0, |t| t.numel());
        if !bucket.is_empty() && filled + n > cap {
            flush(comm, &mut bucket, &mut buf, &mut stats)?;
            filled = 0;
        }
        filled += n;
        bucket.push(g);
    }
    flush(comm, &mut bucket, &mut buf, &mut stats)?;
    stats.elapsed = start.elapsed();
    Ok(stats)
}

fn flush(
    comm: &dyn Collective,
    bucket: &mut Vec<&mut Option<Tensor>>,
    buf: &mut Vec<f32>,
    stats: &mut ReduceStats,
) -> Result<(), TrainError> {
    if bucket.is_empty() {
        return Ok(());
    }
    buf.clear();
    for g in bucket.iter() {
        let Some(t) = g.as_ref() else { continue };
        let flat = t
            .f_detach()?
            .f_to_device(Device::Cpu)?
            .f_to_kind(Kind::Float)?
            .f_contiguous()?
            .f_view(-1)?;
        let at = buf.len();
        buf.resize(at + flat.numel(), 0.0);
        flat.f_copy_data(&mut buf[at..], flat.numel())?;
    }
    comm.sum_f32(buf)?;
    stats.buckets += 1;
    stats.bytes += buf.len() * 4;
    let mut at = 0;
    for g in bucket.drain(..) {
        let Some(t) = g.as_ref() else { continue };
        let n = t.numel();
        let summed = Tensor::f_from_slice(&buf[at..at + n])?
            .f_view(t.size().as_slice())?
            .f_to_kind(t.kind())?
            .f_to_device(t.device())?;
        at += n;
        // a fresh tensor, never the parameter's `.grad` written in place
        *g = Some(summed);
    }
    Ok(())
}
