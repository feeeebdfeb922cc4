//! The typed run configuration (ARCHITECTURE §5): TOML with serde, every key defaulted, presets
//! built in, single keys overridable from the command line, and the fully resolved configuration
//! written into each run.
//!
//! Resolution: a base (a preset named by the file's `preset` key or by the caller, else
//! [`TrainConfig::default`]) is serialised to a TOML table, the file's keys are merged over it, and
//! the result is deserialised and validated. Keys and types of the file are checked on their own
//! first, against the text, so every error can name the key, its table, the file and the line.
//! The TOML side (parsing, merging, overrides, errors) is in the private `toml_io` module and the
//! value checks in `check`; this file holds the types and the presets.

mod check;
mod mlrpl;
mod patchcl;
mod references;
mod toml_io;

use std::path::PathBuf;

use semisono_data::augment::AugmentConfig;
use serde::{Deserialize, Deserializer, Serialize};

use crate::selector::{ContrastKeep, DiceKeep};

pub use mlrpl::MlrplConfig;
pub use patchcl::{PatchClConfig, PatchClConsistency, PatchFilter};
pub use references::{CpsConfig, FixMatchConfig, MeanTeacherConfig};
pub use toml_io::ConfigError;

/// Methods the registry will know (ARCHITECTURE §4). `method` is checked against this list by
/// [`TrainConfig::validate`]; [`TrainConfig::validate_with`] takes the live registry instead.
pub const METHODS: &[&str] = &[
    "supervised",
    "hermes",
    "patchcl",
    "mlrpl",
    "mean-teacher",
    "fixmatch",
    "cps",
];

/// Presets shipped in the binary.
pub const PRESETS: &[&str] = &["quickstart-cpu", "hermes-paper"];

/// Which heads are trained and evaluated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    Segmentation,
    Classification,
    #[default]
    Both,
}

/// Evaluation protocol (ARCHITECTURE §4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// Model selection on the val split; metrics per image at native resolution.
    #[default]
    Clean,
    /// The Hermes code's protocol (whole epochs, batch-averaged Dice on the test set), to reproduce
    /// its tables.
    Paper,
}

/// Hermes behaviour switch (spec §13): reproduce the released code, or fix its bugs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HermesMode {
    #[default]
    Code,
    Paper,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimKind {
    Adam,
    Sgd,
}

/// Where the saliency bridge enters the decoder (spec §2.1): the current file's 1/4 level (with
/// the channel count fixed), or the older file's 1/8 level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SaliencyFuse {
    #[default]
    Quarter,
    Eighth,
}

/// The whole run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// The preset this configuration started from (recorded; `None` for the built-in defaults).
    pub preset: Option<String>,
    /// A name from the method registry ([`METHODS`]).
    pub method: String,
    pub task: Task,
    pub protocol: Protocol,
    /// Drives every random stream (initialisation, sampling, augmentation) through derived generators.
    /// At most 2^63 − 1, the TOML integer range.
    pub seed: u64,
    /// Maximum iterations T; also the length of the entropy and LR schedules. The `paper` protocol
    /// runs only whole epochs within it (see `schedule::EpochPlan`).
    pub steps: u64,
    pub batch_labeled: usize,
    /// Unlabeled images per step (each as a weak and a strong view). 0 only for `supervised`.
    pub batch_unlabeled: usize,
    pub batch_eval: usize,
    /// Side of the square training and evaluation input; `augment.size` follows it.
    pub image_size: u32,
    /// Evaluate every this many steps; 0 = at the end of every epoch (the Hermes code).
    pub eval_every: u64,
    pub log_every: u64,
    /// Write a checkpoint every this many steps; 0 = at every evaluation.
    pub checkpoint_every: u64,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub optim: OptimConfig,
    pub augment: AugmentConfig,
    pub hermes: HermesConfig,
    pub mean_teacher: MeanTeacherConfig,
    pub fixmatch: FixMatchConfig,
    pub cps: CpsConfig,
    pub patchcl: PatchClConfig,
    pub mlrpl: MlrplConfig,
}

