//! One module per command.

mod average;
mod bench;
mod compare;
mod convert;
mod cv;
mod data;
mod eval;
mod export;
mod lr_find;
mod plot;
mod predict;
mod report;
mod serve;
mod summary;
mod train;

use crate::args::{Cli, Command};
use anyhow::{bail, Result};
use std::process::ExitCode;

pub fn run(cli: Cli) -> Result<ExitCode> {
    // N copies of another command would each do the whole job (N servers on one port, N
    // evaluations writing one eval.json)
    let several = resnext_train::dist::launcher_env().filter(|&(_, size)| size != 1);
    if let (Some((rank, _)), false) = (several, matches!(cli.command, Command::Train(_))) {
        bail!(
            "started as rank {rank} by a launcher (mpirun, srun): only `resnext train` runs on several processes"
        );
    }
    match cli.command {
        Command::Summary(a) => summary::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Train(a) => train::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Data(d) => data::run(d),
        Command::Bench(a) => bench::run(a),
        Command::Export(a) => export::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Cv(a) => cv::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Report(a) => report::run(a),
        Command::LrFind(a) => lr_find::run(a),
        Command::Average(a) => average::run(a),
    }
}
