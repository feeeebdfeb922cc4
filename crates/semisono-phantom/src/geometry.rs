//! Probe geometry, beam-space sampling grid and scan conversion (spec C.2).
//!
//! Physical frame: `x` lateral in mm (0 at the probe centre), `z` depth in mm below the skin at the centre.
//! Beam space is `nz` depth samples (rows) by `nl` lines (columns). Output pixels are isotropic; the fan is
//! centred horizontally, top-aligned and letterboxed in black.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The transducer family of one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeKind {
    /// Linear array: rectangular field of view.
    Linear,
    /// Convex array: fan with a curved top of radius R.
    Curvilinear,
    /// Phased array: fan from a (nearly) point apex.
    Sector,
}

impl ProbeKind {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Linear => "linear",
            ProbeKind::Curvilinear => "curvilinear",
            ProbeKind::Sector => "sector",
        }
    }
}

/// Geometry of one acquisition plus the derived beam and output grids.
#[derive(Clone, Debug)]
pub struct Geometry {
    /// Probe family.
    pub kind: ProbeKind,
    /// Linear aperture width W in mm (linear probes only).
    pub width_mm: f64,
    /// Imaging depth D in mm (radial for fans).
    pub depth_mm: f64,
    /// Radius of curvature R in mm (0 for linear).
    pub radius_mm: f64,
    /// Field of view Θ in radians (fans only).
    pub fov_rad: f64,
    /// Output width in pixels.
    pub out_w: usize,
    /// Output height in pixels.
    pub out_h: usize,
    /// Isotropic output pixel size in mm.
    pub px_mm: f64,
    /// Physical x of the left edge of output column 0.
    pub x_left: f64,
    /// Physical z of the top edge of output row 0.
    pub z_top: f64,
    /// Beam-space depth samples.
    pub nz: usize,
    /// Beam-space lines.
    pub nl: usize,
    /// Depth (radial) sample spacing in mm.
    pub dz_mm: f64,
    /// Line spacing: mm for linear, radians for fans.
    pub dl: f64,
    /// Per-row depth (linear) or radius (fans) in mm.
    row_pos: Vec<f64>,
    /// Per-line x (linear) or (sin θ, cos θ) (fans).
    line_x: Vec<f64>,
    line_sin: Vec<f64>,
    line_cos: Vec<f64>,
}

impl Geometry {
    /// Builds a geometry. `width_mm` is used for linear probes, `radius_mm`/`fov_deg` for fans.
    pub fn new(
        kind: ProbeKind,
        width_mm: f64,
        depth_mm: f64,
        radius_mm: f64,
        fov_deg: f64,
        out_w: usize,
        out_h: usize,
    ) -> Geometry {
        let (radius_mm, fov_rad) = match kind {
            ProbeKind::Linear => (0.0, 0.0),
            _ => (radius_mm, fov_deg.to_radians()),
        };
        let (half_w, z_top) = match kind {
            ProbeKind::Linear => (width_mm / 2.0, 0.0),
            _ => (
                (radius_mm + depth_mm) * (fov_rad / 2.0).sin(),
                radius_mm * (fov_rad / 2.0).cos() - radius_mm,
            ),
        };
        let px_mm = (2.0 * half_w / out_w as f64).max((depth_mm - z_top) / out_h as f64);
        let nz = ((depth_mm / px_mm).round() as usize).max(8);
        let nl = ((2.0 * half_w / px_mm).round() as usize).clamp(8, 2 * out_w.max(4));
        let dz_mm = depth_mm / nz as f64;
        let dl = match kind {
            ProbeKind::Linear => width_mm / nl as f64,
            _ => fov_rad / nl as f64,
        };
        let row_pos: Vec<f64> = (0..nz)
            .map(|i| radius_mm + (i as f64 + 0.5) * dz_mm)
            .collect();
        let mut line_x = Vec::new();
        let mut line_sin = Vec::new();
        let mut line_cos = Vec::new();
        for il in 0..nl {
            match kind {
                ProbeKind::Linear => line_x.push(-width_mm / 2.0 + (il as f64 + 0.5) * dl),
                _ => {
                    let th = -fov_rad / 2.0 + (il as f64 + 0.5) * dl;
                    line_sin.push(th.sin());
                    line_cos.push(th.cos());
                }
            }
        }
        Geometry {
            kind,
            width_mm,
            depth_mm,
            radius_mm,
            fov_rad,
            out_w,
            out_h,
            px_mm,
            x_left: -(out_w as f64) * px_mm / 2.0,
            z_top,
            nz,
            nl,
            dz_mm,
            dl,
            row_pos,
            line_x,
            line_sin,
            line_cos,
        }
    }

