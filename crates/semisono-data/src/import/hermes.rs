//! Hermes list layout (specs/hermes.md §3.1):
//!
//! ```text
//! <dir>/labeled.txt     "<image> <mask> <label>" per line (CRLF tolerated), files in image/ and mask/
//! <dir>/unlabeled.txt   "<image>" per line, files in image/
//! ```
//!
//! Both lists may sit in one directory (the repository's own layout), or the input may be the tree
//! written by `data_split.py`: `test/` plus `train/<N>/labeled/` and `train/<N>/unlabeled/` with a
//! single budget N (or `train/<N>` itself). Every image is imported once; `meta.hermes_list` records
//! which list named it, so the split can be rebuilt.
//!
//! Parsing: a line is split on single spaces; with exactly three fields they are image, mask and
//! label. Names containing spaces are accepted when the label is the last field and exactly one way
//! of cutting the rest into an existing image and an existing mask exists. The `-` separated form
//! (`img.png-mask.png-0`, used by the authors' UDIAT loader) is accepted only when a line has no
//! space and the cut is again unambiguous. Labels are integer class indices; class names come from
//! `ImportOptions::classes`, default `benign`, `malignant` (0/1), `class<k>` beyond.

use std::path::{Path, PathBuf};

use super::{id_of, stem, ImportOptions, Item, Plan};
use crate::error::{DataError, Result};

const EXPECTED: &str = "expected `<image> <mask> <label>` (image and mask file names relative to \
                        image/ and mask/, label an integer class index such as 0 or 1)";

/// Directories that hold lists, with the set name recorded in meta.
fn list_dirs(input: &Path) -> Result<Vec<(PathBuf, String)>> {
    let has_lists = |d: &Path| d.join("labeled.txt").is_file() || d.join("unlabeled.txt").is_file();
    if has_lists(input) {
        return Ok(vec![(input.to_path_buf(), String::new())]);
    }
    let mut dirs = Vec::new();
    // train/<N> itself: labeled/ and unlabeled/ below.
    for sub in ["labeled", "unlabeled"] {
        if has_lists(&input.join(sub)) {
            dirs.push((input.join(sub), sub.to_string()));
        }
    }
    let train = input.join("train");
    if train.is_dir() {
        let mut budgets: Vec<PathBuf> = std::fs::read_dir(&train)
            .map_err(|e| DataError::io(&train, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        super::sort_paths(&mut budgets);
        match budgets.len() {
            0 => {}
            1 => {
                let n = budgets[0].file_name().unwrap_or_default().to_string_lossy();
                for sub in ["labeled", "unlabeled"] {
                    let d = budgets[0].join(sub);
                    if has_lists(&d) {
                        dirs.push((d, format!("train/{n}/{sub}")));
                    }
                }
            }
            _ => {
                let names: Vec<_> = budgets
                    .iter()
                    .map(|b| {
                        b.file_name()
                            .unwrap_or_default()
                            .to_string_lossy()
                            .into_owned()
                    })
                    .collect();
                return Err(DataError::bad_file(
                    &train,
                    format!(
                        "has several label budgets ({}); import one of them, e.g. --input {}",
                        names.join(", "),
                        budgets[0].display()
                    ),
                ));
            }
        }
    }
    if has_lists(&input.join("test")) {
        dirs.push((input.join("test"), "test".into()));
    }
    if dirs.is_empty() {
        return Err(DataError::bad_file(
            input,
            "no labeled.txt or unlabeled.txt here (nor a data_split.py tree with train/<N>/ and \
             test/); point --input at the directory that holds the lists",
        ));
    }
    Ok(dirs)
}

fn read_lines(path: &Path) -> Result<Vec<(usize, String)>> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| DataError::bad_file(path, "list is not UTF-8 text; re-save it as UTF-8"))?;
    Ok(text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches(['\r', ' ', '\t']).to_string()))
        .filter(|(_, l)| !l.trim().is_empty())
        .collect())
}

/// Cuts `rest` at one `sep` so that `image/<a>` and `mask/<b>` both exist; `Err(n)` with the number
/// of matching cuts when there is not exactly one.
fn unique_cut<'a>(
    dir: &Path,
    rest: &'a str,
    sep: char,
) -> std::result::Result<(&'a str, &'a str), usize> {
    let cuts: Vec<(&str, &str)> = rest
        .match_indices(sep)
        .map(|(i, _)| (&rest[..i], &rest[i + 1..]))
        .filter(|(a, b)| dir.join("image").join(a).is_file() && dir.join("mask").join(b).is_file())
        .collect();
    match cuts[..] {
        [one] => Ok(one),
        _ => Err(cuts.len()),
    }
}

fn parse_label(list: &Path, line: usize, tok: &str) -> Result<u32> {
    tok.parse::<u32>().map_err(|_| {
        DataError::bad_line(
            list,
            line,
            format!("label {tok:?} is not an integer class index; {EXPECTED}"),
        )
    })
}

