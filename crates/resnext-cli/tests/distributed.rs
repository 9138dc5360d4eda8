//! Data-parallel training on MPI: `mpirun -np 2 resnext train` on loopback, one libtorch thread
//! per rank, a tiny architecture. Needs the `mpi` feature (`cargo xtask test` turns it on when
//! OpenMPI is installed: `cargo xtask setup --mpi`) and `mpirun`; each test skips, counted,
//! without them.

mod common;

use common::{metrics_rows, ok, stderr, stdout, synth, tiny_config};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a job may take to end after one of its ranks died or failed.
const FAULT_BOUND: Duration = Duration::from_secs(90);

/// `mpirun -np N <resnext>`, or `None` (skip recorded) when this build or machine cannot.
fn mpirun(np: usize) -> Option<Command> {
    mpirun_with(np, &[])
}

/// [`mpirun`] with more launcher arguments.
fn mpirun_with(np: usize, launcher: &[&str]) -> Option<Command> {
    if !cfg!(feature = "mpi") {
        resnext_testkit::skip(
            "needs the `mpi` feature (cargo xtask test enables it once `cargo xtask setup --mpi` installed OpenMPI)",
        );
        return None;
    }
    let found = Command::new("mpirun")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        resnext_testkit::skip("needs mpirun (cargo xtask setup --mpi)");
        return None;
    }
    let mut c = Command::new("mpirun");
    c.args(["-np", &np.to_string(), "--oversubscribe"])
        // loopback and shared memory only
        .args([
            "--mca",
            "btl",
            "self,vader,tcp",
            "--mca",
            "btl_tcp_if_include",
            "lo",
        ])
        .args(["--mca", "oob_tcp_if_include", "lo"])
        .args(["--mca", "btl_vader_single_copy_mechanism", "none"])
        // CI runs as root in a container; harmless otherwise
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .args(launcher)
        .arg(env!("CARGO_BIN_EXE_resnext"));
    Some(c)
}