    /// Half the lateral extent of the fan (mm).
    pub fn half_width(&self) -> f64 {
        match self.kind {
            ProbeKind::Linear => self.width_mm / 2.0,
            _ => (self.radius_mm + self.depth_mm) * (self.fov_rad / 2.0).sin(),
        }
    }

    /// Physical position of beam sample (row `iz`, line `il`).
    #[inline]
    pub fn beam_xz(&self, iz: usize, il: usize) -> (f64, f64) {
        match self.kind {
            ProbeKind::Linear => (self.line_x[il], self.row_pos[iz]),
            _ => {
                let r = self.row_pos[iz];
                (
                    r * self.line_sin[il],
                    r * self.line_cos[il] - self.radius_mm,
                )
            }
        }
    }

    /// Unit beam direction (lateral, axial components) of line `il`.
    #[inline]
    pub fn beam_dir(&self, il: usize) -> (f64, f64) {
        match self.kind {
            ProbeKind::Linear => (0.0, 1.0),
            _ => (self.line_sin[il], self.line_cos[il]),
        }
    }

    /// Depth of beam row `iz` below the transducer face (mm).
    #[inline]
    pub fn row_depth(&self, iz: usize) -> f64 {
        (iz as f64 + 0.5) * self.dz_mm
    }

    /// Continuous beam coordinates (row, line) of a physical point; sample centres are integers.
    #[inline]
    pub fn to_beam(&self, x: f64, z: f64) -> (f64, f64) {
        match self.kind {
            ProbeKind::Linear => (
                z / self.dz_mm - 0.5,
                (x + self.width_mm / 2.0) / self.dl - 0.5,
            ),
            _ => {
                let zz = z + self.radius_mm;
                let r = (x * x + zz * zz).sqrt();
                let th = x.atan2(zz);
                (
                    (r - self.radius_mm) / self.dz_mm - 0.5,
                    (th + self.fov_rad / 2.0) / self.dl - 0.5,
                )
            }
        }
    }

    /// True if the physical point lies inside the imaged field of view.
    #[inline]
    pub fn inside_fan(&self, x: f64, z: f64) -> bool {
        match self.kind {
            ProbeKind::Linear => {
                x.abs() <= self.width_mm / 2.0 && (0.0..=self.depth_mm).contains(&z)
            }
            _ => {
                let zz = z + self.radius_mm;
                let r = (x * x + zz * zz).sqrt();
                r >= self.radius_mm
                    && r <= self.radius_mm + self.depth_mm
                    && x.atan2(zz).abs() <= self.fov_rad / 2.0
            }
        }
    }

    /// Depth of the transducer face below z = 0 at lateral position x (0 for linear, <= 0 for fans).
    #[inline]
    pub fn surface_z(&self, x: f64) -> f64 {
        match self.kind {
            ProbeKind::Linear => 0.0,
            _ => {
                let r = self.radius_mm;
                let xx = x.abs().min(r);
                (r * r - xx * xx).sqrt() - r
            }
        }
    }

    /// Physical centre of output pixel (column `ox`, row `oy`).
    #[inline]
    pub fn out_xz(&self, ox: usize, oy: usize) -> (f64, f64) {
        (
            self.x_left + (ox as f64 + 0.5) * self.px_mm,
            self.z_top + (oy as f64 + 0.5) * self.px_mm,
        )
    }

