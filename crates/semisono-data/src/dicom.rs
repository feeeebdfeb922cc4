//! DICOM reading with dicom-rs (pure Rust: native, JPEG baseline/extended/lossless, RLE, deflate).
//!
//! What comes out is always one 8-bit grayscale frame:
//!
//! - **MONOCHROME1/2**: the modality rescale (slope/intercept) is applied, then the first VOI window
//!   (DICOM "LINEAR" function) when the file has one; without a window, 8-bit unsigned data is kept as
//!   stored and anything wider is min–max stretched to 0..255. MONOCHROME1 is inverted afterwards.
//! - **PALETTE COLOR**: the raw palette *indices* are used as gray (ultrasound scanners such as ALOKA
//!   store the B-mode image as 16-bit indices into a gray-ish ramp), scaled to 8 bits over the index
//!   range of the Red LUT descriptor (min–max when the descriptor is missing).
//! - **RGB / YBR**: converted to luma with the same coefficients as the `image` crate uses for PNGs;
//!   YBR keeps its Y channel.
//! - **Multi-frame (cine)**: the first frame only (the frame count is kept in `meta`).
//!
//! Ultrasound geometry comes from SequenceOfUltrasoundRegions. The region used is the largest 2D
//! tissue (B-mode: RegionSpatialFormat 1, RegionDataType 1) region, the first one on a tie; when no
//! region is tissue, the largest 2D region; when none is 2D, the largest region. Its
//! PhysicalDeltaX/Y (when the units are cm) give the pixel spacing in mm; without regions the
//! PixelSpacing attribute (mm) is used. With `crop_to_region` the image is cut to that region.
//! No patient-identifying attributes are copied into `meta`.

use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::{PhotometricInterpretation, PixelDecoder, PixelRepresentation};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use serde_json::json;

use crate::error::{DataError, Result};
use crate::image_io::GrayImage;

#[derive(Clone, Debug, Default)]
pub struct DicomOptions {
    /// Crop to the ultrasound region from SequenceOfUltrasoundRegions (see the module docs for which).
    pub crop_to_region: bool,
}

/// One ultrasound region, pixel bounds inclusive as in DICOM.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UsRegion {
    pub min_x: u32,
    pub min_y: u32,
    pub max_x: u32,
    pub max_y: u32,
    /// RegionSpatialFormat (1 = 2D).
    pub spatial_format: u16,
    /// RegionDataType (1 = tissue, i.e. B-mode).
    pub data_type: u16,
    /// PhysicalDeltaX/Y converted to mm, when the physical units are cm.
    pub delta_mm: Option<[f64; 2]>,
}

impl UsRegion {
    pub fn width(&self) -> u32 {
        self.max_x.saturating_sub(self.min_x) + 1
    }

    pub fn height(&self) -> u32 {
        self.max_y.saturating_sub(self.min_y) + 1
    }

    fn area(&self) -> u64 {
        u64::from(self.width()) * u64::from(self.height())
    }
}

/// A decoded DICOM frame and what is known about it.
#[derive(Clone, Debug)]
pub struct DicomImage {
    pub image: GrayImage,
    /// Pixel size in mm as (row, column), when the file says.
    pub pixel_spacing_mm: Option<[f64; 2]>,
    /// The ultrasound region chosen (whether or not the image was cropped to it).
    pub region: Option<UsRegion>,
    /// True if `image` was cropped to `region`.
    pub cropped: bool,
    /// Modality, manufacturer, model, photometric, transfer syntax, frames, bits, intensity mapping ...
    pub meta: serde_json::Value,
}

/// Loads the first frame of a DICOM file as 8-bit grayscale.
pub fn load_dicom_gray(path: &Path, opts: &DicomOptions) -> Result<GrayImage> {
    load_dicom(path, opts).map(|d| d.image)
}

