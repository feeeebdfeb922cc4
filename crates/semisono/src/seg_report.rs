//! Per-image CSV and summary JSON of `eval-masks` (the metric columns are those of `eval` and
//! `predict`: [`PER_IMAGE_METRICS`](semisono_metrics::seg::PER_IMAGE_METRICS)).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use semisono_metrics::aggregate::{Metric, Stat};
use semisono_metrics::seg::{SegImageMetrics, PER_IMAGE_METRICS as METRICS};

use crate::cmd_eval_masks::Scored;

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into())
}

/// Writes `per_image.csv` and `summary.json` into `dir`; returns a printable summary table.
pub fn write(dir: &Path, scored: &Scored) -> Result<String> {
    let csv_path = dir.join("per_image.csv");
    let mut w = csv::Writer::from_path(&csv_path)
        .with_context(|| format!("creating {}", csv_path.display()))?;
    let mut header = vec!["id", "spacing_row", "spacing_col"];
    header.extend_from_slice(METRICS);
    header.extend_from_slice(&["tp", "fp", "fn", "tn", "undefined"]);
    w.write_record(&header)?;
    let per_image = scored.metrics.per_image();
    for ((id, spacing), m) in scored.ids.iter().zip(&scored.spacings).zip(per_image) {
        let c = &m.counts;
        let mut rec = vec![id.clone(), spacing.row.to_string(), spacing.col.to_string()];
        rec.extend(SegImageMetrics::csv_cells(Some(m)));
        rec.extend([c.tp, c.fp, c.fn_, c.tn].map(|v| v.to_string()));
        rec.push(
            m.distances
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default(),
        );
        w.write_record(&rec)?;
    }
    w.flush()?;

    let summary = scored.metrics.aggregate();
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<12} {:>10} {:>10} {:>6} {:>10}",
        "metric", "mean", "std", "n", "undefined"
    );
    for k in METRICS {
        let s = Stat::from_values(per_image.iter().map(|m| m.metric(k)));
        let _ = writeln!(
            table,
            "{:<12} {:>10} {:>10} {:>6} {:>10}",
            k,
            fmt_opt(s.mean),
            fmt_opt(s.std),
            s.n,
            s.n_skipped
        );
    }
    let _ = write!(
        table,
        "pooled dice {:.4}, pooled iou {:.4} over {} images",
        summary.pooled.dice, summary.pooled.jaccard, summary.n_images
    );
    let json = serde_json::json!({
        "summary": summary,
        "conventions": "per-image metrics: mean and sample std (ddof=1) over the images where the \
            metric is defined; surface metrics (hd, hd95, asd, assd) are undefined when either mask \
            is empty and are counted in n_skipped, never as 0. Overlap metrics follow MedPy 0.5.2 \
            (Dice of two empty masks = 1). pooled: from the summed pixel counts. Distances are in the \
            units of the spacing (mm when given, else pixels).",
    });
    let path = dir.join("summary.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&json)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(table)
}
