//! 2-D convolution (groups = 1, NCHW, f32) forward, input gradient and weight gradient as GEMMs
//! over an im2col buffer, with rayon over image chunks.
//!
//! Why: Burn 0.22.1's `flex` backend has a conv2d forward of its own but no conv2d backward, so
//! autodiff falls back to burn-backend's generic versions. The input gradient becomes a
//! transposed convolution; the weight gradient becomes a convolution of the input (batch and channels
//! swapped) with the output gradient as a `Ho×Wo` kernel, whose output is only `kh×kw` wide: GEMMs
//! with a tiny dimension. Here each of the three is one GEMM per image chunk with every dimension
//! large:
//!
//! | op | GEMM (per chunk of images, `L` = images × Ho·Wo, `K` = Cin·kh·kw) |
//! |---|---|
//! | forward | `y[Cout, L] = W[Cout, K] · col[K, L]` (+ bias) |
//! | input gradient | `dcol[K, L] = Wᵀ[K, Cout] · dy[Cout, L]`, then col2im (scatter-add) into `dx` |
//! | weight gradient | `dW[Cout, K] += dy[Cout, L] · colᵀ[L, K]` |
//!
//! Stride-1 convolutions on planes of 16x16 and more skip the im2col buffer altogether
//! (module `forward`): one GEMM per kernel tap over the padded image read in place, for the forward, the
//! input gradient (a forward of the flipped kernel) and the weight gradient. 3x3 stride-1
//! convolutions with enough channels take Winograd F(2x2, 3x3) instead (modules `winograd` for the
//! forward and the input gradient, `winograd_w_grad` for the weight gradient): 16 GEMMs over
//! transformed tiles, 2.25x fewer multiplications.
//!
//! Parallelism: for the forward and the input gradient, images are split into one contiguous chunk
//! per rayon thread (so a 2-core machine runs two chunks, not many small tasks); each image's result
//! does not depend on the split. The weight gradient sums one partial per chunk, in order, over a
//! split that depends on the geometry only (up to 8 chunks), so it does not depend on the thread
//! count either.
//! Each chunk is cut further so that its im2col buffer stays under [`COL_BUDGET`] floats.

use std::ops::Range;

use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::{zeroed, Scratch};

mod direct;
mod forward;
mod winograd;
mod winograd_w_grad;

pub use direct::set_enabled as set_direct_conv;
pub use forward::{conv2d_forward, conv2d_forward_with, Activation, Epilogue};
pub use winograd::set_enabled as set_winograd;

/// What the 3x3 / stride-1 convolutions run in this process, for benchmark reports: Winograd
/// (unless switched off) for the 3x3s with many channels, and the direct AVX-512 kernel or the tap
/// GEMMs for the other stride-1 ones.
pub fn conv_kernel_name() -> &'static str {
    match (winograd::enabled(), direct::available()) {
        (true, true) => "winograd 3x3 + direct (AVX-512)",
        (true, false) => "winograd 3x3 + gemm",
        (false, true) => "direct (AVX-512)",
        (false, false) => "gemm",
    }
}

/// Largest im2col buffer, in floats, one chunk builds at once (16 MiB); an image larger than that is
/// still done whole.
pub const COL_BUDGET: usize = 4 << 20;

/// Shape and hyper-parameters of one 2-D convolution with `groups = 1` and symmetric padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dGeom {
    pub batch: usize,
    pub c_in: usize,
    pub h_in: usize,
    pub w_in: usize,
    pub c_out: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

impl Conv2dGeom {
    /// Output height and width (the PyTorch formula). Panics on a kernel larger than the padded
    /// input, or on a zero stride or dilation.
    pub fn out_hw(&self) -> [usize; 2] {
        let dim = |i: usize, n: usize| {
            assert!(self.stride[i] > 0 && self.dilation[i] > 0 && self.kernel[i] > 0);
            let span = self.dilation[i] * (self.kernel[i] - 1) + 1;
            let padded = n + 2 * self.padding[i];
            assert!(padded >= span, "conv2d kernel larger than the padded input");
            (padded - span) / self.stride[i] + 1
        };
        [dim(0, self.h_in), dim(1, self.w_in)]
    }

