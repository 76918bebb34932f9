//! Deterministic k-shot sampling.
//!
//! The draw depends only on `(k, seed)`, each class's label and the path strings of its samples, so it is the same
//! across runs, machines and platforms, and easy to reimplement elsewhere. All arithmetic is on unsigned 64-bit
//! integers modulo 2^64.
//!
//! **PRNG: SplitMix64.** State `s` (u64); `next()`: `s += 0x9E3779B97F4A7C15`, then return `mix(s)` where
//!
//! ```text
//! mix(z): z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
//!         z = (z ^ (z >> 27)) * 0x94D049BB133111EB
//!         return z ^ (z >> 31)
//! ```
//!
//! **Bounded draw** `below(n)` for `n >= 1`, unbiased by rejection: `t = 2^64 mod n`; repeat `x = next()` until
//! `x >= t`; return `x mod n`.
//!
//! **Per class** `c` (label, as u64), independently of the other classes:
//! 1. `items` = the class's samples sorted by the bytes of their path strings (UTF-8 on Unix; a stable sort, so
//!    duplicate paths keep the dataset's order); `n = len(items)`.
//! 2. `m = n` if `k == 0`, else `min(k, n)`.
//! 3. A fresh generator with state `seed ^ mix(c)` (so class 0 uses the plain SplitMix64 stream of `seed`).
//! 4. Partial Fisher–Yates from the front: for `i` in `0..m`: `j = i + below(n - i)`; swap `items[i]`, `items[j]`.
//! 5. The class contributes `items[0..m]`, in that order.
//!
//! The result lists class 0's draw, then class 1's, and so on. Because the shuffle runs from the front, the k-shot
//! draw of a class is a prefix of its (k+1)-shot draw for the same seed.
//!
//! A Python reimplementation:
//!
//! ```text
//! M = 2**64 - 1
//! def mix(z):
//!     z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
//!     z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
//!     return z ^ (z >> 31)
//! def k_shot(samples, num_classes, k, seed):          # samples: [(path_str, label)]
//!     out = []
//!     for c in range(num_classes):
//!         items = sorted((s for s in samples if s[1] == c), key=lambda s: s[0].encode())
//!         n = len(items); m = n if k == 0 else min(k, n)
//!         state = seed ^ mix(c)
//!         for i in range(m):
//!             bound = n - i; t = (2**64) % bound
//!             while True:
//!                 state = (state + 0x9E3779B97F4A7C15) & M; x = mix(state)
//!                 if x >= t: break
//!             j = i + x % bound
//!             items[i], items[j] = items[j], items[i]
//!         out += items[:m]
//!     return out
//! ```

use super::{Dataset, Sample, path_byte_order};

