//! Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions with many channels (the U-Net decoders'
//! and the ResNet stages' 3x3s, and their input gradients, which are such convolutions too).
//!
//! Each 2x2 block of outputs is computed from a 4x4 block of the padded input with 16 products
//! per (output, input) channel pair instead of 36: `Y = Aᵀ [U ⊙ V] A` with `U = G g Gᵀ` (weights)
//! and `V = Bᵀ d B` (input), summed over input channels as 16 GEMMs
//! `M_ξ[Cout, tiles] = U_ξ[Cout, Cin] · V_ξ[Cin, tiles]`. That is 2.25x fewer multiplications
//! than the direct kernel, for transforms that cost a few additions per value. F(2x2, 3x3)'s
//! matrices hold only 0, ±1 and ±½, so the rounding error stays within a few times that of a
//! direct sum (the tests bound it against an f64 reference).
//!
//! Each output is summed in the same order whatever the thread count (the GEMMs split rows and
//! columns, never the sum), so results do not depend on it.

use std::sync::atomic::{AtomicBool, Ordering};

use gemm::Parallelism;
use rayon::prelude::*;

use super::{matmul, Conv2dGeom};
use crate::kernels::Scratch;

/// Values per transformed tile (4x4).
pub(super) const XI: usize = 16;
/// Floats of transformed input or output one block of tiles may take (16 MiB in all).
pub(super) const BLOCK_BUDGET: usize = 2 << 20;
/// Fewest input and output channels that take this path, and fewest of both together: with
/// fewer, the transforms' passes over memory cost about what the multiplications save (64 -> 64
/// at 32² and 64² measured 0.92-1.0x the direct kernel's speed, 96 -> 64 1.4x; docs/benchmarks.md).
const MIN_CHANNELS: usize = 64;
const MIN_CHANNELS_BOTH: usize = 160;
/// Smallest output plane (Ho·Wo) that takes this path. The weights' transform (16/9 of them, once
/// per call) and the thin per-image GEMMs do not pay below it: batch 8 on two threads, 512 -> 512
/// at 4x4 ran 1.6-4x the time of the kernels it replaces (also with one GEMM spanning several
/// images), 208 -> 208 at 7x7 and 256 -> 256 at 8x8 about even, a lone 8x8 image 1.7-2.4x;
/// 14x14 (Res2Net-101's third stage) 0.65-0.9x.
const MIN_PLANE: usize = 12 * 12;

/// Floats between one channel's transformed tiles and the next's beyond their 16 rows.
pub(super) const PAD: usize = 16;

/// `t` rounded up to an odd multiple of 16 floats (64 bytes). Rows a power of two apart (a 64x64
/// plane has 1024 tiles) map to the same few L1 sets: the transforms write 16 such rows at once
/// and the GEMMs' packing reads 64, and both ran at a fraction of their speed.
pub(super) fn padded(t: usize) -> usize {
    t.div_ceil(32) * 32 + 16
}

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether the Winograd path is on: unless switched off by [`set_enabled`] or
/// `SEMISONO_WINOGRAD=0` (for comparisons with the direct kernel and the GEMMs).
pub(super) fn enabled() -> bool {
    static ENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENV.get_or_init(|| std::env::var("SEMISONO_WINOGRAD").map_or(true, |v| v != "0"))
        && ENABLED.load(Ordering::Relaxed)
}

/// Switches the Winograd path on or off for the whole process; returns the previous setting.
pub fn set_enabled(on: bool) -> bool {
    ENABLED.swap(on, Ordering::Relaxed)
}

/// Whether a convolution takes the Winograd path: 3x3, stride 1, no dilation, padding at most 2
/// (a 4x4 input tile then always overlaps the image), at least [`MIN_CHANNELS`] each side and
/// [`MIN_CHANNELS_BOTH`] together, an output plane of at least [`MIN_PLANE`].
pub(super) fn suits(g: &Conv2dGeom) -> bool {
    g.kernel == [3, 3]
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && g.padding[0] <= 2
        && g.padding[1] <= 2
        && g.c_in >= MIN_CHANNELS
        && g.c_out >= MIN_CHANNELS
        && g.c_in + g.c_out >= MIN_CHANNELS_BOTH
        && g.plane_out() >= MIN_PLANE
}

/// Weights transformed, `U[co][ξ][ci] = (G g_{co,ci} Gᵀ)_ξ`.
pub(super) struct Transformed {
    data: Vec<f32>,
    c_out: usize,
    c_in: usize,
}

