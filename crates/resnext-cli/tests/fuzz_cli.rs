//! Fuzzing the real binary's arguments and `--set` values on a tiny model and tiny data: whatever
//! the arguments, `resnext` never panics, never exits above 2, and a failure is exactly one
//! `error:` line. Cases: `PROPTEST_CASES` or 24 (each runs the binary, so they are costly).

mod common;

use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::OnceLock;

/// A tiny finished run and its data, made once for all cases.
struct World {
    _dir: tempfile::TempDir,
    data: PathBuf,
    config: PathBuf,
    run: PathBuf,
    image: PathBuf,
    text: PathBuf,
    scratch: PathBuf,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let data = common::synth(dir.path(), 4);
        let config = common::tiny_config(dir.path(), &data, 1, "");
        let run = dir.path().join("run");
        common::ok(&[
            "train",
            "--config",
            config.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
        ]);
        let image = data.join("dots/dots_0000.png");
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "not an image").unwrap();
        let scratch = dir.path().join("scratch");
        std::fs::create_dir_all(&scratch).unwrap();
        World {
            _dir: dir,
            data,
            config,
            run,
            image,
            text,
            scratch,
        }
    })
}

/// A value a hostile user might type.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("1".to_string()),
        Just("3".to_string()),
        Just("1e308".to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("18446744073709551616".to_string()),
        Just("".to_string()),
        Just("cuda:7".to_string()),
        Just("bf16".to_string()),
        Just("last".to_string()),
        Just("[1, 2]".to_string()),
        Just("\"a\\nb\"".to_string()),
        "[a-z_.]{0,12}",
        (-1000i64..100000).prop_map(|v| v.to_string()),
        (-1.0f64..2.0).prop_map(|v| v.to_string()),
    ]
}

/// A path argument: real files of the world, missing ones, odd ones.
fn path(w: &'static World) -> impl Strategy<Value = String> {
    let s = |p: &PathBuf| p.to_string_lossy().into_owned();
    prop_oneof![
        Just(s(&w.data)),
        Just(s(&w.run)),
        Just(s(&w.image)),
        Just(s(&w.text)),
        Just(s(&w.config)),
        Just(s(&w.data.join("missing"))),
        Just("/dev/null".to_string()),
        Just("".to_string()),
        Just("../../..".to_string()),
    ]
}

/// `--set section.key=value` with real and made-up keys.
fn set() -> impl Strategy<Value = String> {
    let keys = prop_oneof![
        Just("optim.lr"),
        Just("optim.eps"),
        Just("optim.momentum"),
        Just("optim.betas"),
        Just("optim.name"),
        Just("schedule.gamma"),
        Just("schedule.min_lr"),
        Just("schedule.name"),
        Just("schedule.warmup_start_factor"),
        Just("train.threads"),
        Just("train.device"),
        Just("train.precision"),
        Just("train.label_smoothing"),
        Just("train.ema_decay"),
        Just("train.early_stopping_patience"),
        Just("data.batch_size"),
        Just("data.eval_batch_size"),
        Just("data.threads"),
        Just("data.val"),
        Just("data.group_regex"),
        Just("data.mix"),
        Just("data.eval_transform.resize"),
        Just("model.arch"),
        Just("model.groups"),
        Just("nosuch.key"),
        Just("train"),
        Just("..."),
    ];
    (keys, value()).prop_map(|(k, v)| format!("{k}={v}"))
}

/// A command line: a subcommand, its required parts, and random flags.
fn command(w: &'static World) -> impl Strategy<Value = Vec<String>> {
    let flag = prop_oneof![
        (Just("--top-k"), value()),
        (Just("--batch-size"), value()),
        (Just("--device"), value()),
        (Just("--precision"), value()),
        (Just("--checkpoint"), value()),
        (Just("--split"), value()),
        (Just("--arch"), value()),
        (Just("--num-classes"), value()),
        (Just("--image-size"), value()),
        (Just("--cam-class"), value()),
        (Just("--layers"), value()),
        (Just("--groups"), value()),
    ];
    let flags = prop::collection::vec(flag, 0..3);
    let sets = prop::collection::vec(set(), 0..3);
    let kind = 0..5usize;
    (kind, flags, sets, path(w), 0..1000u32).prop_map(move |(kind, flags, sets, p, n)| {
        let s = |p: &PathBuf| p.to_string_lossy().into_owned();
        let mut args: Vec<String> = match kind {
            0 => vec!["predict".into(), "--run".into(), s(&w.run), p],
            1 => vec!["eval".into(), "--no-write".into(), "--run".into(), p],
            2 => vec!["summary".into()],
            3 => vec!["data".into(), "check".into(), "--root".into(), p],
            _ => vec![
                "train".into(),
                "--config".into(),
                s(&w.config),
                "--out".into(),
                s(&w.scratch.join(format!("run{n}"))),
                "--epochs".into(),
                "1".into(),
            ],
        };
        // flags that a command does not know are usage errors: one line too
        for (f, v) in flags {
            args.push(f.to_string());
            args.push(v);
        }
        if kind == 4 {
            for s in sets {
                args.push("--set".into());
                args.push(s);
            }
        }
        args
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: resnext_testkit::proptest_cases(24),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_panic_no_exit_above_2_and_one_error_line(args in command(world())) {
        let o = common::bin().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        prop_assert!(
            !err.contains("panicked") && !err.contains("stack backtrace"),
            "{args:?} panicked:\n{err}"
        );
        let code = o.status.code();
        prop_assert!(code.is_some(), "{args:?} was killed by a signal:\n{err}");
        let code = code.unwrap_or(0);
        prop_assert!(code <= 2, "{args:?} exited {code}:\n{err}");
        if code != 0 {
            let lines = err.lines().filter(|l| l.starts_with("error")).count();
            prop_assert_eq!(lines, 1, "{:?}: expected one error line:\n{}", args, err);
        }
    }
}
