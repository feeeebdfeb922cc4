//! Hermes' memory banks as method state (spec §5.6 "Memory bank", §13): which banks exist, and
//! their checkpoint file.
//!
//! Choices the spec leaves open (recorded here, sizes from the config):
//! * pixel bank: one entry per (image, class) of the certainty labels at the embedding
//!   resolution — the L2-normalised mean of the averaged strong/weak embedding — background
//!   included; it replaces the batch as the pixel contrast's contrast set once it holds anything;
//! * image bank: the weak-view projection `h` of each kept image (one entry per image, labelled by
//!   its pseudo-label), extra positives and negatives of the SupCon;
//! * both are updated after the step's update succeeded, and only in steps where their contrastive
//!   term ran (UGPCL updates inside its contrast branch).
//!
//! The file stores every value as its `f32` bit pattern, so a resumed run continues with exactly
//! the same bank.

use std::fs;
use std::path::Path;

use semisono_nn::losses::MemoryBank;
use serde::{Deserialize, Serialize};

use crate::config::HermesConfig;
use crate::error::{Result, TrainError};

use super::super::common::Networks;

/// Checkpoint file of the banks (next to the weights).
pub(super) const BANKS_FILE: &str = "hermes-banks.json";
const FORMAT: u32 = 1;

/// The banks a run uses; `None` where off.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Banks {
    pub pixel: Option<MemoryBank>,
    pub image: Option<MemoryBank>,
}

#[derive(Serialize, Deserialize)]
struct BankFile {
    format: u32,
    pixel: Option<BankRecord>,
    image: Option<BankRecord>,
}

#[derive(Serialize, Deserialize)]
struct BankRecord {
    capacity: usize,
    dim: usize,
    /// Per class, the entries back to back (oldest first) as `f32::to_bits`.
    bits: Vec<Vec<u32>>,
}

impl BankRecord {
    fn of(bank: &MemoryBank) -> Self {
        BankRecord {
            capacity: bank.capacity(),
            dim: bank.dim(),
            bits: (0..bank.classes())
                .map(|c| bank.class_entries(c).iter().map(|v| v.to_bits()).collect())
                .collect(),
        }
    }
}

impl Banks {
    /// Empty banks for the switches of `h` and the networks that exist: the pixel bank needs the
    /// segmenter and the pixel contrast, the image bank the classifier and SupCon.
    pub fn new(h: &HermesConfig, nets: &Networks) -> Self {
        if !h.memory_bank {
            return Banks::default();
        }
        let pixel = nets.seg.as_ref().filter(|_| h.pixel_contrast).map(|seg| {
            let [dim, ..] = seg.pixel_projection.conv2.weight.val().dims();
            let [classes, ..] = seg.decoder.head.weight.val().dims();
            MemoryBank::new(classes, h.pixel_bank_size, dim)
        });
        let image = nets.cls.as_ref().filter(|_| h.image_contrast).map(|cls| {
            // Burn stores linear weights as [in, out].
            let [_, dim] = cls.projection.fc2.weight.val().dims();
            let [_, classes] = cls.cls_head.weight.val().dims();
            MemoryBank::new(classes, h.image_bank_size, dim)
        });
        Banks { pixel, image }
    }

    fn any(&self) -> bool {
        self.pixel.is_some() || self.image.is_some()
    }

    /// Writes the banks into `dir` (nothing when no bank is on).
    pub fn save(&self, dir: &Path) -> Result<()> {
        if !self.any() {
            return Ok(());
        }
        let file = BankFile {
            format: FORMAT,
            pixel: self.pixel.as_ref().map(BankRecord::of),
            image: self.image.as_ref().map(BankRecord::of),
        };
        let path = dir.join(BANKS_FILE);
        let json = serde_json::to_vec(&file).expect("bank records serialise");
        fs::write(&path, json).map_err(|e| TrainError::io(&path, e))
    }

