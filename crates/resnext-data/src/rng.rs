//! A small, fast, seedable generator (SplitMix64, Steele et al. 2014) and the distributions the
//! transforms need. Each sample draws from its own stream keyed by (seed, epoch, index), so the
//! result does not depend on thread count or scheduling.

#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self {
            state: mix64(seed ^ 0x5851_f42d_4c95_7f2d),
        }
    }

    /// An independent stream for one key tuple.
    pub fn keyed(seed: u64, keys: &[u64]) -> Self {
        let mut s = mix64(seed);
        for &k in keys {
            s = mix64(s ^ mix64(k.wrapping_add(0x9e37_79b9_7f4a_7c15)));
        }
        Self { state: s }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.state)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform integer in [lo, hi] (inclusive).
    pub fn int_inclusive(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    pub fn bernoulli(&mut self, p: f64) -> bool {
        p > 0.0 && self.uniform() < p
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Gamma(shape, 1) by Marsaglia and Tsang (2000).
    pub fn gamma(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            let u = self.uniform().max(1e-300);
            return self.gamma(shape + 1.0) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.uniform();
            if u < 1.0 - 0.0331 * x.powi(4)
                || u.max(1e-300).ln() < 0.5 * x * x + d * (1.0 - v + v.ln())
            {
                return d * v;
            }
        }
    }

    /// Beta(a, b).
    pub fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a);
        let y = self.gamma(b);
        if x + y == 0.0 {
            0.5
        } else {
            x / (x + y)
        }
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// The first key of each random stream: what reproducibility is defined by. A stream is
/// `Rng::keyed(seed, &[KEY, ...])`; changing a key (or its place) changes every run's numbers.
pub mod stream {
    /// A sample's augmentation in an epoch: `[SAMPLE, epoch, index]`.
    pub const SAMPLE: u64 = 0x7a;
    /// The stages after the 8-bit ones (random erasing), keyed by the sample stream's first
    /// draw: `[ERASE]`.
    pub const ERASE: u64 = 0xe5;
    /// The order of an epoch's samples: `[SHUFFLE, epoch]`.
    pub const SHUFFLE: u64 = 0x5f;
    /// Mixup/CutMix of a batch: `[MIX, epoch, batch]`.
    pub const MIX: u64 = 0x3c;
    /// The split of one class: `[SPLIT, class]`.
    pub const SPLIT: u64 = 0x5917;
    /// The cross-validation folds of one class in one repeat: `[FOLDS, repeat, class]`.
    pub const FOLDS: u64 = 0xf01d;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::keyed(7, &[1, 2]).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::keyed(7, &[1, 2]).next_u64(),
            Rng::keyed(7, &[2, 1]).next_u64()
        );
        assert_ne!(
            Rng::keyed(7, &[1, 2]).next_u64(),
            Rng::keyed(8, &[1, 2]).next_u64()
        );
    }

    #[test]
    fn distributions_have_the_right_moments() {
        let mut r = Rng::new(1);
        let n = 20000;
        let u: f64 = (0..n).map(|_| r.uniform()).sum::<f64>() / n as f64;
        assert!((u - 0.5).abs() < 0.01, "{u}");
        let b: f64 = (0..n).map(|_| r.beta(0.4, 0.4)).sum::<f64>() / n as f64;
        assert!((b - 0.5).abs() < 0.02, "{b}");
        let b2: f64 = (0..n).map(|_| r.beta(2.0, 6.0)).sum::<f64>() / n as f64;
        assert!((b2 - 0.25).abs() < 0.01, "{b2}");
        let mut counts = [0usize; 5];
        for _ in 0..n {
            counts[r.below(5) as usize] += 1;
        }
        assert!(
            counts
                .iter()
                .all(|&c| (c as f64 - n as f64 / 5.0).abs() < 300.0),
            "{counts:?}"
        );
    }
}
