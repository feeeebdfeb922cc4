//! Tissue maps in beam space: echogenicity (dB re fibroglandular tissue), attenuation (dB/cm/MHz) and a
//! coherent (specular) amplitude, for the breast and thyroid presets (spec C.7).

mod breast;
mod thyroid;

pub use breast::Breast;
pub use thyroid::Thyroid;

use crate::geometry::Geometry;
use crate::rng::Rng;
use crate::speckle::db_to_amp;
use crate::util::{smoothstep, XTable};
use serde_json::{json, Value};

/// Beam-space tissue maps, row-major `nz × nl`.
#[derive(Clone, Debug)]
pub struct Maps {
    /// Depth samples.
    pub nz: usize,
    /// Lines.
    pub nl: usize,
    /// Echogenicity in dB re fibroglandular tissue.
    pub echo: Vec<f32>,
    /// Attenuation coefficient in dB/cm/MHz.
    pub alpha: Vec<f32>,
    /// Coherent (non-random) amplitude added to the scatterer field.
    pub coh: Vec<f32>,
}

impl Maps {
    /// Maps of the given size, filled with `echo` dB and attenuation `alpha`.
    pub fn new(nz: usize, nl: usize, echo: f32, alpha: f32) -> Maps {
        Maps {
            nz,
            nl,
            echo: vec![echo; nz * nl],
            alpha: vec![alpha; nz * nl],
            coh: vec![0.0; nz * nl],
        }
    }

    /// Makes sample `i` a (partly) specular reflector of level `db`: echo raised towards `db` plus a
    /// coherent, non-random part of relative size `coherence`.
    #[inline]
    pub fn specular(&mut self, i: usize, db: f32, weight: f32, coherence: f32) {
        if weight <= 0.0 {
            return;
        }
        let e = self.echo[i];
        self.echo[i] = e + weight * (db.max(e) - e);
        let c = coherence * weight * db_to_amp(db);
        if c > self.coh[i] {
            self.coh[i] = c;
        }
    }
}

/// An interface that reverberates: bright copies at multiples of its depth, added after attenuation
/// (trachea wall, pleura).
#[derive(Clone, Debug)]
pub struct Reverb {
    /// Lateral extent.
    pub xmin: f64,
    /// Lateral extent.
    pub xmax: f64,
    /// Depth of the interface below the transducer face, as a function of x.
    pub depth: XTable,
    /// Level of the first copy (dB, displayed after attenuation).
    pub first_db: f64,
    /// Decay per copy (dB).
    pub decay_db: f64,
    /// Number of copies (k = 2, 3, ...).
    pub count: usize,
    /// Line thickness (mm).
    pub width_mm: f64,
}

/// A filled ellipse painted over the maps: lobules, vessels, thyroid lobes, ribs.
#[derive(Clone, Debug)]
pub struct Blob {
    /// Centre x (mm).
    pub cx: f64,
    /// Centre z (mm).
    pub cz: f64,
    /// Lateral semi-axis (mm).
    pub a: f64,
    /// Axial semi-axis (mm).
    pub b: f64,
    /// Tilt (rad).
    pub tilt: f64,
    /// Width of the soft edge (mm).
    pub edge: f64,
    /// Interior echo (dB).
    pub echo: f64,
    /// Amplitude of the fine texture inside (dB per unit texture).
    pub tex_amp: f64,
    /// Interior attenuation.
    pub alpha: f64,
    /// Echogenic wall: (thickness mm, dB, fraction of the circumference from the top (1 = all),
    /// coherence of the reflection (0 = speckled, ~0.8 = specular)).
    pub wall: Option<(f64, f64, f64, f32)>,
}

impl Blob {
    /// Radial signed distance (mm, < 0 inside) and the cosine of the polar angle from the top.
    /// Returns `None` early when the point is certainly farther than `qmax` (squared normalised radius).
    #[inline]
    fn sd(
        &self,
        x: f64,
        z: f64,
        (s, c): (f64, f64),
        inv: (f64, f64),
        qmax: f64,
    ) -> Option<(f64, f64)> {
        let (dx, dz) = (x - self.cx, z - self.cz);
        let (u, v) = ((c * dx + s * dz) * inv.0, (-s * dx + c * dz) * inv.1);
        let q = u * u + v * v;
        if q > qmax {
            return None;
        }
        let d = (dx * dx + dz * dz).sqrt();
        let rn = q.sqrt();
        if rn < 1e-9 {
            return Some((-self.a.min(self.b), 1.0));
        }
        Some((d * (1.0 - 1.0 / rn), -dz / d.max(1e-9)))
    }