fn run_ok(mut c: Command, args: &[&str]) -> Output {
    let o = c.args(args).output().expect("mpirun runs");
    assert!(
        o.status.success(),
        "mpirun resnext {args:?} failed:\n{}\n{}",
        stdout(&o),
        stderr(&o)
    );
    o
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every tensor of a run's checkpoint.
fn tensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .filter(|(_, v)| v.dtype() == safetensors::Dtype::F32)
        .map(|(n, v)| {
            let f = v
                .data()
                .chunks(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (n, f)
        })
        .collect()
}

/// The config of the equivalence test: one epoch of 3 full batches of 8, SGD with momentum, in
/// float64 (`precision = "fp64"`: activations and gradients, over fp32 weights).
///
/// In float32 the comparison measured this tiny network's conditioning, not the
/// synchronisation: some gradients are sums that nearly cancel (see `resnext-model`'s
/// `tests/sync_bn.rs`), which amplifies the rounding of sums taken in another order (2 ranks, or
/// 2 threads instead of 1 in one process), differently with each CPU's kernels (4e-3 after 3
/// steps on an AVX2-only CPU, 1.5e-6 with AVX-512). In float64 that rounding is 2^29 times
/// smaller. SGD's update is linear in the gradient (Adam divides by its magnitude and moves a
/// weight whose near-zero gradient changed sign by the whole rate).
fn three_steps(dir: &Path, data: &Path, extra: &str) -> PathBuf {
    let cfg = dir.join("tiny.toml");
    let text =
        resnext_testkit::tiny_sgd_config_text(data, 1, &format!("precision = \"fp64\"\n{extra}"));
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// The largest difference between two checkpoints' fp32 tensors, running statistics relative to
/// their size (a variance may be ~10), and where.
fn largest_difference(
    a: &BTreeMap<String, Vec<f32>>,
    b: &BTreeMap<String, Vec<f32>>,
) -> (f32, String) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let mut worst = (0.0f32, String::new());
    for (name, x) in a {
        let y = &b[name];
        let scale = if name.contains("running_") {
            x.iter().fold(1.0f32, |m, v| m.max(v.abs()))
        } else {
            1.0
        };
        for (p, q) in x.iter().zip(y) {
            let d = (p - q).abs() / scale;
            if d > worst.0 {
                worst = (d, name.clone());
            }
        }
    }
    worst
}

/// Two runs that compute the same function in float64 differ by float32's rounding alone: the
/// weights and running statistics are stored in fp32. A weight's SGD update rounds to the same
/// fp32 value unless its float64 value lies within ~1e-16 of a rounding boundary, and then by one
/// ulp; a running statistic takes 3 fp32 updates (≤ 1 ulp each) of values that each side rounds
/// from float64 (another ulp each, the two variance formulas differing below that). So 8 ulps of
/// the largest value: 2·(3 + 1). Measured: 2.1e-7 (a running variance), 0 for the weights. The
/// per-rank control is 0.7 away.
const SAME_FUNCTION: f32 = 8.0 * f32::EPSILON;

#[test]
fn synchronised_batchnorm_on_two_ranks_equals_one_process() {
    let Some(mpi) = mpirun(2) else { return };
    let tmp = tempfile::tempdir().unwrap();
    // 32 images, a quarter for validation: 24 to train, 3 steps of the global batch 8
    let data = synth(tmp.path(), 8);
    let cfg = three_steps(tmp.path(), &data, "sync_batchnorm = true");
    let one = tmp.path().join("one");
    let two = tmp.path().join("two");
    ok(&["train", "--config", s(&cfg), "--out", s(&one)]);
    run_ok(mpi, &["train", "--config", s(&cfg), "--out", s(&two)]);
    let (a, b) = (
        tensors(&one.join("last.safetensors")),
        tensors(&two.join("last.safetensors")),
    );
    let (d, at) = largest_difference(&a, &b);
    assert!(
        d <= SAME_FUNCTION,
        "2 ranks differ from 1 process by {d} in {at}"
    );
    // one process with 2 threads computes the same function too
    let threads = tmp.path().join("two-threads");
    ok(&[
        "train",
        "--config",
        s(&cfg),
        "--out",
        s(&threads),
        "--set",
        "train.threads=2",
    ]);
    let (d2, at2) = largest_difference(&a, &tensors(&threads.join("last.safetensors")));
    assert!(
        d2 <= SAME_FUNCTION,
        "2 threads differ from 1 by {d2} in {at2}"
    );
    // the comparison can fail: per-rank BatchNorm (2 × 4 images) is another function
    let per_rank = tmp.path().join("per-rank");
    let cfg2 = three_steps(tmp.path(), &data, "");
    let Some(mpi) = mpirun(2) else { return };
    run_ok(mpi, &["train", "--config", s(&cfg2), "--out", s(&per_rank)]);
    let c = tensors(&per_rank.join("last.safetensors"));
    let (apart, at3) = largest_difference(&a, &c);
    eprintln!(
        "fp64, 3 SGD steps: 2 ranks {d:.3e} ({at}), 2 threads {d2:.3e} ({at2}), per-rank BatchNorm {apart:.3e} ({at3}) from 1 process"
    );
    assert!(
        apart > 1e3 * SAME_FUNCTION,
        "per-rank BatchNorm gave nearly the same weights ({apart})"
    );
    // the validation metrics of the gathered shards equal one process's
    let (r1, r2) = (metrics_rows(&one), metrics_rows(&two));
    for col in [3, 4] {
        let (x, y): (f64, f64) = (r1[0][col].parse().unwrap(), r2[0][col].parse().unwrap());
        assert!((x - y).abs() < 1e-3, "column {col}: {x} vs {y}");
    }
    let config = std::fs::read_to_string(two.join("config.toml")).unwrap();
    assert!(config.contains("ranks = 2"), "{config}");
    assert!(!std::fs::read_to_string(one.join("config.toml"))
        .unwrap()
        .contains("ranks ="));
}

/// The `batch` debug lines of a job: (rank, epoch) -> sample indices.
fn batches(log: &str) -> BTreeMap<(usize, usize), Vec<usize>> {
    let mut out: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
    for line in log
        .lines()
        .filter(|l| l.contains(" batch ") || l.ends_with(" batch"))
    {
        let field = |k: &str| -> Option<&str> {
            let at = line.find(&format!("{k}="))? + k.len() + 1;
            let rest = &line[at..];
            Some(if rest.starts_with('[') {
                &rest[..=rest.find(']')?]
            } else {
                rest.split_whitespace().next()?
            })
        };
        let (Some(rank), Some(epoch), Some(samples)) =
            (field("rank"), field("epoch"), field("samples"))
        else {
            continue;
        };
        let samples: Vec<usize> = samples
            .trim_matches(['[', ']'])
            .split(',')
            .filter(|x| !x.trim().is_empty())
            .map(|x| x.trim().parse().unwrap())
            .collect();
        out.entry((rank.parse().unwrap(), epoch.parse().unwrap()))
            .or_default()
            .extend(samples);
    }
    out
}

#[test]
fn per_rank_batchnorm_shards_every_image_once_and_keeps_ranks_identical() {
    let tmp = tempfile::tempdir().unwrap();
    // as across hosts, from a hostfile (one host here)
    let hosts = tmp.path().join("hosts");
    std::fs::write(&hosts, "localhost slots=2\n").unwrap();
    let Some(mut mpi) = mpirun_with(2, &["--hostfile", s(&hosts)]) else {
        return;
    };
    // 40 images, about 30 to train at global batch 8: the last batch is split too
    let data = synth(tmp.path(), 10);
    let cfg = tiny_config(tmp.path(), &data, 2, "");
    let out = tmp.path().join("run");
    mpi.env("RUST_LOG", "resnext_train=debug")
        .env("NO_COLOR", "1");
    let o = run_ok(mpi, &["train", "--config", s(&cfg), "--out", s(&out)]);
    let log = stderr(&o);
    let split: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("split.json")).unwrap()).unwrap();
    let n_train = split["train"].as_array().unwrap().len();
    let seen = batches(&log);
    for epoch in 1..=2 {
        let mut all: Vec<usize> = Vec::new();
        for rank in 0..2 {
            let mine = seen
                .get(&(rank, epoch))
                .unwrap_or_else(|| panic!("no batches of rank {rank} in epoch {epoch}:\n{log}"));
            // balanced shares of each global batch: at most one image apart per batch
            assert!(
                mine.len() >= n_train / 2 - 4,
                "rank {rank}: {} images",
                mine.len()
            );
            all.extend(mine);
        }
        all.sort_unstable();
        assert_eq!(all, (0..n_train).collect::<Vec<_>>(), "epoch {epoch}");
    }
    // the epochs' orders differ (a seeded permutation per epoch)
    assert_ne!(seen[&(0, 1)], seen[&(0, 2)]);
    // both ranks checked their weights against each other after every epoch
    let checks = log
        .lines()
        .filter(|l| l.contains("every rank holds the same weights"))
        .count();
    assert_eq!(checks, 4, "{log}");
    let rows = metrics_rows(&out);
    assert_eq!(rows.len(), 2);
    let allreduce: f64 = rows[0][9].parse().unwrap();
    assert!(allreduce > 0.0, "{rows:?}");
}

