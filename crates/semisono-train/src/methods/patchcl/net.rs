//! PatchCL's network (specs/patchcl.md §2, §11): any semisono segmenter (here [`SegModel`]) plus a
//! patch embedding head on its deepest encoder feature, the consistency term (§12.7), the
//! BN-statistics guard of the student's patch forward.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use semisono_nn::kernels::activation_op::relu;
use semisono_nn::losses::pixel_cross_entropy;
use semisono_nn::nets::heads::global_avg_pool;
use semisono_nn::nets::{batch_norm, SegModel};
use semisono_nn::ops::l2_normalize;

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
        let h = relu(batch_norm(&self.bn1, self.fc1.forward(x)));
        l2_normalize(batch_norm(&self.bn2, self.fc2.forward(h)), 1, 1e-12)
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