/// Parses one labeled.txt line into (image, mask, label).
fn parse_labeled(dir: &Path, list: &Path, n: usize, line: &str) -> Result<(String, String, u32)> {
    let fields: Vec<&str> = line.split(' ').collect();
    if fields.len() == 3 && fields.iter().all(|f| !f.is_empty()) {
        let label = parse_label(list, n, fields[2])?;
        return Ok((fields[0].into(), fields[1].into(), label));
    }
    let field_error = |extra: &str| {
        DataError::bad_line(
            list,
            n,
            format!("{EXPECTED}, found {} field(s){extra}", fields.len()),
        )
    };
    if fields.len() > 3 {
        // Names with spaces: the label is the last field; the rest must cut uniquely.
        let (rest, tok) = line.rsplit_once(' ').expect("has spaces");
        if tok.parse::<u32>().is_ok() {
            match unique_cut(dir, rest, ' ') {
                Ok((a, b)) => return Ok((a.into(), b.into(), parse_label(list, n, tok)?)),
                Err(0) => {}
                Err(k) => {
                    return Err(field_error(&format!(
                        "; the names contain spaces and {k} ways of reading them match files"
                    )))
                }
            }
        }
        return Err(field_error(
            "; names with spaces are accepted only when the image and mask files exist",
        ));
    }
    if fields.len() == 1 && line.contains('-') {
        // The '-' separated form.
        let (rest, tok) = line.rsplit_once('-').expect("has '-'");
        if let Ok(label) = tok.parse::<u32>() {
            if let Ok((a, b)) = unique_cut(dir, rest, '-') {
                return Ok((a.into(), b.into(), label));
            }
        }
        return Err(field_error(
            "; a '-' separated line is accepted only when it splits into existing files one way",
        ));
    }
    Err(field_error(""))
}

fn existing(list: &Path, n: usize, path: PathBuf, what: &str) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(DataError::bad_line(
            list,
            n,
            format!(
                "{what} {} not found; fix the list or add the file",
                path.display()
            ),
        ))
    }
}

pub(crate) fn plan(input: &Path, opts: &ImportOptions) -> Result<Plan> {
    let mut plan = Plan::default();
    let mut max_label = None::<u32>;
    for (dir, set) in list_dirs(input)? {
        let labeled = dir.join("labeled.txt");
        if labeled.is_file() {
            for (n, line) in read_lines(&labeled)? {
                let (img, mask, label) = parse_labeled(&dir, &labeled, n, &line)?;
                let image = existing(&labeled, n, dir.join("image").join(&img), "image")?;
                let mask = existing(&labeled, n, dir.join("mask").join(&mask), "mask")?;
                if let Some(classes) = &opts.classes {
                    if label as usize >= classes.len() {
                        return Err(DataError::bad_line(
                            &labeled,
                            n,
                            format!("label {label} is out of range for classes {classes:?}"),
                        ));
                    }
                }
                max_label = max_label.max(Some(label));
                let mut it = Item::new(id_of(&stem(&image), &image)?, image);
                it.masks.push(mask);
                it.label = Some(label);
                it.origin = Some(format!("{}:{n}", labeled.display()));
                it.meta = list_meta(&set, "labeled.txt");
                plan.items.push(it);
            }
        }
        let unlabeled = dir.join("unlabeled.txt");
        if unlabeled.is_file() {
            for (n, line) in read_lines(&unlabeled)? {
                let image = existing(&unlabeled, n, dir.join("image").join(line.trim()), "image")?;
                let mut it = Item::new(id_of(&stem(&image), &image)?, image);
                it.origin = Some(format!("{}:{n}", unlabeled.display()));
                it.meta = list_meta(&set, "unlabeled.txt");
                plan.items.push(it);
            }
        }
    }
    plan.classes = match &opts.classes {
        Some(c) => c.clone(),
        None => {
            let n = max_label.map_or(2, |m| (m as usize + 1).max(2));
            (0..n)
                .map(|i| match i {
                    0 => "benign".to_string(),
                    1 => "malignant".to_string(),
                    k => format!("class{k}"),
                })
                .collect()
        }
    };
    Ok(plan)
}

fn list_meta(set: &str, list: &str) -> serde_json::Value {
    let name = if set.is_empty() {
        list.to_string()
    } else {
        format!("{set}/{list}")
    };
    serde_json::json!({ "hermes_list": name })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_dash_and_spaced_lines() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["image", "mask"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
            for f in ["L1-0001-2.png", "benign (1).png"] {
                std::fs::write(d.join(sub).join(f), b"x").unwrap();
            }
        }
        let l = d.join("labeled.txt");
        let p = |s: &str| parse_labeled(d, &l, 1, s);
        assert_eq!(
            p("a.png b.png 1").unwrap(),
            ("a.png".into(), "b.png".into(), 1)
        );
        assert_eq!(
            p("L1-0001-2.png-L1-0001-2.png-0").unwrap(),
            ("L1-0001-2.png".into(), "L1-0001-2.png".into(), 0)
        );
        assert_eq!(
            p("benign (1).png benign (1).png 0").unwrap(),
            ("benign (1).png".into(), "benign (1).png".into(), 0)
        );
        let e = p("a.png 0").unwrap_err().to_string();
        assert!(
            e.contains("labeled.txt:1:") && e.contains("found 2 field"),
            "{e}"
        );
        let e = p("a.png b.png zero").unwrap_err().to_string();
        assert!(e.contains("not an integer"), "{e}");
        assert!(p("x-y-0").is_err());
    }
}