/// The PIDs of this test's rank `rank` (found by a marker in their environment).
fn rank_pids(marker: &str, rank: usize) -> Vec<i32> {
    let mut pids = Vec::new();
    let want_rank = format!("OMPI_COMM_WORLD_RANK={rank}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        let vars: Vec<&[u8]> = env.split(|&b| b == 0).collect();
        let has = |s: &str| vars.contains(&s.as_bytes());
        if has(marker) && has(&want_rank) {
            pids.push(pid);
        }
    }
    pids
}

fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().ok();
    child.wait().ok();
    None
}

/// Waits until the run has committed `n` epochs (or the job ended).
fn wait_for_epochs(child: &mut Child, run: &Path, n: usize) {
    let start = Instant::now();
    loop {
        let rows = std::fs::read_to_string(run.join("metrics.csv"))
            .map(|t| t.lines().count().saturating_sub(1))
            .unwrap_or(0);
        if rows >= n {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the job ended before epoch {n}"
        );
        assert!(start.elapsed() < Duration::from_secs(120), "no epoch {n}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A 2-rank training job running in the background, its stderr in `log`.
struct Job {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    out: PathBuf,
    /// `RESNEXT_TEST_MARKER=<dir>`, in the environment of this job's processes only.
    marker: String,
    log: PathBuf,
    child: Child,
}

impl Job {
    /// Starts `epochs` epochs on a synthetic set of `per_class` images a class and waits for
    /// the first to be committed.
    fn start(mpi: Command, per_class: usize, epochs: usize) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = synth(tmp.path(), per_class);
        let cfg = tiny_config(tmp.path(), &data, epochs, "");
        let out = tmp.path().join("run");
        let marker = format!("RESNEXT_TEST_MARKER={}", tmp.path().display());
        let log = tmp.path().join("mpirun.log");
        let mut c = mpi;
        c.args(["train", "--config", s(&cfg), "--out", s(&out)])
            .env("RESNEXT_TEST_MARKER", tmp.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = c.spawn().expect("mpirun starts");
        wait_for_epochs(&mut child, &out, 1);
        Self {
            _tmp: tmp,
            data,
            out,
            marker,
            log,
            child,
        }
    }

    /// Waits for the job to end (failing the test past [`FAULT_BOUND`]); its exit and stderr.
    fn end(&mut self, what: &str) -> (ExitStatus, String) {
        let status = wait_bounded(&mut self.child, FAULT_BOUND)
            .unwrap_or_else(|| panic!("the job did not end within {FAULT_BOUND:?} after {what}"));
        (status, std::fs::read_to_string(&self.log).unwrap())
    }
}

#[test]
fn a_killed_rank_ends_the_job_and_the_run_resumes_on_another_count() {
    let Some(mpi) = mpirun(2) else { return };
    let mut job = Job::start(mpi, 24, 12);
    let victims = rank_pids(&job.marker, 1);
    assert_eq!(victims.len(), 1, "rank 1's process: {victims:?}");
    Command::new("kill")
        .args(["-KILL", &victims[0].to_string()])
        .status()
        .unwrap();
    let (status, text) = job.end("a rank died");
    assert!(!status.success());
    assert!(text.contains("rank 1"), "the dead rank is named:\n{text}");
    let out = job.out.clone();
    // the last committed epoch resumes, on one process, to the end
    let committed = metrics_rows(&out).len();
    assert!((1..12).contains(&committed), "{committed} epochs committed");
    let o = ok(&["train", "--resume", s(&out)]);
    assert!(o.contains("Epoch: 12"), "{o}");
    assert_eq!(metrics_rows(&out).len(), 12);
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(!config.contains("ranks ="), "one process now:\n{config}");
}

#[test]
fn a_failing_rank_is_named_and_the_run_resumes_on_two_ranks() {
    let Some(mpi) = mpirun(2) else { return };
    let mut job = Job::start(mpi, 12, 12);
    let (data, out) = (job.data.clone(), job.out.clone());
    // a training image turns unreadable: the rank whose share holds it fails on it
    let split: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("split.json")).unwrap()).unwrap();
    let victim = data.join(split["train"][0].as_str().unwrap());
    let good = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, b"not an image").unwrap();
    let (status, text) = job.end("a rank failed");
    assert!(!status.success());
    let name = victim.file_name().unwrap().to_string_lossy().to_string();
    let line = text
        .lines()
        .find(|l| l.starts_with("error: rank ") && l.contains(&name))
        .unwrap_or_else(|| panic!("no error naming the rank and {name}:\n{text}"));
    assert!(line.contains(" of 2: "), "{line}");
    // the image is mended; the run resumes from its last committed epoch on 2 ranks
    std::fs::write(&victim, good).unwrap();
    let committed = metrics_rows(&out).len();
    assert!(committed < 12, "the job ended early");
    let Some(mpi) = mpirun(2) else { return };
    let o = run_ok(mpi, &["train", "--resume", s(&out)]);
    assert!(stdout(&o).contains("Epoch: 12"), "{}", stdout(&o));
    let rows = metrics_rows(&out);
    assert_eq!(rows.len(), 12);
    let epochs: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
    assert_eq!(epochs, (1..=12).map(|e| e.to_string()).collect::<Vec<_>>());
}

