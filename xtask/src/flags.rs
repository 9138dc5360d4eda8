//! The command line of `cargo xtask`, declared once, as rust-analyzer's `xtask/src/flags.rs`
//! declares its own: one clap `Parser`, one variant per command holding its typed flags, so the
//! help text, the parsing and the defaults cannot drift apart. Commands that hand their
//! arguments on (`test`, `train`, `eval`, `cv`, `serve`) keep them as written, `--` included.

use crate::cmd;
use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Project automation for resnext-rs",
    arg_required_else_help = true,
    // a flag given twice takes its last value, as before clap
    args_override_self = true
)]
pub struct Flags {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install PyTorch 2.13.0 (libtorch) from PyPI into a cache venv and link .libtorch
    ///
    /// Without an NVIDIA GPU only what libtorch's CPU path loads (about 1.4 GB), with one or with
    /// --cuda the full wheel set with CUDA (about 5 GB); --cpu and --cuda switch between the two.
    Setup(Setup),
    /// Setup on first use, then `cargo test --workspace --no-fail-fast [ARGS]`
    Test(PassThrough),
    /// Fetch a dataset of configs/datasets.toml (default msld) into data/NAME, or weights/NAME
    /// of configs/weights.toml into data/weights/
    ///
    /// Weights are checked against their sha256, or the 8 hex digits torchvision puts in the file
    /// name; `cargo xtask train|cv --init-weights weights/NAME` fetches them on first use.
    Download(Download),
    /// Release build, then `resnext train [ARGS]` (configs/monkeypox.toml, data/msld)
    Train(PassThrough),
    /// Generate a synthetic dataset in data/demo and train configs/demo.toml into runs/demo
    Demo,
    /// Release build, then `resnext eval [ARGS]` (default --run runs/monkeypox)
    Eval(PassThrough),
    /// Release build, then `resnext cv [ARGS]` (default configs/monkeypox.toml, data/msld,
    /// 3 folds, --out runs/cv-monkeypox)
    Cv(PassThrough),
    /// Draw the training curves, confusion matrix and ROC of a run directory
    Plot(Plot),
    /// Release build, then `resnext serve --run RUN [ARGS]` (default runs/monkeypox, else
    /// runs/demo)
    Serve(Serve),
    /// With an NVIDIA GPU: setup --cuda, tiny trainings on CUDA in fp32/bf16/fp16 against the
    /// CPU, predict/export/serve from a CUDA run, bench against PyTorch on the GPU
    ///
    /// Without a GPU, the CPU side only (exit 0).
    GpuCheck,
    /// ResNeXt train/eval throughput and memory against PyTorch, side by side
    Bench(Bench),
    /// Training throughput against the GEMM-peak limit, with BatchNorm and ReLU ablated
    /// (diagnostic) to show what the rest of a step costs
    BenchFloor(BenchFloor),
    /// Cold start of one ResNeXt-50 prediction against the Python script's
    BenchCold(BenchCold),
    /// The data pipeline against torchvision's DataLoader, side by side
    BenchData(BenchData),
    /// A training epoch against its steps alone (is data loading hidden?)
    BenchOverlap(BenchOverlap),
    /// Data-parallel training (mpirun -np N, 1 thread each) against one process of N threads:
    /// epoch-2 training throughput and gradient-sum time per step
    BenchDist(BenchDist),
    /// `resnext serve` under load on loopback: throughput and latency percentiles against the
    /// network alone, and their curve against the client count
    BenchServe(BenchServe),
}

#[derive(Debug, Default, Args)]
pub struct Setup {
    /// The CPU install (about 1.4 GB): what libtorch's CPU path loads
    #[arg(long, conflicts_with = "cuda")]
    pub cpu: bool,
    /// The full wheel set with CUDA (about 5 GB); the default where an NVIDIA GPU is present
    #[arg(long)]
    pub cuda: bool,
    /// Also install Chromium and chromedriver (apt-get) for the page test
    #[arg(long)]
    pub browser: bool,
    /// Also install OpenMPI and libclang (apt-get) for data-parallel training; xtask then builds
    /// with it
    #[arg(long)]
    pub mpi: bool,
}

