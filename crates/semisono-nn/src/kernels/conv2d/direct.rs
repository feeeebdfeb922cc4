//! Direct stride-1 convolution on the wide grid of [`super::forward`], for CPUs with AVX-512.
//!
//! The tap GEMMs of the stride-1 path pack the shifted image once per tap and read and write the
//! whole output once per tap (9 times for a 3x3). Here one register tile of `ROWS` output channels
//! x `COLS` output columns accumulates over every input channel and tap before it is stored once,
//! and the image is read in place (unaligned loads at each tap's offset), so nothing is packed
//! but the weights, once per call. The tile is stored straight into the NCHW output with the
//! epilogue (scale, shift, activation) applied in registers. Each output is summed in the same
//! order (input channel, then tap) whatever the threads, so results do not depend on the thread
//! count; the order differs from the GEMMs', so the last bits do too.

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use super::forward::WideGrid;
use super::Epilogue;

/// f32 lanes of one AVX-512 register.
const LANES: usize = 16;
/// Output channels per register tile.
const ROWS: usize = 8;
/// Registers per tile row: `ROWS x VECS` accumulators, `VECS` image loads and one broadcast
/// weight stay within the 32 vector registers. (8 x 3 beat 6 x 4 and 12 x 2 on every U-Net
/// shape, by 0-15%.)
const VECS: usize = 3;
/// Output columns per register tile.
const COLS: usize = VECS * LANES;
/// Input channels per sweep over the tiles: a 3x3 chunk's weights are 9 KiB.
const CHANNEL_CHUNK: usize = 32;

