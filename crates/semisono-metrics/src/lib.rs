//! Segmentation and classification metrics for semisono, matched to **MedPy 0.5.2** and
//! **scikit-learn 1.3.2** (the versions Hermes pins, on numpy 1.26 / scipy 1.11). No deep-learning
//! framework; pure Rust.
//!
//! - [`seg`]: per-image metrics of binary 2-D masks: Dice, IoU (Jaccard), precision, recall /
//!   sensitivity, specificity, HD, HD95, ASD (both directions), ASSD (MedPy 0.5.x pooled and the
//!   legacy mean-of-directed definition), with anisotropic pixel spacing.
//! - [`cls`]: accuracy, balanced accuracy, precision / recall / F1 (binary, macro, weighted,
//!   micro, per class), specificity, ROC AUC (binary, one-vs-rest, one-vs-one), confusion matrix,
//!   Cohen's kappa (unweighted, linear, quadratic).
//! - [`aggregate`]: the [`Metric`] shape (update per image / sample, aggregate, reset) with
//!   per-image mean ± std and pooled aggregates.
//! - [`numeric`]: numpy-identical sum / mean / std / percentile used by the above.
//!
//! Against the oracle fixtures (see `tests/fixtures/README.md`) every stored value is reproduced
//! **bit for bit** (2,441 comparisons).
//!
//! # Conventions
//!
//! ## Masks and distances
//! - A [`seg::Mask`] is `height x width`, row-major (row = axis 0); any non-zero pixel is
//!   foreground. `result` is the prediction, `reference` the ground truth (MedPy's order).
//! - [`seg::Spacing`] `{ row, col }` is MedPy's `voxelspacing` `[axis 0, axis 1]`; the default
//!   `[1, 1]` equals MedPy's `None`.
//! - Surface = `mask XOR erosion(mask, 4-cross)` with the outside of the image treated as
//!   background (pixels on the image edge are surface). Distances come from an exact Euclidean
//!   distance transform (O(pixels)), composed like scipy: `sqrt((Δr·s_r)² + (Δc·s_c)²)`.
//! - `hd95` is numpy's linear 95th percentile of the **pooled** list `d(A→B) ++ d(B→A)` (not the
//!   max of two directed percentiles); `assd` is the mean of that pooled list (MedPy 0.5.x);
//!   `assd_legacy = (asd + asd_reverse)/2` (MedPy ≤ 0.4). `asd` is directed (result → reference).
//!
//! ## Undefined values — never a silent 0 or NaN
//! - **Surface metrics with an empty mask** (MedPy raises `RuntimeError`): the whole distance set
//!   is `Err(seg::EmptyMask::{Result, Reference, Both})`.
//! - **Overlap metrics** always have a value, MedPy 0.5.2's fallbacks: Dice = Jaccard = **1.0**
//!   when both masks are empty (0.0 if only one is); precision = **0.0** for an empty result;
//!   recall = **0.0** for an empty reference; specificity = **0.0** if the reference covers the
//!   image. (On numpy ≥ 2.3 MedPy returns NaN for some of these; we follow the pinned stack.)
//! - **Classification**: sklearn's `zero_division="warn"` behaviour, a 0/0 precision, recall or
//!   F1 is **0.0**. Where sklearn 1.3.2 *raises* — ROC AUC with a single class in `y_true` (or in
//!   a one-vs-rest column) — or *returns NaN* — Cohen's kappa when both raters use one common
//!   label, one-vs-one AUC with fewer than two classes present — we return
//!   `Err(cls::ClsError::OnlyOneClass | KappaUndefined)`.
//! - **Aggregation** ([`aggregate::Stat`]): per-image mean ± **sample** standard deviation
//!   (`ddof = 1`, numpy's `np.std(x, ddof=1)`; `None` for fewer than two values). Undefined
//!   values (and NaN) are skipped and counted in `n_skipped`. Overlap metrics are never skipped
//!   (they use the fallbacks above). Pooled aggregates sum the pixel counts over images:
//!   aggregate Dice `2ΣI / Σ(|A|+|B|)`, aggregate Jaccard `ΣI / Σ|A∪B|` (1.0 if every mask is
//!   empty). Hermes' smoothed per-image Dice `(2I + 1e-5)/(|A|+|B| + 1e-5)` is also reported.
//!
//! # Example
//! ```
//! use semisono_metrics::seg::{evaluate, Mask, Spacing};
//! let pred = [0u8, 1, 1, 0, 0, 1, 1, 0];
//! let gt = [0u8, 1, 1, 1, 0, 1, 1, 1];
//! let m = evaluate(Mask::new(&pred, 2, 4)?, Mask::new(&gt, 2, 4)?, Spacing::new(0.5, 0.8))?;
//! assert_eq!(m.overlap.dice, 0.8);
//! let d = m.distances.expect("both masks are non-empty");
//! assert_eq!(d.hd, 0.8);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod aggregate;
pub mod cls;
pub mod numeric;
pub mod seg;

pub use aggregate::{ClsMetrics, ClsSample, Metric, SegMetrics, SegPair, SegSummary, Stat};
pub use seg::{EmptyMask, Mask, MaskError, Spacing};
