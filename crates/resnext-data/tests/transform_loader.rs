//! Transforms and the loader: determinism, semantics, parallelism, bad images.

mod common;

use resnext_data::loader::{BatchImages, PixelType};
use resnext_data::mix::MixConfig;
use resnext_data::rng::Rng;
use resnext_data::scan::scan;
use resnext_data::transform::{
    center_crop, random_resized_crop_box, shorter_side_size, ColorJitterConfig,
    RandomErasingConfig, RandomResizedCropConfig,
};
use resnext_data::{BadImagePolicy, Layout, Loader, LoaderConfig, Transform, TransformConfig};

fn folder(n: usize) -> (tempfile::TempDir, resnext_data::ImageFolder) {
    let dir = tempfile::tempdir().unwrap();
    common::make_folder(dir.path(), &["a", "b", "c"], n, (40, 30));
    let f = scan(dir.path()).unwrap();
    (dir, f)
}

fn heavy() -> TransformConfig {
    TransformConfig {
        vflip: 0.5,
        color_jitter: Some(ColorJitterConfig {
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            hue: 0.1,
        }),
        random_erasing: Some(RandomErasingConfig {
            p: 0.5,
            scale: [0.02, 0.33],
            ratio: [0.3, 3.3],
            value: Default::default(),
        }),
        ..TransformConfig::rrc_flip(24)
    }
}

fn collect(loader: &Loader, epoch: u64) -> (Vec<f32>, Vec<usize>) {
    let mut px = Vec::new();
    let mut idx = Vec::new();
    for b in loader.epoch(epoch) {
        let b = b.unwrap();
        px.extend(b.f32().unwrap().iter().copied());
        idx.extend(b.indices.iter().copied());
    }
    (px, idx)
}

#[test]
fn same_seed_and_epoch_give_same_batches_whatever_the_thread_count() {
    let (dir, f) = folder(6);
    let t = Transform::new(heavy()).unwrap();
    let mk = |threads| {
        let mut c = LoaderConfig::new(4, 3);
        c.shuffle = true;
        c.seed = 11;
        c.threads = threads;
        Loader::new(dir.path(), &f.samples, t.clone(), c).unwrap()
    };
    let (a, ia) = collect(&mk(1), 3);
    let (b, ib) = collect(&mk(4), 3);
    assert_eq!(ia, ib);
    assert!(a == b, "pixels differ between 1 and 4 threads");
    let (c, ic) = collect(&mk(2), 4);
    assert_ne!(ia, ic, "another epoch should shuffle differently");
    assert!(a != c);
}

#[test]
fn epoch_visits_every_sample_once_and_drop_last_works() {
    let (dir, f) = folder(5); // 15 samples
    let t = Transform::new(TransformConfig::resize_exact(16)).unwrap();
    let mut c = LoaderConfig::new(4, 3);
    c.shuffle = true;
    let l = Loader::new(dir.path(), &f.samples, t.clone(), c.clone()).unwrap();
    assert_eq!(l.num_batches(), 4);
    let (_, mut idx) = collect(&l, 0);
    idx.sort();
    assert_eq!(idx, (0..15).collect::<Vec<_>>());
    c.drop_last = true;
    let l = Loader::new(dir.path(), &f.samples, t, c).unwrap();
    assert_eq!(l.num_batches(), 3);
    let sizes: Vec<usize> = l.epoch(0).map(|b| b.unwrap().len()).collect();
    assert_eq!(sizes, vec![4, 4, 4]);
}

#[test]
fn labels_match_the_folder_and_values_are_normalised() {
    let (dir, f) = folder(2);
    let t = Transform::new(TransformConfig::resize_exact(16)).unwrap();
    let l = Loader::new(dir.path(), &f.samples, t, LoaderConfig::new(6, 3)).unwrap();
    let b = l.epoch(0).next().unwrap().unwrap();
    assert_eq!(b.labels, vec![0, 0, 1, 1, 2, 2]);
    let a = b.f32().unwrap();
    assert_eq!(a.shape(), &[6, 3, 16, 16]);
    // blue channel of the generated images is 100 everywhere: (100/255 - 0.406) / 0.225
    let want = (100.0 / 255.0 - 0.406) / 0.225;
    assert!((a[[0, 2, 5, 5]] - want).abs() < 1e-5, "{}", a[[0, 2, 5, 5]]);
}

