//! Rendering a sampled case: tissue maps → scatterers → PSF → attenuation/TGC/noise → log compression →
//! smoothing → scan conversion → annotations, plus the exact masks and the metadata (spec C.1).

use crate::anatomy::layer_depth;
use crate::case::Case;
use crate::geometry::{scan_lut, ProbeKind};
use crate::lesion::{Composition, Foci, Margin, Shape};
use crate::rng::{Rng, Stream};
use crate::speckle::{
    axial_pass, binomial3, db_to_amp, fast_db10, fill_field, gaussian_kernel, lateral_kernels,
    lateral_pass,
};
use crate::{class_names, PhantomConfig, PhantomSample, Preset};
use serde_json::{json, Value};

/// Largest accumulated round-trip attenuation (dB); beyond it the signal is gone anyway.
const ATT_MAX_DB: f32 = 90.0;

/// Beam-space result of a render.
#[derive(Clone, Debug)]
pub struct BeamImage {
    /// Depth samples.
    pub nz: usize,
    /// Lines.
    pub nl: usize,
    /// Echo after gain and noise, 10·log10(I² + Q²) (dB).
    pub db: Vec<f32>,
    /// Display value in [0, 1] after log compression, gamma and smoothing.
    pub display: Vec<f32>,
}

/// Renders a case in beam space.
pub fn render_beam(case: &Case) -> BeamImage {
    let g = &case.geom;
    let acq = &case.acq;
    let sw = case.switches;
    let (nz, nl) = (g.nz, g.nl);
    let n = nz * nl;
    let mut maps = case.anatomy.paint(g);
    for l in &case.lesions {
        l.paint(g, &mut maps, acq.f0_mhz, sw.attenuation);
    }
    // Round-trip attenuation: running sum down each beam line.
    let mut att = vec![0f32; n];
    if sw.attenuation {
        let k = (2.0 * acq.f0_mhz * g.dz_mm * 0.1) as f32;
        let mut acc = vec![0f32; nl];
        for iz in 0..nz {
            let row = iz * nl;
            for il in 0..nl {
                let a = maps.alpha[row + il] * k;
                let v = acc[il] + 0.5 * a;
                att[row + il] = v.min(ATT_MAX_DB);
                acc[il] = (v + 0.5 * a).min(ATT_MAX_DB);
            }
        }
    }
    // TGC (with residual error, slider noise and a maximum gain).
    let tgc: Vec<f32> = (0..nz)
        .map(|iz| {
            if !(sw.tgc && sw.attenuation) {
                return 0.0;
            }
            let d = g.row_depth(iz);
            let s = slider(&acq.tgc_slider, d / g.depth_mm);
            (2.0 * acq.tgc_alpha * acq.f0_mhz * d * 0.1 + s).min(acq.tgc_max_db) as f32
        })
        .collect();
    // Reverberation copies of strong interfaces (A-lines, tracheal rings): coherent bands added after
    // attenuation and TGC, so they show inside the shadow they sit in.
    let mut rev = vec![0f32; n];
    for r in &case.anatomy.reverbs() {
        let Some((_, _, l0, l1)) = g.beam_bbox(r.xmin, r.xmax, 0.0, g.depth_mm) else {
            continue;
        };
        let sig = (0.5 * r.width_mm).max(acq.sigma_axial * g.dz_mm);
        let taper = 0.15 * (r.xmax - r.xmin);
        for il in l0..=l1 {
            // Linear probes: only the rows near the copies; fans: all rows (u is not the row depth).
            let rows = if g.kind == ProbeKind::Linear {
                let di = r.depth.at(g.beam_xz(0, il).0);
                let lo = ((2.0 * di - 3.0 * sig) / g.dz_mm).max(0.0) as usize;
                let hi = (((1.0 + r.count as f64) * di + 3.0 * sig) / g.dz_mm + 1.0) as usize;
                lo.min(nz)..hi.min(nz)
            } else {
                0..nz
            };
            for iz in rows {
                let (x, z) = g.beam_xz(iz, il);
                if x < r.xmin || x > r.xmax {
                    continue;
                }
                let di = r.depth.at(x);
                if di < 1.0 {
                    continue;
                }
                let u = layer_depth(g, x, z);
                let k = ((u / di + 0.5) as i32) as f64;
                if k < 2.0 || k >= 2.0 + r.count as f64 {
                    continue;
                }
                let dd = u - k * di;
                if dd.abs() < 3.0 * sig {
                    let edge = crate::util::smoothstep(0.0, taper, (x - r.xmin).min(r.xmax - x));
                    let a = db_to_amp((r.first_db - r.decay_db * (k - 2.0)) as f32) as f64
                        * (-0.5 * (dd / sig).powi(2)).exp()
                        * edge;
                    rev[iz * nl + il] += a as f32;
                }
            }
        }
    }
    // Scatterer field.
    let amp: Vec<f32> = maps.echo.iter().map(|&e| db_to_amp(e)).collect();
    let (mut re, mut im) = (Vec::new(), Vec::new());
    let mut srng = Rng::for_image(case.seed, case.index, Stream::Speckle);
    fill_field(&amp, &maps.coh, &mut srng, sw.speckle, &mut re, &mut im);
    drop(amp);
    let (kernels, row_k) = lateral_kernels(
        nz,
        g.dz_mm,
        acq.sigma_lateral,
        acq.focus_mm,
        acq.rayleigh_mm,
        2.0,
    );
    // Coherent point reflectors (calcifications, comet tails): peak level = their dB after the PSF.
    for l in &case.lesions {
        for &(x, z, db, ph) in &l.points {
            let (rf, lf) = g.to_beam(x, z);
            let (iz, il) = (rf.round(), lf.round());
            if iz < 0.0 || il < 0.0 || iz >= nz as f64 || il >= nl as f64 {
                continue;
            }
            let (iz, il) = (iz as usize, il as usize);
            let kp = if sw.psf {
                let d = g.row_depth(iz);
                let sl = (acq.sigma_lateral
                    * (1.0 + ((d - acq.focus_mm) / acq.rayleigh_mm).powi(2)).sqrt())
                .min(2.0 * acq.sigma_lateral);
                (std::f64::consts::PI * acq.sigma_axial * sl).sqrt()
            } else {
                1.0
            };
            let a = db_to_amp(db as f32) as f64 * kp;
            re[iz * nl + il] += (a * ph.cos()) as f32;
            im[iz * nl + il] += (a * ph.sin()) as f32;
        }
    }
    // Separable PSF.
    if sw.psf {
        let ha = gaussian_kernel(acq.sigma_axial);
        let mut tmp = vec![0f32; n];
        let mut pad = Vec::new();
        for buf in [&mut re, &mut im] {
            axial_pass(buf, &mut tmp, nz, nl, &ha);
            std::mem::swap(buf, &mut tmp);
            lateral_pass(buf, nz, nl, &kernels, &row_k, &mut pad);
        }
    }
    // Electronic noise, envelope, log compression.
    let sigma_n = if sw.noise {
        (10f64.powf(acq.noise_db / 10.0) / 2.0).sqrt() as f32
    } else {
        0.0
    };
    let mut nrng = Rng::for_image(case.seed, case.index, Stream::Noise);
    let mut noise = vec![0f32; 2 * nl];
    let mut db: Vec<f32> = Vec::with_capacity(n);
    for (iz, &tg) in tgc.iter().enumerate() {
        if sigma_n > 0.0 {
            nrng.fill_normals(&mut noise);
        }
        let s = iz * nl..(iz + 1) * nl;
        let (nr, ni) = noise.split_at(nl);
        let row = re[s.clone()]
            .iter()
            .zip(&im[s.clone()])
            .zip(&att[s.clone()])
            .zip(&rev[s])
            .zip(nr.iter().zip(ni));
        db.extend(row.map(|((((&a, &b), &at), &r), (&n1, &n2))| {
            let f = db_to_amp(tg - at);
            let ii = a * f + r + sigma_n * n1;
            let qq = b * f + sigma_n * n2;
            fast_db10(ii * ii + qq * qq)
        }));
    }
    // Display mapping: [H − DR, H] → [0, 1], optional gamma (table), smoothing.
    let lo = (acq.headroom_db - acq.dynamic_range_db) as f32;
    let inv_dr = 1.0 / acq.dynamic_range_db as f32;
    let gamma_lut: Option<Vec<f32>> = (acq.gamma != 1.0).then(|| {
        (0..=1024)
            .map(|i| (i as f64 / 1024.0).powf(acq.gamma) as f32)
            .collect()
    });
    let mut display: Vec<f32> = db
        .iter()
        .map(|&d| {
            let v = ((d - lo) * inv_dr).clamp(0.0, 1.0);
            match &gamma_lut {
                Some(t) => {
                    let f = v * 1024.0;
                    let k = (f as usize).min(1023);
                    t[k] + (f - k as f32) * (t[k + 1] - t[k])
                }
                None => v,
            }
        })
        .collect();
    let mut tmp = Vec::new();
    for _ in 0..acq.smoothing {
        binomial3(&mut display, nz, nl, &mut tmp);
    }
    BeamImage {
        nz,
        nl,
        db,
        display,
    }
}

