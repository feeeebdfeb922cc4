//! Settings of the `mlrpl` method (specs/mlrpl.md §11, mapped to 2-D).

use serde::{Deserialize, Serialize};

/// MLRPL: shared encoder, two decoders, reliable mutual consistency.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlrplConfig {}
