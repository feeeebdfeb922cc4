//! Mask exactness (spec C.9, C.12 item 5).

mod common;
use common::{add_ellipse, homogeneous_case};
use semisono_phantom::internals::*;
use semisono_phantom::{generate, PhantomConfig, Preset, ProbeChoice};

#[test]
fn ellipse_mask_matches_analytic_ellipse() {
    for (size, tilt) in [(128u32, 0.0f64), (160, 0.35), (96, -0.6)] {
        let (cfg, mut case) = homogeneous_case(size, 0.0, 0.6, 1);
        let (cx, cz, a, b) = (1.3, 18.7, 7.0, 4.0);
        add_ellipse(&mut case, (cx, cz), (a, b), tilt, -12.0, 0.0);
        let s = render_case(&cfg, &case);
        let g = &case.geom;
        let (mut inter, mut uni, mut count) = (0usize, 0usize, 0usize);
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let (x, z) = g.out_xz(ox, oy);
                let (dx, dz) = (x - cx, z - cz);
                let (u, v) = (
                    tilt.cos() * dx + tilt.sin() * dz,
                    -tilt.sin() * dx + tilt.cos() * dz,
                );
                let analytic = (u / a).powi(2) + (v / b).powi(2) < 1.0;
                let m = s.mask[oy * g.out_w + ox] == 255;
                inter += usize::from(analytic && m);
                uni += usize::from(analytic || m);
                count += usize::from(m);
                assert!(s.mask[oy * g.out_w + ox] == 0 || m, "mask values are 0/255");
            }
        }
        let iou = inter as f64 / uni as f64;
        assert!(iou >= 0.97, "IoU {iou} at {size}px tilt {tilt}");
        let px = g.px_mm;
        let area = std::f64::consts::PI * a * b / (px * px);
        let perim =
            std::f64::consts::PI * (3.0 * (a + b) - ((3.0 * a + b) * (a + 3.0 * b)).sqrt()) / px;
        assert!(
            (count as f64 - area).abs() <= perim,
            "area {count} vs {area} ± {perim}"
        );
        assert_eq!(s.lesion_masks.len(), 1);
        assert_eq!(s.lesion_masks[0], s.mask);
    }
}

#[test]
fn mask_is_independent_of_speckle_psf_and_attenuation() {
    for preset in [Preset::Breast, Preset::Thyroid] {
        let cfg = PhantomConfig {
            preset,
            probe: ProbeChoice::Mixed,
            width: 96,
            height: 96,
            seed: 3,
            ..Default::default()
        };
        let off = PhantomConfig {
            speckle: false,
            psf: false,
            attenuation: false,
            ..cfg.clone()
        };
        let mut lesions = 0;
        for i in 0..8 {
            let a = generate(&cfg, i);
            let b = generate(&off, i);
            assert_eq!(a.mask, b.mask, "index {i}");
            assert_eq!(a.lesion_masks, b.lesion_masks);
            assert_eq!(a.label, b.label);
            assert_ne!(a.image, b.image);
            lesions += usize::from(a.mask.contains(&255));
        }
        assert!(lesions >= 4);
    }
}

#[test]
fn image_and_mask_are_black_outside_the_fan() {
    for probe in [
        ProbeChoice::Curvilinear,
        ProbeChoice::Sector,
        ProbeChoice::Linear,
    ] {
        let cfg = PhantomConfig {
            probe,
            width: 80,
            height: 96,
            seed: 9,
            annotation_prob: 0.0,
            ..Default::default()
        };
        for i in 0..6 {
            let s = generate(&cfg, i);
            let case = sample_case(&cfg, i);
            let lut = scan_lut(&case.geom);
            let mut outside = 0;
            for k in 0..s.mask.len() {
                if !lut.inside(k) {
                    outside += 1;
                    assert_eq!(s.image[k], 0, "{probe:?} image at {k}");
                    assert_eq!(s.mask[k], 0, "{probe:?} mask at {k}");
                }
            }
            if probe != ProbeChoice::Linear {
                assert!(outside > 0);
            }
            // Normal images have an all-zero mask and no lesion masks.
            if s.clean_label == 0 {
                assert!(s.mask.iter().all(|&v| v == 0));
                assert!(s.lesion_masks.is_empty());
            } else {
                assert!(s.mask.contains(&255));
            }
        }
    }
}

#[test]
fn halo_and_supersampling_knobs() {
    let base = PhantomConfig {
        width: 96,
        height: 96,
        seed: 21,
        classes: semisono_phantom::ClassMode::Binary,
        ..Default::default()
    };
    let halo = PhantomConfig {
        mask_includes_halo: true,
        ..base.clone()
    };
    let ss = PhantomConfig {
        mask_supersample: true,
        ..base.clone()
    };
    let mut grown = 0;
    for i in 0..30 {
        let case = sample_case(&base, i);
        let (a, b, c) = (generate(&base, i), generate(&halo, i), generate(&ss, i));
        let n = |m: &[u8]| m.iter().filter(|&&v| v == 255).count();
        if case.lesions.iter().any(|l| l.halo.is_some()) {
            assert!(n(&b.mask) > n(&a.mask));
            grown += 1;
        } else {
            assert_eq!(a.mask, b.mask);
        }
        // Supersampled masks differ from point-sampled ones by at most a boundary ring.
        let diff = a.mask.iter().zip(&c.mask).filter(|(x, y)| x != y).count();
        assert!(
            diff <= n(&a.mask) / 3 + 8,
            "supersampling changed {diff} pixels"
        );
    }
    assert!(grown > 0, "no halo in 30 binary cases");
}
