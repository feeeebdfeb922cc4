//! Breast preset: skin, subcutaneous fat with Cooper's ligaments, fibroglandular tissue with strands
//! and ducts, retromammary fat, pectoralis, fascia, chest wall with ribs, pleura and lung (spec C.7).

use super::{
    box_in_fan, evaluated_line, fill_skipped_lines, layer_depth_s, Blob, Columns, Maps, Reverb,
};
use crate::geometry::Geometry;
use crate::rng::Rng;
use crate::util::{beam_texture, Boundary, XTable};
use serde_json::{json, Value};

#[derive(Clone, Debug)]
struct Ligament {
    x0: f64,
    dx: f64,
    curve: f64,
    width: f64,
    db: f64,
}

#[derive(Clone, Debug)]
struct Strand {
    frac: f64,
    amp: f64,
    period: f64,
    phase: f64,
    width: f64,
    db: f64,
    /// Ducts are hypoechoic tubes, strands are echogenic lines.
    duct: bool,
}

/// Breast anatomy of one image.
#[derive(Clone, Debug)]
pub struct Breast {
    hw: f64,
    epi: f64,
    /// Layer boundaries as thickness curves; cumulative depth of the k-th boundary = Σ_{j ≤ k}.
    layers: [Boundary; 7],
    e_dermis: f64,
    e_fat: f64,
    e_retro: f64,
    e_pect: f64,
    /// Seed of the smooth tissue textures (generated on the beam grid at paint time).
    tex_seed: u64,
    ligaments: Vec<Ligament>,
    strands: Vec<Strand>,
    striation: (f64, f64, f64),
    /// Hypoechoic fat lobules (distractors present in every class).
    pub lobules: Vec<Blob>,
    ribs: Vec<Blob>,
}

/// Index of the layer boundaries: bottom of skin, fat, gland, retromammary fat, pectoralis, fascia,
/// chest wall (pleura).
const SKIN: usize = 0;
/// At most 6 strands and 2 ducts.
const MAX_STRANDS: usize = 8;
/// Column entries: 7 boundaries, strands, surface depth.
const NCOL: usize = 7 + MAX_STRANDS + 1;
const FAT: usize = 1;
const GLAND: usize = 2;
const RETRO: usize = 3;
const PECT: usize = 4;
const FASCIA: usize = 5;
const PLEURA: usize = 6;

