//! Building a lesion from its descriptors: shape parameters, the tabulated radial function, echo,
//! posterior change, halo and calcifications (spec C.8).

use super::{Composition, Foci, Lesion, LesionDescriptors, Margin, Shape, N_ANGLES};
use crate::labels::{DrawnDescriptors, MarginClass, Posterior};
use crate::rng::Rng;
use crate::util::Texture;
use std::f64::consts::{PI, TAU};

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
