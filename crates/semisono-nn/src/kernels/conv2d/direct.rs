//! Direct stride-1 convolution on the wide grid of [`super::forward`], for CPUs with AVX-512.
//!
//! The tap GEMMs of the stride-1 path pack the shifted image once per tap and read and write the
//! whole output once per tap (9 times for a 3x3). Here one register tile of `ROWS` output channels
//! x `COLS` output columns accumulates over every input channel and tap before it is stored once,
//! and the image is read in place (unaligned loads at each tap's offset), so nothing is packed
//! but the weights, once per call. Each output is summed in the same order (input channel, then
//! tap) whatever the threads, so results do not depend on the thread count.

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

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
    static CPU: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let cpu = *CPU.get_or_init(|| {
        let wanted = std::env::var("SEMISONO_DIRECT_CONV").map_or(true, |v| v != "0");
        wanted && cpu_has_avx512()
    });
    cpu && ENABLED.load(Ordering::Relaxed)
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
    available() && g.kernel[0] * g.kernel[1] > 1 && g.c_out >= ROWS
}

#[cfg(target_arch = "x86_64")]
fn cpu_has_avx512() -> bool {
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

/// `dst[co][q] = Σ_ci Σ_t W[co, ci, t] · src[ci·plane + q + offsets[t]]` for `q < n` (row stride
/// `n`). `parallel`: split the output channels over rayon (one image alone); otherwise serial.
pub(super) fn conv(
    w: &PackedWeights,
    src: &[f32],
    plane: usize,
    offsets: &[usize],
    n: usize,
    dst: &mut [f32],
    parallel: bool,
) {
    assert!(available(), "direct conv called without AVX-512");
    assert_eq!(offsets.len(), w.taps, "direct conv: taps");
    assert!(dst.len() >= w.c_out * n, "direct conv: output length");
    if n == 0 || w.c_out == 0 {
        return;
    }
    let reach = offsets.iter().max().copied().unwrap_or(0);
    assert!(
        (w.c_in - 1) * plane + reach + n <= src.len(),
        "direct conv: a tap reads past the image"
    );
    let block = w.c_in * w.taps * ROWS;
    let run = |(b, rows): (usize, &mut [f32])| {
        let weights = &w.data[b * block..][..block];
        // SAFETY: AVX-512F is there (`available`); the assert above keeps every load of `src`
        // (columns `< n` of each tap, masked past `n`) in range; stores stay in `rows`.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx512::rows(src, plane, w.c_in, offsets, weights, rows, n)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (weights, rows);
    };
    let dst = &mut dst[..w.c_out * n];
    if parallel {
        dst.par_chunks_mut(ROWS * n).enumerate().for_each(run);
    } else {
        dst.chunks_mut(ROWS * n).enumerate().for_each(run);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{CHANNEL_CHUNK, COLS, LANES, ROWS, VECS};

    /// One block of up to `ROWS` output channels (`out.len() / n` rows), all columns: input
    /// channels in chunks of [`CHANNEL_CHUNK`], each swept over every
    /// column tile, so a chunk's weights and the image rows its taps read stay in L1 while a
    /// tile accumulates.
    ///
    /// # Safety
    /// AVX-512F; `src` holds every column `< n` of every tap of every input channel.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn rows(
        src: &[f32],
        plane: usize,
        c_in: usize,
        offsets: &[usize],
        weights: &[f32],
        out: &mut [f32],
        n: usize,
    ) {
        let rows = out.len() / n;
        let tail = n % COLS;
        let tail_masks: [u16; VECS] = std::array::from_fn(|v| {
            let lanes = tail.saturating_sub(v * LANES).min(LANES);
            ((1u32 << lanes) - 1) as u16
        });
        let per_channel = offsets.len() * ROWS;
        for c0 in (0..c_in).step_by(CHANNEL_CHUNK) {
            let chunk = Chunk {
                src: &src[c0 * plane..],
                plane,
                channels: CHANNEL_CHUNK.min(c_in - c0),
                offsets,
                weights: &weights[c0 * per_channel..],
                accumulate: c0 > 0,
            };
            let mut q = 0;
            while q + COLS <= n {
                tile::<true>(&chunk, out, n, rows, q, [!0; VECS]);
                q += COLS;
            }
            if q < n {
                tile::<false>(&chunk, out, n, rows, q, tail_masks);
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
        /// Add to the outputs (a later chunk) rather than overwrite them.
        accumulate: bool,
    }

    /// Columns `q .. q + COLS` (masked by `masks` unless `FULL`) of `rows` output channels,
    /// over the chunk's input channels.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const FULL: bool>(
        chunk: &Chunk,
        out: &mut [f32],
        n: usize,
        rows: usize,
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
        let dst = out.as_mut_ptr().add(q);
        let mut acc = [[_mm512_setzero_ps(); VECS]; ROWS];
        if chunk.accumulate {
            for (j, row) in acc.iter_mut().enumerate().take(rows) {
                for (v, a) in row.iter_mut().enumerate() {
                    *a = load(dst.add(j * n), v);
                }
            }
        }
        let base = chunk.src.as_ptr().add(q);
        let mut w = chunk.weights.as_ptr();
        for ci in 0..chunk.channels {
            let channel = base.add(ci * chunk.plane);
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
        for (j, row) in acc.iter().enumerate().take(rows) {
            for (v, a) in row.iter().enumerate() {
                let p = dst.add(j * n + v * LANES);
                if FULL {
                    _mm512_storeu_ps(p, *a);
                } else {
                    _mm512_mask_storeu_ps(p, masks[v], *a);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct kernel against a plain triple loop, on shapes with a partial channel block
    /// and a masked column tail.
    #[test]
    fn direct_matches_a_scalar_loop() {
        if !available() {
            eprintln!("no AVX-512: direct conv not tested here");
            return;
        }
        for (c_out, c_in, taps, n, plane) in [
            (13, 5, 9, 100, 140),
            (8, 3, 1, 48, 60),
            (3, 2, 4, 7, 20),
            (9, 70, 9, 97, 130),
        ] {
            let offsets: Vec<usize> = (0..taps).map(|t| (t * 7) % 13).collect();
            let reach = offsets.iter().max().unwrap();
            let src: Vec<f32> = (0..(c_in - 1) * plane + reach + n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
                .collect();
            let w: Vec<f32> = (0..c_out * c_in * taps)
                .map(|i| ((i * 53 % 89) as f32 - 44.0) / 31.0)
                .collect();
            let mut expected = vec![0.0f64; c_out * n];
            for co in 0..c_out {
                for q in 0..n {
                    for ci in 0..c_in {
                        for (t, off) in offsets.iter().enumerate() {
                            expected[co * n + q] += w[(co * c_in + ci) * taps + t] as f64
                                * src[ci * plane + q + off] as f64;
                        }
                    }
                }
            }
            let packed = PackedWeights::new(&w, c_out, c_in, taps);
            for parallel in [false, true] {
                let mut got = vec![f32::NAN; c_out * n + 3];
                conv(&packed, &src, plane, &offsets, n, &mut got, parallel);
                for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                    assert!(
                        (*g as f64 - e).abs() < 1e-4 * (1.0 + e.abs()),
                        "{i}: {g} vs {e}"
                    );
                }
                assert!(
                    got[c_out * n..].iter().all(|v| v.is_nan()),
                    "wrote past the output"
                );
            }
        }
    }
}