#[test]
fn nhwc_and_u8_layouts_hold_the_same_pixels() {
    let (dir, f) = folder(1);
    let t = Transform::new(TransformConfig::resize_exact(8)).unwrap();
    let mut c = LoaderConfig::new(3, 3);
    let nchw = Loader::new(dir.path(), &f.samples, t.clone(), c.clone())
        .unwrap()
        .epoch(0)
        .next()
        .unwrap()
        .unwrap();
    c.layout = Layout::Nhwc;
    let nhwc = Loader::new(dir.path(), &f.samples, t.clone(), c.clone())
        .unwrap()
        .epoch(0)
        .next()
        .unwrap()
        .unwrap();
    c.pixels = PixelType::U8;
    let u8b = Loader::new(dir.path(), &f.samples, t, c)
        .unwrap()
        .epoch(0)
        .next()
        .unwrap()
        .unwrap();
    let (x, y) = (nchw.f32().unwrap(), nhwc.f32().unwrap());
    assert_eq!(y.shape(), &[3, 8, 8, 3]);
    let BatchImages::U8(u) = &u8b.images else {
        panic!("expected u8")
    };
    for n in 0..3 {
        for k in 0..3 {
            for i in 0..8 {
                assert_eq!(x[[n, k, i, 2]], y[[n, i, 2, k]]);
                let back = u[[n, i, 2, k]] as f32 / 255.0;
                let mean = resnext_data::IMAGENET_MEAN[k];
                let std = resnext_data::IMAGENET_STD[k];
                assert!(((back - mean) / std - x[[n, k, i, 2]]).abs() < 1e-5);
            }
        }
    }
}

#[test]
fn bad_image_policy_error_names_the_file_skip_counts_it() {
    let (dir, f) = folder(2);
    std::fs::write(dir.path().join("b/img_000.png"), b"broken").unwrap();
    let t = Transform::new(TransformConfig::resize_exact(8)).unwrap();
    let l = Loader::new(dir.path(), &f.samples, t.clone(), LoaderConfig::new(4, 3)).unwrap();
    let results: Vec<_> = l.epoch(0).collect();
    let err = results
        .iter()
        .find_map(|r| r.as_ref().err())
        .expect("an error");
    assert!(err.to_string().contains("img_000.png"), "{err}");
    let mut c = LoaderConfig::new(4, 3);
    c.on_bad_image = BadImagePolicy::Skip;
    let l = Loader::new(dir.path(), &f.samples, t, c).unwrap();
    let batches: Vec<_> = l.epoch(0).map(|b| b.unwrap()).collect();
    let total: usize = batches.iter().map(|b| b.len()).sum();
    let skipped: usize = batches.iter().map(|b| b.skipped.len()).sum();
    assert_eq!((total, skipped), (5, 1));
    // the kept labels still line up with their samples
    for b in &batches {
        for (i, &idx) in b.indices.iter().enumerate() {
            assert_eq!(b.labels[i], f.samples[idx].label);
        }
    }
}

#[test]
fn cache_gives_the_same_pixels() {
    let (dir, f) = folder(2);
    let t = Transform::new(heavy()).unwrap();
    let mut c = LoaderConfig::new(3, 3);
    let (a, _) = collect(
        &Loader::new(dir.path(), &f.samples, t.clone(), c.clone()).unwrap(),
        2,
    );
    c.cache = true;
    let cached = Loader::new(dir.path(), &f.samples, t, c).unwrap();
    let _ = collect(&cached, 0);
    // images are gone from disk; the cache still serves them
    for s in &f.samples {
        std::fs::remove_file(dir.path().join(&s.path)).unwrap();
    }
    let (b, _) = collect(&cached, 2);
    assert!(a == b);
}