    /// `Cin·kh·kw`: the reduction length of the forward GEMM.
    pub fn k_dim(&self) -> usize {
        self.c_in * self.kernel[0] * self.kernel[1]
    }

    pub fn x_len(&self) -> usize {
        self.batch * self.c_in * self.h_in * self.w_in
    }

    pub fn w_len(&self) -> usize {
        self.c_out * self.k_dim()
    }

    pub fn y_len(&self) -> usize {
        let [ho, wo] = self.out_hw();
        self.batch * self.c_out * ho * wo
    }

    /// Floating-point operations of one forward (each backward GEMM has the same count).
    pub fn flops(&self) -> f64 {
        let [ho, wo] = self.out_hw();
        2.0 * (self.batch * ho * wo) as f64 * self.c_out as f64 * self.k_dim() as f64
    }

    /// 1x1, stride 1, no padding: im2col of an image is the image itself, so the kernels read `x`
    /// and `dy` in place and write `dx` directly (no im2col copy, no col2im scatter).
    fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }

    fn plane_out(&self) -> usize {
        let [ho, wo] = self.out_hw();
        ho * wo
    }

    /// Images per im2col buffer, at least one.
    fn images_per_col(&self) -> usize {
        (COL_BUDGET / (self.k_dim() * self.plane_out()).max(1)).max(1)
    }
}

/// Splits `0..n` into at most `parts` contiguous ranges of near-equal length.
fn split(n: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    (0..parts)
        .map(|i| (i * n / parts)..((i + 1) * n / parts))
        .filter(|r| !r.is_empty())
        .collect()
}

/// Most partial sums the weight gradient splits the batch into.
const W_GRAD_PARTS: usize = 8;
/// Least GEMM depth (images × Ho·Wo) of one weight-gradient partial, where the batch allows.
const W_GRAD_MIN_DEPTH: usize = 256;

/// The image chunks of the weight gradient, one partial sum each. They depend on the geometry
/// only, never on the thread count, so the summed gradient (and so training) is bit-identical on
/// any machine.
fn w_grad_chunks(g: &Conv2dGeom) -> Vec<Range<usize>> {
    let by_depth = g.batch * g.plane_out() / W_GRAD_MIN_DEPTH;
    split(g.batch, by_depth.clamp(1, W_GRAD_PARTS))
}

/// Sub-ranges of `r` of at most `step` images.
fn steps(r: Range<usize>, step: usize) -> impl Iterator<Item = Range<usize>> {
    r.clone()
        .step_by(step)
        .map(move |s| s..(s + step).min(r.end))
}

/// For kernel offset `off` (= k·dilation − padding) and stride `s`, the output columns `ox` whose
/// input column `ox·s + off` lies in `0..n`.
fn valid_range(off: isize, s: usize, n: usize, n_out: usize) -> Range<usize> {
    let s = s as isize;
    let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
    let hi = if (n as isize) <= off {
        0
    } else {
        ((n as isize - off + s - 1) / s).min(n_out as isize)
    };
    let lo = (lo as usize).min(n_out);
    lo..(hi as usize).max(lo)
}

