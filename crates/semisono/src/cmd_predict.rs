//! `semisono predict`: masks, lesion probability maps, classes and saliency of new images (PNG,
//! JPEG, BMP, TIFF, DICOM) with a trained run, plus overlays for people to look at. With `--truth`
//! the overlays compare prediction and ground truth (agreement yellow, missed red, extra green, as
//! in the Hermes paper's figure) and the CSV gains Dice, IoU, HD95 and ASSD.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use semisono_data::dicom::{load_dicom, DicomOptions};
use semisono_data::image_io::{load_gray, load_mask, looks_like_dicom, save_png, MaskPolicy};
use semisono_data::manifest::{read_info, sanitize_id};
use semisono_data::overlay::{
    heat_map, overlay_compare, overlay_outline, probability_image, save_rgb_png,
};
use semisono_data::{GrayImage, StagedDir};
use semisono_metrics::seg::{csv_cell, SegImageMetrics, PER_IMAGE_METRICS};
use semisono_metrics::{Mask, Metric, SegMetrics, Spacing};
use semisono_train::predict::{predict_images, ImagePrediction};
use semisono_train::trainer;

use crate::bad_input;

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Run directory from `semisono train`.
    #[arg(long)]
    pub run: PathBuf,
    /// An image file, or a folder searched recursively for PNG, JPEG, BMP, TIFF and DICOM files.
    #[arg(long)]
    pub input: PathBuf,
    /// Output folder (default: <run>/predict/<input name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Checkpoint: best (chosen on val; default when present) or last.
    #[arg(long)]
    pub checkpoint: Option<String>,
    /// Ground-truth masks: a folder with `<name>.png` or `<name>_mask.png` for each input, at the
    /// same relative path as the input (optional; images without one get an outline overlay).
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Crop DICOM images to their ultrasound region (SequenceOfUltrasoundRegions), as the importer
    /// does; predictions then refer to the cropped image.
    #[arg(long)]
    pub crop_to_region: bool,
    /// Skip the saliency heat maps (they need one extra backward pass per batch).
    #[arg(long)]
    pub no_saliency: bool,
    /// Replace the output folder if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "tif", "tiff", "dcm", "dicom"];

/// One input image and, when known, its ground-truth mask.
pub struct Input {
    pub id: String,
    pub path: PathBuf,
    pub truth: Option<PathBuf>,
    /// Pixel size (row, column) in mm when known from elsewhere (a dataset manifest).
    pub spacing_mm: Option<[f64; 2]>,
}

/// What to write besides masks and the CSV.
pub struct PredictOptions {
    pub checkpoint: Option<String>,
    pub crop_to_region: bool,
    pub saliency: bool,
    pub overwrite: bool,
}

