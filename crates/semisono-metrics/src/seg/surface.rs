//! Surfaces and surface-distance metrics (HD, HD95, ASD, ASSD), MedPy 0.5.2 semantics.
//!
//! - **Surface** of a mask: `mask XOR binary_erosion(mask, 4-cross, border_value=0)`, i.e. a
//!   foreground pixel that is on the image edge or has a 4-neighbour in the background. A full
//!   image's surface is its outer frame; a 1-pixel-wide line is all surface.
//! - **Directed distances** `d(A→B)`: for each surface pixel of A in row-major order, the distance
//!   (with physical spacing) to the nearest surface pixel of B, from an exact EDT ([`super::edt`]).
//! - `hd = max(max d(A→B), max d(B→A))`;
//!   `hd95 = np.percentile(concat(d(A→B), d(B→A)), 95)` (linear, over the **pooled** list);
//!   `asd = mean d(A→B)` (asymmetric), `asd_reverse = mean d(B→A)`;
//!   `assd = mean(concat(d(A→B), d(B→A)))` (MedPy 0.5.x, pooled);
//!   `assd_legacy = (asd + asd_reverse) / 2` (MedPy <= 0.4.0's definition).
//! - **Empty masks**: MedPy raises for every surface metric if either mask is empty. Here the
//!   whole [`SurfaceDistances`] is `Err(EmptyMask)` then — never a silent 0 or NaN.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::edt::{sample_edt_points, EdtWorkspace, Point};
use super::overlap::ConfusionCounts;
use super::{check_same_shape, Mask, MaskError, MaskPixel, Spacing};
use crate::numeric::{np_mean, np_percentile_linear, np_sum};

/// Which mask was empty when a surface metric is undefined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Error)]
pub enum EmptyMask {
    /// The result (prediction) has no foreground pixel.
    #[error("surface distance undefined: the result (prediction) mask is empty")]
    Result,
    /// The reference (ground truth) has no foreground pixel.
    #[error("surface distance undefined: the reference (ground-truth) mask is empty")]
    Reference,
    /// Both masks are empty.
    #[error("surface distance undefined: both masks are empty")]
    Both,
}

impl EmptyMask {
    /// `Some(..)` if a mask of the given sizes is empty.
    pub fn check(result_size: u64, reference_size: u64) -> Option<Self> {
        match (result_size == 0, reference_size == 0) {
            (true, true) => Some(Self::Both),
            (true, false) => Some(Self::Result),
            (false, true) => Some(Self::Reference),
            (false, false) => None,
        }
    }
}

/// Surface-distance metrics of one pair, in the units of the spacing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SurfaceDistances {
    /// Hausdorff distance (symmetric maximum).
    pub hd: f64,
    /// 95th percentile (numpy linear) of the pooled directed distances.
    pub hd95: f64,
    /// Average surface distance result → reference (MedPy `asd(result, reference)`).
    pub asd: f64,
    /// Average surface distance reference → result (MedPy `asd(reference, result)`).
    pub asd_reverse: f64,
    /// MedPy 0.5.x ASSD: mean of the pooled directed distances (weighted by surface sizes).
    pub assd: f64,
    /// MedPy <= 0.4.0 ASSD: `(asd + asd_reverse) / 2`.
    pub assd_legacy: f64,
}

/// Surface sizes (pixel counts) of a pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurfaceCounts {
    /// Surface pixels of the result.
    pub result: u64,
    /// Surface pixels of the reference.
    pub reference: u64,
}

/// Scratch buffers plus the directed distance lists of the last computed pair.
#[derive(Debug, Default, Clone)]
pub struct SurfaceWorkspace {
    fg_a: Vec<u8>,
    fg_b: Vec<u8>,
    surf_a: Vec<Point>,
    surf_b: Vec<Point>,
    edt: EdtWorkspace,
    d_ab: Vec<f64>,
    d_ba: Vec<f64>,
    pooled: Vec<f64>,
    counts: ConfusionCounts,
    surface_counts: SurfaceCounts,
}