/// Where the data is and how batches are prepared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Dataset directory (`semisono synth` / `import`). Empty = given on the command line.
    pub dataset: PathBuf,
    /// Split file (`semisono split`). Empty = given on the command line.
    pub split: PathBuf,
    /// Threads preparing batches ahead of the step; 0 = on the training thread.
    pub workers: usize,
    /// Batches each worker may have ready ahead of the step.
    pub prefetch: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dataset: PathBuf::new(),
            split: PathBuf::new(),
            workers: 2,
            prefetch: 2,
        }
    }
}

/// The two networks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Segmenter encoder, a name from the backbone registry ("resnet18", "resnet34", "res2net50",
    /// "res2net50_v1b", "res2net101_v1b"; checked by the registry when the network is built).
    pub seg_backbone: String,
    pub cls_backbone: String,
    /// Channel multiplier on the published widths (1.0 for pretrained weights).
    pub width_multiplier: f64,
    /// Input channels: 1 (gray) or 3 (gray replicated, what ImageNet weights expect).
    pub in_channels: usize,
    /// Segmentation classes including background.
    pub seg_classes: usize,
    /// Classification classes.
    pub num_classes: usize,
    /// Local `.pth` / `.safetensors` weights for each encoder; an empty string means none.
    #[serde(deserialize_with = "empty_path_is_none")]
    pub seg_pretrained: Option<PathBuf>,
    #[serde(deserialize_with = "empty_path_is_none")]
    pub cls_pretrained: Option<PathBuf>,
    /// ImageNet mean/std input normalisation; the Hermes code does none (spec §12.13).
    pub imagenet_norm: bool,
    /// Dropout of every decoder block.
    pub dropout: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            seg_backbone: "res2net101_v1b".into(),
            cls_backbone: "resnet18".into(),
            width_multiplier: 1.0,
            in_channels: 3,
            seg_classes: 2,
            num_classes: 2,
            seg_pretrained: None,
            cls_pretrained: None,
            imagenet_norm: false,
            dropout: 0.25,
        }
    }
}

/// `Option<PathBuf>` that reads `""` as `None`, so a file can switch off a preset's weights (TOML
/// has no null).
fn empty_path_is_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    Ok(s.filter(|s| !s.is_empty()).map(PathBuf::from))
}

/// Optimizers of both networks and the shared poly schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    pub seg: OptimizerConfig,
    pub cls: OptimizerConfig,
    /// lr(t) = lr·(1 − t/T)^power after each step; 0 = constant.
    pub poly_power: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            seg: OptimizerConfig::adam(1e-4),
            cls: OptimizerConfig::sgd(1e-4, 0.9, 1e-4),
            poly_power: 0.9,
        }
    }
}

/// One optimizer. Flat on purpose: every key exists for both kinds (Adam ignores `momentum` and
/// `nesterov`, SGD ignores `betas` and `eps`), so a file can switch `kind` without having to remove
/// the other kind's keys from a preset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerConfig {
    pub kind: OptimKind,
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub momentum: f64,
    pub nesterov: bool,
    /// L2 weight decay added to the gradient (PyTorch `weight_decay`).
    pub weight_decay: f64,
}

