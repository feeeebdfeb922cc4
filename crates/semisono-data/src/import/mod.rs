//! Importers: public ultrasound layouts (Hermes lists, BUSI, UDIAT Dataset B, BUS-BRA), plain
//! image/mask folders and DICOM, each turned into a semisono dataset directory.
//!
//! Every importer first *plans* (walks the input, reads lists and tables, pairs images with masks and
//! labels, checks ids) without decoding anything, then decodes images and masks in parallel and
//! writes through [`DatasetWriter`], which stages the dataset beside the target and renames it into
//! place at the end: on any error nothing is left at `out`.
//!
//! Counting: an image is *labeled* when it has a mask or a class label, *unlabeled* when it has
//! neither (`ImportSummary::labeled` / `unlabeled`); `with_mask` and `with_label` count each part.
//!
//! Layouts and options are described per format in the submodules' docs.

mod busbra;
mod busi;
mod dicom_dir;
mod folders;
mod hermes;
mod tables;
mod udiat;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dataset::{DatasetWriter, NewEntry};
use crate::dicom::{self, DicomOptions};
use crate::error::{DataError, Result};
use crate::image_io::{self, GrayImage, MaskPolicy};
use crate::manifest::{sanitize_id, DatasetInfo};

/// The input layouts `import` understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImportFormat {
    /// `labeled.txt` / `unlabeled.txt` with `image/` and `mask/` (or the data_split.py tree).
    Hermes,
    /// `Dataset_BUSI_with_GT`: `benign/`, `malignant/`, `normal/` with `<name>_mask*.png`.
    Busi,
    /// UDIAT Dataset B: `original/`, `GT/`, `DatasetB.xlsx` (or `DatasetB.csv`).
    Udiat,
    /// BUS-BRA: `Images/`, `Masks/`, `bus_data.csv`.
    #[serde(rename = "busbra", alias = "bus-bra")]
    BusBra,
    /// `images/`, optional `masks/` (same stem), optional labels CSV.
    Folders,
    /// A DICOM file or a directory of them (recursive); unlabeled.
    Dicom,
}

impl ImportFormat {
    pub const ALL: [ImportFormat; 6] = [
        ImportFormat::Hermes,
        ImportFormat::Busi,
        ImportFormat::Udiat,
        ImportFormat::BusBra,
        ImportFormat::Folders,
        ImportFormat::Dicom,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ImportFormat::Hermes => "hermes",
            ImportFormat::Busi => "busi",
            ImportFormat::Udiat => "udiat",
            ImportFormat::BusBra => "busbra",
            ImportFormat::Folders => "folders",
            ImportFormat::Dicom => "dicom",
        }
    }
}

impl fmt::Display for ImportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ImportFormat {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        let norm = if norm == "bus-bra" {
            "busbra".into()
        } else {
            norm
        };
        ImportFormat::ALL
            .into_iter()
            .find(|f| f.name() == norm)
            .ok_or_else(|| {
                let names: Vec<_> = ImportFormat::ALL.iter().map(|f| f.name()).collect();
                format!(
                    "unknown import format {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Guesses the format of `input` from its layout, for a CLI that makes `--format` optional.
pub fn detect_format(input: &Path) -> Option<ImportFormat> {
    if input.is_file() {
        return image_io::looks_like_dicom(input).then_some(ImportFormat::Dicom);
    }
    let has = |n: &str| input.join(n).exists();
    if has("labeled.txt") || has("unlabeled.txt") || (has("train") && has("test")) {
        Some(ImportFormat::Hermes)
    } else if busi::class_root(input).is_some() {
        Some(ImportFormat::Busi)
    } else if has("original") && has("GT") {
        Some(ImportFormat::Udiat)
    } else if has("Images") && has("Masks") {
        Some(ImportFormat::BusBra)
    } else if folders::images_dir(input).is_some() {
        Some(ImportFormat::Folders)
    } else if dicom_dir::find_dicom(input).is_ok_and(|v| !v.is_empty()) {
        Some(ImportFormat::Dicom)
    } else {
        None
    }
}

/// What to import and how.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// How masks with values other than 0/255 are read (default: threshold at > 127 and report).
    pub mask_policy: MaskPolicy,
    /// Class names in label-index order. Integer labels (Hermes lists, integer CSV labels) name
    /// their index with it; named labels (BUSI, UDIAT, BUS-BRA, CSV names) are looked up in it and
    /// a name missing from it is an error. Default: per format (see each importer).
    pub classes: Option<Vec<String>>,
    /// A label table: `id,label` / `image,label` for `folders` (default `<input>/labels.csv`); the
    /// `Image,Type` table for `udiat`; the `ID,Pathology,...` table for `busbra`.
    pub labels_csv: Option<PathBuf>,
    /// DICOM: crop to the ultrasound region (SequenceOfUltrasoundRegions).
    pub crop_to_region: bool,
    /// BUSI: keep the `normal` class (all-zero masks). Default true.
    pub keep_normal: bool,
    /// Replace `out` if it exists.
    pub overwrite: bool,
    /// Dataset name in dataset.json (default: the input directory's name).
    pub name: Option<String>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            mask_policy: MaskPolicy::Threshold,
            classes: None,
            labels_csv: None,
            crop_to_region: false,
            keep_normal: true,
            overwrite: false,
            name: None,
        }
    }
}

/// A mask that had values other than 0/255 and was binarised by the mask policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ThresholdedMask {
    pub file: PathBuf,
    pub non_binary_pixels: usize,
    /// Up to 8 of the values found.
    pub sample_values: Vec<u8>,
}