/// Arguments handed on as they are written (after a `--` too).
#[derive(Debug, Args)]
pub struct PassThrough {
    /// Passed on unchanged
    #[arg(allow_hyphen_values = true, value_name = "ARGS")]
    args: Vec<String>,
    /// What follows a leading `--`, which clap itself would swallow
    #[arg(last = true, hide = true)]
    after_dashes: Option<Vec<String>>,
}

impl PassThrough {
    /// The arguments as given.
    pub fn args(&self) -> Vec<String> {
        let mut args = self.args.clone();
        if let Some(after) = &self.after_dashes {
            args.push("--".into());
            args.extend(after.iter().cloned());
        }
        args
    }
}

#[derive(Debug, Default, Args)]
pub struct Download {
    /// A dataset of configs/datasets.toml (default msld), or weights/NAME of configs/weights.toml
    pub name: Option<String>,
    /// Fetch from this URL instead of the registry's
    #[arg(long, conflicts_with = "from")]
    pub url: Option<String>,
    /// The archive's expected sha256 (64 hex digits)
    #[arg(long, value_name = "HEX", value_parser = crate::download::registry::parse_sha256)]
    pub sha256: Option<String>,
    /// A local archive or folder instead of a download (datasets only)
    #[arg(long, value_name = "FILE_OR_DIR")]
    pub from: Option<PathBuf>,
    /// Where the dataset (default data/NAME) or the weights (default data/weights) go
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The folder inside the archive that holds the class folders (datasets only)
    #[arg(long, value_name = "PATH")]
    pub subdir: Option<String>,
    /// Replace what is already there
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct Plot {
    /// The run directory
    #[arg(value_name = "RUN_DIR")]
    pub dir: String,
}

#[derive(Debug, Args)]
pub struct Serve {
    /// The run directory (default runs/monkeypox, else runs/demo); a first argument that starts
    /// with `-` is one of ARGS
    #[arg(allow_hyphen_values = true)]
    run: Option<String>,
    /// Arguments of `resnext serve`
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

impl Serve {
    /// The run named, if any, and the arguments for `resnext serve`.
    pub fn split(&self) -> (Option<&str>, Vec<String>) {
        let mut args = self.args.clone();
        match self.run.as_deref() {
            Some(r) if r.starts_with('-') => {
                args.insert(0, r.to_owned());
                (None, args)
            }
            run => (run, args),
        }
    }
}

/// Training steps (forward, backward, Adam) or inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    Train,
    Eval,
}

/// The precisions the CPU benchmarks compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Precision {
    Bf16,
    Fp32,
}

/// The name a choice has on the command line (`train`, `bf16`).
pub fn name(v: impl ValueEnum) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_owned())
        .unwrap_or_default()
}

/// A whole number of at least `MIN` (spaces around it allowed, as in `--curve "1, 2"`).
fn at_least<const MIN: usize>(s: &str) -> std::result::Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= MIN => Ok(n),
        Ok(_) => Err(format!("must be at least {MIN}")),
        Err(_) => Err("needs a whole number".into()),
    }
}

/// The photo folder of the benchmarks that read photos.
#[derive(Debug, Args)]
pub struct Photos {
    /// The photo folder (default ../shared/datasets/msld-original beside the workspace)
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

impl Photos {
    /// `--root`, or the MSLD photos of `../shared`; checked to be a folder.
    pub fn dir(&self) -> Result<PathBuf> {
        let root = self
            .root
            .clone()
            .unwrap_or_else(|| cmd::root().join("../shared/datasets/msld-original"));
        if !root.is_dir() {
            bail!("{} is not a folder; pass --root DIR", root.display());
        }
        Ok(root)
    }
}

#[derive(Debug, Args)]
pub struct Bench {
    /// Timed steps per run
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = at_least::<1>)]
    pub steps: usize,
    /// Images per step
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = at_least::<1>)]
    pub batch: usize,
    /// The architecture (a `resnext --arch` preset)
    #[arg(long, value_name = "A", default_value = "resnext50_32x4d")]
    pub arch: String,
    /// Rounds of resnext, PyTorch, PyTorch, resnext per setting
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = at_least::<1>)]
    pub repeats: usize,
    /// Only this mode (default: train, then eval)
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
}

