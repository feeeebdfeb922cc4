//! BUS-BRA (specs/datasets.md §A.4):
//!
//! ```text
//! <input>/Images/bus_0001-l.png ...   grayscale images, ID pattern bus_XXXX-{l|r|s}
//! <input>/Masks/mask_0001-l.png ...   binary masks ("mask" + ID[3..])
//! <input>/bus_data.csv                ID, Pathology (benign | malignant), BIRADS, ...
//! ```
//!
//! The table (or `labels_csv`) is the index: every row needs its image and mask, and every image a
//! row. Classes default to `benign`, `malignant`. `group` is the patient, the number in the ID
//! (`bus_0001-l` → `0001`), so splits keep a patient's images together. `meta.birads` holds BI-RADS
//! (a number when it parses) and the other columns are kept in `meta` under their header names.

use std::collections::BTreeSet;
use std::path::Path;

use super::tables::Table;
use super::{
    child_ci, class_index, id_of, list_images, named_classes, stem, ImportOptions, Item, Plan,
};
use crate::error::{DataError, Result};

/// `bus_0001-l` → `0001`.
fn patient(id: &str) -> Option<String> {
    let rest = id.strip_prefix("bus_").unwrap_or(id);
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    (!digits.is_empty()).then_some(digits)
}

pub(crate) fn plan(input: &Path, opts: &ImportOptions) -> Result<Plan> {
    let dir = |name: &str| {
        child_ci(input, name).filter(|p| p.is_dir()).ok_or_else(|| {
            DataError::bad_file(
                input,
                format!("no {name}/ folder here; point --input at BUSBRA (Images/, Masks/, bus_data.csv)"),
            )
        })
    };
    let (images_dir, masks_dir) = (dir("Images")?, dir("Masks")?);
    let table_path = match &opts.labels_csv {
        Some(p) => p.clone(),
        None => child_ci(input, "bus_data.csv").ok_or_else(|| {
            DataError::bad_file(
                input,
                "no bus_data.csv here; pass --labels <csv> with ID,Pathology",
            )
        })?,
    };
    let table = Table::read(&table_path)?;
    let c_id = table.require(&["id"], "ID")?;
    let c_path = table.require(&["pathology"], "Pathology")?;
    let c_birads = table.col(&["birads", "bi-rads"]);
    let classes = named_classes(opts, &["benign", "malignant"]);
    let mut plan = Plan {
        classes,
        ..Plan::default()
    };
    let mut listed = BTreeSet::new();
    for (line, cells) in &table.rows {
        let get = |c: usize| cells.get(c).map(String::as_str).unwrap_or("");
        let raw_id = stem(Path::new(get(c_id)));
        if raw_id.is_empty() {
            return Err(DataError::bad_line(&table.path, *line, "empty ID cell"));
        }
        let pathology = get(c_path);
        let label = class_index(&plan.classes, pathology).ok_or_else(|| {
            DataError::bad_line(
                &table.path,
                *line,
                format!("Pathology {pathology:?} is not one of {:?}", plan.classes),
            )
        })?;
        let image = images_dir.join(format!("{raw_id}.png"));
        let mask_name = format!("mask{}.png", raw_id.strip_prefix("bus").unwrap_or(&raw_id));
        let mask = masks_dir.join(&mask_name);
        for (p, what) in [(&image, "image"), (&mask, "mask")] {
            if !p.is_file() {
                return Err(DataError::bad_line(
                    &table.path,
                    *line,
                    format!(
                        "{what} {} not found; fix the table or add the file",
                        p.display()
                    ),
                ));
            }
        }
        let mut meta = serde_json::Map::new();
        for (i, h) in table.headers.iter().enumerate() {
            if i == c_id || i == c_path || h.is_empty() {
                continue;
            }
            let v = get(i);
            let value = if Some(i) == c_birads {
                match v.parse::<i64>() {
                    Ok(n) => n.into(),
                    Err(_) => v.into(),
                }
            } else {
                v.into()
            };
            let key = if Some(i) == c_birads {
                "birads".to_string()
            } else {
                h.clone()
            };
            meta.insert(key, value);
        }
        listed.insert(raw_id.clone());
        let mut it = Item::new(id_of(&raw_id, &image)?, image);
        it.masks.push(mask);
        it.label = Some(label);
        it.group = patient(&raw_id);
        it.meta = serde_json::Value::Object(meta);
        it.origin = Some(format!("{}:{line}", table.path.display()));
        plan.items.push(it);
    }
    for image in list_images(&images_dir)? {
        if !listed.contains(&stem(&image)) {
            return Err(DataError::bad_file(
                &image,
                format!(
                    "has no row in {}; add one or remove the image",
                    table.path.display()
                ),
            ));
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    #[test]
    fn patient_ids() {
        assert_eq!(super::patient("bus_0001-l").as_deref(), Some("0001"));
        assert_eq!(super::patient("bus_1064-s").as_deref(), Some("1064"));
        assert_eq!(super::patient("x"), None);
    }
}
