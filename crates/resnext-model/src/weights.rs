//! Weights in safetensors under torchvision's `state_dict` names, so that torchvision and timm
//! checkpoints load by name and ours load into `torchvision.models.*` with `strict=True`.

use crate::error::ModelError;
use safetensors::SafeTensors;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

/// How to treat a classifier head (`fc.*`) whose shape differs from the model's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadPolicy {
    /// Every tensor must match: loading a checkpoint for inference or resuming.
    Strict,
    /// Keep the model's fresh head when the file's class count differs: fine-tuning ImageNet
    /// weights on a new task.
    ReplaceIfMismatched,
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Tensors copied into the model.
    pub loaded: Vec<String>,
    /// Model tensors kept as they were (a replaced head, or a missing `num_batches_tracked`).
    pub kept: Vec<String>,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "loaded {} tensors", self.loaded.len())?;
        if !self.kept.is_empty() {
            write!(f, "; kept the model's own {}", self.kept.join(", "))?;
        }
        Ok(())
    }
}

fn is_head(name: &str) -> bool {
    name == "fc.weight" || name == "fc.bias"
}

/// The named tensors of a weights file: safetensors, or a `torch.save` file (zip or legacy
/// format, parsed by [`crate::torch_file`], never run).
/// A weights file, and the entry of a `torch.save` dict to take when it holds several
/// (`{"state_dict": …, "model": …}`: `--key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightsFile {
    pub path: std::path::PathBuf,
    pub key: Option<String>,
}

impl WeightsFile {
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        Self {
            path: path.into(),
            key: None,
        }
    }

    pub fn with_key(mut self, key: Option<String>) -> Self {
        self.key = key;
        self
    }
}

impl From<&Path> for WeightsFile {
    fn from(p: &Path) -> Self {
        Self::new(p)
    }
}

pub fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>, ModelError> {
    read_tensors_from(&WeightsFile::new(path))
}

/// [`read_tensors`] of a [`WeightsFile`]; its key applies to `torch.save` files.
pub fn read_tensors_from(file: &WeightsFile) -> Result<HashMap<String, Tensor>, ModelError> {
    let path = file.path.as_path();
    let read_err = |reason: String| ModelError::ReadWeights {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| read_err(e.to_string()))?;
    match SafeTensors::deserialize(&bytes) {
        Ok(st) => safetensors_tensors(&st).map_err(|e| match e {
            ModelError::InvalidConfig(reason) => read_err(reason),
            other => other,
        }),
        Err(_) if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(&[0x80]) => Ok(
            crate::torch_file::read_torch_file(path, file.key.as_deref())?
                .into_iter()
                .collect(),
        ),
        Err(e) => Err(read_err(format!(
            "not a safetensors file ({e}) nor a torch.save file"
        ))),
    }
}

fn safetensors_tensors(st: &SafeTensors<'_>) -> Result<HashMap<String, Tensor>, ModelError> {
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let kind = Kind::try_from(view.dtype()).map_err(|e| {
            ModelError::InvalidConfig(format!("tensor `{name}` has an unsupported dtype ({e})"))
        })?;
        out.insert(name, Tensor::f_from_data_size(view.data(), &shape, kind)?);
    }
    Ok(out)
}

/// Named tensors as safetensors bytes in memory (to send them to other processes).
pub fn tensors_to_bytes(tensors: &[(String, Tensor)]) -> Result<Vec<u8>, ModelError> {
    let views = tensors
        .iter()
        .map(|(name, t)| Ok((name.as_str(), TensorView::new(t)?)))
        .collect::<Result<Vec<_>, ModelError>>()?;
    safetensors::tensor::serialize(views, &None)
        .map_err(|e| ModelError::InvalidConfig(format!("cannot encode tensors: {e:?}")))
}

/// The tensors of [`tensors_to_bytes`]' bytes.
pub fn tensors_from_bytes(bytes: &[u8]) -> Result<HashMap<String, Tensor>, ModelError> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| ModelError::InvalidConfig(format!("not safetensors bytes: {e:?}")))?;
    safetensors_tensors(&st)
}

/// Loads a weights file with torchvision names into `vs`: safetensors, or a `torch.save`
/// state dict (`.pth`, see [`read_tensors`]). Floating tensors are converted to
/// the model's dtype; an integer or boolean tensor for a floating variable is an error. Missing
/// or mis-shaped tensors and unknown names are errors that name the tensor, except a mismatched
/// head under [`HeadPolicy::ReplaceIfMismatched`] and a missing `num_batches_tracked` (older
/// exports omit it). A wrapper's prefix on every name (`model.`, `net.`) is removed when that
/// makes the names the model's.
pub fn load_weights(
    vs: &VarStore,
    path: &Path,
    policy: HeadPolicy,
) -> Result<LoadReport, ModelError> {
    load_weights_from(vs, &WeightsFile::new(path), policy)
}