fn is_image_file(p: &Path) -> bool {
    match p.extension().and_then(|e| e.to_str()) {
        Some(e) => IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()),
        None => looks_like_dicom(p),
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if is_image_file(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// The images named by `--input`, with unique file-name-safe ids and their masks under `truth`.
fn list_inputs(input: &Path, truth: Option<&Path>) -> Result<Vec<Input>> {
    if !input.exists() {
        return Err(bad_input!(
            "{}: no such file or folder; pass an image file or a folder of images to --input",
            input.display()
        ));
    }
    let (root, files) = if input.is_dir() {
        let mut files = Vec::new();
        walk(input, &mut files)?;
        if files.is_empty() {
            return Err(bad_input!(
                "{}: no images found (looked for {} and DICOM files without extension)",
                input.display(),
                IMAGE_EXTENSIONS.join(", ")
            ));
        }
        (input.to_path_buf(), files)
    } else {
        let parent = input.parent().unwrap_or(Path::new("")).to_path_buf();
        (parent, vec![input.to_path_buf()])
    };
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    let mut inputs = Vec::new();
    for path in files {
        let rel = path.strip_prefix(&root).unwrap_or(&path);
        let stem = rel.with_extension("");
        let id = sanitize_id(&stem.to_string_lossy());
        if let Some(other) = seen.insert(id.clone(), path.clone()) {
            return Err(bad_input!(
                "{} and {} both map to the output name {id:?}; rename one of them",
                other.display(),
                path.display()
            ));
        }
        let truth = truth.and_then(|root| find_truth(root, &stem));
        inputs.push(Input {
            id,
            path,
            truth,
            spacing_mm: None,
        });
    }
    Ok(inputs)
}

/// An image and its pixel spacing (DICOM only).
fn load_input(input: &Input, crop: bool) -> Result<(GrayImage, Option<[f64; 2]>)> {
    if looks_like_dicom(&input.path) {
        let d = load_dicom(
            &input.path,
            &DicomOptions {
                crop_to_region: crop,
            },
        )?;
        return Ok((d.image, d.pixel_spacing_mm.or(input.spacing_mm)));
    }
    Ok((load_gray(&input.path)?, input.spacing_mm))
}

/// The mask for the input at relative path `stem` (no extension) under `root`: `<stem>.png` or
/// `<stem>_mask.png` (also .jpg, .bmp, .tif).
fn find_truth(root: &Path, stem: &Path) -> Option<PathBuf> {
    let base = root.join(stem);
    let name = base.file_name()?.to_string_lossy().into_owned();
    ["", "_mask"]
        .into_iter()
        .flat_map(|suffix| {
            let name = &name;
            ["png", "jpg", "bmp", "tif"]
                .into_iter()
                .map(move |ext| format!("{name}{suffix}.{ext}"))
        })
        .map(|file| base.with_file_name(file))
        .find(|p| p.is_file())
}

/// The truth mask of `input`; a mask of another size than its image is an error naming both.
fn load_truth(input: &Input, image: &GrayImage) -> Result<Option<GrayImage>> {
    let Some(p) = &input.truth else {
        return Ok(None);
    };
    let (mask, _) = load_mask(p, MaskPolicy::Threshold)?;
    if (mask.width, mask.height) != (image.width, image.height) {
        return Err(bad_input!(
            "{}: mask is {}x{} but its image {} is {}x{}; masks must match their image",
            p.display(),
            mask.width,
            mask.height,
            input.path.display(),
            image.width,
            image.height
        ));
    }
    Ok(Some(mask))
}

pub fn run(args: PredictArgs) -> Result<()> {
    if let Some(t) = &args.truth {
        if !t.is_dir() {
            return Err(bad_input!("--truth {}: not a folder of masks", t.display()));
        }
    }
    let inputs = list_inputs(&args.input, args.truth.as_deref())?;
    let out = args.out.clone().unwrap_or_else(|| {
        let name = args
            .input
            .file_stem()
            .map(|n| sanitize_id(&n.to_string_lossy()))
            .unwrap_or_else(|| "input".into());
        args.run.join("predict").join(name)
    });
    let opts = PredictOptions {
        checkpoint: args.checkpoint.clone(),
        crop_to_region: args.crop_to_region,
        saliency: !args.no_saliency,
        overwrite: args.overwrite,
    };
    let summary = predict_inputs(&args.run, &inputs, &out, &opts)?;
    println!(
        "predicted {} images with {} ({} with ground truth)",
        inputs.len(),
        args.run.display(),
        summary["images_with_truth"]
    );
    println!(
        "predictions: {}\nmasks, probability maps, overlays, saliency: {}/{{masks,probabilities,overlays,saliency}}",
        out.join("predictions.csv").display(),
        out.display()
    );
    Ok(())
}

/// Predicts `inputs` with the run in `run_dir` into the folder `out` (written whole or not at
/// all); returns the summary written to `summary.json`.
pub fn predict_inputs(
    run_dir: &Path,
    inputs: &[Input],
    out: &Path,
    opts: &PredictOptions,
) -> Result<serde_json::Value> {
    if !run_dir.join(trainer::CONFIG_FILE).is_file() {
        return Err(bad_input!(
            "{} is not a run directory (no {}); train one with `semisono train`",
            run_dir.display(),
            trainer::CONFIG_FILE
        ));
    }
    let (cfg, method) = trainer::load_run(run_dir, opts.checkpoint.as_deref())?;
    let class_names = read_info(&cfg.data.dataset.join("dataset.json"))
        .ok()
        .map(|info| info.classes)
        .filter(|c| c.len() == cfg.model.num_classes);
    let staged = StagedDir::create(out, opts.overwrite)?;
    let dir = staged.path();
    for sub in ["masks", "probabilities", "overlays", "saliency"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let k = cfg.model.num_classes;
    let mut csv = csv::Writer::from_path(dir.join("predictions.csv"))?;
    let mut header = vec![
        "id".to_string(),
        "source".into(),
        "width".into(),
        "height".into(),
        "class".into(),
        "class_name".into(),
    ];
    header.extend((0..k).map(|c| format!("prob_{c}")));
    header.push("lesion_pixels".into());
    header.extend(PER_IMAGE_METRICS.iter().map(|m| m.to_string()));
    csv.write_record(&header)?;

    let mut seg_metrics = SegMetrics::new(Spacing::default());
    let (mut n_truth, mut class_counts) = (0usize, vec![0usize; k]);
    let mut done = 0;
    // A counter that rewrites its line is for people; logs get the final summary only.
    let terminal = std::io::stderr().is_terminal();
    for chunk in inputs.chunks(cfg.batch_eval.max(1)) {
        let mut images = Vec::with_capacity(chunk.len());
        let mut spacings = Vec::with_capacity(chunk.len());
        for input in chunk {
            let (img, spacing) = load_input(input, opts.crop_to_region)?;
            images.push(img);
            spacings.push(spacing);
        }
        let preds = predict_images(method.as_ref(), &cfg, &images, opts.saliency);
        for (((input, img), spacing), pred) in chunk.iter().zip(&images).zip(&spacings).zip(preds) {
            let truth = load_truth(input, img)?;
            let mut row = vec![
                input.id.clone(),
                input.path.display().to_string(),
                img.width.to_string(),
                img.height.to_string(),
            ];
            write_pictures(dir, &input.id, img, &pred, truth.as_ref())?;
            let class = pred.class.map(|c| c as usize);
            if let Some(c) = class {
                class_counts[c] += 1;
            }
            row.push(class.map_or(String::new(), |c| c.to_string()));
            row.push(
                class
                    .and_then(|c| class_names.as_ref().map(|n| n[c].clone()))
                    .unwrap_or_default(),
            );
            let probs = pred.class_probabilities.clone().unwrap_or_default();
            row.extend((0..k).map(|c| csv_cell(probs.get(c).copied())));
            row.push(
                pred.mask
                    .as_ref()
                    .map_or(String::new(), |m| m.count_nonzero().to_string()),
            );
            let mut scores = None;
            if let (Some(mask), Some(truth)) = (&pred.mask, &truth) {
                n_truth += 1;
                let (w, h) = (img.width as usize, img.height as usize);
                let bin =
                    |m: &GrayImage| m.data.iter().map(|&v| u8::from(v > 0)).collect::<Vec<_>>();
                let (p, t) = (bin(mask), bin(truth));
                scores = Some(
                    seg_metrics
                        .update_masks(
                            Mask::new(&p, h, w).expect("mask shape"),
                            Mask::new(&t, h, w).expect("mask shape"),
                            spacing.map(|[r, c]| Spacing::new(r, c)),
                        )
                        .expect("masks of equal shape")
                        .clone(),
                );
            }
            row.extend(SegImageMetrics::csv_cells(scores.as_ref()));
            csv.write_record(&row)?;
        }
        done += chunk.len();
        if terminal {
            eprint!("\rpredicted {done}/{} images", inputs.len());
        }
    }
    if terminal {
        eprintln!();
    }
    csv.flush()?;
    drop(csv);
    let summary = serde_json::json!({
        "run": run_dir,
        "checkpoint": opts.checkpoint.as_deref().unwrap_or("best if present, else last"),
        "n_images": inputs.len(),
        "class_counts": class_counts,
        "class_names": class_names,
        "images_with_truth": n_truth,
        "seg": (n_truth > 0).then(|| seg_metrics.aggregate()),
    });
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    staged.commit()?;
    Ok(summary)
}

/// Writes the mask, probability map, overlay and saliency map of one image; nothing for the parts
/// the run has no network for.
fn write_pictures(
    dir: &Path,
    id: &str,
    img: &GrayImage,
    pred: &ImagePrediction,
    truth: Option<&GrayImage>,
) -> Result<()> {
    let file = format!("{id}.png");
    if let (Some(mask), Some(prob)) = (&pred.mask, &pred.lesion_probability) {
        save_png(&dir.join("masks").join(&file), mask)?;
        save_png(
            &dir.join("probabilities").join(&file),
            &probability_image(img.width, img.height, prob),
        )?;
        let overlay = match truth {
            Some(t) => overlay_compare(img, mask, t),
            None => overlay_outline(img, mask),
        };
        save_rgb_png(&dir.join("overlays").join(&file), &overlay)?;
    }
    if let Some(s) = &pred.saliency {
        save_rgb_png(&dir.join("saliency").join(&file), &heat_map(img, s))?;
    }
    Ok(())
}
