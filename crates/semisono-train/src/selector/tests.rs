//! Selector tests: every number of Hermes spec §14.4 and MLRPL spec §12.1 / §12.5.

use super::*;

/// Half a unit of the oracle's last printed digit, plus 1e-9 relative.
fn close(got: f64, want: &str) {
    let w: f64 = want.parse().unwrap();
    let decimals = want.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    let tol = 0.5 * 10f64.powi(-decimals) + 1e-9 * w.abs();
    assert!((got - w).abs() <= tol, "got {got:.12}, want {want}");
}

const T: [bool; 4] = [true; 4];

/// §14.4's four classifier outputs.
const P4: [f64; 8] = [0.9, 0.1, 0.8, 0.2, 0.85, 0.15, 0.3, 0.7];

#[test]
fn class_thresholds_oracle() {
    let t = class_thresholds(&[0, 0, 0, 1], 2, 0.5, 0.95);
    close(t[0], "0.8375");
    close(t[1], "0.6125");
    let t = class_thresholds(&[0, 0, 1, 2, 2, 2, 2, 2], 3, 0.5, 0.95);
    close(t[0], "0.6125");
    close(t[1], "0.55625");
    close(t[2], "0.78125");
    // An absent class gets exactly T_min; a class that is everything gets T_max.
    assert_eq!(
        class_thresholds(&[1, 1], 3, 0.5, 0.95),
        vec![0.5, 0.95, 0.5]
    );
    assert_eq!(class_thresholds(&[], 2, 0.5, 0.95), vec![0.5, 0.5]);
}

#[test]
fn dual_threshold_oracle() {
    let probs = Probs::rows(&P4[..], 2);
    let d = DualThreshold::hermes(3000).evaluate(&probs, 1);
    assert_eq!(d.pseudo.labels, vec![0, 0, 0, 1]);
    assert_eq!(d.pseudo.confidence, vec![0.9, 0.8, 0.85, 0.7]);
    close(d.thresholds[0], "0.8375");
    close(d.thresholds[1], "0.6125");
    assert_eq!(d.conf, vec![true, false, true, true]);
    for (h, want) in
        d.pseudo
            .entropy
            .iter()
            .zip(["0.325080973", "0.500400424", "0.422707088", "0.610862302"])
    {
        close(*h, want);
    }
    close(d.tau, "0.521031880");
    assert_eq!(d.certain(), vec![true, true, true, false]);
    assert_eq!(d.classifier_keep(), vec![true, false, true, false]);
    assert_eq!(d.seg_dice_keep(DiceKeep::Or), T.to_vec());
    assert_eq!(
        d.seg_dice_keep(DiceKeep::And),
        vec![true, false, true, false]
    );
    assert_eq!(
        d.contrast_keep(ContrastKeep::EntropyOnly),
        vec![true, true, true, false]
    );
    assert_eq!(
        d.contrast_labels(ContrastKeep::ConfAndCertain),
        vec![0, -1, 0, -1]
    );
    assert_eq!(
        d.contrast_labels(ContrastKeep::EntropyOnly),
        vec![0, 0, 0, -1]
    );

    // Through the trait, each rule gives the same masks.
    let sel = |rule| {
        DualThreshold::hermes(3000)
            .with_rule(rule)
            .select(&probs, None, 1)
    };
    assert_eq!(sel(KeepRule::Classifier).keep, d.classifier_keep());
    assert_eq!(sel(KeepRule::SegDice(DiceKeep::Or)).keep, T.to_vec());
    assert_eq!(
        sel(KeepRule::Contrast(ContrastKeep::ConfAndCertain)).keep,
        vec![true, false, true, false]
    );
    assert_eq!(sel(KeepRule::Classifier).labels, vec![0, 0, 0, 1]);
    assert_eq!(sel(KeepRule::Classifier).keep_fraction(), 0.5);

    // f32 data (as pulled from a tensor) gives the same decisions.
    let p32: Vec<f32> = P4.iter().map(|&p| p as f32).collect();
    let d32 = DualThreshold::hermes(3000).evaluate(&Probs::rows(&p32, 2), 1);
    assert_eq!(d32.classifier_keep(), d.classifier_keep());
    assert_eq!(d32.seg_dice_keep(DiceKeep::Or), T.to_vec());
}

#[test]
fn entropy_ramp_relaxes_the_filter() {
    // At t = T, τ = ln 2: the uncertain fourth row (H = 0.61) becomes certain.
    let probs = Probs::rows(&P4[..], 2);
    let d = DualThreshold::hermes(3000).evaluate(&probs, 3000);
    assert_eq!(d.tau, std::f64::consts::LN_2);
    assert_eq!(d.certain(), T.to_vec());
    assert_eq!(d.classifier_keep(), vec![true, false, true, true]);
}

#[test]
fn strict_comparisons_at_the_boundary() {
    // conf is p > T strictly: one class everywhere gives T = 0.95, and p = 0.95 is not confident.
    let p = [0.95, 0.05, 0.96, 0.04];
    let d = DualThreshold::hermes(3000).evaluate(&Probs::rows(&p[..], 2), 1);
    assert_eq!(d.thresholds[0], 0.95);
    assert_eq!(d.conf, vec![false, true]);
    // At H = τ exactly the classifier calls the row uncertain (H < τ fails) while the segmenter
    // does not call it uncertain (H > τ fails), so the Dice OR keeps it.
    let mut d = d;
    d.tau = d.pseudo.entropy[0];
    assert!(!d.certain()[0]);
    assert!(d.seg_dice_keep(DiceKeep::Or)[0]);
    assert!(!d.seg_dice_keep(DiceKeep::And)[0]);
    assert!(d.contrast_keep(ContrastKeep::EntropyOnly)[0]);
}