/// Loads the first frame of a DICOM file, with its pixel spacing, chosen region and metadata.
pub fn load_dicom(path: &Path, opts: &DicomOptions) -> Result<DicomImage> {
    if !path.exists() {
        return Err(DataError::bad_file(
            path,
            "file not found; check the path (and the list or manifest that names it)",
        ));
    }
    let obj = OpenFileOptions::new().open_file(path).map_err(|e| {
        DataError::bad_file(
            path,
            format!("not a readable DICOM file ({e}); the file is corrupt, truncated or not DICOM"),
        )
    })?;
    let ts_uid = obj.meta().transfer_syntax().to_string();
    let ts = TransferSyntaxRegistry.get(&ts_uid);
    let ts_name = ts
        .map(|t| t.name().to_string())
        .unwrap_or_else(|| ts_uid.clone());
    if obj.element_opt(tags::PIXEL_DATA).ok().flatten().is_none() {
        return Err(DataError::bad_file(
            path,
            "DICOM file has no pixel data (7FE0,0010): it is not an image (a report, a DICOMDIR, \
             a presentation state ...); remove it from the input",
        ));
    }
    match ts {
        Some(t) if t.can_decode_all() => {}
        _ => {
            return Err(DataError::bad_file(
                path,
                format!(
                    "DICOM transfer syntax {ts_name} ({ts_uid}) cannot be decoded by this build \
                     (supported: uncompressed, deflate, RLE, JPEG baseline/extended/lossless); \
                     convert the file to an uncompressed transfer syntax first, e.g. \
                     `gdcmconv --raw in.dcm out.dcm` or `dcmdjp2k in.dcm out.dcm`"
                ),
            ))
        }
    }
    let px = obj.decode_pixel_data_frame(0).map_err(|e| {
        DataError::bad_file(
            path,
            format!("cannot decode the DICOM pixel data ({e}); the file is corrupt or truncated"),
        )
    })?;
    let (w, h) = (px.columns(), px.rows());
    let frame = px
        .frame_data(0)
        .map_err(|e| DataError::bad_file(path, format!("cannot read DICOM frame 0 ({e})")))?;
    let photometric = px.photometric_interpretation().clone();
    let palette = palette_range(&obj);
    let (gray, mapping) = to_gray(&px, frame, &photometric, palette)
        .map_err(|m| DataError::bad_file(path, format!("{m}; convert it to 8-bit grayscale")))?;
    let mut image = GrayImage::new(w, h, gray);

    let regions = us_regions(&obj);
    let region = choose_region(&regions);
    let pixel_spacing_mm = match region {
        Some(r) => r.delta_mm.map(|[dx, dy]| [dy, dx]),
        None => float_list(&obj, tags::PIXEL_SPACING).and_then(|v| match v[..] {
            [row, col] if row > 0.0 && col > 0.0 => Some([row, col]),
            _ => None,
        }),
    };
    let mut cropped = false;
    if opts.crop_to_region {
        if let Some(r) = region {
            image = crop(&image, &r).ok_or_else(|| {
                DataError::bad_file(
                    path,
                    format!(
                        "the ultrasound region x {}..{}, y {}..{} lies outside the {w}x{h} image; \
                         import without cropping to the region",
                        r.min_x, r.max_x, r.min_y, r.max_y
                    ),
                )
            })?;
            cropped = true;
        }
    }

    let text = |tag| {
        obj.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_str().ok().map(|s| s.trim().to_string()))
            .filter(|s| !s.is_empty())
    };
    let frames: u32 = text(tags::NUMBER_OF_FRAMES)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let meta = json!({
        "modality": text(tags::MODALITY),
        "manufacturer": text(tags::MANUFACTURER),
        "model": text(tags::MANUFACTURER_MODEL_NAME),
        "photometric": photometric.to_string(),
        "transfer_syntax": ts_uid,
        "frames": frames,
        "bits_allocated": px.bits_allocated(),
        "bits_stored": px.bits_stored(),
        "dicom_width": w,
        "dicom_height": h,
        "intensity": mapping,
        "us_regions": regions.len(),
        "region": region.map(|r| [r.min_x, r.min_y, r.max_x, r.max_y]),
        "cropped": cropped,
    });
    Ok(DicomImage {
        image,
        pixel_spacing_mm,
        region,
        cropped,
        meta,
    })
}

fn float_list(obj: &InMemDicomObject, tag: dicom_object::Tag) -> Option<Vec<f64>> {
    obj.element_opt(tag).ok().flatten()?.to_multi_float64().ok()
}

fn int_of(obj: &InMemDicomObject, tag: dicom_object::Tag) -> Option<i64> {
    obj.element_opt(tag).ok().flatten()?.to_int::<i64>().ok()
}

/// (first mapped index, number of entries) of the Red palette LUT descriptor.
fn palette_range(obj: &InMemDicomObject) -> Option<(f64, f64)> {
    let e = obj
        .element_opt(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR)
        .ok()
        .flatten()?;
    let v = e.to_multi_int::<i64>().ok()?;
    let n = match *v.first()? {
        0 => 65536,
        n => n & 0xFFFF,
    };
    let first = *v.get(1)? & 0xFFFF;
    (n > 1).then_some((first as f64, n as f64))
}

