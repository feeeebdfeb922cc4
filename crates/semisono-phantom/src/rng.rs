//! Self-contained, bit-stable pseudo-random numbers.
//!
//! `splitmix64` derives seeds, `xoshiro256**` produces the stream, and standard normal variates come
//! from a 2^16-entry table of normal quantiles indexed by 16-bit chunks of the stream (four normals per
//! 64-bit draw). Nothing here depends on an external crate, so a dataset stays byte-identical across
//! dependency upgrades.

use std::sync::OnceLock;

pub use semisono_rng::splitmix64;

/// Independent random streams of one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// Case sampling: class, probe, anatomy, lesion descriptors, acquisition settings.
    Case = 1,
    /// The scatterer field (speckle).
    Speckle = 2,
    /// Electronic noise.
    Noise = 3,
    /// Label noise and other bookkeeping draws.
    Label = 4,
    /// Class-conditional lesion descriptors.
    Descriptors = 5,
}

/// The shared xoshiro256** generator ([`semisono_rng::Rng`]: `next_u64`, `uniform`, `range`, `int`,
/// `bernoulli` through `Deref`) plus the phantom's own draws (normals from the quantile table, ...).
#[derive(Clone, Debug)]
pub struct Rng(semisono_rng::Rng);

impl std::ops::Deref for Rng {
    type Target = semisono_rng::Rng;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Rng {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Rng {
    /// Generator seeded from a single 64-bit value through splitmix64.
    pub fn from_seed(seed: u64) -> Self {
        Rng(semisono_rng::Rng::new(seed))
    }

    /// Generator for stream `stream` of image `index` of the dataset `seed`.
    pub fn for_image(seed: u64, index: u64, stream: Stream) -> Self {
        let mut st = seed ^ 0x5EED_5EED_0000_0000;
        let a = splitmix64(&mut st);
        let mut st2 = a ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let b = splitmix64(&mut st2);
        let mut st3 = b ^ (stream as u64).wrapping_mul(0xA24B_AED4_963E_E407);
        Rng::from_seed(splitmix64(&mut st3))
    }

    /// Index drawn from unnormalised non-negative weights.
    pub fn categorical(&mut self, w: &[f64]) -> usize {
        let total: f64 = w.iter().sum();
        let mut u = self.uniform() * total;
        for (i, &wi) in w.iter().enumerate() {
            if u < wi {
                return i;
            }
            u -= wi;
        }
        w.iter().rposition(|&x| x > 0.0).unwrap_or(0)
    }

    /// Random sign, +1 or -1.
    #[inline]
    pub fn sign(&mut self) -> f64 {
        if self.next_u64() >> 63 == 0 {
            1.0
        } else {
            -1.0
        }
    }

    /// One standard normal variate (table based).
    #[inline]
    pub fn normal(&mut self) -> f64 {
        normal_table()[(self.next_u64() >> 48) as usize] as f64
    }

    /// Appends `n` standard normal variates to `out` (same sequence as [`Rng::fill_normals`]).
    pub fn extend_normals(&mut self, out: &mut Vec<f32>, n: usize) {
        let t = normal_table();
        out.reserve(n);
        for _ in 0..n / 4 {
            let r = self.next_u64();
            out.extend_from_slice(&[
                t[(r & 0xFFFF) as usize],
                t[((r >> 16) & 0xFFFF) as usize],
                t[((r >> 32) & 0xFFFF) as usize],
                t[(r >> 48) as usize],
            ]);
        }
        if n & 3 != 0 {
            let mut r = self.next_u64();
            for _ in 0..n & 3 {
                out.push(t[(r & 0xFFFF) as usize]);
                r >>= 16;
            }
        }
    }

    /// Fills `out` with standard normal variates, four per 64-bit draw.
    pub fn fill_normals(&mut self, out: &mut [f32]) {
        let t = normal_table();
        let mut chunks = out.chunks_exact_mut(4);
        for c in &mut chunks {
            let r = self.next_u64();
            c[0] = t[(r & 0xFFFF) as usize];
            c[1] = t[((r >> 16) & 0xFFFF) as usize];
            c[2] = t[((r >> 32) & 0xFFFF) as usize];
            c[3] = t[(r >> 48) as usize];
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let mut r = self.next_u64();
            for v in rest {
                *v = t[(r & 0xFFFF) as usize];
                r >>= 16;
            }
        }
    }
}

/// Inverse standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9).
pub fn inv_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let plow = 0.02425;
    if p < plow {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - plow {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -inv_normal_cdf(1.0 - p)
    }
}

/// Standard normal CDF (Abramowitz–Stegun 7.1.26 based erf, |err| < 1.5e-7).
pub fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// The 2^16 normal quantiles at (i + 1/2) / 2^16, rescaled to exactly unit variance.
pub fn normal_table() -> &'static [f32; 65536] {
    static TABLE: OnceLock<Box<[f32; 65536]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let n = 65536usize;
        let mut v: Vec<f64> = (0..n)
            .map(|i| inv_normal_cdf((i as f64 + 0.5) / n as f64))
            .collect();
        // Symmetrise (mean exactly 0) and rescale to unit variance.
        for i in 0..n / 2 {
            let m = 0.5 * (v[n - 1 - i] - v[i]);
            v[i] = -m;
            v[n - 1 - i] = m;
        }
        let var = v.iter().map(|x| x * x).sum::<f64>() / n as f64;
        let s = 1.0 / var.sqrt();
        let mut t = Box::new([0f32; 65536]);
        for (o, x) in t.iter_mut().zip(&v) {
            *o = (x * s) as f32;
        }
        t
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_and_repeat() {
        let mut a = Rng::for_image(1, 2, Stream::Case);
        let mut b = Rng::for_image(1, 2, Stream::Case);
        let mut c = Rng::for_image(1, 3, Stream::Case);
        let mut d = Rng::for_image(1, 2, Stream::Speckle);
        let (x, y, z, w) = (a.next_u64(), b.next_u64(), c.next_u64(), d.next_u64());
        assert_eq!(x, y);
        assert_ne!(x, z);
        assert_ne!(x, w);
    }

    #[test]
    fn normal_table_moments() {
        let t = normal_table();
        let m: f64 = t.iter().map(|&x| x as f64).sum::<f64>() / 65536.0;
        let v: f64 = t.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / 65536.0;
        assert!(m.abs() < 1e-6);
        assert!((v - 1.0).abs() < 1e-5);
        assert!((inv_normal_cdf(0.975) - 1.959_964).abs() < 1e-5);
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
    }

    #[test]
    fn int_range_and_categorical() {
        let mut r = Rng::from_seed(7);
        let mut counts = [0usize; 3];
        for _ in 0..3000 {
            let k = r.int(0, 2) as usize;
            counts[k] += 1;
            assert!(r.categorical(&[0.0, 1.0, 0.0]) == 1);
        }
        assert!(counts.iter().all(|&c| c > 800));
    }
}
