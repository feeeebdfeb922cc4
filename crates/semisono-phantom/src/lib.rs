//! Procedural B-mode ultrasound phantom with exact lesion masks.
//!
//! Each image is simulated in beam space (tissue echogenicity and attenuation maps, a complex Gaussian
//! scatterer field, a separable depth-dependent Gaussian PSF, round-trip attenuation with TGC,
//! electronic noise, envelope detection and log compression), then scan-converted for a linear,
//! curvilinear or sector probe. Lesions are star-shaped implicit functions built from BI-RADS
//! descriptors; the mask is the rasterised sign of the same function, so it is exact by construction.
//! Labels come from class-conditional descriptor rates with knobs for overlap, continuous-cue
//! separation, ambiguous cases and label noise, and the exact Bayes posterior is recorded per image.
//!
//! Generation is deterministic per `(seed, index)` and independent of the thread count.
//! See `docs/phantom.md` for the model, the knobs and the metadata.

mod anatomy;
mod case;
mod geometry;
mod labels;
mod lesion;
mod render;
mod rng;
mod speckle;
mod util;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use geometry::ProbeKind;

/// Anatomy preset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Breast (BUSI-like): skin, fat, Cooper's ligaments, gland, pectoralis, chest wall.
    #[default]
    Breast,
    /// Thyroid, transverse (DDTI-like): lobes, isthmus, trachea, carotids, strap muscles.
    Thyroid,
}

/// Probe choice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeChoice {
    /// Linear array (rectangular image).
    #[default]
    Linear,
    /// Convex array (fan with a curved top).
    Curvilinear,
    /// Phased array (fan from an apex).
    Sector,
    /// Sampled per image (60 % linear, 25 % curvilinear, 15 % sector), independently of the class.
    Mixed,
}

/// Class set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassMode {
    /// normal / benign / malignant (labels 0, 1, 2).
    #[default]
    ThreeClass,
    /// benign / malignant (labels 0, 1).
    Binary,
}

/// Post-log speckle smoothing (scanners smooth; real images look smoother than raw speckle).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Smoothing {
    /// Per image: raw 25 %, light 45 %, strong 30 % (class-independent).
    #[default]
    Random,
    /// No smoothing.
    Raw,
    /// One 3×3 binomial pass.
    Light,
    /// Two 3×3 binomial passes.
    Strong,
}

/// Configuration of the phantom generator. Unknown keys are rejected; missing keys take defaults.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhantomConfig {
    /// Anatomy preset.
    pub preset: Preset,
    /// Probe (or `mixed`).
    pub probe: ProbeChoice,
    /// Output width in pixels.
    pub width: u32,
    /// Output height in pixels.
    pub height: u32,
    /// Three classes (normal/benign/malignant) or binary (benign/malignant).
    pub classes: ClassMode,
    /// Class prior in `class_names` order; default (0.17, 0.56, 0.27) or (0.68, 0.32).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_prior: Option<Vec<f64>>,
    /// Overlap t ∈ [0, 1] of the descriptor rates between benign and malignant (1 = no information).
    pub overlap: f64,
    /// Separation d′ ≥ 0 of the five continuous cues (echo, aspect, roughness, spikes, posterior).
    pub d_prime: f64,
    /// Probability ε of flipping the recorded label (symmetric).
    pub label_noise: f64,
    /// Fraction of lesions whose descriptors are drawn from the other class (label kept).
    pub ambiguous_fraction: f64,
    /// Include the echogenic halo ring in the mask.
    pub mask_includes_halo: bool,
    /// Ask writers to also store per-lesion masks (`*_mask_k.png`); `lesion_masks` is always filled.
    pub write_lesion_masks: bool,
    /// Anti-aliased masks: a pixel is set when ≥ 2 of 4 sub-samples are inside.
    pub mask_supersample: bool,
    /// Probability of a second lesion (same class and descriptors), like BUSI's `_mask_1`.
    pub multi_lesion_prob: f64,
    /// Post-log smoothing.
    pub smoothing: Smoothing,
    /// Probability of burned-in annotations (calipers, depth scale, text).
    pub annotation_prob: f64,
    /// Shortcut strength s ∈ [0, 1]: ties the annotations to the recorded label
    /// (P = p + s(1 − p) for the last class, p(1 − s) otherwise). 0 = class-independent.
    pub shortcut: f64,
    /// Random scatterer field (false: deterministic amplitude; for tests).
    pub speckle: bool,
    /// PSF blur (false: none; for tests).
    pub psf: bool,
    /// Attenuation, shadows, enhancement and TGC (false: none; for tests).
    pub attenuation: bool,
    /// Dataset seed.
    pub seed: u64,
}