/// All items of SequenceOfUltrasoundRegions that have complete bounds.
pub fn us_regions(obj: &InMemDicomObject) -> Vec<UsRegion> {
    let Some(seq) = obj
        .element_opt(tags::SEQUENCE_OF_ULTRASOUND_REGIONS)
        .ok()
        .flatten()
    else {
        return Vec::new();
    };
    let Some(items) = seq.items() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let b = |t| int_of(item, t).and_then(|v| u32::try_from(v).ok());
        let (Some(min_x), Some(min_y), Some(max_x), Some(max_y)) = (
            b(tags::REGION_LOCATION_MIN_X0),
            b(tags::REGION_LOCATION_MIN_Y0),
            b(tags::REGION_LOCATION_MAX_X1),
            b(tags::REGION_LOCATION_MAX_Y1),
        ) else {
            continue;
        };
        if max_x < min_x || max_y < min_y {
            continue;
        }
        let f = |t| {
            item.element_opt(t)
                .ok()
                .flatten()
                .and_then(|e| e.to_float64().ok())
        };
        let cm = |t| int_of(item, t) == Some(3);
        let delta_mm = match (f(tags::PHYSICAL_DELTA_X), f(tags::PHYSICAL_DELTA_Y)) {
            (Some(dx), Some(dy))
                if dx > 0.0
                    && dy > 0.0
                    && cm(tags::PHYSICAL_UNITS_X_DIRECTION)
                    && cm(tags::PHYSICAL_UNITS_Y_DIRECTION) =>
            {
                Some([dx * 10.0, dy * 10.0])
            }
            _ => None,
        };
        out.push(UsRegion {
            min_x,
            min_y,
            max_x,
            max_y,
            spatial_format: int_of(item, tags::REGION_SPATIAL_FORMAT).unwrap_or(0) as u16,
            data_type: int_of(item, tags::REGION_DATA_TYPE).unwrap_or(0) as u16,
            delta_mm,
        });
    }
    out
}

/// The largest 2D tissue region, else the largest 2D region, else the largest; the first on a tie.
pub fn choose_region(regions: &[UsRegion]) -> Option<UsRegion> {
    let largest = |pred: &dyn Fn(&UsRegion) -> bool| {
        regions
            .iter()
            .filter(|r| pred(r))
            .fold(None::<&UsRegion>, |best, r| match best {
                Some(b) if b.area() >= r.area() => Some(b),
                _ => Some(r),
            })
            .copied()
    };
    largest(&|r| r.spatial_format == 1 && r.data_type == 1)
        .or_else(|| largest(&|r| r.spatial_format == 1))
        .or_else(|| largest(&|_| true))
}

fn crop(img: &GrayImage, r: &UsRegion) -> Option<GrayImage> {
    if r.min_x >= img.width || r.min_y >= img.height {
        return None;
    }
    let x1 = r.max_x.min(img.width - 1);
    let y1 = r.max_y.min(img.height - 1);
    let (w, h) = (x1 - r.min_x + 1, y1 - r.min_y + 1);
    let mut data = Vec::with_capacity(w as usize * h as usize);
    for y in r.min_y..=y1 {
        let start = y as usize * img.width as usize + r.min_x as usize;
        data.extend_from_slice(&img.data[start..start + w as usize]);
    }
    Some(GrayImage::new(w, h, data))
}