impl Breast {
    /// Samples a breast anatomy for geometry `g` (all draws independent of the class).
    pub fn sample(rng: &mut Rng, g: &Geometry) -> Breast {
        let hw = g.half_width() + 2.0;
        let fov = (2.0 * hw).min(g.depth_mm).min(60.0);
        let thick = |rng: &mut Rng, lo: f64, hi: f64, wav: f64| {
            let t = rng.range(lo, hi);
            Boundary::random(rng, t, 0.03, wav * t, 0.04 * t)
        };
        let fascia = rng.range(0.5, 0.8);
        let skin = thick(rng, 1.2, 2.5, 0.05);
        let fat = thick(rng, 3.0, 12.0, 0.25);
        // The gland bottom is an absolute depth (fat waviness does not propagate to the deeper layers).
        let gl = rng.range(8.0, 18.0);
        let gland_bottom =
            Boundary::random(rng, skin.base + fat.base + gl, 0.04, 0.12 * gl, 0.03 * gl);
        let layers = [
            skin,
            fat,
            gland_bottom,
            thick(rng, 1.5, 4.0, 0.15),
            thick(rng, 5.0, 10.0, 0.08),
            Boundary::random(rng, fascia, 0.0, 0.0, 0.0),
            thick(rng, 3.0, 8.0, 0.1),
        ];
        let tex_seed = rng.next_u64();
        let ligaments = (0..rng.int(3, 8))
            .map(|_| Ligament {
                x0: rng.range(-hw, hw),
                dx: rng.range(-7.0, 7.0),
                curve: rng.range(-4.0, 4.0),
                width: rng.range(0.3, 0.5),
                db: rng.range(4.0, 8.0),
            })
            .collect();
        let mut strands: Vec<Strand> = (0..rng.int(2, 6))
            .map(|_| Strand {
                frac: rng.range(0.1, 0.9),
                amp: rng.range(0.3, 2.0),
                period: rng.range(8.0, 30.0),
                phase: rng.range(0.0, std::f64::consts::TAU),
                width: rng.range(0.25, 0.5),
                db: rng.range(3.0, 6.0),
                duct: false,
            })
            .collect();
        for _ in 0..rng.int(0, 2) {
            strands.push(Strand {
                frac: rng.range(0.2, 0.8),
                amp: rng.range(0.3, 1.5),
                period: rng.range(15.0, 40.0),
                phase: rng.range(0.0, std::f64::consts::TAU),
                width: rng.range(0.5, 1.0),
                db: -10.0,
                duct: true,
            });
        }
        let mut b = Breast {
            hw,
            epi: rng.range(0.2, 0.4),
            layers,
            e_dermis: -2.0 + 2.0 * rng.normal().clamp(-1.5, 1.5),
            e_fat: -14.0 + 2.5 * rng.normal().clamp(-1.5, 1.5),
            e_retro: rng.range(-12.0, -8.0),
            e_pect: rng.range(-8.0, -6.0),
            tex_seed,
            ligaments,
            strands,
            striation: (
                rng.range(1.5, 3.0),
                rng.sign() * rng.range(5f64, 15.0).to_radians(),
                rng.range(0.0, 6.3),
            ),
            lobules: Vec::new(),
            ribs: Vec::new(),
        };
        // Fat lobules: lesion-like dark ovals in every class (no "dark oval = lesion" shortcut).
        for _ in 0..rng.int(2, 6) {
            let d = rng.range(0.12, 0.4) * fov;
            let ratio = rng.range(1.2, 2.4);
            let (a, bb) = (0.5 * d * ratio.sqrt(), 0.5 * d / ratio.sqrt());
            let cx = rng.range(-hw + a, hw - a);
            let in_gland = rng.bernoulli(0.6);
            let (top, bot) = if in_gland {
                (b.depth(FAT, cx), b.depth(GLAND, cx))
            } else {
                (b.depth(SKIN, cx), b.depth(FAT, cx))
            };
            let cz = rng.range(top, bot.max(top + 0.1));
            let capsule = rng
                .bernoulli(0.4)
                .then(|| (rng.range(0.3, 0.5), b.e_fat + rng.range(5.0, 9.0), 1.0, 0.0));
            b.lobules.push(Blob {
                cx,
                cz,
                a,
                b: bb,
                tilt: rng.range(-0.25, 0.25),
                edge: rng.range(0.4, 1.2),
                echo: if in_gland {
                    rng.range(-15.0, -9.0)
                } else {
                    b.e_fat - rng.range(1.0, 4.0)
                },
                tex_amp: 1.5,
                alpha: 0.45,
                wall: capsule,
            });
        }
        for _ in 0..rng.int(0, 2) {
            let a = rng.range(6.0, 9.0);
            let bb = rng.range(3.5, 5.5);
            let cx = rng.range(-hw, hw);
            let cz = b.depth(PLEURA, cx) - bb + 0.8;
            b.ribs.push(Blob {
                cx,
                cz,
                a,
                b: bb,
                tilt: rng.range(-0.1, 0.1),
                edge: 0.4,
                echo: -14.0,
                tex_amp: 1.0,
                alpha: 30.0,
                wall: Some((0.7, 12.0, 0.45, 0.6)),
            });
        }
        b
    }

    /// Depths (below the transducer face) of all seven boundaries at lateral position x.
    fn depths(&self, x: f64) -> [f64; 7] {
        let skin = self.layers[SKIN].at(x).max(0.8);
        let fat = skin + self.layers[FAT].at(x).max(1.0);
        let gland = self.layers[GLAND].at(x).max(fat + 3.0);
        let mut d = [skin, fat, gland, 0.0, 0.0, 0.0, 0.0];
        for k in RETRO..=PLEURA {
            d[k] = d[k - 1] + self.layers[k].at(x).max(0.3);
        }
        d
    }

    /// Depth of boundary `k` at x.
    fn depth(&self, k: usize, x: f64) -> f64 {
        self.depths(x)[k]
    }

    fn tables(&self) -> Vec<XTable> {
        let n = 96;
        let (x0, x1) = (-self.hw - 4.0, self.hw + 4.0);
        let d: Vec<[f64; 7]> = (0..n)
            .map(|i| self.depths(x0 + (x1 - x0) * i as f64 / (n - 1) as f64))
            .collect();
        (0..7)
            .map(|k| XTable::from_values(x0, x1, d.iter().map(|v| v[k] as f32).collect()))
            .collect()
    }