#[test]
fn mixup_and_cutmix_make_soft_targets_that_sum_to_one() {
    let (dir, f) = folder(4);
    let t = Transform::new(TransformConfig::resize_exact(16)).unwrap();
    for mix in [
        MixConfig {
            mixup_alpha: 0.4,
            cutmix_alpha: 0.0,
            prob: 1.0,
            switch_prob: 0.5,
        },
        MixConfig {
            mixup_alpha: 0.0,
            cutmix_alpha: 1.0,
            prob: 1.0,
            switch_prob: 0.5,
        },
    ] {
        let mut c = LoaderConfig::new(6, 3);
        c.shuffle = true;
        c.mix = Some(mix.clone());
        let l = Loader::new(dir.path(), &f.samples, t.clone(), c).unwrap();
        let mut mixed_any = false;
        for b in l.epoch(0) {
            let b = b.unwrap();
            let tg = b.targets.as_ref().expect("soft targets");
            for row in tg.rows() {
                assert!((row.sum() - 1.0).abs() < 1e-5);
                if row.iter().all(|&v| v < 0.999) {
                    mixed_any = true;
                }
            }
        }
        assert!(mixed_any, "{mix:?} never mixed two classes");
    }
}

#[test]
fn random_resized_crop_follows_torchvision_bounds() {
    let cfg = RandomResizedCropConfig {
        size: [8, 8],
        scale: [0.08, 1.0],
        ratio: [0.75, 4.0 / 3.0],
    };
    let mut rng = Rng::new(5);
    for _ in 0..500 {
        let b = random_resized_crop_box(200, 100, &cfg, &mut rng);
        assert!(b.left + b.width <= 200 && b.top + b.height <= 100);
        let area = (b.width * b.height) as f64 / 20000.0;
        assert!(area > 0.07 && area <= 1.0, "{b:?}");
        let r = b.width as f64 / b.height as f64;
        assert!(r > 0.7 && r < 1.4, "{b:?}");
    }
    // an impossible ratio falls back to torchvision's central crop
    let wide = RandomResizedCropConfig {
        size: [8, 8],
        scale: [0.99, 1.0],
        ratio: [3.0, 3.0],
    };
    let b = random_resized_crop_box(100, 100, &wide, &mut rng);
    assert_eq!((b.width, b.height, b.left, b.top), (100, 33, 0, 33));
}

#[test]
fn resize_shorter_and_center_crop_follow_torchvision() {
    assert_eq!(shorter_side_size(640, 480, 256), (341, 256));
    assert_eq!(shorter_side_size(480, 640, 256), (256, 341));
    let img = common::gradient(10, 7, [0, 0, 0]);
    let c = center_crop(&img, 4, 4);
    // top = round((7-4)/2) = round(1.5) = 2 (half to even), left = 3
    assert_eq!(c.get_pixel(0, 0), img.get_pixel(3, 2));
    let padded = center_crop(&img, 12, 7);
    assert_eq!(padded.get_pixel(0, 0).0, [0, 0, 0]);
    assert_eq!(padded.get_pixel(1, 0), img.get_pixel(0, 0));
}

#[test]
fn invalid_transforms_are_errors() {
    let mut t = TransformConfig::resize_exact(10);
    t.hflip = 1.5;
    assert!(Transform::new(t).is_err());
    let t = TransformConfig {
        resize: None,
        ..TransformConfig::resize_exact(10)
    };
    assert!(Transform::new(t)
        .unwrap_err()
        .to_string()
        .contains("not fixed"));
    let bad_toml = "resize = [224, 224]\nflip = 0.5\n";
    let e = toml::from_str::<TransformConfig>(bad_toml).unwrap_err();
    assert!(e.to_string().contains("flip"), "{e}");
}

