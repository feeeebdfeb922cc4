//! Convolution forward. Stride 1 (every 3x3 and 1x1 convolution of the U-Net but the down-sampling
//! ones): one GEMM per kernel tap, reading the zero-padded image in place at the tap's offset, so
//! no im2col buffer (9x the input for a 3x3) is written and read back. Output rows are computed
//! over the padded width, the extra columns cropped. On CPUs with AVX-512 the spatial stride-1
//! convolutions take the [`super::direct`] kernel instead (same wide grid, no GEMMs). Other
//! strides: im2col + one GEMM per image.

use std::ops::Range;

use gemm::Parallelism;
use rayon::prelude::*;

use super::{check, direct, im2col, matmul, split, steps, winograd, Conv2dGeom};
use crate::kernels::activation_op::relu_value;
use crate::kernels::Scratch;

/// Forward: `y[N, Cout, Ho, Wo]` from `x[N, Cin, H, W]`, `w[Cout, Cin, kh, kw]` and an optional
/// `bias[Cout]`. Each image's result does not depend on the thread count.
pub fn conv2d_forward(g: &Conv2dGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let epilogue = Epilogue {
        scale: None,
        shift: bias,
        activation: Activation::Identity,
    };
    conv2d_forward_with(g, x, w, &epilogue)
}

/// What a forward does to each output while it is in cache: `activation(scale[c]·y + shift[c])`.
/// Inference folds an eval-mode BatchNorm (and the convolution's bias) into `scale` and `shift`,
/// which saves the BatchNorm's and the activation's passes over the tensor.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    pub scale: Option<&'a [f32]>,
    pub shift: Option<&'a [f32]>,
    pub activation: Activation,
}

/// An activation applied element-wise by a kernel's epilogue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Identity,
    /// `max(x, 0)`, NaN kept (flex's and PyTorch's ReLU).
    Relu,
    /// `x ≥ 0 ? x : slope·x` (Burn's `leaky_relu`; the kernels compute in f32).
    LeakyRelu(f64),
}

impl Epilogue<'_> {
    pub(super) fn is_identity(&self) -> bool {
        self.scale.is_none() && self.shift.is_none() && self.activation == Activation::Identity
    }

    /// Applies the epilogue to whole images `[n][Cout][plane]`.
    fn apply(&self, images: &mut [f32], c_out: usize, plane: usize) {
        if self.is_identity() {
            return;
        }
        for (i, values) in images.chunks_mut(plane).enumerate() {
            let c = i % c_out;
            let scale = self.scale.map_or(1.0, |s| s[c]);
            let shift = self.shift.map_or(0.0, |s| s[c]);
            // One match per plane, so each loop is a plain vectorisable map.
            match self.activation {
                Activation::Identity => values.iter_mut().for_each(|v| *v = *v * scale + shift),
                Activation::Relu => values
                    .iter_mut()
                    .for_each(|v| *v = relu_value(*v * scale + shift)),
                Activation::LeakyRelu(slope) => {
                    let slope = slope as f32;
                    values.iter_mut().for_each(|v| {
                        let a = *v * scale + shift;
                        *v = if a >= 0.0 { a } else { slope * a };
                    })
                }
            }
        }
    }
}

