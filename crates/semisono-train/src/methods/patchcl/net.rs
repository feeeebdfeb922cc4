//! PatchCL's network (specs/patchcl.md §2, §11): any semisono segmenter (here [`SegModel`]) plus a
//! patch embedding head on its deepest encoder feature, the consistency term (§12.7), the
//! optimizers of the two phases and checkpoint files of single modules.

use std::collections::HashMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, ModuleOptimizer, SgdConfig};
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Tensor};
use semisono_nn::losses::pixel_cross_entropy;
use semisono_nn::nets::heads::global_avg_pool;
use semisono_nn::nets::SegModel;
use semisono_nn::ops::l2_normalize;

use crate::config::{OptimKind, OptimizerConfig};
use crate::error::{Result, TrainError};

/// The projection head of contrast mode: `Linear → BN1d → ReLU → Linear → BN1d`, then L2 (the
/// code: 2048 → 2048 → 128 on ResNet-101; here encoder width → encoder width → `dim`).
#[derive(Module, Debug)]
pub struct PatchHead {
    pub fc1: Linear,
    pub bn1: BatchNorm,
    pub fc2: Linear,
    pub bn2: BatchNorm,
}

impl PatchHead {
    pub fn new(input: usize, dim: usize, device: &Device) -> Self {
        PatchHead {
            fc1: LinearConfig::new(input, input).init(device),
            bn1: BatchNormConfig::new(input).init(device),
            fc2: LinearConfig::new(input, dim).init(device),
            bn2: BatchNormConfig::new(dim).init(device),
        }
    }

    /// `[N, input] → [N, dim]`, unit rows. BN uses batch statistics in training, so give it at
    /// least 2 rows there.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = relu(self.bn1.forward(self.fc1.forward(x)));
        l2_normalize(self.bn2.forward(self.fc2.forward(h)), 1, 1e-12)
    }
}

/// Student or teacher: the segmenter and the patch head.
#[derive(Module, Debug)]
pub struct PatchNet {
    pub seg: SegModel,
    pub head: PatchHead,
}

impl PatchNet {
    pub fn new(seg: SegModel, dim: usize, device: &Device) -> Self {
        let [.., c3, c4] = seg.encoder.channels();
        let width = if seg.encoder.has_last_stage() { c4 } else { c3 };
        PatchNet {
            head: PatchHead::new(width, dim, device),
            seg,
        }
    }

    /// Contrast mode: patches `[N, C, P, P]` → encoder → GAP of the deepest feature → head.
    pub fn embed(&self, patches: Tensor<4>) -> Tensor<2> {
        let f = self.seg.encoder.forward_features(patches);
        let deepest = f.layer4.unwrap_or(f.layer3);
        self.head.forward(global_avg_pool(deepest))
    }
}

/// The BN running statistics of a module (its float tensors without gradient), by parameter id:
/// taken before the student's patch forward and put back after it, so that the encoder's
/// statistics (what evaluation normalises with) come from whole images only.
pub struct EncoderBnStats(HashMap<ParamId, Tensor<1>>);

impl EncoderBnStats {
    pub fn take<M: Module>(m: &M) -> Self {
        // Pending updates of this step's image forwards are folded in first (and kept).
        let _ = m.valid();
        let mut c = CollectStats(HashMap::new());
        m.visit(&mut c);
        EncoderBnStats(c.0)
    }

    /// Writes the saved values back. Running statistics live behind shared handles, so mapping a
    /// clone of `m` writes into `m` itself; the clone's parameters are dropped.
    pub fn restore<M: Module>(self, m: &M) {
        let _ = m.valid();
        let _ = m.clone().map(&mut RestoreStats(self.0));
    }
}

struct CollectStats(HashMap<ParamId, Tensor<1>>);

impl ModuleVisitor for CollectStats {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        if !t.is_require_grad() {
            let n = t.shape().num_elements();
            self.0.insert(param.id, t.reshape([n]).detach());
        }
    }
}

struct RestoreStats(HashMap<ParamId, Tensor<1>>);

impl ModuleMapper for RestoreStats {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        match self.0.remove(&param.id) {
            Some(saved) => {
                let shape = param.val().shape();
                Param::initialized(param.id, saved.reshape(shape))
            }
            None => param,
        }
    }
}

