//! Settings of the `mlrpl` method (specs/mlrpl.md §11, mapped to 2-D; docs/methods/mlrpl.md).

use serde::{Deserialize, Serialize};

// The value types live with the method: this module is private to `config`, which re-exports
// only `MlrplConfig`.
use crate::methods::mlrpl::{ConsistencyCe, DecoderUpsample, MlrplInference};
use crate::schedule::stepped_rampup;

/// MLRPL: shared encoder, two decoders, reliable mutual consistency.
///
/// Defaults follow spec §8 where they do not depend on the run length; the ramp is scaled to the
/// run (see `consistency_ramp_every`), so the quickstart-cpu preset (300 steps) ramps as the code
/// does over 15000. Optimizer and learning-rate schedule are the shared `optim.seg` /
/// `optim.poly_power` (the code: SGD 0.01, momentum 0.9, weight decay 1e-4, constant rate, i.e.
/// `poly_power = 0`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlrplConfig {
    /// λ, the weight of the supervised loss (sum of both decoders' Dice).
    pub sup_weight: f64,
    /// Weight of a pixel CE added to each decoder's supervised Dice; 0 = the code (Dice only, its
    /// CE is commented out).
    pub sup_ce_weight: f64,
    /// Final weight of the reliable mutual consistency.
    pub consistency_weight: f64,
    /// The ramp w(t) = consistency_weight · ρ(⌊t / every⌋, length) advances every this many steps;
    /// 0 = `steps / 100` (at least 1), which is the code's 150 at its 15000 steps and 3 at the
    /// quickstart's 300.
    pub consistency_ramp_every: u64,
    /// Length of the ramp in chunks (the code: 40, so w reaches its final value at 40% of the run).
    pub consistency_ramp_length: u64,
    /// `fixed` (CE on logits) or `original` (CE on probabilities, the published code).
    pub consistency_ce: ConsistencyCe,
    /// Up-sampling of decoder 1 (the 3-D code: transposed convolution).
    pub decoder1_upsample: DecoderUpsample,
    /// Up-sampling of decoder 2 (the 3-D code: nearest); must differ from decoder 1's.
    pub decoder2_upsample: DecoderUpsample,
    /// Channel dropout (`Dropout2d`) on each decoder's last feature in training, before the head
    /// and the prototypes; 0 = off (the code: 0.5).
    pub feature_dropout: f64,
    /// `decoder1` (the code) or `average` (both decoders' softmax).
    pub inference: MlrplInference,
}

impl Default for MlrplConfig {
    fn default() -> Self {
        MlrplConfig {
            sup_weight: 0.5,
            sup_ce_weight: 0.0,
            consistency_weight: 1.0,
            consistency_ramp_every: 0,
            consistency_ramp_length: 40,
            consistency_ce: ConsistencyCe::Fixed,
            decoder1_upsample: DecoderUpsample::Transposed,
            decoder2_upsample: DecoderUpsample::Nearest,
            feature_dropout: 0.5,
            inference: MlrplInference::Decoder1,
        }
    }
}

impl MlrplConfig {
    /// The ramp's chunk length for a run of `total_steps`: `consistency_ramp_every`, or
    /// `total_steps / 100` (at least 1) when it is 0.
    pub fn ramp_every(&self, total_steps: u64) -> u64 {
        match self.consistency_ramp_every {
            0 => (total_steps / 100).max(1),
            every => every,
        }
    }

    /// The consistency weight of 1-based step `step` in a run of `total_steps` (spec §5.3, §12.3).
    pub fn consistency_weight_at(&self, step: u64, total_steps: u64) -> f64 {
        self.consistency_weight
            * stepped_rampup(
                step,
                self.ramp_every(total_steps),
                self.consistency_ramp_length,
            )
    }
}

impl MlrplConfig {
    /// Value checks of `[mlrpl]`, as `(key, message)` (called from `check.rs`).
    pub(super) fn check(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, msg: String| Err((format!("mlrpl.{key}"), msg));
        for (key, v) in [
            ("sup_weight", self.sup_weight),
            ("sup_ce_weight", self.sup_ce_weight),
            ("consistency_weight", self.consistency_weight),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return fail(key, format!("= {v} must be a non-negative number"));
            }
        }
        if !(0.0..1.0).contains(&self.feature_dropout) {
            return fail(
                "feature_dropout",
                format!("= {} must be in [0, 1)", self.feature_dropout),
            );
        }
        if self.decoder1_upsample == self.decoder2_upsample {
            return fail(
                "decoder2_upsample",
                format!(
                    "must differ from mlrpl.decoder1_upsample (both {:?}): the two decoders differ \
                     only in their up-sampling (transposed, bilinear, nearest)",
                    self.decoder1_upsample
                ),
            );
        }
        Ok(())
    }
}
