//! BUSI (`Dataset_BUSI_with_GT`, specs/datasets.md §A.2):
//!
//! ```text
//! <input>/benign/     benign (1).png, benign (1)_mask.png, benign (4)_mask_1.png ...
//! <input>/malignant/  ...
//! <input>/normal/     normal (1).png, normal (1)_mask.png (all zero)
//! ```
//!
//! The class folders may also sit one level down (the zip's `Dataset_BUSI_with_GT/`). A file whose
//! stem contains `_mask` is a mask of the image named by what precedes it; all masks of an image are
//! OR-ed (RGB/RGBA masks are reduced by max). A benign/malignant image without a mask is an error; a
//! normal image without one gets an all-zero mask (BUSI always ships one). Ids are the sanitised
//! stems (`benign (4)` → `benign_4`). Classes default to `benign`, `malignant`, `normal` (so benign
//! and malignant keep the 0/1 of the Hermes lists); with `keep_normal: false` the normal folder is
//! skipped and the classes are `benign`, `malignant`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{
    child_ci, class_index, id_of, list_images, named_classes, stem, ImportOptions, Item, Plan,
};
use crate::error::{DataError, Result};

const CLASS_DIRS: [&str; 3] = ["benign", "malignant", "normal"];

/// The directory holding the class folders: `input` or its single subdirectory that does.
pub(crate) fn class_root(input: &Path) -> Option<PathBuf> {
    let has = |d: &Path| {
        CLASS_DIRS
            .iter()
            .any(|c| child_ci(d, c).is_some_and(|p| p.is_dir()))
    };
    if has(input) {
        return Some(input.to_path_buf());
    }
    let subs: Vec<PathBuf> = std::fs::read_dir(input)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && has(p))
        .collect();
    match &subs[..] {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// The image a mask belongs to: `benign (4)_mask_1` → `benign (4)`.
fn mask_base(stem: &str) -> Option<&str> {
    stem.find("_mask").map(|i| &stem[..i])
}

pub(crate) fn plan(input: &Path, opts: &ImportOptions) -> Result<Plan> {
    let root = class_root(input).ok_or_else(|| {
        DataError::bad_file(
            input,
            "no benign/, malignant/ or normal/ folder here (nor one level down); point --input at \
             Dataset_BUSI_with_GT",
        )
    })?;
    let default: &[&str] = if opts.keep_normal {
        &CLASS_DIRS
    } else {
        &CLASS_DIRS[..2]
    };
    let classes = named_classes(opts, default);
    let mut plan = Plan {
        classes,
        ..Plan::default()
    };
    for class in CLASS_DIRS {
        let Some(dir) = child_ci(&root, class).filter(|d| d.is_dir()) else {
            continue;
        };
        let files = list_images(&dir)?;
        if class == "normal" && !opts.keep_normal {
            plan.skipped += files
                .iter()
                .filter(|f| mask_base(&stem(f)).is_none())
                .count();
            continue;
        }
        let label = class_index(&plan.classes, class).ok_or_else(|| {
            DataError::bad_file(
                &dir,
                format!(
                    "class {class:?} is not in the class list {:?}; add it to --classes{}",
                    plan.classes,
                    if class == "normal" {
                        " or drop normal images"
                    } else {
                        ""
                    }
                ),
            )
        })?;
        let mut images: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut masks: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        for f in files {
            let s = stem(&f);
            match mask_base(&s) {
                Some(base) => masks.entry(base.to_string()).or_default().push(f),
                None => {
                    if let Some(prev) = images.insert(s.clone(), f.clone()) {
                        return Err(DataError::Invalid(format!(
                            "{} and {} are the same image name with two extensions; keep one",
                            prev.display(),
                            f.display()
                        )));
                    }
                }
            }
        }
        for (base, files) in &masks {
            if !images.contains_key(base) {
                plan.warnings.push(format!(
                    "{}: mask without an image {base}.png; ignored",
                    files[0].display()
                ));
            }
        }
        let mut items: Vec<Item> = Vec::new();
        for (base, image) in images {
            let mut it = Item::new(id_of(&base, &image)?, image.clone());
            it.label = Some(label);
            match masks.remove(&base) {
                Some(mut m) => {
                    m.sort();
                    it.masks = m;
                }
                None if class == "normal" => it.zero_mask = true,
                None => {
                    return Err(DataError::bad_file(
                        &image,
                        format!(
                            "no mask found (expected {base}_mask.png beside it); add the mask or \
                             remove the image"
                        ),
                    ))
                }
            }
            items.push(it);
        }
        // "benign (2)" before "benign (10)".
        items.sort_by_cached_key(|it| natural_key(&it.id));
        plan.items.extend(items);
    }
    Ok(plan)
}

/// Sort key that orders embedded numbers numerically: `benign_2` < `benign_10`.
fn natural_key(s: &str) -> Vec<(u8, u64, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        let digit = c.is_ascii_digit();
        let mut run = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_digit() != digit {
                break;
            }
            run.push(c);
            chars.next();
        }
        out.push(if digit {
            (0, run.parse().unwrap_or(u64::MAX), run)
        } else {
            (1, 0, run)
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_names() {
        assert_eq!(mask_base("benign (4)_mask"), Some("benign (4)"));
        assert_eq!(mask_base("benign (4)_mask_1"), Some("benign (4)"));
        assert_eq!(mask_base("benign (4)"), None);
        let mut v = vec!["benign_10", "benign_2", "benign_1"];
        v.sort_by_cached_key(|s| natural_key(s));
        assert_eq!(v, ["benign_1", "benign_2", "benign_10"]);
    }
}
