//! Segmentation metrics for binary 2-D masks (MedPy 0.5.2 semantics).
//!
//! - [`overlap`]: counts, Dice, Jaccard, precision, recall, specificity.
//! - [`surface`]: surfaces and surface distances (HD, HD95, ASD, ASSD) from an exact EDT.
//! - [`evaluate`] / [`SegEvaluator`]: everything for one image pair at once.

pub mod edt;
pub mod overlap;
pub mod surface;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use overlap::overlap_metrics;
pub use overlap::{ConfusionCounts, OverlapMetrics};
pub use surface::{
    surface, surface_distances, EmptyMask, SurfaceCounts, SurfaceDistances, SurfaceWorkspace,
};

/// A pixel type that can be read as foreground / background (non-zero = foreground).
pub trait MaskPixel: Copy {
    /// `true` for a foreground pixel.
    fn is_fg(self) -> bool;
}

macro_rules! impl_mask_pixel_int {
    ($($t:ty),*) => {$(
        impl MaskPixel for $t {
            #[inline]
            fn is_fg(self) -> bool { self != 0 }
        }
    )*};
}
impl_mask_pixel_int!(u8, u16, u32, u64, i8, i16, i32, i64, usize);

impl MaskPixel for bool {
    #[inline]
    fn is_fg(self) -> bool {
        self
    }
}
impl MaskPixel for f32 {
    #[inline]
    fn is_fg(self) -> bool {
        self != 0.0
    }
}
impl MaskPixel for f64 {
    #[inline]
    fn is_fg(self) -> bool {
        self != 0.0
    }
}

/// A borrowed binary mask: `height * width` pixels in row-major order (row = axis 0).
///
/// Any non-zero pixel is foreground (like MedPy's `astype(bool)`).
#[derive(Debug, Clone, Copy)]
pub struct Mask<'a, T: MaskPixel = u8> {
    data: &'a [T],
    height: usize,
    width: usize,
}

impl<'a, T: MaskPixel> Mask<'a, T> {
    /// Wraps `data` as a `height x width` mask; fails if the length does not match.
    pub fn new(data: &'a [T], height: usize, width: usize) -> Result<Self, MaskError> {
        let expected = height.checked_mul(width).ok_or(MaskError::TooLarge)?;
        if data.len() != expected {
            return Err(MaskError::Length {
                len: data.len(),
                height,
                width,
            });
        }
        Ok(Self {
            data,
            height,
            width,
        })
    }

    /// Rows (axis 0).
    pub fn height(&self) -> usize {
        self.height
    }

    /// Columns (axis 1).
    pub fn width(&self) -> usize {
        self.width
    }

    /// The pixels, row-major.
    pub fn data(&self) -> &'a [T] {
        self.data
    }

    /// `true` if pixel `(row, col)` is foreground. Panics out of bounds.
    #[inline]
    pub fn get(&self, row: usize, col: usize) -> bool {
        assert!(row < self.height && col < self.width, "pixel out of bounds");
        self.data[row * self.width + col].is_fg()
    }
}

/// Errors for malformed inputs (never for empty masks: those are [`EmptyMask`]).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MaskError {
    /// The pixel buffer does not hold `height * width` pixels.
    #[error("mask has {len} pixels but {height}x{width} needs {}", height * width)]
    Length {
        len: usize,
        height: usize,
        width: usize,
    },
    /// `height * width` overflows.
    #[error("mask dimensions overflow usize")]
    TooLarge,
    /// Result and reference have different shapes.
    #[error("result is {0}x{1} but reference is {2}x{3}; masks must have the same shape")]
    ShapeMismatch(usize, usize, usize, usize),
    /// A spacing is not finite and positive.
    #[error("pixel spacing must be finite and > 0, got [{0}, {1}]")]
    BadSpacing(f64, f64),
}

/// Physical pixel spacing: `row` along axis 0, `col` along axis 1 (MedPy `voxelspacing`).
///
/// The default `[1, 1]` gives exactly the same distances as MedPy's `voxelspacing=None`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spacing {
    /// Distance between two rows (axis 0).
    pub row: f64,
    /// Distance between two columns (axis 1).
    pub col: f64,
}

impl Default for Spacing {
    fn default() -> Self {
        Self { row: 1.0, col: 1.0 }
    }
}

impl Spacing {
    /// `[row, col]` spacing.
    pub fn new(row: f64, col: f64) -> Self {
        Self { row, col }
    }

    pub(crate) fn validate(&self) -> Result<(), MaskError> {
        let ok = |s: f64| s.is_finite() && s > 0.0;
        if ok(self.row) && ok(self.col) {
            Ok(())
        } else {
            Err(MaskError::BadSpacing(self.row, self.col))
        }
    }
}

pub(crate) fn check_same_shape<T: MaskPixel, U: MaskPixel>(
    a: &Mask<'_, T>,
    b: &Mask<'_, U>,
) -> Result<(), MaskError> {
    if a.height != b.height || a.width != b.width {
        return Err(MaskError::ShapeMismatch(
            a.height, a.width, b.height, b.width,
        ));
    }
    Ok(())
}

/// Every metric of one (result, reference) pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegImageMetrics {
    /// Pixel counts (tp, fp, fn, tn, sizes, surface sizes).
    pub counts: ConfusionCounts,
    /// Surface sizes of result and reference.
    pub surface_counts: SurfaceCounts,
    /// Dice, Jaccard, precision, recall, specificity (MedPy fallbacks for 0/0).
    pub overlap: OverlapMetrics,
    /// HD, HD95, ASD, ASSD, ...; `Err` when a mask is empty (MedPy raises there).
    pub distances: Result<SurfaceDistances, EmptyMask>,
}

