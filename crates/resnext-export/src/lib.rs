//! Exporting a trained model for deployment: TorchScript (traced by libtorch, loads with
//! `torch.jit.load` and `tch::CModule`) and ONNX (written from the network's structure; loads
//! with ONNX Runtime and anything else that reads ONNX). Both take a float32 NCHW batch,
//! resized and normalised as the sidecar `FILE.json` says, and return logits; ONNX files also
//! carry the sidecar's facts as `metadata_props`.
//!
//! ```no_run
//! # fn main() -> Result<(), resnext_export::ExportError> {
//! use resnext_export::{export, ExportOptions, Format};
//! use resnext_infer::{Checkpoint, Run, RunOptions};
//! let run = Run::open("runs/demo")?;
//! let predictor = run.predictor(Checkpoint::Best, RunOptions::cpu())?;
//! let opts = ExportOptions { format: Format::Onnx, ..ExportOptions::default() };
//! export(predictor, "runs/demo/best.safetensors".as_ref(), &opts, "model.onnx".as_ref())?;
//! # Ok(()) }
//! ```

pub mod error;
pub mod onnx;

use prost::Message;
use resnext_infer::Predictor;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

pub use error::ExportError;

/// The exported format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    TorchScript,
    Onnx,
}

/// How to export.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    pub format: Format,
    /// A fixed batch size; `None` is a dynamic batch (ONNX: a symbolic dimension; TorchScript:
    /// traced at batch 1, any batch runs).
    pub batch: Option<i64>,
    /// Fold BatchNorm into the convolutions first.
    pub fold_bn: bool,
    /// ONNX opset.
    pub opset: i64,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            format: Format::TorchScript,
            batch: None,
            fold_bn: false,
            opset: 17,
        }
    }
}

/// `FILE.json`, written beside the exported file: everything a consumer needs to feed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sidecar {
    pub format: Format,
    /// Class names in output order (`class i` when the source had none).
    pub classes: Vec<String>,
    /// [height, width] of the input.
    pub image_size: [u32; 2],
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// The eval transform that makes an input from a photo.
    pub eval_transform: resnext_data::TransformConfig,
    pub model: resnext_model::ModelConfig,
    /// The weights file the export was made from.
    pub source: PathBuf,
    pub input: String,
    pub output: String,
    /// `null`: dynamic.
    pub batch: Option<i64>,
    pub fold_bn: bool,
    /// ONNX only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opset: Option<i64>,
}

impl Sidecar {
    /// The ONNX `metadata_props`: every field, JSON values as strings.
    pub fn metadata(&self) -> Vec<(String, String)> {
        let json = serde_json::to_value(self).unwrap_or_default();
        let text = |v: &serde_json::Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        let fields = json.as_object().into_iter().flatten();
        fields.map(|(k, v)| (k.clone(), text(v))).collect()
    }
}

/// Where [`export`] writes the sidecar of `out`: `out` with `.json` appended to its name.
pub fn sidecar_path(out: &Path) -> PathBuf {
    let mut path = out.as_os_str().to_owned();
    path.push(".json");
    path.into()
}

