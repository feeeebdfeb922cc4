//! Plain folders:
//!
//! ```text
//! <input>/images/   a.png, b.jpg, c.dcm ...   (also `image/`)
//! <input>/masks/    a.png ...                 optional; same stem, any supported extension (also `mask/`)
//! <input>/labels.csv                          optional (or `labels_csv`): header `id,label` or
//!                                             `image,label`; id = file stem or file name
//! ```
//!
//! Labels are class names or integers. With `classes` given, an integer below its length is that
//! index and a name is looked up in it. Without, all-integer labels make classes `"0"..="max"`, and
//! otherwise the sorted distinct names are the classes. An empty label leaves the image without one;
//! an image with neither mask nor label is unlabeled. Two files with the same stem (`a.png`, `a.jpg`)
//! are a duplicate-id error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::tables::Table;
use super::{child_ci, class_index, id_of, list_images, stem, ImportOptions, Item, Plan};
use crate::error::{DataError, Result};

pub(crate) fn images_dir(input: &Path) -> Option<PathBuf> {
    ["images", "image"]
        .iter()
        .find_map(|n| child_ci(input, n).filter(|p| p.is_dir()))
}

/// Files by id; two files with one id is an error naming both.
fn by_id(files: Vec<PathBuf>) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for f in files {
        let id = id_of(&stem(&f), &f)?;
        if let Some(prev) = out.insert(id.clone(), f.clone()) {
            return Err(DataError::Invalid(format!(
                "duplicate id {id:?}: {} and {} have the same name; rename or remove one",
                prev.display(),
                f.display()
            )));
        }
    }
    Ok(out)
}

struct Labels {
    classes: Vec<String>,
    /// id → (label, line)
    by_id: BTreeMap<String, (u32, usize)>,
}

fn read_labels(
    path: &Path,
    opts: &ImportOptions,
    ids: &BTreeMap<String, PathBuf>,
) -> Result<Labels> {
    let table = Table::read(path)?;
    let c_id = table.require(&["id", "image", "file", "filename", "name"], "id")?;
    let c_label = table.require(&["label", "class", "type"], "label")?;
    let mut raw: Vec<(usize, String, String)> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (line, cells) in &table.rows {
        let get = |c: usize| cells.get(c).map(String::as_str).unwrap_or("").trim();
        let cell = get(c_id);
        let id = crate::manifest::sanitize_id(&stem(Path::new(cell)));
        if !ids.contains_key(&id) {
            return Err(DataError::bad_line(
                &table.path,
                *line,
                format!("{cell:?} matches no file in images/; fix the id or add the image"),
            ));
        }
        if let Some(prev) = seen.insert(id.clone(), *line) {
            return Err(DataError::bad_line(
                &table.path,
                *line,
                format!("{cell:?} is labeled twice (also on line {prev})"),
            ));
        }
        let label = get(c_label);
        if !label.is_empty() {
            raw.push((*line, id, label.to_string()));
        }
    }
    let all_int = raw.iter().all(|(_, _, l)| l.parse::<u32>().is_ok());
    let classes = match &opts.classes {
        Some(c) => c.clone(),
        None if all_int => {
            let max = raw
                .iter()
                .filter_map(|(_, _, l)| l.parse::<u32>().ok())
                .max();
            (0..=max.unwrap_or(1).max(1))
                .map(|i| i.to_string())
                .collect()
        }
        None => {
            let mut names: Vec<String> = raw.iter().map(|(_, _, l)| l.to_lowercase()).collect();
            names.sort();
            names.dedup();
            names
        }
    };
    let mut by_id = BTreeMap::new();
    for (line, id, l) in raw {
        let index = match (opts.classes.is_some(), l.parse::<u32>()) {
            (true, Ok(i)) if (i as usize) < classes.len() => Some(i),
            (false, Ok(i)) if all_int => Some(i),
            _ => class_index(&classes, &l),
        };
        let index = index.ok_or_else(|| {
            DataError::bad_line(
                &table.path,
                line,
                format!("label {l:?} is neither a class of {classes:?} nor an index into it"),
            )
        })?;
        by_id.insert(id, (index, line));
    }
    Ok(Labels { classes, by_id })
}

pub(crate) fn plan(input: &Path, opts: &ImportOptions) -> Result<Plan> {
    let images_dir = images_dir(input).ok_or_else(|| {
        DataError::bad_file(
            input,
            "no images/ folder here; expected images/ with optional masks/ and labels.csv",
        )
    })?;
    let images = by_id(list_images(&images_dir)?)?;
    let mut masks = match ["masks", "mask"]
        .iter()
        .find_map(|n| child_ci(input, n).filter(|p| p.is_dir()))
    {
        Some(d) => by_id(list_images(&d)?)?,
        None => BTreeMap::new(),
    };
    let labels_path = opts
        .labels_csv
        .clone()
        .or_else(|| child_ci(input, "labels.csv"));
    let labels = match &labels_path {
        Some(p) => Some(read_labels(p, opts, &images)?),
        None => None,
    };
    let mut plan = Plan {
        classes: match &labels {
            Some(l) => l.classes.clone(),
            None => opts.classes.clone().unwrap_or_default(),
        },
        ..Plan::default()
    };
    let mut items: Vec<Item> = Vec::new();
    for (id, image) in images {
        let mut it = Item::new(id.clone(), image);
        if let Some(m) = masks.remove(&id) {
            it.masks.push(m);
        }
        if let Some((label, line)) = labels.as_ref().and_then(|l| l.by_id.get(&id)) {
            it.label = Some(*label);
            let p = labels_path.as_ref().expect("labels were read");
            it.origin = Some(format!("{}:{line}", p.display()));
        }
        items.push(it);
    }
    for (id, m) in masks {
        plan.warnings.push(format!(
            "{}: mask without an image {id}.*; ignored",
            m.display()
        ));
    }
    let mut files: Vec<PathBuf> = items.iter().map(|i| i.image.clone()).collect();
    super::sort_paths(&mut files);
    let order: BTreeMap<PathBuf, usize> =
        files.into_iter().enumerate().map(|(i, p)| (p, i)).collect();
    items.sort_by_key(|it| order[&it.image]);
    plan.items = items;
    Ok(plan)
}