#[test]
fn only_train_runs_as_one_of_several_ranks() {
    // what mpirun announces to rank 0 of 2; no MPI is started for a refused command
    let o = common::bin()
        .args(["summary", "--arch", "resnet50", "--num-classes", "2"])
        .env("OMPI_COMM_WORLD_RANK", "0")
        .env("OMPI_COMM_WORLD_SIZE", "2")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("only `resnext train` runs on several processes"),
        "{err}"
    );
}

#[test]
fn a_build_without_mpi_refuses_to_be_one_of_several_ranks() {
    if cfg!(feature = "mpi") {
        resnext_testkit::skip("checks the build without the `mpi` feature; this one has it");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 2);
    let cfg = tiny_config(tmp.path(), &data, 1, "");
    let out = tmp.path().join("run");
    let o = common::bin()
        .args(["train", "--config", s(&cfg), "--out", s(&out)])
        .env("OMPI_COMM_WORLD_RANK", "1")
        .env("OMPI_COMM_WORLD_SIZE", "2")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("built without MPI"), "{err}");
    assert!(!out.exists(), "nothing is written");
}

#[test]
fn accumulation_on_two_ranks_equals_one_process() {
    let Some(mpi) = mpirun(2) else { return };
    let tmp = tempfile::tempdir().unwrap();
    // 24 training images: 3 micro-batches of the global batch 8, one step of 2 and one of 1
    let data = synth(tmp.path(), 8);
    let cfg = three_steps(tmp.path(), &data, "sync_batchnorm = true\naccumulate = 2");
    let one = tmp.path().join("one");
    let two = tmp.path().join("two");
    ok(&["train", "--config", s(&cfg), "--out", s(&one)]);
    let job = run_ok(mpi, &["train", "--config", s(&cfg), "--out", s(&two)]);
    let (a, b) = (
        tensors(&one.join("last.safetensors")),
        tensors(&two.join("last.safetensors")),
    );
    let (d, at) = largest_difference(&a, &b);
    assert!(
        d <= SAME_FUNCTION,
        "accumulating on 2 ranks differs from 1 process by {d} in {at}"
    );
    // two optimiser steps on both: ranks accumulate locally and sum once per step
    let steps = |run: &Path| {
        let bytes = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let t = st.tensor("optim.step").unwrap();
        i64::from_le_bytes(t.data()[..8].try_into().unwrap())
    };
    assert_eq!((steps(&one), steps(&two)), (2, 2), "{}", stderr(&job));
    // and differs from stepping every batch, so the comparison can fail
    let every = tmp.path().join("every");
    let cfg1 = three_steps(tmp.path(), &data, "sync_batchnorm = true");
    ok(&["train", "--config", s(&cfg1), "--out", s(&every)]);
    let (apart, _) = largest_difference(&a, &tensors(&every.join("last.safetensors")));
    assert!(
        apart > 1e3 * SAME_FUNCTION,
        "accumulation changed nothing ({apart})"
    );
}
