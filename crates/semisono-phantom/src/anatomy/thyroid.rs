//! Thyroid preset (transverse): skin, subcutis, strap and sternocleidomastoid muscles, two lobes and the
//! isthmus, trachea with air shadow and reverberation, carotids, jugulars, longus colli, esophagus (C.7).

use super::{
    box_in_fan, evaluated_line, fill_skipped_lines, layer_depth_s, Blob, Columns, Maps, Reverb,
};
use crate::geometry::{Geometry, ProbeKind};
use crate::rng::Rng;
use crate::util::{beam_texture, smoothstep, Boundary, XTable};
use serde_json::{json, Value};

#[derive(Clone, Debug)]
struct Lobe {
    cx: f64,
    cz: f64,
    a: f64,
    b: f64,
    tilt: f64,
}

/// Thyroid anatomy of one image.
#[derive(Clone, Debug)]
pub struct Thyroid {
    hw: f64,
    /// Neck midline (x, mm).
    xm: f64,
    epi: f64,
    dermis: Boundary,
    subcut: Boundary,
    strap: f64,
    scm: f64,
    e_fat: f64,
    e_muscle: f64,
    e_deep: f64,
    /// Echo of the thyroid parenchyma (dB): the TI-RADS echogenicity reference.
    pub parenchyma_db: f64,
    lobes: [Lobe; 2],
    isthmus: f64,
    trachea_top: f64,
    rho: f64,
    cartilage: f64,
    carotid_r: [f64; 2],
    carotid_gap: [f64; 2],
    carotid_dz: [f64; 2],
    jugular: [(f64, f64, f64); 2],
    esophagus_side: Option<f64>,
    /// Seed of the smooth tissue textures (generated on the beam grid at paint time).
    tex_seed: u64,
    fib: (f64, f64),
}

impl Thyroid {
    /// Samples a thyroid anatomy for geometry `g` (independent of the class).
    pub fn sample(rng: &mut Rng, g: &Geometry) -> Thyroid {
        let hw = g.half_width() + 2.0;
        // Probe position relative to the neck midline. Narrow-topped fans are centred over a lobe.
        let pan = match g.kind {
            ProbeKind::Linear if rng.bernoulli(0.5) => 0.0,
            ProbeKind::Linear => rng.sign() * rng.range(7.0, 14.0),
            ProbeKind::Curvilinear if rng.bernoulli(0.5) => rng.sign() * rng.range(4.0, 10.0),
            _ => rng.sign() * rng.range(12.0, 16.0),
        };
        let xm = -pan;
        let dermis_t = rng.range(1.2, 2.0);
        let dermis = Boundary::random(rng, dermis_t, 0.02, 0.1, 0.05);
        let sub_t = rng.range(1.0, 3.0);
        let subcut = Boundary::random(rng, sub_t, 0.03, 0.4, 0.2);
        let strap = rng.range(2.0, 4.0);
        let scm = rng.range(4.0, 8.0);
        let isthmus = rng.range(3.0, 5.0);
        let musc_bot = dermis_t + sub_t + strap;
        let trachea_top = (musc_bot + isthmus + rng.range(0.3, 1.0)).max(rng.range(9.0, 12.0));
        let rho = rng.range(8.0, 11.0);
        let mut lobes = [0, 1].map(|k| {
            let side = if k == 0 { -1.0 } else { 1.0 };
            let a = rng.range(7.5, 10.0);
            let b = rng.range(6.0, 10.0);
            Lobe {
                cx: xm + side * rng.range(12.0, 16.0),
                cz: musc_bot + b + rng.range(0.2, 0.8),
                a,
                b,
                tilt: side * rng.range(0.0, 0.25),
            }
        });
        // Lobes reach the trachea medially.
        for l in &mut lobes {
            let gap = (l.cx - xm).abs() - l.a;
            if gap > rho * 0.8 {
                l.a += gap - rho * 0.8;
            }
        }
        let tex_seed = rng.next_u64();
        Thyroid {
            hw,
            xm,
            epi: rng.range(0.2, 0.4),
            dermis,
            subcut,
            strap,
            scm,
            e_fat: rng.range(-16.0, -11.0),
            e_muscle: rng.range(-9.0, -7.0),
            e_deep: rng.range(-10.0, -6.0),
            parenchyma_db: 3.0 + 1.5 * rng.normal().clamp(-1.5, 1.5),
            lobes,
            isthmus,
            trachea_top,
            rho,
            cartilage: rng.range(1.2, 2.0),
            carotid_r: [rng.range(3.0, 4.0), rng.range(3.0, 4.0)],
            carotid_gap: [rng.range(0.5, 3.0), rng.range(0.5, 3.0)],
            carotid_dz: [rng.range(0.0, 4.0), rng.range(0.0, 4.0)],
            jugular: [0, 1].map(|_| {
                (
                    rng.range(3.0, 5.0),
                    rng.range(1.2, 3.5),
                    rng.range(1.0, 3.0),
                )
            }),
            esophagus_side: rng.bernoulli(0.5).then_some(1.0),
            tex_seed,
            fib: (rng.range(1.2, 2.2), rng.range(0.0, 6.3)),
        }
    }

