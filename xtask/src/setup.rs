//! `cargo xtask setup`: libtorch from the official PyTorch 2.13.0 wheel on PyPI (the version that
//! tch 0.26 checks for), installed into a venv in a per-user cache and linked as `.libtorch`.
//!
//! Two installs, one venv each, so switching is relinking:
//! - **cpu** (`<cache>/torch-2.13.0-cpu`, the default without an NVIDIA GPU): the torch wheel
//!   without its dependencies, plus the only CUDA packages that `libtorch_cpu.so` loads (the CUDA
//!   runtime and CUPTI) and torch's pure-Python dependencies, with the wheel's CUDA and Python
//!   libraries removed ([`CPU_UNUSED`]). Python's `import torch` needs all of CUDA
//!   (`libtorch_python.so` links cuDNN, cuBLAS, NCCL), so it does not work here; the Rust side
//!   and ONNX Runtime do.
//! - **cuda** (`<cache>/torch-2.13.0`, with `--cuda` or when a GPU is present): the full wheel set
//!   (about 5 GB).
//!
//! Without `--cpu`/`--cuda` and without a GPU, a complete install that `.libtorch` already points
//! at is kept (a CUDA install is a superset).
//!
//! - `RESNEXT_CACHE_DIR` overrides the cache (default `$XDG_CACHE_HOME/resnext` or
//!   `~/.cache/resnext`).
//! - A `LIBTORCH` that points elsewhere than this repo's `.libtorch` is the user's own libtorch:
//!   it is checked and left alone.
//! - `RESNEXT_PYTHON` names the Python interpreter (default `python3`).

use crate::{cmd, flags::Setup};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const TORCH_VERSION: &str = "2.13.0";
const MARKER: &str = ".resnext-complete";
/// `python -m pip install`, without pip's version check or questions.
const PIP_INSTALL: [&str; 5] = [
    "-m",
    "pip",
    "install",
    "--disable-pip-version-check",
    "--no-input",
];

/// Which PyTorch install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// What libtorch's CPU path loads.
    Cpu,
    /// The full wheel set with CUDA's libraries.
    Cuda,
}

impl Variant {
    fn venv_name(self) -> String {
        match self {
            Self::Cpu => format!("torch-{TORCH_VERSION}-cpu"),
            Self::Cuda => format!("torch-{TORCH_VERSION}"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        }
    }
}

/// The pip requirements of the CPU install besides `torch --no-deps`: the two CUDA libraries
/// that `libtorch_cpu.so` links (`ldd`), and torch's own Python dependencies (its METADATA).
pub const CPU_DEPS: [&str; 8] = [
    "cuda-toolkit[cudart,cupti]==13.0.3",
    "filelock",
    "typing-extensions>=4.10.0",
    "setuptools>=77.0.3",
    "sympy>=1.13.3",
    "networkx>=2.5.1",
    "jinja2",
    "fsspec>=0.8.5",
];

/// An NVIDIA GPU is visible: a device node or `nvidia-smi`.
pub fn gpu_present() -> bool {
    Path::new("/dev/nvidiactl").exists()
        || Path::new("/dev/nvidia0").exists()
        || on_path("nvidia-smi")
}

fn cache_dir() -> Result<PathBuf> {
    let cache = if let Some(dir) = std::env::var_os("RESNEXT_CACHE_DIR") {
        PathBuf::from(dir)
    } else if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        PathBuf::from(dir).join("resnext")
    } else {
        let home = std::env::var_os("HOME").context("neither RESNEXT_CACHE_DIR nor HOME is set")?;
        PathBuf::from(home).join(".cache/resnext")
    };
    Ok(cache)
}

/// The venv of one install.
fn variant_venv(variant: Variant) -> Result<PathBuf> {
    Ok(cache_dir()?.join(variant.venv_name()))
}

/// The install that `.libtorch` points into, if it is one of ours and complete.
fn linked_variant() -> Option<Variant> {
    let target = std::fs::read_link(cmd::root().join(".libtorch")).ok()?;
    [Variant::Cpu, Variant::Cuda].into_iter().find(|v| {
        variant_venv(*v).is_ok_and(|venv| target.starts_with(&venv) && is_complete(&venv, *v))
    })
}

/// The venv that holds the PyTorch in use: the linked install, else the one setup would choose.
pub fn venv_dir() -> Result<PathBuf> {
    variant_venv(linked_variant().unwrap_or_else(|| default_variant(None)))
}

