//! Export of a dataset to the Hermes list layout (specs/hermes.md §3.1), the inverse of
//! `import --format hermes`:
//!
//! ```text
//! <out>/image/<id>.png     the dataset's stored PNG, copied byte for byte
//! <out>/mask/<id>.png      for labeled entries only
//! <out>/labeled.txt        "<id>.png <id>.png <label>" per line, LF, in dataset order
//! <out>/unlabeled.txt      "<id>.png" per line (written only when there are unlabeled entries)
//! ```
//!
//! Which entries are *labeled*: with [`HermesSelection::All`] or [`HermesSelection::Ids`], those with
//! both a mask and a class label (what Hermes needs for its supervised losses); every other entry goes
//! to unlabeled.txt without its mask or label (counted in `ExportSummary::dropped_masks` /
//! `dropped_labels`). With [`HermesSelection::Sets`] (e.g. a split's labeled and unlabeled parts) the
//! caller decides, and a labeled id without mask or label is an error. Labels are the dataset's class
//! indices. Ids are file-name safe and contain no spaces, so the lists parse with a plain split.
//! The directory is staged and renamed into place: on error nothing is left at `out`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::manifest::{write_atomic, ManifestEntry};
use crate::staged::StagedDir;

/// Which entries to export and how they are divided.
#[derive(Clone, Copy, Debug)]
pub enum HermesSelection<'a> {
    /// Every entry; labeled = mask and label.
    All,
    /// Only these ids (in this order); labeled = mask and label.
    Ids(&'a [String]),
    /// Explicit labeled and unlabeled ids; every labeled id must have a mask and a label.
    Sets {
        labeled: &'a [String],
        unlabeled: &'a [String],
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct ExportSummary {
    pub out: PathBuf,
    pub labeled: usize,
    pub unlabeled: usize,
    /// Unlabeled entries whose mask was not exported.
    pub dropped_masks: usize,
    /// Unlabeled entries whose class label was not exported.
    pub dropped_labels: usize,
}

/// Writes `dataset` (or the selected part) as a Hermes list directory at `out`.
pub fn export_hermes(
    dataset: &Dataset,
    selection: HermesSelection<'_>,
    out: &Path,
    overwrite: bool,
) -> Result<ExportSummary> {
    let lookup = |id: &String| {
        dataset.get(id).ok_or_else(|| {
            DataError::Invalid(format!(
                "id {id:?} is not in the dataset {}; the split or id list belongs to another dataset",
                dataset.root.display()
            ))
        })
    };
    let complete = |e: &ManifestEntry| e.mask.is_some() && e.label.is_some();
    let (labeled, unlabeled): (Vec<&ManifestEntry>, Vec<&ManifestEntry>) =
        match selection {
            HermesSelection::All => dataset.entries.iter().partition(|e| complete(e)),
            HermesSelection::Ids(ids) => {
                let entries = ids.iter().map(lookup).collect::<Result<Vec<_>>>()?;
                entries.into_iter().partition(|e| complete(e))
            }
            HermesSelection::Sets { labeled, unlabeled } => {
                let l = labeled.iter().map(lookup).collect::<Result<Vec<_>>>()?;
                if let Some(e) = l.iter().find(|e| !complete(e)) {
                    return Err(DataError::Invalid(format!(
                    "{}: entry {:?} is in the labeled set but has no {}; Hermes needs a mask and \
                     a class label for every labeled image",
                    dataset.root.display(),
                    e.id,
                    if e.mask.is_none() { "mask" } else { "class label" }
                )));
                }
                (l, unlabeled.iter().map(lookup).collect::<Result<Vec<_>>>()?)
            }
        };
    let mut seen = HashSet::new();
    if let Some(e) = labeled
        .iter()
        .chain(&unlabeled)
        .find(|e| !seen.insert(&e.id))
    {
        return Err(DataError::Invalid(format!(
            "id {:?} is selected twice; each image may be exported once",
            e.id
        )));
    }
    if labeled.is_empty() && unlabeled.is_empty() {
        return Err(DataError::Invalid(
            "nothing to export: the selection is empty".into(),
        ));
    }

    let stage = StagedDir::create(out, overwrite)?;
    let root = stage.path().to_path_buf();
    for sub in ["image", "mask"] {
        let d = root.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| DataError::io(&d, e))?;
    }
    let copy = |from: PathBuf, to: PathBuf| -> Result<()> {
        std::fs::copy(&from, &to)
            .map(|_| ())
            .map_err(|e| DataError::io(&from, e))
    };
    let mut labeled_txt = String::new();
    for e in &labeled {
        let name = format!("{}.png", e.id);
        copy(dataset.image_path(e), root.join("image").join(&name))?;
        let mask = dataset.mask_path(e).expect("labeled entries have masks");
        copy(mask, root.join("mask").join(&name))?;
        let label = e.label.expect("labeled entries have labels");
        labeled_txt.push_str(&format!("{name} {name} {label}\n"));
    }
    let mut unlabeled_txt = String::new();
    for e in &unlabeled {
        let name = format!("{}.png", e.id);
        copy(dataset.image_path(e), root.join("image").join(&name))?;
        unlabeled_txt.push_str(&name);
        unlabeled_txt.push('\n');
    }
    write_atomic(&root.join("labeled.txt"), labeled_txt.as_bytes())?;
    if !unlabeled.is_empty() {
        write_atomic(&root.join("unlabeled.txt"), unlabeled_txt.as_bytes())?;
    }
    let summary = ExportSummary {
        out: out.to_path_buf(),
        labeled: labeled.len(),
        unlabeled: unlabeled.len(),
        dropped_masks: unlabeled.iter().filter(|e| e.mask.is_some()).count(),
        dropped_labels: unlabeled.iter().filter(|e| e.label.is_some()).count(),
    };
    stage.commit()?;
    Ok(summary)
}