/// What an import wrote.
#[derive(Clone, Debug, Serialize)]
pub struct ImportSummary {
    pub format: ImportFormat,
    pub out: PathBuf,
    pub classes: Vec<String>,
    /// Images per class, in class order (unlabeled images are not counted here).
    pub per_class: Vec<(String, usize)>,
    pub images: usize,
    /// Images with a mask or a class label.
    pub labeled: usize,
    /// Images with neither.
    pub unlabeled: usize,
    pub with_mask: usize,
    pub with_label: usize,
    /// Images deliberately left out (BUSI `normal` with `keep_normal: false`).
    pub skipped: usize,
    /// Masks binarised under `MaskPolicy::Threshold` / `Nonzero` because they were not 0/255.
    pub thresholded_masks: Vec<ThresholdedMask>,
    /// Things the user should know (masks without images, images kept uncropped, ...).
    pub warnings: Vec<String>,
}

/// One image to import, before decoding.
#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub id: String,
    pub image: PathBuf,
    /// Mask files, OR-ed together (BUSI has up to three per image).
    pub masks: Vec<PathBuf>,
    /// With no mask files: store an all-zero mask (BUSI `normal`).
    pub zero_mask: bool,
    pub label: Option<u32>,
    pub group: Option<String>,
    pub meta: serde_json::Value,
    /// Where this item was named (a list line, a table row), for duplicate-id messages.
    pub origin: Option<String>,
}

impl Item {
    pub fn new(id: String, image: PathBuf) -> Self {
        Item {
            id,
            image,
            masks: Vec::new(),
            zero_mask: false,
            label: None,
            group: None,
            meta: serde_json::Value::Null,
            origin: None,
        }
    }
}

/// The outcome of planning: everything but the pixels.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub classes: Vec<String>,
    pub items: Vec<Item>,
    pub skipped: usize,
    pub warnings: Vec<String>,
}

/// Imports `input` in `format` into a new dataset directory `out`.
pub fn import(
    format: ImportFormat,
    input: &Path,
    opts: &ImportOptions,
    out: &Path,
) -> Result<ImportSummary> {
    if !input.exists() {
        return Err(DataError::bad_file(
            input,
            "input not found; check the --input path",
        ));
    }
    if out.exists() && !opts.overwrite {
        return Err(DataError::Invalid(format!(
            "{} already exists; choose another output directory or pass --overwrite",
            out.display()
        )));
    }
    let plan = match format {
        ImportFormat::Hermes => hermes::plan(input, opts)?,
        ImportFormat::Busi => busi::plan(input, opts)?,
        ImportFormat::Udiat => udiat::plan(input, opts)?,
        ImportFormat::BusBra => busbra::plan(input, opts)?,
        ImportFormat::Folders => folders::plan(input, opts)?,
        ImportFormat::Dicom => dicom_dir::plan(input, opts)?,
    };
    run(format, input, opts, out, plan)
}

