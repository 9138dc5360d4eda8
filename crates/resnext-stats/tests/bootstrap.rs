//! The group bootstrap: bit-identical with a seed, groups drawn as units, skipped resamples
//! counted, coverage near the nominal level on simulated data, the paired difference.

mod common;
use common::Lcg;
use resnext_stats::{bootstrap, bootstrap_paired, BootstrapOptions, Groups, StatsError};
use std::cell::Cell;

fn options(n_resamples: usize, seed: u64) -> BootstrapOptions {
    BootstrapOptions {
        n_resamples,
        seed,
        level: 0.95,
    }
}

/// The share of label 1 among the images of a resample.
fn mean(labels: &[usize]) -> impl Fn(&[usize]) -> Option<f64> + '_ {
    move |idx| {
        let ones = idx.iter().filter(|&&i| labels[i] == 1).count();
        Some(ones as f64 / idx.len() as f64)
    }
}

fn labels(n: usize, seed: u64, p: f64) -> Vec<usize> {
    let mut rng = Lcg(seed);
    (0..n).map(|_| usize::from(rng.uniform() < p)).collect()
}

#[test]
fn a_seed_gives_bit_identical_intervals() {
    let mut rng = Lcg(1);
    let x: Vec<f64> = (0..80).map(|_| rng.normal()).collect();
    let mean_x = |idx: &[usize]| Some(idx.iter().map(|&i| x[i]).sum::<f64>() / idx.len() as f64);
    let g = Groups::singletons(80).unwrap();
    let a = bootstrap(&g, &options(2000, 7), mean_x).unwrap();
    let b = bootstrap(&g, &options(2000, 7), mean_x).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.resamples_used, 2000);
    assert_eq!(a.level, 0.95);
    let c = bootstrap(&g, &options(2000, 8), mean_x).unwrap();
    assert_ne!((a.low, a.high), (c.low, c.high));
    assert_eq!(a.estimate, c.estimate);
}

#[test]
fn groups_are_drawn_whole() {
    // 40 patients of one image each, and the same 40 patients with every image doubled
    let y = labels(40, 2, 0.4);
    let doubled: Vec<usize> = y.iter().flat_map(|&l| [l, l]).collect();
    let patient_of_image: Vec<String> = (0..80).map(|i| format!("patient-{}", i / 2)).collect();
    let by_patient = Groups::new(&patient_of_image).unwrap();
    assert_eq!((by_patient.len(), by_patient.images()), (40, 80));

    let once = bootstrap(
        &Groups::singletons(40).unwrap(),
        &options(2000, 3),
        mean(&y),
    )
    .unwrap();
    let twice = bootstrap(&by_patient, &options(2000, 3), mean(&doubled)).unwrap();
    // the same patients are drawn, each bringing both its images: the same share in every
    // resample, the same interval
    assert_eq!(once, twice);

    // taking the 80 images as independent pretends to twice the data: about 1/√2 the width
    let naive = bootstrap(
        &Groups::singletons(80).unwrap(),
        &options(2000, 3),
        mean(&doubled),
    )
    .unwrap();
    let ratio = (naive.high - naive.low) / (once.high - once.low);
    assert!((0.6..0.85).contains(&ratio), "width ratio {ratio}");
}

#[test]
fn groups_keep_the_order_of_first_appearance_whatever_their_ids() {
    // the same partition named differently resamples identically
    let y = [1, 0, 1, 1, 0, 0];
    let a = Groups::new(&[5usize, 5, 9, 1, 9, 1]).unwrap();
    let b = Groups::new(&["x", "x", "a", "m", "a", "m"]).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        bootstrap(&a, &options(500, 1), mean(&y)),
        bootstrap(&b, &options(500, 1), mean(&y))
    );
}

#[test]
fn the_interval_holds_the_estimate_and_covers_near_its_level() {
    // 300 sets of 100 images with P(label 1) = 0.3: the 95% interval should cover 0.3 about
    // 95% of the time (percentile intervals of a proportion run a little under)
    let mut covered = 0;
    for set in 0..300 {
        let y = labels(100, 1000 + set, 0.3);
        let g = Groups::singletons(100).unwrap();
        let i = bootstrap(&g, &options(400, set), mean(&y)).unwrap();
        assert!(i.low <= i.estimate && i.estimate <= i.high, "{i:?}");
        covered += usize::from(i.low <= 0.3 && 0.3 <= i.high);
    }
    assert!((267..=297).contains(&covered), "covered {covered} of 300");
}

#[test]
fn resamples_where_the_statistic_is_undefined_are_skipped_and_counted() {
    // one positive of 20: a resample misses it with probability (19/20)^20 ≈ 0.358
    let y: Vec<usize> = (0..20).map(|i| usize::from(i == 0)).collect();
    let stat = |idx: &[usize]| idx.iter().any(|&i| y[i] == 1).then_some(1.0);
    let i = bootstrap(&Groups::singletons(20).unwrap(), &options(2000, 5), stat).unwrap();
    assert!((1150..1420).contains(&i.resamples_used), "{i:?}");
}

#[test]
fn the_paired_interval_is_of_the_difference_on_the_same_resamples() {
    let y = labels(60, 9, 0.5);
    let g = Groups::singletons(60).unwrap();
    let shifted = |idx: &[usize]| mean(&y)(idx).map(|m| m + 0.1);
    // a − (a + 0.1) is −0.1 on every resample only if both see the same images
    let d = bootstrap_paired(&g, &options(1000, 4), mean(&y), shifted).unwrap();
    for v in [d.estimate, d.low, d.high] {
        assert!((v + 0.1).abs() < 1e-12, "{d:?}");
    }
    assert_eq!(d.resamples_used, 1000);
}

#[test]
fn refusals() {
    let g = Groups::singletons(5).unwrap();
    let some = |_: &[usize]| Some(1.0);
    assert!(matches!(
        bootstrap(&g, &options(0, 1), some),
        Err(StatsError::Invalid(_))
    ));
    let mut o = options(10, 1);
    o.level = 1.0;
    assert!(matches!(
        bootstrap(&g, &o, some),
        Err(StatsError::Invalid(_))
    ));
    assert_eq!(
        bootstrap(&g, &options(10, 1), |_| None),
        Err(StatsError::Undefined)
    );
    assert_eq!(
        bootstrap(&g, &options(10, 1), |_| Some(f64::NAN)),
        Err(StatsError::Undefined)
    );
    // defined on the whole set only
    let calls = Cell::new(0);
    let first_only = |_: &[usize]| {
        calls.set(calls.get() + 1);
        (calls.get() == 1).then_some(0.5)
    };
    assert_eq!(
        bootstrap(&g, &options(10, 1), first_only),
        Err(StatsError::NoUsableResample(10))
    );
    assert_eq!(Groups::new::<usize>(&[]), Err(StatsError::Empty));
    assert_eq!(Groups::singletons(0), Err(StatsError::Empty));
}
