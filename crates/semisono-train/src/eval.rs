//! Evaluation with the `clean` protocol (ARCHITECTURE §4): per-image metrics at **native
//! resolution**. The network sees the image resized to `image_size`; its class probabilities are
//! resized back to the native size (bilinear, `align_corners = false`), the argmax is taken there,
//! and the tumour mask (every class > 0) is scored against the native ground-truth mask with
//! `semisono-metrics` (MedPy conventions: Dice = 1 when both masks are empty; HD95/ASSD undefined
//! when one mask is empty). Classification: argmax of the softmax, scored with `ClsMetrics`
//! (accuracy, balanced accuracy, macro F1, ROC AUC).
//!
//! The `paper` protocol adds the Hermes code's figures (batch-averaged Dice at the network's input
//! size, see [`paper`]) to the same per-image rows, so its tables can be compared with ours.

use std::fs;
use std::path::Path;

use burn::tensor::Tensor;
use semisono_data::split::{Part, Split};
use semisono_data::Dataset;
use semisono_metrics::aggregate::ClsSummary;
use semisono_metrics::seg::{csv_cell, SegImageMetrics, PER_IMAGE_METRICS};
use semisono_metrics::{ClsMetrics, ClsSample, Mask, Metric, SegMetrics, SegSummary, Spacing};
use semisono_nn::ops::int_tensor_to_vec;
use serde::Serialize;

use crate::config::{Protocol, TrainConfig};
use crate::error::{Result, TrainError};
use crate::loader::{LabeledBatch, Loader, LoaderConfig};
use crate::methods::SslMethod;
use crate::predict::{argmax, resize_to};

mod paper;
use crate::trainer::load_run;
pub use paper::{PaperAccumulator, PaperMetrics};

/// One evaluated image.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalRow {
    pub id: String,
    /// Tumour metrics at native resolution; `None` without a segmenter or a ground-truth mask.
    pub seg: Option<SegImageMetrics>,
    pub true_label: Option<u32>,
    pub pred_label: Option<u32>,
    /// Class probabilities (empty without a classifier).
    pub probabilities: Vec<f64>,
}

/// Aggregates over the evaluated images.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalSummary {
    pub protocol: Protocol,
    pub part: String,
    pub n_images: usize,
    /// Segmentation summary (per-image mean ± std, pooled) of the images with a mask.
    pub seg: Option<SegSummary>,
    /// Classification headline numbers of the images with a class label.
    pub accuracy: Option<f64>,
    pub balanced_accuracy: Option<f64>,
    pub macro_f1: Option<f64>,
    pub auc: Option<f64>,
    /// Everything `ClsMetrics` computes.
    pub cls: Option<ClsSummary>,
    /// The Hermes code's figures (`paper` protocol only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paper: Option<PaperMetrics>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalReport {
    pub rows: Vec<EvalRow>,
    pub summary: EvalSummary,
}

/// Evaluates checkpoint `checkpoint` (`None` = best if present, else last) of `run_dir` on `part`
/// of `split`.
pub fn evaluate(
    run_dir: &Path,
    checkpoint: Option<&str>,
    dataset: &Dataset,
    split: &Split,
    part: Part,
    protocol: Protocol,
) -> Result<EvalReport> {
    let (cfg, method) = load_run(run_dir, checkpoint)?;
    evaluate_method(method.as_ref(), &cfg, dataset, split, part, protocol)
}

/// Evaluates a method already in memory.
pub fn evaluate_method(
    method: &dyn SslMethod,
    cfg: &TrainConfig,
    dataset: &Dataset,
    split: &Split,
    part: Part,
    protocol: Protocol,
) -> Result<EvalReport> {
    check_dataset_fits(cfg, dataset)?;
    let loader = Loader::new(dataset, split, LoaderConfig::from_config(cfg))?;
    evaluate_loader(method, &loader, part, cfg, protocol)
}

/// A dataset whose class count differs from the classifier's would train on out-of-range labels
/// or score the wrong classes: refuse it up front, naming the key to change.
pub(crate) fn check_dataset_fits(cfg: &TrainConfig, dataset: &Dataset) -> Result<()> {
    let classes = &dataset.info.classes;
    let has_classifier = cfg.task != crate::config::Task::Segmentation;
    if has_classifier && !classes.is_empty() && classes.len() != cfg.model.num_classes {
        return Err(TrainError::config(
            "model.num_classes",
            format!(
                "= {} but dataset {} has {} classes ({}); set model.num_classes = {} (or \
                 synthesise/import the dataset with {} classes)",
                cfg.model.num_classes,
                dataset.root.display(),
                classes.len(),
                classes.join(", "),
                classes.len(),
                cfg.model.num_classes
            ),
        ));
    }
    Ok(())
}

