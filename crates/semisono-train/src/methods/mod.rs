//! Semi-supervised methods behind one trait, and the registry that builds them by name
//! (ARCHITECTURE §4).
//!
//! A method owns its networks and their optimizers. The trainer hands it one [`TrainBatch`] per
//! step and gets back the named loss values for logging; evaluation asks it for probabilities on a
//! plain (non-autodiff) device; checkpoints ask it to save and load its whole state (models,
//! optimizer records, method state) in a directory.

mod common;
pub mod cps;
pub mod ema;
pub mod fixmatch;
pub mod hermes;
pub mod mean_teacher;
pub mod mlrpl;
pub mod patchcl;
pub mod supervised;

use std::path::Path;

use burn::tensor::{Device, Tensor};

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::loader::{ImageBatch, TrainBatch};

pub use common::{images_tensor, step_seed};

/// Methods the registry can build now (a subset of [`crate::config::METHODS`]).
pub const REGISTERED: &[&str] = &[
    "supervised",
    "hermes",
    "patchcl",
    "mlrpl",
    "mean-teacher",
    "fixmatch",
    "cps",
];

/// What a step may need besides its batch.
#[derive(Clone, Debug, Default)]
pub struct StepContext {
    /// Test hook: add NaN to the first total loss of this step, to exercise the non-finite stop.
    #[doc(hidden)]
    pub inject_nan: bool,
}

/// Named values of one step: `losses` are loss terms (checked for NaN/inf before any update);
/// `stats` are diagnostics (learning rates, keep fractions, ramp weights).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepLosses {
    pub losses: Vec<(&'static str, f64)>,
    pub stats: Vec<(&'static str, f64)>,
}

impl StepLosses {
    /// The value of a loss term or statistic by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.losses
            .iter()
            .chain(&self.stats)
            .find(|(n, _)| *n == name)
            .map(|&(_, v)| v)
    }
}

/// Probabilities of one batch, on the evaluation device (no autodiff).
#[derive(Clone, Debug)]
pub struct Predictions {
    /// Softmax over the segmentation classes, `[N, C, H, W]`; `None` without a segmenter.
    pub seg_probs: Option<Tensor<4>>,
    /// Softmax over the image classes, `[N, K]`; `None` without a classifier.
    pub cls_probs: Option<Tensor<2>>,
}

/// The process-wide lock every autodiff step, saliency map and model construction holds, so that
/// trainings running side by side in one process (the test harness, a library user's threads)
/// take turns. Why: Burn 0.22.1 keeps all autodiff graphs in one registry, and a `backward` on
/// one thread can free graph steps another thread is still building (tracel-ai/burn#5573): the
/// other training then loses gradients or ends with NaN weights. Its RNG is process-wide too, so
/// the seed and the draws it serves must not interleave with another training's. Re-entrant: the
/// trainer holds it across the per-step seed and [`SslMethod::step`].
pub fn exclusive() -> parking_lot::ReentrantMutexGuard<'static, ()> {
    static LOCK: parking_lot::ReentrantMutex<()> = parking_lot::ReentrantMutex::new(());
    LOCK.lock()
}

/// One semi-supervised method.
pub trait SslMethod {
    /// The registry name.
    fn name(&self) -> &'static str;

    /// One optimisation step on `batch` (its `step` is the 1-based global step). Returns the loss
    /// values; a non-finite loss is an error and leaves every weight untouched. Holds
    /// [`exclusive`] throughout.
    fn step(&mut self, batch: &TrainBatch, ctx: &StepContext) -> Result<StepLosses> {
        let _one_graph_at_a_time = exclusive();
        self.run_step(batch, ctx)
    }

    /// What [`step`](Self::step) does, called with [`exclusive`] held.
    fn run_step(&mut self, batch: &TrainBatch, ctx: &StepContext) -> Result<StepLosses>;

    /// Probabilities for `images` with the networks in evaluation mode (BN running statistics,
    /// no dropout, no autodiff).
    fn eval_forward(&self, images: &ImageBatch) -> Predictions;

    /// The classifier's vanilla saliency map `[N, H, W]` for `images` (eval mode); `None` without a
    /// classifier. Holds [`exclusive`] (it runs a backward).
    fn saliency(&self, images: &ImageBatch) -> Option<Tensor<3>> {
        let _one_graph_at_a_time = exclusive();
        self.compute_saliency(images)
    }