/// The SplitMix64 increment (the golden ratio in 64-bit fixed point).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function (a bijective 64-bit mixer).
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The SplitMix64 generator (Steele, Lea and Flood; the seeding generator of the xoshiro family).
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose state starts at `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64-bit output.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// A uniform draw from `0..n` (`n >= 1`), unbiased by rejecting outputs below `2^64 mod n`.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "SplitMix64::below needs a non-empty range");
        let threshold = n.wrapping_neg() % n; // (2^64 - n) mod n == 2^64 mod n
        loop {
            let x = self.next_u64();
            if x >= threshold {
                return x % n;
            }
        }
    }
}

/// The k-shot subset of `dataset` (see the module documentation for the exact algorithm).
pub fn k_shot(dataset: &Dataset, k: usize, seed: u64) -> Dataset {
    let mut by_class: Vec<Vec<&Sample>> = vec![Vec::new(); dataset.classnames.len()];
    for sample in &dataset.samples {
        by_class[sample.label].push(sample);
    }
    let mut samples = Vec::new();
    for (label, mut items) in by_class.into_iter().enumerate() {
        items.sort_by(|a, b| path_byte_order(&a.path, &b.path));
        let n = items.len();
        let m = if k == 0 { n } else { k.min(n) };
        let mut rng = SplitMix64::new(seed ^ mix(label as u64));
        for i in 0..m {
            let j = i + rng.below((n - i) as u64) as usize;
            items.swap(i, j);
        }
        samples.extend(items[..m].iter().map(|&s| s.clone()));
    }
    Dataset { classnames: dataset.classnames.clone(), samples }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sizes[c]` samples of class `c`, named `c<c>/<i>.jpg`, listed in an interleaved, unsorted order.
    fn dataset(sizes: &[usize]) -> Dataset {
        let mut samples = Vec::new();
        let max = sizes.iter().copied().max().unwrap_or(0);
        for i in (0..max).rev() {
            for (label, &size) in sizes.iter().enumerate() {
                if i < size {
                    samples.push(Sample { path: format!("c{label}/{i}.jpg").into(), label });
                }
            }
        }
        Dataset { classnames: (0..sizes.len()).map(|c| format!("class {c}")).collect(), samples }
    }

    fn paths(ds: &Dataset) -> Vec<String> {
        ds.samples.iter().map(|s| s.path.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn splitmix64_reference_outputs() {
        // Reference outputs of SplitMix64 seeded with 1234567 (as in Vigna's splitmix64.c).
        let mut rng = SplitMix64::new(1234567);
        let outputs: Vec<u64> = (0..5).map(|_| rng.next_u64()).collect();
        assert_eq!(
            outputs,
            [6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431, 16408922859458223821]
        );
    }

    #[test]
    fn below_is_in_range_and_covers_it() {
        let mut rng = SplitMix64::new(7);
        let mut seen = [0usize; 7];
        for _ in 0..7000 {
            seen[rng.below(7) as usize] += 1;
        }
        assert!(seen.iter().all(|&count| (800..1200).contains(&count)), "{seen:?}");
        assert_eq!(rng.below(1), 0);
        let big = u64::MAX / 2 + 2; // threshold is large: exercises rejection
        for _ in 0..100 {
            assert!(rng.below(big) < big);
        }
    }

    #[test]
    fn same_seed_same_draw() {
        let ds = dataset(&[50, 30, 2]);
        let a = ds.k_shot(4, 1);
        assert_eq!(a, ds.k_shot(4, 1));
        assert_eq!(a.class_counts(), [4, 4, 2]);
        assert_eq!(a.classnames, ds.classnames);
        // Ordered by label.
        assert!(a.samples.windows(2).all(|w| w[0].label <= w[1].label));
        // The input order does not matter, only the paths.
        let mut shuffled = ds.clone();
        shuffled.samples.reverse();
        assert_eq!(shuffled.k_shot(4, 1), a);
    }

    #[test]
    fn different_seed_different_draw() {
        let ds = dataset(&[50]);
        let draws: Vec<Vec<String>> = (0..4).map(|seed| paths(&ds.k_shot(5, seed))).collect();
        for i in 0..draws.len() {
            for j in i + 1..draws.len() {
                assert_ne!(draws[i], draws[j], "seeds {i} and {j}");
            }
        }
    }

    #[test]
    fn classes_draw_independently() {
        // Two classes of identical size must not get the same positions drawn.
        let ds = dataset(&[40, 40]);
        let draw = ds.k_shot(3, 9);
        let pick = |label: usize| -> Vec<String> {
            draw.samples
                .iter()
                .filter(|s| s.label == label)
                .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_ne!(pick(0), pick(1));
    }

    #[test]
    fn k_larger_than_class_and_k_zero() {
        let ds = dataset(&[3, 1, 0]);
        let all = ds.k_shot(10, 5);
        assert_eq!(all.class_counts(), [3, 1, 0]);
        assert_eq!(ds.k_shot(0, 5), all);
        let mut sorted = paths(&all);
        sorted.sort();
        assert_eq!(sorted, ["c0/0.jpg", "c0/1.jpg", "c0/2.jpg", "c1/0.jpg"]);
    }

    #[test]
    fn smaller_k_is_a_prefix() {
        let ds = dataset(&[20]);
        let five = paths(&ds.k_shot(5, 3));
        assert_eq!(paths(&ds.k_shot(2, 3)), five[..2]);
        assert_eq!(paths(&ds.k_shot(1, 3)), five[..1]);
    }

    #[test]
    fn pinned_draw() {
        // Expected values computed once with an independent Python reimplementation of the documented algorithm
        // (the one in the module documentation).
        let ds = dataset(&[6, 4, 1, 0]);
        assert_eq!(paths(&ds.k_shot(2, 42)), ["c0/1.jpg", "c0/2.jpg", "c1/3.jpg", "c1/1.jpg", "c2/0.jpg"]);
        assert_eq!(paths(&ds.k_shot(1, 0)), ["c0/1.jpg", "c1/2.jpg", "c2/0.jpg"]);
        assert_eq!(
            paths(&ds.k_shot(0, 2024)),
            [
                "c0/1.jpg", "c0/3.jpg", "c0/5.jpg", "c0/4.jpg", "c0/0.jpg", "c0/2.jpg", "c1/1.jpg", "c1/0.jpg",
                "c1/2.jpg", "c1/3.jpg", "c2/0.jpg"
            ]
        );
    }
}
