//! Every list of `seg_aggregate_dice.json` (MedPy 0.5.2 `dc`/`jc` + plain sums) against the
//! [`SegMetrics`] accumulator.

mod common;

use common::{load_cases, rows_to_mask, Report};
use semisono_metrics::aggregate::{Metric, SegMetrics, SegPair};
use semisono_metrics::seg::{Mask, Spacing};

#[test]
fn aggregate_dice_matches_medpy() {
    let cases = load_cases("seg_aggregate_dice.json");
    let mut rep = Report::default();
    let mut acc = SegMetrics::new(Spacing::default());
    for case in &cases {
        let id = case["id"].as_str().expect("id");
        acc.reset();
        let pairs = case["pairs"].as_array().expect("pairs");
        for (i, p) in pairs.iter().enumerate() {
            let (r, h, w) = rows_to_mask(&p["result"]);
            let (g, h2, w2) = rows_to_mask(&p["reference"]);
            if (h, w) != (h2, w2) {
                rep.fail(id, &format!("pair {i}"), "shape mismatch in fixture".into());
                continue;
            }
            let pair = SegPair {
                result: Mask::new(&r, h, w).unwrap(),
                reference: Mask::new(&g, h, w).unwrap(),
                spacing: None,
            };
            if let Err(e) = acc.update(pair) {
                rep.fail(id, &format!("pair {i}"), format!("update failed: {e}"));
            }
        }
        let s = acc.aggregate();
        let imgs = acc.per_image();
        let per_dc: Vec<f64> = imgs.iter().map(|m| m.overlap.dice).collect();
        let per_jc: Vec<f64> = imgs.iter().map(|m| m.overlap.jaccard).collect();
        let per_sm: Vec<f64> = imgs.iter().map(|m| m.counts.smoothed_dice()).collect();
        rep.nums(id, "per_case_dc", &per_dc, &case["per_case_dc"]);
        rep.nums(id, "per_case_jc", &per_jc, &case["per_case_jc"]);
        rep.nums(
            id,
            "hermes_smoothed_per_case_dc",
            &per_sm,
            &case["hermes_smoothed_per_case_dc"],
        );
        rep.value(
            id,
            "mean_per_case_dc",
            s.dice.mean.ok_or("no mean"),
            &case["mean_per_case_dc"],
        );
        rep.value(
            id,
            "hermes_smoothed_mean_dc",
            s.smoothed_dice.mean.ok_or("no mean"),
            &case["hermes_smoothed_mean_dc"],
        );
        let c = s.pooled.counts;
        rep.int(id, "sum_intersection", c.tp, &case["sum_intersection"]);
        rep.int(
            id,
            "sum_sizes",
            c.result_size() + c.reference_size(),
            &case["sum_sizes"],
        );
        rep.int(id, "sum_union", c.union(), &case["sum_union"]);
        rep.num(id, "aggregate_dc", s.pooled.dice, &case["aggregate_dc"]);
        rep.num(id, "aggregate_jc", s.pooled.jaccard, &case["aggregate_jc"]);
        if s.dice.n != pairs.len() || s.dice.n_skipped != 0 {
            rep.fail(
                id,
                "dice stat",
                format!("n={} skipped={}", s.dice.n, s.dice.n_skipped),
            );
        }
    }
    rep.finish("seg_aggregate_dice.json");
}
