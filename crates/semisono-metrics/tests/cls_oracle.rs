//! Every case of `cls_metrics.json` (scikit-learn 1.3.2, primary stack) against this crate.

mod common;

use std::collections::BTreeSet;

use common::{load_cases, Report};
use semisono_metrics::cls::{
    self, Average, ClsError, ConfusionMatrix, KappaWeights, Label, MultiAverage, Proba,
};
use serde_json::Value;

fn labels_of(v: &Value) -> Vec<Label> {
    v.as_array()
        .expect("label list")
        .iter()
        .map(|x| x.as_u64().expect("int label") as Label)
        .collect()
}

/// sklearn returned NaN where this crate reports an explicit error (documented convention).
fn nan_means_undefined(
    rep: &mut Report,
    id: &str,
    what: &str,
    got: Result<f64, ClsError>,
    want: &Value,
    expected_err: ClsError,
) {
    if want.as_str() == Some("NaN") {
        rep.checked += 1;
        match got {
            Err(e) if e == expected_err => rep.bit_exact += 1,
            other => rep.fail(
                id,
                what,
                format!("sklearn gives NaN; expected Err({expected_err:?}), got {other:?}"),
            ),
        }
    } else {
        rep.value(id, what, got, want);
    }
}

fn check_matrix(
    rep: &mut Report,
    id: &str,
    what: &str,
    got: Result<ConfusionMatrix, ClsError>,
    want: &Value,
) {
    rep.checked += 1;
    let want: Vec<Vec<u64>> = want
        .as_array()
        .expect("matrix")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_u64().expect("count"))
                .collect()
        })
        .collect();
    match got {
        Ok(m) if m.rows() == want => rep.bit_exact += 1,
        other => rep.fail(id, what, format!("expected {want:?}, got {other:?}")),
    }
}

fn check_list(
    rep: &mut Report,
    id: &str,
    what: &str,
    got: Result<Vec<f64>, ClsError>,
    want: &Value,
) {
    match got {
        Ok(v) => rep.nums(id, what, &v, want),
        Err(e) => rep.fail(id, what, format!("unexpected error {e:?}")),
    }
}

