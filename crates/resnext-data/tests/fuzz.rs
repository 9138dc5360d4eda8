//! Property-based fuzzing (proptest) of the decode + transform path: arbitrary and mutated image
//! bytes must decode to an RGB image or give an error, never panic or exceed the limits; any
//! transform config is either refused by validation or yields a finite tensor of its size.
//! `PROPTEST_CASES=N` runs longer campaigns (docs/fuzzing.md records them).

mod common;

use proptest::prelude::*;
use resnext_data::decode::{decode_bytes, DecodeLimits};
use resnext_data::rng::Rng;
use resnext_data::transform::{
    ColorJitterConfig, EraseValue, Layout, RandAugmentConfig, RandomErasingConfig,
    RandomResizedCropConfig, Transform, TransformConfig, TrivialAugmentConfig,
};

/// The committed images of every kind the decoder supports: seeds for mutation.
const SEEDS: [&str; 13] = [
    "cmyk.jpg",
    "exif_rot6.jpg",
    "gray.png",
    "gray16.png",
    "gray_alpha.png",
    "palette.gif",
    "palette.png",
    "pil_src.png",
    "plain.bmp",
    "plain.tiff",
    "plain.webp",
    "rgba.png",
    "pil_down_16x12.png",
];

/// Small limits so a mutated header cannot make a test allocate gigabytes.
const LIMITS: DecodeLimits = DecodeLimits {
    max_width: 2048,
    max_height: 2048,
    max_alloc: 64 << 20,
};

fn cases(default: u32) -> ProptestConfig {
    ProptestConfig {
        cases: resnext_testkit::proptest_cases(default),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Set the byte at (position mod length) to a value.
    Set(usize, u8),
    /// Cut the file at (position mod length).
    Truncate(usize),
    /// Insert bytes at (position mod length).
    Insert(usize, Vec<u8>),
    /// Remove up to n bytes at (position mod length).
    Remove(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(p, v)| Mutation::Set(p, v)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(p, v)| Mutation::Insert(p, v)),
        1 => (any::<usize>(), 1usize..64).prop_map(|(p, n)| Mutation::Remove(p, n)),
    ]
}

fn mutate(mut bytes: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        if bytes.is_empty() {
            break;
        }
        let len = bytes.len();
        match m {
            Mutation::Set(p, v) => bytes[p % len] = *v,
            Mutation::Truncate(p) => bytes.truncate(p % len),
            Mutation::Insert(p, v) => {
                let at = p % len;
                bytes.splice(at..at, v.iter().copied());
            }
            Mutation::Remove(p, n) => {
                let at = p % len;
                bytes.drain(at..(at + n).min(len));
            }
        }
    }
    bytes
}

fn probability() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => 0.0f64..=1.0,
        1 => prop::num::f64::ANY,
    ]
}

fn pair() -> impl Strategy<Value = [f64; 2]> {
    prop_oneof![
        4 => (0.0f64..4.0, 0.0f64..4.0).prop_map(|(a, b)| [a, b]),
        1 => (prop::num::f64::ANY, prop::num::f64::ANY).prop_map(|(a, b)| [a, b]),
    ]
}

fn size() -> impl Strategy<Value = [u32; 2]> {
    (0u32..48, 0u32..48).prop_map(|(h, w)| [h, w])
}