/// Converts one decoded frame to 8-bit gray. Returns the pixels and a word on the mapping used.
fn to_gray(
    px: &dicom_pixeldata::DecodedPixelData<'_>,
    frame: &[u8],
    pi: &PhotometricInterpretation,
    palette: Option<(f64, f64)>,
) -> std::result::Result<(Vec<u8>, &'static str), String> {
    let n = px.columns() as usize * px.rows() as usize;
    let spp = px.samples_per_pixel() as usize;
    let bits = px.bits_allocated();
    let short = || format!("DICOM pixel data is shorter than {} pixels", n);
    if spp == 3 {
        if bits != 8 {
            return Err(format!("{bits}-bit colour DICOM is not supported"));
        }
        let planar = px.planar_configuration() != dicom_pixeldata::PlanarConfiguration::Standard;
        if matches!(pi, PhotometricInterpretation::YbrFull422) && frame.len() == n * 2 {
            // Native YBR_FULL_422: Y1 Y2 Cb Cr for every two pixels.
            let y = (0..n).map(|i| frame[(i / 2) * 4 + (i % 2)]).collect();
            return Ok((y, "ybr-y"));
        }
        if frame.len() < n * 3 {
            return Err(short());
        }
        let sample = |i: usize, c: usize| -> u32 {
            if planar {
                u32::from(frame[c * n + i])
            } else {
                u32::from(frame[i * 3 + c])
            }
        };
        return Ok(match pi {
            PhotometricInterpretation::Rgb => (
                (0..n)
                    .map(|i| {
                        ((2126 * sample(i, 0) + 7152 * sample(i, 1) + 722 * sample(i, 2)) / 10000)
                            as u8
                    })
                    .collect(),
                "rgb-luma",
            ),
            _ => ((0..n).map(|i| sample(i, 0) as u8).collect(), "ybr-y"),
        });
    }
    if spp != 1 {
        return Err(format!(
            "DICOM with {spp} samples per pixel is not supported"
        ));
    }
    // Raw stored values.
    let stored = px.bits_stored().clamp(1, 16);
    let signed = px.pixel_representation() == PixelRepresentation::Signed;
    let raw: Vec<f64> = match bits {
        1 | 8 => {
            if frame.len() < n {
                return Err(short());
            }
            frame[..n]
                .iter()
                .map(|&v| {
                    if signed {
                        f64::from(v as i8)
                    } else {
                        f64::from(v)
                    }
                })
                .collect()
        }
        16 => {
            if frame.len() < n * 2 {
                return Err(short());
            }
            let mask: u32 = (1u32 << stored) - 1;
            frame[..n * 2]
                .chunks_exact(2)
                .map(|b| {
                    let v = u32::from(u16::from_ne_bytes([b[0], b[1]])) & mask;
                    if signed && v >> (stored - 1) & 1 == 1 {
                        f64::from(v as i32 - (1i32 << stored))
                    } else {
                        f64::from(v)
                    }
                })
                .collect()
        }
        b => return Err(format!("{b}-bit DICOM pixel data is not supported")),
    };
    let min_max = |vals: &[f64]| -> Vec<u8> {
        let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let span = hi - lo;
        vals.iter()
            .map(|&v| {
                if span > 0.0 {
                    ((v - lo) / span * 255.0).round() as u8
                } else {
                    0
                }
            })
            .collect()
    };
    if matches!(pi, PhotometricInterpretation::PaletteColor) {
        return Ok(match palette {
            Some((first, entries)) => (
                raw.iter()
                    .map(|&v| {
                        ((v - first) / (entries - 1.0) * 255.0)
                            .round()
                            .clamp(0.0, 255.0) as u8
                    })
                    .collect(),
                "palette-index",
            ),
            None => (min_max(&raw), "palette-index-min-max"),
        });
    }
    let rescale = px.rescale().ok().and_then(|r| r.first().copied());
    let (slope, intercept) = rescale.map_or((1.0, 0.0), |r| (r.slope, r.intercept));
    let values: Vec<f64> = if slope != 1.0 || intercept != 0.0 {
        raw.iter().map(|&v| v * slope + intercept).collect()
    } else {
        raw
    };
    let window = px
        .window()
        .ok()
        .flatten()
        .and_then(|w| w.first().copied())
        .filter(|w| w.width >= 1.0);
    let (mut out, mapping) = if let Some(w) = window {
        // DICOM PS3.3 C.11.2.1.2.1, LINEAR.
        let (c, wd) = (w.center, w.width);
        let out = values
            .iter()
            .map(|&v| {
                let y = if wd <= 1.0 {
                    if v <= c - 0.5 {
                        0.0
                    } else {
                        255.0
                    }
                } else {
                    ((v - (c - 0.5)) / (wd - 1.0) + 0.5) * 255.0
                };
                y.round().clamp(0.0, 255.0) as u8
            })
            .collect();
        (out, "voi-window")
    } else if bits <= 8 && !signed && slope == 1.0 && intercept == 0.0 {
        (values.iter().map(|&v| v as u8).collect(), "as-stored")
    } else {
        (min_max(&values), "min-max")
    };
    if matches!(pi, PhotometricInterpretation::Monochrome1) {
        out.iter_mut().for_each(|v| *v = 255 - *v);
    }
    Ok((out, mapping))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(x0: u32, y0: u32, x1: u32, y1: u32, fmt: u16, ty: u16) -> UsRegion {
        UsRegion {
            min_x: x0,
            min_y: y0,
            max_x: x1,
            max_y: y1,
            spatial_format: fmt,
            data_type: ty,
            delta_mm: None,
        }
    }

    #[test]
    fn region_choice_prefers_largest_tissue_then_first() {
        let a = region(0, 0, 9, 9, 1, 1);
        let b = region(10, 0, 19, 9, 1, 1);
        let big_doppler = region(0, 0, 99, 99, 1, 2);
        let waveform = region(0, 0, 199, 199, 0, 13);
        assert_eq!(choose_region(&[a, b, big_doppler, waveform]), Some(a));
        assert_eq!(choose_region(&[big_doppler, waveform]), Some(big_doppler));
        assert_eq!(choose_region(&[waveform]), Some(waveform));
        assert_eq!(choose_region(&[]), None);
    }

    #[test]
    fn crop_is_inclusive_and_clamped() {
        let img = GrayImage::new(4, 3, (0..12).collect());
        let c = crop(&img, &region(1, 1, 2, 2, 1, 1)).unwrap();
        assert_eq!(
            (c.width, c.height, c.data.clone()),
            (2, 2, vec![5, 6, 9, 10])
        );
        let c = crop(&img, &region(2, 0, 10, 10, 1, 1)).unwrap();
        assert_eq!((c.width, c.height), (2, 3));
        assert!(crop(&img, &region(5, 0, 10, 10, 1, 1)).is_none());
    }
}
