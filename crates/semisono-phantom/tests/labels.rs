//! Label and cue bookkeeping (spec C.10, C.12 item 7).

mod common;
use common::chi_square;
use semisono_phantom::internals::*;
use semisono_phantom::{
    bayes_accuracy, generate, ClassMode, PhantomConfig, ProbeChoice, ProbeKind,
};

fn binary(t: f64, d: f64) -> PhantomConfig {
    PhantomConfig {
        classes: ClassMode::Binary,
        class_prior: Some(vec![0.5, 0.5]),
        overlap: t,
        d_prime: d,
        seed: 77,
        ..Default::default()
    }
}

fn binomial_ok(hits: usize, n: usize, p: f64) -> bool {
    let ph = hits as f64 / n as f64;
    (ph - p).abs() <= 4.0 * (p * (1.0 - p) / n as f64).sqrt() + 1e-9
}

#[test]
fn descriptor_frequencies_match_the_rate_table_at_t0() {
    let cfg = binary(0.0, 0.0);
    let n = 3000;
    // [class][descriptor] counts among non-cyst lesions; cyst counts separately.
    let mut solid = [0usize; 2];
    let mut cyst = [0usize; 2];
    let mut total = [0usize; 2];
    let mut counts = [[0usize; 8]; 2];
    for i in 0..n {
        let case = sample_case(&cfg, i);
        let c = case.clean_label as usize;
        let f = case.descriptors.as_ref().unwrap().features;
        total[c] += 1;
        if f.cyst {
            cyst[c] += 1;
            continue;
        }
        solid[c] += 1;
        let v = [
            f.irregular,
            f.not_parallel,
            f.margin == MarginClass::Circumscribed,
            f.margin == MarginClass::Spiculated,
            f.posterior == Posterior::Shadowing,
            f.posterior == Posterior::Enhancement,
            f.halo,
            f.microcalc,
        ];
        for (k, &b) in v.iter().enumerate() {
            counts[c][k] += usize::from(b);
        }
        // The recorded descriptors are rendered: the lesion shape follows them.
        let l = &case.lesions[0];
        assert_eq!(l.desc.shape == Shape::Irregular, f.irregular);
        assert_eq!(l.desc.orientation == "not-parallel", f.not_parallel);
    }
    // Hong et al. 2005 (benign, malignant) and the spec's tuning table.
    let table = [
        (62.0 / 262.0, 102.0 / 141.0),
        (34.0 / 262.0, 75.0 / 141.0),
        (160.0 / 262.0, 18.0 / 141.0),
        (3.0 / 262.0, 19.0 / 141.0),
        (0.10, 0.45),
        (0.30, 0.15),
        (0.05, 0.30),
        (0.05, 0.30),
    ];
    for (k, &(pb, pm)) in table.iter().enumerate() {
        assert!(
            binomial_ok(counts[0][k], solid[0], pb),
            "benign descriptor {k}: {}/{}",
            counts[0][k],
            solid[0]
        );
        assert!(
            binomial_ok(counts[1][k], solid[1], pm),
            "malignant descriptor {k}: {}/{}",
            counts[1][k],
            solid[1]
        );
    }
    assert!(
        binomial_ok(cyst[0], total[0], 0.25),
        "benign cysts {}/{}",
        cyst[0],
        total[0]
    );
    assert_eq!(cyst[1], 0, "malignant cysts");
    assert!(binomial_ok(total[1], n as usize, 0.5));
}

#[test]
fn at_full_overlap_descriptors_carry_no_label_information() {
    let cfg = binary(1.0, 0.0);
    assert!((bayes_accuracy(&cfg) - 0.5).abs() < 1e-9);
    let busi = PhantomConfig {
        class_prior: None,
        ..cfg.clone()
    };
    assert!((bayes_accuracy(&busi) - 0.68).abs() < 1e-9, "majority rate");
    let mut table = vec![vec![0.0; 6]; 2];
    for i in 0..2000 {
        let case = sample_case(&cfg, i);
        let c = case.clean_label as usize;
        assert!(
            (case.posterior[1] - 0.5).abs() < 1e-12,
            "posterior {:?}",
            case.posterior
        );
        let f = case.descriptors.unwrap().features;
        for (k, b) in [
            f.cyst,
            f.irregular,
            f.not_parallel,
            f.halo,
            f.microcalc,
            f.heterogeneous,
        ]
        .into_iter()
        .enumerate()
        {
            table[c][k] += f64::from(u8::from(b));
        }
    }
    // Feature counts per class are homogeneous (chi-square, df = 5, critical 20.5 at p = 0.001).
    let chi = chi_square(&table);
    assert!(chi < 20.5, "chi-square {chi}");
}

