//! Sampling one case: class, probe geometry, acquisition settings, anatomy, lesions and labels.
//! Everything except the lesion descriptors is drawn independently of the class (spec C.10 item 6).

use crate::anatomy::{Anatomy, Breast, Thyroid};
use crate::geometry::{Geometry, ProbeKind};
use crate::labels::{noisy_label, DrawnDescriptors, LabelModel, Rates};
use crate::lesion::{Lesion, LesionPlan};
use crate::rng::{Rng, Stream};
use crate::{ClassMode, PhantomConfig, Preset, ProbeChoice, Smoothing};

/// Acquisition and display settings of one image (all class-independent nuisances).
#[derive(Clone, Debug)]
pub struct Acquisition {
    /// Centre frequency (MHz).
    pub f0_mhz: f64,
    /// Dynamic range (dB).
    pub dynamic_range_db: f64,
    /// Headroom H (dB): the display maps [H − DR, H] to [0, 255].
    pub headroom_db: f64,
    /// Attenuation the TGC compensates (dB/cm/MHz); differs from the tissue mean by the TGC error.
    pub tgc_alpha: f64,
    /// Relative TGC error e (α_tgc = α_mean·(1 + e)).
    pub tgc_error: f64,
    /// Slider offsets (dB) at evenly spaced depths.
    pub tgc_slider: Vec<f64>,
    /// Maximum TGC gain (dB).
    pub tgc_max_db: f64,
    /// Electronic noise level (dB, absolute, same scale as the echo).
    pub noise_db: f64,
    /// Display gamma.
    pub gamma: f64,
    /// Post-log smoothing passes (0 raw, 1 light, 2 strong).
    pub smoothing: u8,
    /// Axial PSF σ (beam samples).
    pub sigma_axial: f64,
    /// Lateral PSF σ at focus (lines).
    pub sigma_lateral: f64,
    /// Focal depth (mm).
    pub focus_mm: f64,
    /// Rayleigh-like length of the beam (mm).
    pub rayleigh_mm: f64,
}

/// Physics switches (tests and ideal renders).
#[derive(Clone, Copy, Debug)]
pub struct Switches {
    /// Random scatterer field (off: deterministic amplitude).
    pub speckle: bool,
    /// PSF convolution.
    pub psf: bool,
    /// Attenuation (off: no shadows, no enhancement, no TGC compensation needed).
    pub attenuation: bool,
    /// Time-gain compensation.
    pub tgc: bool,
    /// Electronic noise.
    pub noise: bool,
}

/// A fully sampled case, before rendering.
#[derive(Clone, Debug)]
pub struct Case {
    /// Dataset seed.
    pub seed: u64,
    /// Image index.
    pub index: u64,
    /// Preset.
    pub preset: Preset,
    /// Geometry.
    pub geom: Geometry,
    /// Acquisition settings.
    pub acq: Acquisition,
    /// Background anatomy.
    pub anatomy: Anatomy,
    /// Lesions (empty for the normal class).
    pub lesions: Vec<Lesion>,
    /// Clean label (index into `class_names`).
    pub clean_label: u8,
    /// Recorded label (after label noise).
    pub label: u8,
    /// Drawn descriptors of the lesion(s).
    pub descriptors: Option<DrawnDescriptors>,
    /// Exact posterior over the classes (same order as `class_names`).
    pub posterior: Vec<f64>,
    /// Burned-in annotations (calipers and depth scale).
    pub annotations: bool,
    /// Physics switches.
    pub switches: Switches,
}

/// The label model implied by a configuration.
pub fn label_model(cfg: &PhantomConfig) -> LabelModel {
    let prior = class_prior(cfg);
    let (prior_normal, prior_bm) = match cfg.classes {
        ClassMode::ThreeClass => (prior[0], [prior[1], prior[2]]),
        ClassMode::Binary => (0.0, [prior[0], prior[1]]),
    };
    LabelModel {
        rates: Rates::with_overlap(cfg.overlap.clamp(0.0, 1.0)),
        d_prime: cfg.d_prime.max(0.0),
        q_amb: cfg.ambiguous_fraction.clamp(0.0, 1.0),
        prior_bm,
        prior_normal,
    }
}

/// Normalised class prior (default BUSI-like).
pub fn class_prior(cfg: &PhantomConfig) -> Vec<f64> {
    let default = match cfg.classes {
        ClassMode::ThreeClass => vec![0.17, 0.56, 0.27],
        ClassMode::Binary => vec![0.68, 0.32],
    };
    let p = cfg
        .class_prior
        .clone()
        .filter(|p| p.len() == default.len())
        .unwrap_or(default);
    let s: f64 = p.iter().map(|v| v.max(0.0)).sum();
    p.iter().map(|v| v.max(0.0) / s).collect()
}