impl Transformed {
    pub(super) fn new(w: &[f32], c_out: usize, c_in: usize) -> Self {
        assert_eq!(w.len(), c_out * c_in * 9, "winograd: weight length");
        let mut data = crate::kernels::zeroed::<f32>(c_out * XI * c_in);
        data.par_chunks_mut(XI * c_in)
            .enumerate()
            .for_each(|(co, dst)| {
                for ci in 0..c_in {
                    let g = &w[(co * c_in + ci) * 9..][..9];
                    // G g: rows g0, (g0+g1+g2)/2, (g0−g1+g2)/2, g2; then the same on its rows.
                    let gg: [[f32; 3]; 4] = std::array::from_fn(|r| {
                        std::array::from_fn(|c| {
                            let [a, b, d] = [g[c], g[3 + c], g[6 + c]];
                            match r {
                                0 => a,
                                1 => (a + b + d) * 0.5,
                                2 => (a - b + d) * 0.5,
                                _ => d,
                            }
                        })
                    });
                    for (r, [a, b, d]) in gg.into_iter().enumerate() {
                        let row = [a, (a + b + d) * 0.5, (a - b + d) * 0.5, d];
                        for (c, v) in row.into_iter().enumerate() {
                            dst[(r * 4 + c) * c_in + ci] = v;
                        }
                    }
                }
            });
        Self { data, c_out, c_in }
    }
}

/// One image: `out[Cout][Ho][Wo]` (overwritten) from `image[Cin][H][W]`. With
/// `Parallelism::Rayon` (the image alone) its transforms and GEMMs are split over rayon;
/// otherwise all run on this thread.
pub(super) fn conv(
    u: &Transformed,
    g: &Conv2dGeom,
    image: &[f32],
    out: &mut [f32],
    parallelism: Parallelism,
) {
    conv_in_blocks(u, g, image, out, parallelism, BLOCK_BUDGET);
}

/// [`conv`] with tile rows in blocks of at most `budget` transformed values (at least one row).
fn conv_in_blocks(
    u: &Transformed,
    g: &Conv2dGeom,
    image: &[f32],
    out: &mut [f32],
    parallelism: Parallelism,
    budget: usize,
) {
    assert!(suits(g) && u.c_in == g.c_in && u.c_out == g.c_out);
    let [ho, wo] = g.out_hw();
    assert_eq!(
        image.len(),
        g.c_in * g.h_in * g.w_in,
        "winograd: image length"
    );
    assert_eq!(out.len(), g.c_out * ho * wo, "winograd: output length");
    let parallel = matches!(parallelism, Parallelism::Rayon(_));
    let tiles = [ho.div_ceil(2), wo.div_ceil(2)];
    let rows_per_block = (budget / (XI * g.c_in.max(g.c_out) * tiles[1])).clamp(1, tiles[0]);
    let most = padded(rows_per_block * tiles[1]);
    let mut v = Scratch::new(g.c_in * (XI * most + PAD));
    let mut m = Scratch::new(g.c_out * (XI * most + PAD));
    for ty0 in (0..tiles[0]).step_by(rows_per_block) {
        let rows = ty0..(ty0 + rows_per_block).min(tiles[0]);
        let t = rows.len() * tiles[1];
        // ξ rows `ts` apart, channels `cs` apart: see [`padded`].
        let ts = padded(t);
        let cs = XI * ts + PAD;
        let (v, m) = (&mut v[..g.c_in * cs], &mut m[..g.c_out * cs]);
        let input = |(ci, dst): (usize, &mut [f32])| {
            let plane = &image[ci * g.h_in * g.w_in..][..g.h_in * g.w_in];
            transform_input(plane, g, tiles[1], rows.clone(), ts, dst);
        };
        if parallel {
            v.par_chunks_mut(cs).enumerate().for_each(input);
        } else {
            v.chunks_mut(cs).enumerate().for_each(input);
        }
        for xi in 0..XI {
            // M_ξ[Cout, t] = U_ξ[Cout, Cin] · V_ξ[Cin, t]
            matmul(
                parallelism,
                g.c_out,
                t,
                g.c_in,
                &mut m[xi * ts..],
                cs,
                false,
                &u.data[xi * g.c_in..],
                XI * g.c_in,
                1,
                &v[xi * ts..],
                cs,
                1,
            );
        }
        let output = |(src, plane): (&[f32], &mut [f32])| {
            transform_output(src, ts, [ho, wo], tiles[1], rows.clone(), plane);
        };
        if parallel {
            m.par_chunks(cs)
                .zip(out.par_chunks_mut(ho * wo))
                .for_each(output);
        } else {
            m.chunks(cs).zip(out.chunks_mut(ho * wo)).for_each(output);
        }
    }
}