/// Smooth interpolation of TGC slider control points over t ∈ [0, 1].
fn slider(points: &[f64], t: f64) -> f64 {
    if points.is_empty() {
        return 0.0;
    }
    let f = (t.clamp(0.0, 1.0) * (points.len() - 1) as f64).min((points.len() - 1) as f64);
    let i = (f as usize).min(points.len().saturating_sub(2));
    if points.len() == 1 {
        return points[0];
    }
    let u = f - i as f64;
    let s = u * u * (3.0 - 2.0 * u);
    points[i] + s * (points[i + 1] - points[i])
}

/// Renders a case into a sample (image, masks, labels, metadata).
pub fn render(cfg: &PhantomConfig, case: &Case) -> PhantomSample {
    let g = &case.geom;
    let beam = render_beam(case);
    let lut = scan_lut(g);
    let (w, h) = (g.out_w, g.out_h);
    let mut image = lut.apply_u8(&beam.display, beam.nl);
    let mut mask = vec![0u8; w * h];
    let mut lesion_masks = Vec::with_capacity(case.lesions.len());
    for l in &case.lesions {
        let mut m = vec![0u8; w * h];
        l.mask_into(
            g,
            &lut,
            &mut m,
            cfg.mask_includes_halo,
            cfg.mask_supersample,
        );
        for (o, &v) in mask.iter_mut().zip(&m) {
            *o |= v;
        }
        lesion_masks.push(m);
    }
    if case.annotations {
        annotate(case, &mut image);
    }
    PhantomSample {
        width: w as u32,
        height: h as u32,
        image,
        mask,
        lesion_masks,
        label: case.label,
        clean_label: case.clean_label,
        pixel_spacing_mm: [g.px_mm, g.px_mm],
        meta: meta(cfg, case),
    }
}

