//! TrivialAugmentWide and RandAugment: each operation against torchvision 0.28's bytes (the
//! fixtures of `scripts/make_augment_fixtures.py`, `_apply_op` on a uint8 tensor), torchvision's
//! magnitude tables, seeding, the parallel loader and config errors.

mod common;

use image::RgbImage;
use resnext_data::loader::{BatchImages, PixelType};
use resnext_data::scan::scan;
use resnext_data::transform::{
    apply_op, AugmentOp, MagnitudeSpace, RandAugmentConfig, TrivialAugmentConfig,
};
use resnext_data::{Layout, Loader, LoaderConfig, Transform, TransformConfig};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/augment")
}

struct Fixtures {
    /// The 32x24 image the magnitude tables are for.
    input: RgbImage,
    /// Every input by its name in the index.
    inputs: BTreeMap<String, RgbImage>,
    cases: Vec<u8>,
    index: Value,
}

fn fixtures() -> Fixtures {
    let dir = fixture_dir();
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let mut inputs = BTreeMap::new();
    for (name, v) in index["inputs"].as_object().unwrap() {
        let (file, w, h) = (
            v[0].as_str().unwrap(),
            v[1].as_u64().unwrap() as u32,
            v[2].as_u64().unwrap() as u32,
        );
        let raw = std::fs::read(dir.join(file)).unwrap();
        let img = RgbImage::from_raw(w, h, raw).expect("an input is width*height*3 bytes");
        inputs.insert(name.clone(), img);
    }
    let input = inputs["main"].clone();
    assert_eq!(
        (input.width() as u64, input.height() as u64),
        (
            index["width"].as_u64().unwrap(),
            index["height"].as_u64().unwrap()
        )
    );
    let cases = std::fs::read(dir.join("cases.bin")).unwrap();
    Fixtures {
        input,
        inputs,
        cases,
        index,
    }
}

/// Every fixture case, byte for byte: the integer and blend operations, and the geometric ones
/// too (nearest sampling at torchvision's f32 coordinates, the same on x86-64 glibc; on 3,000
/// random operations and magnitudes on a 97x80 image all were exact as well). A libm other than
/// glibc's could move a sampling point of shear or rotate across a pixel edge by its last bit.
#[test]
fn each_operation_matches_torchvision_on_the_fixtures() {
    let f = fixtures();
    let cases = f.index["cases"].as_array().unwrap();
    assert!(cases.len() >= 90, "{} cases", cases.len());
    let mut seen = BTreeMap::new();
    let mut report = Vec::new();
    for case in cases {
        let name = case["op"].as_str().unwrap();
        let op = AugmentOp::from_name(name).unwrap_or_else(|| panic!("unknown op {name}"));
        let magnitude = case["magnitude"].as_f64().unwrap();
        let offset = case["offset"].as_u64().unwrap() as usize;
        let input = &f.inputs[case["input"].as_str().unwrap()];
        let per = input.as_raw().len();
        let want = &f.cases[offset..offset + per];
        let mut got = input.clone();
        apply_op(&mut got, op, magnitude);
        let bytes_off = got
            .as_raw()
            .iter()
            .zip(want)
            .filter(|(a, b)| a != b)
            .count();
        let max_abs = got
            .as_raw()
            .iter()
            .zip(want)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap_or(0);
        let pixels_off = got
            .as_raw()
            .chunks_exact(3)
            .zip(want.chunks_exact(3))
            .filter(|(a, b)| a != b)
            .count();
        *seen.entry(name).or_insert(0) += 1;
        if bytes_off > 0 {
            report.push(format!(
                "{name}({magnitude}): {bytes_off} bytes, {pixels_off} pixels differ, max |diff| {max_abs}"
            ));
        }
        assert!(
            pixels_off == 0,
            "{name} at {magnitude}: {pixels_off} pixels differ from torchvision (max |diff| \
             {max_abs})\n{}",
            report.join("\n")
        );
        // the case really changes the image, except where the operation is an identity
        let changed = got.as_raw() != input.as_raw();
        if op != AugmentOp::Identity && !(op == AugmentOp::Posterize && magnitude >= 8.0) {
            assert!(changed, "{name} at {magnitude} left the image as it was");
        }
    }
    eprintln!(
        "{} cases; differing: {}",
        cases.len(),
        if report.is_empty() {
            "none".to_string()
        } else {
            report.join("; ")
        }
    );
    for op in AugmentOp::ALL {
        assert!(seen.contains_key(op.name()), "no fixture for {}", op.name());
    }
}

