//! DICOM input: one file, or a directory searched recursively for DICOM files (by `.dcm`/`.dicom`
//! extension or the `DICM` magic; other files are skipped). Every file becomes one unlabeled image
//! (first frame), with its pixel spacing and DICOM metadata; `crop_to_region` cuts it to the
//! ultrasound region. Ids are the path below the input with `/` → `_`, extension dropped.

use std::path::{Path, PathBuf};

use super::{id_of, ImportOptions, Item, Plan};
use crate::error::{DataError, Result};
use crate::image_io::looks_like_dicom;

/// DICOM files under `dir`, sorted by path; hidden entries are skipped.
pub(crate) fn find_dicom(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| DataError::io(&d, e))?;
        for entry in rd {
            let p = entry.map_err(|e| DataError::io(&d, e))?.path();
            let hidden = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() && looks_like_dicom(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

pub(crate) fn plan(input: &Path, opts: &ImportOptions) -> Result<Plan> {
    let files = if input.is_file() {
        vec![input.to_path_buf()]
    } else {
        find_dicom(input)?
    };
    let mut plan = Plan {
        classes: opts.classes.clone().unwrap_or_default(),
        ..Plan::default()
    };
    for f in files {
        let rel = if input.is_file() {
            PathBuf::from(f.file_name().unwrap_or_default())
        } else {
            f.strip_prefix(input).unwrap_or(&f).to_path_buf()
        };
        let is_dcm_ext = rel
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("dcm") || e.eq_ignore_ascii_case("dicom"));
        let rel = if is_dcm_ext {
            rel.with_extension("")
        } else {
            rel
        };
        let raw = rel.to_string_lossy().replace(['/', '\\'], "_");
        let mut it = Item::new(id_of(&raw, &f)?, f);
        it.meta = serde_json::json!({});
        plan.items.push(it);
    }
    Ok(plan)
}
