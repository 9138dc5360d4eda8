//! Project automation (`cargo xtask <command>`), in the style of rust-analyzer's xtask: the
//! command line declared once in `flags.rs`, one module per command, no libtorch dependency, so
//! it builds before libtorch exists.

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
mod flags;
mod gpu_check;
mod launch;
mod plot;
mod run_files;
mod serve;
mod setup;
mod stats;
mod test;
mod tidy;
mod train;

use clap::Parser;
use flags::Command;
use std::process::ExitCode;

fn main() -> ExitCode {
    let result = match flags::Flags::parse().command {
        Command::Setup(f) => setup::run(&f).map(drop),
        Command::Test(p) => test::run(&p.args()),
        Command::Download(f) => download::run(&f),
        Command::Train(p) => train::run(p.args()),
        Command::Demo => demo::run(),
        Command::Eval(p) => eval::run(p.args()),
        Command::Cv(p) => cv::run(p.args()),
        Command::Plot(f) => plot::run(f),
        Command::Serve(f) => serve::run(&f),
        Command::GpuCheck => gpu_check::run(),
        Command::Bench(f) => bench::run(&f),
        Command::BenchFloor(f) => bench_floor::run(&f),
        Command::BenchCold(f) => bench_cold::run(&f),
        Command::BenchData(f) => bench_data::run(&f),
        Command::BenchOverlap(f) => bench_overlap::run(&f),
        Command::BenchDist(f) => bench_dist::run(&f),
        Command::BenchServe(f) => bench_serve::run(&f),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