/// Random Erasing with p = 1 zeroes a rectangle of the normalised image whose area is within
/// `scale` of the image and whose aspect ratio is within `ratio`; the rest is untouched.
#[test]
fn random_erasing_erases_a_rectangle_within_its_bounds() {
    let img = image::RgbImage::from_fn(32, 32, |x, y| {
        image::Rgb([(x * 7) as u8 + 1, (y * 7) as u8 + 1, 200])
    });
    let plain = Transform::new(TransformConfig::resize_exact(32)).unwrap();
    let erasing = Transform::new(TransformConfig {
        random_erasing: Some(RandomErasingConfig {
            p: 1.0,
            scale: [0.1, 0.2],
            ratio: [0.5, 2.0],
            value: Default::default(),
        }),
        ..TransformConfig::resize_exact(32)
    })
    .unwrap();
    for seed in 0..20 {
        let a = plain.apply(&img, &mut Rng::new(seed));
        let b = erasing.apply(&img, &mut Rng::new(seed));
        // pixel positions (of the first plane) that were changed, in every channel alike
        let changed: Vec<usize> = (0..32 * 32).filter(|&i| a[i] != b[i]).collect();
        assert!(!changed.is_empty(), "seed {seed}: nothing was erased");
        for &i in &changed {
            for k in 0..3 {
                assert_eq!(
                    b[k * 1024 + i],
                    0.0,
                    "erased pixels are zero in every channel"
                );
            }
        }
        let (xs, ys): (Vec<usize>, Vec<usize>) = changed.iter().map(|&i| (i % 32, i / 32)).unzip();
        let w = xs.iter().max().unwrap() - xs.iter().min().unwrap() + 1;
        let h = ys.iter().max().unwrap() - ys.iter().min().unwrap() + 1;
        assert_eq!(
            w * h,
            changed.len(),
            "seed {seed}: the erased pixels form a rectangle"
        );
        let area = (w * h) as f64 / 1024.0;
        assert!((0.05..=0.25).contains(&area), "seed {seed}: area {area}");
        let ratio = h as f64 / w as f64;
        assert!((0.3..=3.0).contains(&ratio), "seed {seed}: ratio {ratio}");
    }
}

#[test]
fn shards_of_each_batch_are_the_whole_batch_in_rank_order_with_the_same_pixels() {
    use resnext_data::shard::Shard;
    // 3 classes × 7 = 21 samples at batch 8: batches of 8, 8 and 5, the last split unevenly
    let (dir, f) = folder(7);
    let t = Transform::new(heavy()).unwrap();
    let mk = |shard: Shard| {
        let mut c = LoaderConfig::new(8, 3);
        c.shuffle = true;
        c.seed = 5;
        c.shard = shard;
        Loader::new(dir.path(), &f.samples, t.clone(), c).unwrap()
    };
    let whole = mk(Shard::whole());
    for ranks in [2, 3] {
        let shards: Vec<Loader> = (0..ranks).map(|rank| mk(Shard { rank, ranks })).collect();
        for epoch in [1, 2] {
            let per_rank: Vec<Vec<resnext_data::Batch>> = shards
                .iter()
                .map(|l| l.epoch(epoch).map(|b| b.unwrap()).collect())
                .collect();
            let full: Vec<resnext_data::Batch> = whole.epoch(epoch).map(|b| b.unwrap()).collect();
            for (bi, b) in full.iter().enumerate() {
                // every rank steps through the same number of batches
                let parts: Vec<&resnext_data::Batch> = per_rank.iter().map(|p| &p[bi]).collect();
                let idx: Vec<usize> = parts.iter().flat_map(|p| p.indices.clone()).collect();
                assert_eq!(idx, b.indices, "{ranks} ranks, epoch {epoch}, batch {bi}");
                let px: Vec<f32> = parts
                    .iter()
                    .flat_map(|p| p.f32().unwrap().iter().copied().collect::<Vec<_>>())
                    .collect();
                let want: Vec<f32> = b.f32().unwrap().iter().copied().collect();
                assert!(
                    px == want,
                    "the augmentation of a sample is its own, not its rank's"
                );
            }
            assert!(per_rank.iter().all(|p| p.len() == full.len()));
        }
    }
}
