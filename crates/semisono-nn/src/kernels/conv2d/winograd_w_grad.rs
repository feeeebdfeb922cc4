//! Winograd F(2x2, 3x3) for the weight gradient of 3x3 stride-1 convolutions.
//!
//! The forward of [`super::winograd`] is `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` per 2x2 output tile.
//! Differentiating `Σ dY·Y` by the weights `g` gives, per tile, `dW = Gᵀ [(A dY Aᵀ) ⊙ (Bᵀ d B)] G`,
//! and the sum over tiles can be taken before `Gᵀ · G`: 16 GEMMs
//! `M_ξ[Cout, Cin] = Σ_tiles E_ξ[Cout, tile] · V_ξ[Cin, tile]` (`E = A dY Aᵀ`, `V = Bᵀ d B`, the
//! forward's input transform), then `dW = Gᵀ M G` once per weight: 16 products per tile (4
//! outputs) and channel pair where the tap GEMMs take 36.
//!
//! Blocks of tile rows go through the images in order, each ξ's GEMM on one thread into its own
//! accumulator: every sum has the same order on any thread count (bit-identical weights).

use gemm::Parallelism;
use rayon::prelude::*;

use super::winograd::{padded, transform_input, BLOCK_BUDGET, PAD, XI};
use super::{matmul, Conv2dGeom};
use crate::kernels::{zeroed, Scratch};

/// Fewest input and output channels each side that take this path.
const MIN_CHANNELS: usize = 32;
/// Smallest output plane (Ho·Wo) that takes this path: the GEMMs' depth is at most one image's
/// tiles (64 at 16x16); smaller planes were not measured and keep the tap GEMMs.
const MIN_PLANE: usize = 16 * 16;

/// Whether the weight gradient takes the Winograd path: 3x3, stride 1, no dilation, padding at
/// most 2, at least [`MIN_CHANNELS`] each side, an output plane of at least [`MIN_PLANE`].
pub(super) fn suits(g: &Conv2dGeom) -> bool {
    g.kernel == [3, 3]
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && g.padding[0] <= 2
        && g.padding[1] <= 2
        && g.c_in >= MIN_CHANNELS
        && g.c_out >= MIN_CHANNELS
        && g.plane_out() >= MIN_PLANE
}

/// Tiles a block should hold (the GEMMs' depth) where [`MAX_BUDGET`] allows.
const MIN_DEPTH: usize = 512;
/// Most floats of transformed input and output gradient one block may take (32 MiB).
const MAX_BUDGET: usize = 8 << 20;

/// `dW[Cout, Cin, 3, 3]` from `x[N, Cin, H, W]` and `dy[N, Cout, Ho, Wo]`.
pub(super) fn w_grad(g: &Conv2dGeom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert!(suits(g));
    // Each block adds its product to all of M (16·Cout·Cin): a deeper block means fewer passes
    // over it. 1024 -> 1024 at 28², batch 8: 407 ms with 64-tile blocks, 359 ms with 256.
    let budget = (XI * (g.c_in + g.c_out) * MIN_DEPTH).clamp(BLOCK_BUDGET, MAX_BUDGET);
    w_grad_in_blocks(g, x, dy, budget)
}

/// [`w_grad`] with tile rows in blocks of at most `budget` transformed values (at least one row).
fn w_grad_in_blocks(g: &Conv2dGeom, x: &[f32], dy: &[f32], budget: usize) -> Vec<f32> {
    let [ho, wo] = g.out_hw();
    let tiles = [ho.div_ceil(2), wo.div_ceil(2)];
    let rows_per_block = (budget / (XI * (g.c_in + g.c_out) * tiles[1])).clamp(1, tiles[0]);
    let most = padded(rows_per_block * tiles[1]);
    // Both written whole (up to their padding) before they are read.
    let mut v = Scratch::new(g.c_in * (XI * most + PAD));
    let mut e = Scratch::new(g.c_out * (XI * most + PAD));
    let mut m = zeroed::<f32>(XI * g.c_out * g.c_in);
    let (in_plane, out_plane) = (g.h_in * g.w_in, ho * wo);
    let mut accumulate = false;
    for img in 0..g.batch {
        let image = &x[img * g.c_in * in_plane..][..g.c_in * in_plane];
        let grad = &dy[img * g.c_out * out_plane..][..g.c_out * out_plane];
        for ty0 in (0..tiles[0]).step_by(rows_per_block) {
            let rows = ty0..(ty0 + rows_per_block).min(tiles[0]);
            let t = rows.len() * tiles[1];
            // ξ rows `ts` apart, channels `cs` apart: see [`padded`].
            let ts = padded(t);
            let cs = XI * ts + PAD;
            let (v, e) = (&mut v[..g.c_in * cs], &mut e[..g.c_out * cs]);
            v.par_chunks_mut(cs).enumerate().for_each(|(ci, dst)| {
                let plane = &image[ci * in_plane..][..in_plane];
                transform_input(plane, g, tiles[1], rows.clone(), ts, dst);
            });
            e.par_chunks_mut(cs).enumerate().for_each(|(co, dst)| {
                let plane = &grad[co * out_plane..][..out_plane];
                transform_output_grad(plane, [ho, wo], tiles[1], rows.clone(), ts, dst);
            });
            m.par_chunks_mut(g.c_out * g.c_in)
                .enumerate()
                .for_each(|(xi, m_xi)| {
                    // M_ξ[Cout, Cin] (+)= E_ξ[Cout, t] · V_ξ[Cin, t]ᵀ
                    matmul(
                        Parallelism::None,
                        g.c_out,
                        g.c_in,
                        t,
                        m_xi,
                        g.c_in,
                        accumulate,
                        &e[xi * ts..],
                        cs,
                        1,
                        &v[xi * ts..],
                        1,
                        cs,
                    );
                });
            accumulate = true;
        }
    }
    let pair = g.c_out * g.c_in;
    let mut dw = zeroed::<f32>(pair * 9);
    dw.par_chunks_mut(9).enumerate().for_each(|(at, out)| {
        let p: [f32; XI] = std::array::from_fn(|xi| m[xi * pair + at]);
        // Gᵀ on the columns, then G on the rows: p ↦ [p0 + (p1+p2)/2, (p1−p2)/2, (p1+p2)/2 + p3].
        let gt = |[a, b, c, d]: [f32; 4]| [a + (b + c) * 0.5, (b - c) * 0.5, (b + c) * 0.5 + d];
        let columns: [[f32; 3]; 4] =
            std::array::from_fn(|c| gt([p[c], p[4 + c], p[8 + c], p[12 + c]]));
        for ky in 0..3 {
            let row = gt([
                columns[0][ky],
                columns[1][ky],
                columns[2][ky],
                columns[3][ky],
            ]);
            out[ky * 3..][..3].copy_from_slice(&row);
        }
    });
    dw
}