    fn muscle_bottom(&self, x: f64) -> f64 {
        let lateral = smoothstep(17.0, 26.0, (x - self.xm).abs());
        self.dermis.at(x) + self.subcut.at(x) + self.strap + (self.scm - self.strap) * lateral
    }

    fn trachea_center(&self) -> (f64, f64) {
        (self.xm, self.trachea_top + self.rho)
    }

    /// Carotid (cx, cz, r) and jugular blobs on side k.
    fn vessels_of(&self, k: usize) -> (Blob, Blob) {
        let l = &self.lobes[k];
        let side = if l.cx < self.xm { -1.0 } else { 1.0 };
        let r = self.carotid_r[k];
        let cx = l.cx + side * (l.a + self.carotid_gap[k] + r);
        let cz = l.cz + self.carotid_dz[k];
        let carotid = Blob {
            cx,
            cz,
            a: r,
            b: r,
            tilt: 0.0,
            edge: 0.3,
            echo: -40.0,
            tex_amp: 0.0,
            alpha: 0.1,
            wall: Some((0.6, 8.0, 1.0, 0.5)),
        };
        let (ja, jb, jdz) = self.jugular[k];
        let jugular = Blob {
            cx: cx + side * (r + ja * 0.6),
            cz: cz - r - jb + jdz * 0.5,
            a: ja,
            b: jb,
            tilt: side * 0.3,
            edge: 0.4,
            echo: -35.0,
            tex_amp: 0.0,
            alpha: 0.1,
            wall: None,
        };
        (carotid, jugular)
    }

