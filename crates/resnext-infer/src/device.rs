//! Where the network runs: `cpu`, `cuda`, `cuda:N` or `auto`, parsed once into [`DeviceChoice`]
//! (config files, `--device` and the library share it) and resolved against what libtorch sees.
//!
//! libtorch's CUDA code lives in `libtorch_cuda.so`. Nothing in a Rust binary references its
//! symbols, so the linker drops it as unneeded (tch-rs issues #213 and #907) and libtorch then
//! knows no CUDA at all. [`load_cuda`] opens it with `dlopen` when a CUDA device is asked for (or
//! at `auto`), so CPU runs keep their fast start and CUDA runs find their GPUs.

use crate::error::InferError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use tch::Device;

/// A device as a user names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceChoice {
    #[default]
    Cpu,
    /// `cuda` is `cuda:0`.
    Cuda(usize),
    /// A CUDA device when one is there, else the CPU.
    Auto,
}

impl FromStr for DeviceChoice {
    type Err = InferError;
    fn from_str(s: &str) -> Result<Self, InferError> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "cpu" => Ok(Self::Cpu),
            "auto" => Ok(Self::Auto),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(Self::Cuda(n)),
                _ => Err(InferError::UnknownDevice(s.to_string())),
            },
        }
    }
}

impl TryFrom<String> for DeviceChoice {
    type Error = InferError;
    fn try_from(s: String) -> Result<Self, InferError> {
        s.parse()
    }
}

impl From<DeviceChoice> for String {
    fn from(d: DeviceChoice) -> String {
        d.to_string()
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Auto => f.write_str("auto"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceChoice {
    /// The libtorch device, loading CUDA support first when the choice needs it.
    pub fn resolve(self) -> Result<Device, InferError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Auto => {
                let _loaded = load_cuda().is_ok();
                Ok(Device::cuda_if_available())
            }
            Self::Cuda(n) => {
                let no_cuda = |reason: String| InferError::NoCuda {
                    device: self.to_string(),
                    reason,
                };
                load_cuda().map_err(no_cuda)?;
                let count = cuda_device_count();
                if count == 0 {
                    return Err(no_cuda(
                        "CUDA support is loaded, but no CUDA device or driver was found".into(),
                    ));
                }
                if n >= count {
                    return Err(no_cuda(format!("libtorch sees {count} CUDA device(s)")));
                }
                Ok(Device::Cuda(n))
            }
        }
    }
}

fn cuda_device_count() -> usize {
    if tch::Cuda::is_available() {
        tch::Cuda::device_count().max(0) as usize
    } else {
        0
    }
}

/// Loads libtorch's CUDA library once per process; the error says why it could not be loaded.
pub fn load_cuda() -> Result<(), String> {
    static LOADED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    LOADED.get_or_init(open_cuda_library).clone()
}

#[cfg(target_os = "linux")]
fn open_cuda_library() -> Result<(), String> {
    // The binary's rpath (or LD_LIBRARY_PATH) finds libtorch; the build's own libtorch is the
    // fallback for binaries whose rpath does not reach it.
    let mut candidates = vec!["libtorch_cuda.so".to_string()];
    if let Some(dir) = option_env!("RESNEXT_LIBTORCH_LIB") {
        candidates.push(format!("{dir}/libtorch_cuda.so"));
    }
    let mut last = String::new();
    for name in candidates {
        match dlopen_global(&name) {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(cuda_load_error(&last))
}

/// Why CUDA cannot be used, from dlopen's error: a missing `libtorch_cuda.so`, or CUDA
/// libraries it needs, is a CPU-only libtorch (`cargo xtask setup`'s CPU install leaves both
/// out); any other failure is reported as it is.
fn cuda_load_error(dlerror: &str) -> String {
    let dlerror = dlerror.trim();
    // "PATH/libX.so: cannot open shared object file", PATH absent when found by name
    let missing = dlerror
        .split(':')
        .next()
        .map(|path| path.trim().rsplit('/').next().unwrap_or(path))
        .filter(|lib| lib.starts_with("lib"));
    match missing {
        Some(lib) if dlerror.contains("cannot open shared object file") => format!(
            "CUDA support is not installed: libtorch's CUDA support needs {lib}, which this \
             CPU-only libtorch leaves out; install CUDA's libraries with `cargo xtask setup --cuda` \
             (with your own LIBTORCH: point it at a CUDA build of libtorch)"
        ),
        _ => format!(
            "this libtorch has no CUDA support (libtorch_cuda.so cannot be loaded: {dlerror}); \
             `cargo xtask setup --cuda` installs one that has (with your own LIBTORCH: a CUDA \
             build of libtorch)"
        ),
    }
}

#[cfg(not(target_os = "linux"))]
fn open_cuda_library() -> Result<(), String> {
    Err("loading CUDA support is implemented for Linux only".into())
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn dlopen_global(name: &str) -> Result<(), String> {
    let c = std::ffi::CString::new(name).map_err(|e| e.to_string())?;
    // SAFETY: `c` is a valid NUL-terminated string; a handle that stays open for the life of the
    // process is what we want (libtorch registers its CUDA hooks from static initialisers).
    let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if !handle.is_null() {
        return Ok(());
    }
    // SAFETY: dlerror returns a thread-local NUL-terminated string or null.
    let err = unsafe { libc::dlerror() };
    if err.is_null() {
        Err("unknown dlopen error".into())
    } else {
        // SAFETY: non-null, NUL-terminated, valid until the next dl* call on this thread.
        Err(unsafe { std::ffi::CStr::from_ptr(err) }
            .to_string_lossy()
            .into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_cuda_library_says_how_to_install_it() {
        let e = super::cuda_load_error(
            "libcublas.so.13: cannot open shared object file: No such file or directory",
        );
        assert!(e.starts_with("CUDA support is not installed"), "{e}");
        assert!(
            e.contains("libcublas.so.13") && e.contains("cargo xtask setup --cuda"),
            "{e}"
        );
        let e = super::cuda_load_error(
            "libtorch_cuda.so: cannot open shared object file: No such file or directory",
        );
        assert!(e.starts_with("CUDA support is not installed"), "{e}");
        assert!(
            e.contains("libtorch_cuda.so,") && e.contains("setup --cuda"),
            "{e}"
        );
        let e = super::cuda_load_error(
            "/opt/libtorch/lib/libtorch_cuda.so: cannot open shared object file: No such file",
        );
        assert!(
            e.contains("needs libtorch_cuda.so,") && !e.contains("/opt"),
            "{e}"
        );
        let e =
            super::cuda_load_error("libtorch_cuda.so: undefined symbol: cudaGetDriverEntryPoint");
        assert!(e.starts_with("this libtorch has no CUDA support"), "{e}");
        assert!(e.contains("setup --cuda") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn names_parse_and_print_back() {
        for (s, d) in [
            ("cpu", DeviceChoice::Cpu),
            ("CUDA", DeviceChoice::Cuda(0)),
            ("cuda:3", DeviceChoice::Cuda(3)),
            ("auto", DeviceChoice::Auto),
        ] {
            assert_eq!(s.parse::<DeviceChoice>().unwrap(), d);
            assert_eq!(d.to_string().parse::<DeviceChoice>().unwrap(), d);
        }
        for bad in ["", "tpu", "cuda:", "cuda:x", "cuda:-1"] {
            assert!(bad.parse::<DeviceChoice>().is_err(), "{bad}");
        }
    }
}