    /// What [`saliency`](Self::saliency) does, called with [`exclusive`] held.
    fn compute_saliency(&self, images: &ImageBatch) -> Option<Tensor<3>>;

    /// Writes the whole state into the existing directory `dir`.
    fn save(&self, dir: &Path) -> Result<()>;

    /// Restores the state written by [`save`](Self::save) into this (freshly built) method.
    fn load(&mut self, dir: &Path) -> Result<()>;
}

/// Compute devices by name: `cpu` (Burn's pure-Rust `flex` backend) always; `cuda` and `wgpu`
/// when the binary is built with the Cargo features of the same names.
pub const DEVICES: &[&str] = &[
    "cpu",
    #[cfg(feature = "cuda")]
    "cuda",
    #[cfg(feature = "wgpu")]
    "wgpu",
];

static DEVICE_NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Chooses the device [`default_device`] returns for the rest of the process (the CLI's
/// `--device`); fails for a name this build does not have. Without it, the environment variable
/// `SEMISONO_DEVICE` decides, else `cpu`.
pub fn select_device(name: &str) -> Result<()> {
    device_by_name(name)?;
    let _ = DEVICE_NAME.set(name.to_string());
    Ok(())
}

/// The autodiff device called `name` (see [`DEVICES`]).
pub fn device_by_name(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(cpu_device()),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(0).autodiff()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice).autodiff()),
        other => Err(TrainError::config(
            "device",
            format!(
                "{other:?} is not a device of this build (it has: {}); GPU backends need a build \
                 with `--features cuda` or `--features wgpu` (docs/gpu.md)",
                DEVICES.join(", ")
            ),
        )),
    }
}

/// The CPU training device: flex under autodiff with gradient checkpointing (Burn's balanced
/// strategy), so that BatchNorm, ReLU, concatenations, up-sampling and dropout are recomputed in
/// the backward instead of kept: the paper-size Hermes step peaked at 5.6 GB instead of 11.0 GB in
/// the same time (docs/benchmarks.md). `SEMISONO_CHECKPOINTING=0` keeps every activation instead (for
/// comparisons); the weights come out bit-identical either way.
pub fn cpu_device() -> Device {
    let autodiff = Device::flex().autodiff();
    match std::env::var("SEMISONO_CHECKPOINTING").as_deref() {
        Ok("0") => autodiff,
        _ => autodiff.gradient_checkpointing(),
    }
}

/// The device runs train, evaluate and predict on: the one chosen by [`select_device`], else
/// `$SEMISONO_DEVICE`, else the CPU. An unknown `$SEMISONO_DEVICE` falls back to the CPU with a
/// warning, because this function cannot fail; `select_device` is the checked path.
pub fn default_device() -> Device {
    let name = DEVICE_NAME
        .get()
        .cloned()
        .or_else(|| std::env::var("SEMISONO_DEVICE").ok())
        .unwrap_or_else(|| "cpu".into());
    device_by_name(&name).unwrap_or_else(|e| {
        eprintln!("warning: {e}; using the CPU");
        cpu_device()
    })
}

/// Builds the method `cfg.method` on `device` (an autodiff device). Seeds the device with
/// `cfg.seed` first, so initial weights are repeatable.
pub fn create(cfg: &TrainConfig, device: &Device) -> Result<Box<dyn SslMethod>> {
    let _repeatable_init = exclusive();
    device.seed(cfg.seed);
    match cfg.method.as_str() {
        "supervised" => Ok(Box::new(supervised::Supervised::new(cfg, device)?)),
        "hermes" => Ok(Box::new(hermes::Hermes::new(cfg, device)?)),
        "patchcl" => Ok(Box::new(patchcl::PatchCl::new(cfg, device)?)),
        "mlrpl" => Ok(Box::new(mlrpl::Mlrpl::new(cfg, device)?)),
        "mean-teacher" => Ok(Box::new(mean_teacher::MeanTeacher::new(cfg, device)?)),
        "fixmatch" => Ok(Box::new(fixmatch::FixMatch::new(cfg, device)?)),
        "cps" => Ok(Box::new(cps::Cps::new(cfg, device)?)),
        other => Err(TrainError::UnknownMethod {
            name: other.to_string(),
            valid: REGISTERED.join(", "),
        }),
    }
}