fn pick<T: Copy>(rng: &mut Rng, v: &[T]) -> T {
    v[rng.int(0, v.len() as i64 - 1) as usize]
}

/// Samples a probe geometry on a discrete grid (so scan-conversion tables are shared across images).
pub fn sample_geometry(
    rng: &mut Rng,
    preset: Preset,
    kind: ProbeKind,
    w: usize,
    h: usize,
) -> Geometry {
    let thyroid = preset == Preset::Thyroid;
    match kind {
        ProbeKind::Linear => {
            let width = pick(rng, &[38.0, 40.0, 42.0, 44.0, 46.0, 48.0, 50.0]);
            let depth = if thyroid {
                pick(rng, &[30.0, 35.0, 40.0])
            } else {
                pick(rng, &[30.0, 35.0, 40.0, 45.0, 50.0])
            };
            Geometry::new(kind, width, depth, 0.0, 0.0, w, h)
        }
        ProbeKind::Curvilinear => {
            let r = pick(rng, &[40.0, 50.0, 60.0]);
            let fov = pick(rng, &[60.0, 65.0, 70.0, 75.0]);
            let depth = if thyroid {
                pick(rng, &[40.0, 45.0, 50.0])
            } else {
                pick(rng, &[40.0, 50.0, 60.0])
            };
            Geometry::new(kind, 0.0, depth, r, fov, w, h)
        }
        ProbeKind::Sector => {
            let r = pick(rng, &[0.0, 1.5, 3.0]);
            let fov = pick(rng, &[75.0, 80.0, 85.0, 90.0]);
            let depth = pick(rng, &[40.0, 50.0, 60.0]);
            Geometry::new(kind, 0.0, depth, r, fov, w, h)
        }
    }
}

/// Samples acquisition settings for a geometry.
pub fn sample_acquisition(
    rng: &mut Rng,
    g: &Geometry,
    mean_alpha: f64,
    smoothing: Smoothing,
) -> Acquisition {
    let f0_mhz = match g.kind {
        ProbeKind::Linear => rng.range(5.5, 7.5),
        ProbeKind::Curvilinear => rng.range(3.5, 5.0),
        ProbeKind::Sector => rng.range(2.5, 3.5),
    };
    let dr = rng.range(50.0, 66.0);
    // Headroom chosen so that gland (0 dB, log-mean −2.51 dB) displays at gray ≈ 95–150.
    let gland_gray = rng.range(95.0, 150.0);
    let headroom = dr - 2.51 - gland_gray * dr / 255.0;
    let tgc_error = rng.range(-0.25, 0.25);
    let smoothing = match smoothing {
        Smoothing::Raw => 0,
        Smoothing::Light => 1,
        Smoothing::Strong => 2,
        Smoothing::Random => [0u8, 1, 2][rng.categorical(&[0.25, 0.45, 0.30])],
    };
    Acquisition {
        f0_mhz,
        dynamic_range_db: dr,
        headroom_db: headroom,
        tgc_alpha: mean_alpha * (1.0 + tgc_error),
        tgc_error,
        tgc_slider: (0..rng.int(4, 8)).map(|_| rng.range(-2.0, 2.0)).collect(),
        tgc_max_db: rng.range(45.0, 60.0),
        noise_db: headroom - dr + rng.range(-5.0, 5.0),
        gamma: if rng.bernoulli(0.4) {
            1.0
        } else {
            rng.range(0.8, 1.3)
        },
        smoothing,
        sigma_axial: rng.range(0.8, 1.4),
        sigma_lateral: rng.range(1.8, 3.5),
        focus_mm: rng.range(0.4, 0.6) * g.depth_mm,
        rayleigh_mm: rng.range(10.0, 20.0) * (g.depth_mm / 40.0).max(1.0),
    }
}