    /// Paints the layered tissue, lobules and ribs.
    #[allow(clippy::needless_range_loop)]
    pub fn paint(&self, g: &Geometry) -> Maps {
        let mut maps = Maps::new(g.nz, g.nl, 0.0, 0.75);
        let tabs = self.tables();
        let (period, tilt, phase) = self.striation;
        let (st, ct) = tilt.sin_cos();
        let (st, ct) = (st / period, ct / period);
        let phase = phase / std::f64::consts::TAU;
        let mut trng = Rng::from_seed(self.tex_seed);
        let lo = beam_texture(&mut trng, g.nz, g.nl, 14.0);
        let hi = beam_texture(&mut trng, g.nz, g.nl, 40.0);
        let strand_tabs: Vec<XTable> = self
            .strands
            .iter()
            .map(|s| {
                XTable::new(-self.hw - 4.0, self.hw + 4.0, 64, |x| {
                    s.amp * (std::f64::consts::TAU * x / s.period + s.phase).sin()
                })
            })
            .collect();
        // Per-x column data: 7 boundary depths, the depth of each strand / duct, the surface depth.
        let cols = Columns::new(g, self.hw, |x: f64| -> [f64; NCOL] {
            let mut c = [0f64; NCOL];
            for k in 0..7 {
                c[k] = tabs[k].at(x);
            }
            let t = c[GLAND] - c[FAT];
            for (k, (s, tab)) in self.strands.iter().zip(&strand_tabs).enumerate() {
                c[7 + k] = c[FAT] + s.frac * t + tab.at(x);
            }
            c
        });
        let t_fat = self.layers[FAT].base.max(0.5);
        let lig_norm: Vec<f64> = self
            .ligaments
            .iter()
            .map(|l| 1.0 / (1.0 + (l.dx / t_fat).powi(2)).sqrt())
            .collect();
        // Lateral extent of each ligament (quick reject before the distance test).
        let lig_span: Vec<(f64, f64)> = self
            .ligaments
            .iter()
            .zip(&lig_norm)
            .map(|(l, &nrm)| {
                let m = 0.25 * l.curve.abs() + l.width / nrm;
                (l.x0 + l.dx.min(0.0) - m, l.x0 + l.dx.max(0.0) + m)
            })
            .collect();
        for iz in 0..g.nz {
            for il in (0..g.nl).filter(|&il| evaluated_line(il, g.nl)) {
                let (x, z) = g.beam_xz(iz, il);
                let bounds = cols.get(il, x);
                let u = layer_depth_s(bounds[NCOL - 1], z);
                let i = iz * g.nl + il;
                let (lo, hi) = (lo[i] as f64, hi[i] as f64);
                let jit = 1.2 * hi;
                let (mut e, a);
                if u < bounds[SKIN] {
                    e = self.e_dermis + 1.5 * hi;
                    a = 0.8;
                } else if u + jit < bounds[FAT] {
                    e = self.e_fat + 1.5 * lo + 2.0 * hi;
                    a = 0.45;
                    let t = (bounds[FAT] - bounds[SKIN]).max(0.5);
                    let f = ((u - bounds[SKIN]) / t).clamp(0.0, 1.0);
                    for ((l, &nrm), &(x_lo, x_hi)) in
                        self.ligaments.iter().zip(&lig_norm).zip(&lig_span)
                    {
                        if x < x_lo || x > x_hi {
                            continue;
                        }
                        let xc = l.x0 + l.dx * (1.0 - f) + l.curve * f * (1.0 - f);
                        let d = (x - xc).abs() * nrm;
                        if d < l.width {
                            e = e.max(self.e_fat + l.db * (1.0 - d / l.width) + 6.0);
                        }
                    }
                } else if u - jit < bounds[GLAND] {
                    e = 3.0 * lo + 2.5 * hi;
                    a = 0.75;
                    for (k, s) in self.strands.iter().enumerate() {
                        let zc = bounds[7 + k];
                        let d = (u - zc).abs();
                        if d < s.width {
                            let w = 1.0 - d / s.width;
                            e = if s.duct {
                                e + w * (s.db - e)
                            } else {
                                e + s.db * w
                            };
                        }
                    }
                } else if u < bounds[RETRO] {
                    e = self.e_retro + 1.5 * hi;
                    a = 0.45;
                } else if u < bounds[PECT] {
                    // Fibrillar striations: thin bright lines where the phase is near an integer.
                    let v = u * ct + x * st + phase;
                    let fr = v - v.floor();
                    let dist = fr.min(1.0 - fr);
                    e = self.e_pect + 1.5 * hi + 5.0 * (1.0 - dist / 0.14).max(0.0);
                    a = 0.95;
                } else if u < bounds[FASCIA] {
                    e = 9.0;
                    a = 1.5;
                } else if u < bounds[PLEURA] {
                    e = -8.0 + 1.5 * lo + 1.5 * hi;
                    a = 1.0;
                } else if u < bounds[PLEURA] + 0.6 {
                    e = 10.0;
                    a = 1.5;
                } else {
                    e = -10.0;
                    a = 40.0;
                }
                maps.echo[i] = e as f32;
                maps.alpha[i] = a as f32;
                if u < self.epi {
                    maps.specular(i, 8.0, 1.0, 0.8);
                } else if u >= bounds[PECT] && u < bounds[FASCIA] {
                    maps.specular(i, 9.0, 0.8, 0.3);
                } else if u >= bounds[PLEURA] && u < bounds[PLEURA] + 0.6 {
                    maps.specular(i, 10.0, 1.0, 0.5);
                }
            }
        }
        fill_skipped_lines(&mut maps);
        for l in &self.lobules {
            l.paint(g, &mut maps, &hi);
        }
        for r in &self.ribs {
            r.paint(g, &mut maps, &hi);
        }
        maps
    }

