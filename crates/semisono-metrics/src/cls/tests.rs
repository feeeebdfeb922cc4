use super::*;

/// Mann–Whitney U / (n_pos n_neg) with ties counting 1/2 (the definition AUC must equal).
fn mann_whitney(y: &[bool], s: &[f64]) -> f64 {
    let (mut u, mut np, mut nn) = (0.0, 0.0, 0.0);
    for i in 0..y.len() {
        if y[i] {
            np += 1.0;
        } else {
            nn += 1.0;
        }
        for j in 0..y.len() {
            if y[i] && !y[j] {
                u += if s[i] > s[j] {
                    1.0
                } else if s[i] == s[j] {
                    0.5
                } else {
                    0.0
                };
            }
        }
    }
    u / (np * nn)
}

#[test]
fn auc_equals_mann_whitney_with_ties() {
    let mut x = 12345u64;
    for n in [2usize, 3, 7, 20, 101] {
        let mut y = Vec::new();
        let mut s = Vec::new();
        for i in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            y.push(i % 3 == 0 || x.is_multiple_of(2));
            s.push((x % 7) as f64 / 10.0); // heavy ties
        }
        y[0] = true;
        y[1] = false;
        let a = roc_auc_bool(&y, &s).unwrap();
        assert!((a - mann_whitney(&y, &s)).abs() < 1e-12, "n={n}: {a}");
    }
}

#[test]
fn auc_all_tied_single_sample_and_one_class() {
    let y = [0, 1, 0, 1, 1];
    assert_eq!(roc_auc(&y, &[0.3; 5]), Ok(0.5));
    assert_eq!(roc_auc(&[1], &[0.9]), Err(ClsError::OnlyOneClass));
    assert_eq!(
        roc_auc(&[0, 0, 0], &[0.1, 0.2, 0.3]),
        Err(ClsError::OnlyOneClass)
    );
    assert_eq!(
        roc_auc(&[0, 1, 2], &[0.1, 0.2, 0.3]),
        Err(ClsError::NotBinary(3))
    );
    assert_eq!(roc_auc(&[], &[]), Err(ClsError::Empty));
    assert!(matches!(
        roc_auc(&[0, 1], &[0.1]),
        Err(ClsError::LengthMismatch { .. })
    ));
    assert_eq!(
        roc_auc(&[0, 1], &[f64::NAN, 0.2]),
        Err(ClsError::NonFiniteScore(0))
    );
    // Labels {3, 7}: the larger label is positive.
    assert_eq!(roc_auc(&[3, 7, 3, 7], &[0.1, 0.9, 0.2, 0.8]), Ok(1.0));
    assert_eq!(roc_auc(&[3, 7], &[0.9, 0.1]), Ok(0.0));
}

#[test]
fn roc_curve_drops_collinear_points() {
    let y = [false, false, true, true];
    let s = [0.1, 0.2, 0.3, 0.4];
    let c = roc_curve(&y, &s).unwrap();
    assert_eq!(c.thresholds, vec![f64::INFINITY, 0.4, 0.3, 0.1]);
    assert_eq!(c.tpr, vec![0.0, 0.5, 1.0, 1.0]);
    assert_eq!(c.fpr, vec![0.0, 0.0, 0.0, 1.0]);
}

#[test]
fn multiclass_auc() {
    // Perfectly separable 3-class probabilities.
    let y = [0, 1, 2, 0, 1, 2];
    let p = [
        0.8, 0.1, 0.1, 0.1, 0.8, 0.1, 0.1, 0.1, 0.8, 0.7, 0.2, 0.1, 0.2, 0.7, 0.1, 0.2, 0.1, 0.7,
    ];
    let pr = Proba::new(&p, 3).unwrap();
    assert_eq!(roc_auc_ovr(&y, pr, MultiAverage::Macro), Ok(1.0));
    assert_eq!(roc_auc_ovr(&y, pr, MultiAverage::Weighted), Ok(1.0));
    assert_eq!(roc_auc_ovo(&y, pr, MultiAverage::Macro), Ok(1.0));
    assert_eq!(roc_auc_ovo(&y, pr, MultiAverage::Weighted), Ok(1.0));
    // Class 2 absent from y_true: its OvR column is undefined, so is the OvR average.
    let y2 = [0, 1, 0, 0, 1, 1];
    let per = roc_auc_ovr_per_class(&y2, pr).unwrap();
    assert_eq!(per[2], Err(ClsError::OnlyOneClass));
    assert!(per[0].is_ok() && per[1].is_ok());
    assert_eq!(
        roc_auc_ovr(&y2, pr, MultiAverage::Macro),
        Err(ClsError::OnlyOneClass)
    );
    assert!(roc_auc_ovo(&y2, pr, MultiAverage::Macro).is_ok());
    // A single sample / a single class.
    let one = Proba::new(&p[..3], 3).unwrap();
    assert_eq!(
        roc_auc_ovo(&[0], one, MultiAverage::Macro),
        Err(ClsError::OnlyOneClass)
    );
    assert_eq!(
        roc_auc_ovr(&[0], one, MultiAverage::Weighted),
        Err(ClsError::OnlyOneClass)
    );
    // Input checks.
    assert_eq!(
        Proba::new(&[0.5, 0.6], 2).unwrap_err(),
        ClsError::NotProbabilities(0)
    );
    assert!(Proba::new(&[0.5, 0.5, 1.0], 2).is_err());
    assert!(matches!(
        roc_auc_ovr(
            &[0, 3],
            Proba::new(&[0.5, 0.5, 0.5, 0.5], 2).unwrap(),
            MultiAverage::Macro
        ),
        Err(ClsError::LabelOutOfRange {
            label: 3,
            n_classes: 2
        })
    ));
}

