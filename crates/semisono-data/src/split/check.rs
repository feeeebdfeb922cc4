//! Checking a split against its dataset, and counting it.

use std::fmt;

use rayon::prelude::*;
use serde::Serialize;

use super::{Fold, Part, Split};
use crate::dataset::Dataset;
use crate::error::Result;
use crate::manifest::{sha256_file, ManifestEntry};

impl Split {
    /// Checks the split against `ds`: no id in two parts, every id exists, every image (and mask) file
    /// still has the sha256 recorded in the split, and images in `labeled` / `val` / `test` still have
    /// a label or a mask. Reports up to 5 problems at once.
    pub fn verify(&self, ds: &Dataset) -> Result<()> {
        self.check_disjoint()?;
        let rerun = "re-run `semisono split`";
        let mut problems = Vec::new();
        let mut present = Vec::new();
        for part in Part::ALL {
            for id in self.part(part) {
                match ds.get(id) {
                    None => problems.push(format!(
                        "image {id:?} (in '{}') is not in dataset {:?} at {}: the split was made for \
                         another dataset or the image was removed; pass the right --dataset or {rerun}",
                        part.as_str(),
                        ds.info.name,
                        ds.root.display()
                    )),
                    Some(e) => {
                        let needs = matches!(part, Part::Labeled | Part::Val | Part::Test);
                        if needs && e.label.is_none() && e.mask.is_none() {
                            problems.push(format!(
                                "image {id:?} is in '{}' but has neither a label nor a mask in the \
                                 dataset now; {rerun}",
                                part.as_str()
                            ));
                        }
                        present.push(e);
                    }
                }
            }
        }
        // Hash the files (in parallel): the manifest alone would not notice an overwritten image.
        let hashed: Vec<Option<String>> = present
            .par_iter()
            .map(|e| self.check_hashes(ds, e).err())
            .collect();
        problems.extend(hashed.into_iter().flatten());
        if problems.is_empty() {
            return Ok(());
        }
        let n = problems.len();
        let mut msg = problems
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ");
        if n > 5 {
            msg.push_str(&format!("\n  ... and {} more", n - 5));
        }
        Err(self.fail(format!(
            "{n} problem{} with this split:\n  {msg}",
            if n == 1 { "" } else { "s" }
        )))
    }

    fn check_hashes(&self, ds: &Dataset, e: &ManifestEntry) -> std::result::Result<(), String> {
        let changed = |what: &str| {
            format!(
                "{what} {:?} changed since the split was made: re-run `semisono split`",
                e.id
            )
        };
        let Some(want) = self.sha256.get(&e.id) else {
            return Err(format!(
                "image {:?} has no sha256 in the split file; re-run `semisono split`",
                e.id
            ));
        };
        let got = sha256_file(&ds.image_path(e)).map_err(|err| err.to_string())?;
        if &got != want || &e.sha256 != want {
            return Err(changed("image"));
        }
        match (self.mask_sha256.get(&e.id), ds.mask_path(e)) {
            (None, None) => Ok(()),
            (Some(want), Some(p)) => {
                let got = sha256_file(&p).map_err(|err| err.to_string())?;
                if &got != want {
                    Err(changed("the mask of image"))
                } else {
                    Ok(())
                }
            }
            (Some(_), None) => Err(changed("the mask (now missing) of image")),
            (None, Some(_)) => Err(changed("the mask (added later) of image")),
        }
    }

    /// Counts per part and per class.
    pub fn summary(&self, ds: &Dataset) -> SplitSummary {
        let classes = ds.info.classes.clone();
        let parts = Part::ALL
            .iter()
            .map(|&part| {
                let mut c = PartCounts {
                    part,
                    total: 0,
                    per_class: vec![0; classes.len()],
                    no_label: 0,
                    with_mask: 0,
                    unknown: 0,
                };
                for id in self.part(part) {
                    c.total += 1;
                    match ds.get(id) {
                        None => c.unknown += 1,
                        Some(e) => {
                            match e.label {
                                Some(l) if (l as usize) < classes.len() => {
                                    c.per_class[l as usize] += 1
                                }
                                _ => c.no_label += 1,
                            }
                            c.with_mask += usize::from(e.mask.is_some());
                        }
                    }
                }
                c
            })
            .collect();
        SplitSummary {
            classes,
            fold: self.fold,
            parts,
        }
    }
}

/// Counts of one part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartCounts {
    pub part: Part,
    pub total: usize,
    /// Images per class, indexed like `SplitSummary::classes` (the dataset's label, even for
    /// `unlabeled`, where training ignores it).
    pub per_class: Vec<usize>,
    pub no_label: usize,
    pub with_mask: usize,
    /// Ids not found in the dataset (see [`Split::verify`]).
    pub unknown: usize,
}

/// What [`Split::summary`] returns; `Display` prints a table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SplitSummary {
    pub classes: Vec<String>,
    pub fold: Option<Fold>,
    /// labeled, unlabeled, val, test, excluded — in that order.
    pub parts: Vec<PartCounts>,
}

impl SplitSummary {
    pub fn get(&self, part: Part) -> &PartCounts {
        self.parts
            .iter()
            .find(|p| p.part == part)
            .expect("all parts")
    }
}

impl fmt::Display for SplitSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |p: Part| self.get(p).total;
        write!(
            f,
            "{} images: {} labeled, {} unlabeled, {} val, {} test",
            self.parts.iter().map(|p| p.total).sum::<usize>(),
            n(Part::Labeled),
            n(Part::Unlabeled),
            n(Part::Val),
            n(Part::Test)
        )?;
        if n(Part::Excluded) > 0 {
            write!(
                f,
                ", {} excluded (no label or mask, patient held out)",
                n(Part::Excluded)
            )?;
        }
        if let Some(fold) = self.fold {
            write!(f, " (fold {} of {})", fold.index + 1, fold.k)?;
        }
        writeln!(f)?;
        let w = self
            .classes
            .iter()
            .map(|c| c.len().max(6))
            .collect::<Vec<_>>();
        write!(f, "{:<10} {:>7}", "part", "images")?;
        for (c, w) in self.classes.iter().zip(&w) {
            write!(f, " {c:>w$}")?;
        }
        writeln!(f, " {:>8} {:>6}", "no label", "masks")?;
        for p in &self.parts {
            if p.part == Part::Excluded && p.total == 0 {
                continue;
            }
            write!(f, "{:<10} {:>7}", p.part.as_str(), p.total)?;
            for (n, w) in p.per_class.iter().zip(&w) {
                write!(f, " {n:>w$}")?;
            }
            writeln!(f, " {:>8} {:>6}", p.no_label, p.with_mask)?;
        }
        Ok(())
    }
}
