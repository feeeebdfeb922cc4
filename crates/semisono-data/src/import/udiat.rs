//! UDIAT Dataset B (specs/datasets.md §A.3):
//!
//! ```text
//! <input>/original/000001.png ...   images
//! <input>/GT/000001.png ...         masks (not guaranteed 0/255: thresholded at > 127 by default)
//! <input>/DatasetB.xlsx             columns Image (integer, zero-padded to 6 = the stem), Type
//!                                   (Benign | Malignant), a third column with the diagnosis
//! ```
//!
//! `DatasetB.csv` with the same columns is accepted instead of the xlsx, and `labels_csv` overrides
//! both. Every image needs a row and every row an image (so a wrong table cannot silently label the
//! wrong files). Classes default to `benign`, `malignant`; the diagnosis (third column, if any) goes to
//! `meta.diagnosis`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::tables::Table;
use super::{
    child_ci, class_index, id_of, list_images, named_classes, stem, ImportOptions, Item, Plan,
};
use crate::error::{DataError, Result};

fn table_path(input: &Path, opts: &ImportOptions) -> Result<PathBuf> {
    if let Some(p) = &opts.labels_csv {
        return Ok(p.clone());
    }
    ["DatasetB.xlsx", "DatasetB.csv"]
        .iter()
        .find_map(|n| child_ci(input, n))
        .ok_or_else(|| {
            DataError::bad_file(
                input,
                "no DatasetB.xlsx or DatasetB.csv here; pass --labels <table> with columns Image,Type",
            )
        })
}

/// `1`, `000001`, `000001.png` → `000001`.
fn image_key(raw: &str) -> String {
    let s = raw.trim();
    let s = Path::new(s)
        .file_stem()
        .map(|x| x.to_string_lossy().into_owned())
        .unwrap_or_else(|| s.to_string());
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
        format!("{:0>6}", s)
    } else {
        s
    }
}

pub(crate) fn plan(input: &Path, opts: &ImportOptions) -> Result<Plan> {
    let dir = |name: &str| {
        child_ci(input, name).filter(|p| p.is_dir()).ok_or_else(|| {
            DataError::bad_file(
                input,
                format!("no {name}/ folder here; point --input at the Dataset B directory (original/, GT/, DatasetB.xlsx)"),
            )
        })
    };
    let (originals, gt) = (dir("original")?, dir("GT")?);
    let table = Table::read(&table_path(input, opts)?)?;
    let c_image = table.require(&["image", "image name", "name", "id"], "image")?;
    let c_type = table.require(&["type", "class", "label", "pathology"], "type")?;
    let c_diag = (table.headers.len() > 2)
        .then(|| table.col(&["diagnosis", "diagnostic"]).unwrap_or(2))
        .filter(|&c| c != c_image && c != c_type);
    let classes = named_classes(opts, &["benign", "malignant"]);

    let mut rows: BTreeMap<String, (usize, u32, Option<String>)> = BTreeMap::new();
    for (line, cells) in &table.rows {
        let get = |c: usize| cells.get(c).map(String::as_str).unwrap_or("");
        let key = image_key(get(c_image));
        if key.is_empty() {
            return Err(DataError::bad_line(&table.path, *line, "empty Image cell"));
        }
        let ty = get(c_type);
        let label = class_index(&classes, ty).ok_or_else(|| {
            DataError::bad_line(
                &table.path,
                *line,
                format!("Type {ty:?} is not one of {classes:?}"),
            )
        })?;
        let diag = c_diag.map(|c| get(c).to_string()).filter(|d| !d.is_empty());
        if let Some((prev, ..)) = rows.insert(key.clone(), (*line, label, diag)) {
            return Err(DataError::bad_line(
                &table.path,
                *line,
                format!("image {key} is listed twice (also on line {prev})"),
            ));
        }
    }

    let mut plan = Plan {
        classes,
        ..Plan::default()
    };
    let masks: BTreeMap<String, PathBuf> = list_images(&gt)?
        .into_iter()
        .map(|p| (stem(&p), p))
        .collect();
    for image in list_images(&originals)? {
        let s = stem(&image);
        let Some((line, label, diag)) = rows.remove(&image_key(&s)) else {
            return Err(DataError::bad_file(
                &image,
                format!(
                    "has no row in {}; add one (Image, Type) or remove the image",
                    table.path.display()
                ),
            ));
        };
        let mask = masks.get(&s).cloned().ok_or_else(|| {
            DataError::bad_file(
                &image,
                format!(
                    "no mask {}/{s}.png for this image; add it or remove the image",
                    gt.display()
                ),
            )
        })?;
        let mut it = Item::new(id_of(&s, &image)?, image);
        it.masks.push(mask);
        it.label = Some(label);
        it.origin = Some(format!("{}:{line}", table.path.display()));
        if let Some(d) = diag {
            it.meta = serde_json::json!({ "diagnosis": d });
        }
        plan.items.push(it);
    }
    if let Some((key, (line, ..))) = rows.into_iter().next() {
        return Err(DataError::bad_line(
            &table.path,
            line,
            format!(
                "image {key} is listed but {}/{key}.png does not exist; fix the table or add the image",
                originals.display()
            ),
        ));
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(image_key("1"), "000001");
        assert_eq!(image_key("000163.png"), "000163");
        assert_eq!(image_key(" case7 "), "case7");
    }
}
