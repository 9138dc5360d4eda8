//! `resnext`: train, evaluate, predict and explain ResNeXt classifiers (Xie et al. 2017).
//! A thin main: parse, dispatch, print the error chain on one line, return an exit code.

mod args;
mod commands;
mod dist;
mod image_input;
mod interrupt;
mod one_line;
mod progress;
mod source;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print in full
        Err(e) if !e.use_stderr() => {
            return match e.print() {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            };
        }
        // a usage error is one line, as every other error
        Err(e) => {
            let text = e.to_string();
            let mut lines = text.lines();
            let first = lines.next().unwrap_or("error: bad arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            // "the following required arguments were not provided:" lists them below
            let listed = lines
                .take_while(|l| first.ends_with(':') && !l.trim().is_empty())
                .map(|l| format!(" {}", l.trim()))
                .collect::<Vec<_>>()
                .join(",");
            eprintln!("error: {first}{listed} (see --help)");
            return ExitCode::from(2);
        }
    };
    if matches!(cli.command, args::Command::Serve(_)) {
        interrupt::hold_stop_signals();
    } else {
        interrupt::die_on_closed_pipe();
    }
    init_tracing();
    // Training and inference free and reallocate the same large activations every step.
    resnext_train::memory::retain_freed_memory();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", one_line::one_line(&err));
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Fails only when a subscriber is already set, which then keeps logging.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(progress::LogWriter::default)
        .with_ansi(progress::is_tty())
        .with_target(false)
        .try_init()
        .ok();
}