#[test]
fn cls_metrics_match_sklearn() {
    let cases = load_cases("cls_metrics.json");
    let mut rep = Report::default();
    for case in &cases {
        let id = case["id"].as_str().expect("id");
        let yt = labels_of(&case["y_true"]);
        let yp = labels_of(&case["y_pred"]);
        let k = case["n_classes"].as_u64().expect("n_classes") as usize;
        let all: Vec<Label> = (0..k).collect();
        let m = case["metrics"].as_object().expect("metrics");
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut get = |key: &str| -> Option<&Value> {
            seen.insert(key.to_string());
            m.get(key)
        };
        // Present in both tasks.
        macro_rules! val {
            ($key:literal, $got:expr) => {
                if let Some(w) = get($key) {
                    rep.value(id, $key, $got, w);
                }
            };
        }
        macro_rules! list {
            ($key:literal, $got:expr) => {
                if let Some(w) = get($key) {
                    check_list(&mut rep, id, $key, $got, w);
                }
            };
        }
        val!("accuracy", cls::accuracy(&yt, &yp));
        val!("balanced_accuracy", cls::balanced_accuracy(&yt, &yp));
        for (suffix, avg, labels) in [
            ("macro", Average::Macro, None),
            ("macro_labels01", Average::Macro, Some(&all[..])),
            ("macro_all_labels", Average::Macro, Some(&all[..])),
            ("weighted", Average::Weighted, None),
            ("micro", Average::Micro, None),
            ("binary", Average::Binary { pos_label: 1 }, None),
        ] {
            let prf = cls::precision_recall_f1(&yt, &yp, labels, avg);
            for (name, f) in [
                (
                    "precision",
                    (|p: &cls::Prf| p.precision) as fn(&cls::Prf) -> f64,
                ),
                ("recall", |p| p.recall),
                ("f1", |p| p.f1),
            ] {
                let key = format!("{name}_{suffix}");
                if let Some(w) = get(&key) {
                    rep.value(id, &key, prf.clone().map(|p| f(&p)), w);
                }
            }
        }
        let per = cls::precision_recall_f1_per_class(&yt, &yp, Some(&all));
        for (name, f) in [
            (
                "precision",
                (|p: &cls::PerClass| p.precision.clone()) as fn(&cls::PerClass) -> Vec<f64>,
            ),
            ("recall", |p| p.recall.clone()),
            ("f1", |p| p.f1.clone()),
        ] {
            for suffix in ["per_class", "per_class_labels01"] {
                let key = format!("{name}_{suffix}");
                if let Some(w) = get(&key) {
                    check_list(&mut rep, id, &key, per.clone().map(|p| f(&p)), w);
                }
            }
        }
        // Binary: specificity = recall_score(pos_label=0) = TN/(TN+FP) of class 1.
        if let Some(w) = get("specificity") {
            rep.value(id, "specificity", cls::specificity(&yt, &yp, 1), w);
            rep.value(
                id,
                "specificity(recall pos0)",
                cls::recall(&yt, &yp, None, Average::Binary { pos_label: 0 }),
                w,
            );
        }
        list!(
            "specificity_per_class",
            cls::specificity_per_class(&yt, &yp, Some(&all))
        );
        val!(
            "specificity_macro",
            cls::specificity_macro(&yt, &yp, Some(&all))
        );
        if let Some(w) = get("confusion_matrix_labels01") {
            check_matrix(
                &mut rep,
                id,
                "confusion_matrix_labels01",
                cls::confusion_matrix(&yt, &yp, Some(&all)),
                w,
            );
        }
        if let Some(w) = get("confusion_matrix") {
            check_matrix(
                &mut rep,
                id,
                "confusion_matrix",
                cls::confusion_matrix(&yt, &yp, Some(&all)),
                w,
            );
        }
        if let Some(w) = get("confusion_matrix_default") {
            check_matrix(
                &mut rep,
                id,
                "confusion_matrix_default",
                cls::confusion_matrix(&yt, &yp, None),
                w,
            );
        }
        for (key, wts) in [
            ("cohen_kappa", KappaWeights::None),
            ("cohen_kappa_linear", KappaWeights::Linear),
            ("cohen_kappa_quadratic", KappaWeights::Quadratic),
        ] {
            if let Some(w) = get(key) {
                let got = cls::cohen_kappa(&yt, &yp, None, wts);
                nan_means_undefined(&mut rep, id, key, got, w, ClsError::KappaUndefined);
            }
        }
        // ROC AUC.
        if let Some(w) = get("roc_auc") {
            let scores: Vec<f64> = case["y_score"]
                .as_array()
                .expect("y_score")
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            rep.value(id, "roc_auc", cls::roc_auc(&yt, &scores), w);
        }
        if case.get("y_proba").is_some_and(|v| !v.is_null()) {
            let flat: Vec<f64> = case["y_proba"]
                .as_array()
                .expect("y_proba")
                .iter()
                .flat_map(|r| {
                    r.as_array()
                        .expect("row")
                        .iter()
                        .map(|v| v.as_f64().unwrap())
                })
                .collect();
            // Rows not summing to 1 are an error here, as in sklearn (which would store {error}).
            let proba = Proba::new(&flat, k);
            val!(
                "roc_auc_ovr_macro",
                proba
                    .clone()
                    .and_then(|p| cls::roc_auc_ovr(&yt, p, MultiAverage::Macro))
            );
            val!(
                "roc_auc_ovr_weighted",
                proba
                    .clone()
                    .and_then(|p| cls::roc_auc_ovr(&yt, p, MultiAverage::Weighted))
            );
            if let Some(w) = get("roc_auc_ovo_macro") {
                let got = proba
                    .clone()
                    .and_then(|p| cls::roc_auc_ovo(&yt, p, MultiAverage::Macro));
                nan_means_undefined(
                    &mut rep,
                    id,
                    "roc_auc_ovo_macro",
                    got,
                    w,
                    ClsError::OnlyOneClass,
                );
            }
            if let Some(w) = get("roc_auc_ovo_weighted") {
                let got = proba
                    .clone()
                    .and_then(|p| cls::roc_auc_ovo(&yt, p, MultiAverage::Weighted));
                nan_means_undefined(
                    &mut rep,
                    id,
                    "roc_auc_ovo_weighted",
                    got,
                    w,
                    ClsError::OnlyOneClass,
                );
            }
            if let Some(w) = get("roc_auc_ovr_per_class") {
                let w = w.as_array().expect("list");
                match proba
                    .clone()
                    .and_then(|p| cls::roc_auc_ovr_per_class(&yt, p))
                {
                    Ok(v) if v.len() == w.len() => {
                        for (c, (g, wv)) in v.into_iter().zip(w).enumerate() {
                            rep.value(id, &format!("roc_auc_ovr_per_class[{c}]"), g, wv);
                        }
                    }
                    other => rep.fail(id, "roc_auc_ovr_per_class", format!("got {other:?}")),
                }
            }
        }
        // Every stored metric must have been compared.
        for key in m.keys() {
            if !seen.contains(key) {
                rep.fail(id, key, "stored metric not checked by this test".into());
            }
        }
    }
    rep.finish("cls_metrics.json");
}