/// [`conv2d_forward`] followed by `epilogue` on each output.
pub fn conv2d_forward_with(g: &Conv2dGeom, x: &[f32], w: &[f32], epilogue: &Epilogue) -> Vec<f32> {
    check(g, Some(x), Some(w), None);
    for v in [epilogue.scale, epilogue.shift].into_iter().flatten() {
        assert_eq!(v.len(), g.c_out, "conv2d bias / epilogue length");
    }
    let per_img = g.c_out * g.plane_out();
    let mut y = crate::kernels::zeroed::<f32>(g.y_len());
    let threads = rayon::current_num_threads();
    let chunks = split(g.batch, threads);
    // Fewer images than threads (inference on one image): gemm splits each product instead.
    let parallelism = if chunks.len() < threads {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    let plan = Plan::new(g, w);
    // Hand each task its own slice of `y` (images are contiguous in NCHW).
    let mut parts = Vec::with_capacity(chunks.len());
    let mut rest: &mut [f32] = &mut y;
    for r in &chunks {
        let (head, tail) = rest.split_at_mut(r.len() * per_img);
        parts.push((r.clone(), head));
        rest = tail;
    }
    parts.into_par_iter().for_each(|(r, ys)| match &plan {
        Plan::Winograd(u) => {
            let in_img = g.x_len() / g.batch;
            for (img, out) in r.zip(ys.chunks_mut(per_img)) {
                winograd::conv(u, g, &x[img * in_img..][..in_img], out, parallelism);
                epilogue.apply(out, g.c_out, g.plane_out());
            }
        }
        Plan::WideGrid(taps) => shifted(g, x, taps, r, ys, parallelism, epilogue),
        Plan::Im2col => {
            via_im2col(g, x, w, r, ys, parallelism);
            // On the task's own images, while they are in cache.
            epilogue.apply(ys, g.c_out, g.plane_out());
        }
    });
    y
}

/// The input gradient of a stride-1 convolution is itself a stride-1 convolution: of `dy` with the
/// kernel transposed (`Cin <-> Cout`) and flipped, padded by `dilation·(k − 1) − padding`. So where
/// that padding is not negative and that convolution does not fall back to im2col (Winograd or
/// the wide grid take it), it runs through [`conv2d_forward`] (no col2im scatter). `None`
/// elsewhere.
pub(super) fn x_grad_as_forward(g: &Conv2dGeom, w: &[f32], dy: &[f32]) -> Option<Vec<f32>> {
    let [kh, kw] = g.kernel;
    let reach = [g.dilation[0] * (kh - 1), g.dilation[1] * (kw - 1)];
    let fits = g.padding[0] <= reach[0] && g.padding[1] <= reach[1];
    if g.stride != [1, 1] || !fits {
        return None;
    }
    let [ho, wo] = g.out_hw();
    let transposed = Conv2dGeom {
        batch: g.batch,
        c_in: g.c_out,
        h_in: ho,
        w_in: wo,
        c_out: g.c_in,
        kernel: g.kernel,
        stride: [1, 1],
        padding: [reach[0] - g.padding[0], reach[1] - g.padding[1]],
        dilation: g.dilation,
    };
    if Route::of(&transposed) == Route::Im2col {
        return None;
    }
    let kk = kh * kw;
    let mut flipped = crate::kernels::zeroed::<f32>(w.len());
    flipped
        .par_chunks_mut(g.c_out * kk)
        .enumerate()
        .for_each(|(ci, block)| {
            for (co, dst) in block.chunks_mut(kk).enumerate() {
                let src = &w[(co * g.c_in + ci) * kk..][..kk];
                for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                    *d = *s;
                }
            }
        });
    Some(conv2d_forward(&transposed, dy, &flipped, None))
}

/// Stride-1 weight gradient without im2col: for each tap `t`,
/// `dW_t[Cout, Cin] += dy_w[Cout, q] · Xp[Cin, q + off_t]ᵀ` over the padded image read in place,
/// where `dy_w` is `dy` on the wide grid of [`shifted`] with zeros in the extra columns (they cancel
/// the reads that wrap into the next row). One partial sum per chunk of
/// [`super::w_grad_chunks`], added in order: bit-identical on any thread count. `None` where it
/// does not apply (other strides, planes under [`SHIFTED_MIN_PLANE`]).
pub(super) fn w_grad_shifted(g: &Conv2dGeom, x: &[f32], dy: &[f32]) -> Option<Vec<f32>> {
    if g.stride != [1, 1] || g.plane_out() < SHIFTED_MIN_PLANE {
        return None;
    }
    let grid = WideGrid::new(g);
    let (in_img, out_img) = (g.x_len() / g.batch, g.y_len() / g.batch);
    let tap_len = g.c_out * g.c_in;
    let partials: Vec<Vec<f32>> = super::w_grad_chunks(g)
        .into_par_iter()
        .map(|r| {
            let mut taps = vec![0.0f32; grid.offsets.len() * tap_len];
            let mut xp = grid.pad_buffer();
            let mut dyw = grid.wide_buffer(g.c_out);
            for (i, img) in r.enumerate() {
                let src = grid.padded(&x[img * in_img..][..in_img], &mut xp);
                let lhs = grid.to_wide(&dy[img * out_img..][..out_img], &mut dyw);
                for (tap, &off) in taps.chunks_mut(tap_len).zip(&grid.offsets) {
                    // dW_t[Cout, Cin] (+)= dy_w[Cout, q] · Xp[Cin, q + off_t]ᵀ
                    matmul(
                        Parallelism::None,
                        g.c_out,
                        g.c_in,
                        grid.n,
                        tap,
                        g.c_in,
                        i > 0,
                        lhs,
                        grid.n,
                        1,
                        &src[off..],
                        1,
                        grid.plane,
                    );
                }
            }
            taps
        })
        .collect();
    // Σ partials (in order), [tap][Cout·Cin] -> [Cout·Cin][tap] = [Cout][Cin][kh][kw], in parallel
    // over output rows.
    const ROWS: usize = 256;
    let taps = grid.offsets.len();
    let mut dw = crate::kernels::zeroed::<f32>(taps * tap_len);
    dw.par_chunks_mut(taps * ROWS)
        .enumerate()
        .for_each(|(chunk, out)| {
            // Tap by tap, so each partial is read in order (the block written stays in L1).
            let rows = chunk * ROWS..chunk * ROWS + out.len() / taps;
            for t in 0..taps {
                for (j, row) in rows.clone().zip(out.chunks_mut(taps)) {
                    row[t] = partials
                        .iter()
                        .map(|p| p[t * tap_len + j])
                        .fold(0.0, |a, b| a + b);
                }
            }
        });
    Some(dw)
}

