//! Every case of `seg_metrics.json` (MedPy 0.5.2, primary stack) against this crate.

mod common;

use common::{load_cases, rows_to_mask, Report};
use semisono_metrics::seg::{EmptyMask, Mask, SegEvaluator, Spacing};
use serde_json::Value;

#[test]
fn seg_metrics_match_medpy() {
    let cases = load_cases("seg_metrics.json");
    let mut rep = Report::default();
    let mut ev = SegEvaluator::new();
    let mut n_distance_sets = 0;
    for case in &cases {
        let id = case["id"].as_str().expect("id");
        let (res, h, w) = rows_to_mask(&case["result"]);
        let (reference, h2, w2) = rows_to_mask(&case["reference"]);
        let shape: Vec<u64> = case["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        if shape != [h as u64, w as u64] || (h, w) != (h2, w2) {
            rep.fail(
                id,
                "shape",
                format!("stored {shape:?}, masks {h}x{w} / {h2}x{w2}"),
            );
            continue;
        }
        let a = Mask::new(&res, h, w).unwrap();
        let b = Mask::new(&reference, h, w).unwrap();

        // Overlap metrics and counts do not depend on the spacing.
        let m = ev.evaluate(a, b, Spacing::default()).unwrap();
        let c = &case["counts"];
        rep.int(id, "counts.result", m.counts.result_size(), &c["result"]);
        rep.int(
            id,
            "counts.reference",
            m.counts.reference_size(),
            &c["reference"],
        );
        rep.int(id, "counts.tp", m.counts.tp, &c["tp"]);
        rep.int(id, "counts.fp", m.counts.fp, &c["fp"]);
        rep.int(id, "counts.fn", m.counts.fn_, &c["fn"]);
        rep.int(id, "counts.tn", m.counts.tn, &c["tn"]);
        rep.int(
            id,
            "counts.result_surface",
            m.surface_counts.result,
            &c["result_surface"],
        );
        rep.int(
            id,
            "counts.reference_surface",
            m.surface_counts.reference,
            &c["reference_surface"],
        );
        let mm = &case["metrics"];
        let o = &m.overlap;
        rep.num(id, "dc", o.dice, &mm["dc"]);
        rep.num(id, "jc", o.jaccard, &mm["jc"]);
        rep.num(id, "precision", o.precision, &mm["precision"]);
        rep.num(id, "recall", o.recall, &mm["recall"]);
        rep.num(id, "sensitivity", o.sensitivity(), &mm["sensitivity"]);
        rep.num(id, "specificity", o.specificity, &mm["specificity"]);
        rep.num(
            id,
            "true_negative_rate",
            o.true_negative_rate(),
            &mm["true_negative_rate"],
        );

        for set in case["distances"].as_array().expect("distances") {
            n_distance_sets += 1;
            let spacing = match &set["voxelspacing"] {
                Value::Null => Spacing::default(),
                Value::Array(v) => Spacing::new(v[0].as_f64().unwrap(), v[1].as_f64().unwrap()),
                other => panic!("[{id}] bad voxelspacing {other}"),
            };
            let what = |k: &str| format!("{k} @ {spacing:?}");
            let d = ev.evaluate(a, b, spacing).unwrap().distances;
            let v = &set["values"];
            let pick =
                |f: fn(&semisono_metrics::seg::SurfaceDistances) -> f64| -> Result<f64, EmptyMask> {
                    d.as_ref().map(f).map_err(|e| *e)
                };
            rep.value(id, &what("hd"), pick(|x| x.hd), &v["hd"]);
            rep.value(id, &what("hd95"), pick(|x| x.hd95), &v["hd95"]);
            rep.value(id, &what("asd"), pick(|x| x.asd), &v["asd"]);
            rep.value(
                id,
                &what("asd_reverse"),
                pick(|x| x.asd_reverse),
                &v["asd_reverse"],
            );
            rep.value(id, &what("assd"), pick(|x| x.assd), &v["assd"]);
            rep.value(
                id,
                &what("legacy_assd_mean_of_directed_asd"),
                pick(|x| x.assd_legacy),
                &v["legacy_assd_mean_of_directed_asd"],
            );
            // The kind of emptiness must agree with the stored counts.
            if let Err(e) = &d {
                let expect = EmptyMask::check(m.counts.result_size(), m.counts.reference_size());
                if expect != Some(*e) {
                    rep.fail(id, "empty kind", format!("{e:?} vs {expect:?}"));
                }
            }
        }
    }
    assert!(
        n_distance_sets >= cases.len(),
        "every case must carry distance sets"
    );
    rep.finish("seg_metrics.json");
}