fn default_variant(asked: Option<Variant>) -> Variant {
    if let Some(v) = asked {
        return v;
    }
    if gpu_present() {
        return Variant::Cuda;
    }
    linked_variant().unwrap_or(Variant::Cpu)
}

fn marker_text(variant: Variant) -> String {
    match variant {
        Variant::Cuda => TORCH_VERSION.to_string(),
        Variant::Cpu => format!("{TORCH_VERSION} cpu"),
    }
}

fn is_complete(venv: &Path, variant: Variant) -> bool {
    std::fs::read_to_string(venv.join(MARKER)).is_ok_and(|m| m.trim() == marker_text(variant))
        && find_torch_dir(venv).is_some()
}

fn user_libtorch() -> Option<PathBuf> {
    let value = PathBuf::from(std::env::var_os("LIBTORCH")?);
    let ours = cmd::root().join(".libtorch");
    (value != ours && !value.ends_with(".libtorch")).then_some(value)
}

fn find_torch_dir(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&lib)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    entries
        .into_iter()
        .map(|p| p.join("site-packages/torch"))
        .find(|t| t.join("lib").is_dir() && t.join("include").is_dir())
}

/// Makes sure libtorch is there and `.libtorch` points at it. Returns the libtorch folder.
/// `--browser` also installs headless Chromium and its WebDriver (for the page's browser test).
pub fn run(flags: &Setup) -> Result<PathBuf> {
    let asked = match (flags.cpu, flags.cuda) {
        (true, _) => Some(Variant::Cpu),
        (_, true) => Some(Variant::Cuda),
        _ => None,
    };
    if flags.browser {
        install_browser()?;
    }
    if flags.mpi {
        install_mpi()?;
    }
    if let Some(dir) = user_libtorch() {
        if !dir.join("lib").is_dir() {
            bail!("LIBTORCH={} has no lib/ folder: point it at a libtorch {TORCH_VERSION} install or unset it", dir.display());
        }
        return Ok(dir);
    }
    let variant = default_variant(asked);
    let venv = variant_venv(variant)?;
    let torch = match find_torch_dir(&venv) {
        Some(t) if is_complete(&venv, variant) => t,
        _ => install(&venv, variant)?,
    };
    if variant == Variant::Cpu {
        prune_cpu(&torch)?;
    }
    link(&torch)?;
    forget_stale_torch_sys_builds(&torch.join("lib"))?;
    install_checkers(&venv)?;
    Ok(torch)
}

/// torch-sys's build script decides once which of libtorch's libraries to link (CUDA's when
/// `libtorch_cuda.so` is there) and reruns only when `LIBTORCH` changes, which `.libtorch`
/// keeps the same: after a switch or a prune its cached answer can name a library that is gone
/// (`unable to find library -ltorch_cuda`), or leave out CUDA that is now there. Each profile's
/// torch-sys build is checked against the libraries in `lib` on every setup (so a clean that
/// failed or was interrupted is done the next time) and a stale one is cleaned, which makes its
/// next build ask again (about a minute of C++ per profile).
fn forget_stale_torch_sys_builds(lib: &Path) -> Result<()> {
    let stale = stale_torch_sys_profiles(&cmd::target_dir()?, lib);
    for profile in &stale {
        let mut clean = cmd::cargo();
        clean.args(["clean", "--quiet", "-p", "torch-sys", "--profile", profile]);
        cmd::output(
            &mut clean,
            &format!("cargo clean -p torch-sys --profile {profile}"),
        )?;
    }
    if !stale.is_empty() {
        eprintln!(
            "setup: libtorch changed, so torch-sys is rebuilt against it on the next build ({})",
            stale.join(", ")
        );
    }
    Ok(())
}

