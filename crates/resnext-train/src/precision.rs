//! Numeric precision and memory format of the network's input. The model casts its fp32 master
//! weights to the input's dtype inside the forward, so bf16 mixed precision on the CPU needs only
//! a bf16 input (tch's autocast covers CUDA only); on CUDA fp16/bf16 use libtorch's autocast.

use crate::config::Precision;
use tch::{Device, Kind, Tensor};

/// Input dtype on this device for this precision.
pub fn input_kind(precision: Precision, device: Device) -> Kind {
    match (precision, device) {
        (Precision::Fp32, _) => Kind::Float,
        (Precision::Bf16, Device::Cpu) => Kind::BFloat16,
        // On CUDA the input stays fp32 and autocast picks per-op dtypes.
        (_, _) => Kind::Float,
    }
}

/// True when the forward should run under libtorch's CUDA autocast.
pub fn use_autocast(precision: Precision, device: Device) -> bool {
    precision != Precision::Fp32 && device != Device::Cpu
}

/// Channels-last strides for an NCHW tensor: the same logical shape, memory ordered N, H, W, C.
pub fn to_channels_last(x: &Tensor) -> Tensor {
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Prepares a batch for the network.
pub fn prepare_input(
    x: Tensor,
    precision: Precision,
    channels_last: bool,
    device: Device,
) -> Tensor {
    let x = x.to_device(device).to_kind(input_kind(precision, device));
    if channels_last {
        to_channels_last(&x)
    } else {
        x
    }
}

/// Runs `f` under CUDA autocast when the precision asks for it.
pub fn with_autocast<T>(precision: Precision, device: Device, f: impl FnOnce() -> T) -> T {
    if use_autocast(precision, device) {
        tch::autocast(true, f)
    } else {
        f()
    }
}