/// Smallest output plane (Ho·Wo) the stride-1 GEMMs take.
const SHIFTED_MIN_PLANE: usize = 256;

/// Whether a forward runs on the wide grid ([`shifted`]): stride 1, and a plane of at least
/// [`SHIFTED_MIN_PLANE`] for the GEMMs (they over-compute the padded columns, 25% more at 8x8
/// with padding 1, so smaller planes take im2col, whose GEMM spans several images) or a smaller
/// plane the direct kernel takes with an im2col depth (`Cin·taps`) of at most
/// [`DIRECT_SMALL_PLANE_MAX_K`]. At 14x14, batch 8, the direct kernel took 0.71-0.90x im2col's
/// time at 64 and 104 channels (Res2Net-101's 14x14 stage) but 1.04x at 256.
fn takes_wide_grid(g: &Conv2dGeom) -> bool {
    g.stride == [1, 1]
        && (g.plane_out() >= SHIFTED_MIN_PLANE
            || (g.k_dim() <= DIRECT_SMALL_PLANE_MAX_K && direct::suits(g)))
}

/// See [`takes_wide_grid`].
const DIRECT_SMALL_PLANE_MAX_K: usize = 9 * 128;

/// `w[Cout, Cin, kh, kw]` as `[Cout, taps, Cin]`: tap `t`'s `[Cout, Cin]` matrix starts at
/// `t·Cin` with row stride `taps·Cin` and unit column stride (which gemm reads without packing).
/// Each output channel's block is transposed on its own, in parallel: a whole-tensor transpose was
/// a serial 3% of the U-Net's inference.
fn weight_taps(g: &Conv2dGeom, w: &[f32]) -> Vec<f32> {
    let taps = g.kernel[0] * g.kernel[1];
    let block = taps * g.c_in;
    let mut out = crate::kernels::zeroed::<f32>(w.len());
    out.par_chunks_mut(block)
        .zip(w.par_chunks(block))
        .for_each(|(dst, src)| {
            for (t, row) in dst.chunks_mut(g.c_in).enumerate() {
                for (d, s) in row.iter_mut().zip(src[t..].iter().step_by(taps)) {
                    *d = *s;
                }
            }
        });
    out
}

/// Which way a forward runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// [`winograd`] (3x3 stride 1 with many channels, unless switched off).
    Winograd,
    /// [`shifted`]: the direct kernel or the tap GEMMs on the wide grid.
    WideGrid,
    /// [`via_im2col`].
    Im2col,
}

impl Route {
    fn of(g: &Conv2dGeom) -> Self {
        if winograd::suits(g) && winograd::enabled() {
            Route::Winograd
        } else if takes_wide_grid(g) {
            Route::WideGrid
        } else {
            Route::Im2col
        }
    }
}

/// A forward's route with its weights in the layout that route reads (prepared once per call).
enum Plan {
    Winograd(winograd::Transformed),
    WideGrid(TapWeights),
    /// im2col reads `w` as it is.
    Im2col,
}

impl Plan {
    fn new(g: &Conv2dGeom, w: &[f32]) -> Self {
        match Route::of(g) {
            Route::Winograd => Plan::Winograd(winograd::Transformed::new(w, g.c_out, g.c_in)),
            Route::WideGrid if direct::suits(g) => Plan::WideGrid(TapWeights::Direct(
                direct::PackedWeights::new(w, g.c_out, g.c_in, g.kernel[0] * g.kernel[1]),
            )),
            Route::WideGrid => Plan::WideGrid(TapWeights::Gemm(weight_taps(g, w))),
            Route::Im2col => Plan::Im2col,
        }
    }
}

