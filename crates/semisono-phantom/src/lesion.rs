//! Lesions: a star-shaped radial function from BI-RADS descriptors, its signed distance, echo and
//! attenuation painting, calcifications, and the exact mask (spec C.8, C.9).

use crate::anatomy::Maps;
use crate::geometry::{Geometry, ScanLut};
use crate::labels::{DrawnDescriptors, MarginClass, Posterior};
use crate::rng::Rng;
use crate::util::{fast_atan2, Texture};
use serde::Serialize;
use serde_json::{json, Value};
use std::f64::consts::{PI, TAU};

/// Number of tabulated angles of the radial function.
pub const N_ANGLES: usize = 720;

/// Margin as rendered (the "other" class is split, independently of the label, into three kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Margin {
    /// Smooth radius, hard echo transition (≤ 0.15 mm).
    Circumscribed,
    /// Echo blends over 0.8–2 mm across the boundary.
    Indistinct,
    /// Polygon-like corners.
    Angular,
    /// Small high-order lobulations.
    Microlobulated,
    /// Narrow radiating spikes.
    Spiculated,
}

/// Shape descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// Oval (a/b 1.3–2.1, gentle undulations).
    Oval,
    /// Round (a/b 0.9–1.1).
    Round,
    /// Irregular (harmonics k = 2..5).
    Irregular,
}

/// Internal composition (cysts come in several class-free variants).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Composition {
    /// Solid mass.
    Solid,
    /// Simple anechoic cyst.
    Cystic,
    /// Thyroid spongiform nodule (microcysts > 50 %).
    Spongiform,
    /// Anechoic with a solid mural part.
    MixedCysticSolid,
}

/// Echogenic foci.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Foci {
    /// None.
    None,
    /// Comet-tail artefacts (colloid; benign).
    CometTail,
    /// Macrocalcification with shadow.
    Macro,
    /// Peripheral rim calcification with shadow.
    Rim,
    /// Punctate microcalcifications (malignant cue).
    Punctate,
}

/// The rendered descriptors of a lesion (label-informative and class-free parts together).
#[derive(Clone, Debug, Serialize)]
pub struct LesionDescriptors {
    /// Shape.
    pub shape: Shape,
    /// "parallel" or "not-parallel".
    pub orientation: &'static str,
    /// Margin.
    pub margin: Margin,
    /// Posterior acoustic feature.
    pub posterior: Posterior,
    /// Requested posterior change (dB) on the (left, right) half.
    pub posterior_db: [f64; 2],
    /// Echogenic halo.
    pub halo: bool,
    /// Heterogeneous internal echo.
    pub heterogeneous: bool,
    /// Composition.
    pub composition: Composition,
    /// Echogenic foci.
    pub foci: Foci,
    /// Internal echo level in dB relative to the host tissue reference.
    pub echo_db: f64,
    /// Echo pattern name.
    pub echo_pattern: &'static str,
}

/// A lesion in the physical frame.
#[derive(Clone, Debug)]
pub struct Lesion {
    /// Nominal diameter (mm).
    pub diameter_mm: f64,
    /// Centre x (mm).
    pub cx: f64,
    /// Centre z (mm).
    pub cz: f64,
    /// Base ellipse lateral semi-axis (mm).
    pub a: f64,
    /// Base ellipse axial semi-axis (mm).
    pub b: f64,
    /// Tilt (rad).
    pub tilt: f64,
    /// Radial function R(φ) at N_ANGLES + 1 angles from −π (mm).
    pub table: Vec<f32>,
    /// max R (mm).
    pub r_max: f64,
    /// Descriptors.
    pub desc: LesionDescriptors,
    /// Absolute internal echo (dB re gland).
    pub echo_abs: f64,
    /// Half-width t of the echo transition (mm).
    pub blend: f64,
    /// Heterogeneity amplitude (dB).
    pub hetero_db: f64,
    /// Halo (width mm, dB).
    pub halo: Option<(f64, f64)>,
    /// Thin refraction shadows at tangent edges.
    pub edge_shadow: bool,
    /// Coherent point reflectors (x, z, dB re gland, phase).
    pub points: Vec<(f64, f64, f64, f64)>,
    /// Macrocalcification blobs (x, z, r).
    pub macros: Vec<(f64, f64, f64)>,
    /// Rim calcification arc (centre angle, half-width angle).
    pub rim: Option<(f64, f64)>,
    /// Solid mural part (x, z, r) of a mixed cystic-solid nodule.
    pub mural: Option<(f64, f64, f64)>,
    /// Host reference echo (dB).
    pub ref_db: f64,
    tex: Texture,
    sponge: Option<Texture>,
}

