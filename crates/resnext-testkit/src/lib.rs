//! Helpers the workspace's tests share (a dev-dependency only, never published):
//! - [`skip`]: a test that cannot run says why, and `cargo xtask test` counts and names it;
//! - [`fixture`]: the small fixtures committed in the repository;
//! - [`shared`]: data in `../shared` (the MSLD photos), found through `RESNEXT_SHARED`;
//! - [`can_mount_tmpfs`]: whether a small file system can be mounted to fill it (full-disk tests);
//! - [`tiny_config_text`]: the training config of a tiny model that the tests train;
//! - [`proptest_cases`]: the case count of the fuzz properties, `PROPTEST_CASES` or a default;
//! - [`venv_python`]: the setup venv's Python, when it has the checkers a test needs.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

/// The variable naming the file where skipped tests are recorded (`cargo xtask test` sets it).
pub const SKIP_LOG: &str = "RESNEXT_SKIP_LOG";

/// Records that the running test is skipped and why: a line on stderr (shown with
/// `--nocapture`) and, under `cargo xtask test`, a line `test name<TAB>reason` in the skip log,
/// which it counts and prints at the end.
pub fn skip(reason: &str) {
    let name = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string();
    eprintln!("skipped {name}: {reason}");
    if let Some(log) = std::env::var_os(SKIP_LOG) {
        // One short line per append: concurrent tests do not interleave within a line.
        let line = format!("{name}\t{}\n", reason.replace(['\n', '\t'], " "));
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!(
                "cannot record the skip in {}: {e}",
                PathBuf::from(log).display()
            );
        }
    }
}

/// The setup venv's Python when it imports `modules` (as `import` lists them: `"a, b"`); else
/// `None` with a counted [`skip`] saying `why`. `libtorch_lib` is libtorch's `lib/` folder
/// (`RESNEXT_LIBTORCH_LIB`, or `LIBTORCH` + `/lib`): `.libtorch` is
/// `<venv>/lib/python3.X/site-packages/torch`, and the venv's folder is resolved on disk
/// (Python finds its venv from the path it was started by, read lexically).
pub fn venv_python(libtorch_lib: &str, modules: &str, why: &str) -> Option<PathBuf> {
    let python = (!libtorch_lib.is_empty())
        .then(|| {
            PathBuf::from(libtorch_lib)
                .join("../../../../..")
                .canonicalize()
                .ok()
        })
        .flatten()
        .map(|venv| venv.join("bin/python"));
    let ok = python.as_ref().is_some_and(|p| {
        Command::new(p)
            .args(["-c", &format!("import {modules}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        skip(why);
    }
    python.filter(|_| ok)
}

/// A fixture committed in the repository, `rel` under `crates/resnext-model/tests/fixtures`
/// (made by the scripts in `scripts/`; see the README there). Always present.
pub fn fixture(rel: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../resnext-model/tests/fixtures")
        .join(rel);
    assert!(p.exists(), "fixture {} is missing", p.display());
    p
}

/// `rel` under `RESNEXT_SHARED`. Without the variable the test is skipped: `None`, with a printed
/// reason. With it, a missing file is a failure.
pub fn shared(rel: &str) -> Option<PathBuf> {
    match std::env::var_os("RESNEXT_SHARED") {
        None => {
            skip(&format!(
                "needs ../shared (RESNEXT_SHARED is not set): `{rel}`"
            ));
            None
        }
        Some(root) => {
            let p = PathBuf::from(root).join(rel);
            assert!(
                p.exists(),
                "RESNEXT_SHARED is set but {} does not exist",
                p.display()
            );
            Some(p)
        }
    }
}

/// True when this machine lets an unprivileged user namespace mount a small tmpfs
/// (`unshare -r -m`); prints why a test is skipped when it does not.
pub fn can_mount_tmpfs() -> bool {
    let ok = Command::new("unshare")
        .args([
            "-r",
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs -o size=64k tmpfs /tmp",
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        skip("needs `unshare -r -m` to mount a small tmpfs (user namespaces)");
    }
    ok
}

/// Cases per fuzz property: `PROPTEST_CASES` when set (long campaigns), else `default`.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// [`tiny_config_text`] with SGD (momentum 0.9, rate 0.01) instead of Adam: its update is linear
/// in the gradient, so two ways of computing the same step stay comparable (the distributed
/// equivalence test, `cargo xtask gpu-check`).
pub fn tiny_sgd_config_text(root: &std::path::Path, epochs: usize, extra: &str) -> String {
    tiny_config_text(root, epochs, extra)
        .replace("lr = 0.001", "name = \"sgd\"\nlr = 0.01\nmomentum = 0.9")
}

/// A tiny training config on `root`: custom ResNeXt [1, 1, 1, 1] with 2 groups of width 4, 32 px
/// images, batch 8, a quarter for validation, one libtorch thread; `extra` is added to `[train]`.
pub fn tiny_config_text(root: &std::path::Path, epochs: usize, extra: &str) -> String {
    format!(
        r#"name = "tiny"
[model]
arch = "custom"
layers = [1, 1, 1, 1]
groups = 2
width_per_group = 4
[data]
root = {root:?}
val = 0.25
batch_size = 8
[data.train_transform]
resize = [32, 32]
hflip = 0.5
[data.eval_transform]
resize = [32, 32]
[optim]
lr = 0.001
[train]
epochs = {epochs}
seed = 3
threads = 1
{extra}
"#,
        root = root.to_string_lossy()
    )
}