/// Samples the full case of image `index`.
pub fn sample_case(cfg: &PhantomConfig, index: u64) -> Case {
    let mut rng = Rng::for_image(cfg.seed, index, Stream::Case);
    let mut lrng = Rng::for_image(cfg.seed, index, Stream::Label);
    let w = cfg.width.clamp(8, 8192) as usize;
    let h = cfg.height.clamp(8, 8192) as usize;
    let model = label_model(cfg);
    let prior = class_prior(cfg);
    let n_classes = prior.len() as u8;
    let clean_label = rng.categorical(&prior) as u8;
    // Lesion class: 0 benign, 1 malignant, None for normal.
    let lesion_class: Option<usize> = match cfg.classes {
        ClassMode::ThreeClass => (clean_label > 0).then(|| clean_label as usize - 1),
        ClassMode::Binary => Some(clean_label as usize),
    };
    // Class-independent nuisances from here on (a separate stream would also do; order is fixed).
    let kind = match cfg.probe {
        ProbeChoice::Linear => ProbeKind::Linear,
        ProbeChoice::Curvilinear => ProbeKind::Curvilinear,
        ProbeChoice::Sector => ProbeKind::Sector,
        ProbeChoice::Mixed => [ProbeKind::Linear, ProbeKind::Curvilinear, ProbeKind::Sector]
            [rng.categorical(&[0.6, 0.25, 0.15])],
    };
    let geom = sample_geometry(&mut rng, cfg.preset, kind, w, h);
    let mut anatomy = match cfg.preset {
        Preset::Breast => Anatomy::Breast(Box::new(Breast::sample(&mut rng, &geom))),
        Preset::Thyroid => Anatomy::Thyroid(Box::new(Thyroid::sample(&mut rng, &geom))),
    };
    let acq = sample_acquisition(&mut rng, &geom, anatomy.mean_alpha(), cfg.smoothing);
    let size_frac = rng.range(0.15, 0.5);
    let second = rng.bernoulli(cfg.multi_lesion_prob.clamp(0.0, 1.0));
    let fov = (2.0 * geom.half_width())
        .min(geom.depth_mm)
        .min(if cfg.preset == Preset::Thyroid {
            40.0
        } else {
            50.0
        });
    // Descriptors (the only class-dependent draws) use their own stream so nuisances stay independent.
    let mut drng = Rng::for_image(cfg.seed, index, Stream::Descriptors);
    let mut lesions = Vec::new();
    let mut descriptors = None;
    let mut posterior = vec![0.0; n_classes as usize];
    if let Some(c) = lesion_class {
        let d = model.draw(&mut drng, c);
        let pm = model.posterior_malignant(&d);
        let off = usize::from(cfg.classes == ClassMode::ThreeClass);
        posterior[off] = 1.0 - pm;
        posterior[off + 1] = pm;
        let thyroid = cfg.preset == Preset::Thyroid;
        let n = if second { 2 } else { 1 };
        for k in 0..n {
            let mut diameter = size_frac * fov * if k == 1 { rng.range(0.45, 0.75) } else { 1.0 };
            let mut placed = None;
            for _ in 0..8 {
                let plan = LesionPlan::new(&mut rng, &d, diameter, thyroid);
                let r = plan.r_max;
                if let Some((cx, cz)) = anatomy.place_lesion(&mut rng, &geom, r, r, k == 1) {
                    let clash = lesions.iter().any(|l: &Lesion| {
                        ((l.cx - cx).powi(2) + (l.cz - cz).powi(2)).sqrt() < l.r_max + r + 1.5
                    });
                    if !clash {
                        placed = Some(plan.place(&mut rng, cx, cz, anatomy.reference_db()));
                        break;
                    }
                }
                diameter *= 0.85;
            }
            match placed {
                Some(l) => lesions.push(l),
                None if k == 0 => {
                    // Fallback: a small lesion at the host's most central site.
                    let plan = LesionPlan::new(&mut rng, &d, 0.12 * fov, thyroid);
                    let (cx, cz) = anatomy.fallback_site(&geom);
                    lesions.push(plan.place(&mut rng, cx, cz, anatomy.reference_db()));
                }
                None => {}
            }
        }
        descriptors = Some(d);
    } else {
        posterior[0] = 1.0;
    }
    let label = noisy_label(
        &mut lrng,
        clean_label,
        n_classes,
        cfg.label_noise.clamp(0.0, 1.0),
    );
    // Annotations: class-independent unless the `shortcut` knob ties them to the recorded label.
    let base = cfg.annotation_prob.clamp(0.0, 1.0);
    let s = cfg.shortcut.clamp(0.0, 1.0);
    let p_ann = if label == n_classes - 1 {
        base + s * (1.0 - base)
    } else {
        base * (1.0 - s)
    };
    let annotations = lrng.bernoulli(p_ann);
    Case {
        seed: cfg.seed,
        index,
        preset: cfg.preset,
        geom,
        acq,
        anatomy,
        lesions,
        clean_label,
        label,
        descriptors,
        posterior,
        annotations,
        switches: Switches {
            speckle: cfg.speckle,
            psf: cfg.psf,
            attenuation: cfg.attenuation,
            tgc: true,
            noise: true,
        },
    }
}