#[test]
fn confusion_matrix_labels_and_default() {
    let t = [0, 1, 2, 2, 1];
    let p = [0, 2, 2, 1, 1];
    let cm = confusion_matrix(&t, &p, None).unwrap();
    assert_eq!(cm.rows(), vec![vec![1, 0, 0], vec![0, 1, 1], vec![0, 1, 1]]);
    let cm = confusion_matrix(&t, &p, Some(&[2, 0])).unwrap();
    assert_eq!(cm.rows(), vec![vec![1, 0], vec![0, 1]]);
    assert_eq!(
        confusion_matrix(&[1, 1], &[1, 1], None).unwrap().rows(),
        vec![vec![2]]
    );
    assert_eq!(
        confusion_matrix(&t, &p, Some(&[5])),
        Err(ClsError::NoLabelInYTrue)
    );
    assert!(matches!(
        confusion_matrix(&t, &p, Some(&[1, 1])),
        Err(ClsError::BadLabels(_))
    ));
}

#[test]
fn precision_recall_f1_conventions() {
    // Nothing predicted positive: precision 0/0 -> 0.0, F1 0.0.
    let t = [1, 0, 1, 0];
    let p = [0, 0, 0, 0];
    let b = Average::Binary { pos_label: 1 };
    assert_eq!(precision(&t, &p, None, b), Ok(0.0));
    assert_eq!(f1(&t, &p, None, b), Ok(0.0));
    assert_eq!(recall(&t, &p, None, Average::Macro), Ok(0.5));
    // Macro over the union vs over explicit labels including an absent class.
    let t = [0, 1, 1, 0];
    let p = [0, 1, 0, 0];
    let m = precision_recall_f1(&t, &p, None, Average::Macro).unwrap();
    let m3 = precision_recall_f1(&t, &p, Some(&[0, 1, 2]), Average::Macro).unwrap();
    assert_eq!(m.recall, (1.0 + 0.5) / 2.0);
    assert_eq!(m3.recall, (1.0 + 0.5) / 3.0);
    assert_eq!(precision(&t, &p, None, Average::Micro), accuracy(&t, &p));
    // Weighted by support.
    let w = recall(&t, &p, None, Average::Weighted).unwrap();
    assert_eq!(w, (1.0 * 2.0 + 0.5 * 2.0) / 4.0);
    // Binary average errors.
    assert_eq!(
        precision(&[0, 1, 2], &[0, 1, 2], None, b),
        Err(ClsError::MulticlassWithBinaryAverage(3))
    );
    assert!(matches!(
        precision(&[0, 2], &[0, 2], None, b),
        Err(ClsError::PosLabelNotPresent { pos_label: 1, .. })
    ));
    // pos_label absent but only one label present: allowed, 0/0 -> 0.
    assert_eq!(recall(&[0, 0], &[0, 0], None, b), Ok(0.0));
    // Specificity = recall of the other class in binary problems.
    let t = [0, 0, 0, 1, 1];
    let p = [0, 1, 0, 1, 0];
    assert_eq!(
        specificity(&t, &p, 1),
        recall(&t, &p, None, Average::Binary { pos_label: 0 })
    );
    assert_eq!(specificity(&t, &p, 1), Ok(2.0 / 3.0));
}

#[test]
fn accuracy_and_balanced_accuracy() {
    let t = [0, 0, 0, 1];
    let p = [0, 0, 1, 1];
    assert_eq!(accuracy(&t, &p), Ok(0.75));
    assert_eq!(balanced_accuracy(&t, &p), Ok((2.0 / 3.0 + 1.0) / 2.0));
    // Classes only in y_pred are dropped from balanced accuracy.
    assert_eq!(balanced_accuracy(&[0, 0], &[0, 5]), Ok(0.5));
    assert_eq!(accuracy(&[], &[]), Err(ClsError::Empty));
    assert_eq!(accuracy(&[1], &[1]), Ok(1.0));
}

#[test]
fn kappa_values() {
    // Wikipedia example: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> kappa = 0.4.
    let mut t = Vec::new();
    let mut p = Vec::new();
    for (a, b, n) in [(1, 1, 20), (1, 0, 5), (0, 1, 10), (0, 0, 15)] {
        for _ in 0..n {
            t.push(a);
            p.push(b);
        }
    }
    let k = cohen_kappa(&t, &p, None, KappaWeights::None).unwrap();
    assert!((k - 0.4).abs() < 1e-12);
    // With two classes, linear = quadratic = unweighted.
    assert_eq!(cohen_kappa(&t, &p, None, KappaWeights::Linear), Ok(k));
    assert_eq!(cohen_kappa(&t, &p, None, KappaWeights::Quadratic), Ok(k));
    assert_eq!(
        cohen_kappa(&[2, 2], &[2, 2], None, KappaWeights::None),
        Err(ClsError::KappaUndefined)
    );
    assert_eq!(
        cohen_kappa(&[0, 1, 2], &[0, 1, 2], None, KappaWeights::Quadratic),
        Ok(1.0)
    );
    // Ordinal weights matter for 3 classes: a 0<->2 confusion costs more than 0<->1.
    let near = cohen_kappa(&[0, 1, 2, 0], &[0, 1, 2, 1], None, KappaWeights::Quadratic).unwrap();
    let far = cohen_kappa(&[0, 1, 2, 0], &[0, 1, 2, 2], None, KappaWeights::Quadratic).unwrap();
    assert!(near > far);
}