fn check_ids(items: &[Item]) -> Result<()> {
    let mut seen: std::collections::HashMap<&str, &Item> = Default::default();
    for it in items {
        if let Some(prev) = seen.insert(&it.id, it) {
            let at = |i: &Item| match &i.origin {
                Some(o) => format!("{} ({o})", i.image.display()),
                None => i.image.display().to_string(),
            };
            return Err(DataError::Invalid(format!(
                "duplicate id {:?}: {} and {} map to the same id; rename one of them \
                 (ids are file names without extension, made file-name safe)",
                it.id,
                at(prev),
                at(it)
            )));
        }
    }
    Ok(())
}

fn run(
    format: ImportFormat,
    input: &Path,
    opts: &ImportOptions,
    out: &Path,
    plan: Plan,
) -> Result<ImportSummary> {
    if plan.items.is_empty() {
        return Err(DataError::Invalid(format!(
            "no images found in {} for --format {format}; check the path and that its layout \
             matches the format",
            input.display()
        )));
    }
    check_ids(&plan.items)?;
    let name = opts.name.clone().unwrap_or_else(|| {
        let base = if input.is_file() {
            input.file_stem()
        } else {
            input.file_name()
        };
        base.map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "imported".into())
    });
    let mut info = DatasetInfo::new(name, plan.classes.clone(), format.name());
    info.meta = serde_json::json!({
        "input": input.display().to_string(),
        "mask_policy": opts.mask_policy,
        "crop_to_region": opts.crop_to_region,
    });
    let mut writer = DatasetWriter::create(out, info, opts.overwrite)?;
    let mut summary = ImportSummary {
        format,
        out: out.to_path_buf(),
        classes: plan.classes.clone(),
        per_class: plan.classes.iter().map(|c| (c.clone(), 0)).collect(),
        images: 0,
        labeled: 0,
        unlabeled: 0,
        with_mask: 0,
        with_label: 0,
        skipped: plan.skipped,
        thresholded_masks: Vec::new(),
        warnings: plan.warnings,
    };
    let dicom_opts = DicomOptions {
        crop_to_region: opts.crop_to_region,
    };
    // Decode in chunks so memory stays bounded on large datasets; encode/write is parallel inside.
    for chunk in plan.items.chunks(64) {
        let decoded: Vec<Result<Decoded>> = chunk
            .par_iter()
            .map(|it| decode(it, opts.mask_policy, &dicom_opts))
            .collect();
        let mut batch = Vec::with_capacity(decoded.len());
        for d in decoded {
            let d = d?; // the first error in input order
            summary.thresholded_masks.extend(d.thresholded);
            summary.warnings.extend(d.warnings);
            let e = d.entry;
            summary.images += 1;
            if e.mask.is_some() {
                summary.with_mask += 1;
            }
            if let Some(l) = e.label {
                summary.with_label += 1;
                summary.per_class[l as usize].1 += 1;
            }
            if e.mask.is_some() || e.label.is_some() {
                summary.labeled += 1;
            } else {
                summary.unlabeled += 1;
            }
            batch.push(e);
        }
        writer.add_batch(batch)?;
    }
    writer.finish()?;
    Ok(summary)
}

struct Decoded {
    entry: NewEntry,
    thresholded: Vec<ThresholdedMask>,
    warnings: Vec<String>,
}

fn decode(it: &Item, policy: MaskPolicy, dicom_opts: &DicomOptions) -> Result<Decoded> {
    let mut warnings = Vec::new();
    let mut meta = it.meta.clone();
    let (image, spacing) = if image_io::looks_like_dicom(&it.image) {
        let d = dicom::load_dicom(&it.image, dicom_opts)?;
        if dicom_opts.crop_to_region && !d.cropped {
            warnings.push(format!(
                "{}: no ultrasound region in the DICOM; kept the whole frame",
                it.image.display()
            ));
        }
        merge_meta(&mut meta, "dicom", d.meta);
        (d.image, d.pixel_spacing_mm)
    } else {
        (image_io::load_gray(&it.image)?, None)
    };
    let mut thresholded = Vec::new();
    let mut mask: Option<GrayImage> = None;
    for path in &it.masks {
        let (m, report) = image_io::load_mask(path, policy)?;
        if (m.width, m.height) != (image.width, image.height) {
            return Err(DataError::bad_file(
                path,
                format!(
                    "mask is {}x{} but its image {} is {}x{}; masks must have the image's size",
                    m.width,
                    m.height,
                    it.image.display(),
                    image.width,
                    image.height
                ),
            ));
        }
        if !report.is_clean() {
            thresholded.push(ThresholdedMask {
                file: path.clone(),
                non_binary_pixels: report.non_binary_pixels,
                sample_values: report.sample_values,
            });
        }
        mask = Some(match mask {
            None => m,
            Some(mut acc) => {
                acc.data
                    .iter_mut()
                    .zip(&m.data)
                    .for_each(|(a, &b)| *a = (*a).max(b));
                acc
            }
        });
    }
    if mask.is_none() && it.zero_mask {
        mask = Some(GrayImage::zeros(image.width, image.height));
    }
    if it.masks.len() > 1 {
        merge_meta(&mut meta, "masks_merged", it.masks.len().into());
    }
    let mut entry = NewEntry::new(it.id.clone(), image, it.image.display().to_string());
    entry.mask = mask;
    entry.label = it.label;
    entry.group = it.group.clone();
    entry.pixel_spacing_mm = spacing;
    entry.meta = meta;
    Ok(Decoded {
        entry,
        thresholded,
        warnings,
    })
}