/// The weights of the wide-grid path, in the layout its kernel reads.
enum TapWeights {
    /// [`weight_taps`], for one GEMM per tap.
    Gemm(Vec<f32>),
    /// Register-tile blocks of [`direct`].
    Direct(direct::PackedWeights),
}

/// Stride 1: `Y[Cout, q] += W_t[Cout, Cin] · Xp[Cin, q + off_t]` over the padded image `Xp`
/// (`Hp x Wp`), `q = oy·Wp + ox`, for each tap `t`; the columns `ox ≥ Wo` are dropped. The
/// epilogue runs per image, while its output is in cache. With [`TapWeights::Direct`] the
/// [`direct`] kernel does all of it in one pass.
fn shifted(
    g: &Conv2dGeom,
    x: &[f32],
    taps: &TapWeights,
    imgs: Range<usize>,
    ys: &mut [f32],
    parallelism: Parallelism,
    epilogue: &Epilogue,
) {
    let grid = WideGrid::new(g);
    let mut xp = grid.pad_buffer();
    // The direct kernel stores straight into the output; the GEMMs write the wide grid.
    let by_gemm = matches!(taps, TapWeights::Gemm(_));
    let mut yw = grid.wide_buffer(if by_gemm { g.c_out } else { 0 });
    let in_img = g.x_len() / g.batch;
    let tap_stride = grid.offsets.len() * g.c_in;
    for (img, out) in imgs.zip(ys.chunks_mut(g.y_len() / g.batch)) {
        let src = grid.padded(&x[img * in_img..][..in_img], &mut xp);
        let taps = match taps {
            TapWeights::Gemm(taps) => taps,
            TapWeights::Direct(packed) => {
                let parallel = matches!(parallelism, Parallelism::Rayon(_));
                direct::conv(packed, src, &grid, epilogue, out, parallel);
                continue;
            }
        };
        let dst: &mut [f32] = if grid.wide { &mut yw } else { &mut *out };
        for (t, &off) in grid.offsets.iter().enumerate() {
            // Y[Cout, q] (+)= W_t[Cout, Cin] · Xp[Cin, q + off_t]
            matmul(
                parallelism,
                g.c_out,
                grid.n,
                g.c_in,
                dst,
                grid.n,
                t > 0,
                &taps[t * g.c_in..],
                tap_stride,
                1,
                &src[off..],
                grid.plane,
                1,
            );
        }
        if grid.wide {
            grid.crop_wide(&yw, out);
        }
        epilogue.apply(out, g.c_out, g.plane_out());
    }
}

/// The zero-padded image (`hp x wp`) and the "wide" output grid the stride-1 kernels share: output
/// `(oy, ox)` is column `q = oy·wp + ox`, so tap `(ky, kx)` reads the padded image at
/// `q + ky·dh·wp + kx·dw`: one strided GEMM operand. Columns `ox ≥ wo` are not outputs; the last row
/// stops at `wo`, so every tap's read stays inside the padded image.
pub(super) struct WideGrid {
    c_in: usize,
    h: usize,
    w: usize,
    padding: [usize; 2],
    pub(super) wp: usize,
    pub(super) ho: usize,
    pub(super) wo: usize,
    /// `hp·wp`: one padded plane.
    pub(super) plane: usize,
    /// Columns of the wide grid.
    pub(super) n: usize,
    /// Offset of each tap (`ky·kw + kx`) into a padded plane.
    pub(super) offsets: Vec<usize>,
    padded: bool,
    wide: bool,
}

impl WideGrid {
    pub(super) fn new(g: &Conv2dGeom) -> Self {
        let [ph, pw] = g.padding;
        let [dh, dw] = g.dilation;
        let (hp, wp) = (g.h_in + 2 * ph, g.w_in + 2 * pw);
        let [ho, wo] = g.out_hw();
        let offsets = (0..g.kernel[0])
            .flat_map(|ky| (0..g.kernel[1]).map(move |kx| ky * dh * wp + kx * dw))
            .collect();
        Self {
            c_in: g.c_in,
            h: g.h_in,
            w: g.w_in,
            padding: g.padding,
            wp,
            ho,
            wo,
            plane: hp * wp,
            n: (ho - 1) * wp + wo,
            offsets,
            padded: ph > 0 || pw > 0,
            wide: wo != wp,
        }
    }

    /// Scratch for a padded image, or nothing when there is no padding.
    pub(super) fn pad_buffer(&self) -> Scratch {
        Scratch::new(if self.padded {
            self.c_in * self.plane
        } else {
            0
        })
    }

