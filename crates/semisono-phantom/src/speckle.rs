//! Speckle field, separable Gaussian PSF and fast dB math (spec C.3, C.4, C.6).

use crate::rng::Rng;

/// ln(10) / 20: multiply a dB value by this and exponentiate to get an amplitude ratio.
pub const DB_TO_NEPER: f32 = std::f32::consts::LN_10 / 20.0;

/// Amplitude ratio 10^(db/20).
#[inline]
pub fn db_to_amp(db: f32) -> f32 {
    fast_exp(db * DB_TO_NEPER)
}

/// e^x for |x| < ~80, relative error < 1e-6·(1 + |x|) (range reduction to 2^n · 2^f and a degree-6 polynomial).
#[inline]
pub fn fast_exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 87.0);
    let t = x * std::f32::consts::LOG2_E;
    // floor without a libm call (no SSE4.1 on the x86-64 baseline).
    let ti = t as i32;
    let n = if (ti as f32) > t { ti - 1 } else { ti } as f32;
    let f = t - n; // [0, 1)
                   // 2^f on [0,1): Taylor-like minimax polynomial.
                   // Minimax polynomial for 2^f on [0, 1) (relative error 2e-9 in exact arithmetic).
    let p = 1.0
        + f * (std::f32::consts::LN_2
            + f * (0.240_229_84
                + f * (0.055_483_34
                    + f * (0.009_678_842 + f * (0.001_243_969 + f * 0.000_217_021_94)))));
    let bits = ((n as i32 + 127) as u32) << 23;
    p * f32::from_bits(bits)
}

/// 10·log10(x) without a libm call: exponent bits plus a degree-5 polynomial for log2 of the mantissa
/// (|error| < 5e-5 dB). Branch-free so that loops over it vectorise. Inputs <= 1e-30 give -300 dB.
#[inline]
pub fn fast_db10(x: f32) -> f32 {
    let bits = x.max(1e-30).to_bits();
    let e = ((bits >> 23) as i32 - 127) as f32;
    let t = f32::from_bits((bits & 0x7F_FFFF) | 0x3F80_0000) - 1.0;
    let l = t
        * (1.441_965_8
            + t * (-0.709_664_7 + t * (0.417_602_85 + t * (-0.196_279_6 + t * 0.046_390_066))));
    (e + l) * (10.0 * std::f32::consts::LOG10_2)
}

/// Sampled Gaussian with radius ⌈3σ⌉, normalised to unit L2 norm (Σh² = 1).
pub fn gaussian_kernel(sigma: f64) -> Vec<f32> {
    let sigma = sigma.max(1e-3);
    let r = (3.0 * sigma).ceil() as i64;
    let mut k: Vec<f64> = (-r..=r)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let n = k.iter().map(|v| v * v).sum::<f64>().sqrt();
    for v in &mut k {
        *v /= n;
    }
    k.into_iter().map(|v| v as f32).collect()
}

/// Builds the complex scatterer field `re + i·im = amp·(g1 + i g2)/√2 + coh` (coherent part real).
/// With `speckle == false` the random part is replaced by `amp` (deterministic, for mask tests).
pub fn fill_field(
    amp: &[f32],
    coh: &[f32],
    rng: &mut Rng,
    speckle: bool,
    re: &mut Vec<f32>,
    im: &mut Vec<f32>,
) {
    re.clear();
    im.clear();
    if !speckle {
        re.extend(amp.iter().zip(coh).map(|(&a, &c)| a + c));
        im.resize(amp.len(), 0.0);
        return;
    }
    rng.extend_normals(re, amp.len());
    rng.extend_normals(im, amp.len());
    let s = std::f32::consts::FRAC_1_SQRT_2;
    for (((r, i), &a), &c) in re.iter_mut().zip(im.iter_mut()).zip(amp).zip(coh) {
        let a = a * s;
        *r = *r * a + c;
        *i *= a;
    }
}

/// Scale restoring unit power where a unit-L2 kernel is cut by the grid edge: `1/√(Σ_valid h²)`.
/// `prefix[k] = Σ_{j<k} h[j]²`; taps `lo..=hi` are valid.
#[inline]
fn edge_scale(prefix: &[f32], lo: usize, hi: usize) -> f32 {
    let e = prefix[hi + 1] - prefix[lo];
    if e > 0.0 {
        1.0 / e.sqrt()
    } else {
        0.0
    }
}