/// Class-free choices and geometry needed to build a lesion.
#[derive(Clone, Debug)]
pub struct LesionPlan {
    /// Nominal (area-equivalent) diameter before shape modulation (mm); class-independent.
    pub diameter_mm: f64,
    /// Lateral semi-axis (mm).
    pub a: f64,
    /// Axial semi-axis (mm).
    pub b: f64,
    /// Tilt (rad).
    pub tilt: f64,
    /// Radial table relative to the centre.
    pub table: Vec<f32>,
    /// max R.
    pub r_max: f64,
    /// Descriptors.
    pub desc: LesionDescriptors,
    /// Edge transition half-width.
    pub blend: f64,
    /// Heterogeneity.
    pub hetero_db: f64,
    /// Halo.
    pub halo: Option<(f64, f64)>,
}

impl LesionPlan {
    /// A plain circumscribed oval (no harmonics, spikes, halo or calcifications) with internal echo
    /// `echo_db` re the host and no posterior change: the analytic reference shape for tests.
    pub fn ellipse(a: f64, b: f64, tilt: f64, echo_db: f64) -> LesionPlan {
        let table = radial_table(a, b, tilt, &[], &[], &[]);
        let r_max = table.iter().fold(0f32, |m, &v| m.max(v)) as f64;
        LesionPlan {
            diameter_mm: 2.0 * (a * b).sqrt(),
            a,
            b,
            tilt,
            table,
            r_max,
            desc: LesionDescriptors {
                shape: if (a / b - 1.0).abs() < 0.1 {
                    Shape::Round
                } else {
                    Shape::Oval
                },
                orientation: if a >= b { "parallel" } else { "not-parallel" },
                margin: Margin::Circumscribed,
                posterior: Posterior::None,
                posterior_db: [0.0, 0.0],
                halo: false,
                heterogeneous: false,
                composition: if echo_db < -30.0 {
                    Composition::Cystic
                } else {
                    Composition::Solid
                },
                foci: Foci::None,
                echo_db,
                echo_pattern: "custom",
            },
            blend: 0.075,
            hetero_db: 0.0,
            halo: None,
        }
    }

