//! The one small, self-contained, seeded PRNG of semisono: splits, augmentations, the loader and the
//! phantom generator all draw from it.
//!
//! `splitmix64` expands seeds and derives independent streams; `xoshiro256**` produces the numbers.
//! Nothing depends on an external crate, so a split or an augmentation stream for a given seed stays
//! bit-identical across dependency upgrades and platforms. The state is four `u64`s and serialises, so
//! a training checkpoint can store and restore it exactly.

use serde::{Deserialize, Serialize};

/// One step of splitmix64: advances `state` and returns the mixed output.
#[inline]
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256** generator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// Generator seeded from one 64-bit value (expanded through splitmix64).
    pub fn new(seed: u64) -> Self {
        let mut st = seed;
        let mut s = [0u64; 4];
        for v in &mut s {
            *v = splitmix64(&mut st);
        }
        if s == [0; 4] {
            s[0] = 1;
        }
        Rng { s }
    }

    /// An independent stream `stream` of the master seed `seed`, e.g. one stream for the split's
    /// hold-out, another for the labeled draw, one per worker or per epoch for augmentation.
    pub fn derive(seed: u64, stream: u64) -> Self {
        let mut st = seed ^ 0x5EED_DA7A_0000_0000;
        let a = splitmix64(&mut st);
        let mut st2 = a ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        Rng::new(splitmix64(&mut st2))
    }

    /// A child generator drawn from this one (advances `self` by one step).
    pub fn fork(&mut self) -> Self {
        Rng::new(self.next_u64())
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    #[inline]
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in `0..n` (`n > 0`), by the multiply-shift method (bias below 2^-64 · n).
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform integer in `lo..=hi`.
    #[inline]
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(hi >= lo);
        let n = (hi - lo) as u64 as u128 + 1;
        lo.wrapping_add(((self.next_u64() as u128 * n) >> 64) as i64)
    }

    /// True with probability `p` (`p <= 0` never, `p >= 1` always).
    #[inline]
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Fisher–Yates shuffle in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_stream() {
        // Pinned values (checked against an independent Python splitmix64 + xoshiro256**): changing the
        // generator silently would change every split and augmentation.
        let mut r = Rng::new(42);
        assert_eq!(r.next_u64(), 0x1578_0b2e_0c2e_c716);
        assert_eq!(r.next_u64(), 0x6104_d986_6d11_3a7e);
        assert_ne!(Rng::derive(1, 0), Rng::derive(1, 1));
        assert_ne!(Rng::derive(1, 0), Rng::derive(2, 0));
    }

    #[test]
    fn ranges() {
        let mut r = Rng::new(7);
        let mut seen = [0usize; 4];
        for _ in 0..4000 {
            let v = r.int(-1, 2);
            assert!((-1..=2).contains(&v));
            seen[(v + 1) as usize] += 1;
            let u = r.uniform();
            assert!((0.0..1.0).contains(&u));
            assert!(r.below(3) < 3);
        }
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
        let mut v: Vec<u32> = (0..50).collect();
        r.shuffle(&mut v);
        let mut s = v.clone();
        s.sort_unstable();
        assert_eq!(s, (0..50).collect::<Vec<_>>());
        assert_ne!(v, s);
    }
}
