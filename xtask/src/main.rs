//! Project automation (`cargo xtask <command>`), in the style of rust-analyzer's xtask: one
//! module per command, no libtorch dependency, so it builds before libtorch exists.

mod args;
mod bench;
mod bench_cold;
mod bench_data;
mod bench_dist;
mod bench_floor;
mod bench_overlap;
mod bench_serve;
mod cmd;
mod cv;
mod demo;
mod download;
mod eval;
mod gpu_check;
mod plot;
mod run_files;
mod serve;
mod setup;
mod stats;
mod test;
mod tidy;
mod train;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  setup [--cpu|--cuda] [--browser] [--mpi]
                     install PyTorch 2.13.0 (libtorch) from PyPI into a cache venv, link .libtorch:
                     without an NVIDIA GPU only what libtorch's CPU path loads (about 1.5 GB),
                     with one or with --cuda the full wheel set with CUDA (about 5 GB); --cpu and
                     --cuda switch between the two;
                     --browser also installs Chromium and chromedriver (apt-get) for the page test
                     --mpi also installs OpenMPI and libclang (apt-get): data-parallel training
                     (`mpirun -np N target/release/resnext train`); xtask then builds with it
  test [ARGS]        setup on first use, then `cargo test --workspace [ARGS]`
  download [NAME] [--url URL] [--sha256 HEX] [--from FILE_OR_DIR] [--out DIR] [--subdir P] [--force]
                     fetch a dataset of configs/datasets.toml (default msld) into data/NAME
  download weights/NAME [--url URL] [--sha256 HEX] [--out DIR] [--force]
                     fetch ImageNet weights of configs/weights.toml into data/weights/ (checked
                     against the sha256, or the 8 hex digits torchvision puts in the file name);
                     `cargo xtask train|cv --init-weights weights/NAME` fetches on first use
  train [ARGS]       release build, then `resnext train` (configs/monkeypox.toml, data/msld)
  demo               generate a synthetic dataset in data/demo and train configs/demo.toml
  eval [ARGS]        release build, then `resnext eval` (default --run runs/monkeypox)
  cv [ARGS]          release build, then `resnext cv` (default configs/monkeypox.toml, data/msld,
                     3 folds, --out runs/cv-monkeypox)
  plot DIR           draw the training curves, confusion matrix and ROC of a run directory
  serve [RUN] [ARGS] release build, then `resnext serve --run RUN` (default runs/monkeypox, else
                     runs/demo)
  gpu-check          on a machine with an NVIDIA GPU: setup --cuda, tiny trainings on CUDA in
                     fp32/bf16/fp16 against the CPU, predict/export/serve from a CUDA run, bench
                     against PyTorch on the GPU; without one, the CPU side only (exit 0)
  bench [--steps N] [--batch N] [--arch A] [--repeats N] [--mode train|eval]
                     ResNeXt train/eval throughput and memory against PyTorch, side by side
  bench-floor [--steps N] [--repeats N] [--arch A] [--batch N] [--precision bf16|fp32]
                     training throughput against the GEMM-peak limit, with BatchNorm and ReLU
                     ablated (diagnostic) to show what the rest of a step costs
  bench-cold [--repeats N]
                     cold start of one ResNeXt-50 prediction against the Python script's
  bench-data [--root DIR] [--epochs N] [--repeats N]
                     the data pipeline against torchvision's DataLoader, side by side
  bench-overlap [--root DIR] [--repeats N]
                     a training epoch against its steps alone (is data loading hidden?)
  bench-dist [--np N] [--repeats R] [--root DIR]
                     data-parallel training (mpirun -np N, 1 thread each) against one process of N
                     threads: epoch-2 training throughput and gradient-sum time per step
  bench-serve [--clients N] [--requests M] [--curve 1,2,4,8] [--max-batch B] [--precision bf16|fp32]
              [--root DIR] [--out PNG]
                     `resnext serve` under load on loopback: throughput and latency percentiles
                     against the network alone, and their curve against the client count
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "setup" => setup::run(rest).map(|_| ()),
        "test" => test::run(rest),
        "train" => train::run(rest),
        "demo" => demo::run(rest),
        "download" => download::run(rest),
        "eval" => eval::run(rest),
        "cv" => cv::run(rest),
        "plot" => plot::run(rest),
        "bench" => bench::run(rest),
        "bench-cold" => bench_cold::run(rest),
        "bench-data" => bench_data::run(rest),
        "bench-floor" => bench_floor::run(rest),
        "bench-overlap" => bench_overlap::run(rest),
        "bench-serve" => bench_serve::run(rest),
        "bench-dist" => bench_dist::run(rest),
        "serve" => serve::run(rest),
        "gpu-check" => gpu_check::run(rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            eprintln!("error: unknown xtask command `{other}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