    /// Turns drawn descriptors into shape and echo parameters. `diameter` is the nominal size (mm),
    /// `thyroid` selects the thyroid cyst variants and foci rates.
    pub fn new(rng: &mut Rng, d: &DrawnDescriptors, diameter: f64, thyroid: bool) -> LesionPlan {
        let f = &d.features;
        let z = &d.cues;
        let rough = (0.3 * z[2]).exp().clamp(0.5, 2.0);
        // Composition and cyst variants (class-free given "cyst").
        let composition = if !f.cyst {
            Composition::Solid
        } else if thyroid {
            [
                Composition::Cystic,
                Composition::Spongiform,
                Composition::Cystic,
                Composition::MixedCysticSolid,
            ][rng.categorical(&[0.4, 0.25, 0.2, 0.15])]
        } else {
            Composition::Cystic
        };
        let shape = if f.irregular {
            Shape::Irregular
        } else if rng.bernoulli(0.08) {
            Shape::Round
        } else {
            Shape::Oval
        };
        let margin = match f.margin {
            MarginClass::Circumscribed => Margin::Circumscribed,
            MarginClass::Spiculated => Margin::Spiculated,
            MarginClass::Other => [Margin::Indistinct, Margin::Angular, Margin::Microlobulated]
                [rng.int(0, 2) as usize],
        };
        // Aspect ratio a/b from the orientation and the aspect cue z1.
        let mut ratio = match shape {
            Shape::Round => 1.0 - 0.05 * z[1].clamp(-2.0, 2.0),
            _ if f.not_parallel => 1.0 / (1.25 + 0.15 * z[1]).clamp(1.05, 1.7),
            _ => (1.7 - 0.25 * z[1]).clamp(1.15, 2.6),
        };
        if f.not_parallel {
            ratio = ratio.min(1.0 / ratio);
        } else {
            ratio = ratio.max(1.0 / ratio);
        }
        let r0 = 0.5 * diameter;
        let (mut a, b) = (r0 * ratio.sqrt(), r0 / ratio.sqrt());
        if f.not_parallel {
            a *= rng.range(0.85, 1.0);
        }
        let tilt = if f.not_parallel {
            rng.range(-20.0f64, 20.0)
        } else {
            rng.range(-15.0f64, 15.0)
        }
        .to_radians();
        // Radial function.
        let mut harm: Vec<(f64, f64, f64)> = Vec::new();
        match shape {
            Shape::Irregular => {
                for k in 2..=5 {
                    harm.push((
                        k as f64,
                        rng.range(0.04, 0.14) / ((k - 1) as f64).sqrt() * rough,
                        rng.range(0.0, TAU),
                    ));
                }
            }
            Shape::Oval if !f.cyst => {
                for _ in 0..rng.int(0, 2) {
                    harm.push((
                        rng.int(2, 3) as f64,
                        rng.range(0.0, 0.05),
                        rng.range(0.0, TAU),
                    ));
                }
            }
            _ => {}
        }
        if margin == Margin::Microlobulated {
            for _ in 0..3 {
                harm.push((
                    rng.int(10, 22) as f64,
                    rng.range(0.03, 0.06) * rough,
                    rng.range(0.0, TAU),
                ));
            }
        }
        let poly: Vec<(f64, f64)> = if margin == Margin::Angular {
            let n = rng.int(5, 8) as usize;
            let off = rng.range(0.0, TAU);
            let mut v: Vec<(f64, f64)> = (0..n)
                .map(|k| {
                    let ang = off + TAU * (k as f64 + rng.range(-0.25, 0.25)) / n as f64;
                    (
                        ang.rem_euclid(TAU),
                        1.0 + (rng.range(-0.2, 0.2) * rough).clamp(-0.35, 0.35),
                    )
                })
                .collect();
            v.sort_by(|p, q| p.0.total_cmp(&q.0));
            v
        } else {
            Vec::new()
        };
        let spikes: Vec<(f64, f64, f64)> = if margin == Margin::Spiculated {
            let n = (8.0 + 2.5 * z[3]).round().clamp(5.0, 12.0) as usize;
            let len = (1.0 + 0.15 * z[3]).clamp(0.7, 1.3);
            (0..n)
                .map(|_| {
                    (
                        rng.range(0.0, TAU),
                        rng.range(0.25, 0.8) * a.min(b) * len,
                        rng.range(80.0, 400.0),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        let table = radial_table(a, b, tilt, &harm, &poly, &spikes);
        let r_max = table.iter().fold(0f32, |m, &v| m.max(v)) as f64;
        // Echo level from the echo cue z0 (positive = darker = more suspicious).
        let echo_db = match composition {
            Composition::Cystic | Composition::MixedCysticSolid => rng.range(-45.0, -40.0),
            Composition::Spongiform => rng.range(-3.0, 0.0),
            Composition::Solid if f.heterogeneous => (-16.0 - 4.0 * z[0]).clamp(-28.0, 7.0),
            Composition::Solid => (-13.0 - 4.0 * z[0]).clamp(-28.0, 7.0),
        };
        let echo_pattern = match composition {
            Composition::Cystic => "anechoic",
            Composition::MixedCysticSolid => "complex-cystic-solid",
            Composition::Spongiform => "spongiform",
            Composition::Solid if echo_db > 2.5 => "hyperechoic",
            Composition::Solid if echo_db > -2.5 => "isoechoic",
            Composition::Solid if f.heterogeneous => "hypoechoic-heterogeneous",
            Composition::Solid => "hypoechoic-homogeneous",
        };
        let blend = match margin {
            Margin::Circumscribed => 0.075,
            Margin::Indistinct => (1.2 + 0.3 * z[2]).clamp(0.8, 2.0) / 2.0,
            _ => 0.2,
        };
        // Posterior change (dB) from the posterior cue z4.
        let shadow = -(14.0 + 3.0 * z[4]).clamp(8.0, 20.0);
        let enh = (7.0 - 1.5 * z[4]).clamp(4.0, 10.0);
        let posterior_db = match f.posterior {
            Posterior::None => {
                let v = (-0.5 * z[4]).clamp(-1.4, 1.4);
                [v, v]
            }
            Posterior::Enhancement => [enh, enh],
            Posterior::Shadowing => [shadow, shadow],
            Posterior::Combined => {
                if rng.bernoulli(0.5) {
                    [shadow, enh]
                } else {
                    [enh, shadow]
                }
            }
        };
        let halo = f.halo.then(|| (rng.range(0.6, 2.0), rng.range(4.0, 9.0)));
        let hetero_db = if f.heterogeneous {
            rng.range(3.0, 7.0)
        } else {
            1.0
        };
        let foci = if f.microcalc {
            Foci::Punctate
        } else if f.cyst && thyroid && composition == Composition::Cystic && rng.bernoulli(0.5) {
            Foci::CometTail
        } else if !f.cyst && rng.bernoulli(if thyroid { 0.08 } else { 0.04 }) {
            Foci::Macro
        } else if !f.cyst && thyroid && rng.bernoulli(0.05) {
            Foci::Rim
        } else {
            Foci::None
        };
        let desc = LesionDescriptors {
            shape,
            orientation: if f.not_parallel {
                "not-parallel"
            } else {
                "parallel"
            },
            margin,
            posterior: f.posterior,
            posterior_db,
            halo: f.halo,
            heterogeneous: f.heterogeneous,
            composition,
            foci,
            echo_db,
            echo_pattern,
        };
        LesionPlan {
            diameter_mm: diameter,
            a,
            b,
            tilt,
            table,
            r_max,
            desc,
            blend,
            hetero_db,
            halo,
        }
    }

    /// Places the plan at (cx, cz) with host reference echo `ref_db`; draws calcifications and textures.
    pub fn place(self, rng: &mut Rng, cx: f64, cz: f64, ref_db: f64) -> Lesion {
        let ext = self.r_max + 3.0;
        let corr = rng.range(1.0, 3.0);
        let tex = Texture::new(rng, cx - ext, cz - ext, 2.0 * ext, 2.0 * ext, corr);
        let sponge = (self.desc.composition == Composition::Spongiform).then(|| {
            let cell = rng.range(0.6, 0.9);
            Texture::new(rng, cx - ext, cz - ext, 2.0 * ext, 2.0 * ext, cell)
        });
        let mut l = Lesion {
            diameter_mm: self.diameter_mm,
            cx,
            cz,
            a: self.a,
            b: self.b,
            tilt: self.tilt,
            table: self.table,
            r_max: self.r_max,
            echo_abs: ref_db + self.desc.echo_db,
            blend: self.blend,
            hetero_db: self.hetero_db,
            halo: self.halo,
            edge_shadow: self.desc.margin == Margin::Circumscribed
                && self.desc.shape != Shape::Irregular,
            points: Vec::new(),
            macros: Vec::new(),
            rim: None,
            mural: None,
            ref_db,
            tex,
            sponge,
            desc: self.desc,
        };
        let inner = |rng: &mut Rng, l: &Lesion, frac: f64| {
            let phi = rng.range(-PI, PI);
            let r = frac * rng.uniform().sqrt() * l.radius(phi);
            (cx + r * phi.cos(), cz + r * phi.sin())
        };
        match l.desc.foci {
            Foci::Punctate => {
                for _ in 0..rng.int(3, 12) {
                    let (x, z) = inner(rng, &l, 0.8);
                    l.points
                        .push((x, z, ref_db + rng.range(12.0, 22.0), rng.range(0.0, TAU)));
                }
            }
            Foci::CometTail => {
                for _ in 0..rng.int(1, 3) {
                    let (x, z) = inner(rng, &l, 0.7);
                    let step = rng.range(0.3, 0.5);
                    let db = ref_db + rng.range(15.0, 20.0);
                    for k in 0..rng.int(4, 7) {
                        l.points
                            .push((x, z + k as f64 * step, db - 3.0 * k as f64, 0.0));
                    }
                }
            }
            Foci::Macro => {
                let (x, z) = inner(rng, &l, 0.6);
                l.macros.push((x, z, rng.range(0.5, 1.5)));
            }
            Foci::Rim => l.rim = Some((-PI / 2.0 + rng.range(-0.5, 0.5), rng.range(0.3, 0.7) * PI)),
            Foci::None => {}
        }
        if l.desc.composition == Composition::MixedCysticSolid {
            let phi = rng.range(-PI, PI);
            let r = rng.range(0.35, 0.5) * l.a.min(l.b);
            let d = l.radius(phi) - 0.8 * r;
            l.mural = Some((cx + d * phi.cos(), cz + d * phi.sin(), r));
        }
        l
    }
}

/// Tabulates `R(φ) = r_e(φ)·(1 + Σ A_k cos(kφ + ψ_k))·P(φ) + Σ_j L_j·max(0, cos(φ − φ_j))^{p_j}` at
/// N_ANGLES + 1 angles from −π. Sines and cosines advance by rotation (no per-angle libm calls), and a
/// spike is only evaluated within 0.6 rad of its direction (cos^80(0.6) < 1e-6).
fn radial_table(
    a: f64,
    b: f64,
    tilt: f64,
    harm: &[(f64, f64, f64)],
    poly: &[(f64, f64)],
    spikes: &[(f64, f64, f64)],
) -> Vec<f32> {
    let step = TAU / N_ANGLES as f64;
    let rot = |(c, s): (f64, f64), (dc, ds): (f64, f64)| (c * dc - s * ds, s * dc + c * ds);
    let (ds, dc) = step.sin_cos();
    let (s0, c0) = (-PI - tilt).sin_cos();
    let mut e = (c0, s0);
    // (current (cos, sin), per-step rotation (cos, sin), amplitude) of each harmonic.
    type Harmonic = ((f64, f64), (f64, f64), f64);
    let mut hs: Vec<Harmonic> = harm
        .iter()
        .map(|&(k, amp, ps)| {
            let (s, c) = (-k * PI + ps).sin_cos();
            let (sd, cd) = (k * step).sin_cos();
            ((c, s), (cd, sd), amp)
        })
        .collect();
    let mut out = Vec::with_capacity(N_ANGLES + 1);
    for i in 0..=N_ANGLES {
        let phi = -PI + step * i as f64;
        if i % 64 == 0 {
            // Re-anchor the recurrences to keep rounding errors negligible.
            let (s, c) = (phi - tilt).sin_cos();
            e = (c, s);
            for (h, &(k, _, ps)) in hs.iter_mut().zip(harm) {
                let (s, c) = (k * phi + ps).sin_cos();
                h.0 = (c, s);
            }
        }
        let re = a * b / ((b * e.0).powi(2) + (a * e.1).powi(2)).sqrt();
        let h: f64 = 1.0 + hs.iter().map(|h| h.2 * h.0 .0).sum::<f64>();
        let p = polygon_factor(poly, phi);
        let mut sp = 0.0;
        for &(pj, l, pw) in spikes {
            let d = (phi - pj + PI).rem_euclid(TAU) - PI;
            if d.abs() < 0.6 {
                sp += l * d.cos().powf(pw);
            }
        }
        out.push((re * h * p + sp).max(0.2 * a.min(b)) as f32);
        e = rot(e, (dc, ds));
        for h in hs.iter_mut() {
            h.0 = rot(h.0, h.1);
        }
    }
    out
}

fn polygon_factor(poly: &[(f64, f64)], phi: f64) -> f64 {
    if poly.is_empty() {
        return 1.0;
    }
    let p = phi.rem_euclid(TAU);
    let n = poly.len();
    let mut j = n - 1;
    for (k, v) in poly.iter().enumerate() {
        if v.0 > p {
            j = (k + n - 1) % n;
            break;
        }
    }
    let (a0, r0) = poly[j];
    let (a1, r1) = poly[(j + 1) % n];
    let span = (a1 - a0).rem_euclid(TAU).max(1e-9);
    let t = ((p - a0).rem_euclid(TAU) / span).clamp(0.0, 1.0);
    r0 + t * (r1 - r0)
}

impl Lesion {
    /// R(φ): boundary radius at polar angle φ = atan2(z − cz, x − cx).
    #[inline]
    pub fn radius(&self, phi: f64) -> f64 {
        let f = ((phi + PI) * (N_ANGLES as f64 / TAU)).clamp(0.0, N_ANGLES as f64 - 1e-9);
        let i = f as usize;
        let t = (f - i as f64) as f32;
        (self.table[i] + t * (self.table[i + 1] - self.table[i])) as f64
    }

    /// Signed radial distance (mm, < 0 inside): `‖p − c‖ − R(atan2)`.
    #[inline]
    pub fn sd(&self, x: f64, z: f64) -> f64 {
        let (dx, dz) = (x - self.cx, z - self.cz);
        (dx * dx + dz * dz).sqrt() - self.radius(fast_atan2(dz, dx))
    }

    /// min R (mm).
    pub fn r_min(&self) -> f64 {
        self.table.iter().fold(f32::INFINITY, |m, &v| m.min(v)) as f64
    }

    /// Axial extent through the centre along the local beam direction (mm).
    pub fn axial_length(&self, g: &Geometry) -> f64 {
        let (rf, lf) = g.to_beam(self.cx, self.cz);
        let _ = rf;
        let il = (lf.round().max(0.0) as usize).min(g.nl - 1);
        let (bx, bz) = g.beam_dir(il);
        let down = fast_atan2(bz, bx);
        let up = fast_atan2(-bz, -bx);
        self.radius(down) + self.radius(up)
    }

    /// Physical half-extent used for bounding boxes (mm).
    pub fn extent(&self) -> f64 {
        self.r_max + 2.0 * self.blend + self.halo.map_or(0.0, |h| h.0) + 0.6
    }

    /// Paints echo and attenuation over the maps (bounding-box limited). `f0` in MHz.
    pub fn paint(&self, g: &Geometry, maps: &mut Maps, f0: f64, attenuation: bool) {
        let ext = self.extent();
        let Some((r0, r1, l0, l1)) =
            g.beam_bbox(self.cx - ext, self.cx + ext, self.cz - ext, self.cz + ext)
        else {
            return;
        };
        let l_cm = (self.axial_length(g) * 0.1).max(0.05);
        let dalpha = self.desc.posterior_db.map(|p| {
            if attenuation {
                -p / (2.0 * f0 * l_cm)
            } else {
                0.0
            }
        });
        let t = self.blend;
        let (halo_w, halo_db) = self.halo.unwrap_or((0.0, 0.0));
        let ref_db = self.ref_db;
        let r_min = self.r_min();
        let accept = r_min - t.max(0.8);
        let reject2 = (self.r_max + t.max(halo_w) + 0.4).powi(2);
        for iz in r0..=r1 {
            for il in l0..=l1 {
                let (x, z) = g.beam_xz(iz, il);
                let (dx, dz) = (x - self.cx, z - self.cz);
                let d2 = dx * dx + dz * dz;
                if d2 > reject2 {
                    continue;
                }
                let d = d2.sqrt();
                // Deep inside (w = 1 and no boundary feature applies) the angle is not needed.
                let sd = if d < accept {
                    d - r_min
                } else {
                    d - self.radius(fast_atan2(dz, dx))
                };
                if sd > t.max(halo_w) + 0.4 {
                    continue;
                }
                let i = iz * maps.nl + il;
                let w = (0.5 - sd / (2.0 * t)).clamp(0.0, 1.0);
                let mut e_t = maps.echo[i] as f64;
                let a_t = maps.alpha[i] as f64;
                if w > 0.0 {
                    let mut e = self.echo_abs + self.hetero_db * self.tex.sample(x, z) as f64;
                    if let Some(sp) = &self.sponge {
                        let c = crate::util::smoothstep(-0.1, 0.25, sp.sample(x, z) as f64);
                        e += c * (-40.0 - e);
                    }
                    if let Some((mx, mz, mr)) = self.mural {
                        let dm = ((x - mx).powi(2) + (z - mz).powi(2)).sqrt();
                        let c = 1.0 - crate::util::smoothstep(mr - 0.4, mr + 0.4, dm);
                        e += c * (ref_db - 2.0 + 2.0 * self.tex.sample(x, z) as f64 - e);
                    }
                    e_t += w * (e - e_t);
                    let side = usize::from(x >= self.cx);
                    maps.alpha[i] = (a_t + w * dalpha[side]).max(0.02) as f32;
                }
                if halo_w > 0.0 && sd > 0.0 && sd < halo_w {
                    e_t += halo_db * (1.0 - sd / halo_w);
                }
                if self.edge_shadow && attenuation && sd.abs() < 0.35 && d > 1e-6 {
                    let (bx, bz) = g.beam_dir(il);
                    if ((dx * bx + dz * bz) / d).abs() < 0.2 {
                        maps.alpha[i] += (5.0 * (1.0 - sd.abs() / 0.35)) as f32;
                    }
                }
                for &(mx, mz, mr) in &self.macros {
                    let dm = ((x - mx).powi(2) + (z - mz).powi(2)).sqrt();
                    if dm < mr {
                        e_t = ref_db + 25.0;
                        if attenuation {
                            maps.alpha[i] = 15.0;
                        }
                    }
                }
                if let Some((pc, half)) = self.rim {
                    let phi = fast_atan2(dz, dx);
                    let dphi = (phi - pc + PI).rem_euclid(TAU) - PI;
                    if sd < 0.0 && sd > -0.7 && dphi.abs() < half {
                        e_t = ref_db + 22.0;
                        if attenuation {
                            maps.alpha[i] = 12.0;
                        }
                    }
                }
                maps.echo[i] = e_t as f32;
            }
        }
    }

    /// Rasterises the exact mask (255 iff sd < 0, or < halo width with `include_halo`, inside the fan)
    /// into `mask` on the output grid. With `supersample`, a pixel is set when ≥ 2 of 4 sub-samples are in.
    pub fn mask_into(
        &self,
        g: &Geometry,
        lut: &ScanLut,
        mask: &mut [u8],
        include_halo: bool,
        supersample: bool,
    ) {
        let thr = if include_halo {
            self.halo.map_or(0.0, |h| h.0)
        } else {
            0.0
        };
        let ext = self.r_max + thr + g.px_mm;
        let Some((x0, x1, y0, y1)) =
            g.out_bbox(self.cx - ext, self.cx + ext, self.cz - ext, self.cz + ext)
        else {
            return;
        };
        let q = 0.25 * g.px_mm;
        // Quick accept / reject by the extreme radii (exact: R(φ) ∈ [r_min, r_max]).
        let inner2 = (self.r_min() - 1.5 * q).max(0.0).powi(2);
        let outer2 = (self.r_max + thr + 1.5 * q).powi(2);
        for oy in y0..=y1 {
            for ox in x0..=x1 {
                let k = oy * g.out_w + ox;
                if !lut.inside(k) {
                    continue;
                }
                let (x, z) = g.out_xz(ox, oy);
                let (dx, dz) = (x - self.cx, z - self.cz);
                let d2 = dx * dx + dz * dz;
                let inside = if d2 < inner2 {
                    true
                } else if d2 > outer2 {
                    false
                } else if supersample {
                    let n = [(-q, -q), (q, -q), (-q, q), (q, q)]
                        .iter()
                        .filter(|&&(u, v)| self.sd(x + u, z + v) < thr)
                        .count();
                    n >= 2
                } else {
                    self.sd(x, z) < thr
                };
                if inside {
                    mask[k] = 255;
                }
            }
        }
    }

    /// Area enclosed by R(φ) (mm²).
    pub fn area_mm2(&self) -> f64 {
        let h = TAU / N_ANGLES as f64;
        self.table[..N_ANGLES]
            .iter()
            .map(|&r| 0.5 * (r as f64).powi(2) * h)
            .sum()
    }

    /// Metadata of this lesion.
    pub fn meta(&self) -> Value {
        let r2 = |v: f64| (v * 100.0).round() / 100.0;
        json!({
            "center_mm": [r2(self.cx), r2(self.cz)],
            "diameter_mm": r2(self.diameter_mm),
            "semi_axes_mm": [r2(self.a), r2(self.b)],
            "tilt_deg": r2(self.tilt.to_degrees()),
            "max_radius_mm": r2(self.r_max),
            "area_mm2": r2(self.area_mm2()),
            "descriptors": self.desc,
            "halo_mm": self.halo.map(|h| r2(h.0)),
            "calcifications": self.points.len() + self.macros.len() + usize::from(self.rim.is_some()),
        })
    }
}
