//! DICOM decoding on real ultrasound files (tests/fixtures/dicom, see NOTICE there) and the DICOM
//! importer.

use std::path::{Path, PathBuf};

use semisono_data::dicom::{load_dicom, load_dicom_gray, DicomOptions};
use semisono_data::image_io;
use semisono_data::import::{import, ImportFormat, ImportOptions};
use semisono_data::Dataset;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dicom")
        .join(name)
}

const ALOKA: &str = "gdcm-US-ALOKA-16.dcm";
const JPEG_LOSSLESS: &str = "JPGLosslessP14SV1_1s_1f_8b.dcm";
const RGB: &str = "examples_rgb_color.dcm";

fn distinct_values(data: &[u8]) -> usize {
    let mut seen = [false; 256];
    data.iter().for_each(|&v| seen[v as usize] = true);
    seen.iter().filter(|&&s| s).count()
}

fn std_dev(data: &[u8]) -> f64 {
    let n = data.len() as f64;
    let mean = data.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    (data
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt()
}

fn assert_not_flat(data: &[u8], what: &str) {
    assert!(distinct_values(data) > 32, "{what}: too few gray levels");
    assert!(std_dev(data) > 10.0, "{what}: std {}", std_dev(data));
}

#[test]
fn fixtures_decode_to_their_size_with_content() {
    let opts = DicomOptions::default();
    for (name, w, h) in [
        (ALOKA, 640, 480),
        (JPEG_LOSSLESS, 1024, 768),
        (RGB, 320, 240),
    ] {
        let d = load_dicom(&fixture(name), &opts).unwrap();
        assert_eq!((d.image.width, d.image.height), (w, h), "{name}");
        assert_eq!(d.image.data.len(), (w * h) as usize);
        assert_not_flat(&d.image.data, name);
        assert!(!d.cropped);
        assert_eq!(d.meta["modality"], "US", "{name}: {}", d.meta);
        // image_io dispatches .dcm files here.
        assert_eq!(image_io::load_gray(&fixture(name)).unwrap(), d.image);
    }
}

#[test]
fn palette_indices_become_gray_and_regions_give_spacing() {
    let d = load_dicom(&fixture(ALOKA), &DicomOptions::default()).unwrap();
    assert_eq!(d.meta["photometric"], "PALETTE COLOR");
    assert_eq!(d.meta["intensity"], "palette-index");
    assert_eq!(d.meta["us_regions"], 3);
    // Two equal side-by-side B-mode regions: the first is used.
    let r = d.region.unwrap();
    assert_eq!((r.min_x, r.min_y, r.max_x, r.max_y), (32, 24, 335, 415));
    let [row, col] = d.pixel_spacing_mm.unwrap();
    assert!(
        (row - 0.38265).abs() < 1e-4 && (col - 0.38265).abs() < 1e-4,
        "{row} {col}"
    );
    // The margin left of the scan region is black; the scan itself is not.
    let g = &d.image;
    assert!((30..420).step_by(7).all(|y| g.get(10, y) < 40));
    let inside: u64 = (200..400).map(|y| u64::from(g.get(150, y))).sum();
    assert!(inside / 200 > 40, "{}", inside / 200);
}

#[test]
fn crop_to_region_gives_the_region_size() {
    let opts = DicomOptions {
        crop_to_region: true,
    };
    let d = load_dicom(&fixture(ALOKA), &opts).unwrap();
    assert!(d.cropped);
    assert_eq!((d.image.width, d.image.height), (304, 392));
    assert_not_flat(&d.image.data, "ALOKA crop");

    let d = load_dicom(&fixture(JPEG_LOSSLESS), &opts).unwrap();
    assert_eq!((d.image.width, d.image.height), (997, 721));
    let [row, col] = d.pixel_spacing_mm.unwrap();
    assert!((row - 0.25477).abs() < 1e-4 && (col - 0.25477).abs() < 1e-4);
    assert_eq!(d.meta["photometric"], "MONOCHROME2");
    assert_eq!(d.meta["intensity"], "voi-window");

    // No regions: nothing to crop, no spacing.
    let d = load_dicom(&fixture(RGB), &opts).unwrap();
    assert!(!d.cropped && d.region.is_none() && d.pixel_spacing_mm.is_none());
    assert_eq!((d.image.width, d.image.height), (320, 240));
    assert_eq!(d.meta["intensity"], "rgb-luma");
}

#[test]
fn dicom_without_pixel_data_errors_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("no_pixels.dcm");
    let mut obj = dicom_object::open_file(fixture(RGB)).unwrap();
    assert!(obj.remove_element(dicom_dictionary_std::tags::PIXEL_DATA));
    obj.write_to_file(&p).unwrap();
    let err = load_dicom_gray(&p, &DicomOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no_pixels.dcm"), "{err}");
    assert!(err.contains("no pixel data"), "{err}");

    // Through the importer: the error names the file and nothing is written.
    let out = dir.path().join("ds");
    let err = import(ImportFormat::Dicom, &p, &ImportOptions::default(), &out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no_pixels.dcm"), "{err}");
    assert!(!out.exists());
}

#[test]
fn unsupported_transfer_syntax_and_truncation_are_named() {
    let dir = tempfile::tempdir().unwrap();
    // Same file, JPEG Lossless UID rewritten to JPEG 2000 (same length): no pure-Rust decoder here.
    let mut bytes = std::fs::read(fixture(JPEG_LOSSLESS)).unwrap();
    let from = b"1.2.840.10008.1.2.4.70";
    let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
    bytes[at..at + from.len()].copy_from_slice(b"1.2.840.10008.1.2.4.90");
    let p = dir.path().join("j2k.dcm");
    std::fs::write(&p, &bytes).unwrap();
    let err = load_dicom_gray(&p, &DicomOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("j2k.dcm") && err.contains("transfer syntax"),
        "{err}"
    );
    assert!(err.contains("convert"), "{err}");

    let full = std::fs::read(fixture(RGB)).unwrap();
    let p = dir.path().join("cut.dcm");
    std::fs::write(&p, &full[..full.len() / 2]).unwrap();
    let err = load_dicom_gray(&p, &DicomOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("cut.dcm"), "{err}");

    let p = dir.path().join("text.dcm");
    std::fs::write(&p, b"hello, not DICOM").unwrap();
    let err = load_dicom_gray(&p, &DicomOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("text.dcm") && err.contains("DICOM"), "{err}");
}

#[test]
fn dicom_import_walks_a_directory_recursively() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(input.join("study/series")).unwrap();
    std::fs::copy(fixture(ALOKA), input.join("study/a.dcm")).unwrap();
    std::fs::copy(fixture(RGB), input.join("study/series/b.dcm")).unwrap();
    std::fs::write(input.join("README.txt"), "not an image").unwrap();
    let out = dir.path().join("ds");
    let opts = ImportOptions {
        crop_to_region: true,
        ..ImportOptions::default()
    };
    let summary = import(ImportFormat::Dicom, &input, &opts, &out).unwrap();
    assert_eq!(summary.images, 2);
    assert_eq!(summary.unlabeled, 2);
    let ds = Dataset::open(&out).unwrap();
    let ids: Vec<_> = ds.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["study_a", "study_series_b"]);
    let a = &ds.entries[0];
    assert_eq!((a.width, a.height), (304, 392));
    assert!(a.mask.is_none() && a.label.is_none());
    assert!((a.pixel_spacing_mm.unwrap()[0] - 0.38265).abs() < 1e-4);
    assert_eq!(a.meta["manufacturer"], ds.entries[0].meta["manufacturer"]);
    // The RGB file has no region: a warning says it was kept whole.
    assert!(
        summary.warnings.iter().any(|w| w.contains("b.dcm")),
        "{:?}",
        summary.warnings
    );

    // A single file works too.
    let out2 = dir.path().join("ds2");
    let s = import(
        ImportFormat::Dicom,
        &fixture(JPEG_LOSSLESS),
        &ImportOptions::default(),
        &out2,
    )
    .unwrap();
    assert_eq!(s.images, 1);
    let ds = Dataset::open(&out2).unwrap();
    assert_eq!(ds.entries[0].id, "JPGLosslessP14SV1_1s_1f_8b");
    assert_eq!(ds.entries[0].width, 1024);
}