/// Burned-in annotations: calipers on the lesion, a depth scale and a few "text" dashes.
fn annotate(case: &Case, image: &mut [u8]) {
    let g = &case.geom;
    let (w, h) = (g.out_w as i64, g.out_h as i64);
    let mut rng = Rng::for_image(case.seed, case.index, Stream::Label);
    for _ in 0..4 {
        rng.next_u64();
    }
    let mut put = |x: i64, y: i64, v: u8| {
        if x >= 0 && y >= 0 && x < w && y < h {
            image[(y * w + x) as usize] = v;
        }
    };
    let arm = (w.min(h) / 64).max(2);
    let to_px = |x: f64, z: f64| {
        (
            ((x - g.x_left) / g.px_mm) as i64,
            ((z - g.z_top) / g.px_mm) as i64,
        )
    };
    if let Some(l) = case.lesions.first() {
        let t = l.tilt;
        let mut ends = vec![(t, 1.0), (t + std::f64::consts::PI, 1.0)];
        if rng.bernoulli(0.5) {
            ends.push((t + std::f64::consts::FRAC_PI_2, 1.0));
            ends.push((t - std::f64::consts::FRAC_PI_2, 1.0));
        }
        for (phi, s) in ends {
            let r = l.radius(crate::util::fast_atan2(phi.sin(), phi.cos())) * s;
            let (px, py) = to_px(l.cx + r * phi.cos(), l.cz + r * phi.sin());
            for k in -arm..=arm {
                put(px + k, py, 235);
                put(px, py + k, 235);
            }
        }
    }
    // Depth scale: dots every 10 mm along the right edge.
    let xs = w - 1 - arm;
    let mut d = 10.0;
    while d < g.depth_mm {
        let y = ((d - g.z_top) / g.px_mm) as i64;
        for k in 0..=arm / 2 + 1 {
            put(xs + k, y, 200);
        }
        d += 10.0;
    }
    // "Text": short dashes in the top-left corner.
    for row in 0..rng.int(1, 3) {
        let y = 2 + row * 3;
        let mut x = 2;
        for _ in 0..rng.int(3, 8) {
            let len = rng.int(1, 3);
            for k in 0..len {
                put(x + k, y, 190);
            }
            x += len + 1;
        }
    }
}

const SMOOTHING_NAMES: [&str; 3] = ["raw", "light", "strong"];

