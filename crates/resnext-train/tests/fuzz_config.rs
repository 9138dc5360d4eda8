//! Property-based fuzzing (proptest) of the config parser: mutated configs (edited bytes, lines
//! dropped or repeated, values and keys swapped for hostile ones) and `--set` strings are
//! accepted or refused with a one-line error, never a panic; an accepted config survives a
//! save/load round trip unchanged. `PROPTEST_CASES=N` runs longer campaigns (docs/fuzzing.md).

use proptest::prelude::*;
use resnext_train::config::{apply_set, TrainConfig};
use std::path::Path;

fn cases(default: u32) -> ProptestConfig {
    ProptestConfig {
        cases: resnext_testkit::proptest_cases(default),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Seed texts: the project's configs, and the fully resolved form of one (every key present).
fn seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut out: Vec<String> = ["monkeypox.toml", "demo.toml"]
        .iter()
        .map(|f| std::fs::read_to_string(root.join(f)).unwrap())
        .collect();
    let full = TrainConfig::from_toml(&out[0], Path::new("monkeypox.toml")).unwrap();
    out.push(full.to_toml().unwrap());
    out
}

const VALUES: &[&str] = &[
    "0",
    "-1",
    "1",
    "-0.0",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "-inf",
    "18446744073709551616",
    "9223372036854775807",
    "4294967296",
    "0.5",
    "true",
    "\"\"",
    "\"x\"",
    "\"resnext50_32x4d\"",
    "\"custom\"",
    "[]",
    "[0, 0]",
    "[1, 1, 1, 1]",
    "[1e9, 1e9]",
    "[\"a\"]",
    "{}",
    "{ a = 1 }",
    "[[1]]",
    "\"../../etc\"",
    "\"(\"",
    "1979-05-27T07:32:00Z",
];

const KEYS: &[&str] = &[
    "name",
    "arch",
    "layers",
    "groups",
    "width_per_group",
    "num_classes",
    "root",
    "val",
    "test",
    "split_seed",
    "group_regex",
    "batch_size",
    "eval_batch_size",
    "threads",
    "cache",
    "on_bad_image",
    "resize",
    "resize_shorter",
    "center_crop",
    "random_resized_crop",
    "size",
    "scale",
    "ratio",
    "hflip",
    "vflip",
    "mean",
    "std",
    "lr",
    "betas",
    "weight_decay",
    "momentum",
    "clip_grad_norm",
    "epochs",
    "seed",
    "precision",
    "channels_last",
    "ema_decay",
    "label_smoothing",
    "warmup_epochs",
    "step_size",
    "gamma",
    "mix",
    "mixup_alpha",
    "p",
    "unknown_key",
];

#[derive(Debug, Clone)]
enum Edit {
    /// Replace the value of line (i mod lines) with VALUES[j].
    Value(usize, usize),
    /// Replace the key of line i with KEYS[j].
    Key(usize, usize),
    DropLine(usize),
    RepeatLine(usize),
    /// Set byte (i mod len) to a printable ASCII character or a newline.
    Byte(usize, u8),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), 0..VALUES.len()).prop_map(|(i, j)| Edit::Value(i, j)),
        2 => (any::<usize>(), 0..KEYS.len()).prop_map(|(i, j)| Edit::Key(i, j)),
        1 => any::<usize>().prop_map(Edit::DropLine),
        1 => any::<usize>().prop_map(Edit::RepeatLine),
        2 => (any::<usize>(), prop_oneof![32u8..127, Just(b'\n')]).prop_map(|(i, b)| Edit::Byte(i, b)),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for e in edits {
        if lines.is_empty() {
            break;
        }
        let n = lines.len();
        match e {
            Edit::Value(i, j) => {
                let l = &mut lines[i % n];
                if let Some((k, _)) = l.split_once('=') {
                    *l = format!("{k}= {}", VALUES[*j]);
                }
            }
            Edit::Key(i, j) => {
                let l = &mut lines[i % n];
                if let Some((_, v)) = l.split_once('=') {
                    *l = format!("{} ={v}", KEYS[*j]);
                }
            }
            Edit::DropLine(i) => {
                lines.remove(i % n);
            }
            Edit::RepeatLine(i) => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
            Edit::Byte(i, b) => {
                let mut t = lines.join("\n").into_bytes();
                let len = t.len();
                if len > 0 {
                    t[i % len] = *b;
                }
                lines = String::from_utf8_lossy(&t)
                    .lines()
                    .map(str::to_string)
                    .collect();
            }
            Edit::Truncate(i) => {
                let t = lines.join("\n");
                let mut at = i % t.len().max(1);
                while !t.is_char_boundary(at) {
                    at -= 1;
                }
                lines = t[..at].lines().map(str::to_string).collect();
            }
        }
    }
    lines.join("\n")
}

fn check(text: &str) -> Result<(), TestCaseError> {
    let origin = Path::new("fuzz.toml");
    match TrainConfig::from_toml(text, origin) {
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(!msg.contains('\n'), "multi-line error: {msg:?}");
        }
        Ok(cfg) => match cfg.validate() {
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(!msg.contains('\n'), "multi-line error: {msg:?}");
            }
            Ok(()) => {
                // What a run directory stores reads back as the same config.
                let saved = cfg.to_toml().unwrap();
                let back = TrainConfig::from_toml(&saved, origin);
                prop_assert!(
                    back.is_ok(),
                    "saved config does not load: {:?}\n{saved}",
                    back.err()
                );
                prop_assert_eq!(back.unwrap().to_toml().unwrap(), saved);
            }
        },
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn mutated_configs_load_or_fail_in_one_line(
        seed in 0usize..3,
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let text = apply(&seeds()[seed], &edits);
        check(&text)?;
    }

    #[test]
    fn arbitrary_text_is_refused_cleanly(text in "\\PC{0,200}") {
        check(&text)?;
    }

    #[test]
    fn set_overrides_apply_or_fail_cleanly(
        key in prop::sample::select(KEYS),
        section in prop::sample::select(&["", "model.", "data.", "optim.", "schedule.", "train.", "data.train_transform.", "train.x.y."][..]),
        value in prop_oneof![prop::sample::select(VALUES).prop_map(str::to_string), "\\PC{0,20}"],
    ) {
        let mut table: toml::Table = toml::from_str(&seeds()[0]).unwrap();
        let set = format!("{section}{key}={value}");
        match apply_set(&mut table, &set) {
            Err(e) => prop_assert!(!e.to_string().contains('\n')),
            Ok(()) => check(&toml::to_string(&table).unwrap())?,
        }
    }
}
