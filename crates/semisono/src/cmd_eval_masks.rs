//! `semisono eval-masks`: score any model's mask folder against ground truth, before training exists.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use semisono_data::image_io::{self, MaskPolicy};
use semisono_data::{Dataset, StagedDir};
use semisono_metrics::aggregate::SegMetrics;
use semisono_metrics::seg::{Mask, Spacing};

use crate::bad_input;

#[derive(Args, Debug)]
pub struct EvalMasksArgs {
    /// Folder of predicted masks (PNG/JPEG/BMP/TIFF), named like the ground truth (same stem).
    #[arg(long)]
    pub pred: PathBuf,
    /// Ground truth: a folder of masks, or a semisono dataset directory (its masks and pixel spacing).
    #[arg(long)]
    pub gt: PathBuf,
    /// Pixel spacing "ROW,COL" in mm for every image (overrides the dataset's spacing). Default 1,1 (pixels).
    #[arg(long)]
    pub spacing: Option<String>,
    /// Output folder for per_image.csv and summary.json. Default: <pred>-eval beside the pred folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the output folder if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

struct GtItem {
    id: String,
    path: PathBuf,
    spacing: Option<[f64; 2]>,
}

const MASK_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "tif", "tiff"];

/// Image files of a folder by stem, sorted. Two files with one stem are ambiguous and refused.
fn masks_by_stem(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        bad_input!(
            "{}: cannot read folder ({e}); check the path",
            dir.display()
        )
    })?;
    let mut out = BTreeMap::new();
    for entry in rd {
        let path = entry?.path();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if !path.is_file() || !ext.is_some_and(|e| MASK_EXTENSIONS.contains(&e.as_str())) {
            continue;
        }
        let stem = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if let Some(prev) = out.insert(stem.clone(), path.clone()) {
            return Err(bad_input!(
                "{} and {} have the same name {stem:?}; keep one mask per image",
                prev.display(),
                path.display()
            ));
        }
    }
    Ok(out)
}

fn ground_truth(gt: &Path) -> Result<Vec<GtItem>> {
    if gt.join(semisono_data::manifest::MANIFEST_FILE).exists() {
        let ds = Dataset::open(gt)?;
        return Ok(ds
            .entries
            .iter()
            .filter_map(|e| {
                ds.mask_path(e).map(|path| GtItem {
                    id: e.id.clone(),
                    path,
                    spacing: e.pixel_spacing_mm,
                })
            })
            .collect());
    }
    Ok(masks_by_stem(gt)?
        .into_iter()
        .map(|(id, path)| GtItem {
            id,
            path,
            spacing: None,
        })
        .collect())
}

pub fn parse_spacing(text: &str) -> Result<Spacing> {
    let parts: Vec<f64> = text
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad_input!("--spacing {text:?}: expected ROW,COL in mm, e.g. 0.1,0.1"))?;
    match parts[..] {
        [r, c] if r > 0.0 && c > 0.0 && r.is_finite() && c.is_finite() => Ok(Spacing::new(r, c)),
        _ => Err(bad_input!(
            "--spacing {text:?}: expected two positive numbers ROW,COL, e.g. 0.1,0.1"
        )),
    }
}

/// Scored images: ids and spacings in the order of `metrics.per_image()`.
pub struct Scored {
    pub ids: Vec<String>,
    pub spacings: Vec<Spacing>,
    pub metrics: SegMetrics,
}

pub fn score(args: &EvalMasksArgs) -> Result<Scored> {
    let fixed_spacing = args.spacing.as_deref().map(parse_spacing).transpose()?;
    let gt = ground_truth(&args.gt)?;
    if gt.is_empty() {
        return Err(bad_input!(
            "{}: no ground-truth masks found (looked for {})",
            args.gt.display(),
            MASK_EXTENSIONS.join(", ")
        ));
    }
    let preds = masks_by_stem(&args.pred)?;
    let missing: Vec<&str> = gt
        .iter()
        .filter(|g| !preds.contains_key(&g.id))
        .map(|g| g.id.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(bad_input!(
            "{}: no prediction for {} of {} ground-truth masks (e.g. {}); \
             name each predicted mask like its ground truth",
            args.pred.display(),
            missing.len(),
            gt.len(),
            missing[..missing.len().min(5)].join(", ")
        ));
    }
    let mut scored = Scored {
        ids: Vec::with_capacity(gt.len()),
        spacings: Vec::with_capacity(gt.len()),
        metrics: SegMetrics::new(Spacing::default()),
    };
    for g in &gt {
        let pred_path = &preds[&g.id];
        let (pred, _) = image_io::load_mask(pred_path, MaskPolicy::Threshold)?;
        let (reference, _) = image_io::load_mask(&g.path, MaskPolicy::Threshold)?;
        if (pred.width, pred.height) != (reference.width, reference.height) {
            return Err(bad_input!(
                "{} is {}x{} but its ground truth {} is {}x{}; predict at the image's native size",
                pred_path.display(),
                pred.width,
                pred.height,
                g.path.display(),
                reference.width,
                reference.height
            ));
        }
        let spacing = fixed_spacing
            .or(g.spacing.map(|[r, c]| Spacing::new(r, c)))
            .unwrap_or_default();
        let (h, w) = (pred.height as usize, pred.width as usize);
        scored.metrics.update_masks(
            Mask::new(&pred.data, h, w)?,
            Mask::new(&reference.data, h, w)?,
            Some(spacing),
        )?;
        scored.ids.push(g.id.clone());
        scored.spacings.push(spacing);
    }
    Ok(scored)
}

pub fn run(args: EvalMasksArgs) -> Result<()> {
    let scored = score(&args)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let name = args.pred.file_name().unwrap_or_default().to_string_lossy();
        args.pred.with_file_name(format!("{name}-eval"))
    });
    let staged = StagedDir::create(&out, args.overwrite)?;
    let summary = crate::seg_report::write(staged.path(), &scored)?;
    let out = staged.commit()?;
    println!("{summary}");
    println!(
        "per-image metrics: {}\nsummary: {}",
        out.join("per_image.csv").display(),
        out.join("summary.json").display()
    );
    Ok(())
}