    /// Lung A-lines below the pleura.
    pub fn reverbs(&self) -> Vec<Reverb> {
        vec![Reverb {
            xmin: -self.hw,
            xmax: self.hw,
            depth: XTable::new(-self.hw - 4.0, self.hw + 4.0, 48, |x| self.depth(PLEURA, x)),
            first_db: -3.0,
            decay_db: 5.0,
            count: 3,
            width_mm: 0.6,
        }]
    }

    /// Places a lesion in the fibroglandular layer (occasionally straddling the fat).
    pub fn place_lesion(
        &mut self,
        rng: &mut Rng,
        g: &Geometry,
        a: f64,
        b: f64,
    ) -> Option<(f64, f64)> {
        let hw = g.half_width();
        for attempt in 0..40 {
            let cx = rng.range(-(hw - a - 1.0).max(0.0), (hw - a - 1.0).max(0.0));
            let top = self.depth(FAT, cx);
            let bot = self.depth(GLAND, cx);
            let mut cz = top + rng.range(0.25, 0.75) * (bot - top);
            cz = cz.max(self.depth(SKIN, cx) + b + 1.0);
            // Prefer sites clear of the fat lobules, so that the lesion is not merged with a look-alike.
            let clear = self.lobules.iter().all(|l| {
                ((l.cx - cx).powi(2) + (l.cz - cz).powi(2)).sqrt() > a.max(b) + l.a.max(l.b) + 0.5
            });
            if (clear || attempt >= 25) && box_in_fan(g, cx, cz, a, b, 0.8) {
                return Some((cx, cz));
            }
        }
        None
    }

    /// Middle of the fibroglandular layer on the probe axis (fallback lesion site).
    pub fn fallback_site(&self) -> (f64, f64) {
        (0.0, 0.5 * (self.depth(FAT, 0.0) + self.depth(GLAND, 0.0)))
    }

    /// Metadata summary.
    pub fn meta(&self) -> Value {
        let t: Vec<f64> = self
            .layers
            .iter()
            .map(|l| (l.base * 100.0).round() / 100.0)
            .collect();
        json!({
            "kind": "breast",
            "layer_thickness_mm": {
                "skin": t[SKIN], "subcutaneous_fat": t[FAT], "fibroglandular": t[GLAND],
                "retromammary_fat": t[RETRO], "pectoralis": t[PECT], "fascia": t[FASCIA], "chest_wall": t[PLEURA]
            },
            "fat_lobules": self.lobules.len(),
            "cooper_ligaments": self.ligaments.len(),
            "ribs": self.ribs.len(),
        })
    }
}
