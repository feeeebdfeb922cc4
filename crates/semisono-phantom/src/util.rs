//! Small numeric helpers shared by the anatomy and lesion models.

use crate::rng::Rng;

/// Smooth random texture: a coarse grid of N(0,1) values over a physical box, bilinearly interpolated.
#[derive(Clone, Debug)]
pub struct Texture {
    x0: f64,
    z0: f64,
    inv_cell: f64,
    nx: usize,
    nz: usize,
    data: Vec<f32>,
}

impl Texture {
    /// Texture covering `[x0, x0+w] × [z0, z0+h]` with grid spacing `cell` (mm).
    pub fn new(rng: &mut Rng, x0: f64, z0: f64, w: f64, h: f64, cell: f64) -> Texture {
        let nx = (w / cell).ceil() as usize + 2;
        let nz = (h / cell).ceil() as usize + 2;
        let mut data = vec![0f32; nx * nz];
        rng.fill_normals(&mut data);
        Texture {
            x0,
            z0,
            inv_cell: 1.0 / cell,
            nx,
            nz,
            data,
        }
    }

    /// Interpolated value at a physical point (clamped at the borders). Standard deviation ≈ 0.6–1.
    #[inline]
    pub fn sample(&self, x: f64, z: f64) -> f32 {
        let fx = ((x - self.x0) * self.inv_cell).clamp(0.0, (self.nx - 1) as f64 - 1e-6);
        let fz = ((z - self.z0) * self.inv_cell).clamp(0.0, (self.nz - 1) as f64 - 1e-6);
        let (ix, iz) = (fx as usize, fz as usize);
        let (tx, tz) = ((fx - ix as f64) as f32, (fz - iz as f64) as f32);
        let i = iz * self.nx + ix;
        let d = &self.data;
        let top = d[i] + tx * (d[i + 1] - d[i]);
        let bot = d[i + self.nx] + tx * (d[i + self.nx + 1] - d[i + self.nx]);
        top + tz * (bot - top)
    }
}

/// Smooth random field on the beam grid (row-major `nz × nl`): a coarse grid of N(0,1) values with
/// `cells` cells across the larger dimension, upsampled bilinearly in two separable passes.
pub fn beam_texture(rng: &mut Rng, nz: usize, nl: usize, cells: f64) -> Vec<f32> {
    let cell = (nz.max(nl) as f64 / cells).max(1.0);
    let gz = (nz as f64 / cell).ceil() as usize + 2;
    let gl = (nl as f64 / cell).ceil() as usize + 2;
    let mut coarse = vec![0f32; gz * gl];
    rng.fill_normals(&mut coarse);
    // Random sub-cell offset so grid nodes do not line up across images.
    let (oz, ol) = (rng.uniform() as f32, rng.uniform() as f32);
    let inv = 1.0 / cell as f32;
    let mut tmp = vec![0f32; gz * nl];
    for il in 0..nl {
        let f = il as f32 * inv + ol;
        let j = f as usize;
        let t = f - j as f32;
        for r in 0..gz {
            let c = &coarse[r * gl..];
            tmp[r * nl + il] = c[j] + t * (c[j + 1] - c[j]);
        }
    }
    let mut out = vec![0f32; nz * nl];
    for iz in 0..nz {
        let f = iz as f32 * inv + oz;
        let r = f as usize;
        let t = f - r as f32;
        let (a, b) = (&tmp[r * nl..(r + 1) * nl], &tmp[(r + 1) * nl..(r + 2) * nl]);
        for ((o, &x), &y) in out[iz * nl..(iz + 1) * nl].iter_mut().zip(a).zip(b) {
            *o = x + t * (y - x);
        }
    }
    out
}

/// atan2(y, x) with |error| < 2e-5 rad (odd minimax polynomial on [0, 1] plus octant folding).
#[inline]
pub fn fast_atan2(y: f64, x: f64) -> f64 {
    let (ax, ay) = (x.abs(), y.abs());
    let (mn, mx) = if ax < ay { (ax, ay) } else { (ay, ax) };
    if mx == 0.0 {
        return 0.0;
    }
    let t = mn / mx;
    let s = t * t;
    let mut r = t
        * (0.999_977_26
            + s * (-0.332_623_47
                + s * (0.193_543_46 + s * (-0.116_432_87 + s * (0.052_653_32 - s * 0.011_721_2)))));
    if ay > ax {
        r = std::f64::consts::FRAC_PI_2 - r;
    }
    if x < 0.0 {
        r = std::f64::consts::PI - r;
    }
    if y < 0.0 {
        -r
    } else {
        r
    }
}

