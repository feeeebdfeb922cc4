//! DICOM reading (filled in by the importer work).

use std::path::Path;

use crate::error::{DataError, Result};
use crate::image_io::GrayImage;

#[derive(Clone, Debug, Default)]
pub struct DicomOptions {
    /// Crop to the ultrasound region from SequenceOfUltrasoundRegions.
    pub crop_to_region: bool,
}

pub fn load_dicom_gray(path: &Path, _opts: &DicomOptions) -> Result<GrayImage> {
    Err(DataError::bad_file(
        path,
        "DICOM reading is not available yet",
    ))
}