/// Evaluates the batches of `loader`'s `part` (per-image rows always; the paper figures too
/// when `protocol` is `paper`).
pub fn evaluate_loader(
    method: &dyn SslMethod,
    loader: &Loader,
    part: Part,
    cfg: &TrainConfig,
    protocol: Protocol,
) -> Result<EvalReport> {
    let mut paper = PaperAccumulator::default();
    let mut rows = Vec::new();
    let mut seg_metrics = SegMetrics::new(Spacing::default());
    let k = cfg.model.num_classes;
    let mut cls_metrics = ClsMetrics::new(k, true);
    let mut any_cls = false;
    let mut any_seg = false;
    for eb in loader.eval_batches(part) {
        let pred = method.eval_forward(&eb.batch.images);
        if let (Protocol::Paper, Some(probs)) = (protocol, &pred.seg_probs) {
            add_paper_seg_batch(&mut paper, probs, &eb.batch);
        }
        let cls_probs: Option<Vec<f64>> = pred.cls_probs.map(semisono_nn::ops::float_tensor_to_vec);
        let mut cls_pairs = Vec::new();
        for (i, sample) in eb.samples.iter().enumerate() {
            let mut row = EvalRow {
                id: sample.id.clone(),
                seg: None,
                true_label: sample.label,
                pred_label: None,
                probabilities: vec![],
            };
            if let (Some(probs), Some(mask)) = (&pred.seg_probs, &sample.mask) {
                any_seg = true;
                let [w, h] = eb.native_sizes[i];
                let (w, h) = (w as usize, h as usize);
                let p = resize_to(probs.clone().narrow(0, i, 1), [h, w]);
                let labels = int_tensor_to_vec(p.argmax(1));
                let result: Vec<u8> = labels.iter().map(|&c| u8::from(c > 0)).collect();
                let m = seg_metrics
                    .update_masks(
                        Mask::new(&result, h, w).expect("prediction mask shape"),
                        Mask::new(&mask.data, h, w).expect("native mask shape"),
                        sample.pixel_spacing_mm.map(|[r, c]| Spacing::new(r, c)),
                    )
                    .expect("masks of equal shape");
                row.seg = Some(m.clone());
            }
            if let Some(all) = &cls_probs {
                let p = all[i * k..(i + 1) * k].to_vec();
                let arg = argmax(&p);
                row.pred_label = Some(arg as u32);
                if let Some(t) = sample.label {
                    any_cls = true;
                    cls_pairs.push((t, arg as u32));
                    cls_metrics
                        .update(ClsSample {
                            y_true: t as usize,
                            y_pred: arg,
                            proba: Some(&p),
                        })
                        .map_err(|e| {
                            TrainError::config("model.num_classes", format!("{}: {e}", sample.id))
                        })?;
                }
                row.probabilities = p;
            }
            rows.push(row);
        }
        paper.add_cls_batch(&cls_pairs);
    }
    let cls = any_cls.then(|| cls_metrics.aggregate());
    let summary = EvalSummary {
        protocol,
        part: part.as_str().to_string(),
        n_images: rows.len(),
        seg: any_seg.then(|| seg_metrics.aggregate()),
        accuracy: cls.as_ref().and_then(|c| c.accuracy.clone().ok()),
        balanced_accuracy: cls.as_ref().and_then(|c| c.balanced_accuracy.clone().ok()),
        macro_f1: cls
            .as_ref()
            .and_then(|c| c.macro_avg.as_ref().ok().map(|p| p.f1)),
        auc: cls
            .as_ref()
            .and_then(|c| c.roc_auc.clone().and_then(|r| r.ok())),
        cls,
        paper: (protocol == Protocol::Paper).then(|| paper.finish()),
    };
    Ok(EvalReport { rows, summary })
}

/// The argmax lesion masks of one batch at the network's size, for the images that have a mask.
fn add_paper_seg_batch(acc: &mut PaperAccumulator, probs: &Tensor<4>, batch: &LabeledBatch) {
    let labels = int_tensor_to_vec(probs.clone().argmax(1));
    let per_image = labels.len() / batch.has_mask.len().max(1);
    let (mut pred, mut truth) = (Vec::new(), Vec::new());
    for (i, _) in batch.has_mask.iter().enumerate().filter(|(_, &m)| m) {
        let range = i * per_image..(i + 1) * per_image;
        pred.extend(labels[range.clone()].iter().map(|&c| u8::from(c > 0)));
        truth.extend_from_slice(&batch.masks[range]);
    }
    acc.add_seg_batch(&pred, &truth);
}

/// Writes `per_image.csv` (id, the [`PER_IMAGE_METRICS`] columns, true and predicted label, one
/// probability per class) and `summary.json` into `dir` (created if needed; each file written to a
/// temporary name and renamed).
pub fn write_report(dir: &Path, report: &EvalReport) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let k = report
        .rows
        .iter()
        .map(|r| r.probabilities.len())
        .max()
        .unwrap_or(0);
    let mut header: Vec<String> = vec!["id".into()];
    header.extend(PER_IMAGE_METRICS.iter().map(|m| m.to_string()));
    header.extend(["true_label".into(), "pred_label".into()]);
    header.extend((0..k).map(|c| format!("prob_{c}")));
    let mut w = csv::Writer::from_writer(Vec::new());
    let csv_err = |e: csv::Error| TrainError::io(dir, std::io::Error::other(e));
    w.write_record(&header).map_err(csv_err)?;
    for r in &report.rows {
        let mut rec = vec![r.id.clone()];
        rec.extend(SegImageMetrics::csv_cells(r.seg.as_ref()));
        rec.push(r.true_label.map_or(String::new(), |l| l.to_string()));
        rec.push(r.pred_label.map_or(String::new(), |l| l.to_string()));
        rec.extend((0..k).map(|c| csv_cell(r.probabilities.get(c).copied())));
        w.write_record(&rec).map_err(csv_err)?;
    }
    let csv = w
        .into_inner()
        .map_err(|e| TrainError::io(dir, e.into_error()))?;
    let json = serde_json::to_string_pretty(&report.summary).expect("summary serialises");
    for (name, bytes) in [
        ("per_image.csv", csv.as_slice()),
        ("summary.json", json.as_bytes()),
    ] {
        let p = dir.join(name);
        let tmp = dir.join(format!("{name}.tmp"));
        fs::write(&tmp, bytes).map_err(|e| TrainError::io(&tmp, e))?;
        fs::rename(&tmp, &p).map_err(|e| TrainError::io(&p, e))?;
    }
    Ok(())
}
