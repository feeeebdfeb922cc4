//! Settings of the classic reference methods: Mean Teacher, FixMatch and cross pseudo supervision.

use serde::{Deserialize, Serialize};

/// Mean Teacher (Tarvainen & Valpola 2017).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeanTeacherConfig {}

/// FixMatch (Sohn et al. 2020), for segmentation and classification.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FixMatchConfig {}

/// Cross pseudo supervision (Chen et al. 2021).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpsConfig {}
