use super::*;

fn m(d: &[u8], h: usize, w: usize) -> Mask<'_, u8> {
    Mask::new(d, h, w).unwrap()
}

#[test]
fn stat_uses_sample_std_and_skips_undefined() {
    let s = Stat::from_values([
        Some(1.0),
        None,
        Some(2.0),
        Some(f64::NAN),
        Some(3.0),
        Some(4.0),
    ]);
    assert_eq!((s.n, s.n_skipped), (4, 2));
    assert_eq!(s.mean, Some(2.5));
    // sample std of 1..4 = sqrt(5/3); the population one would be sqrt(5/4).
    assert!((s.std.unwrap() - (5.0f64 / 3.0).sqrt()).abs() < 1e-15);
    assert_eq!((s.min, s.max), (Some(1.0), Some(4.0)));
    let one = Stat::from_values([Some(7.0)]);
    assert_eq!((one.mean, one.std), (Some(7.0), None));
    let none = Stat::from_values([None, None]);
    assert_eq!(
        (none.n, none.n_skipped, none.mean, none.std),
        (0, 2, None, None)
    );
}

#[test]
fn seg_accumulator_skips_empty_images_for_surface_metrics() {
    let mut acc = SegMetrics::new(Spacing::default());
    let a = [1u8, 1, 0, 0];
    let b = [1u8, 0, 0, 0];
    let z = [0u8; 4];
    acc.update(SegPair {
        result: m(&a, 2, 2),
        reference: m(&b, 2, 2),
        spacing: None,
    })
    .unwrap();
    acc.update(SegPair {
        result: m(&z, 2, 2),
        reference: m(&b, 2, 2),
        spacing: None,
    })
    .unwrap();
    acc.update(SegPair {
        result: m(&z, 2, 2),
        reference: m(&z, 2, 2),
        spacing: None,
    })
    .unwrap();
    let s = acc.aggregate();
    assert_eq!(s.n_images, 3);
    assert_eq!((s.hd.n, s.hd.n_skipped), (1, 2));
    assert_eq!(s.hd.mean, Some(1.0));
    assert_eq!((s.dice.n, s.dice.n_skipped), (3, 0));
    // Per-image Dice: 2/3, 0, 1 (both empty).
    assert_eq!(
        s.dice.mean,
        Some(crate::numeric::np_mean(&[2.0 / 3.0, 0.0, 1.0]))
    );
    // Pooled: 2*1 / (2 + 1 + 0 + 1 + 0) = 0.5.
    assert_eq!(s.pooled.dice, 0.5);
    assert_eq!(s.pooled.jaccard, 1.0 / 3.0);
    assert_eq!(s.pooled.counts.tp, 1);
    acc.reset();
    assert!(acc.is_empty());
    let s = acc.aggregate();
    assert_eq!((s.n_images, s.dice.mean, s.pooled.dice), (0, None, 1.0));
    let bad = [1u8; 6];
    assert!(acc
        .update(SegPair {
            result: m(&bad, 2, 3),
            reference: m(&a, 2, 2),
            spacing: None
        })
        .is_err());
    assert!(acc.is_empty(), "a rejected pair must not be recorded");
}

#[test]
fn seg_accumulator_per_image_spacing() {
    let a = [1u8, 0, 0, 0, 0, 0];
    let b = [0u8, 0, 0, 0, 0, 1];
    let mut acc = SegMetrics::new(Spacing::new(2.0, 3.0));
    acc.update_masks(m(&a, 2, 3), m(&b, 2, 3), None).unwrap();
    acc.update_masks(m(&a, 2, 3), m(&b, 2, 3), Some(Spacing::default()))
        .unwrap();
    let hd: Vec<f64> = acc
        .per_image()
        .iter()
        .map(|x| x.distances.unwrap().hd)
        .collect();
    assert_eq!(hd, vec![(4.0f64 + 36.0).sqrt(), 5.0f64.sqrt()]);
}

#[test]
fn cls_accumulator() {
    let mut acc = ClsMetrics::new(3, true);
    let rows = [
        (0, 0, [0.7, 0.2, 0.1]),
        (1, 1, [0.1, 0.8, 0.1]),
        (2, 1, [0.2, 0.5, 0.3]),
        (2, 2, [0.1, 0.1, 0.8]),
    ];
    for (t, p, pr) in &rows {
        acc.update(ClsSample {
            y_true: *t,
            y_pred: *p,
            proba: Some(pr),
        })
        .unwrap();
    }
    assert!(acc
        .update(ClsSample {
            y_true: 3,
            y_pred: 0,
            proba: Some(&[1.0, 0.0, 0.0])
        })
        .is_err());
    assert!(acc
        .update(ClsSample {
            y_true: 0,
            y_pred: 0,
            proba: None
        })
        .is_err());
    assert_eq!(acc.y_true().len(), 4);
    let s = acc.aggregate();
    assert_eq!(s.accuracy, Ok(0.75));
    assert_eq!(
        s.confusion_matrix.unwrap().rows(),
        vec![vec![1, 0, 0], vec![0, 1, 0], vec![0, 1, 1]]
    );
    assert_eq!(s.roc_auc, Some(Ok(1.0)));
    assert!(s.roc_auc_ovo.unwrap().is_ok());
    acc.reset();
    assert_eq!(acc.aggregate().accuracy, Err(ClsError::Empty));

    let mut bin = ClsMetrics::new(2, true);
    for (t, sc) in [(0, 0.2), (1, 0.9), (0, 0.6), (1, 0.4)] {
        let p = usize::from(sc >= 0.5);
        bin.update(ClsSample {
            y_true: t,
            y_pred: p,
            proba: Some(&[1.0 - sc, sc]),
        })
        .unwrap();
    }
    let s = bin.aggregate();
    assert_eq!(s.roc_auc, Some(Ok(0.75)));
    assert_eq!(s.roc_auc_ovo, None);
    let mut no_scores = ClsMetrics::new(2, false);
    no_scores
        .update(ClsSample {
            y_true: 1,
            y_pred: 1,
            proba: None,
        })
        .unwrap();
    let s = no_scores.aggregate();
    assert_eq!(s.roc_auc, None);
    assert_eq!(s.cohen_kappa, Err(ClsError::KappaUndefined));
}