impl SurfaceWorkspace {
    /// A new workspace with empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Computes counts, surfaces and, if both masks are non-empty, the distance metrics.
    ///
    /// Work is limited to the bounding box of the two masks' foreground: every surface pixel lies
    /// inside it, so the distances are unchanged (the image edges still count for the surface).
    pub fn compute<T: MaskPixel, U: MaskPixel>(
        &mut self,
        result: Mask<'_, T>,
        reference: Mask<'_, U>,
        spacing: Spacing,
    ) -> Result<Result<SurfaceDistances, EmptyMask>, MaskError> {
        check_same_shape(&result, &reference)?;
        spacing.validate()?;
        let (h, w) = (result.height(), result.width());
        let bbox = self.load(result.data(), reference.data(), w);
        self.d_ab.clear();
        self.d_ba.clear();
        let Some(bbox) = bbox else {
            self.surface_counts = SurfaceCounts::default();
            return Ok(Err(EmptyMask::Both));
        };
        let sa = surface_into(&self.fg_a, h, w, bbox, &mut self.surf_a);
        let sb = surface_into(&self.fg_b, h, w, bbox, &mut self.surf_b);
        self.surface_counts = SurfaceCounts {
            result: sa,
            reference: sb,
        };
        let c = self.counts;
        if let Some(e) = EmptyMask::check(c.result_size(), c.reference_size()) {
            return Ok(Err(e));
        }
        let dims = (h, w);
        sample_edt_points(
            &self.surf_b,
            &self.surf_a,
            dims,
            spacing,
            &mut self.edt,
            &mut self.d_ab,
        );
        sample_edt_points(
            &self.surf_a,
            &self.surf_b,
            dims,
            spacing,
            &mut self.edt,
            &mut self.d_ba,
        );
        Ok(Ok(self.metrics_from_lists()))
    }

    /// One pass over both masks: 0/1 copies, confusion counts and the foreground bounding box.
    fn load<T: MaskPixel, U: MaskPixel>(&mut self, a: &[T], b: &[U], w: usize) -> Option<BBox> {
        self.fg_a.clear();
        self.fg_b.clear();
        self.fg_a.extend(a.iter().map(|p| u8::from(p.is_fg())));
        self.fg_b.extend(b.iter().map(|p| u8::from(p.is_fg())));
        let (mut na, mut nb, mut nab) = (0u64, 0u64, 0u64);
        let mut bbox: Option<BBox> = None;
        let w1 = w.max(1);
        for (r, (ra, rb)) in self
            .fg_a
            .chunks_exact(w1)
            .zip(self.fg_b.chunks_exact(w1))
            .enumerate()
        {
            // Branch-free sums per row (vectorisable); the counts fit u32 for any row.
            let (mut sa, mut sb, mut sab) = (0u32, 0u32, 0u32);
            for (&x, &y) in ra.iter().zip(rb) {
                sa += u32::from(x);
                sb += u32::from(y);
                sab += u32::from(x & y);
            }
            (na, nb, nab) = (na + u64::from(sa), nb + u64::from(sb), nab + u64::from(sab));
            if sa + sb > 0 {
                let first = ra
                    .iter()
                    .zip(rb)
                    .position(|(&x, &y)| x | y != 0)
                    .unwrap_or(0);
                let last = ra
                    .iter()
                    .zip(rb)
                    .rposition(|(&x, &y)| x | y != 0)
                    .unwrap_or(0);
                let bb = bbox.get_or_insert(BBox {
                    r0: r,
                    r1: r + 1,
                    c0: first,
                    c1: last + 1,
                });
                bb.r1 = r + 1;
                bb.c0 = bb.c0.min(first);
                bb.c1 = bb.c1.max(last + 1);
            }
        }
        let total = self.fg_a.len() as u64;
        self.counts = ConfusionCounts {
            tp: nab,
            fp: na - nab,
            fn_: nb - nab,
            tn: total - (na + nb - nab),
        };
        bbox
    }

    fn metrics_from_lists(&mut self) -> SurfaceDistances {
        let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let hd = max(&self.d_ab).max(max(&self.d_ba));
        let asd = np_mean(&self.d_ab);
        let asd_reverse = np_mean(&self.d_ba);
        self.pooled.clear();
        self.pooled.extend_from_slice(&self.d_ab);
        self.pooled.extend_from_slice(&self.d_ba);
        let assd = np_mean(&self.pooled);
        let hd95 = np_percentile_linear(&mut self.pooled, 95.0).expect("non-empty surfaces");
        SurfaceDistances {
            hd,
            hd95,
            asd,
            asd_reverse,
            assd,
            assd_legacy: np_sum(&[asd, asd_reverse]) / 2.0,
        }
    }

    /// Pixel counts of the last pair.
    pub fn counts(&self) -> ConfusionCounts {
        self.counts
    }

    /// Surface sizes of the last pair.
    pub fn surface_counts(&self) -> SurfaceCounts {
        self.surface_counts
    }

    /// `d(result → reference)` of the last pair, row-major over the result's surface
    /// (empty if a mask was empty).
    pub fn directed_result_to_reference(&self) -> &[f64] {
        &self.d_ab
    }

