//! Value checks of [`TrainConfig`]: each failure names the key by its dotted path.

use super::{HermesMode, TrainConfig};

impl TrainConfig {
    /// The checks, as `(key, message)`.
    pub(super) fn check(&self, methods: &[&str]) -> Result<(), (String, String)> {
        let fail = |key: &str, msg: String| Err((key.to_string(), msg));
        if !methods.contains(&self.method.as_str()) {
            return fail(
                "method",
                format!(
                    "unknown method {:?}; registered methods: {}",
                    self.method,
                    methods.join(", ")
                ),
            );
        }
        if self.seed > i64::MAX as u64 {
            return fail("seed", "must be at most 2^63 - 1 (a TOML integer)".into());
        }
        for (key, v, min) in [
            ("steps", self.steps, 1),
            ("batch_labeled", self.batch_labeled as u64, 1),
            ("batch_eval", self.batch_eval as u64, 1),
            ("image_size", self.image_size as u64, 8),
            ("data.prefetch", self.data.prefetch as u64, 1),
            ("model.seg_classes", self.model.seg_classes as u64, 2),
            ("model.num_classes", self.model.num_classes as u64, 2),
            ("hermes.max_samples", self.hermes.max_samples as u64, 1),
            ("hermes.max_views", self.hermes.max_views as u64, 1),
            ("hermes.itc_ramp_every", self.hermes.itc_ramp_every, 1),
        ] {
            if v < min {
                return fail(key, format!("= {v} must be at least {min}"));
            }
        }
        if self.batch_unlabeled == 0 && self.method != "supervised" {
            return fail(
                "batch_unlabeled",
                format!(
                    "= 0 only works for method \"supervised\"; {:?} trains on unlabeled images",
                    self.method
                ),
            );
        }
        let m = &self.model;
        for (key, name) in [
            ("model.seg_backbone", &m.seg_backbone),
            ("model.cls_backbone", &m.cls_backbone),
        ] {
            if semisono_nn::nets::find_backbone(name).is_none() {
                let known: Vec<&str> = semisono_nn::nets::BACKBONES
                    .iter()
                    .map(|b| b.name)
                    .collect();
                return fail(
                    key,
                    format!(
                        "unknown backbone {name:?}; known backbones: {}",
                        known.join(", ")
                    ),
                );
            }
        }
        if !(m.width_multiplier > 0.0 && m.width_multiplier.is_finite()) {
            return fail("model.width_multiplier", "must be a positive number".into());
        }
        if m.in_channels != 1 && m.in_channels != 3 {
            return fail(
                "model.in_channels",
                format!(
                    "= {} must be 1 (gray) or 3 (gray replicated)",
                    m.in_channels
                ),
            );
        }
        if !(0.0..1.0).contains(&m.dropout) {
            return fail("model.dropout", "must be in [0, 1)".into());
        }
        for (name, o) in [
            ("optim.seg", &self.optim.seg),
            ("optim.cls", &self.optim.cls),
        ] {
            let key = |k: &str| format!("{name}.{k}");
            if !(o.lr > 0.0 && o.lr.is_finite()) {
                return Err((key("lr"), format!("= {} must be a positive number", o.lr)));
            }
            if !o.betas.iter().all(|b| (0.0..1.0).contains(b)) {
                return Err((key("betas"), "must both be in [0, 1)".into()));
            }
            if !(o.eps > 0.0 && o.eps.is_finite()) {
                return Err((key("eps"), "must be positive".into()));
            }
            if !(0.0..1.0).contains(&o.momentum) {
                return Err((key("momentum"), "must be in [0, 1)".into()));
            }
            if !(o.weight_decay >= 0.0 && o.weight_decay.is_finite()) {
                return Err((key("weight_decay"), "must be a non-negative number".into()));
            }
        }
        if !(self.optim.poly_power >= 0.0 && self.optim.poly_power.is_finite()) {
            return fail("optim.poly_power", "must be a non-negative number".into());
        }
        if !self.augment.resize {
            return fail(
                "augment.resize",
                "must be true: batches need one size (set image_size)".into(),
            );
        }
        if self.augment.size != [self.image_size; 2] {
            return fail(
                "augment.size",
                format!("follows image_size ({0}); set image_size", self.image_size),
            );
        }
        if let Err(e) = self.augment.validate() {
            // semisono-data words it "augment: <key> <why>"; split it so the key gets its full path.
            let msg = e.to_string();
            let rest = msg.strip_prefix("augment: ").unwrap_or(&msg);
            return match rest.split_once(' ') {
                Some((k, why)) => Err((format!("augment.{k}"), why.to_string())),
                None => fail("augment", msg.clone()),
            };
        }
        let h = &self.hermes;
        if !(0.0 <= h.t_min && h.t_min <= h.t_max && h.t_max <= 1.0) {
            return fail(
                "hermes.t_min",
                format!(
                    "thresholds need 0 <= t_min <= t_max <= 1 (t_min = {}, t_max = {})",
                    h.t_min, h.t_max
                ),
            );
        }
        for (key, v) in [
            ("hermes.temperature", h.temperature),
            ("hermes.base_temperature", h.base_temperature),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return fail(key, format!("= {v} must be a positive number"));
            }
        }
        if h.memory_bank && (h.pixel_bank_size == 0 || h.image_bank_size == 0) {
            return fail(
                "hermes.pixel_bank_size",
                "memory banks need a size of at least 1".into(),
            );
        }
        for (key, v) in [
            ("hermes.cls_weight", h.cls_weight),
            ("hermes.seg_weight", h.seg_weight),
            ("hermes.cls_contrast_weight", h.cls_contrast_weight),
            ("hermes.seg_contrast_weight", h.seg_contrast_weight),
            ("hermes.unsup_weight", h.unsup_weight),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return fail(key, format!("= {v} must be a non-negative number"));
            }
        }
        if h.code_index_bug && h.mode != HermesMode::Code {
            return fail(
                "hermes.code_index_bug",
                "reproduces a bug of the code and needs mode = \"code\"".into(),
            );
        }
        // ---- [mean_teacher], [fixmatch], [cps]: checks live in config/references.rs ----
        super::references::check(self)?;
        // ---- [patchcl]: checks live in config/patchcl.rs ----
        self.patchcl
            .check(self.image_size, self.method == "patchcl")?;
        // ---- [mlrpl]: checks live in config/mlrpl.rs ----
        self.mlrpl.check()?;
        Ok(())
    }
}
