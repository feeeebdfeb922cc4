//! Realism smoke test (spec C.12 item 8): gray levels in the range of real B-mode fixtures.

use semisono_phantom::internals::{sample_case, scan_lut};
use semisono_phantom::{generate, PhantomConfig, Preset, ProbeChoice};

#[test]
fn tissue_gray_levels_and_saturation_are_plausible() {
    for preset in [Preset::Breast, Preset::Thyroid] {
        for probe in [
            ProbeChoice::Linear,
            ProbeChoice::Curvilinear,
            ProbeChoice::Sector,
        ] {
            let cfg = PhantomConfig {
                preset,
                probe,
                width: 96,
                height: 96,
                seed: 31,
                annotation_prob: 0.0,
                ..Default::default()
            };
            let mut means = Vec::new();
            for i in 0..10 {
                let s = generate(&cfg, i);
                let lut = scan_lut(&sample_case(&cfg, i).geom);
                let inside: Vec<f64> = (0..s.image.len())
                    .filter(|&k| lut.inside(k))
                    .map(|k| s.image[k] as f64)
                    .collect();
                let n = inside.len() as f64;
                let mean = inside.iter().sum::<f64>() / n;
                let sat = inside.iter().filter(|&&v| v >= 255.0).count() as f64 / n;
                let std = (inside.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
                assert!(
                    (20.0..=170.0).contains(&mean),
                    "{preset:?} {probe:?} #{i}: mean {mean}"
                );
                assert!(
                    sat < 0.01,
                    "{preset:?} {probe:?} #{i}: saturated fraction {sat}"
                );
                assert!(
                    std > 15.0,
                    "{preset:?} {probe:?} #{i}: flat image (std {std})"
                );
                means.push(mean);
            }
            let avg = means.iter().sum::<f64>() / means.len() as f64;
            assert!(
                (40.0..=150.0).contains(&avg),
                "{preset:?} {probe:?}: tissue mean {avg}"
            );
        }
    }
}

#[test]
fn metadata_has_the_documented_fields() {
    let cfg = PhantomConfig {
        width: 64,
        height: 64,
        seed: 2,
        ..Default::default()
    };
    for i in 0..6 {
        let s = generate(&cfg, i);
        let m = &s.meta;
        for key in [
            "seed",
            "index",
            "preset",
            "class",
            "clean_class",
            "label",
            "clean_label",
            "label_flipped",
            "probe",
            "geometry",
            "pixel_spacing_mm",
            "acquisition",
            "anatomy",
            "n_lesions",
            "lesions",
            "descriptors",
            "score",
            "posterior",
            "posterior_malignant",
            "nuisance",
        ] {
            assert!(m.get(key).is_some(), "meta lacks {key}");
        }
        assert_eq!(
            m["n_lesions"].as_u64().unwrap() as usize,
            s.lesion_masks.len()
        );
        let p: f64 = m["posterior"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((p - 1.0).abs() < 1e-5);
        assert!((s.pixel_spacing_mm[0] - m["pixel_spacing_mm"].as_f64().unwrap()).abs() < 1e-3);
    }
}