    /// Paints the neck.
    pub fn paint(&self, g: &Geometry) -> Maps {
        let mut maps = Maps::new(g.nz, g.nl, self.e_deep as f32, 0.9);
        // Per-x columns: dermis bottom, subcutis bottom, muscle bottom, surface depth.
        let cols = Columns::new(g, self.hw, |x| {
            let d = self.dermis.at(x);
            [d, d + self.subcut.at(x), self.muscle_bottom(x), 0.0]
        });
        let kf = 1.0 / self.fib.0;
        let ph = self.fib.1 / std::f64::consts::TAU;
        let mut trng = Rng::from_seed(self.tex_seed);
        let lo = beam_texture(&mut trng, g.nz, g.nl, 14.0);
        let hi = beam_texture(&mut trng, g.nz, g.nl, 40.0);
        for iz in 0..g.nz {
            for il in (0..g.nl).filter(|&il| evaluated_line(il, g.nl)) {
                let (x, z) = g.beam_xz(iz, il);
                let c = cols.get(il, x);
                let u = layer_depth_s(c[3], z);
                let i = iz * g.nl + il;
                let (lo, hi) = (lo[i] as f64, hi[i] as f64);
                let (e, a) = if u < c[0] {
                    (-2.0 + 1.5 * hi, 0.8)
                } else if u < c[1] {
                    (self.e_fat + 2.0 * hi, 0.45)
                } else if u < c[2] {
                    // Fibrillar muscle: fine echogenic lines roughly parallel to the skin.
                    let v = kf * (u + 0.08 * x) + ph;
                    let fr = v - v.floor();
                    let dist = fr.min(1.0 - fr);
                    (
                        self.e_muscle + 1.5 * hi + 4.0 * (1.0 - dist / 0.12).max(0.0),
                        1.0,
                    )
                } else {
                    (self.e_deep + 2.0 * lo + 1.5 * hi, 0.9)
                };
                maps.echo[i] = e as f32;
                maps.alpha[i] = a as f32;
                if u < self.epi {
                    maps.specular(i, 8.0, 1.0, 0.8);
                }
            }
        }
        fill_skipped_lines(&mut maps);
        let (tx, tz) = self.trachea_center();
        // Longus colli: posterior hypoechoic triangles beside the trachea.
        for side in [-1.0, 1.0] {
            Blob {
                cx: tx + side * (self.rho + 4.0),
                cz: tz + 0.7 * self.rho,
                a: 7.0,
                b: 3.5,
                tilt: side * 0.4,
                edge: 1.0,
                echo: -11.0,
                tex_amp: 2.0,
                alpha: 0.9,
                wall: None,
            }
            .paint(g, &mut maps, &hi);
        }
        // Lobes and isthmus: homogeneous "ground glass" parenchyma with a thin capsule.
        let p = self.parenchyma_db;
        for l in &self.lobes {
            Blob {
                cx: l.cx,
                cz: l.cz,
                a: l.a,
                b: l.b,
                tilt: l.tilt,
                edge: 0.6,
                echo: p,
                tex_amp: 1.0,
                alpha: 0.7,
                wall: Some((0.4, p + 4.0, 1.0, 0.0)),
            }
            .paint(g, &mut maps, &hi);
        }
        let span = (self.lobes[1].cx - self.lobes[0].cx).abs() * 0.5;
        Blob {
            cx: tx,
            cz: self.trachea_top - 0.5 * self.isthmus,
            a: span,
            b: 0.5 * self.isthmus,
            tilt: 0.0,
            edge: 0.6,
            echo: p,
            tex_amp: 1.0,
            alpha: 0.7,
            wall: None,
        }
        .paint(g, &mut maps, &hi);
        if let Some(side) = self.esophagus_side {
            let (ex, ez) = (tx + side * (self.rho * 0.7 + 3.0), tz + self.rho * 0.55);
            Blob {
                cx: ex,
                cz: ez,
                a: 4.5,
                b: 3.5,
                tilt: 0.0,
                edge: 0.5,
                echo: -6.0,
                tex_amp: 1.0,
                alpha: 0.9,
                wall: None,
            }
            .paint(g, &mut maps, &hi);
            Blob {
                cx: ex,
                cz: ez,
                a: 2.5,
                b: 1.5,
                tilt: 0.0,
                edge: 0.5,
                echo: 2.0,
                tex_amp: 1.0,
                alpha: 0.9,
                wall: None,
            }
            .paint(g, &mut maps, &hi);
        }
        for k in 0..2 {
            let (c, j) = self.vessels_of(k);
            j.paint(g, &mut maps, &hi);
            c.paint(g, &mut maps, &hi);
        }
        self.paint_trachea(g, &mut maps);
        maps
    }

    fn paint_trachea(&self, g: &Geometry, maps: &mut Maps) {
        let (tx, tz) = self.trachea_center();
        let rho = self.rho;
        let inner = rho - self.cartilage;
        let Some((r0, r1, l0, l1)) = g.beam_bbox(
            tx - rho - 1.0,
            tx + rho + 1.0,
            tz - rho - 1.0,
            tz + rho + 1.0,
        ) else {
            return;
        };
        for iz in r0..=r1 {
            for il in l0..=l1 {
                let (x, z) = g.beam_xz(iz, il);
                let d = ((x - tx).powi(2) + (z - tz).powi(2)).sqrt();
                if d > rho + 0.3 {
                    continue;
                }
                let i = iz * maps.nl + il;
                if z < tz + 0.2 * rho && d > inner {
                    let w = 1.0 - smoothstep(rho - 0.3, rho + 0.3, d);
                    maps.echo[i] += w as f32 * (-15.0 - maps.echo[i]);
                    maps.alpha[i] = 0.9;
                }
                if d <= inner {
                    maps.alpha[i] = 40.0;
                    maps.echo[i] = -20.0;
                }
                let wd = (d - inner).abs();
                if z < tz && wd < 0.4 {
                    maps.specular(i, 10.0, (1.0 - wd / 0.4) as f32, 0.8);
                }
            }
        }
    }