    /// Scratch for `channels` rows of the wide grid, or nothing when it is not wider than the
    /// output.
    fn wide_buffer(&self, channels: usize) -> Scratch {
        Scratch::new(if self.wide { channels * self.n } else { 0 })
    }

    /// The image padded: written into `xp` with its zero border (every element of `xp`, so it
    /// can be reused scratch), or the image itself without padding.
    pub(super) fn padded<'a>(&self, image: &'a [f32], xp: &'a mut [f32]) -> &'a [f32] {
        if !self.padded {
            return image;
        }
        let [ph, pw] = self.padding;
        for (plane, dst) in image.chunks(self.h * self.w).zip(xp.chunks_mut(self.plane)) {
            let (top, rest) = dst.split_at_mut(ph * self.wp);
            top.fill(0.0);
            let (rows, bottom) = rest.split_at_mut(self.h * self.wp);
            for (row, d) in plane.chunks(self.w).zip(rows.chunks_mut(self.wp)) {
                d[..pw].fill(0.0);
                d[pw..pw + self.w].copy_from_slice(row);
                d[pw + self.w..].fill(0.0);
            }
            bottom.fill(0.0);
        }
        xp
    }

    /// `planes[c][ho][wo]` on the wide grid: written into `wide` with zeros in the extra
    /// columns (every element, so it can be reused scratch), or the planes themselves when the
    /// grid is not wider.
    fn to_wide<'a>(&self, planes: &'a [f32], wide: &'a mut [f32]) -> &'a [f32] {
        if !self.wide {
            return planes;
        }
        for (plane, dst) in planes
            .chunks(self.ho * self.wo)
            .zip(wide.chunks_mut(self.n))
        {
            // The last row of a channel stops at `wo` (`n = (ho - 1)·wp + wo`).
            for (row, d) in plane.chunks(self.wo).zip(dst.chunks_mut(self.wp)) {
                d[..self.wo].copy_from_slice(row);
                d[self.wo..].fill(0.0);
            }
        }
        wide
    }

    /// The outputs of the wide grid `wide[c][n]` into `planes[c][ho][wo]`.
    fn crop_wide(&self, wide: &[f32], planes: &mut [f32]) {
        for (c, plane) in planes.chunks_mut(self.ho * self.wo).enumerate() {
            for (oy, row) in plane.chunks_mut(self.wo).enumerate() {
                row.copy_from_slice(&wide[c * self.n + oy * self.wp..][..self.wo]);
            }
        }
    }
}

/// Any stride: `y[Cout, L] = W[Cout, K] · col[K, L]` over an im2col buffer of a group of images
/// (`L` = images x P). Planes under [`SHIFTED_MIN_PLANE`] are one GEMM for the group, through a
/// `[Cout, L]` buffer copied out per image; larger ones are written straight into each image.
fn via_im2col(
    g: &Conv2dGeom,
    x: &[f32],
    w: &[f32],
    r: Range<usize>,
    ys: &mut [f32],
    parallelism: Parallelism,
) {
    let p = g.plane_out();
    let k = g.k_dim();
    let per_img = g.c_out * p;
    let step = g.images_per_col();
    let cap = step.min(r.len()) * p;
    // Both written whole (im2col writes the zeros of the padding; GEMM overwrites).
    let mut col = Scratch::new(k * cap);
    let grouped = p < SHIFTED_MIN_PLANE && r.len() > 1;
    let mut y_group = Scratch::new(if grouped { g.c_out * cap } else { 0 });
    for sub in steps(r.clone(), step) {
        let l = sub.len() * p;
        im2col(x, g, sub.clone(), &mut col[..k * l]);
        if grouped {
            let y_group = &mut y_group[..g.c_out * l];
            matmul(
                parallelism,
                g.c_out,
                l,
                k,
                y_group,
                l,
                false,
                w,
                k,
                1,
                &col,
                l,
                1,
            );
            for (j, img) in sub.clone().enumerate() {
                let out = &mut ys[(img - r.start) * per_img..][..per_img];
                for (co, plane) in out.chunks_mut(p).enumerate() {
                    plane.copy_from_slice(&y_group[co * l + j * p..][..p]);
                }
            }
            continue;
        }
        for (j, img) in sub.clone().enumerate() {
            let out = &mut ys[(img - r.start) * per_img..][..per_img];
            let rhs = &col[j * p..k * l];
            matmul(
                parallelism,
                g.c_out,
                p,
                k,
                out,
                p,
                false,
                w,
                k,
                1,
                rhs,
                l,
                1,
            );
        }
    }
}
