//! Helpers shared by the importer tests: small fixture trees written into temp dirs.
#![allow(dead_code)]

use std::path::Path;

use semisono_data::image_io::save_png;
use semisono_data::{GrayImage, Result};

/// A non-flat test image: a gradient plus a seed-dependent pattern.
pub fn gray(w: u32, h: u32, seed: u32) -> GrayImage {
    let data = (0..w * h)
        .map(|i| ((i % w) * 7 + (i / w) * 3 + seed * 31) as u8)
        .collect();
    GrayImage::new(w, h, data)
}

/// A 0/255 mask with a filled rectangle.
pub fn rect_mask(w: u32, h: u32, x0: u32, y0: u32, x1: u32, y1: u32) -> GrayImage {
    let data = (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            if (x0..x1).contains(&x) && (y0..y1).contains(&y) {
                255
            } else {
                0
            }
        })
        .collect();
    GrayImage::new(w, h, data)
}

pub fn write_png(path: &Path, img: &GrayImage) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    save_png(path, img).unwrap();
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Asserts the import failed with a message containing every needle and left nothing at `out`
/// (nor a staging directory beside it).
pub fn assert_failed<T: std::fmt::Debug>(r: Result<T>, needles: &[&str], out: &Path) -> String {
    let msg = r.expect_err("import should have failed").to_string();
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} lacks {n:?}");
    }
    assert!(!out.exists(), "{} was left behind", out.display());
    if let Some(parent) = out.parent().filter(|p| p.exists()) {
        let leftovers: Vec<_> = std::fs::read_dir(parent)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".partial-"))
            .collect();
        assert!(leftovers.is_empty(), "staging left: {leftovers:?}");
    }
    msg
}