/// The phase-2 consistency between student logits and the teacher's probabilities (a constant),
/// both `[N, C, H, W]` (§12.7): the mean over pixels × classes of the squared softmax difference,
/// or (`ce`) the mean pixel cross-entropy against the teacher's argmax (ties to the lowest class).
pub fn consistency_loss(
    student_logits: Tensor<4>,
    teacher_probs: Tensor<4>,
    ce: bool,
) -> Tensor<1> {
    let teacher_probs = teacher_probs.detach();
    if ce {
        let target = teacher_probs.argmax(1).squeeze_dim::<3>(1);
        pixel_cross_entropy(student_logits, target, None).mean
    } else {
        let d = softmax(student_logits, 1) - teacher_probs;
        (d.clone() * d).mean()
    }
}

/// An optimizer from its configuration (the same mapping as the other methods': PyTorch SGD has
/// dampening 0, Burn's momentum defaults to 0.1).
pub fn optimizer(o: &OptimizerConfig) -> ModuleOptimizer {
    let decay = (o.weight_decay > 0.0).then(|| WeightDecayConfig::new(o.weight_decay as f32));
    match o.kind {
        OptimKind::Adam => AdamConfig::new()
            .with_beta_1(o.betas[0] as f32)
            .with_beta_2(o.betas[1] as f32)
            .with_epsilon(o.eps as f32)
            .with_weight_decay(decay)
            .init(),
        OptimKind::Sgd => SgdConfig::new()
            .with_weight_decay(decay)
            .with_momentum((o.momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(o.momentum)
                    .with_dampening(0.0)
                    .with_nesterov(o.nesterov)
            }))
            .init(),
    }
}

/// Writes `m` to `path`. `valid()` first syncs the BN running statistics (a pending update is
/// otherwise missing from the file and a resumed run would diverge).
pub fn save_module<M: Module>(m: &M, path: &Path) -> Result<()> {
    let _ = m.valid();
    let mut store = BurnpackStore::from_file(path)
        .auto_extension(false)
        .overwrite(true);
    m.save_into(&mut store)
        .map_err(|e| TrainError::io(path, format!("saving weights: {e:?}")))
}

/// Restores `m` from `path`; a missing or unfitting file is an error of the run directory.
pub fn load_module<M: Module>(m: &mut M, path: &Path) -> Result<()> {
    let fail = |message: String| TrainError::RunDir {
        path: path.to_path_buf(),
        message,
    };
    if !path.is_file() {
        return Err(fail("missing from the checkpoint".into()));
    }
    let mut store = BurnpackStore::from_file(path).auto_extension(false);
    let r = m.load_from(&mut store).map_err(|e| {
        let text = e.to_string();
        let cut = text.char_indices().nth(300).map_or(text.len(), |(i, _)| i);
        fail(format!(
            "cannot load these weights ({}); the checkpoint was written with another \
             architecture, width or patchcl.embedding_dim, or is damaged",
            &text[..cut]
        ))
    })?;
    if !r.errors.is_empty() || !r.missing.is_empty() {
        return Err(fail(format!(
            "the checkpoint does not fit the configured network ({} tensors missing, {} errors)",
            r.missing.len(),
            r.errors.len()
        )));
    }
    Ok(())
}

/// Saves an optimizer's state.
pub fn save_optimizer(o: &ModuleOptimizer, path: &Path) -> Result<()> {
    o.save(path)
        .map_err(|e| TrainError::io(path, format!("{e:?}")))
}

/// Loads an optimizer's state into a fresh one built from `cfg`.
pub fn load_optimizer(cfg: &OptimizerConfig, path: &Path) -> Result<ModuleOptimizer> {
    optimizer(cfg)
        .load(path)
        .map_err(|e| TrainError::io(path, format!("optimizer state: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running_mean(bn: &BatchNorm) -> Vec<f32> {
        bn.running_mean
            .value_sync()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    }

    /// A train-mode forward moves the running mean; taken before and restored after, it is back.
    #[test]
    fn bn_statistics_are_restored_after_a_forward() {
        let d = Device::flex().autodiff();
        let bn = BatchNormConfig::new(2).init(&d);
        let x = || Tensor::<2>::from_data([[1.0f32, 2.0], [3.0, 6.0]], &d);
        let saved = EncoderBnStats::take(&bn);
        let _ = bn.forward(x());
        saved.restore(&bn);
        assert_eq!(running_mean(&bn), vec![0.0, 0.0]);
        // Without the restore the forward does move it (so the test above can fail).
        let _ = bn.forward(x());
        assert_eq!(running_mean(&bn), vec![0.2, 0.4]);
    }
}
