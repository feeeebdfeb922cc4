//! Lesions: a star-shaped radial function from BI-RADS descriptors, its signed distance, echo and
//! attenuation painting, calcifications, and the exact mask (spec C.8, C.9).

use crate::anatomy::Maps;
use crate::geometry::{Geometry, ScanLut};
use crate::labels::Posterior;
use crate::util::{fast_atan2, Texture};

mod plan;
pub use plan::LesionPlan;
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