impl Default for PhantomConfig {
    fn default() -> Self {
        PhantomConfig {
            preset: Preset::Breast,
            probe: ProbeChoice::Linear,
            width: 128,
            height: 128,
            classes: ClassMode::ThreeClass,
            class_prior: None,
            overlap: 0.0,
            d_prime: 0.0,
            label_noise: 0.0,
            ambiguous_fraction: 0.0,
            mask_includes_halo: false,
            write_lesion_masks: false,
            mask_supersample: false,
            multi_lesion_prob: 0.05,
            smoothing: Smoothing::Random,
            annotation_prob: 0.2,
            shortcut: 0.0,
            speckle: true,
            psf: true,
            attenuation: true,
            seed: 0,
        }
    }
}

/// Errors of the phantom crate.
#[derive(Debug, thiserror::Error)]
pub enum PhantomError {
    /// A configuration value is out of range.
    #[error("invalid phantom config: `{key}` {msg}")]
    InvalidConfig {
        /// The offending key.
        key: &'static str,
        /// What is wrong.
        msg: String,
    },
}

fn invalid(key: &'static str, msg: impl Into<String>) -> PhantomError {
    PhantomError::InvalidConfig {
        key,
        msg: msg.into(),
    }
}

fn check_unit(key: &'static str, v: f64) -> Result<(), PhantomError> {
    if !(0.0..=1.0).contains(&v) {
        return Err(invalid(key, format!("must be in [0, 1], got {v}")));
    }
    Ok(())
}

impl PhantomConfig {
    /// Checks ranges. `generate` clamps instead of failing, so call this on user input first.
    pub fn validate(&self) -> Result<(), PhantomError> {
        for (key, v) in [("width", self.width), ("height", self.height)] {
            if !(32..=4096).contains(&v) {
                return Err(invalid(
                    key,
                    format!("must be in [32, 4096] pixels, got {v}"),
                ));
            }
        }
        check_unit("overlap", self.overlap)?;
        check_unit("label_noise", self.label_noise)?;
        check_unit("ambiguous_fraction", self.ambiguous_fraction)?;
        check_unit("multi_lesion_prob", self.multi_lesion_prob)?;
        check_unit("annotation_prob", self.annotation_prob)?;
        check_unit("shortcut", self.shortcut)?;
        if !(0.0..=10.0).contains(&self.d_prime) {
            return Err(invalid(
                "d_prime",
                format!("must be in [0, 10], got {}", self.d_prime),
            ));
        }
        if let Some(p) = &self.class_prior {
            let n = class_names(self).len();
            if p.len() != n {
                return Err(invalid(
                    "class_prior",
                    format!(
                        "needs {n} values for {:?} mode, got {}",
                        self.classes,
                        p.len()
                    ),
                ));
            }
            if p.iter().any(|v| !v.is_finite() || *v < 0.0) {
                return Err(invalid(
                    "class_prior",
                    "values must be finite and non-negative",
                ));
            }
            if p.iter().sum::<f64>() <= 0.0 {
                return Err(invalid("class_prior", "must not sum to zero"));
            }
            let lesion_mass: f64 = match self.classes {
                ClassMode::ThreeClass => p[1] + p[2],
                ClassMode::Binary => p[0] + p[1],
            };
            if self.classes == ClassMode::ThreeClass && lesion_mass <= 0.0 && p[0] <= 0.0 {
                return Err(invalid(
                    "class_prior",
                    "at least one class needs positive mass",
                ));
            }
        }
        Ok(())
    }
}

/// One generated image with its exact masks, labels and metadata.
#[derive(Clone, Debug)]
pub struct PhantomSample {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// 8-bit gray, row-major.
    pub image: Vec<u8>,
    /// {0, 255}: OR of the lesion masks; all zero for the normal class.
    pub mask: Vec<u8>,
    /// One mask per lesion (empty for the normal class).
    pub lesion_masks: Vec<Vec<u8>>,
    /// Recorded label (after label noise), index into [`class_names`].
    pub label: u8,
    /// Clean label.
    pub clean_label: u8,
    /// (row, col) mm per output pixel (isotropic).
    pub pixel_spacing_mm: [f64; 2],
    /// Descriptors, probe, geometry, score, Bayes posterior, nuisance parameters (see docs/phantom.md).
    pub meta: serde_json::Value,
}