/// Whether this CPU runs the direct kernel (AVX-512F, checked once) and it is not switched off,
/// by [`set_enabled`] or `SEMISONO_DIRECT_CONV=0` (for comparisons with the GEMM path).
pub(super) fn available() -> bool {
    static WANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let wanted =
        *WANTED.get_or_init(|| std::env::var("SEMISONO_DIRECT_CONV").map_or(true, |v| v != "0"));
    wanted && cpu_has_avx512() && ENABLED.load(Ordering::Relaxed)
}

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Switches the direct stride-1 kernel on or off for the whole process (benchmarks and tests
/// compare it with the GEMM path this way); returns the previous setting. Without AVX-512 it
/// stays off whatever this says.
pub fn set_enabled(on: bool) -> bool {
    ENABLED.swap(on, Ordering::Relaxed)
}

/// Whether a stride-1 convolution takes the direct kernel: spatial kernels only (a 1x1 is one
/// plain GEMM already) with at least one full tile of output channels.
pub(super) fn suits(g: &super::Conv2dGeom) -> bool {
    available()
        && g.c_in > 0
        && g.kernel[0] * g.kernel[1] > 1
        && g.c_out >= ROWS
        && fits(g.w_in + 2 * g.padding[1])
}

#[cfg(target_arch = "x86_64")]
fn cpu_has_avx512() -> bool {
    // Cached by std after the first call.
    std::arch::is_x86_feature_detected!("avx512f")
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has_avx512() -> bool {
    false
}

/// Weights `w[Cout][Cin][taps]` rearranged for the tiles: `[Cout / ROWS][Cin][taps][ROWS]`, the
/// last block's missing channels zero.
pub(super) struct PackedWeights {
    data: Vec<f32>,
    c_out: usize,
    c_in: usize,
    taps: usize,
}

impl PackedWeights {
    pub(super) fn new(w: &[f32], c_out: usize, c_in: usize, taps: usize) -> Self {
        assert_eq!(w.len(), c_out * c_in * taps, "direct conv: weight length");
        let block = c_in * taps * ROWS;
        let mut data = vec![0.0f32; c_out.div_ceil(ROWS) * block];
        data.par_chunks_mut(block).enumerate().for_each(|(b, dst)| {
            for j in 0..ROWS.min(c_out - b * ROWS) {
                let src = &w[(b * ROWS + j) * c_in * taps..][..c_in * taps];
                for (k, v) in src.iter().enumerate() {
                    dst[k * ROWS + j] = *v;
                }
            }
        });
        Self {
            data,
            c_out,
            c_in,
            taps,
        }
    }
}

/// Whether a grid row is wide enough for the stores: a register of columns then spans at most
/// two output rows.
fn fits(wp: usize) -> bool {
    wp >= LANES
}

/// `out[co][oy][ox] = epilogue(Σ_ci Σ_t W[co, ci, t] · src[ci·plane + q + offsets[t]])` on the
/// wide grid `at` (`q = oy·wp + ox`), `src` the padded image. `parallel`: split the output
/// channels over rayon (one image alone); otherwise serial.
pub(super) fn conv(
    w: &PackedWeights,
    src: &[f32],
    at: &WideGrid,
    epilogue: &Epilogue,
    out: &mut [f32],
    parallel: bool,
) {
    // The CPU, not `available()`: a call already begun finishes if the switch flips meanwhile.
    assert!(cpu_has_avx512(), "direct conv called without AVX-512");
    assert!(fits(at.wp) && at.wo <= at.wp, "direct conv: grid rows");
    assert_eq!(at.offsets.len(), w.taps, "direct conv: taps");
    let plane_out = at.ho * at.wo;
    assert_eq!(out.len(), w.c_out * plane_out, "direct conv: output length");
    for v in [epilogue.scale, epilogue.shift].into_iter().flatten() {
        assert_eq!(v.len(), w.c_out, "direct conv: epilogue length");
    }
    if plane_out == 0 || w.c_out == 0 {
        return;
    }
    let reach = at.offsets.iter().max().copied().unwrap_or(0);
    assert!(
        (w.c_in - 1) * at.plane + reach + at.n <= src.len(),
        "direct conv: a tap reads past the image"
    );
    let block = w.c_in * w.taps * ROWS;
    let run = |(b, rows): (usize, &mut [f32])| {
        let weights = &w.data[b * block..][..block];
        let channels = b * ROWS..b * ROWS + rows.len() / plane_out;
        // SAFETY: AVX-512F is there (asserted above); the assert above keeps every load of `src`
        // (grid columns `< n` of each tap, masked past `n`) in range; stores go to the outputs
        // of `rows` only.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx512::rows(src, at, w.c_in, weights, epilogue, channels, rows)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (weights, channels, rows);
    };
    if parallel {
        out.par_chunks_mut(ROWS * plane_out)
            .enumerate()
            .for_each(run);
    } else {
        out.chunks_mut(ROWS * plane_out).enumerate().for_each(run);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::{WideGrid, CHANNEL_CHUNK, COLS, LANES, ROWS, VECS};
    use crate::kernels::conv2d::{Activation, Epilogue};

    /// One block of output channels `channels` (at most `ROWS`, their planes in `out`), all
    /// columns: input channels in chunks of [`CHANNEL_CHUNK`], each swept over every column
    /// tile, so a chunk's weights and the image rows its taps read stay in L1 while a tile
    /// accumulates; the last chunk applies the epilogue before it stores.
    ///
    /// # Safety
    /// AVX-512F; `src` holds every grid column `< n` of every tap of every input channel;
    /// `at.wp >= LANES`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn rows(
        src: &[f32],
        at: &WideGrid,
        c_in: usize,
        weights: &[f32],
        epilogue: &Epilogue,
        channels: Range<usize>,
        out: &mut [f32],
    ) {
        let n = at.n;
        let tail = n % COLS;
        let tail_masks: [u16; VECS] = std::array::from_fn(|v| {
            let lanes = tail.saturating_sub(v * LANES).min(LANES);
            ((1u32 << lanes) - 1) as u16
        });
        let per_channel = at.offsets.len() * ROWS;
        let finish = (!epilogue.is_identity()).then(|| Finish::new(epilogue, channels));
        for c0 in (0..c_in).step_by(CHANNEL_CHUNK) {
            let last = c0 + CHANNEL_CHUNK >= c_in;
            let chunk = Chunk {
                src: &src[c0 * at.plane..],
                plane: at.plane,
                channels: CHANNEL_CHUNK.min(c_in - c0),
                offsets: &at.offsets,
                weights: &weights[c0 * per_channel..],
                accumulate: c0 > 0,
                finish: finish.as_ref().filter(|_| last),
            };
            let mut q = 0;
            while q + COLS <= n {
                tile::<true>(&chunk, at, out, q, [!0; VECS]);
                q += COLS;
            }
            if q < n {
                tile::<false>(&chunk, at, out, q, tail_masks);
            }
        }
    }

    /// The input channels one sweep over the tiles reads.
    struct Chunk<'a> {
        /// From the chunk's first channel on.
        src: &'a [f32],
        plane: usize,
        channels: usize,
        offsets: &'a [usize],
        /// From the chunk's first channel on, `[channel][tap][ROWS]`.
        weights: &'a [f32],
        /// Add to the stored partial sums (a later chunk) rather than start from zero.
        accumulate: bool,
        /// The epilogue, on the last chunk.
        finish: Option<&'a Finish>,
    }

    /// The epilogue of one block's rows: `activation(scale·y + shift)`, as the scalar
    /// [`Epilogue`] computes it (a product, then a sum: two roundings).
    struct Finish {
        scale: [f32; ROWS],
        shift: [f32; ROWS],
        activation: Activation,
    }

    impl Finish {
        fn new(epilogue: &Epilogue, channels: Range<usize>) -> Self {
            let rows = channels.len();
            let pick = |v: Option<&[f32]>, default: f32| {
                let mut out = [default; ROWS];
                if let Some(v) = v {
                    out[..rows].copy_from_slice(&v[channels.clone()]);
                }
                out
            };
            Self {
                scale: pick(epilogue.scale, 1.0),
                shift: pick(epilogue.shift, 0.0),
                activation: epilogue.activation,
            }
        }
    }

    /// Where the lanes of one register of grid columns `q ..` go in an output plane: lanes of
    /// output row `r` to `r·wo + ox`, i.e. `q + lane − r·(wp − wo)`; a register spans at most two
    /// rows (`wp >= LANES`); gap columns (`ox ≥ wo`) and columns `≥ valid` are masked off.
    #[inline]
    fn segments(q: usize, valid: u16, at: &WideGrid) -> [(u16, isize); 2] {
        let row = q / at.wp;
        let col = q % at.wp;
        let gap = (at.wp - at.wo) as isize;
        let first = ((1u32 << (at.wo.saturating_sub(col)).min(LANES)) - 1) as u16;
        // The next row starts at lane `wp − col` (≥ 1); its `wo` outputs follow.
        let start = at.wp - col;
        let second = if start < LANES {
            let len = at.wo.min(LANES - start);
            ((((1u32 << len) - 1) << start) & 0xFFFF) as u16
        } else {
            0
        };
        [
            (first & valid, q as isize - row as isize * gap),
            (second & valid, q as isize - (row as isize + 1) * gap),
        ]
    }

    /// Columns `q .. q + COLS` (masked by `masks` unless `FULL`) of the block's output rows,
    /// over the chunk's input channels.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const FULL: bool>(
        chunk: &Chunk,
        at: &WideGrid,
        out: &mut [f32],
        q: usize,
        masks: [u16; VECS],
    ) {
        let load = |p: *const f32, v: usize| {
            if FULL {
                _mm512_loadu_ps(p.add(v * LANES))
            } else {
                _mm512_maskz_loadu_ps(masks[v], p.add(v * LANES))
            }
        };
        let plane_out = at.ho * at.wo;
        let rows = out.len() / plane_out;
        let segments: [[(u16, isize); 2]; VECS] =
            std::array::from_fn(|v| segments(q + v * LANES, masks[v], at));
        // Lane 0's output address of a segment; masked-off lanes (and whole empty segments,
        // whose offset may fall outside `out`) are never touched.
        let base = out.as_mut_ptr();
        let at_row = |j: usize, (_, offset): (u16, isize)| {
            base.wrapping_offset((j * plane_out) as isize + offset)
        };
        // The accumulators pass through `staged` on their way from and to `out`: the row
        // loops with masks and the epilogue are not unrolled, and indexing `acc` in them kept
        // it in memory (a store per FMA).
        let mut staged = [0.0f32; ROWS * COLS];
        let slot = |j: usize, v: usize| (j * VECS + v) * LANES;
        let mut acc = [[_mm512_setzero_ps(); VECS]; ROWS];
        if chunk.accumulate {
            for j in 0..rows {
                for (v, &[s0, s1]) in segments.iter().enumerate() {
                    let a = _mm512_maskz_loadu_ps(s0.0, at_row(j, s0));
                    let a = _mm512_mask_loadu_ps(a, s1.0, at_row(j, s1));
                    _mm512_storeu_ps(staged.as_mut_ptr().add(slot(j, v)), a);
                }
            }
            for (j, row) in acc.iter_mut().enumerate() {
                for (v, a) in row.iter_mut().enumerate() {
                    *a = _mm512_loadu_ps(staged.as_ptr().add(slot(j, v)));
                }
            }
        }
        let src = chunk.src.as_ptr().add(q);
        let mut w = chunk.weights.as_ptr();
        for ci in 0..chunk.channels {
            let channel = src.add(ci * chunk.plane);
            for &off in chunk.offsets {
                let p = channel.add(off);
                let x: [__m512; VECS] = std::array::from_fn(|v| load(p, v));
                for row in acc.iter_mut() {
                    let wj = _mm512_set1_ps(*w);
                    w = w.add(1);
                    for (a, xv) in row.iter_mut().zip(&x) {
                        *a = _mm512_fmadd_ps(wj, *xv, *a);
                    }
                }
            }
        }
        for (j, row) in acc.iter().enumerate() {
            for (v, a) in row.iter().enumerate() {
                _mm512_storeu_ps(staged.as_mut_ptr().add(slot(j, v)), *a);
            }
        }
        for j in 0..rows {
            for (v, segs) in segments.iter().enumerate() {
                let a = _mm512_loadu_ps(staged.as_ptr().add(slot(j, v)));
                let a = match chunk.finish {
                    None => a,
                    Some(finish) => {
                        let scale = _mm512_set1_ps(finish.scale[j]);
                        let y = _mm512_mul_ps(a, scale);
                        let y = _mm512_add_ps(y, _mm512_set1_ps(finish.shift[j]));
                        let zero = _mm512_setzero_ps();
                        match finish.activation {
                            Activation::Identity => y,
                            // NaN or positive: kept; else +0 (`relu_value`).
                            Activation::Relu => {
                                let keep = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(y, zero)
                                    | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(y, y);
                                _mm512_maskz_mov_ps(keep, y)
                            }
                            Activation::LeakyRelu(slope) => {
                                let keep = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(y, zero);
                                let leaked = _mm512_mul_ps(y, _mm512_set1_ps(slope as f32));
                                _mm512_mask_mov_ps(leaked, keep, y)
                            }
                        }
                    }
                };
                for seg in segs {
                    _mm512_mask_storeu_ps(at_row(j, *seg), seg.0, a);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Activation, Conv2dGeom};
    use super::*;

    /// The direct kernel against the definition of a convolution (f64 sums over the unpadded
    /// image), with an epilogue: partial blocks of output channels, several input-channel
    /// chunks, masked column tails, dilation, a rectangular kernel, both ReLUs; and nothing
    /// written outside the output.
    #[test]
    fn direct_matches_the_definition() {
        if !available() {
            eprintln!("no AVX-512: direct conv not tested here");
            return;
        }
        // (c_out, c_in, h, w, kernel, padding, dilation, activation)
        let cases = [
            (13, 5, 9, 17, [3, 3], [1, 1], [1, 1], Activation::Relu),
            (
                9,
                70,
                12,
                14,
                [3, 5],
                [1, 2],
                [1, 1],
                Activation::LeakyRelu(0.1),
            ),
            (8, 3, 11, 16, [3, 3], [0, 0], [1, 1], Activation::Identity),
            (16, 4, 10, 20, [3, 3], [2, 2], [2, 2], Activation::Relu),
        ];
        for (c_out, c_in, h, w, kernel, padding, dilation, activation) in cases {
            let g = Conv2dGeom {
                batch: 1,
                c_in,
                h_in: h,
                w_in: w,
                c_out,
                kernel,
                stride: [1, 1],
                padding,
                dilation,
            };
            let [ho, wo] = g.out_hw();
            let mut x: Vec<f32> = (0..g.x_len())
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
                .collect();
            // A NaN: the outputs that see it must stay NaN through both ReLUs.
            x[g.x_len() / 2] = f32::NAN;
            let wts: Vec<f32> = (0..g.w_len())
                .map(|i| ((i * 53 % 89) as f32 - 44.0) / 31.0)
                .collect();
            let scale: Vec<f32> = (0..c_out).map(|c| 0.5 + c as f32 / 8.0).collect();
            let shift: Vec<f32> = (0..c_out).map(|c| c as f32 / 3.0 - 2.0).collect();
            let epilogue = Epilogue {
                scale: Some(&scale),
                shift: Some(&shift),
                activation,
            };
            let mut expected = vec![0.0f32; g.y_len()];
            for co in 0..c_out {
                for (oy, ox) in (0..ho).flat_map(|oy| (0..wo).map(move |ox| (oy, ox))) {
                    let mut sum = 0.0f64;
                    for ci in 0..c_in {
                        for (ky, kx) in
                            (0..kernel[0]).flat_map(|a| (0..kernel[1]).map(move |b| (a, b)))
                        {
                            let iy = (oy + ky * dilation[0]) as isize - padding[0] as isize;
                            let ix = (ox + kx * dilation[1]) as isize - padding[1] as isize;
                            if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                                let wv = wts[((co * c_in + ci) * kernel[0] + ky) * kernel[1] + kx];
                                let xv = x[(ci * h + iy as usize) * w + ix as usize];
                                sum += wv as f64 * xv as f64;
                            }
                        }
                    }
                    let v = sum as f32 * scale[co] + shift[co];
                    expected[(co * ho + oy) * wo + ox] = match activation {
                        Activation::Identity => v,
                        Activation::Relu => crate::kernels::activation_op::relu_value(v),
                        Activation::LeakyRelu(s) => {
                            if v >= 0.0 {
                                v
                            } else {
                                s as f32 * v
                            }
                        }
                    };
                }
            }
            let grid = WideGrid::new(&g);
            let mut xp = grid.pad_buffer();
            let src = grid.padded(&x, &mut xp);
            let packed = PackedWeights::new(&wts, c_out, c_in, kernel[0] * kernel[1]);
            for parallel in [false, true] {
                let mut got = vec![f32::NAN; g.y_len() + 6];
                let len = got.len();
                conv(
                    &packed,
                    src,
                    &grid,
                    &epilogue,
                    &mut got[3..len - 3],
                    parallel,
                );
                for (i, (g, e)) in got[3..].iter().zip(&expected).enumerate() {
                    let close = (g - e).abs() < 1e-4 * (1.0 + e.abs());
                    assert!(close || (g.is_nan() && e.is_nan()), "{i}: {g} vs {e}");
                }
                let guards = got[..3].iter().chain(&got[len - 3..]);
                assert!(
                    guards.into_iter().all(|v| v.is_nan()),
                    "wrote outside the output"
                );
            }
        }
    }
}
