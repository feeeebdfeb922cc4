//! The dataset directory: writing one atomically (`DatasetWriter`) and reading one back (`Dataset`).
//!
//! Layout: `dataset.json`, `manifest.jsonl`, `images/<id>.png`, `masks/<id>.png`. Images are stored as
//! 8-bit grayscale PNG and masks as {0, 255} PNG whatever the source format, so every later stage reads
//! one format.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{DataError, Result};
use crate::image_io::{self, GrayImage, MaskPolicy};
use crate::manifest::{
    self, read_info, read_manifest, sha256_hex, DatasetInfo, ManifestEntry, INFO_FILE,
    MANIFEST_FILE,
};
use crate::staged::StagedDir;

/// One image to add to a dataset being written.
#[derive(Clone, Debug)]
pub struct NewEntry {
    pub id: String,
    pub image: GrayImage,
    pub mask: Option<GrayImage>,
    pub label: Option<u32>,
    pub source: String,
    pub group: Option<String>,
    pub pixel_spacing_mm: Option<[f64; 2]>,
    pub meta: serde_json::Value,
}

impl NewEntry {
    pub fn new(id: impl Into<String>, image: GrayImage, source: impl Into<String>) -> Self {
        NewEntry {
            id: id.into(),
            image,
            mask: None,
            label: None,
            source: source.into(),
            group: None,
            pixel_spacing_mm: None,
            meta: serde_json::Value::Null,
        }
    }
}

/// Writes a dataset into a [`StagedDir`] and renames it into place on `finish`. Dropping the writer
/// without `finish` (an error, a panic) removes the staging directory, so no half-written dataset is
/// ever left behind.
pub struct DatasetWriter {
    dir: StagedDir,
    info: DatasetInfo,
    entries: Vec<ManifestEntry>,
    ids: HashSet<String>,
}