fn prefix_sq(h: &[f32]) -> Vec<f32> {
    let mut p = vec![0f32; h.len() + 1];
    for (k, &w) in h.iter().enumerate() {
        p[k + 1] = p[k] + w * w;
    }
    p
}

/// Axial pass of a separable PSF: `dst[z] = Σ_k h[k]·src[z + k − r]`, whole rows at a time. Taps that
/// fall outside the grid are dropped and the row is rescaled to keep unit power (no edge brightening
/// or darkening of the speckle).
pub fn axial_pass(src: &[f32], dst: &mut [f32], nz: usize, nl: usize, h: &[f32]) {
    let r = h.len() / 2;
    let prefix = prefix_sq(h);
    for z in 0..nz {
        let out = &mut dst[z * nl..(z + 1) * nl];
        out.fill(0.0);
        let lo = r.saturating_sub(z);
        let hi = (2 * r).min(r + nz - 1 - z);
        for (k, &w) in h.iter().enumerate().take(hi + 1).skip(lo) {
            let zz = z + k - r;
            let row = &src[zz * nl..(zz + 1) * nl];
            for (o, &v) in out.iter_mut().zip(row) {
                *o += w * v;
            }
        }
        if lo > 0 || hi < 2 * r {
            let s = edge_scale(&prefix, lo, hi);
            out.iter_mut().for_each(|o| *o *= s);
        }
    }
}

/// Lateral pass of a separable PSF, in place, with one kernel per row. Zero padding with the same
/// unit-power rescaling at the edges as [`axial_pass`].
pub fn lateral_pass(
    buf: &mut [f32],
    nz: usize,
    nl: usize,
    kernels: &[Vec<f32>],
    row_kernel: &[u16],
    pad: &mut Vec<f32>,
) {
    let prefixes: Vec<Vec<f32>> = kernels.iter().map(|h| prefix_sq(h)).collect();
    for z in 0..nz {
        let h = &kernels[row_kernel[z] as usize];
        let prefix = &prefixes[row_kernel[z] as usize];
        let r = h.len() / 2;
        let row = &mut buf[z * nl..(z + 1) * nl];
        pad.clear();
        pad.resize(nl + 2 * r, 0.0);
        pad[r..r + nl].copy_from_slice(row);
        // Symmetric kernel: out[l] = h[r]·p[l + r] + Σ_j h[r + j]·(p[l + r − j] + p[l + r + j]).
        let c = h[r];
        for (o, &v) in row.iter_mut().zip(&pad[r..r + nl]) {
            *o = c * v;
        }
        for j in 1..=r {
            let w = h[r + j];
            let a = &pad[r - j..r - j + nl];
            let b = &pad[r + j..r + j + nl];
            for ((o, &x), &y) in row.iter_mut().zip(a).zip(b) {
                *o += w * (x + y);
            }
        }
        for l in (0..r.min(nl)).chain(nl.saturating_sub(r).max(r.min(nl))..nl) {
            let lo = r.saturating_sub(l);
            let hi = (2 * r).min(r + nl - 1 - l);
            row[l] *= edge_scale(prefix, lo, hi);
        }
    }
}

/// Depth-dependent lateral PSF kernels: `σl(z) = σl0·√(1 + ((z − z_f)/z_R)²)`, capped at `cap·σl0`,
/// quantised to 0.05 px so that rows share kernels. Returns (kernels, kernel index per row).
pub fn lateral_kernels(
    nz: usize,
    dz_mm: f64,
    sigma0: f64,
    focus_mm: f64,
    rayleigh_mm: f64,
    cap: f64,
) -> (Vec<Vec<f32>>, Vec<u16>) {
    let mut kernels: Vec<Vec<f32>> = Vec::new();
    let mut keys: Vec<i64> = Vec::new();
    let mut row_k = Vec::with_capacity(nz);
    for iz in 0..nz {
        let z = (iz as f64 + 0.5) * dz_mm;
        let s = (sigma0 * (1.0 + ((z - focus_mm) / rayleigh_mm).powi(2)).sqrt()).min(cap * sigma0);
        let key = (s / 0.05).round() as i64;
        let k = match keys.iter().position(|&q| q == key) {
            Some(p) => p,
            None => {
                keys.push(key);
                kernels.push(gaussian_kernel(key as f64 * 0.05));
                kernels.len() - 1
            }
        };
        row_k.push(k as u16);
    }
    (kernels, row_k)
}