/// Exports `predictor` to `out` (atomically) and writes `out.json`; returns the sidecar.
/// `source` names the weights file in the sidecar.
pub fn export(
    predictor: Predictor,
    source: &Path,
    opts: &ExportOptions,
    out: &Path,
) -> Result<Sidecar, ExportError> {
    if let Some(b) = opts.batch {
        if !(1..=4096).contains(&b) {
            return Err(ExportError::Batch(b));
        }
    }
    if opts.format == Format::Onnx && !onnx::OPSETS.contains(&opts.opset) {
        return Err(ExportError::Opset(opts.opset));
    }
    if out.file_name().is_none() {
        return Err(ExportError::NotAFile(out.to_path_buf()));
    }
    let predictor = if opts.fold_bn {
        predictor.with_folded_batchnorm()?
    } else {
        predictor
    };
    let transform = predictor.transform().config().clone();
    let image_size = predictor.transform().size();
    let classes: Vec<String> = (0..predictor.num_classes())
        .map(|i| predictor.class_name(i))
        .collect();
    let sidecar = Sidecar {
        format: opts.format,
        classes,
        image_size,
        mean: transform.mean,
        std: transform.std,
        eval_transform: transform,
        model: predictor.net().config().clone(),
        source: source.to_path_buf(),
        input: onnx::INPUT.into(),
        output: onnx::OUTPUT.into(),
        batch: opts.batch,
        fold_bn: opts.fold_bn,
        opset: (opts.format == Format::Onnx).then_some(opts.opset),
    };
    let json_path = sidecar_path(out);
    // a refused output (a directory, a device, a missing folder) costs nothing: both are checked
    // before anything is computed
    resnext_io::check_target(out)?;
    resnext_io::check_target(&json_path)?;
    let bytes = match opts.format {
        Format::TorchScript => torchscript(&predictor, image_size, opts.batch)?,
        Format::Onnx => onnx::model(
            predictor.net(),
            image_size,
            opts.batch,
            opts.opset,
            &sidecar.metadata(),
        )?
        .encode_to_vec(),
    };
    let json = serde_json::to_vec_pretty(&sidecar).unwrap_or_default();
    resnext_io::write_atomic(out, &bytes)?;
    resnext_io::write_atomic(&json_path, &json)?;
    Ok(sidecar)
}

/// Traces the network (eval mode) with libtorch's JIT and saves it.
fn torchscript(
    predictor: &Predictor,
    image_size: [u32; 2],
    batch: Option<i64>,
) -> Result<Vec<u8>, ExportError> {
    let net = predictor.net();
    let device = predictor.options().device;
    let n = batch.unwrap_or(1);
    let example = Tensor::f_zeros(
        [n, 3, image_size[0] as i64, image_size[1] as i64],
        (Kind::Float, device),
    )?;
    let mut failure = None;
    let traced =
        tch::CModule::create_by_tracing("ResNeXt", "forward", &[example], &mut |inputs| match net
            .f_forward_t(&inputs[0], false)
        {
            Ok(logits) => vec![logits],
            Err(e) => {
                failure = Some(e);
                vec![inputs[0].shallow_clone()]
            }
        });
    // an op that failed while tracing ends the trace: its error is the one to report
    if let Some(e) = failure {
        return Err(e.into());
    }
    let module = traced?;
    saved_bytes(&module)
}

/// The module as `torch.jit.save` writes it. libtorch writes only to a path, and its writer
/// aborts the process when that path's disk fills (a C++ exception in a destructor), so the
/// module goes to an in-memory file first; the bytes then go through the one writer, which
/// reports a full disk as an error.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn saved_bytes(module: &tch::CModule) -> Result<Vec<u8>, ExportError> {
    use std::io::{Read, Seek};
    use std::os::fd::FromRawFd;
    let memory_file = |e: std::io::Error| ExportError::MemoryFile(e.to_string());
    // SAFETY: memfd_create takes a NUL-terminated name and flags and returns a new descriptor
    // (or -1), which the File below owns and closes.
    let fd = unsafe { libc::memfd_create(c"resnext-torchscript".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(memory_file(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    module.save(format!("/proc/self/fd/{fd}"))?;
    let mut bytes = Vec::new();
    file.rewind().map_err(memory_file)?;
    file.read_to_end(&mut bytes).map_err(memory_file)?;
    Ok(bytes)
}

/// Elsewhere: a temporary file in the system's temporary directory, read back and removed.
#[cfg(not(target_os = "linux"))]
fn saved_bytes(module: &tch::CModule) -> Result<Vec<u8>, ExportError> {
    let path = std::env::temp_dir().join(format!("resnext-torchscript-{}.pt", std::process::id()));
    let saved = module.save(&path);
    let bytes = std::fs::read(&path);
    std::fs::remove_file(&path).ok();
    saved?;
    bytes.map_err(|e| ExportError::MemoryFile(e.to_string()))
}