/// The magnitude tables (31 bins) equal torchvision's float32 values, bin by bin.
#[test]
fn magnitude_tables_are_torchvisions() {
    let f = fixtures();
    let (w, h) = (f.input.width(), f.input.height());
    let bins = f.index["bins"].as_u64().unwrap() as u32;
    let mut checked = 0;
    for (key, space) in [
        ("wide", MagnitudeSpace::Wide),
        ("rand", MagnitudeSpace::Rand),
    ] {
        let tables = f.index["tables"][key].as_object().unwrap();
        for op in AugmentOp::ALL {
            let Some(table) = tables.get(op.name()) else {
                assert!(!op.has_magnitude(), "{key}: no table for {}", op.name());
                assert_eq!(space.magnitude(op, 0, bins, w, h), None);
                continue;
            };
            let table = table.as_array().unwrap();
            assert_eq!(table.len(), bins as usize);
            for (bin, want) in table.iter().enumerate() {
                let want = want.as_f64().unwrap();
                let got = space.magnitude(op, bin as u32, bins, w, h);
                assert_eq!(got, Some(want), "{key} {} bin {bin}", op.name());
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * 11 * bins as usize);
}

/// An image with enough structure that every operation changes it.
fn test_image() -> RgbImage {
    RgbImage::from_fn(40, 30, |x, y| {
        image::Rgb([
            (x * 6) as u8,
            ((x * 13 + y * 29) % 256) as u8,
            (60 + y * 4) as u8,
        ])
    })
}

fn with(stage: impl Fn(&mut TransformConfig)) -> Transform {
    let mut c = TransformConfig::resize_exact(30);
    c.resize = None;
    c.center_crop = Some([30, 40]);
    stage(&mut c);
    Transform::new(c).unwrap()
}

fn trivial() -> Transform {
    with(|c| c.trivial_augment = Some(TrivialAugmentConfig::default()))
}

fn rand() -> Transform {
    with(|c| c.rand_augment = Some(RandAugmentConfig::default()))
}

/// The same (seed, epoch, index) gives the same bytes; other seeds, epochs or indices give other
/// images; over 64 samples the output is not always the input.
#[test]
fn same_seed_same_output_other_seeds_differ() {
    let img = test_image();
    for t in [trivial(), rand()] {
        let run = |seed, epoch, i| t.apply_u8(&img, &mut Transform::sample_rng(seed, epoch, i));
        let a: Vec<RgbImage> = (0..64).map(|i| run(5, 0, i)).collect();
        let b: Vec<RgbImage> = (0..64).map(|i| run(5, 0, i)).collect();
        assert!(a == b, "the same seed gave other images");
        let other_seed: Vec<RgbImage> = (0..64).map(|i| run(6, 0, i)).collect();
        let other_epoch: Vec<RgbImage> = (0..64).map(|i| run(5, 1, i)).collect();
        let differ =
            |x: &[RgbImage], y: &[RgbImage]| x.iter().zip(y).filter(|(p, q)| p != q).count();
        assert!(
            differ(&a, &other_seed) > 32,
            "other seeds gave the same images"
        );
        assert!(
            differ(&a, &other_epoch) > 32,
            "other epochs gave the same images"
        );
        let distinct: std::collections::HashSet<&[u8]> =
            a.iter().map(|x| x.as_raw().as_slice()).collect();
        assert!(
            distinct.len() > 20,
            "{} distinct outputs of 64",
            distinct.len()
        );
        let changed = a.iter().filter(|x| x.as_raw() != img.as_raw()).count();
        assert!(changed > 48, "{changed} of 64 changed");
    }
}

/// TrivialAugmentWide applies exactly one of torchvision's operations: each output equals
/// `apply_op` of some operation at some wide magnitude, and over many samples every operation
/// that changes this image is drawn.
#[test]
fn trivial_augment_draws_one_operation_at_a_wide_magnitude() {
    let img = test_image();
    let t = trivial();
    let (w, h) = (img.width(), img.height());
    let mut candidates: Vec<(AugmentOp, RgbImage)> = Vec::new();
    for op in AugmentOp::ALL {
        let mags: Vec<f64> = if op.has_magnitude() {
            (0..31)
                .filter_map(|b| MagnitudeSpace::Wide.magnitude(op, b, 31, w, h))
                .collect()
        } else {
            vec![0.0]
        };
        for m in mags {
            for s in if op.signed() { vec![m, -m] } else { vec![m] } {
                let mut x = img.clone();
                apply_op(&mut x, op, s);
                candidates.push((op, x));
            }
        }
    }
    let mut drawn = std::collections::HashSet::new();
    for i in 0..600 {
        let out = t.apply_u8(&img, &mut Transform::sample_rng(1, 0, i));
        let hits: std::collections::BTreeSet<&str> = candidates
            .iter()
            .filter(|(_, c)| *c == out)
            .map(|(op, _)| op.name())
            .collect();
        assert!(
            !hits.is_empty(),
            "sample {i} is no single operation's output"
        );
        if let (1, Some(op)) = (hits.len(), hits.first()) {
            drawn.insert(*op);
        }
    }
    for op in AugmentOp::ALL {
        if op != AugmentOp::Identity {
            assert!(drawn.contains(op.name()), "{} never drawn", op.name());
        }
    }
}

/// RandAugment with n = 1 at m = 9: each output is one operation at RandAugment's bin 9.
#[test]
fn rand_augment_applies_its_operations_at_bin_m() {
    let img = test_image();
    let (w, h) = (img.width(), img.height());
    let t = with(|c| {
        c.rand_augment = Some(RandAugmentConfig {
            n: 1,
            ..RandAugmentConfig::default()
        })
    });
    let mut candidates = Vec::new();
    for op in AugmentOp::ALL {
        let m = MagnitudeSpace::Rand
            .magnitude(op, 9, 31, w, h)
            .unwrap_or(0.0);
        for s in if op.signed() { vec![m, -m] } else { vec![m] } {
            let mut x = img.clone();
            apply_op(&mut x, op, s);
            candidates.push(x);
        }
    }
    for i in 0..100 {
        let out = t.apply_u8(&img, &mut Transform::sample_rng(2, 0, i));
        assert!(
            candidates.contains(&out),
            "sample {i} is not one op at bin 9"
        );
    }
    // two operations per image make outputs that one operation does not
    let two = rand();
    let beyond = (0..100)
        .filter(|&i| !candidates.contains(&two.apply_u8(&img, &mut Transform::sample_rng(2, 0, i))))
        .count();
    assert!(
        beyond > 50,
        "{beyond} of 100 outputs of n = 2 are not single operations"
    );
}

/// In the loader (u8 batches, 1 and 3 decoding threads) each sample is the stage's output for
/// its (seed, epoch, index) stream, whatever the thread count.
#[test]
fn the_stages_run_in_the_parallel_loader() {
    let dir = tempfile::tempdir().unwrap();
    common::make_folder(dir.path(), &["a", "b"], 6, (40, 30));
    let f = scan(dir.path()).unwrap();
    for t in [trivial(), rand()] {
        let batches = |threads| {
            let mut c = LoaderConfig::new(4, 2);
            c.seed = 9;
            c.threads = threads;
            c.pixels = PixelType::U8;
            c.layout = Layout::Nhwc;
            let l = Loader::new(dir.path(), &f.samples, t.clone(), c).unwrap();
            let mut out = Vec::new();
            for b in l.epoch(2) {
                let b = b.unwrap();
                let BatchImages::U8(u) = &b.images else {
                    panic!("expected u8 batches")
                };
                for (k, &i) in b.indices.iter().enumerate() {
                    out.push((
                        i,
                        u.index_axis(ndarray::Axis(0), k)
                            .iter()
                            .copied()
                            .collect::<Vec<u8>>(),
                    ));
                }
            }
            out
        };
        let one = batches(1);
        let three = batches(3);
        assert_eq!(one.len(), 12);
        assert!(one == three, "1 and 3 threads gave other pixels");
        let mut changed = 0;
        for (i, px) in &one {
            let img = image::open(dir.path().join(&f.samples[*i].path))
                .unwrap()
                .to_rgb8();
            let plain = with(|_| {}).apply_u8(&img, &mut Transform::sample_rng(9, 2, *i as u64));
            let want = t.apply_u8(&img, &mut Transform::sample_rng(9, 2, *i as u64));
            assert_eq!(px.as_slice(), want.as_raw().as_slice(), "sample {i}");
            changed += usize::from(px.as_slice() != plain.as_raw().as_slice());
        }
        assert!(changed >= 8, "only {changed} of 12 samples augmented");
    }
}

fn refused(toml_text: &str) -> String {
    match toml::from_str::<TransformConfig>(toml_text) {
        Err(e) => e.to_string(),
        Ok(c) => Transform::new(c)
            .err()
            .unwrap_or_else(|| panic!("accepted: {toml_text}"))
            .to_string(),
    }
}

/// Bad settings are refused with an error naming the key; validation errors are one line.
#[test]
fn bad_configs_are_refused_naming_the_key() {
    let base = "center_crop = [30, 40]\n";
    for (stage, key) in [
        ("rand_augment = { n = 0 }", "rand_augment.n"),
        ("rand_augment = { n = 17 }", "rand_augment.n"),
        ("rand_augment = { m = 31 }", "rand_augment.m"),
        ("rand_augment = { m = 5, bins = 5 }", "rand_augment.m"),
        ("rand_augment = { bins = 1, m = 0 }", "rand_augment.bins"),
        ("trivial_augment = { bins = 1 }", "trivial_augment.bins"),
        ("trivial_augment = { bins = 300 }", "trivial_augment.bins"),
        (
            "trivial_augment = {}\nrand_augment = {}",
            "trivial_augment or rand_augment",
        ),
    ] {
        let e = refused(&format!("{base}{stage}\n"));
        assert!(e.contains(key), "{stage}: {e}");
        assert!(!e.contains('\n'), "{stage}: not one line: {e}");
    }
    for (stage, key) in [
        ("rand_augment = { n = 2, magnitude = 9 }", "magnitude"),
        (
            "trivial_augment = { num_magnitude_bins = 31 }",
            "num_magnitude_bins",
        ),
        ("rand_augment = { m = -1 }", "m"),
        ("rand_augment = { n = 1.5 }", "n"),
    ] {
        let e = refused(&format!("{base}{stage}\n"));
        assert!(e.contains(key), "{stage}: {e}");
    }
    // torchvision's defaults
    let c: TransformConfig = toml::from_str(&format!(
        "{base}trivial_augment = {{}}\nrand_augment = {{}}\n"
    ))
    .unwrap();
    assert_eq!(c.trivial_augment, Some(TrivialAugmentConfig { bins: 31 }));
    assert_eq!(
        c.rand_augment,
        Some(RandAugmentConfig {
            n: 2,
            m: 9,
            bins: 31
        })
    );
    assert!(
        with(|c| c.trivial_augment = Some(TrivialAugmentConfig::default()))
            .config()
            .is_random()
    );
    assert!(rand().config().is_random());
}