#[derive(Debug, Args)]
pub struct BenchFloor {
    /// Timed steps per run
    #[arg(long, value_name = "N", default_value_t = 6, value_parser = at_least::<1>)]
    pub steps: usize,
    /// Rounds of A B C D D C B A
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = at_least::<1>)]
    pub repeats: usize,
    /// The architecture (a `resnext --arch` preset)
    #[arg(long, value_name = "A", default_value = "resnext50_32x4d")]
    pub arch: String,
    /// Images per step
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = at_least::<1>)]
    pub batch: usize,
    #[arg(long, value_enum, default_value_t = Precision::Bf16)]
    pub precision: Precision,
}

#[derive(Debug, Args)]
pub struct BenchCold {
    /// Rounds of resnext, Python, Python, resnext
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = at_least::<1>)]
    pub repeats: usize,
}

#[derive(Debug, Args)]
pub struct BenchData {
    #[command(flatten)]
    pub photos: Photos,
    /// Passes of resnext over the photos (a tenth of them over the large copies)
    #[arg(long, value_name = "N", default_value_t = 60, value_parser = at_least::<1>)]
    pub epochs: usize,
    /// Rounds
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = at_least::<1>)]
    pub repeats: usize,
}

#[derive(Debug, Args)]
pub struct BenchOverlap {
    #[command(flatten)]
    pub photos: Photos,
    /// Rounds
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = at_least::<1>)]
    pub repeats: usize,
}

#[derive(Debug, Args)]
pub struct BenchDist {
    /// Processes (`mpirun -np N`), and threads of the one process
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = at_least::<1>)]
    pub np: usize,
    /// Rounds
    #[arg(long, value_name = "R", default_value_t = 2, value_parser = at_least::<1>)]
    pub repeats: usize,
    #[command(flatten)]
    pub photos: Photos,
    /// Global batch sizes, at least 2 each
    #[arg(long, value_name = "B,..", value_delimiter = ',', default_value = "32", value_parser = at_least::<2>)]
    pub batches: Vec<usize>,
}