/// Writes a native (explicit VR little endian) single-sample DICOM built on the RGB fixture's meta.
fn synthetic(
    path: &Path,
    (w, h, frames): (u16, u16, u16),
    photometric: &str,
    pixels: dicom_core::PrimitiveValue,
    extra: &[(dicom_core::Tag, dicom_core::VR, dicom_core::PrimitiveValue)],
) {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let mut obj = dicom_object::open_file(fixture(RGB)).unwrap();
    obj.remove_element(tags::PLANAR_CONFIGURATION);
    let sixteen = matches!(pixels, PrimitiveValue::U16(_));
    let bits: u16 = if sixteen { 16 } else { 8 };
    let us = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    obj.put(us(tags::SAMPLES_PER_PIXEL, 1));
    obj.put(us(tags::ROWS, h));
    obj.put(us(tags::COLUMNS, w));
    obj.put(us(tags::BITS_ALLOCATED, bits));
    obj.put(us(tags::BITS_STORED, bits));
    obj.put(us(tags::HIGH_BIT, bits - 1));
    obj.put(DataElement::new(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        PrimitiveValue::from(photometric),
    ));
    if frames > 1 {
        obj.put(DataElement::new(
            tags::NUMBER_OF_FRAMES,
            VR::IS,
            PrimitiveValue::from(frames.to_string()),
        ));
    }
    for (tag, vr, v) in extra {
        obj.put(DataElement::new(*tag, *vr, v.clone()));
    }
    let vr = if sixteen { VR::OW } else { VR::OB };
    obj.put(DataElement::new(tags::PIXEL_DATA, vr, pixels));
    obj.write_to_file(path).unwrap();
}