#[test]
fn channels_first_equals_row_major() {
    // Two images of three pixels, 2 classes, NCHW; the rows are pixel-major per image.
    let rows = [
        [0.9, 0.1],
        [0.6, 0.4],
        [0.2, 0.8],
        [0.55, 0.45],
        [0.99, 0.01],
        [0.3, 0.7],
    ];
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    let mut nchw = vec![0.0; 12];
    for (r, row) in rows.iter().enumerate() {
        let (b, p) = (r / 3, r % 3);
        for (c, &v) in row.iter().enumerate() {
            nchw[(b * 2 + c) * 3 + p] = v;
        }
    }
    let a = DualThreshold::hermes(100).evaluate(&Probs::rows(&flat, 2), 7);
    let b = DualThreshold::hermes(100).evaluate(&Probs::channels_first(&nchw, 2, 2, 3), 7);
    assert_eq!(a, b);
    assert_eq!(b.pseudo.labels, vec![0, 0, 1, 0, 0, 1]);
}

#[test]
fn three_class_population() {
    // §14.4's 3-class labels as one-hot-ish probabilities; K = 3 uses ln 3 for τ.
    let labels = [0u32, 0, 1, 2, 2, 2, 2, 2];
    let mut p = Vec::new();
    for &l in &labels {
        let mut row = [0.05; 3];
        row[l as usize] = 0.9;
        p.extend(row);
    }
    let d = DualThreshold::hermes(10).evaluate(&Probs::rows(&p, 3), 10);
    assert_eq!(d.pseudo.labels, labels.to_vec());
    close(d.thresholds[0], "0.6125");
    close(d.thresholds[1], "0.55625");
    close(d.thresholds[2], "0.78125");
    assert_eq!(d.tau, 3f64.ln());
}

#[test]
fn code_index_bug() {
    // 3 images × 2 pixels. Pixels of image 2 are confident, one pixel of image 0 is not.
    let d = DualSelection {
        pseudo: PseudoLabels {
            labels: vec![1; 6],
            confidence: vec![0.9; 6],
            entropy: vec![0.1; 6],
        },
        thresholds: vec![0.5, 0.5],
        tau: 0.6,
        conf: vec![true, false, true, true, true, true],
    };
    let mut labels = d.contrast_labels(ContrastKeep::EntropyOnly);
    d.apply_code_index_bug(&mut labels, 2);
    assert_eq!(labels, vec![-1, -1, -1, -1, 1, 1]);
    // All confident: only image 0 goes.
    let d = DualSelection {
        conf: vec![true; 6],
        ..d
    };
    let mut labels = d.contrast_labels(ContrastKeep::EntropyOnly);
    d.apply_code_index_bug(&mut labels, 2);
    assert_eq!(labels, vec![-1, -1, 1, 1, 1, 1]);
}

#[test]
fn fixed_threshold_is_inclusive() {
    let p = [0.95, 0.05, 0.949, 0.051, 0.02, 0.98];
    let s = FixedThreshold::default().select(&Probs::rows(&p[..], 2), None, 1);
    assert_eq!(s.labels, vec![0, 0, 1]);
    assert_eq!(s.keep, vec![true, false, true]);
    assert_eq!(FixedThreshold { threshold: 0.0 }.name(), "fixed-threshold");
}

#[test]
fn entropy_comparison_mlrpl_oracle() {
    // mlrpl spec §12.1: decoder logits for 3 voxels, 2 classes.
    let p1 = softmax_rows(&[2.0, 0.0, 0.0, 1.0, 0.5, 0.0], 2);
    let p2 = softmax_rows(&[3.0, 0.0, 0.0, 0.5, 0.0, 2.0], 2);
    for (got, want) in p1.iter().zip([
        "0.880797", "0.119203", "0.268941", "0.731059", "0.622459", "0.377541",
    ]) {
        close(*got, want);
    }
    let (q1, q2) = (Probs::rows(&p1, 2), Probs::rows(&p2, 2));
    for (r, (h1, h2)) in [
        ("0.365332", "0.190863"),
        ("0.582201", "0.662845"),
        ("0.662845", "0.365332"),
    ]
    .iter()
    .enumerate()
    {
        close(q1.entropy(r), h1);
        close(q2.entropy(r), h2);
    }
    let sel = EntropyComparison;
    // Student 1 learns from teacher 2.
    let s12 = sel.select(&q2, Some(&q1), 1);
    assert_eq!(s12.keep, vec![true, false, true]);
    assert_eq!(s12.labels, vec![0, 1, 1]);
    // Student 2 learns from teacher 1.
    let s21 = sel.select(&q1, Some(&q2), 1);
    assert_eq!(s21.keep, vec![false, true, false]);
    assert_eq!(s21.labels, vec![0, 1, 0]);
    // §12.5: equal predictions go nowhere, in either direction.
    let s = sel.select(&q1, Some(&q1), 1);
    assert_eq!(s.keep, vec![false; 3]);
}

#[test]
fn selectors_as_trait_objects() {
    let all: Vec<Box<dyn PseudoLabelSelector>> = vec![
        Box::new(DualThreshold::hermes(3000)),
        Box::new(FixedThreshold::default()),
        Box::new(EntropyComparison),
    ];
    let probs = Probs::rows(&P4[..], 2);
    let names: Vec<_> = all.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        ["dual-threshold", "fixed-threshold", "entropy-comparison"]
    );
    for s in &all {
        let out = s.select(&probs, Some(&probs), 1);
        assert_eq!(out.labels, vec![0, 0, 0, 1]);
        assert_eq!(out.keep.len(), 4);
    }
}

#[test]
#[should_panic(expected = "not rows of 3 classes")]
fn ragged_rows_panic() {
    Probs::rows(&[0.5f64, 0.5][..], 3);
}