#[derive(Debug, Args)]
pub struct BenchServe {
    /// Client threads of the headline point
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = at_least::<1>)]
    pub clients: usize,
    /// Requests per point
    #[arg(long, value_name = "M", default_value_t = 200, value_parser = at_least::<1>)]
    pub requests: usize,
    /// Client counts of the curve (--clients is added)
    #[arg(long, value_name = "N,..", value_delimiter = ',', default_value = "1,2,4,8", value_parser = at_least::<1>)]
    pub curve: Vec<usize>,
    /// The server's --max-batch
    #[arg(long, value_name = "B", default_value_t = 16, value_parser = at_least::<1>)]
    pub max_batch: usize,
    #[arg(long, value_enum, default_value_t = Precision::Bf16)]
    pub precision: Precision,
    #[command(flatten)]
    pub photos: Photos,
    /// The curve's PNG (default target/bench-serve/serve-curve.png)
    #[arg(long, value_name = "PNG")]
    pub out: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(line: &str) -> std::result::Result<Command, clap::Error> {
        Flags::try_parse_from(line.split_whitespace()).map(|f| f.command)
    }

    #[test]
    fn the_declaration_is_consistent() {
        Flags::command().debug_assert();
    }

    /// The words of a documented command line, a "quoted string" one word.
    fn words(line: &str) -> Vec<String> {
        let pieces = line.split('"').enumerate();
        pieces
            .flat_map(|(i, p)| match i % 2 {
                1 => vec![p.to_owned()],
                _ => p.split_whitespace().map(String::from).collect(),
            })
            .collect()
    }

    /// Every `cargo xtask ...` of README.md and docs/*.md, to the end of its code span, comment
    /// or line; usage notation (`[--flag N]`) is left to the list below.
    #[test]
    fn every_documented_invocation_parses() {
        let root = cmd::root();
        let mut docs = vec![root.join("README.md")];
        for e in std::fs::read_dir(root.join("docs")).unwrap() {
            docs.push(e.unwrap().path());
        }
        let mut lines = Vec::new();
        for doc in docs
            .iter()
            .filter(|d| d.extension().is_some_and(|e| e == "md"))
        {
            let text = std::fs::read_to_string(doc).unwrap();
            for chunk in text.split("cargo xtask ").skip(1) {
                let end = chunk
                    .find(['`', '#', '\n', '|', ')', '\\'])
                    .unwrap_or(chunk.len());
                let line = chunk[..end].replace("<64 hex>", &"a".repeat(64));
                let words = words(&line);
                // prose such as "`cargo xtask\nbench-overlap`" is no command
                let command = words
                    .first()
                    .is_some_and(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
                if command && !line.contains(['[', '<']) {
                    lines.push(words);
                }
            }
        }
        assert!(lines.len() > 40, "{lines:?}");
        let usage = [
            "setup --cpu --browser --mpi",
            "test -p xtask -- --nocapture",
            "download weights/NAME --url URL --sha256 0000000000000000000000000000000000000000000000000000000000000000 --out DIR --force",
            "download NAME --from FILE_OR_DIR --out DIR --subdir P --force",
            "cv --config configs/monkeypox-finetune.toml --init-weights weights/x --out runs/cv-finetune",
            "serve runs/demo --addr 127.0.0.1:0",
            "serve --addr 127.0.0.1:0",
            "bench --steps 1 --batch 2 --arch resnext50_32x4d --repeats 1 --mode train",
            "bench-floor --steps 1 --repeats 1 --arch a --batch 1 --precision fp32",
            "bench-data --root DIR --epochs 1 --repeats 1",
            "bench-overlap --root DIR --repeats 1",
            "bench-dist --np 2 --repeats 1 --root DIR --batches 32,64",
            "bench-serve --clients 1 --requests 1 --curve 1,2,4,8 --max-batch 1 --precision fp32 --root D --out P",
            "help",
        ];
        for words in lines.into_iter().chain(usage.map(words)) {
            match Flags::try_parse_from(["xtask".to_owned()].into_iter().chain(words.clone())) {
                Ok(_) => {}
                Err(e) if words == ["help"] && e.kind() == clap::error::ErrorKind::DisplayHelp => {}
                Err(e) => panic!("`cargo xtask {}`: {e}", words.join(" ")),
            }
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let Ok(Command::Bench(b)) = parse("x bench") else {
            panic!()
        };
        assert_eq!(
            (b.steps, b.batch, b.repeats, b.arch.as_str(), b.mode),
            (3, 16, 3, "resnext50_32x4d", None)
        );
        let Ok(Command::BenchFloor(f)) = parse("x bench-floor") else {
            panic!()
        };
        assert_eq!(
            (f.steps, f.repeats, f.batch, f.precision),
            (6, 2, 16, Precision::Bf16)
        );
        let Ok(Command::BenchCold(c)) = parse("x bench-cold") else {
            panic!()
        };
        assert_eq!(c.repeats, 3);
        let Ok(Command::BenchData(d)) = parse("x bench-data") else {
            panic!()
        };
        assert_eq!((d.epochs, d.repeats, d.photos.root), (60, 5, None));
        let Ok(Command::BenchOverlap(o)) = parse("x bench-overlap") else {
            panic!()
        };
        assert_eq!(o.repeats, 1);
        let Ok(Command::BenchDist(d)) = parse("x bench-dist") else {
            panic!()
        };
        assert_eq!((d.np, d.repeats, d.batches), (2, 2, vec![32]));
        let Ok(Command::BenchServe(s)) = parse("x bench-serve") else {
            panic!()
        };
        assert_eq!(
            (s.clients, s.requests, s.max_batch, s.curve),
            (8, 200, 16, vec![1, 2, 4, 8])
        );
        assert_eq!((s.precision, s.out), (Precision::Bf16, None));
        let Ok(Command::Bench(b)) = parse("x bench --mode eval --steps=8 --repeats 2 --repeats 4")
        else {
            panic!()
        };
        assert_eq!(
            (b.mode, b.steps, b.repeats),
            (Some(Mode::Eval), 8, 4),
            "the last of a repeated flag"
        );
        assert_eq!(
            (name(Mode::Train), name(Precision::Bf16)),
            ("train".into(), "bf16".into())
        );
    }

    #[test]
    fn pass_through_keeps_every_argument() {
        let args = |line: &str| match parse(line).unwrap() {
            Command::Test(p) | Command::Train(p) | Command::Eval(p) | Command::Cv(p) => p.args(),
            other => panic!("{other:?}"),
        };
        assert_eq!(args("x test"), Vec::<String>::new());
        assert_eq!(args("x test -- --nocapture"), ["--", "--nocapture"]);
        assert_eq!(
            args("x test -p xtask --no-fail-fast -- --nocapture x"),
            ["-p", "xtask", "--no-fail-fast", "--", "--nocapture", "x"]
        );
        assert_eq!(
            args("x train --config c.toml --epochs=3 --set train.lr=0.1 --init-weights weights/w"),
            [
                "--config",
                "c.toml",
                "--epochs=3",
                "--set",
                "train.lr=0.1",
                "--init-weights",
                "weights/w"
            ]
        );
        assert_eq!(
            args("x cv --folds 5 --out runs/cv"),
            ["--folds", "5", "--out", "runs/cv"]
        );
        let serve = |line: &str| match parse(line).unwrap() {
            Command::Serve(s) => {
                let (run, args) = s.split();
                (run.map(String::from), args)
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(serve("x serve"), (None, vec![]));
        assert_eq!(
            serve("x serve runs/x --addr a:1"),
            (Some("runs/x".into()), vec!["--addr".into(), "a:1".into()])
        );
        assert_eq!(
            serve("x serve --addr a:1 --fold-bn"),
            (
                None,
                vec!["--addr".into(), "a:1".into(), "--fold-bn".into()]
            )
        );
        let Ok(Command::Download(d)) = parse("x download msld --out=x --force") else {
            panic!()
        };
        assert_eq!(
            (d.name.as_deref(), d.out, d.force),
            (Some("msld"), Some(PathBuf::from("x")), true)
        );
        let Ok(Command::Download(d)) = parse(&format!("x download --sha256 {}", "AB".repeat(32)))
        else {
            panic!()
        };
        assert_eq!(d.sha256, Some("ab".repeat(32)), "lower-cased");
    }

    #[test]
    fn bad_input_is_a_clap_error() {
        use clap::error::ErrorKind;
        for (line, kind) in [
            ("x", ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand),
            ("x frobnicate", ErrorKind::InvalidSubcommand),
            ("x bench --bogus 1", ErrorKind::UnknownArgument),
            ("x bench --steps", ErrorKind::InvalidValue),
            ("x bench --steps 0", ErrorKind::ValueValidation),
            ("x bench --steps x", ErrorKind::ValueValidation),
            ("x bench --mode both", ErrorKind::InvalidValue),
            ("x bench-floor --precision fp16", ErrorKind::InvalidValue),
            ("x bench-dist --batches 32,1", ErrorKind::ValueValidation),
            ("x bench-serve --curve 1,0", ErrorKind::ValueValidation),
            ("x bench-cold --root d", ErrorKind::UnknownArgument),
            ("x setup --cpu --cuda", ErrorKind::ArgumentConflict),
            ("x setup --gpu", ErrorKind::UnknownArgument),
            ("x demo now", ErrorKind::UnknownArgument),
            ("x gpu-check --fast", ErrorKind::UnknownArgument),
            ("x plot", ErrorKind::MissingRequiredArgument),
            ("x plot a b", ErrorKind::UnknownArgument),
            ("x download --url u --from f", ErrorKind::ArgumentConflict),
            ("x download --sha256 nothex", ErrorKind::ValueValidation),
            ("x download --bogus", ErrorKind::UnknownArgument),
            ("x download --url", ErrorKind::InvalidValue),
            ("x download a b", ErrorKind::UnknownArgument),
        ] {
            match parse(line) {
                Err(e) => assert_eq!(e.kind(), kind, "`{line}`: {e}"),
                Ok(c) => panic!("`{line}` parsed: {c:?}"),
            }
        }
        let e = parse("x download --sha256 xyz").unwrap_err().to_string();
        assert!(e.contains("`xyz` is not a sha256 (64 hex digits)"), "{e}");
        let e = parse("x bench --repeats 0").unwrap_err().to_string();
        assert!(e.contains("must be at least 1"), "{e}");
    }
}