    /// Restores the banks saved by [`save`](Self::save); the file must hold exactly the banks of
    /// this configuration, with the same sizes.
    pub fn load(&mut self, dir: &Path) -> Result<()> {
        if !self.any() {
            return Ok(());
        }
        let path = dir.join(BANKS_FILE);
        let text = fs::read_to_string(&path)
            .map_err(|e| TrainError::io(&path, format!("memory banks: {e}")))?;
        let file: BankFile = serde_json::from_str(&text)
            .map_err(|e| TrainError::io(&path, format!("memory banks: {e}")))?;
        if file.format != FORMAT {
            return Err(TrainError::io(
                &path,
                format!("memory banks: format {} (expected {FORMAT})", file.format),
            ));
        }
        let pixel = restore(&path, "pixel", self.pixel.as_ref(), file.pixel)?;
        let image = restore(&path, "image", self.image.as_ref(), file.image)?;
        // Assigned only once both fit, so a failed load leaves the banks as they were.
        self.pixel = pixel;
        self.image = image;
        Ok(())
    }
}

/// The bank of `record`, checked against the configured (empty) bank `like`.
fn restore(
    path: &Path,
    name: &str,
    like: Option<&MemoryBank>,
    record: Option<BankRecord>,
) -> Result<Option<MemoryBank>> {
    let (like, r) = match (like, record) {
        (None, None) => return Ok(None),
        (Some(like), Some(r)) => (like, r),
        (like, _) => {
            let on = like.is_some();
            return Err(TrainError::io(
                path,
                format!(
                    "the {name} memory bank is {} in this configuration but {} in the checkpoint",
                    if on { "on" } else { "off" },
                    if on { "missing" } else { "present" },
                ),
            ));
        }
    };
    if (r.capacity, r.dim, r.bits.len()) != (like.capacity(), like.dim(), like.classes()) {
        return Err(TrainError::io(
            path,
            format!(
                "the {name} memory bank has {} classes × {} entries of {} values in the \
                 checkpoint, {} × {} of {} in this configuration",
                r.bits.len(),
                r.capacity,
                r.dim,
                like.classes(),
                like.capacity(),
                like.dim()
            ),
        ));
    }
    let entries = r
        .bits
        .into_iter()
        .map(|c| c.into_iter().map(f32::from_bits).collect())
        .collect();
    MemoryBank::from_entries(r.capacity, r.dim, entries)
        .map(Some)
        .map_err(|e| TrainError::io(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(classes: usize, capacity: usize, dim: usize, pushes: usize) -> MemoryBank {
        let mut bank = MemoryBank::new(classes, capacity, dim);
        for i in 0..pushes {
            // Values that do not survive a decimal round trip through f64 → f32 by accident.
            let v: Vec<f32> = (0..dim)
                .map(|d| (i * dim + d) as f32 / 7.0 + 1e-7)
                .collect();
            bank.push(i % classes, &v);
        }
        bank
    }

    #[test]
    fn banks_round_trip_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let saved = Banks {
            pixel: Some(filled(2, 3, 4, 7)),
            image: Some(filled(2, 2, 3, 1)),
        };
        saved.save(dir.path()).unwrap();
        let mut loaded = Banks {
            pixel: Some(MemoryBank::new(2, 3, 4)),
            image: Some(MemoryBank::new(2, 2, 3)),
        };
        loaded.load(dir.path()).unwrap();
        assert_eq!(loaded, saved);
        // Off banks write nothing and need nothing.
        let empty = tempfile::tempdir().unwrap();
        Banks::default().save(empty.path()).unwrap();
        assert!(!empty.path().join(BANKS_FILE).exists());
        Banks::default().load(empty.path()).unwrap();
    }

    #[test]
    fn mismatched_banks_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        Banks {
            pixel: Some(filled(2, 3, 4, 2)),
            image: None,
        }
        .save(dir.path())
        .unwrap();
        let mut other_size = Banks {
            pixel: Some(MemoryBank::new(2, 5, 4)),
            image: None,
        };
        let msg = other_size.load(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("pixel memory bank"), "{msg}");
        let mut wants_image = Banks {
            pixel: Some(MemoryBank::new(2, 3, 4)),
            image: Some(MemoryBank::new(2, 2, 3)),
        };
        let msg = wants_image.load(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("image memory bank is on"), "{msg}");
        let missing = tempfile::tempdir().unwrap();
        assert!(wants_image.load(missing.path()).is_err());
    }
}