fn transform_config() -> impl Strategy<Value = TransformConfig> {
    let geometry = (
        prop::option::of(size()),
        prop::option::of(0u32..64),
        prop::option::of(size()),
        prop::option::of(
            (size(), pair(), pair()).prop_map(|(size, scale, ratio)| RandomResizedCropConfig {
                size,
                scale,
                ratio,
            }),
        ),
    );
    let colour = (
        probability(),
        probability(),
        prop::option::of(
            (probability(), probability(), probability(), -1.0f64..1.0).prop_map(
                |(brightness, contrast, saturation, hue)| ColorJitterConfig {
                    brightness,
                    contrast,
                    saturation,
                    hue,
                },
            ),
        ),
        prop::option::of((probability(), pair(), pair(), any::<bool>()).prop_map(
            |(p, scale, ratio, random)| RandomErasingConfig {
                p,
                scale,
                ratio,
                value: if random {
                    EraseValue::Random
                } else {
                    EraseValue::Zero
                },
            },
        )),
        prop_oneof![
            3 => Just(([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225])),
            1 => (any::<[f32; 3]>(), any::<[f32; 3]>()),
        ],
    );
    // bins, n and m past their bounds too: those configs must be refused, not panic
    let augment = (
        prop::option::of((0u32..300).prop_map(|bins| TrivialAugmentConfig { bins })),
        prop::option::of(
            (0u32..20, 0u32..40, 0u32..40).prop_map(|(n, m, bins)| RandAugmentConfig {
                n,
                m,
                bins,
            }),
        ),
    );
    (geometry, colour, augment).prop_map(
        |(
            (resize, resize_shorter, center_crop, random_resized_crop),
            (hflip, vflip, color_jitter, random_erasing, (mean, std)),
            (trivial_augment, rand_augment),
        )| TransformConfig {
            resize,
            resize_shorter,
            center_crop,
            random_resized_crop,
            hflip,
            vflip,
            trivial_augment,
            rand_augment,
            color_jitter,
            random_erasing,
            mean,
            std,
        },
    )
}

/// Runs a transform on an image (geometry and colour, then both output layouts and types) and
/// checks sizes and finiteness.
fn check_transform(t: &Transform, img: &image::RgbImage, seed: u64) -> Result<(), TestCaseError> {
    let [h, w] = t.size();
    let mut rng = Transform::sample_rng(seed, 1, 2);
    let out = t.apply_u8(img, &mut rng);
    prop_assert_eq!(
        (out.height(), out.width()),
        (h, w),
        "output size of {:?} on {}x{}",
        t.config(),
        img.width(),
        img.height()
    );
    let n = 3 * h as usize * w as usize;
    for layout in [Layout::Nchw, Layout::Nhwc] {
        let mut dst = vec![f32::NAN; n];
        t.write_f32(&out, &mut dst, layout, &mut rng.clone());
        prop_assert!(
            dst.iter().all(|v| v.is_finite()),
            "non-finite output for {:?}",
            t.config()
        );
        let mut dst8 = vec![0u8; n];
        t.write_u8(&out, &mut dst8, layout, &mut rng.clone());
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(256))]

    /// Mutated images of every supported kind: decode or a one-line error; a decoded image
    /// goes through the training transform.
    #[test]
    fn mutated_images_decode_or_fail_cleanly(
        seed in 0usize..SEEDS.len(),
        muts in prop::collection::vec(mutation(), 1..8),
    ) {
        let bytes = std::fs::read(common::fixture(SEEDS[seed])).unwrap();
        let bytes = mutate(bytes, &muts);
        match decode_bytes(&bytes, LIMITS) {
            Ok(img) => {
                prop_assert!(img.width() > 0 && img.height() > 0);
                prop_assert!(img.width() <= LIMITS.max_width && img.height() <= LIMITS.max_height);
                let t = Transform::new(TransformConfig::rrc_flip(24)).unwrap();
                check_transform(&t, &img, 7)?;
            }
            Err(reason) => {
                prop_assert!(!reason.is_empty() && !reason.contains('\n'), "{reason:?}");
            }
        }
    }

    /// Arbitrary bytes, with and without a real format's magic number in front.
    #[test]
    fn arbitrary_bytes_decode_or_fail_cleanly(
        magic in prop::sample::select(vec![
            &b""[..], b"\xFF\xD8\xFF", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"II*\0",
            b"MM\0*", b"RIFF\0\0\0\0WEBPVP8 ",
        ]),
        body in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut bytes = magic.to_vec();
        bytes.extend(body);
        if let Err(reason) = decode_bytes(&bytes, LIMITS) {
            prop_assert!(!reason.is_empty() && !reason.contains('\n'), "{reason:?}");
        }
    }

    /// Any transform config: refused by validation, or a finite output of the promised size
    /// for any image size.
    #[test]
    fn any_transform_config_is_refused_or_sound(
        cfg in transform_config(),
        w in 1u32..40,
        h in 1u32..40,
        pixels in any::<u64>(),
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(pixels);
        let img = image::RgbImage::from_fn(w, h, |_, _| {
            let v = rng.next_u64();
            image::Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
        });
        if let Ok(t) = Transform::new(cfg) {
            check_transform(&t, &img, seed)?;
        }
    }
}