impl OptimizerConfig {
    /// PyTorch's Adam defaults at `lr`.
    pub fn adam(lr: f64) -> Self {
        OptimizerConfig {
            kind: OptimKind::Adam,
            lr,
            betas: [0.9, 0.999],
            eps: 1e-8,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    pub fn sgd(lr: f64, momentum: f64, weight_decay: f64) -> Self {
        OptimizerConfig {
            kind: OptimKind::Sgd,
            momentum,
            weight_decay,
            ..OptimizerConfig::adam(lr)
        }
    }
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::adam(1e-4)
    }
}

/// Hermes (spec §4–§5, §10, §13). Every component is a switch, which gives the ablation study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HermesConfig {
    /// `code` reproduces the released behaviour (except its crashes), `paper` fixes its bugs:
    /// contrast labels masked by conf AND certain, IAS attention on every classifier forward.
    pub mode: HermesMode,
    /// Filter pseudo-labels with the dual threshold; off = every pseudo-label is a target.
    pub dual_threshold: bool,
    /// Class-wise threshold range.
    pub t_min: f64,
    pub t_max: f64,
    /// How the Dice term combines the two thresholds (the code: `or`).
    pub seg_dice_keep: DiceKeep,
    /// `code` mode only: reproduce the indexing bug that blanks batch images 0 and 1 of the pixel
    /// contrast (spec §12.2), for bit-faithful runs.
    pub code_index_bug: bool,
    /// Image-level SupCon on the classifier.
    pub image_contrast: bool,
    /// Pixel-level contrast on the segmenter.
    pub pixel_contrast: bool,
    /// The contrastive terms run in 0-based epochs strictly after this one (the code's `e > 10`).
    pub contrast_after_epoch: u64,
    pub temperature: f64,
    pub base_temperature: f64,
    /// Pixel-contrast anchors per batch and per (image, class); a class needs more than
    /// `max_views` valid pixels of the 1/8-resolution embedding in an image to take part.
    pub max_samples: usize,
    pub max_views: usize,
    /// Per-class FIFO memory banks for both contrasts (paper Fig. 2; not in the code).
    pub memory_bank: bool,
    /// Entries per class of the pixel bank (segment-mean embeddings) — our choice, UGPCL uses 100–2000.
    pub pixel_bank_size: usize,
    /// Entries per class of the image bank — our choice.
    pub image_bank_size: usize,
    /// IAS attention: segmenter features re-weight classifier features.
    pub attention: bool,
    /// IAS saliency: the classifier's saliency map enters the segmenter decoder (off in the code).
    pub saliency: bool,
    pub saliency_fuse: SaliencyFuse,
    /// Inter-task consistency (cosine between the two global vectors).
    pub consistency: bool,
    /// ITC weight ρ(⌊t / itc_ramp_every⌋, itc_ramp_length).
    pub itc_ramp_every: u64,
    pub itc_ramp_length: u64,
    /// Loss_cls = cls_weight·(L_sup + unsup_weight·L_u + cls_contrast_weight·L_con).
    pub cls_weight: f64,
    /// Loss_seg = seg_weight·(L_sup + unsup_weight·L_u + seg_contrast_weight·L_con) + w_itc·L_itc.
    pub seg_weight: f64,
    pub cls_contrast_weight: f64,
    pub seg_contrast_weight: f64,
    pub unsup_weight: f64,
}

impl Default for HermesConfig {
    fn default() -> Self {
        HermesConfig {
            mode: HermesMode::Code,
            dual_threshold: true,
            t_min: 0.5,
            t_max: 0.95,
            seg_dice_keep: DiceKeep::Or,
            code_index_bug: false,
            image_contrast: true,
            pixel_contrast: true,
            contrast_after_epoch: 10,
            temperature: 0.07,
            base_temperature: 0.07,
            max_samples: 1024,
            max_views: 100,
            memory_bank: false,
            pixel_bank_size: 500,
            image_bank_size: 256,
            attention: true,
            saliency: false,
            saliency_fuse: SaliencyFuse::Quarter,
            consistency: true,
            itc_ramp_every: 100,
            itc_ramp_length: 40,
            cls_weight: 1.1,
            seg_weight: 0.5,
            cls_contrast_weight: 0.2,
            seg_contrast_weight: 0.8,
            unsup_weight: 0.1,
        }
    }
}

impl HermesConfig {
    /// The pixel-contrast mask of this mode (spec §13).
    pub fn contrast_keep(&self) -> ContrastKeep {
        match self.mode {
            HermesMode::Code => ContrastKeep::EntropyOnly,
            HermesMode::Paper => ContrastKeep::ConfAndCertain,
        }
    }
}

