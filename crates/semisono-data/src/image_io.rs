//! Decoding images and masks to 8-bit grayscale, and writing PNGs atomically.

use std::io::{BufWriter, Write};
use std::path::Path;

use image::{DynamicImage, ImageReader};

use crate::error::{DataError, Result};

/// An 8-bit single-channel image, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrayImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl GrayImage {
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Self {
        assert_eq!(
            data.len(),
            width as usize * height as usize,
            "GrayImage buffer does not match {width}x{height}"
        );
        GrayImage {
            width,
            height,
            data,
        }
    }

    pub fn zeros(width: u32, height: u32) -> Self {
        GrayImage::new(width, height, vec![0; width as usize * height as usize])
    }

    pub fn get(&self, x: u32, y: u32) -> u8 {
        self.data[y as usize * self.width as usize + x as usize]
    }

    /// Number of non-zero pixels.
    pub fn count_nonzero(&self) -> usize {
        self.data.iter().filter(|&&v| v != 0).count()
    }
}

/// What binarising a mask file found, so the caller can tell the user how the file was read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaskReport {
    /// Channels in the file (1 = L, 2 = LA, 3 = RGB, 4 = RGBA).
    pub channels: u8,
    /// Pixels whose value was neither 0 nor 255 (after reducing channels by max).
    pub non_binary_pixels: usize,
    /// Distinct values found, up to 8, for the message.
    pub sample_values: Vec<u8>,
}

impl MaskReport {
    pub fn is_clean(&self) -> bool {
        self.non_binary_pixels == 0
    }
}

/// How a mask with values other than 0/255 is treated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MaskPolicy {
    /// `> 127` is foreground (right for JPEG masks with compression noise); report what was found.
    #[default]
    Threshold,
    /// Any non-zero value is foreground (masks stored as 0/1).
    Nonzero,
    /// Refuse masks that are not exactly 0/255 (or 0/1).
    Strict,
}

/// True if the file starts like a DICOM Part 10 file (128-byte preamble + "DICM") or has a .dcm extension.
pub fn looks_like_dicom(path: &Path) -> bool {
    let by_ext = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("dcm") || e.eq_ignore_ascii_case("dicom"));
    if by_ext {
        return true;
    }
    let mut head = [0u8; 132];
    match std::fs::File::open(path) {
        Ok(mut f) => {
            use std::io::Read;
            f.read_exact(&mut head).is_ok() && &head[128..132] == b"DICM"
        }
        Err(_) => false,
    }
}