    /// Paints the blob over the maps (bounding-box limited).
    /// `tex` is a smooth random field on the beam grid.
    pub fn paint(&self, g: &Geometry, maps: &mut Maps, tex: &[f32]) {
        let wall_w = self.wall.map_or(0.0, |w| w.0);
        let m = self.edge + wall_w + 0.5;
        let sc = self.tilt.sin_cos();
        // Half extents of the rotated ellipse.
        let hx = ((self.a * sc.1).powi(2) + (self.b * sc.0).powi(2)).sqrt() + m;
        let hz = ((self.a * sc.0).powi(2) + (self.b * sc.1).powi(2)).sqrt() + m;
        let Some((r0, r1, l0, l1)) =
            g.beam_bbox(self.cx - hx, self.cx + hx, self.cz - hz, self.cz + hz)
        else {
            return;
        };
        let he = 0.5 * self.edge.max(1e-3);
        let inv = (1.0 / self.a, 1.0 / self.b);
        let qmax = (1.0 + (he + wall_w) / self.a.min(self.b)).powi(2);
        for iz in r0..=r1 {
            for il in l0..=l1 {
                let (x, z) = g.beam_xz(iz, il);
                let Some((sd, up)) = self.sd(x, z, sc, inv, qmax) else {
                    continue;
                };
                if sd > he + wall_w {
                    continue;
                }
                let i = iz * maps.nl + il;
                let w = 1.0 - smoothstep(-he, he, sd);
                if w > 0.0 {
                    let e = self.echo + self.tex_amp * tex[i] as f64;
                    let w = w as f32;
                    maps.echo[i] += w * (e as f32 - maps.echo[i]);
                    maps.alpha[i] += w * (self.alpha as f32 - maps.alpha[i]);
                }
                if let Some((t, db, frac, coh)) = self.wall {
                    // `up` = cos(angle from the top); keep the part within `frac` of the circumference.
                    let on_arc = up >= 1.0 - 2.0 * frac;
                    let ww = 1.0 - (sd.abs() / (0.5 * t)).min(1.0);
                    if on_arc && ww > 0.0 {
                        maps.specular(i, db as f32, ww as f32, coh);
                    }
                }
            }
        }
    }
}

/// The background anatomy of one image.
#[derive(Clone, Debug)]
pub enum Anatomy {
    /// Breast, layered (skin, fat, gland, retromammary fat, pectoralis, chest wall).
    Breast(Box<Breast>),
    /// Thyroid, transverse (strap muscles, lobes, isthmus, trachea, carotids).
    Thyroid(Box<Thyroid>),
    /// Homogeneous medium (tests and calibration).
    Homogeneous {
        /// Echo (dB).
        echo_db: f64,
        /// Attenuation (dB/cm/MHz).
        alpha: f64,
    },
}

impl Anatomy {
    /// Paints the tissue maps.
    pub fn paint(&self, g: &Geometry) -> Maps {
        match self {
            Anatomy::Breast(b) => b.paint(g),
            Anatomy::Thyroid(t) => t.paint(g),
            Anatomy::Homogeneous { echo_db, alpha } => {
                Maps::new(g.nz, g.nl, *echo_db as f32, *alpha as f32)
            }
        }
    }

    /// Reverberating interfaces.
    pub fn reverbs(&self) -> Vec<Reverb> {
        match self {
            Anatomy::Breast(b) => b.reverbs(),
            Anatomy::Thyroid(t) => t.reverbs(),
            Anatomy::Homogeneous { .. } => Vec::new(),
        }
    }

    /// Echo reference (dB) of the tissue that hosts lesions: gland (0) or thyroid parenchyma (+3).
    pub fn reference_db(&self) -> f64 {
        match self {
            Anatomy::Thyroid(t) => t.parenchyma_db,
            Anatomy::Breast(_) => 0.0,
            Anatomy::Homogeneous { echo_db, .. } => *echo_db,
        }
    }

    /// Mean attenuation the TGC is designed for.
    pub fn mean_alpha(&self) -> f64 {
        match self {
            Anatomy::Breast(_) => 0.62,
            Anatomy::Thyroid(_) => 0.72,
            Anatomy::Homogeneous { alpha, .. } => *alpha,
        }
    }

    /// Chooses the centre of a lesion of semi-axes (a, b) in a plausible host region (may enlarge
    /// the host, e.g. a thyroid lobe). Returns `None` if nothing fits.
    pub fn place_lesion(
        &mut self,
        rng: &mut Rng,
        g: &Geometry,
        a: f64,
        b: f64,
        second: bool,
    ) -> Option<(f64, f64)> {
        match self {
            Anatomy::Breast(br) => br.place_lesion(rng, g, a, b),
            Anatomy::Thyroid(t) => t.place_lesion(rng, g, a, b, second),
            Anatomy::Homogeneous { .. } => Some((0.0, 0.5 * g.depth_mm)),
        }
    }

    /// Where to put a small lesion when no placement fits (centre in mm).
    pub fn fallback_site(&self, g: &Geometry) -> (f64, f64) {
        match self {
            Anatomy::Breast(b) => b.fallback_site(),
            Anatomy::Thyroid(t) => t.fallback_site(),
            Anatomy::Homogeneous { .. } => (0.0, 0.5 * g.depth_mm),
        }
    }