    /// Inclusive ranges (row0, row1, line0, line1) of beam samples that can fall in a physical box,
    /// or `None` when the box misses the beam grid.
    pub fn beam_bbox(
        &self,
        xmin: f64,
        xmax: f64,
        zmin: f64,
        zmax: f64,
    ) -> Option<(usize, usize, usize, usize)> {
        let (r0, r1, l0, l1) = match self.kind {
            ProbeKind::Linear => {
                let (a, c) = self.to_beam(xmin, zmin);
                let (b, d) = self.to_beam(xmax, zmax);
                (a, b, c, d)
            }
            _ => {
                let rr = self.radius_mm;
                // Apex at (0, -R): nearest point of the box to the apex, farthest corner.
                let cx = 0.0f64.clamp(xmin, xmax);
                let cz = (-rr).clamp(zmin, zmax);
                let rmin = (cx * cx + (cz + rr).powi(2)).sqrt();
                let corners = [(xmin, zmin), (xmin, zmax), (xmax, zmin), (xmax, zmax)];
                let mut rmax: f64 = 0.0;
                let mut tmin = f64::INFINITY;
                let mut tmax = f64::NEG_INFINITY;
                for (x, z) in corners {
                    let zz = z + rr;
                    rmax = rmax.max((x * x + zz * zz).sqrt());
                    let t = x.atan2(zz.max(1e-9));
                    tmin = tmin.min(t);
                    tmax = tmax.max(t);
                }
                (
                    (rmin - rr) / self.dz_mm - 0.5,
                    (rmax - rr) / self.dz_mm - 0.5,
                    (tmin + self.fov_rad / 2.0) / self.dl - 0.5,
                    (tmax + self.fov_rad / 2.0) / self.dl - 0.5,
                )
            }
        };
        clamp_range(r0, r1, self.nz)
            .and_then(|(a, b)| clamp_range(l0, l1, self.nl).map(|(c, d)| (a, b, c, d)))
    }

    /// Inclusive output pixel ranges (x0, x1, y0, y1) covering a physical box, or `None`.
    pub fn out_bbox(
        &self,
        xmin: f64,
        xmax: f64,
        zmin: f64,
        zmax: f64,
    ) -> Option<(usize, usize, usize, usize)> {
        let fx = |x: f64| (x - self.x_left) / self.px_mm - 0.5;
        let fz = |z: f64| (z - self.z_top) / self.px_mm - 0.5;
        clamp_range(fx(xmin), fx(xmax), self.out_w).and_then(|(a, b)| {
            clamp_range(fz(zmin), fz(zmax), self.out_h).map(|(c, d)| (a, b, c, d))
        })
    }

    /// Key identifying the scan-conversion lookup table of this geometry.
    fn lut_key(&self) -> [u64; 7] {
        [
            self.kind as u64,
            self.width_mm.to_bits(),
            self.depth_mm.to_bits(),
            self.radius_mm.to_bits(),
            self.fov_rad.to_bits(),
            self.out_w as u64,
            self.out_h as u64,
        ]
    }
}

fn clamp_range(a: f64, b: f64, n: usize) -> Option<(usize, usize)> {
    let lo = a.min(b).floor();
    let hi = a.max(b).ceil();
    if hi < 0.0 || lo > (n - 1) as f64 {
        return None;
    }
    Some((lo.max(0.0) as usize, (hi as usize).min(n - 1)))
}

/// Scan-conversion table: for each output pixel, the top-left beam sample and bilinear weights.
#[derive(Debug)]
pub struct ScanLut {
    /// `row * nl + line` of the top-left neighbour, or `u32::MAX` outside the fan.
    pub idx: Vec<u32>,
    /// Fractional row and line weights.
    pub frac: Vec<[f32; 2]>,
}

