//! Bad input anywhere on the command line: a one-line error that names the problem, a non-zero
//! exit, never a panic or a backtrace.

mod common;

use common::run;

#[test]
fn every_command_refuses_bad_input_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = common::synth(d, 4);
    let text = d.join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    let fake_img = d.join("fake.jpg");
    std::fs::write(&fake_img, "not an image").unwrap();
    let bad_toml = d.join("bad.toml");
    std::fs::write(&bad_toml, "[train\nepochs = ").unwrap();
    let unknown_key = d.join("unknown.toml");
    std::fs::write(&unknown_key, "[train]\nepochz = 3\n").unwrap();
    let bad_arch = d.join("arch.toml");
    std::fs::write(&bad_arch, "[model]\narch = \"resnext9000\"\n").unwrap();
    // a finished tiny run, to aim other architectures at its weights
    let cfg = common::tiny_config(d, &data, 1, "");
    let run_dir = d.join("run");
    common::ok(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        run_dir.to_str().unwrap(),
    ]);
    let weights = run_dir.join("best.safetensors");
    // a weights file cut short, and a copy of the run whose resume checkpoint is cut short
    let bytes = std::fs::read(&weights).unwrap();
    let half = d.join("half.safetensors");
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    let broken = d.join("broken run");
    std::fs::create_dir_all(&broken).unwrap();
    for e in std::fs::read_dir(&run_dir).unwrap() {
        let e = e.unwrap();
        if e.path().is_file() {
            std::fs::copy(e.path(), broken.join(e.file_name())).unwrap();
        }
    }
    let ck = std::fs::read(broken.join("checkpoint.safetensors")).unwrap();
    std::fs::write(broken.join("checkpoint.safetensors"), &ck[..ck.len() / 3]).unwrap();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["summary".into(), "--arch".into(), "resnext9000".into()],
            "resnext9000",
        ),
        (
            vec!["summary".into(), "--arch".into(), "custom".into()],
            "--layers",
        ),
        (
            vec![
                "data".into(),
                "check".into(),
                "--root".into(),
                s(&d.join("missing")),
            ],
            "missing",
        ),
        (
            vec!["data".into(), "check".into(), "--root".into(), s(&text)],
            "notes.txt",
        ),
        (
            vec![
                "data".into(),
                "split".into(),
                "--root".into(),
                s(&data),
                "--val".into(),
                "1.5".into(),
                "--out".into(),
                s(&d.join("s.json")),
            ],
            "val",
        ),
        (
            vec![
                "data".into(),
                "split".into(),
                "--root".into(),
                s(&data),
                "--group-regex".into(),
                "(".into(),
                "--out".into(),
                s(&d.join("s.json")),
            ],
            "regex",
        ),
        (
            vec!["train".into(), "--config".into(), s(&d.join("nope.toml"))],
            "nope.toml",
        ),
        (
            vec!["train".into(), "--config".into(), s(&bad_toml)],
            "bad.toml",
        ),
        (
            vec!["train".into(), "--config".into(), s(&unknown_key)],
            "epochz",
        ),
        (
            vec!["train".into(), "--config".into(), s(&bad_arch)],
            "resnext9000",
        ),
        (
            vec![
                "train".into(),
                "--config".into(),
                s(&cfg),
                "--data".into(),
                s(&d.join("nodata")),
            ],
            "nodata",
        ),
        (
            vec![
                "train".into(),
                "--config".into(),
                s(&cfg),
                "--set".into(),
                "optim.lr".into(),
            ],
            "optim.lr",
        ),
        (
            vec![
                "train".into(),
                "--config".into(),
                s(&cfg),
                "--device".into(),
                "tpu".into(),
            ],
            "tpu",
        ),
        (
            vec!["train".into(), "--resume".into(), s(&d.join("no run"))],
            "no run",
        ),
        (
            vec![
                "predict".into(),
                "--run".into(),
                s(&d.join("no run")),
                s(&fake_img),
            ],
            "no run",
        ),
        (
            vec!["predict".into(), "--run".into(), s(&run_dir), s(&fake_img)],
            "fake.jpg",
        ),
        (
            vec![
                "predict".into(),
                "--run".into(),
                s(&run_dir),
                s(&d.join("ghost.png")),
            ],
            "ghost.png",
        ),
        (
            vec![
                "predict".into(),
                "--weights".into(),
                s(&weights),
                "--arch".into(),
                "resnext50_32x4d".into(),
                "--num-classes".into(),
                "4".into(),
                s(&fake_img),
            ],
            "best.safetensors",
        ),
        (
            [
                vec!["predict".into(), "--weights".into(), s(&weights)],
                common::TINY_ARCH.map(String::from).to_vec(),
                vec!["--num-classes".into(), "3".into(), s(&fake_img)],
            ]
            .concat(),
            "fc.",
        ),
        (
            vec![
                "predict".into(),
                "--weights".into(),
                s(&text),
                "--arch".into(),
                "resnet50".into(),
                "--num-classes".into(),
                "2".into(),
                s(&fake_img),
            ],
            "notes.txt",
        ),
        (
            vec![
                "eval".into(),
                "--run".into(),
                s(&run_dir),
                "--split".into(),
                "everything".into(),
            ],
            "everything",
        ),
        (vec!["plot".into(), s(&d.join("no run"))], "no run"),
        (
            vec![
                "predict".into(),
                "--weights".into(),
                s(&half),
                "--arch".into(),
                "resnext50_32x4d".into(),
                "--num-classes".into(),
                "2".into(),
                s(&fake_img),
            ],
            "half.safetensors",
        ),
        (
            vec![
                "train".into(),
                "--config".into(),
                s(&cfg),
                "--out".into(),
                s(&d.join("fresh")),
                "--init-weights".into(),
                s(&half),
            ],
            "half.safetensors",
        ),
        (
            vec!["train".into(), "--resume".into(), s(&broken)],
            "checkpoint.safetensors",
        ),
        (
            vec![
                "data".into(),
                "bench".into(),
                "--root".into(),
                s(&data),
                "--transform".into(),
                "sideways".into(),
            ],
            "sideways",
        ),
        (
            vec!["data".into(), "stats".into(), "--root".into(), s(&text)],
            "notes.txt",
        ),
        (
            [
                vec!["bench".into(), "train".into()],
                common::TINY_ARCH.map(String::from).to_vec(),
                vec!["--ablate".into(), "dropout".into()],
            ]
            .concat(),
            "dropout",
        ),
    ];
    for (args, needle) in cases {
        let o = common::bin().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(
            !err.contains("panicked")
                && !err.contains("RUST_BACKTRACE")
                && !err.contains("stack backtrace"),
            "{args:?} panicked:\n{err}"
        );
        let error_lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(
            error_lines.len(),
            1,
            "{args:?}: expected one error line, got:\n{err}"
        );
        assert!(
            error_lines[0].contains(needle),
            "{args:?}: error does not name `{needle}`:\n{err}"
        );
    }
    // nothing was lost: the run is still intact
    assert!(run(&[
        "predict",
        "--run",
        run_dir.to_str().unwrap(),
        data.join("dots/dots_0000.png").to_str().unwrap()
    ])
    .status
    .success());
}