impl DatasetWriter {
    /// Starts a dataset at `target`. Fails if `target` exists, unless `overwrite`.
    pub fn create(target: &Path, info: DatasetInfo, overwrite: bool) -> Result<Self> {
        let dir = StagedDir::create(target, overwrite)?;
        for sub in ["images", "masks"] {
            let d = dir.path().join(sub);
            std::fs::create_dir_all(&d).map_err(|e| DataError::io(&d, e))?;
        }
        Ok(DatasetWriter {
            dir,
            info,
            entries: Vec::new(),
            ids: HashSet::new(),
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn info(&self) -> &DatasetInfo {
        &self.info
    }

    fn check(&self, e: &NewEntry) -> Result<()> {
        let clean = manifest::sanitize_id(&e.id);
        if e.id.is_empty() || clean != e.id {
            return Err(DataError::Invalid(format!(
                "{}: id {:?} is not file-name safe (use letters, digits, '.', '-', '_'; e.g. {:?})",
                e.source, e.id, clean
            )));
        }
        if self.ids.contains(&e.id) {
            return Err(DataError::Invalid(format!(
                "{}: duplicate id {:?}; every image needs a unique id (rename one of the files)",
                e.source, e.id
            )));
        }
        if let Some(m) = &e.mask {
            if (m.width, m.height) != (e.image.width, e.image.height) {
                return Err(DataError::Invalid(format!(
                    "{}: mask is {}x{} but the image is {}x{}; masks must have the image's size",
                    e.source, m.width, m.height, e.image.width, e.image.height
                )));
            }
        }
        if let Some(label) = e.label {
            if label as usize >= self.info.classes.len() {
                return Err(DataError::Invalid(format!(
                    "{}: label {label} is out of range; this dataset has classes {:?} (0..{})",
                    e.source,
                    self.info.classes,
                    self.info.classes.len()
                )));
            }
        }
        Ok(())
    }

    /// Adds one image (and its mask). Validates the id, the mask size and the label.
    pub fn add(&mut self, e: NewEntry) -> Result<()> {
        self.add_batch(vec![e])
    }

    /// Adds many images, encoding PNGs in parallel. Validation happens before anything is written.
    pub fn add_batch(&mut self, batch: Vec<NewEntry>) -> Result<()> {
        let mut seen = HashSet::new();
        for e in &batch {
            self.check(e)?;
            if !seen.insert(e.id.clone()) {
                return Err(DataError::Invalid(format!(
                    "{}: duplicate id {:?}; every image needs a unique id",
                    e.source, e.id
                )));
            }
        }
        let staging = self.dir.path();
        let written: Vec<ManifestEntry> = batch
            .into_par_iter()
            .map(|e| write_entry(staging, e))
            .collect::<Result<_>>()?;
        for m in written {
            self.ids.insert(m.id.clone());
            self.entries.push(m);
        }
        Ok(())
    }

    /// Writes the manifest and moves the dataset into place. Returns the dataset directory.
    pub fn finish(self) -> Result<PathBuf> {
        if self.entries.is_empty() {
            return Err(DataError::Invalid(format!(
                "no images were found for {}; check the input path and --format",
                self.dir.target().display()
            )));
        }
        manifest::write_manifest(&self.dir.path().join(MANIFEST_FILE), &self.entries)?;
        let info = serde_json::to_vec_pretty(&self.info).expect("dataset info serialises");
        manifest::write_atomic(&self.dir.path().join(INFO_FILE), &info)?;
        self.dir.commit()
    }
}

fn write_entry(staging: &Path, e: NewEntry) -> Result<ManifestEntry> {
    let image_rel = format!("images/{}.png", e.id);
    let png = image_io::encode_png(&e.image);
    let sha256 = sha256_hex(&png);
    let p = staging.join(&image_rel);
    std::fs::write(&p, &png).map_err(|err| DataError::io(&p, err))?;
    let (mask, mask_sha256) = match &e.mask {
        Some(m) => {
            let rel = format!("masks/{}.png", e.id);
            let png = image_io::encode_png(m);
            let p = staging.join(&rel);
            std::fs::write(&p, &png).map_err(|err| DataError::io(&p, err))?;
            (Some(rel), Some(sha256_hex(&png)))
        }
        None => (None, None),
    };
    Ok(ManifestEntry {
        id: e.id,
        image: image_rel,
        mask,
        label: e.label,
        sha256,
        mask_sha256,
        width: e.image.width,
        height: e.image.height,
        source: e.source,
        group: e.group,
        pixel_spacing_mm: e.pixel_spacing_mm,
        meta: e.meta,
    })
}

/// A dataset directory opened for reading.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub root: PathBuf,
    pub info: DatasetInfo,
    pub entries: Vec<ManifestEntry>,
    index: HashMap<String, usize>,
}

impl Dataset {
    /// Opens `root`, checking that the manifest parses, ids are unique and labels are in range.
    pub fn open(root: &Path) -> Result<Self> {
        let info_path = root.join(INFO_FILE);
        let manifest_path = root.join(MANIFEST_FILE);
        if !manifest_path.exists() {
            return Err(DataError::bad_file(
                root,
                "not a semisono dataset directory (no manifest.jsonl); create one with \
                 `semisono synth` or `semisono import`",
            ));
        }
        let info = read_info(&info_path)?;
        let entries = read_manifest(&manifest_path)?;
        if entries.is_empty() {
            return Err(DataError::bad_file(
                &manifest_path,
                "the dataset has no images",
            ));
        }
        let mut index = HashMap::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            if index.insert(e.id.clone(), i).is_some() {
                return Err(DataError::bad_line(
                    &manifest_path,
                    i + 1,
                    format!("duplicate id {:?}", e.id),
                ));
            }
            if let Some(l) = e.label {
                if l as usize >= info.classes.len() {
                    return Err(DataError::bad_line(
                        &manifest_path,
                        i + 1,
                        format!("label {l} is out of range for classes {:?}", info.classes),
                    ));
                }
            }
        }
        Ok(Dataset {
            root: root.to_path_buf(),
            info,
            entries,
            index,
        })
    }

    pub fn get(&self, id: &str) -> Option<&ManifestEntry> {
        self.index.get(id).map(|&i| &self.entries[i])
    }

    pub fn image_path(&self, e: &ManifestEntry) -> PathBuf {
        self.root.join(&e.image)
    }

    pub fn mask_path(&self, e: &ManifestEntry) -> Option<PathBuf> {
        e.mask.as_ref().map(|m| self.root.join(m))
    }

    pub fn load_image(&self, e: &ManifestEntry) -> Result<GrayImage> {
        image_io::load_gray(&self.image_path(e))
    }

    /// The entry's mask as {0, 255}, or `None` if it has none.
    pub fn load_mask(&self, e: &ManifestEntry) -> Result<Option<GrayImage>> {
        match self.mask_path(e) {
            Some(p) => Ok(Some(image_io::load_mask(&p, MaskPolicy::Threshold)?.0)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> DatasetInfo {
        DatasetInfo::new("t", vec!["benign".into(), "malignant".into()], "test")
    }

    fn entry(id: &str) -> NewEntry {
        let mut e = NewEntry::new(id, GrayImage::zeros(8, 6), format!("mem:{id}"));
        e.mask = Some(GrayImage::zeros(8, 6));
        e.label = Some(1);
        e
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ds");
        let mut w = DatasetWriter::create(&out, info(), false).unwrap();
        w.add(entry("a")).unwrap();
        w.add(entry("b")).unwrap();
        w.finish().unwrap();
        let ds = Dataset::open(&out).unwrap();
        assert_eq!(ds.entries.len(), 2);
        let e = ds.get("b").unwrap();
        assert_eq!(ds.load_image(e).unwrap().width, 8);
        assert_eq!(ds.load_mask(e).unwrap().unwrap().height, 6);
        assert_eq!(e.sha256, manifest::sha256_file(&ds.image_path(e)).unwrap());
    }

    #[test]
    fn failures_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ds");
        let mut w = DatasetWriter::create(&out, info(), false).unwrap();
        w.add(entry("a")).unwrap();
        assert!(w
            .add(entry("a"))
            .unwrap_err()
            .to_string()
            .contains("duplicate"));
        let mut bad = entry("c");
        bad.mask = Some(GrayImage::zeros(3, 3));
        assert!(w.add(bad).unwrap_err().to_string().contains("mask is 3x3"));
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn empty_dataset_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ds");
        let w = DatasetWriter::create(&out, info(), false).unwrap();
        assert!(w.finish().unwrap_err().to_string().contains("no images"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