/// Class names in label order.
pub fn class_names(cfg: &PhantomConfig) -> Vec<&'static str> {
    match cfg.classes {
        ClassMode::ThreeClass => vec!["normal", "benign", "malignant"],
        ClassMode::Binary => vec!["benign", "malignant"],
    }
}

/// Generates image `index` of the dataset defined by `cfg` (deterministic per `(cfg, index)`).
pub fn generate(cfg: &PhantomConfig, index: u64) -> PhantomSample {
    let case = case::sample_case(cfg, index);
    render::render(cfg, &case)
}

/// Generates images `start .. start + count` in parallel (rayon); identical to calling [`generate`].
pub fn generate_many(cfg: &PhantomConfig, start: u64, count: u64) -> Vec<PhantomSample> {
    (start..start + count)
        .into_par_iter()
        .map(|i| generate(cfg, i))
        .collect()
}

/// Dataset-level Bayes accuracy on clean labels: the exact expected accuracy of the Bayes classifier
/// that sees the lesion descriptors (naive-Bayes model of spec C.10, including the continuous cues,
/// the overlap and the ambiguous fraction). Normal images count as correctly classified.
pub fn bayes_accuracy(cfg: &PhantomConfig) -> f64 {
    case::label_model(cfg).bayes_accuracy()
}

/// Internals exposed for tests, calibration and tooling. Not a stable API.
pub mod internals {
    pub use crate::anatomy::Anatomy;
    pub use crate::case::{class_prior, sample_case, Acquisition, Case, Switches};
    pub use crate::geometry::{scan_lut, Geometry, ScanLut};
    pub use crate::labels::{
        DrawnDescriptors, Features, LabelModel, MarginClass, Posterior, Rates, N_CUES,
    };
    pub use crate::lesion::{
        Composition, Foci, Lesion, LesionDescriptors, LesionPlan, Margin, Shape,
    };
    pub use crate::render::{render_beam, BeamImage};
    pub use crate::rng::{inv_normal_cdf, normal_cdf, Rng, Stream};

    /// Renders a sampled (possibly edited) case.
    pub fn render_case(cfg: &crate::PhantomConfig, case: &Case) -> crate::PhantomSample {
        crate::render::render(cfg, case)
    }

    /// The label model of a configuration.
    pub fn label_model(cfg: &crate::PhantomConfig) -> LabelModel {
        crate::case::label_model(cfg)
    }

    /// Envelope |s ⊛ h| of a homogeneous unit-power scatterer field on an `nz × nl` grid, with the
    /// separable unit-L2 Gaussian PSF of σ (axial, lateral) in samples; no attenuation, TGC, noise,
    /// log compression or smoothing. For the speckle-statistics tests.
    pub fn homogeneous_envelope(
        nz: usize,
        nl: usize,
        sigma_axial: f64,
        sigma_lateral: f64,
        seed: u64,
    ) -> Vec<f32> {
        use crate::speckle::*;
        let n = nz * nl;
        let amp = vec![1f32; n];
        let coh = vec![0f32; n];
        let (mut re, mut im) = (vec![0f32; n], vec![0f32; n]);
        let mut rng = Rng::for_image(seed, 0, Stream::Speckle);
        fill_field(&amp, &coh, &mut rng, true, &mut re, &mut im);
        let ha = gaussian_kernel(sigma_axial);
        let kernels = vec![gaussian_kernel(sigma_lateral)];
        let row_k = vec![0u16; nz];
        let mut tmp = vec![0f32; n];
        let mut pad = Vec::new();
        for buf in [&mut re, &mut im] {
            axial_pass(buf, &mut tmp, nz, nl, &ha);
            std::mem::swap(buf, &mut tmp);
            lateral_pass(buf, nz, nl, &kernels, &row_k, &mut pad);
        }
        re.iter()
            .zip(&im)
            .map(|(a, b)| (a * a + b * b).sqrt())
            .collect()
    }
}