/// [`load_weights`] of a [`WeightsFile`] (with its `--key`).
pub fn load_weights_from(
    vs: &VarStore,
    weights: &WeightsFile,
    policy: HeadPolicy,
) -> Result<LoadReport, ModelError> {
    let path = weights.path.as_path();
    let read_err = |reason: String| ModelError::ReadWeights {
        path: path.to_path_buf(),
        reason,
    };
    // a FIFO or device named like a weights file would block the read or never end
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(read_err("not a regular file".into())),
        Err(e) => return Err(read_err(e.to_string())),
    }
    let file = read_tensors_from(weights)?;
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let file = without_wrapper_prefix(file, &vars);
    let file_names: BTreeSet<String> = file.keys().cloned().collect();

    // The head is replaced as a whole: both tensors or neither.
    let head_mismatch = policy == HeadPolicy::ReplaceIfMismatched
        && vars
            .iter()
            .filter(|(n, _)| is_head(n))
            .any(|(n, var)| file.get(n).is_none_or(|t| t.size() != var.size()));

    let mut report = LoadReport::default();
    let mut plan: Vec<(Tensor, Tensor)> = Vec::new();
    for (name, var) in &vars {
        if head_mismatch && is_head(name) {
            report.kept.push(name.clone());
            continue;
        }
        let data = match file.get(name) {
            Some(t) => t,
            None if name.ends_with("num_batches_tracked") => {
                report.kept.push(name.clone());
                continue;
            }
            None => {
                return Err(ModelError::MissingTensor {
                    path: path.to_path_buf(),
                    name: name.clone(),
                })
            }
        };
        let found = data.size();
        if found != var.size() {
            return Err(ModelError::ShapeMismatch {
                path: path.to_path_buf(),
                name: name.clone(),
                expected: var.size(),
                found,
            });
        }
        // an integer or boolean tensor is not a floating variable's value (int64
        // `num_batches_tracked` into its int64 variable is fine)
        if var.is_floating_point() && !data.is_floating_point() {
            return Err(read_err(format!(
                "tensor `{name}` is {}, but the model's is {}: integer and boolean tensors are \
                 not converted to floating point",
                dtype_name(data.kind()),
                dtype_name(var.kind())
            )));
        }
        plan.push((var.shallow_clone(), data.shallow_clone()));
        report.loaded.push(name.clone());
    }
    let known: BTreeSet<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    let unknown: Vec<&str> = file_names
        .iter()
        .map(String::as_str)
        .filter(|n| !known.contains(n))
        .collect();
    if !unknown.is_empty() {
        let mut names = unknown
            .iter()
            .take(5)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        if unknown.len() > 5 {
            names.push_str(&format!(" and {} more", unknown.len() - 5));
        }
        return Err(ModelError::UnexpectedTensors {
            path: path.to_path_buf(),
            names,
        });
    }
    // Only now, with every check passed, touch the model.
    tch::no_grad(|| -> Result<(), ModelError> {
        for (mut var, data) in plan {
            let data = data.f_to_kind(var.kind())?.f_to_device(var.device())?;
            var.f_copy_(&data)?;
        }
        Ok(())
    })?;
    Ok(report)
}

/// A checkpoint that wraps the network (Lightning's `model.`, `net.`, `backbone.`, torch.compile's
/// `_orig_mod.`) names every tensor under one more first component. When every name in the file
/// has the same first component, none is a name the model knows, and some is once that component
/// is removed, it is removed (again for a second wrapper, at most 4 times).
fn without_wrapper_prefix(
    mut file: HashMap<String, Tensor>,
    vars: &[(String, Tensor)],
) -> HashMap<String, Tensor> {
    let known: BTreeSet<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    for _ in 0..4 {
        if file.keys().any(|n| known.contains(n.as_str())) {
            break;
        }
        let mut firsts = file.keys().map(|n| n.split_once('.').map(|(p, _)| p));
        let Some(Some(prefix)) = firsts.next() else {
            break;
        };
        if !firsts.all(|p| p == Some(prefix)) {
            break;
        }
        let cut = prefix.len() + 1;
        if !file.keys().any(|n| known.contains(&n[cut..])) {
            break;
        }
        file = file
            .into_iter()
            .map(|(n, t)| (n[cut..].to_string(), t))
            .collect();
    }
    file
}

