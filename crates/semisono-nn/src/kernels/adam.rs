//! Adam as one multi-threaded pass per parameter. Burn's `Adam` builds each update from ~13 tensor
//! ops (scale, add, square, sqrt, divide, ...), and flex runs each as its own single-threaded pass
//! over the parameter: in `perf` of the reference U-Net's training step they were most of the main
//! thread's serial time, with the other core idle. [`FusedAdam`] computes the same f32 operations,
//! in the same order, element by element ([`adam_update`]), so its parameters and moments are
//! bit-identical to Burn's, and it keeps Burn's state type (`AdamState`), so checkpoints are too.
//! Where the fused pass does not apply (not flex, not f32, AMSGrad) it runs Burn's `Adam`.

use burn::backend::tensor::FloatTensor;
use burn::backend::{BackendTensor, DispatchTensorKind, Flex};
use burn::optim::{Adam, AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::tensor::{DType, Device, Tensor, TensorData};
use rayon::prelude::*;

use super::conv_op::with_f32;
use super::zeroed;

/// Adam with Burn's semantics (`AdamConfig`: β₁, β₂, ε, optional L2 weight decay), fused.
#[derive(Clone)]
pub struct FusedAdam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: Option<f32>,
    /// Burn's Adam from the same config, for what the fused pass does not cover.
    burn: Adam,
}

impl FusedAdam {
    /// `weight_decay`: the L2 penalty added to the gradient (`grad + penalty·param`), as Burn's
    /// `WeightDecayConfig`.
    pub fn new(beta_1: f32, beta_2: f32, epsilon: f32, weight_decay: Option<f32>) -> Self {
        let burn = AdamConfig::new()
            .with_beta_1(beta_1)
            .with_beta_2(beta_2)
            .with_epsilon(epsilon)
            .with_weight_decay(weight_decay.map(burn::optim::decay::WeightDecayConfig::new))
            .build();
        Self {
            beta_1,
            beta_2,
            epsilon,
            weight_decay,
            burn,
        }
    }
}

/// The flex f32 tensor inside `t`, if it is one (a reference-counted handle, not a copy).
fn flex_f32<const D: usize>(t: &Tensor<D>) -> Option<FloatTensor<Flex>> {
    match t.clone().into_dispatch().kind {
        DispatchTensorKind::Flex(BackendTensor::Float(inner)) if inner.dtype() == DType::F32 => {
            Some(inner)
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// One Adam update of `param` in place of Burn's chain of tensor ops, with the same f32 operations
/// in the same order. `moments` = (m₁, m₂) before the step, `None` on the first step; `time` = the
/// step number after this one (1 on the first). Returns the new parameter, m₁ and m₂.
#[allow(clippy::too_many_arguments)]
pub fn adam_update(
    param: &[f32],
    grad: &[f32],
    moments: Option<(&[f32], &[f32])>,
    time: usize,
    lr: f32,
    [beta_1, beta_2, epsilon]: [f32; 3],
    weight_decay: Option<f32>,
) -> [Vec<f32>; 3] {
    const CHUNK: usize = 1 << 14;
    let n = param.len();
    let (factor_1, factor_2) = (1.0 - beta_1, 1.0 - beta_2);
    let time = time as i32;
    let bias_correction2_sqrt = (1.0 - beta_2.powi(time)).sqrt();
    let combined_factor = bias_correction2_sqrt / (1.0 - beta_1.powi(time));
    let eps = epsilon * bias_correction2_sqrt;
    let [mut p_out, mut m1_out, mut m2_out] = [0; 3].map(|_| zeroed::<f32>(n));
    p_out
        .par_chunks_mut(CHUNK)
        .zip(m1_out.par_chunks_mut(CHUNK))
        .zip(m2_out.par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(chunk, ((p_out, m1_out), m2_out))| {
            let at = chunk * CHUNK;
            for (i, ((p_new, m1_new), m2_new)) in (at..).zip(
                p_out
                    .iter_mut()
                    .zip(m1_out.iter_mut())
                    .zip(m2_out.iter_mut()),
            ) {
                let p = param[i];
                // WeightDecay::transform: tensor·penalty + grad.
                let g = match weight_decay {
                    Some(penalty) => p * penalty + grad[i],
                    None => grad[i],
                };
                let (m1, m2) = match moments {
                    Some((m1, m2)) => (
                        m1[i] * beta_1 + g * factor_1,
                        m2[i] * beta_2 + g * g * factor_2,
                    ),
                    None => (g * factor_1, g * g * factor_2),
                };
                let update = (m1 * combined_factor) / (m2.sqrt() + eps);
                *p_new = p - update * lr;
                *m1_new = m1;
                *m2_new = m2;
            }
        });
    [p_out, m1_out, m2_out]
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let momentum = state.as_ref().map(|s| &s.momentum);
        let flex = (
            flex_f32(&tensor),
            flex_f32(&grad),
            momentum.map(|m| (flex_f32(&m.moment_1), flex_f32(&m.moment_2))),
        );
        let amsgrad = momentum.is_some_and(|m| m.max_moment_2.is_some());
        let (Some(p), Some(g), moments) = flex else {
            return self.burn.step(lr, tensor, grad, state);
        };
        let moments = match moments {
            None => None,
            Some((Some(m1), Some(m2))) if !amsgrad => Some((m1, m2)),
            Some(_) => return self.burn.step(lr, tensor, grad, state),
        };
        let time = momentum.map_or(1, |m| m.time + 1);
        let hyper = [self.beta_1, self.beta_2, self.epsilon];
        let [p_new, m1, m2] = with_f32(&p, |p| {
            with_f32(&g, |g| match &moments {
                Some((m1, m2)) => with_f32(m1, |m1| {
                    with_f32(m2, |m2| {
                        adam_update(
                            p,
                            g,
                            Some((m1, m2)),
                            time,
                            lr as f32,
                            hyper,
                            self.weight_decay,
                        )
                    })
                }),
                None => adam_update(p, g, None, time, lr as f32, hyper, self.weight_decay),
            })
        });
        let (shape, device) = (tensor.shape(), tensor.device());
        let to_tensor = |values: Vec<f32>| {
            Tensor::<D>::from_data(TensorData::new(values, shape.clone()), &device)
        };
        let momentum = AdaptiveMomentumState::new(time, to_tensor(m1), to_tensor(m2));
        (to_tensor(p_new), Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        Adam::to_device(state, device)
    }
}