/// `V[ξ][tile]` (`dst`, `XI` rows `stride` apart of the block's tiles) of one input plane for
/// tile rows `rows`: `Bᵀ d B` of each 4x4 block `d` of the zero-padded plane at `(2ty, 2tx)`.
pub(super) fn transform_input(
    plane: &[f32],
    g: &Conv2dGeom,
    tiles_x: usize,
    rows: std::ops::Range<usize>,
    stride: usize,
    dst: &mut [f32],
) {
    let t = stride;
    let [ph, pw] = g.padding;
    let width = 2 * tiles_x + 2;
    // The 4 padded input rows of a tile row, zero outside the image, and Bᵀ applied to them.
    let mut buf = vec![0.0f32; 4 * width];
    let mut col = vec![0.0f32; 4 * width];
    for (k, ty) in rows.enumerate() {
        for (i, row) in buf.chunks_mut(width).enumerate() {
            row.fill(0.0);
            let Some(y) = (2 * ty + i).checked_sub(ph).filter(|&y| y < g.h_in) else {
                continue;
            };
            let src = &plane[y * g.w_in..][..g.w_in];
            // Padded column c holds image column c − pw.
            let lo = pw.min(width);
            let hi = (pw + g.w_in).min(width);
            if lo < hi {
                row[lo..hi].copy_from_slice(&src[..hi - lo]);
            }
        }
        // Bᵀ on the rows: r0 − r2, r1 + r2, r2 − r1, r1 − r3 (whole rows at once).
        let (r0, r1, r2, r3) = (
            &buf[..width],
            &buf[width..2 * width],
            &buf[2 * width..3 * width],
            &buf[3 * width..],
        );
        for c in 0..width {
            col[c] = r0[c] - r2[c];
            col[width + c] = r1[c] + r2[c];
            col[2 * width + c] = r2[c] - r1[c];
            col[3 * width + c] = r1[c] - r3[c];
        }
        // B on the columns of each tile.
        for i in 0..4 {
            let row = &col[i * width..][..width];
            for tx in 0..tiles_x {
                let [a, b, c, e] = [
                    row[2 * tx],
                    row[2 * tx + 1],
                    row[2 * tx + 2],
                    row[2 * tx + 3],
                ];
                let at = k * tiles_x + tx;
                dst[(i * 4) * t + at] = a - c;
                dst[(i * 4 + 1) * t + at] = b + c;
                dst[(i * 4 + 2) * t + at] = c - b;
                dst[(i * 4 + 3) * t + at] = b - e;
            }
        }
    }
}