    /// Geometry summary for the metadata.
    pub fn meta(&self) -> Value {
        match self {
            Anatomy::Breast(b) => b.meta(),
            Anatomy::Thyroid(t) => t.meta(),
            Anatomy::Homogeneous { echo_db, alpha } => {
                json!({"kind": "homogeneous", "echo_db": echo_db, "alpha": alpha})
            }
        }
    }

    /// Number of class-independent lesion look-alikes (fat lobules, vessels) in the image.
    pub fn distractors(&self) -> usize {
        match self {
            Anatomy::Breast(b) => b.lobules.len(),
            Anatomy::Thyroid(t) => t.vessels(),
            Anatomy::Homogeneous { .. } => 0,
        }
    }
}

/// True if the four extreme points of a box (and its centre) lie inside the fan, with a margin.
pub fn box_in_fan(g: &Geometry, cx: f64, cz: f64, a: f64, b: f64, margin: f64) -> bool {
    let (a, b) = (a + margin, b + margin);
    [
        (cx - a, cz),
        (cx + a, cz),
        (cx, cz - b),
        (cx, cz + b),
        (cx - a * 0.7, cz + b * 0.7),
        (cx + a * 0.7, cz + b * 0.7),
    ]
    .iter()
    .all(|&(x, z)| g.inside_fan(x, z))
}

/// Layered anatomy is evaluated on every other beam line (and the last one); the lines in between are
/// the mean of their neighbours. The lateral PSF (σ ≥ 1.8 lines, FWHM ≥ 4 lines) blurs far more than
/// this, and lesions and blobs are still painted on every line, so the image loses nothing visible
/// while the layer pass costs half.
#[inline]
pub fn evaluated_line(il: usize, nl: usize) -> bool {
    il & 1 == 0 || il + 1 == nl
}

/// Fills the lines skipped by [`evaluated_line`] with the mean of their neighbours.
pub fn fill_skipped_lines(maps: &mut Maps) {
    let (nz, nl) = (maps.nz, maps.nl);
    for v in [&mut maps.echo, &mut maps.alpha, &mut maps.coh] {
        for iz in 0..nz {
            let row = &mut v[iz * nl..(iz + 1) * nl];
            for il in (1..nl.saturating_sub(1)).step_by(2) {
                row[il] = 0.5 * (row[il - 1] + row[il + 1]);
            }
        }
    }
}

/// Per-x data of layered anatomy (boundary depths, ...), tabulated once per image: exactly per line for
/// linear probes (x is constant along a line), on a fine x grid (nearest entry, ≤ 0.1 mm spacing for
/// typical fans) otherwise. The last entry is the transducer-face depth `surface_z(x)`.
pub struct Columns<const N: usize> {
    linear: bool,
    x0: f64,
    inv_dx: f64,
    data: Vec<[f64; N]>,
}

impl<const N: usize> Columns<N> {
    /// Tabulates `f(x)`; `f` fills entries `0..N-1`, the surface depth is added in the last slot.
    pub fn new(g: &Geometry, half_width: f64, f: impl Fn(f64) -> [f64; N]) -> Self {
        let with_surface = |x: f64| {
            let mut c = f(x);
            c[N - 1] = g.surface_z(x);
            c
        };
        if g.kind == crate::geometry::ProbeKind::Linear {
            let data = (0..g.nl)
                .map(|il| with_surface(g.beam_xz(0, il).0))
                .collect();
            return Columns {
                linear: true,
                x0: 0.0,
                inv_dx: 0.0,
                data,
            };
        }
        let n = (4 * g.nl).max(256);
        let (x0, x1) = (-half_width - 4.0, half_width + 4.0);
        let dx = (x1 - x0) / (n - 1) as f64;
        let data = (0..n).map(|i| with_surface(x0 + i as f64 * dx)).collect();
        Columns {
            linear: false,
            x0,
            inv_dx: 1.0 / dx,
            data,
        }
    }

    /// Column of beam line `il` at lateral position `x`.
    #[inline]
    pub fn get(&self, il: usize, x: f64) -> &[f64; N] {
        if self.linear {
            &self.data[il]
        } else {
            let k = ((x - self.x0) * self.inv_dx + 0.5).max(0.0) as usize;
            &self.data[k.min(self.data.len() - 1)]
        }
    }
}

/// [`layer_depth`] with the surface depth `s = surface_z(x)` already known.
#[inline]
pub fn layer_depth_s(s: f64, z: f64) -> f64 {
    if s == 0.0 {
        z
    } else {
        z - s * crate::speckle::fast_exp(-(z.max(0.0) / 25.0) as f32) as f64
    }
}

/// Depth below the transducer face used by layered anatomy: hugs a convex footprint near the surface
/// and flattens with depth (monotonic in z).
#[inline]
pub fn layer_depth(g: &Geometry, x: f64, z: f64) -> f64 {
    let s = g.surface_z(x);
    if s == 0.0 {
        z
    } else {
        z - s * (-z.max(0.0) / 25.0).exp()
    }
}
