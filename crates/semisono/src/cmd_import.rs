//! `semisono import` and `semisono export`: public dataset layouts in and out of the dataset directory.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use semisono_data::export::{export_hermes, HermesSelection};
use semisono_data::image_io::MaskPolicy;
use semisono_data::import::{self, ImportFormat, ImportOptions};
use semisono_data::split::Split;
use semisono_data::{Dataset, StagedDir};

use crate::bad_input;
use crate::cmd_synth::parse_named;

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Input layout: hermes, busi, udiat, busbra, folders, dicom. Detected from the layout if omitted.
    #[arg(long)]
    pub format: Option<String>,
    /// Input directory (or a single DICOM file).
    #[arg(long)]
    pub input: PathBuf,
    /// Output dataset directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Label table: id,label for `folders`; Image,Type for `udiat`; bus_data.csv for `busbra`.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Class names in label-index order, comma separated (e.g. benign,malignant).
    #[arg(long, value_delimiter = ',')]
    pub classes: Option<Vec<String>>,
    /// Masks that are not 0/255: threshold (>127, reported), nonzero (>0), or strict (refuse).
    #[arg(long, default_value = "threshold")]
    pub mask_policy: String,
    /// DICOM: crop to the ultrasound region (SequenceOfUltrasoundRegions).
    #[arg(long)]
    pub crop_to_region: bool,
    /// BUSI: leave out the normal class (benign / malignant only).
    #[arg(long)]
    pub drop_normal: bool,
    /// Dataset name (default: the input directory's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Replace the output directory if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn parse_mask_policy(text: &str) -> Result<MaskPolicy> {
    parse_named("mask-policy", text, &["threshold", "nonzero", "strict"])
}

pub fn run_import(args: ImportArgs) -> Result<()> {
    let format = match &args.format {
        Some(f) => f.parse::<ImportFormat>().map_err(|e| bad_input!("--format: {e}"))?,
        None => import::detect_format(&args.input).ok_or_else(|| {
            bad_input!(
                "{}: cannot tell the layout; pass --format (hermes, busi, udiat, busbra, folders, dicom)",
                args.input.display()
            )
        })?,
    };
    let opts = ImportOptions {
        mask_policy: parse_mask_policy(&args.mask_policy)?,
        classes: args.classes.clone(),
        labels_csv: args.labels.clone(),
        crop_to_region: args.crop_to_region,
        keep_normal: !args.drop_normal,
        overwrite: args.overwrite,
        name: args.name.clone(),
    };
    let s = import::import(format, &args.input, &opts, &args.out)?;
    let per_class: Vec<String> = s
        .per_class
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    println!(
        "imported {} images from {} ({format}) into {}: {} with mask, {} with label, {} unlabeled; per class: {}",
        s.images,
        args.input.display(),
        s.out.display(),
        s.with_mask,
        s.with_label,
        s.unlabeled,
        if per_class.is_empty() { "-".into() } else { per_class.join(", ") }
    );
    if s.skipped > 0 {
        println!("left out {} images (see --drop-normal)", s.skipped);
    }
    if !s.thresholded_masks.is_empty() {
        let examples: Vec<String> = s
            .thresholded_masks
            .iter()
            .take(3)
            .map(|m| format!("{} (values {:?})", m.file.display(), m.sample_values))
            .collect();
        println!(
            "binarised {} masks that were not 0/255 with --mask-policy {}: e.g. {}",
            s.thresholded_masks.len(),
            args.mask_policy,
            examples.join("; ")
        );
    }
    for w in &s.warnings {
        println!("warning: {w}");
    }
    println!("next: semisono split --dataset {}", s.out.display());
    Ok(())
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Output layout (only `hermes` for now).
    #[arg(long, default_value = "hermes")]
    pub format: String,
    /// Dataset directory to export.
    #[arg(long)]
    pub dataset: PathBuf,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Export a split as Hermes' data_split.py tree: train/<N>/labeled, train/<N>/unlabeled, val, test.
    #[arg(long)]
    pub split: Option<PathBuf>,
    /// Replace the output directory if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run_export(args: ExportArgs) -> Result<()> {
    if args.format != "hermes" {
        return Err(bad_input!(
            "--format {:?}: unknown export format; valid: hermes",
            args.format
        ));
    }
    let ds = Dataset::open(&args.dataset)?;
    let Some(split_path) = &args.split else {
        let s = export_hermes(&ds, HermesSelection::All, &args.out, args.overwrite)?;
        println!(
            "wrote {} labeled and {} unlabeled images to {} (labeled.txt, unlabeled.txt, image/, mask/)",
            s.labeled,
            s.unlabeled,
            s.out.display()
        );
        return Ok(());
    };
    let split = Split::load(split_path)?;
    split.verify(&ds)?;
    let staged = StagedDir::create(&args.out, args.overwrite)?;
    let train = staged
        .path()
        .join("train")
        .join(split.labeled.len().to_string());
    let none: &[String] = &[];
    let parts: [(PathBuf, HermesSelection<'_>); 4] = [
        (
            train.join("labeled"),
            HermesSelection::Sets {
                labeled: &split.labeled,
                unlabeled: none,
            },
        ),
        (
            train.join("unlabeled"),
            HermesSelection::Sets {
                labeled: none,
                unlabeled: &split.unlabeled,
            },
        ),
        (
            staged.path().join("val"),
            HermesSelection::Sets {
                labeled: &split.val,
                unlabeled: none,
            },
        ),
        (
            staged.path().join("test"),
            HermesSelection::Sets {
                labeled: &split.test,
                unlabeled: none,
            },
        ),
    ];
    let mut written = Vec::new();
    for (dir, selection) in parts {
        let empty = match selection {
            HermesSelection::Sets { labeled, unlabeled } => {
                labeled.is_empty() && unlabeled.is_empty()
            }
            _ => false,
        };
        if empty {
            continue;
        }
        let s = export_hermes(&ds, selection, &dir, false)?;
        written.push(format!(
            "{}: {} labeled, {} unlabeled",
            dir.strip_prefix(staged.path()).unwrap_or(&dir).display(),
            s.labeled,
            s.unlabeled
        ));
    }
    let out = staged.commit()?;
    println!(
        "wrote the Hermes tree of {} to {}:",
        split_path.display(),
        out.display()
    );
    for line in written {
        println!("  {line}");
    }
    Ok(())
}
