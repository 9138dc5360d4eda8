//! Numeric precision and memory format of the network's input. The model casts its fp32 master
//! weights to the input's dtype inside the forward, so bf16 mixed precision needs only a bf16
//! input, on every device: bf16 means bf16 on the CPU and on CUDA alike (libtorch's autocast, as
//! tch exposes it, has no dtype setting and would compute in fp16). fp16, on CUDA only, runs
//! under libtorch's autocast with the trainer's dynamic loss scaling.

use crate::config::Precision;
use tch::{Device, Kind, TchError, Tensor};

/// Input dtype on this device for this precision.
pub fn input_kind(precision: Precision, device: Device) -> Kind {
    match (precision, device) {
        (Precision::Fp32, _) => Kind::Float,
        (Precision::Bf16, _) => Kind::BFloat16,
        // fp16: the input stays fp32 and CUDA autocast picks per-op dtypes.
        (Precision::Fp16, _) => Kind::Float,
    }
}

/// True when the forward should run under libtorch's CUDA autocast.
pub fn use_autocast(precision: Precision, device: Device) -> bool {
    precision == Precision::Fp16 && device != Device::Cpu
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
) -> Result<Tensor, TchError> {
    let x = x
        .f_to_device(device)?
        .f_to_kind(input_kind(precision, device))?;
    if channels_last {
        x.f_permute([0, 2, 3, 1])?
            .f_contiguous()?
            .f_permute([0, 3, 1, 2])
    } else {
        Ok(x)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_is_bf16_on_every_device_and_only_fp16_uses_autocast() {
        for device in [Device::Cpu, Device::Cuda(0)] {
            assert_eq!(input_kind(Precision::Bf16, device), Kind::BFloat16);
            assert!(!use_autocast(Precision::Bf16, device));
            assert!(!use_autocast(Precision::Fp32, device));
        }
        assert!(use_autocast(Precision::Fp16, Device::Cuda(0)));
        assert_eq!(input_kind(Precision::Fp16, Device::Cuda(0)), Kind::Float);
    }
}
