//! The dataset manifest: `manifest.jsonl` (one JSON object per image) and `dataset.json` (class names
//! and provenance). Format documented in docs/formats/dataset.md.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};

pub const MANIFEST_FILE: &str = "manifest.jsonl";
pub const INFO_FILE: &str = "dataset.json";
pub const FORMAT_VERSION: u32 = 1;

/// One image of a dataset. Paths are relative to the dataset directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    pub id: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
    /// Class index into `DatasetInfo::classes`; `None` for unlabeled images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<u32>,
    /// sha256 of the stored image file (hex).
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_sha256: Option<String>,
    pub width: u32,
    pub height: u32,
    /// Where the image came from (original path, or `phantom:<seed>:<index>`).
    pub source: String,
    /// Patient or de-duplication key, so splits can keep a group on one side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Physical size of a pixel in mm, (row, column), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_spacing_mm: Option<[f64; 2]>,
    /// Anything else the source knows (phantom descriptors, BI-RADS, ...).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub meta: serde_json::Value,
}

/// `dataset.json`: what the labels mean and where the data came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetInfo {
    pub format_version: u32,
    pub name: String,
    /// Class names, indexed by `ManifestEntry::label`.
    pub classes: Vec<String>,
    /// The importer or generator that wrote the dataset, e.g. `busi`, `phantom`.
    pub source: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub meta: serde_json::Value,
}

impl DatasetInfo {
    pub fn new(name: impl Into<String>, classes: Vec<String>, source: impl Into<String>) -> Self {
        DatasetInfo {
            format_version: FORMAT_VERSION,
            name: name.into(),
            classes,
            source: source.into(),
            meta: serde_json::Value::Null,
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    Ok(sha256_hex(&bytes))
}

/// Reads `manifest.jsonl`, naming the line of any malformed entry.
pub fn read_manifest(path: &Path) -> Result<Vec<ManifestEntry>> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut entries = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| DataError::io(path, e))?;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let entry: ManifestEntry = serde_json::from_str(trimmed).map_err(|e| {
            DataError::bad_line(
                path,
                i + 1,
                format!("not a valid manifest entry: {e}; see docs/formats/dataset.md"),
            )
        })?;
        entries.push(entry);
    }
    Ok(entries)
}

pub fn write_manifest(path: &Path, entries: &[ManifestEntry]) -> Result<()> {
    let mut out = Vec::new();
    for e in entries {
        serde_json::to_writer(&mut out, e).expect("manifest entries serialise");
        out.push(b'\n');
    }
    write_atomic(path, &out)
}

pub fn read_info(path: &Path) -> Result<DatasetInfo> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let info: DatasetInfo = serde_json::from_str(&text)
        .map_err(|e| DataError::bad_file(path, format!("not a valid dataset.json: {e}")))?;
    if info.format_version != FORMAT_VERSION {
        return Err(DataError::bad_file(
            path,
            format!(
                "dataset format version {} is not supported (this semisono reads {FORMAT_VERSION}); \
                 re-import the data with this version",
                info.format_version
            ),
        ));
    }
    Ok(info)
}

/// Writes `bytes` to a temporary sibling and renames it over `path`, so readers never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    {
        let mut f = std::fs::File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| DataError::io(&tmp, e))?;
        f.sync_all().map_err(|e| DataError::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))
}

/// A file-name-safe id: ASCII letters, digits, `.`, `-`, `_`; anything else becomes `_`, runs collapsed,
/// e.g. `benign (4)` becomes `benign_4`.
pub fn sanitize_id(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
            c
        } else {
            '_'
        };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    out.trim_matches('_').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_busi_names() {
        assert_eq!(sanitize_id("benign (4)"), "benign_4");
        assert_eq!(sanitize_id("L1-0001-2"), "L1-0001-2");
        assert_eq!(sanitize_id("a  b/c"), "a_b_c");
    }

    #[test]
    fn bad_manifest_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(MANIFEST_FILE);
        std::fs::write(&p, "\n{\"id\": 3}\n").unwrap();
        let err = read_manifest(&p).unwrap_err().to_string();
        assert!(err.contains("manifest.jsonl:2:"), "{err}");
    }
}