impl ScanLut {
    fn build(g: &Geometry) -> ScanLut {
        let n = g.out_w * g.out_h;
        let mut idx = vec![u32::MAX; n];
        let mut frac = vec![[0f32; 2]; n];
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let (x, z) = g.out_xz(ox, oy);
                if !g.inside_fan(x, z) {
                    continue;
                }
                let (rf, lf) = g.to_beam(x, z);
                let rf = rf.clamp(0.0, (g.nz - 1) as f64 - 1e-6);
                let lf = lf.clamp(0.0, (g.nl - 1) as f64 - 1e-6);
                let (r0, l0) = (rf.floor(), lf.floor());
                let k = oy * g.out_w + ox;
                idx[k] = (r0 as usize * g.nl + l0 as usize) as u32;
                frac[k] = [(rf - r0) as f32, (lf - l0) as f32];
            }
        }
        ScanLut { idx, frac }
    }

    /// Resamples a beam-space image (row-major `nz x nl`) onto the output grid; 0 outside the fan.
    pub fn apply(&self, beam: &[f32], nl: usize, out: &mut [f32]) {
        for ((o, &i), f) in out.iter_mut().zip(&self.idx).zip(&self.frac) {
            if i == u32::MAX {
                *o = 0.0;
                continue;
            }
            let i = i as usize;
            let (fr, fl) = (f[0], f[1]);
            let top = beam[i] + fl * (beam[i + 1] - beam[i]);
            let bot = beam[i + nl] + fl * (beam[i + nl + 1] - beam[i + nl]);
            *o = top + fr * (bot - top);
        }
    }

    /// Resamples a beam-space display image (values in [0, 1]) straight to 8-bit output pixels
    /// (round to nearest); 0 outside the fan.
    pub fn apply_u8(&self, beam: &[f32], nl: usize) -> Vec<u8> {
        self.idx
            .iter()
            .zip(&self.frac)
            .map(|(&i, f)| {
                if i == u32::MAX {
                    return 0;
                }
                let i = i as usize;
                let (fr, fl) = (f[0], f[1]);
                let top = beam[i] + fl * (beam[i + 1] - beam[i]);
                let bot = beam[i + nl] + fl * (beam[i + nl + 1] - beam[i + nl]);
                ((top + fr * (bot - top)) * 255.0 + 0.5).clamp(0.0, 255.0) as u8
            })
            .collect()
    }

    /// True if output pixel `k` is inside the fan.
    #[inline]
    pub fn inside(&self, k: usize) -> bool {
        self.idx[k] != u32::MAX
    }
}

/// Returns the (cached) scan-conversion table of a geometry.
pub fn scan_lut(g: &Geometry) -> Arc<ScanLut> {
    type Cache = Mutex<HashMap<[u64; 7], Arc<ScanLut>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let key = g.lut_key();
    if let Some(l) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return l.clone();
    }
    let lut = Arc::new(ScanLut::build(g));
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if c.len() >= 256 {
        c.clear();
    }
    c.insert(key, lut.clone());
    lut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_is_near_identity() {
        let g = Geometry::new(ProbeKind::Linear, 40.0, 40.0, 0.0, 0.0, 128, 128);
        assert_eq!((g.nz, g.nl), (128, 128));
        let (x, z) = g.beam_xz(10, 20);
        let (r, l) = g.to_beam(x, z);
        assert!((r - 10.0).abs() < 1e-9 && (l - 20.0).abs() < 1e-9);
        let (ox, oz) = g.out_xz(20, 10);
        assert!((ox - x).abs() < 1e-9 && (oz - z).abs() < 1e-9);
    }

    #[test]
    fn convex_roundtrip_and_fan() {
        let g = Geometry::new(ProbeKind::Curvilinear, 0.0, 80.0, 50.0, 60.0, 128, 128);
        let (x, z) = g.beam_xz(40, 7);
        let (r, l) = g.to_beam(x, z);
        assert!((r - 40.0).abs() < 1e-9 && (l - 7.0).abs() < 1e-9);
        assert!(g.inside_fan(0.0, 1.0));
        assert!(!g.inside_fan(0.0, -1.0));
        assert!(!g.inside_fan(g.half_width() * 0.99, 1.0));
        let lut = scan_lut(&g);
        let inside = (0..128 * 128).filter(|&k| lut.inside(k)).count();
        assert!(inside > 128 * 128 / 3 && inside < 128 * 128);
        // Corners of the output are outside the fan.
        assert!(!lut.inside(0) && !lut.inside(127));
        let (a, b, c, d) = g.beam_bbox(-5.0, 5.0, 20.0, 30.0).unwrap();
        assert!(a <= b && c <= d);
    }
}
