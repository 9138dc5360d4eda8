//! Numeric precision and memory format of the network's input. The model casts its fp32 master
//! weights to the input's dtype inside the forward, so bf16 mixed precision needs only a bf16
//! input, on every device: bf16 means bf16 on the CPU and on CUDA alike (libtorch's autocast, as
//! tch exposes it, has no dtype setting and would compute in fp16). fp16, on CUDA only, runs
//! under libtorch's autocast with the trainer's dynamic loss scaling.

use crate::error::InferError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use tch::{Device, Kind, TchError, Tensor};

/// The numeric precision of a network's activations (master weights stay fp32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
    Fp16,
    /// float64 activations and gradients over the fp32 master weights: a numerical reference
    /// (rounding about 1e-16 instead of 1e-7, so two ways of computing the same step agree on
    /// any CPU), several times slower than fp32.
    Fp64,
}

impl Precision {
    /// The name configs and flags use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Bf16 => "bf16",
            Self::Fp16 => "fp16",
            Self::Fp64 => "fp64",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A precision as configured: `auto` (resolved per device by [`resolve`]) or a fixed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PrecisionChoice {
    Auto,
    Fixed(Precision),
}

impl Default for PrecisionChoice {
    /// fp32, the tutorial's.
    fn default() -> Self {
        Self::Fixed(Precision::Fp32)
    }
}

impl FromStr for PrecisionChoice {
    type Err = InferError;
    fn from_str(s: &str) -> Result<Self, InferError> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Self::Auto,
            "fp32" => Self::Fixed(Precision::Fp32),
            "bf16" => Self::Fixed(Precision::Bf16),
            "fp16" => Self::Fixed(Precision::Fp16),
            "fp64" => Self::Fixed(Precision::Fp64),
            _ => {
                return Err(InferError::UnknownChoice {
                    what: "precision",
                    got: s.to_string(),
                    expected: "auto, fp32, bf16, fp16 or fp64",
                })
            }
        })
    }
}

impl TryFrom<String> for PrecisionChoice {
    type Error = InferError;
    fn try_from(s: String) -> Result<Self, InferError> {
        s.parse()
    }
}

impl From<PrecisionChoice> for String {
    fn from(p: PrecisionChoice) -> String {
        p.to_string()
    }
}

impl fmt::Display for PrecisionChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Fixed(p) => f.write_str(p.name()),
        }
    }
}

impl From<Precision> for PrecisionChoice {
    fn from(p: Precision) -> Self {
        Self::Fixed(p)
    }
}

/// A memory format as configured: `true` (channels-last), `false` (NCHW) or `"auto"` (the faster
/// one for the resolved precision on the device, [`resolve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayoutChoice {
    Auto,
    ChannelsLast,
    #[default]
    Nchw,
}

impl FromStr for LayoutChoice {
    type Err = InferError;
    fn from_str(s: &str) -> Result<Self, InferError> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Self::Auto,
            "true" => Self::ChannelsLast,
            "false" => Self::Nchw,
            _ => {
                return Err(InferError::UnknownChoice {
                    what: "channels_last",
                    got: s.to_string(),
                    expected: "true, false or auto",
                })
            }
        })
    }
}

impl fmt::Display for LayoutChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::ChannelsLast => "true",
            Self::Nchw => "false",
        })
    }
}

impl From<bool> for LayoutChoice {
    fn from(b: bool) -> Self {
        if b {
            Self::ChannelsLast
        } else {
            Self::Nchw
        }
    }
}

impl Serialize for LayoutChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => s.serialize_str("auto"),
            Self::ChannelsLast => s.serialize_bool(true),
            Self::Nchw => s.serialize_bool(false),
        }
    }
}