/// All parameters and buffers of `vs` (torchvision names, fp32 and int64 as stored), on the CPU
/// and contiguous, sorted by name.
pub fn state_dict(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.detach().to_device(tch::Device::Cpu).contiguous()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Writes the state dict of `vs` to `path` atomically: a temporary file in the same folder,
/// flushed to disk, then renamed over the target, so a crash leaves the old file intact.
pub fn save_weights(vs: &VarStore, path: &Path) -> Result<(), ModelError> {
    write_tensors_atomic(&state_dict(vs), path)
}

/// Writes named tensors to a safetensors file atomically (see [`save_weights`]). A floating
/// tensor holding NaN or an infinity is refused: such a file is never a checkpoint.
pub fn write_tensors_atomic(tensors: &[(String, Tensor)], path: &Path) -> Result<(), ModelError> {
    let write_err = |reason: String| ModelError::WriteWeights {
        path: path.to_path_buf(),
        reason,
    };
    for (name, t) in tensors {
        if t.is_floating_point() && t.f_isfinite()?.f_all()?.f_int64_value(&[])? == 0 {
            return Err(write_err(format!(
                "tensor `{name}` is not finite (NaN or infinite); nothing was written"
            )));
        }
    }
    // a refused target costs nothing: checked before the tensors are serialised
    resnext_io::check_target(path)?;
    let views = tensors
        .iter()
        .map(|(name, t)| Ok((name.as_str(), TensorView::new(t)?)))
        .collect::<Result<Vec<_>, ModelError>>()?;
    let bytes =
        safetensors::tensor::serialize(views, &None).map_err(|e| write_err(format!("{e:?}")))?;
    Ok(resnext_io::write_atomic(path, &bytes)?)
}

/// PyTorch's name of a dtype (`float32`, `int64`, ...), as in a `state_dict` manifest.
pub fn dtype_name(kind: Kind) -> &'static str {
    KINDS.iter().find(|k| k.0 == kind).map_or("other", |k| k.2)
}

/// The tensor kinds a weights file stores: their safetensors dtype and their name.
const KINDS: [(Kind, safetensors::Dtype, &str); 10] = {
    use safetensors::Dtype;
    [
        (Kind::Float, Dtype::F32, "float32"),
        (Kind::Double, Dtype::F64, "float64"),
        (Kind::Half, Dtype::F16, "float16"),
        (Kind::BFloat16, Dtype::BF16, "bfloat16"),
        (Kind::Int64, Dtype::I64, "int64"),
        (Kind::Int, Dtype::I32, "int32"),
        (Kind::Int16, Dtype::I16, "int16"),
        (Kind::Int8, Dtype::I8, "int8"),
        (Kind::Uint8, Dtype::U8, "uint8"),
        (Kind::Bool, Dtype::BOOL, "bool"),
    ]
};

/// Stores every 4-D weight (the convolutions) in channels-last memory order, in place: the same
/// values and shapes, strides N, H, W, C. With channels-last inputs the convolutions then need no
/// per-call reordering of their weights. Saving, loading and optimiser updates keep working
/// (saved files are always written contiguous).
pub fn convert_to_channels_last(vs: &VarStore) -> Result<(), ModelError> {
    tch::no_grad(|| {
        for (_, mut var) in vs.variables() {
            if var.dim() == 4 {
                let cl = var
                    .f_permute([0, 2, 3, 1])?
                    .f_contiguous()?
                    .f_permute([0, 3, 1, 2])?;
                var.set_data(&cl);
            }
        }
        Ok(())
    })
}

/// A tensor as safetensors sees it: its bytes are copied out one tensor at a time while the file
/// is written.
struct TensorView {
    tensor: Tensor,
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    len: usize,
}

impl TensorView {
    fn new(t: &Tensor) -> Result<Self, ModelError> {
        let kind = t.kind();
        let dtype = KINDS
            .iter()
            .find(|k| k.0 == kind)
            .map(|k| k.1)
            .ok_or_else(|| {
                ModelError::InvalidConfig(format!("cannot store a tensor of kind {kind:?}"))
            })?;
        let tensor = t.f_to_device(tch::Device::Cpu)?.f_contiguous()?;
        let shape: Vec<usize> = tensor.size().iter().map(|&d| d as usize).collect();
        let len = tensor.numel() * t.kind().elt_size_in_bytes();
        Ok(Self {
            tensor,
            dtype,
            shape,
            len,
        })
    }
}

impl safetensors::View for TensorView {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        let mut bytes = vec![0u8; self.len];
        self.tensor.copy_data_u8(&mut bytes, self.tensor.numel());
        bytes.into()
    }
    fn data_len(&self) -> usize {
        self.len
    }
}