#[test]
fn monochrome_windowing_inversion_and_cine() {
    use dicom_core::{PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let dir = tempfile::tempdir().unwrap();
    let opts = DicomOptions::default();

    // MONOCHROME1, 8 bit, no window: kept as stored, then inverted.
    let p = dir.path().join("m1.dcm");
    let px: Vec<u8> = (0..8).map(|i| i * 30).collect();
    synthetic(
        &p,
        (4, 2, 1),
        "MONOCHROME1",
        PrimitiveValue::from(px.clone()),
        &[],
    );
    let d = load_dicom(&p, &opts).unwrap();
    let want: Vec<u8> = px.iter().map(|v| 255 - v).collect();
    assert_eq!(d.image.data, want);
    assert_eq!(d.meta["intensity"], "as-stored");

    // MONOCHROME2, 16 bit, no window: min-max to 0..255.
    let p = dir.path().join("m2.dcm");
    let px: Vec<u16> = vec![1000, 1100, 1200, 3000];
    synthetic(
        &p,
        (2, 2, 1),
        "MONOCHROME2",
        PrimitiveValue::U16(px.into()),
        &[],
    );
    let d = load_dicom(&p, &opts).unwrap();
    assert_eq!(d.image.data, vec![0, 13, 26, 255]);
    assert_eq!(d.meta["intensity"], "min-max");

    // The same with a VOI window (center 1100, width 201): linear between 1000 and 1200.
    let p = dir.path().join("win.dcm");
    let window = [
        (tags::WINDOW_CENTER, VR::DS, PrimitiveValue::from("1100")),
        (tags::WINDOW_WIDTH, VR::DS, PrimitiveValue::from("201")),
    ];
    let px: Vec<u16> = vec![900, 1000, 1100, 1200];
    synthetic(
        &p,
        (2, 2, 1),
        "MONOCHROME2",
        PrimitiveValue::U16(px.into()),
        &window,
    );
    let d = load_dicom(&p, &opts).unwrap();
    assert_eq!(d.meta["intensity"], "voi-window");
    assert_eq!(d.image.data[0], 0);
    assert!(
        (d.image.data[2] as i32 - 128).abs() <= 1,
        "{:?}",
        d.image.data
    );
    assert_eq!(d.image.data[3], 255);

    // Cine: two frames, the first is used.
    let p = dir.path().join("cine.dcm");
    let mut px = vec![10u8; 6];
    px.extend([200u8; 6]);
    synthetic(&p, (3, 2, 2), "MONOCHROME2", PrimitiveValue::from(px), &[]);
    let d = load_dicom(&p, &opts).unwrap();
    assert_eq!(d.image.data, vec![10; 6]);
    assert_eq!(d.meta["frames"], 2);
}