fn merge_meta(meta: &mut serde_json::Value, key: &str, value: serde_json::Value) {
    if !meta.is_object() {
        *meta = serde_json::Value::Object(Default::default());
    }
    meta.as_object_mut()
        .expect("object")
        .insert(key.to_string(), value);
}

// ---- helpers shared by the importers ----

/// Extensions of images the importers pick up from folders (DICOM only in the `dicom` format and
/// in `folders`).
const IMAGE_EXTS: [&str; 8] = ["png", "jpg", "jpeg", "bmp", "tif", "tiff", "dcm", "dicom"];

pub(crate) fn is_image_file(p: &Path) -> bool {
    p.is_file()
        && p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Image files directly in `dir`, sorted by name (numerically where names are integers).
pub(crate) fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let p = entry.map_err(|e| DataError::io(dir, e))?.path();
        if is_image_file(&p) {
            out.push(p);
        }
    }
    sort_paths(&mut out);
    Ok(out)
}

/// Sorts by file stem: integer stems first in numeric order (`2.png` before `10.png`), then the
/// rest by path.
pub(crate) fn sort_paths(paths: &mut [PathBuf]) {
    paths.sort_by_cached_key(|p| match stem(p).parse::<u64>() {
        Ok(n) => (0, n, p.clone()),
        Err(_) => (1, 0, p.clone()),
    });
}

pub(crate) fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The id of a file: its stem made file-name safe; an error if nothing is left.
pub(crate) fn id_of(raw: &str, path: &Path) -> Result<String> {
    let id = sanitize_id(raw);
    if id.is_empty() {
        return Err(DataError::bad_file(
            path,
            "cannot derive an id from this file name; rename it with letters or digits",
        ));
    }
    Ok(id)
}

/// Maps a class name to its index in `classes`, case-insensitively; `None` if absent.
pub(crate) fn class_index(classes: &[String], name: &str) -> Option<u32> {
    classes
        .iter()
        .position(|c| c.eq_ignore_ascii_case(name.trim()))
        .map(|i| i as u32)
}

/// The class list for a format with named classes: `opts.classes` when given, else `default`.
pub(crate) fn named_classes(opts: &ImportOptions, default: &[&str]) -> Vec<String> {
    opts.classes
        .clone()
        .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect())
}

/// Finds a child of `dir` named `name`, case-insensitively (`GT` vs `gt`, `Images` vs `images`).
pub(crate) fn child_ci(dir: &Path, name: &str) -> Option<PathBuf> {
    let exact = dir.join(name);
    if exact.exists() {
        return Some(exact);
    }
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for f in ImportFormat::ALL {
            assert_eq!(f.to_string().parse::<ImportFormat>().unwrap(), f);
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{f}\""));
        }
        assert_eq!(
            "BUS-BRA".parse::<ImportFormat>().unwrap(),
            ImportFormat::BusBra
        );
        assert!("nifti"
            .parse::<ImportFormat>()
            .unwrap_err()
            .contains("hermes"));
    }

    #[test]
    fn numeric_sort() {
        let mut v: Vec<PathBuf> = ["10.png", "2.png", "b.png", "a.png"]
            .iter()
            .map(PathBuf::from)
            .collect();
        sort_paths(&mut v);
        let names: Vec<_> = v.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(names, ["2.png", "10.png", "a.png", "b.png"]);
    }
}