    /// Reverberation arcs of the tracheal wall.
    pub fn reverbs(&self) -> Vec<Reverb> {
        let (tx, tz) = self.trachea_center();
        let inner = self.rho - self.cartilage;
        vec![Reverb {
            xmin: tx - 0.9 * inner,
            xmax: tx + 0.9 * inner,
            depth: XTable::new(tx - inner, tx + inner, 64, |x| {
                tz - (inner * inner - (x - tx).powi(2)).max(0.0).sqrt()
            }),
            first_db: 3.0,
            decay_db: 4.0,
            count: 3,
            width_mm: 0.5,
        }]
    }

    /// Number of vessels (anechoic look-alikes).
    pub fn vessels(&self) -> usize {
        4
    }

    /// Places a nodule inside a visible lobe, enlarging the lobe to contain it.
    pub fn place_lesion(
        &mut self,
        rng: &mut Rng,
        g: &Geometry,
        a: f64,
        b: f64,
        second: bool,
    ) -> Option<(f64, f64)> {
        let hw = g.half_width();
        let visible: Vec<usize> = (0..2)
            .filter(|&k| self.lobes[k].cx.abs() < hw - 3.0)
            .collect();
        let mut order: Vec<usize> = if visible.is_empty() {
            let k = if self.lobes[0].cx.abs() < self.lobes[1].cx.abs() {
                0
            } else {
                1
            };
            vec![k]
        } else {
            visible
        };
        if order.len() == 2 && (rng.bernoulli(0.5) ^ second) {
            order.swap(0, 1);
        }
        for &k in &order {
            for _ in 0..20 {
                let saved = self.lobes[k].clone();
                let l = &mut self.lobes[k];
                let ox = rng.range(-0.35, 0.35) * l.a;
                let oz = rng.range(-0.3, 0.3) * l.b;
                l.a = l.a.max(ox.abs() + a + 1.5);
                l.b = l.b.max(oz.abs() + b + 1.5);
                let side = if l.cx < self.xm { -1.0 } else { 1.0 };
                let gap = (l.cx - self.xm).abs() - l.a;
                if gap < self.rho * 0.3 {
                    l.cx += side * (self.rho * 0.3 - gap);
                }
                let (lcx, lb) = (l.cx, l.b);
                let top = self.muscle_bottom(lcx);
                let l = &mut self.lobes[k];
                l.cz = l.cz.max(top + lb + 0.2);
                let (cx, cz) = (l.cx + ox, l.cz + oz);
                if box_in_fan(g, cx, cz, a, b, 0.8) {
                    return Some((cx, cz));
                }
                self.lobes[k] = saved;
            }
        }
        None
    }

    /// Centre of the lobe nearest to the probe axis (fallback lesion site).
    pub fn fallback_site(&self) -> (f64, f64) {
        let l = if self.lobes[0].cx.abs() < self.lobes[1].cx.abs() {
            &self.lobes[0]
        } else {
            &self.lobes[1]
        };
        (l.cx, l.cz)
    }

    /// Metadata summary.
    pub fn meta(&self) -> Value {
        let r2 = |v: f64| (v * 100.0).round() / 100.0;
        json!({
            "kind": "thyroid",
            "midline_x_mm": r2(self.xm),
            "parenchyma_db": r2(self.parenchyma_db),
            "lobes": self.lobes.iter().map(|l| json!({"center_mm": [r2(l.cx), r2(l.cz)], "semi_axes_mm": [r2(l.a), r2(l.b)]})).collect::<Vec<_>>(),
            "trachea": {"top_mm": r2(self.trachea_top), "radius_mm": r2(self.rho)},
            "esophagus": self.esophagus_side.is_some(),
        })
    }
}