/// The Hermes code's settings (spec §10) with the `clean` protocol; what a file without a preset
/// starts from.
impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            preset: None,
            method: "hermes".into(),
            task: Task::Both,
            protocol: Protocol::Clean,
            seed: 0,
            steps: 3000,
            batch_labeled: 8,
            batch_unlabeled: 8,
            batch_eval: 8,
            image_size: 224,
            eval_every: 0,
            log_every: 10,
            checkpoint_every: 0,
            data: DataConfig::default(),
            model: ModelConfig::default(),
            optim: OptimConfig::default(),
            augment: AugmentConfig::default(),
            hermes: HermesConfig::default(),
            mean_teacher: MeanTeacherConfig::default(),
            fixmatch: FixMatchConfig::default(),
            cps: CpsConfig::default(),
            patchcl: PatchClConfig::default(),
            mlrpl: MlrplConfig::default(),
        }
    }
}

impl TrainConfig {
    /// A built-in preset; an unknown name is an error listing [`PRESETS`].
    pub fn preset(name: &str) -> Result<Self, ConfigError> {
        let mut cfg = match name {
            "hermes-paper" => TrainConfig {
                protocol: Protocol::Paper,
                ..TrainConfig::default()
            },
            "quickstart-cpu" => quickstart_cpu(),
            _ => {
                return Err(ConfigError::UnknownPreset {
                    name: name.to_string(),
                })
            }
        };
        cfg.preset = Some(name.to_string());
        Ok(cfg)
    }

    /// The augmentation settings the loader uses: `augment` with its size taken from `image_size`.
    pub fn augment_resolved(&self) -> AugmentConfig {
        AugmentConfig {
            resize: true,
            size: [self.image_size, self.image_size],
            ..self.augment.clone()
        }
    }

    /// Checks every value against [`METHODS`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_with(METHODS)
    }

    /// Checks every value; `methods` is the method registry's list of names. The error names the
    /// key (`optim.seg.lr`) and what is wrong.
    pub fn validate_with(&self, methods: &[&str]) -> Result<(), ConfigError> {
        self.check(methods)
            .map_err(|(key, message)| ConfigError::Invalid {
                at: "configuration".into(),
                key,
                message,
            })
    }
}

/// Small networks and images so that synth + train + eval finish in minutes on 2 CPU cores. The
/// step count, rates and contrast start are first guesses, to be tuned on the phantom.
fn quickstart_cpu() -> TrainConfig {
    let d = TrainConfig::default();
    TrainConfig {
        steps: 300,
        batch_labeled: 4,
        batch_unlabeled: 4,
        batch_eval: 8,
        image_size: 64,
        eval_every: 100,
        log_every: 10,
        model: ModelConfig {
            seg_backbone: "resnet18".into(),
            cls_backbone: "resnet18".into(),
            width_multiplier: 0.25,
            in_channels: 1,
            ..d.model
        },
        // Random initialisation, few steps: larger rates than the pretrained paper setting.
        optim: OptimConfig {
            seg: OptimizerConfig::adam(1e-3),
            cls: OptimizerConfig::sgd(1e-2, 0.9, 1e-4),
            poly_power: 0.9,
        },
        augment: AugmentConfig {
            size: [64, 64],
            ..AugmentConfig::default()
        },
        hermes: HermesConfig {
            // A few hundred steps are only a handful of epochs.
            contrast_after_epoch: 2,
            // IAS attention stays on, as in the code's cls_train (labeled batch only): about
            // +15–25% per step here, mostly the fuse conv at the stem's resolution.
            attention: true,
            // The pixel embedding is at 1/8 resolution: 8×8 = 64 pixels per 64² image, so a class
            // must cover more than `max_views` of them; 100 (the paper's, for 28×28) would never pass.
            max_views: 16,
            max_samples: 256,
            ..d.hermes
        },
        ..d
    }
}

#[cfg(test)]
mod tests;
