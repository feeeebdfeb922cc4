//! Settings of the `patchcl` method (specs/patchcl.md §11).

use serde::{Deserialize, Serialize};

/// PatchCL: EMA teacher, per-class patch queues and the Gaussian joint contrastive loss.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PatchClConfig {}