    /// `d(reference → result)` of the last pair, row-major over the reference's surface.
    pub fn directed_reference_to_result(&self) -> &[f64] {
        &self.d_ba
    }

    /// numpy-linear `q`-th percentile (0..=100) of the pooled directed distances of the last pair
    /// (`None` if a mask was empty). `q = 95` gives HD95, `q = 100` HD.
    pub fn pooled_percentile(&mut self, q: f64) -> Option<f64> {
        self.pooled.clear();
        self.pooled.extend_from_slice(&self.d_ab);
        self.pooled.extend_from_slice(&self.d_ba);
        np_percentile_linear(&mut self.pooled, q)
    }
}

/// Half-open bounding box `[r0, r1) x [c0, c1)`.
#[derive(Debug, Clone, Copy)]
struct BBox {
    r0: usize,
    r1: usize,
    c0: usize,
    c1: usize,
}

/// Collects the surface pixels of the `h x w` 0/1 mask `fg` inside `bb` (which must contain all
/// its foreground) into `out`, row-major; returns their number. Image edges are those of the full
/// image.
fn surface_into(fg: &[u8], h: usize, w: usize, bb: BBox, out: &mut Vec<Point>) -> u64 {
    out.clear();
    let push_set = |out: &mut Vec<Point>, r: usize, c0: usize, flags: &[u8]| {
        for (i, &f) in flags.iter().enumerate() {
            if f != 0 {
                out.push((r as u32, (c0 + i) as u32));
            }
        }
    };
    for r in bb.r0..bb.r1 {
        let row = &fg[r * w..(r + 1) * w];
        if r == 0 || r + 1 == h || w < 3 {
            // Every foreground pixel of an edge row (or of a grid narrower than 3) is surface.
            push_set(out, r, bb.c0, &row[bb.c0..bb.c1]);
            continue;
        }
        let (up, down) = (&fg[(r - 1) * w..r * w], &fg[(r + 1) * w..(r + 2) * w]);
        // Foreground that is not eroded: x & !(up & down & left & right), scanned in chunks of
        // 8 so runs without surface are skipped in one comparison.
        let (c0, c1) = (bb.c0.max(1), bb.c1.min(w - 1));
        if bb.c0 == 0 && row[0] != 0 {
            out.push((r as u32, 0));
        }
        let mut c = c0;
        while c < c1 {
            let end = (c + 8).min(c1);
            let mut flags = [0u8; 8];
            for (i, f) in flags[..end - c].iter_mut().enumerate() {
                let j = c + i;
                *f = row[j] & !(up[j] & down[j] & row[j - 1] & row[j + 1]) & 1;
            }
            if u64::from_ne_bytes(flags) != 0 {
                push_set(out, r, c, &flags[..end - c]);
            }
            c = end;
        }
        if bb.c1 == w && row[w - 1] != 0 {
            out.push((r as u32, (w - 1) as u32));
        }
    }
    out.len() as u64
}

/// The surface of a mask (1 = surface pixel), row-major, MedPy/scipy definition (see module docs).
pub fn surface<T: MaskPixel>(mask: Mask<'_, T>) -> Vec<u8> {
    let fg: Vec<u8> = mask.data().iter().map(|p| u8::from(p.is_fg())).collect();
    let (h, w) = (mask.height(), mask.width());
    let mut pts = Vec::new();
    surface_into(
        &fg,
        h,
        w,
        BBox {
            r0: 0,
            r1: h,
            c0: 0,
            c1: w,
        },
        &mut pts,
    );
    let mut out = vec![0u8; h * w];
    for (r, c) in pts {
        out[r as usize * w + c as usize] = 1;
    }
    out
}

/// All surface-distance metrics of a pair (fresh buffers; reuse a [`SurfaceWorkspace`] or
/// [`super::SegEvaluator`] for many pairs).
pub fn surface_distances<T: MaskPixel, U: MaskPixel>(
    result: Mask<'_, T>,
    reference: Mask<'_, U>,
    spacing: Spacing,
) -> Result<Result<SurfaceDistances, EmptyMask>, MaskError> {
    SurfaceWorkspace::new().compute(result, reference, spacing)
}

/// `hd95` of a pair (MedPy `hd95`), `Ok(Err(EmptyMask))` if a mask is empty.
pub fn hd95<T: MaskPixel, U: MaskPixel>(
    result: Mask<'_, T>,
    reference: Mask<'_, U>,
    spacing: Spacing,
) -> Result<Result<f64, EmptyMask>, MaskError> {
    Ok(surface_distances(result, reference, spacing)?.map(|d| d.hd95))
}

#[cfg(test)]
mod tests;