/// sin(x) without a libm call (reduction to [−π/2, π/2] and a degree-9 odd polynomial, |err| < 4e-6).
#[inline]
pub fn fast_sin(x: f64) -> f64 {
    use std::f64::consts::{FRAC_PI_2, PI, TAU};
    let k = (x * (1.0 / TAU) + if x >= 0.0 { 0.5 } else { -0.5 }) as i64;
    let mut y = x - k as f64 * TAU;
    if y > FRAC_PI_2 {
        y = PI - y;
    } else if y < -FRAC_PI_2 {
        y = -PI - y;
    }
    let y2 = y * y;
    y * (1.0 + y2 * (-1.0 / 6.0 + y2 * (1.0 / 120.0 + y2 * (-1.0 / 5040.0 + y2 / 362_880.0))))
}

/// Smooth step from 0 (at `e0`) to 1 (at `e1`).
#[inline]
pub fn smoothstep(e0: f64, e1: f64, x: f64) -> f64 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// A smooth random boundary `z_b(x) = base + slope·x + A1 sin(2πx/L1+φ1) + A2 sin(2πx/L2+φ2)` (C.7).
#[derive(Clone, Debug)]
pub struct Boundary {
    /// Depth at x = 0.
    pub base: f64,
    slope: f64,
    a1: f64,
    l1: f64,
    p1: f64,
    a2: f64,
    l2: f64,
    p2: f64,
}

impl Boundary {
    /// Random boundary around `base` with amplitudes `amp1` (long wave) and `amp2` (short wave).
    pub fn random(rng: &mut Rng, base: f64, max_slope: f64, amp1: f64, amp2: f64) -> Boundary {
        Boundary {
            base,
            slope: rng.range(-max_slope, max_slope),
            a1: rng.range(0.3, 1.0) * amp1,
            l1: rng.range(30.0, 90.0),
            p1: rng.range(0.0, std::f64::consts::TAU),
            a2: rng.range(0.3, 1.0) * amp2,
            l2: rng.range(10.0, 25.0),
            p2: rng.range(0.0, std::f64::consts::TAU),
        }
    }

    /// Depth of the boundary at lateral position x.
    #[inline]
    pub fn at(&self, x: f64) -> f64 {
        let tau = std::f64::consts::TAU;
        self.base
            + self.slope * x
            + self.a1 * fast_sin(tau * x / self.l1 + self.p1)
            + self.a2 * fast_sin(tau * x / self.l2 + self.p2)
    }
}

/// A function of x tabulated on a regular grid for fast linear interpolation.
#[derive(Clone, Debug)]
pub struct XTable {
    x0: f64,
    inv_dx: f64,
    v: Vec<f32>,
}

impl XTable {
    /// Tabulates `f` on `n` points over `[x0, x1]`.
    pub fn new(x0: f64, x1: f64, n: usize, f: impl Fn(f64) -> f64) -> XTable {
        let dx = (x1 - x0) / (n - 1) as f64;
        XTable {
            x0,
            inv_dx: 1.0 / dx,
            v: (0..n).map(|i| f(x0 + i as f64 * dx) as f32).collect(),
        }
    }

    /// Table from `n = values.len()` samples over `[x0, x1]`.
    pub fn from_values(x0: f64, x1: f64, v: Vec<f32>) -> XTable {
        let dx = (x1 - x0) / (v.len() - 1) as f64;
        XTable {
            x0,
            inv_dx: 1.0 / dx,
            v,
        }
    }

    /// Interpolated value (clamped at the ends).
    #[inline]
    pub fn at(&self, x: f64) -> f64 {
        let f = ((x - self.x0) * self.inv_dx).clamp(0.0, (self.v.len() - 1) as f64 - 1e-9);
        let i = f as usize;
        let t = (f - i as f64) as f32;
        (self.v[i] + t * (self.v[i + 1] - self.v[i])) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atan2_accuracy() {
        let mut r = Rng::from_seed(1);
        for _ in 0..10_000 {
            let (y, x) = (r.range(-5.0, 5.0), r.range(-5.0, 5.0));
            assert!((fast_atan2(y, x) - y.atan2(x)).abs() < 2e-5);
        }
    }

    #[test]
    fn fast_sin_accuracy() {
        let mut r = Rng::from_seed(4);
        for _ in 0..10_000 {
            let x = r.range(-100.0, 100.0);
            assert!((fast_sin(x) - x.sin()).abs() < 4e-6, "{x}");
        }
    }

    #[test]
    fn texture_and_table() {
        let mut r = Rng::from_seed(2);
        let t = Texture::new(&mut r, -10.0, 0.0, 20.0, 20.0, 2.0);
        let v = t.sample(0.3, 5.1);
        assert!(v.is_finite());
        let tab = XTable::new(-1.0, 1.0, 101, |x| x * x);
        assert!((tab.at(0.5) - 0.25).abs() < 1e-3);
    }
}