/// Fills `col[K, L]` (`L` = `imgs.len()·Ho·Wo`, row-major) from the images `imgs` of `x`.
fn im2col(x: &[f32], g: &Conv2dGeom, imgs: Range<usize>, col: &mut [f32]) {
    let [ho, wo] = g.out_hw();
    let [kh, kw] = g.kernel;
    let (h, w) = (g.h_in, g.w_in);
    let p = ho * wo;
    let l = imgs.len() * p;
    for ci in 0..g.c_in {
        for ky in 0..kh {
            let ry = valid_range(
                (ky * g.dilation[0]) as isize - g.padding[0] as isize,
                g.stride[0],
                h,
                ho,
            );
            for kx in 0..kw {
                let offx = (kx * g.dilation[1]) as isize - g.padding[1] as isize;
                let rx = valid_range(offx, g.stride[1], w, wo);
                let row = (ci * kh + ky) * kw + kx;
                let dst_row = &mut col[row * l..(row + 1) * l];
                for (j, img) in imgs.clone().enumerate() {
                    let src = &x[(img * g.c_in + ci) * h * w..][..h * w];
                    let dst = &mut dst_row[j * p..(j + 1) * p];
                    for oy in 0..ho {
                        let drow = &mut dst[oy * wo..(oy + 1) * wo];
                        if !ry.contains(&oy) || rx.is_empty() {
                            drow.fill(0.0);
                            continue;
                        }
                        let iy = oy * g.stride[0] + ky * g.dilation[0] - g.padding[0];
                        let srow = &src[iy * w..(iy + 1) * w];
                        drow[..rx.start].fill(0.0);
                        drow[rx.end..].fill(0.0);
                        let ix0 = (rx.start as isize * g.stride[1] as isize + offx) as usize;
                        if g.stride[1] == 1 {
                            drow[rx.clone()].copy_from_slice(&srow[ix0..ix0 + rx.len()]);
                        } else {
                            for (d, ix) in drow[rx.clone()]
                                .iter_mut()
                                .zip((ix0..).step_by(g.stride[1]))
                            {
                                *d = srow[ix];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds `col[K, L]` into `dx` (the images `imgs`, `dx` starting at the
/// first of them).
fn col2im_add(col: &[f32], g: &Conv2dGeom, imgs: Range<usize>, dx: &mut [f32]) {
    let [ho, wo] = g.out_hw();
    let [kh, kw] = g.kernel;
    let (h, w) = (g.h_in, g.w_in);
    let p = ho * wo;
    let l = imgs.len() * p;
    for ci in 0..g.c_in {
        for ky in 0..kh {
            let ry = valid_range(
                (ky * g.dilation[0]) as isize - g.padding[0] as isize,
                g.stride[0],
                h,
                ho,
            );
            for kx in 0..kw {
                let offx = (kx * g.dilation[1]) as isize - g.padding[1] as isize;
                let rx = valid_range(offx, g.stride[1], w, wo);
                if rx.is_empty() {
                    continue;
                }
                let row = (ci * kh + ky) * kw + kx;
                let src_row = &col[row * l..(row + 1) * l];
                for j in 0..imgs.len() {
                    let dst = &mut dx[(j * g.c_in + ci) * h * w..][..h * w];
                    let src = &src_row[j * p..(j + 1) * p];
                    for oy in ry.clone() {
                        let iy = oy * g.stride[0] + ky * g.dilation[0] - g.padding[0];
                        let drow = &mut dst[iy * w..(iy + 1) * w];
                        let srow = &src[oy * wo..(oy + 1) * wo];
                        let ix0 = (rx.start as isize * g.stride[1] as isize + offx) as usize;
                        if g.stride[1] == 1 {
                            for (d, s) in
                                drow[ix0..ix0 + rx.len()].iter_mut().zip(&srow[rx.clone()])
                            {
                                *d += s;
                            }
                        } else {
                            for (s, ix) in srow[rx.clone()].iter().zip((ix0..).step_by(g.stride[1]))
                            {
                                drow[ix] += s;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Copies `dy` of the images `imgs` (`[n][Cout][P]`) into `[Cout, L]` row-major.
fn pack_dy(dy: &[f32], g: &Conv2dGeom, imgs: Range<usize>, out: &mut [f32]) {
    let p = g.plane_out();
    let l = imgs.len() * p;
    for (j, img) in imgs.enumerate() {
        for co in 0..g.c_out {
            out[co * l + j * p..][..p].copy_from_slice(&dy[(img * g.c_out + co) * p..][..p]);
        }
    }
}

/// `dst[m, n] (=|+=) lhs[m, k] · rhs[k, n]`, with explicit row / column strides; `parallelism`
/// is gemm's own (`None` inside our per-chunk tasks, `Rayon` for a batch too small to split).
#[allow(clippy::too_many_arguments)]
fn matmul(
    parallelism: Parallelism,
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: &[f32],
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: &[f32],
    rhs_rs: usize,
    rhs_cs: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    // Bounds the raw-pointer call below: the last element each operand reaches must be in range.
    assert!((m - 1) * dst_rs + n <= dst.len());
    if k > 0 {
        assert!((m - 1) * lhs_rs + (k - 1) * lhs_cs < lhs.len());
        assert!((k - 1) * rhs_rs + (n - 1) * rhs_cs < rhs.len());
    }
    // SAFETY: the asserts above keep every index gemm computes from these strides inside the three
    // slices; `dst` is borrowed mutably, so it aliases neither input.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

fn check(g: &Conv2dGeom, x: Option<&[f32]>, w: Option<&[f32]>, y: Option<&[f32]>) {
    if let Some(x) = x {
        assert_eq!(x.len(), g.x_len(), "conv2d input length");
    }
    if let Some(w) = w {
        assert_eq!(w.len(), g.w_len(), "conv2d weight length");
    }
    if let Some(y) = y {
        assert_eq!(y.len(), g.y_len(), "conv2d output length");
    }
}

/// Input gradient: `dx[N, Cin, H, W]` from `w` and the output gradient `dy[N, Cout, Ho, Wo]`.
pub fn conv2d_x_grad(g: &Conv2dGeom, w: &[f32], dy: &[f32]) -> Vec<f32> {
    check(g, None, Some(w), Some(dy));
    if !g.is_pointwise() {
        if let Some(dx) = forward::x_grad_as_forward(g, w, dy) {
            return dx;
        }
    }
    let p = g.plane_out();
    let k = g.k_dim();
    let mut dx = zeroed::<f32>(g.x_len());
    let per_img = g.c_in * g.h_in * g.w_in;
    let chunks = split(g.batch, rayon::current_num_threads());
    let mut parts = Vec::with_capacity(chunks.len());
    let mut rest: &mut [f32] = &mut dx;
    for r in &chunks {
        let (head, tail) = rest.split_at_mut(r.len() * per_img);
        parts.push((r.clone(), head));
        rest = tail;
    }
    if g.is_pointwise() {
        parts.into_par_iter().for_each(|(r, dxs)| {
            for (img, out) in r.zip(dxs.chunks_mut(per_img)) {
                // dx_img[Cin, P] = Wᵀ[Cin, Cout] · dy_img[Cout, P]
                let dy_img = &dy[img * g.c_out * p..][..g.c_out * p];
                matmul(
                    Parallelism::None,
                    g.c_in,
                    p,
                    g.c_out,
                    out,
                    p,
                    false,
                    w,
                    1,
                    k,
                    dy_img,
                    p,
                    1,
                );
            }
        });
        return dx;
    }
    parts.into_par_iter().for_each(|(r, dxs)| {
        let step = g.images_per_col();
        let cap = step.min(r.len()) * p;
        // Both written whole before they are read (GEMM overwrites; pack_dy copies).
        let mut dcol = Scratch::new(k * cap);
        let mut dyc = Scratch::new(g.c_out * cap);
        for sub in steps(r.clone(), step) {
            let l = sub.len() * p;
            pack_dy(dy, g, sub.clone(), &mut dyc[..g.c_out * l]);
            // dcol[K, L] = Wᵀ[K, Cout] · dy[Cout, L]
            matmul(
                Parallelism::None,
                k,
                l,
                g.c_out,
                &mut dcol[..k * l],
                l,
                false,
                w,
                1,
                k,
                &dyc[..g.c_out * l],
                l,
                1,
            );
            let off = (sub.start - r.start) * per_img;
            col2im_add(
                &dcol[..k * l],
                g,
                sub.clone(),
                &mut dxs[off..off + sub.len() * per_img],
            );
        }
    });
    dx
}

/// Weight gradient: `dw[Cout, Cin, kh, kw]` from the input `x` and the output gradient `dy`.
pub fn conv2d_w_grad(g: &Conv2dGeom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    check(g, Some(x), None, Some(dy));
    if winograd_w_grad::suits(g) && winograd::enabled() {
        return winograd_w_grad::w_grad(g, x, dy);
    }
    if !g.is_pointwise() {
        if let Some(dw) = forward::w_grad_shifted(g, x, dy) {
            return dw;
        }
    }
    let p = g.plane_out();
    let k = g.k_dim();
    let partials: Vec<Vec<f32>> = w_grad_chunks(g)
        .into_par_iter()
        .map(|r| {
            let mut dw = vec![0.0f32; g.w_len()];
            if g.is_pointwise() {
                for (i, img) in r.enumerate() {
                    // dW[Cout, Cin] (+)= dy_img[Cout, P] · x_imgᵀ[P, Cin]
                    let dy_img = &dy[img * g.c_out * p..][..g.c_out * p];
                    let x_img = &x[img * g.c_in * p..][..g.c_in * p];
                    matmul(
                        Parallelism::None,
                        g.c_out,
                        g.c_in,
                        p,
                        &mut dw,
                        k,
                        i > 0,
                        dy_img,
                        p,
                        1,
                        x_img,
                        1,
                        p,
                    );
                }
                return dw;
            }
            let step = g.images_per_col();
            let cap = step.min(r.len()) * p;
            // Both written whole before they are read (im2col writes the padding's zeros).
            let mut col = Scratch::new(k * cap);
            let mut dyc = Scratch::new(g.c_out * cap);
            for (i, sub) in steps(r.clone(), step).enumerate() {
                let l = sub.len() * p;
                im2col(x, g, sub.clone(), &mut col[..k * l]);
                pack_dy(dy, g, sub.clone(), &mut dyc[..g.c_out * l]);
                // dW[Cout, K] (+)= dy[Cout, L] · colᵀ[L, K]
                matmul(
                    Parallelism::None,
                    g.c_out,
                    k,
                    l,
                    &mut dw,
                    k,
                    i > 0,
                    &dyc[..g.c_out * l],
                    l,
                    1,
                    &col[..k * l],
                    1,
                    l,
                );
            }
            dw
        })
        .collect();
    // Σ partials in order, in parallel over the elements.
    const CHUNK: usize = 1 << 12;
    let mut dw = zeroed::<f32>(g.w_len());
    dw.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(chunk, out)| {
            let at = chunk * CHUNK;
            for part in &partials {
                for (a, b) in out.iter_mut().zip(&part[at..]) {
                    *a += b;
                }
            }
        });
    dw
}

/// Bias gradient: `db[Cout]` = the sum of `dy` over batch and space.
pub fn conv2d_b_grad(g: &Conv2dGeom, dy: &[f32]) -> Vec<f32> {
    check(g, None, None, Some(dy));
    let p = g.plane_out();
    // Per channel in parallel; each sums its planes in image order, as a serial loop would.
    (0..g.c_out)
        .into_par_iter()
        .map(|c| {
            (0..g.batch)
                .map(|img| dy[(img * g.c_out + c) * p..][..p].iter().sum::<f32>())
                .fold(0.0, |a, b| a + b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_every_image_once() {
        for n in 0..10 {
            for parts in 1..5 {
                let r = split(n, parts);
                let all: Vec<usize> = r.iter().flat_map(|r| r.clone()).collect();
                assert_eq!(all, (0..n).collect::<Vec<_>>());
                assert!(r.len() <= parts);
            }
        }
    }

    #[test]
    fn valid_range_matches_a_direct_scan() {
        for n in 1..9 {
            for s in 1..4 {
                for off in -4isize..5 {
                    for n_out in 0..8 {
                        let want: Vec<usize> = (0..n_out)
                            .filter(|&o| {
                                let i = o as isize * s as isize + off;
                                i >= 0 && i < n as isize
                            })
                            .collect();
                        let got: Vec<usize> = valid_range(off, s, n, n_out).collect();
                        assert_eq!(got, want, "off {off} s {s} n {n} n_out {n_out}");
                    }
                }
            }
        }
    }
}