impl<'de> Deserialize<'de> for LayoutChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(b) => Ok(b.into()),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Whether this CPU computes bf16 natively, and with what; `None` when libtorch's oneDNN would
/// emulate it (several times slower than fp32): the CPU's flags (`/proc/cpuinfo`), unless
/// oneDNN's instruction-set cap (`ONEDNN_MAX_CPU_ISA=AVX2` …) keeps them off.
pub fn cpu_native_bf16() -> Option<&'static str> {
    static FOUND: std::sync::OnceLock<Option<&'static str>> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        let capped = std::env::var("ONEDNN_MAX_CPU_ISA")
            .or_else(|_| std::env::var("DNNL_MAX_CPU_ISA"))
            .is_ok_and(|cap| {
                let cap = cap.to_ascii_uppercase();
                let all = cap.is_empty() || cap == "ALL" || cap == "DEFAULT";
                !(all
                    || ["BF16", "AMX", "FP16", "AVX10"]
                        .iter()
                        .any(|i| cap.contains(i)))
            });
        cpu_bf16_flag().filter(|_| !capped)
    })
}

#[cfg(target_os = "linux")]
fn cpu_bf16_flag() -> Option<&'static str> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let flags = info
        .lines()
        .find(|l| l.starts_with("flags") || l.starts_with("Features"))?;
    let has = |f: &str| flags.split_whitespace().any(|w| w == f);
    if has("amx_bf16") {
        Some("AMX-BF16")
    } else if has("avx512_bf16") {
        Some("AVX512-BF16")
    } else {
        None
    }
}

#[cfg(not(target_os = "linux"))]
fn cpu_bf16_flag() -> Option<&'static str> {
    None
}

/// The precision and memory format a run uses on a device, with what `auto` chose and why, and
/// any warning about an explicit choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Numerics {
    pub precision: Precision,
    pub channels_last: bool,
    /// Lines for the user, in order: `precision auto → fp32 (…)`, `warning: …`.
    pub notes: Vec<String>,
}

/// Resolves `auto` for `device`:
/// - precision: bf16 on a CPU with native bf16 (AVX512-BF16 or AMX-BF16) and on CUDA; fp32
///   elsewhere;
/// - layout: channels-last for bf16 and fp16 (oneDNN's and cuDNN's fast bf16/fp16 convolutions
///   are channels-last); channels-last for fp32 on a CPU (with AVX-512 or AVX2 only); NCHW for
///   fp64 and for fp32 on CUDA (measured: docs/performance.md, "precision auto").
///
/// An explicit bf16 on a CPU without native bf16 runs as asked, with a warning; fp16 on the CPU
/// is an error.
pub fn resolve(
    precision: PrecisionChoice,
    layout: LayoutChoice,
    device: Device,
) -> Result<Numerics, InferError> {
    let mut notes = Vec::new();
    let native = cpu_native_bf16();
    let p = match precision {
        PrecisionChoice::Fixed(p) => {
            if p == Precision::Bf16 && device == Device::Cpu && native.is_none() {
                notes.push(
                    "warning: this CPU has no native bf16 (AVX512-BF16/AMX-BF16), so bf16 is \
                     emulated and several times slower than fp32; precision \"auto\" picks fp32 \
                     here"
                        .to_string(),
                );
            }
            if p == Precision::Fp16 && device == Device::Cpu {
                return Err(InferError::Fp16OnCpu);
            }
            p
        }
        PrecisionChoice::Auto => {
            let (p, why) = match (device, native) {
                (Device::Cpu, Some(isa)) => (Precision::Bf16, format!("this CPU has {isa}")),
                (Device::Cpu, None) => (
                    Precision::Fp32,
                    "this CPU has no AVX512-BF16/AMX-BF16".to_string(),
                ),
                _ => (Precision::Bf16, "a CUDA device".to_string()),
            };
            notes.push(format!("precision auto → {p} ({why})"));
            p
        }
    };
    let cl = match layout {
        LayoutChoice::ChannelsLast => true,
        LayoutChoice::Nchw => false,
        LayoutChoice::Auto => {
            let (cl, place) = match (p, device) {
                (Precision::Fp64, Device::Cpu) => (false, "a CPU"),
                (_, Device::Cpu) => (true, "a CPU"),
                (Precision::Bf16 | Precision::Fp16, _) => (true, "CUDA"),
                _ => (false, "CUDA"),
            };
            notes.push(format!(
                "channels_last auto → {cl} ({} is the faster layout for {p} on {place})",
                if cl { "channels-last" } else { "NCHW" }
            ));
            cl
        }
    };
    Ok(Numerics {
        precision: p,
        channels_last: cl,
        notes,
    })
}