/// `E[ξ][tile]` (`dst`, `XI` rows `stride` apart of the block's tiles) of one output-gradient plane
/// for tile rows `rows`: `A dY Aᵀ` of each 2x2 block `dY` at `(2ty, 2tx)`, zero past the plane's
/// edge.
fn transform_output_grad(
    plane: &[f32],
    [ho, wo]: [usize; 2],
    tiles_x: usize,
    rows: std::ops::Range<usize>,
    stride: usize,
    dst: &mut [f32],
) {
    let t = stride;
    let at = |y: usize, x: usize| {
        if y < ho && x < wo {
            plane[y * wo + x]
        } else {
            0.0
        }
    };
    for (k, ty) in rows.enumerate() {
        for tx in 0..tiles_x {
            let (y, x) = (2 * ty, 2 * tx);
            let [a, b, c, d] = [at(y, x), at(y, x + 1), at(y + 1, x), at(y + 1, x + 1)];
            // A on the rows: [a, b], [a+c, b+d], [a−c, b−d], [−c, −d]; Aᵀ on each: [p, p+q, p−q, −q].
            let rows4 = [[a, b], [a + c, b + d], [a - c, b - d], [-c, -d]];
            let tile = k * tiles_x + tx;
            for (i, [p, q]) in rows4.into_iter().enumerate() {
                for (j, value) in [p, p + q, p - q, -q].into_iter().enumerate() {
                    dst[(i * 4 + j) * t + tile] = value;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::winograd::tests::{assert_near, conv3x3, random};
    use super::*;
    use crate::kernels::with_threads;

    /// The weight gradient by its definition in f64, and Σ|dy·x| per weight (the scale of its
    /// rounding error).
    fn reference(g: &Conv2dGeom, x: &[f32], dy: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let [ho, wo] = g.out_hw();
        let (mut dw, mut mag) = (vec![0.0; g.w_len()], vec![0.0; g.w_len()]);
        for (at, (dw, mag)) in dw.iter_mut().zip(&mut mag).enumerate() {
            let (co, ci, k) = (at / (9 * g.c_in), at / 9 % g.c_in, at % 9);
            for n in 0..g.batch {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let iy = (oy + k / 3).checked_sub(g.padding[0]);
                        let ix = (ox + k % 3).checked_sub(g.padding[1]);
                        let (Some(iy), Some(ix)) = (iy, ix) else {
                            continue;
                        };
                        if iy >= g.h_in || ix >= g.w_in {
                            continue;
                        }
                        let xv = x[((n * g.c_in + ci) * g.h_in + iy) * g.w_in + ix];
                        let gv = dy[((n * g.c_out + co) * ho + oy) * wo + ox];
                        let p = f64::from(xv) * f64::from(gv);
                        *dw += p;
                        *mag += p.abs();
                    }
                }
            }
        }
        (dw, mag)
    }

    /// Against the definition: paddings 0-2 on odd and even, non-square planes (ragged last
    /// tiles), whole images and one tile row per block; bit for bit alike on 1-3 threads.
    #[test]
    fn matches_the_definition_on_any_thread_count() {
        for shape in [
            [32, 40, 17, 16, 1],
            [40, 32, 18, 19, 0],
            [33, 32, 15, 17, 2],
        ] {
            let g = conv3x3(shape);
            assert!(suits(&g));
            let x = random(g.x_len(), 3);
            let dy = random(g.y_len(), 4);
            let (want, mag) = reference(&g, &x, &dy);
            for budget in [BLOCK_BUDGET, 1] {
                let one = with_threads(1, || w_grad_in_blocks(&g, &x, &dy, budget));
                assert_near(&one, &want, &mag, &format!("{g:?} budget {budget}"));
                for threads in [2, 3] {
                    let got = with_threads(threads, || w_grad_in_blocks(&g, &x, &dy, budget));
                    assert!(
                        one.iter()
                            .zip(&got)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{g:?} budget {budget}: {threads} threads"
                    );
                }
            }
        }
    }

    #[test]
    fn takes_3x3_stride_1_convolutions_with_planes_of_16x16() {
        let g = Conv2dGeom {
            batch: 1,
            c_in: 32,
            h_in: 16,
            w_in: 16,
            c_out: 32,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
        };
        assert!(suits(&g));
        assert!(!suits(&Conv2dGeom { c_in: 31, ..g }));
        assert!(!suits(&Conv2dGeom { c_out: 16, ..g }));
        assert!(
            !suits(&Conv2dGeom {
                padding: [0, 0],
                ..g
            }),
            "a 14x14 output"
        );
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
    }
}