#[test]
fn exact_posterior_is_consistent_with_bayes_accuracy() {
    for (t, d) in [(0.0, 0.0), (0.5, 0.0), (0.0, 1.0)] {
        let cfg = binary(t, d);
        let acc = bayes_accuracy(&cfg);
        let n = 3000;
        let mut correct = 0;
        for i in 0..n {
            let case = sample_case(&cfg, i);
            let pred = usize::from(case.posterior[1] > 0.5);
            correct += usize::from(pred == case.clean_label as usize);
        }
        let emp = correct as f64 / n as f64;
        assert!(
            (emp - acc).abs() < 4.0 * (acc * (1.0 - acc) / n as f64).sqrt(),
            "t={t} d'={d}: empirical {emp} vs Bayes {acc}"
        );
    }
    let a0 = bayes_accuracy(&binary(0.0, 0.0));
    let a5 = bayes_accuracy(&binary(0.5, 0.0));
    let ad = bayes_accuracy(&binary(0.0, 1.0));
    assert!(a0 > a5 && ad > a0, "{a0} {a5} {ad}");
    // Three classes: normal images are always recognised.
    let three = PhantomConfig {
        overlap: 1.0,
        d_prime: 0.0,
        ..Default::default()
    };
    assert!((bayes_accuracy(&three) - (0.17 + 0.56)).abs() < 1e-9);
}

#[test]
fn nuisances_are_independent_of_the_class() {
    let cfg = PhantomConfig {
        probe: ProbeChoice::Mixed,
        seed: 5,
        annotation_prob: 0.3,
        ..Default::default()
    };
    let n = 3000;
    let mut probe = vec![vec![0.0; 3]; 3];
    let mut smooth = vec![vec![0.0; 3]; 3];
    let mut ann = vec![vec![0.0; 2]; 3];
    let mut f0 = vec![vec![0.0; 3]; 3];
    let mut size = vec![vec![0.0; 3]; 2];
    for i in 0..n {
        let case = sample_case(&cfg, i);
        let c = case.clean_label as usize;
        probe[c][case.geom.kind as usize] += 1.0;
        smooth[c][case.acq.smoothing as usize] += 1.0;
        ann[c][usize::from(case.annotations)] += 1.0;
        let (lo, hi) = match case.geom.kind {
            ProbeKind::Linear => (5.5, 7.5),
            ProbeKind::Curvilinear => (3.5, 5.0),
            ProbeKind::Sector => (2.5, 3.5),
        };
        f0[c][(((case.acq.f0_mhz - lo) / (hi - lo)) * 3.0).min(2.0) as usize] += 1.0;
        if c > 0 {
            let fov = (2.0 * case.geom.half_width())
                .min(case.geom.depth_mm)
                .min(50.0);
            let frac = case.lesions[0].diameter_mm / fov;
            size[c - 1][(((frac - 0.15) / 0.35) * 3.0).clamp(0.0, 2.0) as usize] += 1.0;
        }
    }
    for (name, t, crit) in [
        ("probe", &probe, 18.47),
        ("smoothing", &smooth, 18.47),
        ("annotations", &ann, 13.82),
        ("f0", &f0, 18.47),
        ("size", &size, 13.82),
    ] {
        let chi = chi_square(t);
        assert!(chi < crit, "{name}: chi-square {chi} (table {t:?})");
    }
}

#[test]
fn label_noise_and_shortcut_knobs() {
    let cfg = PhantomConfig {
        label_noise: 0.3,
        seed: 8,
        ..Default::default()
    };
    let n = 2000;
    let mut flips = 0;
    for i in 0..n {
        let case = sample_case(&cfg, i);
        if case.label != case.clean_label {
            flips += 1;
            assert!(case.label < 3);
        }
        // The posterior is over clean labels and supports the clean class.
        assert!(case.posterior[case.clean_label as usize] > 0.0);
    }
    assert!(binomial_ok(flips, n as usize, 0.3), "{flips} flips");
    let s = generate(
        &PhantomConfig {
            width: 48,
            height: 48,
            ..cfg.clone()
        },
        3,
    );
    assert_eq!(
        s.meta["label_flipped"].as_bool().unwrap(),
        s.label != s.clean_label
    );
    assert_eq!(
        s.meta["clean_label"].as_u64().unwrap(),
        s.clean_label as u64
    );

    let sc = PhantomConfig {
        shortcut: 1.0,
        annotation_prob: 0.3,
        seed: 8,
        ..Default::default()
    };
    for i in 0..300 {
        let case = sample_case(&sc, i);
        assert_eq!(
            case.annotations,
            case.label == 2,
            "shortcut = 1 ties annotations to the label"
        );
    }
}