fn r2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// BI-RADS-like category (breast) or ACR TI-RADS points and level (thyroid) of the first lesion.
pub fn score(case: &Case) -> Value {
    let Some(l) = case.lesions.first() else {
        return json!({"system": if case.preset == Preset::Thyroid { "ACR TI-RADS" } else { "BI-RADS-like" }, "category": "1"});
    };
    let d = &l.desc;
    if case.preset == Preset::Thyroid {
        let (comp, echo) = match d.composition {
            Composition::Cystic => (0, 0),
            Composition::Spongiform => (0, 0),
            Composition::MixedCysticSolid => (1, 1),
            Composition::Solid if d.echo_db > -2.5 => (2, 1),
            Composition::Solid if d.echo_db > -11.0 => (2, 2),
            Composition::Solid => (2, 3),
        };
        let shape = if d.orientation == "not-parallel" {
            3
        } else {
            0
        };
        let margin = if matches!(
            d.margin,
            Margin::Angular | Margin::Microlobulated | Margin::Spiculated
        ) || d.shape == Shape::Irregular
        {
            2
        } else {
            0
        };
        let foci = match d.foci {
            Foci::Punctate => 3,
            Foci::Rim => 2,
            Foci::Macro => 1,
            _ => 0,
        };
        let pts = if d.composition == Composition::Spongiform {
            0
        } else {
            comp + echo + shape + margin + foci
        };
        let level = match pts {
            0 | 1 => "TR1",
            2 => "TR2",
            3 => "TR3",
            4..=6 => "TR4",
            _ => "TR5",
        };
        json!({"system": "ACR TI-RADS", "points": pts, "level": level,
               "composition": comp, "echogenicity": echo, "shape": shape, "margin": margin, "echogenic_foci": foci})
    } else {
        if d.composition == Composition::Cystic {
            return json!({"system": "BI-RADS-like", "category": "2", "suspicious_features": 0});
        }
        let n = usize::from(d.shape == Shape::Irregular)
            + usize::from(d.orientation == "not-parallel")
            + usize::from(d.margin != Margin::Circumscribed)
            + usize::from(d.margin == Margin::Spiculated)
            + usize::from(matches!(
                d.posterior,
                crate::labels::Posterior::Shadowing | crate::labels::Posterior::Combined
            ))
            + usize::from(d.foci == Foci::Punctate)
            + usize::from(d.halo);
        let cat = match n {
            0 => "3",
            1 => "4a",
            2 => "4b",
            3 | 4 => "4c",
            _ => "5",
        };
        json!({"system": "BI-RADS-like", "category": cat, "suspicious_features": n})
    }
}

/// Per-image metadata.
pub fn meta(cfg: &PhantomConfig, case: &Case) -> Value {
    let names = class_names(cfg);
    let g = &case.geom;
    let a = &case.acq;
    let geometry = match g.kind {
        ProbeKind::Linear => json!({"width_mm": g.width_mm, "depth_mm": g.depth_mm}),
        _ => {
            json!({"radius_mm": g.radius_mm, "fov_deg": r2(g.fov_rad.to_degrees()), "depth_mm": g.depth_mm})
        }
    };
    let pm = case.posterior.last().copied().unwrap_or(0.0);
    json!({
        "seed": case.seed,
        "index": case.index,
        "preset": if case.preset == Preset::Thyroid { "thyroid" } else { "breast" },
        "class": names[case.label as usize],
        "clean_class": names[case.clean_label as usize],
        "label": case.label,
        "clean_label": case.clean_label,
        "label_flipped": case.label != case.clean_label,
        "probe": g.kind.name(),
        "geometry": geometry,
        "pixel_spacing_mm": r2(g.px_mm * 1000.0) / 1000.0,
        "beam_grid": [g.nz, g.nl],
        "acquisition": {
            "f0_mhz": r2(a.f0_mhz), "dynamic_range_db": r2(a.dynamic_range_db), "headroom_db": r2(a.headroom_db),
            "tgc_error": r2(a.tgc_error), "tgc_max_db": r2(a.tgc_max_db), "noise_db": r2(a.noise_db), "gamma": r2(a.gamma),
            "smoothing": SMOOTHING_NAMES[a.smoothing.min(2) as usize],
            "psf": {"sigma_axial_px": r2(a.sigma_axial), "sigma_lateral_px": r2(a.sigma_lateral),
                    "focus_mm": r2(a.focus_mm), "rayleigh_mm": r2(a.rayleigh_mm)},
        },
        "anatomy": case.anatomy.meta(),
        "n_lesions": case.lesions.len(),
        "lesions": case.lesions.iter().map(|l| l.meta()).collect::<Vec<_>>(),
        "descriptors": case.descriptors.as_ref().map(|d| json!({
            "features": d.features, "cues": d.cues.map(|v| (v * 1e4).round() / 1e4), "ambiguous": d.ambiguous,
        })),
        "score": score(case),
        "posterior": case.posterior.iter().map(|&p| (p * 1e6).round() / 1e6).collect::<Vec<_>>(),
        "posterior_malignant": (pm * 1e6).round() / 1e6,
        "nuisance": {
            "annotations": case.annotations,
            "distractors": case.anatomy.distractors(),
        },
    })
}
