//! Criterion benchmarks of the data pipeline: decode, each transform, a whole batch.
//! `cargo bench -p resnext-data` (uses `RESNEXT_SHARED` for real JPEGs, else generated images).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use resnext_data::decode::{decode_bytes, DecodeLimits};
use resnext_data::resize::resize;
use resnext_data::rng::Rng;
use resnext_data::transform::{
    ColorJitterConfig, Layout, RandAugmentConfig, RandomErasingConfig, TrivialAugmentConfig,
};
use resnext_data::{Loader, LoaderConfig, Transform, TransformConfig};
use std::path::PathBuf;

fn sample_jpeg() -> Vec<u8> {
    if let Some(root) = std::env::var_os("RESNEXT_SHARED") {
        let p = PathBuf::from(root).join("datasets/msld-original/Others/1.jpg");
        if let Ok(b) = std::fs::read(p) {
            return b;
        }
    }
    let img = image::RgbImage::from_fn(224, 224, |x, y| {
        image::Rgb([(x ^ y) as u8, (x * 3) as u8, (y * 5) as u8])
    });
    let mut out = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut out),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    out
}

fn benches(c: &mut Criterion) {
    let jpeg = sample_jpeg();
    let img = decode_bytes(&jpeg, DecodeLimits::default()).unwrap();
    let big = resize(&img, 1024, 768);
    c.bench_function("decode jpeg 224", |b| {
        b.iter(|| decode_bytes(black_box(&jpeg), DecodeLimits::default()).unwrap())
    });
    c.bench_function("resize 1024x768 -> 224", |b| {
        b.iter(|| resize(black_box(&big), 224, 224))
    });
    let transforms: Vec<(&str, TransformConfig)> = vec![
        (
            "resize-exact 224 (no-op size)",
            TransformConfig::resize_exact(224),
        ),
        (
            "random_resized_crop + hflip",
            TransformConfig::rrc_flip(224),
        ),
        (
            "color_jitter",
            TransformConfig {
                color_jitter: Some(ColorJitterConfig {
                    brightness: 0.4,
                    contrast: 0.4,
                    saturation: 0.4,
                    hue: 0.1,
                }),
                ..TransformConfig::resize_exact(224)
            },
        ),
        (
            "trivial_augment",
            TransformConfig {
                trivial_augment: Some(TrivialAugmentConfig::default()),
                ..TransformConfig::resize_exact(224)
            },
        ),
        (
            "rand_augment n=2 m=9",
            TransformConfig {
                rand_augment: Some(RandAugmentConfig::default()),
                ..TransformConfig::resize_exact(224)
            },
        ),
        (
            "random_erasing",
            TransformConfig {
                random_erasing: Some(RandomErasingConfig {
                    p: 1.0,
                    scale: [0.02, 0.33],
                    ratio: [0.3, 3.3],
                    value: Default::default(),
                }),
                ..TransformConfig::resize_exact(224)
            },
        ),
    ];
    for (name, cfg) in transforms {
        let t = Transform::new(cfg).unwrap();
        let mut out = vec![0f32; 3 * 224 * 224];
        c.bench_function(&format!("transform {name}"), |b| {
            let mut i = 0u64;
            b.iter(|| {
                i += 1;
                let mut rng = Rng::keyed(0, &[i]);
                let u = t.apply_u8(&img, &mut rng);
                t.write_f32(&u, &mut out, Layout::Nchw, &mut rng);
            })
        });
    }
    // a whole batch of 32 from files, 2 threads
    let dir = std::env::temp_dir().join(format!("resnext-bench-{}", std::process::id()));
    for class in ["a", "b"] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..16 {
            std::fs::write(dir.join(class).join(format!("{i}.jpg")), &jpeg).unwrap();
        }
    }
    let folder = resnext_data::scan(&dir).unwrap();
    let mut lc = LoaderConfig::new(32, 2);
    lc.threads = 2;
    let loader = Loader::new(
        &dir,
        &folder.samples,
        Transform::new(TransformConfig::rrc_flip(224)).unwrap(),
        lc,
    )
    .unwrap();
    let idx: Vec<usize> = (0..32).collect();
    c.bench_function(
        "batch of 32 (decode + rrc + flip + normalise, 2 threads)",
        |b| {
            let mut e = 0u64;
            b.iter(|| {
                e += 1;
                loader.batch(e, 0, &idx).unwrap()
            })
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = pipeline;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2));
    targets = benches
}
criterion_main!(pipeline);
