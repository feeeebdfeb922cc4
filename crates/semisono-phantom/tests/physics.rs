//! Cyst contrast, lesion CNR and posterior shadowing/enhancement (spec C.12 items 3–4).

mod common;
use common::{add_ellipse, homogeneous_case, mean_std};
use semisono_phantom::internals::*;

/// dB values of the beam samples whose signed distance to lesion 0 lies in `[lo, hi)`.
fn region_db(case: &Case, beam: &BeamImage, lo: f64, hi: f64) -> Vec<f64> {
    let g = &case.geom;
    let l = &case.lesions[0];
    let mut v = Vec::new();
    for iz in 0..g.nz {
        for il in 0..g.nl {
            let (x, z) = g.beam_xz(iz, il);
            let sd = l.sd(x, z);
            if sd >= lo && sd < hi {
                v.push(beam.db[iz * g.nl + il] as f64);
            }
        }
    }
    v
}

#[test]
fn cyst_is_anechoic_and_lesion_cnr_matches_speckle() {
    let (_, mut case) = homogeneous_case(192, 0.0, 0.6, 0);
    case.switches.attenuation = false;
    case.switches.noise = false;
    add_ellipse(&mut case, (-2.0, 20.0), (7.0, 5.0), 0.1, -45.0, 0.0);
    let beam = render_beam(&case);
    let (inside, _) = mean_std(&region_db(&case, &beam, -100.0, -1.5));
    let (ring, _) = mean_std(&region_db(&case, &beam, 2.0, 6.0));
    assert!(inside - ring <= -30.0, "cyst contrast {} dB", inside - ring);

    // A −10 dB lesion: CNR ≈ 10 / 5.57 ≈ 1.8.
    let mut cnrs = Vec::new();
    for index in 0..3 {
        let (_, mut case) = homogeneous_case(192, 0.0, 0.6, index);
        case.switches.attenuation = false;
        case.switches.noise = false;
        add_ellipse(&mut case, (0.0, 20.0), (9.0, 7.0), 0.0, -10.0, 0.0);
        let beam = render_beam(&case);
        let (mi, si) = mean_std(&region_db(&case, &beam, -100.0, -1.5));
        let (mo, so) = mean_std(&region_db(&case, &beam, 2.0, 8.0));
        assert!((mo - mi - 10.0).abs() < 1.0, "contrast {}", mo - mi);
        cnrs.push((mo - mi) / ((si * si + so * so) / 2.0).sqrt());
    }
    let cnr = cnrs.iter().sum::<f64>() / cnrs.len() as f64;
    assert!((cnr - 1.8).abs() < 0.25, "CNR {cnr}");
}

/// Mean dB below the lesion (central band) minus the neighbouring columns, averaged over realisations.
fn posterior_change(requested: f64) -> f64 {
    let mut diffs = Vec::new();
    for index in 0..4 {
        // Tissue attenuation high enough that the requested enhancement is physically reachable
        // (enhancement is capped at 2·α·f0·L: the lesion cannot attenuate less than nothing).
        let (_, mut case) = homogeneous_case(256, 0.0, 1.0, index);
        case.switches.noise = false;
        let (cx, cz, a, b) = (0.0, 14.0, 7.0, 4.0);
        add_ellipse(&mut case, (cx, cz), (a, b), 0.0, 0.0, requested);
        let beam = render_beam(&case);
        let g = &case.geom;
        let (mut below, mut side) = (Vec::new(), Vec::new());
        for iz in 0..g.nz {
            for il in 0..g.nl {
                let (x, z) = g.beam_xz(iz, il);
                if z < cz + b + 2.0 || z > g.depth_mm - 1.0 {
                    continue;
                }
                let dx = (x - cx).abs();
                let v = beam.db[iz * g.nl + il] as f64;
                if dx < 0.3 * a {
                    below.push(v);
                } else if dx > a + 3.0 && dx < a + 9.0 {
                    side.push(v);
                }
            }
        }
        diffs.push(mean_std(&below).0 - mean_std(&side).0);
    }
    diffs.iter().sum::<f64>() / diffs.len() as f64
}

#[test]
fn posterior_shadow_and_enhancement_match_request() {
    for requested in [-12.0, 8.0] {
        let got = posterior_change(requested);
        assert!(
            (got - requested).abs() < 1.5,
            "requested {requested} dB, got {got:.2} dB"
        );
    }
    let none = posterior_change(0.0);
    assert!(none.abs() < 1.5, "no posterior feature, got {none:.2} dB");
}