/// The per-image metrics every per-image CSV of semisono reports, in column order
/// (`eval-masks`, `eval` and `predict` share them, so a column means the same everywhere).
pub const PER_IMAGE_METRICS: &[&str] = &[
    "dice",
    "iou",
    "precision",
    "recall",
    "specificity",
    "hd",
    "hd95",
    "asd",
    "assd",
];

impl SegImageMetrics {
    /// One metric of [`PER_IMAGE_METRICS`] by name; `None` where it is undefined (a surface
    /// distance with an empty mask) or for an unknown name.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let o = &self.overlap;
        let d = self.distances.as_ref().ok();
        match name {
            "dice" => Some(o.dice),
            "iou" => Some(o.jaccard),
            "precision" => Some(o.precision),
            "recall" => Some(o.recall),
            "specificity" => Some(o.specificity),
            "hd" => d.map(|d| d.hd),
            "hd95" => d.map(|d| d.hd95),
            "asd" => d.map(|d| d.asd),
            "assd" => d.map(|d| d.assd),
            _ => None,
        }
    }

    /// The CSV cells of [`PER_IMAGE_METRICS`] for `metrics` (all empty for `None`: no mask, or no
    /// segmenter).
    pub fn csv_cells(metrics: Option<&SegImageMetrics>) -> Vec<String> {
        PER_IMAGE_METRICS
            .iter()
            .map(|k| csv_cell(metrics.and_then(|m| m.metric(k))))
            .collect()
    }
}

/// A CSV cell: the shortest exact decimal of `v`, empty when undefined.
pub fn csv_cell(v: Option<f64>) -> String {
    v.map_or(String::new(), |x| x.to_string())
}

/// Reusable evaluator: holds the scratch buffers so that evaluating many images allocates
/// nothing after the first image of a given size.
#[derive(Debug, Default, Clone)]
pub struct SegEvaluator {
    ws: SurfaceWorkspace,
}

impl SegEvaluator {
    /// A new evaluator with empty scratch buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// All metrics for one pair. `result` is the prediction, `reference` the ground truth.
    pub fn evaluate<T: MaskPixel, U: MaskPixel>(
        &mut self,
        result: Mask<'_, T>,
        reference: Mask<'_, U>,
        spacing: Spacing,
    ) -> Result<SegImageMetrics, MaskError> {
        check_same_shape(&result, &reference)?;
        spacing.validate()?;
        let distances = self.ws.compute(result, reference, spacing)?;
        let counts = self.ws.counts();
        Ok(SegImageMetrics {
            counts,
            surface_counts: self.ws.surface_counts(),
            overlap: OverlapMetrics::from_counts(&counts),
            distances,
        })
    }

    /// The scratch workspace (directed distance lists of the last evaluated pair).
    pub fn workspace(&self) -> &SurfaceWorkspace {
        &self.ws
    }
}

/// All metrics for one pair with a fresh [`SegEvaluator`]. Use an evaluator to reuse buffers.
pub fn evaluate<T: MaskPixel, U: MaskPixel>(
    result: Mask<'_, T>,
    reference: Mask<'_, U>,
    spacing: Spacing,
) -> Result<SegImageMetrics, MaskError> {
    SegEvaluator::new().evaluate(result, reference, spacing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_checks_length_and_shape() {
        let d = [1u8, 0, 1];
        assert!(matches!(Mask::new(&d, 2, 2), Err(MaskError::Length { .. })));
        let a = Mask::new(&d, 1, 3).unwrap();
        let b = Mask::new(&d, 3, 1).unwrap();
        assert!(a.get(0, 2) && !a.get(0, 1));
        assert!(matches!(
            evaluate(a, b, Spacing::default()),
            Err(MaskError::ShapeMismatch(1, 3, 3, 1))
        ));
        assert!(matches!(
            evaluate(a, a, Spacing::new(0.0, 1.0)),
            Err(MaskError::BadSpacing(..))
        ));
    }

    #[test]
    fn pixel_types() {
        let f = [0.0f32, 0.5, -1.0];
        let m = Mask::new(&f, 1, 3).unwrap();
        assert!(!m.get(0, 0) && m.get(0, 1) && m.get(0, 2));
        let b = [true, false];
        let mb = Mask::new(&b, 2, 1).unwrap();
        assert!(mb.get(0, 0) && !mb.get(1, 0));
    }

    #[test]
    fn metrics_by_name_and_their_csv_cells() {
        // Result covers 2 pixels, reference 1 of them: Dice 2/3, IoU 1/2, HD 1 pixel.
        let (r, t) = ([1u8, 1, 0, 0], [1u8, 0, 0, 0]);
        let m = evaluate(
            Mask::new(&r, 2, 2).unwrap(),
            Mask::new(&t, 2, 2).unwrap(),
            Spacing::default(),
        )
        .unwrap();
        assert_eq!(m.metric("dice"), Some(2.0 / 3.0));
        assert_eq!(m.metric("iou"), Some(0.5));
        assert_eq!(m.metric("hd"), Some(1.0));
        assert_eq!(m.metric("no-such-metric"), None);
        let cells = SegImageMetrics::csv_cells(Some(&m));
        assert_eq!(cells.len(), PER_IMAGE_METRICS.len());
        assert_eq!(cells[1], "0.5");
        // An empty prediction: overlap defined, distances undefined -> empty cells.
        let empty = evaluate(
            Mask::new(&[0u8; 4], 2, 2).unwrap(),
            Mask::new(&t, 2, 2).unwrap(),
            Spacing::default(),
        )
        .unwrap();
        let cells = SegImageMetrics::csv_cells(Some(&empty));
        assert_eq!(cells[0], "0");
        assert!(cells[5..].iter().all(String::is_empty), "{cells:?}");
        assert!(SegImageMetrics::csv_cells(None)
            .iter()
            .all(String::is_empty));
    }
}
