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

use super::edt::{sample_edt, EdtWorkspace};
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
    surf_a: Vec<u8>,
    surf_b: Vec<u8>,
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
    pub fn compute<T: MaskPixel, U: MaskPixel>(
        &mut self,
        result: Mask<'_, T>,
        reference: Mask<'_, U>,
        spacing: Spacing,
    ) -> Result<Result<SurfaceDistances, EmptyMask>, MaskError> {
        check_same_shape(&result, &reference)?;
        spacing.validate()?;
        let (h, w) = (result.height(), result.width());
        load(result.data(), &mut self.fg_a);
        load(reference.data(), &mut self.fg_b);
        let mut counts = ConfusionCounts::default();
        for (&a, &b) in self.fg_a.iter().zip(&self.fg_b) {
            counts.add_pixel(a != 0, b != 0);
        }
        self.counts = counts;
        let sa = surface_into(&self.fg_a, h, w, &mut self.surf_a);
        let sb = surface_into(&self.fg_b, h, w, &mut self.surf_b);
        self.surface_counts = SurfaceCounts { result: sa, reference: sb };
        self.d_ab.clear();
        self.d_ba.clear();
        if let Some(e) = EmptyMask::check(counts.result_size(), counts.reference_size()) {
            return Ok(Err(e));
        }
        sample_edt(&self.surf_b, &self.surf_a, h, w, spacing, &mut self.edt, &mut self.d_ab);
        sample_edt(&self.surf_a, &self.surf_b, h, w, spacing, &mut self.edt, &mut self.d_ba);
        Ok(Ok(self.metrics_from_lists()))
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

    /// The surface flags (1 = surface) of the last result / reference masks, row-major.
    pub fn surfaces(&self) -> (&[u8], &[u8]) {
        (&self.surf_a, &self.surf_b)
    }
}

fn load<T: MaskPixel>(data: &[T], out: &mut Vec<u8>) {
    out.clear();
    out.extend(data.iter().map(|p| u8::from(p.is_fg())));
}

/// Writes the surface flags of the `h x w` 0/1 mask `fg` into `out`; returns the surface size.
fn surface_into(fg: &[u8], h: usize, w: usize, out: &mut Vec<u8>) -> u64 {
    out.clear();
    out.resize(h * w, 0);
    let mut n = 0u64;
    for r in 0..h {
        let row = &fg[r * w..(r + 1) * w];
        let edge_row = r == 0 || r + 1 == h;
        for c in 0..w {
            if row[c] == 0 {
                continue;
            }
            let s = edge_row
                || c == 0
                || c + 1 == w
                || row[c - 1] == 0
                || row[c + 1] == 0
                || fg[(r - 1) * w + c] == 0
                || fg[(r + 1) * w + c] == 0;
            if s {
                out[r * w + c] = 1;
                n += 1;
            }
        }
    }
    n
}

/// The surface of a mask (1 = surface pixel), row-major, MedPy/scipy definition (see module docs).
pub fn surface<T: MaskPixel>(mask: Mask<'_, T>) -> Vec<u8> {
    let mut fg = Vec::new();
    load(mask.data(), &mut fg);
    let mut out = Vec::new();
    surface_into(&fg, mask.height(), mask.width(), &mut out);
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