/// 3×3 binomial smoothing (post-log despeckle), in place, replicate borders.
pub fn binomial3(img: &mut [f32], nz: usize, nl: usize, tmp: &mut Vec<f32>) {
    tmp.clear();
    tmp.resize(nz * nl, 0.0);
    // Lateral [1 2 1]/4 (replicate edges): interior as three shifted slices, so it vectorises.
    for z in 0..nz {
        let row = &img[z * nl..(z + 1) * nl];
        let out = &mut tmp[z * nl..(z + 1) * nl];
        if nl >= 3 {
            let mid = out[1..nl - 1]
                .iter_mut()
                .zip(&row[..nl - 2])
                .zip(&row[1..nl - 1])
                .zip(&row[2..]);
            for (((o, &a), &b), &c) in mid {
                *o = 0.25 * (a + c) + 0.5 * b;
            }
        }
        out[0] = 0.25 * (row[0] + row[1.min(nl - 1)]) + 0.5 * row[0];
        out[nl - 1] = 0.25 * (row[nl.saturating_sub(2)] + row[nl - 1]) + 0.5 * row[nl - 1];
    }
    // Axial [1 2 1]/4.
    for z in 0..nz {
        let za = z.saturating_sub(1);
        let zc = (z + 1).min(nz - 1);
        let (a, b, c) = (
            &tmp[za * nl..(za + 1) * nl],
            &tmp[z * nl..(z + 1) * nl],
            &tmp[zc * nl..(zc + 1) * nl],
        );
        let out = &mut img[z * nl..(z + 1) * nl];
        for (((o, &a), &b), &c) in out.iter_mut().zip(a).zip(b).zip(c) {
            *o = 0.25 * (a + c) + 0.5 * b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_math_accuracy() {
        for &x in &[1e-6f32, 0.013, 0.5, 1.0, 1.7, 3.3, 1234.5, 9.9e6] {
            let exact = 10.0 * (x as f64).log10();
            assert!((fast_db10(x) as f64 - exact).abs() < 1e-3, "{x}");
        }
        for &x in &[-40.0f32, -3.3, -0.1, 0.0, 0.7, 5.0, 30.0] {
            let exact = (x as f64).exp();
            // f32 range reduction: relative error grows like ulp(x·log2 e).
            let tol = 1e-6 * (1.0 + x.abs() as f64);
            assert!(((fast_exp(x) as f64) - exact).abs() / exact < tol, "{x}");
        }
    }

    #[test]
    fn separable_passes_reproduce_the_kernel() {
        let (nz, nl) = (48, 40);
        let mut src = vec![0f32; nz * nl];
        src[24 * nl + 20] = 1.0;
        let ha = gaussian_kernel(1.5);
        let hl = gaussian_kernel(3.0);
        let mut dst = vec![0f32; nz * nl];
        axial_pass(&src, &mut dst, nz, nl, &ha);
        let mut pad = Vec::new();
        lateral_pass(
            &mut dst,
            nz,
            nl,
            std::slice::from_ref(&hl),
            &vec![0u16; nz],
            &mut pad,
        );
        let (ra, rl) = (ha.len() / 2, hl.len() / 2);
        for z in 0..nz {
            for l in 0..nl {
                let dz = z as isize - 24 + ra as isize;
                let dl = l as isize - 20 + rl as isize;
                let want =
                    if dz >= 0 && (dz as usize) < ha.len() && dl >= 0 && (dl as usize) < hl.len() {
                        ha[dz as usize] * hl[dl as usize]
                    } else {
                        0.0
                    };
                assert!((dst[z * nl + l] - want).abs() < 1e-6, "{z} {l}");
            }
        }
    }

    #[test]
    fn kernel_unit_l2() {
        for s in [0.5, 1.0, 2.7, 6.0] {
            let k = gaussian_kernel(s);
            let n: f32 = k.iter().map(|v| v * v).sum();
            assert!((n - 1.0).abs() < 1e-5);
            assert_eq!(k.len(), 2 * (3.0f64 * s).ceil() as usize + 1);
        }
    }
}