fn decode(path: &Path) -> Result<DynamicImage> {
    if !path.exists() {
        return Err(DataError::bad_file(
            path,
            "file not found; check the path (and the list or manifest that names it)",
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    // Decide by content, not extension: a renamed or truncated file must not pass as the wrong format.
    let format = image::guess_format(&bytes).map_err(|_| {
        DataError::bad_file(
            path,
            "not a recognised image: the file is corrupt or in an unsupported format \
             (supported: PNG, JPEG, BMP, TIFF, DICOM)",
        )
    })?;
    let reader = ImageReader::with_format(std::io::Cursor::new(bytes), format);
    reader.decode().map_err(|e| {
        DataError::bad_file(
            path,
            format!("cannot decode image ({e}); the file is corrupt or truncated: re-export it"),
        )
    })
}

/// Loads any supported image (PNG, JPEG, BMP, TIFF; DICOM by content or extension) as 8-bit grayscale.
/// Colour images are converted with Rec. 601 luma; 16-bit images are scaled to 8 bits.
pub fn load_gray(path: &Path) -> Result<GrayImage> {
    if looks_like_dicom(path) {
        return crate::dicom::load_dicom_gray(path, &crate::dicom::DicomOptions::default());
    }
    let img = decode(path)?;
    let luma = img.into_luma8();
    let (w, h) = luma.dimensions();
    Ok(GrayImage::new(w, h, luma.into_raw()))
}

/// Loads a mask, reducing channels by max (RGB/RGBA masks; alpha ignored) and binarising to {0, 255}
/// according to `policy`. Returns the mask and a report of what was found.
pub fn load_mask(path: &Path, policy: MaskPolicy) -> Result<(GrayImage, MaskReport)> {
    let img = decode(path)?;
    let channels = img.color().channel_count();
    let has_alpha = img.color().has_alpha();
    let colour = channels - u8::from(has_alpha);
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut reduced = Vec::with_capacity(w as usize * h as usize);
    for p in rgba.pixels() {
        let v = if colour >= 3 {
            p[0].max(p[1]).max(p[2])
        } else {
            p[0]
        };
        reduced.push(v);
    }
    let mut report = MaskReport {
        channels,
        ..MaskReport::default()
    };
    let max_value = reduced.iter().copied().max().unwrap_or(0);
    // A mask stored as 0/1 is common (DDTI preprocessed); treat 1 as foreground then.
    let zero_one = max_value == 1;
    for &v in &reduced {
        let clean = v == 0 || v == 255 || (zero_one && v == 1);
        if !clean {
            report.non_binary_pixels += 1;
            if report.sample_values.len() < 8 && !report.sample_values.contains(&v) {
                report.sample_values.push(v);
            }
        }
    }
    if policy == MaskPolicy::Strict && !report.is_clean() {
        return Err(DataError::bad_file(
            path,
            format!(
                "mask has {} pixels that are neither 0 nor 255 (values such as {:?}); \
                 re-export it as a binary mask, or import with --mask-policy threshold",
                report.non_binary_pixels, report.sample_values
            ),
        ));
    }
    let data = reduced
        .into_iter()
        .map(|v| {
            let fg = match policy {
                MaskPolicy::Nonzero => v > 0,
                _ if zero_one => v > 0,
                _ => v > 127,
            };
            if fg {
                255
            } else {
                0
            }
        })
        .collect();
    Ok((GrayImage::new(w, h, data), report))
}

/// Writes an 8-bit grayscale PNG to `path` via a temporary file renamed into place.
pub fn save_png(path: &Path, img: &GrayImage) -> Result<()> {
    write_png(
        path,
        img.width,
        img.height,
        png::ColorType::Grayscale,
        &img.data,
    )
}

/// Writes 8-bit PNG pixel data of `color` type via a temporary file renamed into place, so a
/// reader never sees half a file.
pub(crate) fn write_png(
    path: &Path,
    width: u32,
    height: u32,
    color: png::ColorType,
    data: &[u8],
) -> Result<()> {
    let tmp = path.with_extension("png.tmp");
    let encode_err =
        |e: png::EncodingError| DataError::bad_file(&tmp, format!("PNG encode failed: {e}"));
    {
        let file = std::fs::File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        let mut w = BufWriter::new(file);
        let mut enc = png::Encoder::new(&mut w, width, height);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        let mut writer = enc.write_header().map_err(encode_err)?;
        writer.write_image_data(data).map_err(encode_err)?;
        writer.finish().map_err(encode_err)?;
        w.flush().map_err(|e| DataError::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))
}

/// Encodes an 8-bit grayscale PNG into memory.
pub fn encode_png(img: &GrayImage) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, img.width, img.height);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        let mut writer = enc.write_header().expect("in-memory PNG header");
        writer
            .write_image_data(&img.data)
            .expect("in-memory PNG data");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_threshold_reports_non_binary_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.png");
        let img = GrayImage::new(4, 1, vec![0, 100, 200, 255]);
        save_png(&p, &img).unwrap();
        let (m, report) = load_mask(&p, MaskPolicy::Threshold).unwrap();
        assert_eq!(m.data, vec![0, 0, 255, 255]);
        assert_eq!(report.non_binary_pixels, 2);
        assert!(load_mask(&p, MaskPolicy::Strict).is_err());
    }

    #[test]
    fn zero_one_masks_are_foreground_at_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.png");
        save_png(&p, &GrayImage::new(3, 1, vec![0, 1, 1])).unwrap();
        let (m, report) = load_mask(&p, MaskPolicy::Strict).unwrap();
        assert_eq!(m.data, vec![0, 255, 255]);
        assert!(report.is_clean());
    }

    #[test]
    fn corrupt_png_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.png");
        let good = encode_png(&GrayImage::zeros(16, 16));
        std::fs::write(&p, &good[..good.len() / 2]).unwrap();
        let err = load_gray(&p).unwrap_err().to_string();
        assert!(err.contains("bad.png"), "{err}");
        assert!(err.contains("corrupt"), "{err}");
    }

    #[test]
    fn unknown_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notes.png");
        std::fs::write(&p, b"this is not an image at all").unwrap();
        let err = load_gray(&p).unwrap_err().to_string();
        assert!(err.contains("unsupported"), "{err}");
    }
}