/// Input dtype on this device for this precision.
pub fn input_kind(precision: Precision, device: Device) -> Kind {
    match (precision, device) {
        (Precision::Fp32, _) => Kind::Float,
        (Precision::Bf16, _) => Kind::BFloat16,
        // fp16: the input stays fp32 and CUDA autocast picks per-op dtypes.
        (Precision::Fp16, _) => Kind::Float,
        (Precision::Fp64, _) => Kind::Double,
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
    fn choices_parse_from_configs_and_flags() {
        #[derive(Deserialize, Serialize)]
        struct T {
            p: PrecisionChoice,
            l: LayoutChoice,
        }
        for (text, p, l) in [
            (
                "p = \"auto\"\nl = \"auto\"",
                PrecisionChoice::Auto,
                LayoutChoice::Auto,
            ),
            (
                "p = \"bf16\"\nl = true",
                Precision::Bf16.into(),
                LayoutChoice::ChannelsLast,
            ),
            (
                "p = \"fp64\"\nl = false",
                Precision::Fp64.into(),
                LayoutChoice::Nchw,
            ),
        ] {
            let t: T = toml::from_str(text).unwrap();
            assert_eq!((t.p, t.l), (p, l), "{text}");
            let back: T = toml::from_str(&toml::to_string(&t).unwrap()).unwrap();
            assert_eq!((back.p, back.l), (p, l));
        }
        for bad in [
            "p = \"fp8\"\nl = true",
            "p = \"auto\"\nl = \"yes\"",
            "p = \"auto\"\nl = 1",
        ] {
            assert!(toml::from_str::<T>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn auto_follows_the_device_and_says_why() {
        let n = resolve(PrecisionChoice::Auto, LayoutChoice::Auto, Device::Cpu).unwrap();
        match cpu_native_bf16() {
            Some(isa) => {
                assert_eq!((n.precision, n.channels_last), (Precision::Bf16, true));
                assert!(n.notes[0].contains(isa), "{:?}", n.notes);
            }
            None => {
                assert_eq!((n.precision, n.channels_last), (Precision::Fp32, true));
                assert!(
                    n.notes[0].contains("no AVX512-BF16/AMX-BF16"),
                    "{:?}",
                    n.notes
                );
            }
        }
        assert!(n.notes[0].starts_with("precision auto → "), "{:?}", n.notes);
        assert!(
            n.notes[1].starts_with("channels_last auto → "),
            "{:?}",
            n.notes
        );
        // fixed choices stay as they are, and only an emulated bf16 warns
        let f = resolve(
            Precision::Fp32.into(),
            LayoutChoice::ChannelsLast,
            Device::Cpu,
        )
        .unwrap();
        assert_eq!(
            (f.precision, f.channels_last, f.notes.len()),
            (Precision::Fp32, true, 0)
        );
        let b = resolve(Precision::Bf16.into(), LayoutChoice::Auto, Device::Cpu).unwrap();
        assert_eq!((b.precision, b.channels_last), (Precision::Bf16, true));
        assert_eq!(
            b.notes.iter().any(|l| l.starts_with("warning:")),
            cpu_native_bf16().is_none()
        );
        let c = resolve(PrecisionChoice::Auto, LayoutChoice::Auto, Device::Cuda(0)).unwrap();
        assert_eq!((c.precision, c.channels_last), (Precision::Bf16, true));
        let d = resolve(Precision::Fp64.into(), LayoutChoice::Auto, Device::Cpu).unwrap();
        assert!(resolve(Precision::Fp16.into(), LayoutChoice::Auto, Device::Cpu).is_err());
        assert_eq!((d.precision, d.channels_last), (Precision::Fp64, false));
        let e = resolve(Precision::Fp32.into(), LayoutChoice::Auto, Device::Cpu).unwrap();
        assert!(e.channels_last, "{:?}", e.notes);
    }

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