/// `Aᵀ m A` of each tile of one output channel (`src` = `M[ξ][tile]`, `XI` rows `t` apart), written
/// to the output plane `[ho][wo]` for tile rows `rows` (outputs past the plane's edge dropped).
fn transform_output(
    src: &[f32],
    t: usize,
    [ho, wo]: [usize; 2],
    tiles_x: usize,
    rows: std::ops::Range<usize>,
    plane: &mut [f32],
) {
    for (k, ty) in rows.enumerate() {
        let m = |xi: usize, tx: usize| src[xi * t + k * tiles_x + tx];
        for tx in 0..tiles_x {
            // Aᵀ on the rows (i), then A on the columns (j): [a0+a1+a2, a1−a2−a3].
            let p: [[f32; 2]; 4] = std::array::from_fn(|i| {
                let [a0, a1, a2, a3] = [
                    m(4 * i, tx),
                    m(4 * i + 1, tx),
                    m(4 * i + 2, tx),
                    m(4 * i + 3, tx),
                ];
                [a0 + a1 + a2, a1 - a2 - a3]
            });
            let columns: [[f32; 2]; 2] =
                std::array::from_fn(|j| [p[0][j] + p[1][j] + p[2][j], p[1][j] - p[2][j] - p[3][j]]);
            for (j, [y0, y1]) in columns.into_iter().enumerate() {
                let ox = 2 * tx + j;
                if ox >= wo {
                    continue;
                }
                plane[2 * ty * wo + ox] = y0;
                if 2 * ty + 1 < ho {
                    plane[(2 * ty + 1) * wo + ox] = y1;
                }
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// `n` values in [-1, 1) from an xorshift generator seeded with `seed`.
    pub(in crate::kernels::conv2d) fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    /// Two images through a 3x3 stride-1 convolution with `pad` on each side.
    pub(in crate::kernels::conv2d) fn conv3x3([c_in, c_out, h, w, pad]: [usize; 5]) -> Conv2dGeom {
        Conv2dGeom {
            batch: 2,
            c_in,
            h_in: h,
            w_in: w,
            c_out,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [pad; 2],
            dilation: [1, 1],
        }
    }

    /// Each of `got` within 2e-6 of the f64 `want`, relative to `mag` (Σ of the terms' magnitudes).
    pub(in crate::kernels::conv2d) fn assert_near(
        got: &[f32],
        want: &[f64],
        mag: &[f64],
        what: &str,
    ) {
        for (i, ((&a, &b), &m)) in got.iter().zip(want).zip(mag).enumerate() {
            let err = (f64::from(a) - b).abs();
            assert!(err <= 2e-6 * m.max(1.0), "{what}: value {i} {a} vs {b}");
        }
    }

    /// The convolution by its definition in f64, and Σ|w·x| per output (the scale of its
    /// rounding error).
    fn reference(g: &Conv2dGeom, x: &[f32], w: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let [ho, wo] = g.out_hw();
        let mut y = vec![0.0; g.y_len()];
        let mut mag = vec![0.0; g.y_len()];
        for n in 0..g.batch {
            for co in 0..g.c_out {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let at = ((n * g.c_out + co) * ho + oy) * wo + ox;
                        for ci in 0..g.c_in {
                            for k in 0..9 {
                                let iy = (oy + k / 3).checked_sub(g.padding[0]);
                                let ix = (ox + k % 3).checked_sub(g.padding[1]);
                                let (Some(iy), Some(ix)) = (iy, ix) else {
                                    continue;
                                };
                                if iy >= g.h_in || ix >= g.w_in {
                                    continue;
                                }
                                let xv = x[((n * g.c_in + ci) * g.h_in + iy) * g.w_in + ix];
                                let p = f64::from(w[(co * g.c_in + ci) * 9 + k]) * f64::from(xv);
                                y[at] += p;
                                mag[at] += p.abs();
                            }
                        }
                    }
                }
            }
        }
        (y, mag)
    }

    /// Against the definition: paddings 0-2 on odd and even, non-square planes (ragged last
    /// tiles), one block of tile rows and one row per block, serial and split over threads
    /// (bit for bit alike).
    #[test]
    fn matches_the_definition_and_does_not_depend_on_blocks_or_threads() {
        for shape in [
            [64, 96, 13, 12, 1],
            [96, 64, 15, 14, 0],
            [64, 100, 11, 10, 2],
        ] {
            let g = conv3x3(shape);
            assert!(suits(&g));
            let x = random(g.x_len(), 1);
            let wt = random(g.w_len(), 2);
            let u = Transformed::new(&wt, g.c_out, g.c_in);
            let (want, mag) = reference(&g, &x, &wt);
            let (in_img, out_img) = (g.x_len() / 2, g.y_len() / 2);
            let mut first: Option<Vec<f32>> = None;
            for (budget, parallelism) in [
                (BLOCK_BUDGET, Parallelism::None),
                (1, Parallelism::None),
                (1, Parallelism::Rayon(2)),
            ] {
                let mut got = vec![f32::NAN; g.y_len()];
                for (img, out) in got.chunks_mut(out_img).enumerate() {
                    let image = &x[img * in_img..][..in_img];
                    conv_in_blocks(&u, &g, image, out, parallelism, budget);
                }
                assert_near(&got, &want, &mag, &format!("{g:?} budget {budget}"));
                match &first {
                    None => first = Some(got),
                    Some(f) => assert!(f.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits())),
                }
            }
        }
    }

    #[test]
    fn takes_only_3x3_stride_1_convolutions_with_enough_channels() {
        let g = Conv2dGeom {
            batch: 1,
            c_in: 64,
            h_in: 12,
            w_in: 12,
            c_out: 96,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
        };
        assert!(suits(&g));
        assert!(!suits(&Conv2dGeom { c_out: 64, ..g }), "64 -> 64");
        assert!(!suits(&Conv2dGeom {
            c_in: 32,
            c_out: 256,
            ..g
        }));
        assert!(!suits(&Conv2dGeom {
            stride: [2, 2],
            ..g
        }));
        assert!(!suits(&Conv2dGeom {
            dilation: [2, 2],
            ..g
        }));
        assert!(!suits(&Conv2dGeom {
            kernel: [1, 1],
            padding: [0, 0],
            ..g
        }));
        assert!(!suits(&Conv2dGeom {
            padding: [3, 3],
            ..g
        }));
        assert!(
            !suits(&Conv2dGeom {
                padding: [0, 0],
                ..g
            }),
            "a 10x10 output"
        );
    }
}