/// The profiles (`dev`, `release`, a custom one) under `target` whose torch-sys build output
/// links a libtorch library that `lib` lacks, or does not link `torch_cuda` that `lib` has.
fn stale_torch_sys_profiles(target: &Path, lib: &Path) -> Vec<String> {
    let has = |name: &str| lib.join(format!("lib{name}.so")).exists();
    let mut stale = Vec::new();
    for profile in std::fs::read_dir(target).into_iter().flatten().flatten() {
        let outputs = std::fs::read_dir(profile.path().join("build"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|b| b.file_name().to_string_lossy().starts_with("torch-sys-"))
            .filter_map(|b| std::fs::read_to_string(b.path().join("output")).ok());
        let is_stale = outputs.into_iter().any(|output| {
            let linked: Vec<&str> = output
                .lines()
                .filter_map(|l| l.strip_prefix("cargo:rustc-link-lib="))
                .filter(|n| !n.starts_with("static="))
                .filter(|n| n.starts_with("torch") || n.starts_with("c10"))
                .collect();
            linked.iter().any(|n| !has(n)) || (has("torch_cuda") && !linked.contains(&"torch_cuda"))
        });
        if is_stale {
            let dir = profile.file_name().to_string_lossy().into_owned();
            stale.push(if dir == "debug" {
                "dev".to_string()
            } else {
                dir
            });
        }
    }
    stale.sort();
    stale
}

/// The libraries of the torch wheel that the CPU install never loads: the CUDA side
/// (`libtorch_cuda*.so` alone is 490 MB) and Python's bindings, which need all of CUDA.
/// `libtorch_cpu.so` and `libc10.so` load none of them (`ldd`). `libtorch.so` still names
/// `libtorch_cuda.so` as needed; torch-sys links it with `-ltorch`, and rustc's `--as-needed`
/// leaves it out of the binaries, as nothing in it is used. A C++ program linking `.libtorch`
/// without `--as-needed` needs the CUDA install (`cargo xtask setup --cuda`).
const CPU_UNUSED: [&str; 6] = [
    "libtorch_cuda.so",
    "libtorch_cuda_linalg.so",
    "libtorch_nvshmem.so",
    "libc10_cuda.so",
    "libcaffe2_nvrtc.so",
    "libtorch_python.so",
];

/// Removes [`CPU_UNUSED`] from a CPU install (also one made before they were left out).
fn prune_cpu(torch: &Path) -> Result<()> {
    let mut freed = 0;
    for name in CPU_UNUSED {
        let path = torch.join("lib").join(name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        freed += meta.len();
    }
    if freed > 0 {
        eprintln!(
            "setup: removed {} MB of CUDA and Python libraries that libtorch's CPU path never loads",
            freed / 1_000_000
        );
    }
    Ok(())
}

/// What the tests check outputs with: the export round-trip tests load exported models with
/// ONNX's checker and ONNX Runtime; serve's tests validate `/openapi.json` with
/// `openapi-spec-validator`; resnext-stats' reference test recomputes every point estimate
/// with scikit-learn and statsmodels (`scripts/sklearn_reference.py`). None imports torch, so
/// they work in the CPU venv too.
pub const CHECKERS: [&str; 6] = [
    "onnx==1.23.2",
    "onnxruntime==1.32.0",
    "openapi-spec-validator==0.9.0",
    "scikit-learn==1.9.1",
    "statsmodels==0.15.0",
    // reads the TensorBoard event files back (scripts/read_tensorboard.py)
    "tensorboard==2.21.0",
];
const CHECKERS_MARKER: &str = ".resnext-checkers";

/// Installs [`CHECKERS`] into the venv once (a marker records it).
fn install_checkers(venv: &Path) -> Result<()> {
    let marker = venv.join(CHECKERS_MARKER);
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == CHECKERS.join(" ")) {
        return Ok(());
    }
    eprintln!(
        "setup: installing {} into {}",
        CHECKERS.join(" "),
        venv.display()
    );
    ensure_python_packages(&CHECKERS)
        .context("the test checkers (ONNX, ONNX Runtime, openapi-spec-validator, scikit-learn, statsmodels, tensorboard) could not be installed from PyPI")?;
    resnext_io::write_atomic(&marker, CHECKERS.join(" ").as_bytes())?;
    Ok(())
}

fn install(venv: &Path, variant: Variant) -> Result<PathBuf> {
    let python = std::env::var_os("RESNEXT_PYTHON").unwrap_or_else(|| "python3".into());
    eprintln!(
        "setup: installing PyTorch {TORCH_VERSION} ({}{}) from PyPI into {} ({}, once)",
        variant.name(),
        match (variant, gpu_present()) {
            (Variant::Cpu, _) => ": no NVIDIA GPU here; `cargo xtask setup --cuda` installs CUDA",
            (Variant::Cuda, true) => ": an NVIDIA GPU is present",
            (Variant::Cuda, false) => "",
        },
        venv.display(),
        match variant {
            Variant::Cpu => "about 1.4 GB",
            Variant::Cuda => "about 5 GB",
        }
    );
    if !venv.join("bin/python").exists() {
        let parent = venv.parent().context("cache path has no parent")?;
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        let out = Command::new(&python)
            .args(["-m", "venv"])
            .arg(venv)
            .output()
            .map_err(|e| anyhow::anyhow!("cannot run {}: {e}; install Python 3 (Debian: apt-get install python3 python3-venv) or set RESNEXT_PYTHON", python.to_string_lossy()))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(venv);
            bail!(
                "`{} -m venv` failed: {}; on Debian/Ubuntu install the venv module with `apt-get install python3-venv`",
                python.to_string_lossy(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    let pip = |what: &[String]| -> Result<()> {
        let mut pip = Command::new(venv.join("bin/python"));
        pip.args(PIP_INSTALL).args(what);
        cmd::run(pip, &format!("pip install {}", what.join(" ")))
            .context("PyTorch could not be installed from PyPI; check the network, or set LIBTORCH to an existing libtorch")
    };
    let torch_req = format!("torch=={TORCH_VERSION}");
    match variant {
        Variant::Cuda => pip(&[torch_req])?,
        Variant::Cpu => {
            pip(&["--no-deps".to_string(), torch_req])?;
            pip(&CPU_DEPS.map(String::from))?;
            eprintln!(
                "setup: pip's notes that torch requires nvidia-* and triton packages are expected: \
                 the cpu install leaves out what libtorch's CPU path never loads"
            );
        }
    }
    let torch = find_torch_dir(venv)
        .context("pip finished but site-packages/torch has no lib/ and include/")?;
    resnext_io::write_atomic(&venv.join(MARKER), marker_text(variant).as_bytes())?;
    Ok(torch)
}

/// Points `.libtorch` at `torch` (replacing a link to another install).
fn link(torch: &Path) -> Result<()> {
    let link = cmd::root().join(".libtorch");
    if let Ok(current) = std::fs::read_link(&link) {
        if current == torch {
            return Ok(());
        }
        std::fs::remove_file(&link)
            .with_context(|| format!("cannot replace {}", link.display()))?;
    } else if link.exists() {
        bail!(
            "{} exists and is not a link; remove it or set LIBTORCH",
            link.display()
        );
    }
    std::os::unix::fs::symlink(torch, &link)
        .with_context(|| format!("cannot link {} -> {}", link.display(), torch.display()))?;
    eprintln!("setup: .libtorch -> {}", torch.display());
    Ok(())
}

/// Makes sure the setup venv has these pip requirements (for benchmarks against PyTorch);
/// returns the venv's Python.
pub fn ensure_python_packages(reqs: &[&str]) -> Result<PathBuf> {
    if linked_variant() == Some(Variant::Cpu) && reqs.iter().any(|r| r.starts_with("torch")) {
        bail!(
            "the PyTorch side of this benchmark imports torch in Python, which links all of \
             CUDA's libraries (cuDNN, cuBLAS, NCCL) even on a CPU; the CPU-only install leaves \
             them out: run `cargo xtask setup --cuda` first (about 5 GB; `setup --cpu` switches back)"
        );
    }
    let venv = venv_dir()?;
    let python = venv.join("bin/python");
    if !python.exists() {
        bail!("no setup venv at {} (a user LIBTORCH is set?): the PyTorch side of a benchmark needs it", venv.display());
    }
    let mut check = Command::new(&python);
    check.args(PIP_INSTALL).arg("-q").args(reqs);
    cmd::run(check, &format!("pip install {}", reqs.join(" ")))?;
    Ok(python)
}

/// The Debian packages of the browser test: Chromium and chromedriver.
pub const BROWSER_PACKAGES: [&str; 2] = ["chromium", "chromium-driver"];

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// Installs [`BROWSER_PACKAGES`] with apt-get when `chromium` or `chromedriver` is missing.
fn install_browser() -> Result<()> {
    if on_path("chromium") && on_path("chromedriver") {
        return Ok(());
    }
    apt_install(
        "the browser test needs Chromium and chromedriver",
        &BROWSER_PACKAGES,
    )
}

/// OpenMPI (its compiler wrapper, `mpirun` and headers) and libclang, which the `mpi` crate's
/// bindings are generated with.
pub const MPI_PACKAGES: [&str; 3] = ["libopenmpi-dev", "openmpi-bin", "libclang-dev"];

/// Whether the `mpi` feature can be built and its tests run here: an MPI compiler wrapper,
/// `mpirun`, and libclang.
pub fn mpi_available() -> bool {
    on_path("mpicc") && on_path("mpirun") && has_libclang()
}

fn has_libclang() -> bool {
    if std::env::var_os("LIBCLANG_PATH").is_some() {
        return true;
    }
    let dirs = [
        "/usr/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
    ];
    let named = |d: &Path| {
        std::fs::read_dir(d).is_ok_and(|it| {
            it.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libclang"))
        })
    };
    dirs.iter().any(|d| {
        let d = Path::new(d);
        named(d)
            || std::fs::read_dir(d).is_ok_and(|it| {
                it.flatten().any(|e| {
                    e.file_name().to_string_lossy().starts_with("llvm-")
                        && named(&e.path().join("lib"))
                })
            })
    })
}

/// Installs [`MPI_PACKAGES`] with apt-get unless MPI is already usable.
fn install_mpi() -> Result<()> {
    if mpi_available() {
        return Ok(());
    }
    apt_install(
        "data-parallel training (feature `mpi`) needs OpenMPI and libclang",
        &MPI_PACKAGES,
    )
}

/// `apt-get install` of `packages` (through sudo unless root), updating the package lists when
/// the first try fails.
fn apt_install(why: &str, packages: &[&str]) -> Result<()> {
    if !on_path("apt-get") {
        bail!(
            "{why}; install them with your package manager (Debian: apt-get install {})",
            packages.join(" ")
        );
    }
    // apt-get needs root; anyone else goes through sudo
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let apt = |args: &[&str]| -> Result<()> {
        let mut c = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        c.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        cmd::run(c, &format!("apt-get {}", args.join(" ")))
    };
    eprintln!("setup: installing {} (apt-get)", packages.join(" "));
    let install: Vec<&str> = ["install", "-y", "--no-install-recommends"]
        .into_iter()
        .chain(packages.iter().copied())
        .collect();
    if apt(&install).is_err() {
        // a fresh machine may have no package lists yet
        apt(&["update"])?;
        apt(&install)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::stale_torch_sys_profiles;
    use std::fs;
    use std::path::Path;

    fn build(target: &Path, profile: &str, links: &[&str]) {
        let dir = target.join(profile).join("build/torch-sys-0123abcd");
        fs::create_dir_all(&dir).unwrap();
        let mut out = String::from("cargo:rerun-if-env-changed=LIBTORCH\ncargo:rustc-link-lib=static=tch\ncargo:rustc-link-lib=stdc++\n");
        for l in links {
            out.push_str(&format!("cargo:rustc-link-lib={l}\n"));
        }
        fs::write(dir.join("output"), out).unwrap();
    }

    fn lib(dir: &Path, names: &[&str]) {
        fs::create_dir_all(dir).unwrap();
        for n in names {
            fs::write(dir.join(format!("lib{n}.so")), b"").unwrap();
        }
    }

    #[test]
    fn a_torch_sys_build_is_stale_when_its_link_list_and_the_libraries_disagree() {
        let tmp = tempfile::tempdir().unwrap();
        let (target, cpu, cuda) = (
            tmp.path().join("target"),
            tmp.path().join("cpu"),
            tmp.path().join("cuda"),
        );
        lib(&cpu, &["torch_cpu", "torch", "c10"]);
        lib(&cuda, &["torch_cpu", "torch", "c10", "torch_cuda"]);
        let cpu_links = ["torch_cpu", "torch", "c10", "gomp"];
        let cuda_links = ["torch_cpu", "torch_cuda", "torch", "c10", "gomp"];
        // no build yet
        assert!(stale_torch_sys_profiles(&target, &cpu).is_empty());
        // built against CUDA, then pruned or switched to the CPU install: both profiles
        build(&target, "debug", &cuda_links);
        build(&target, "release", &cuda_links);
        fs::create_dir_all(target.join("tmp")).unwrap();
        assert_eq!(stale_torch_sys_profiles(&target, &cpu), ["dev", "release"]);
        assert!(stale_torch_sys_profiles(&target, &cuda).is_empty());
        // built against the CPU install, then switched to CUDA: CUDA would be left out
        build(&target, "debug", &cpu_links);
        assert_eq!(stale_torch_sys_profiles(&target, &cuda), ["dev"]);
        assert_eq!(stale_torch_sys_profiles(&target, &cpu), ["release"]);
        build(&target, "release", &cpu_links);
        assert!(stale_torch_sys_profiles(&target, &cpu).is_empty());
    }
}
