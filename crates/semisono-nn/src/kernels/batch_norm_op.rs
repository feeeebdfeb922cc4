//! Batch norm as a Burn backend extension over [`super::batch_norm`]'s kernels. [`batch_norm`] is
//! what the networks call instead of `BatchNorm::forward`: same module, same running-statistics
//! update (Burn's: momentum 0.1, biased variance), but on flex the training forward is two read
//! passes and one write, its backward one read and one write, and inference one write, all
//! multi-threaded (Burn's generic op: two layout copies and ~10 single-threaded passes).
//!
//! Under gradient checkpointing (Burn's balanced strategy, the CPU training device) the training
//! batch norm is memory-bound: its output is not kept but recomputed in the backward from the
//! input and the forward's batch statistics (`RetroBatchNorm`), and its backward reads the input
//! through the checkpointer. Without checkpointing the checkpointer simply keeps the input.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::retro_forward::RetroForward;
use burn::backend::autodiff::checkpoint::state::BackwardStates;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex, TensorMetadata};
use burn::nn::BatchNorm;
use burn::tensor::{DType, Tensor, TensorData};

use super::batch_norm::{self as kernels, ChannelLayout};
use super::conv_op::{flex_tensor, on_flex, with_f32};

/// The custom ops; only flex and autodiff-over-flex implement them ([`batch_norm`] routes nothing
/// else here).
#[backend_extension(Flex, Autodiff)]
pub trait BatchNormBackend: Backend {
    /// Per-channel mean (row 0) and biased variance (row 1) of `x`, a `[2, channels]` tensor that
    /// is not differentiated.
    fn batch_statistics(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `(x − mean)/√(var + ε) · γ + β` with the batch's own `statistics`, differentiated as a
    /// training batch norm (through the statistics' dependence on `x`).
    fn batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        statistics: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;

    /// `x · scale[c] + shift[c]`: batch norm with fixed statistics folded into `scale`, `shift`.
    fn channel_affine(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

fn layout(x: &FloatTensor<Flex>) -> ChannelLayout {
    ChannelLayout::of(&x.shape().to_vec())
}

fn host(t: &FloatTensor<Flex>) -> Vec<f32> {
    with_f32(t, <[f32]>::to_vec)
}

/// The statistics tensor's rows: (mean, variance).
fn split_statistics(statistics: &FloatTensor<Flex>) -> (Vec<f32>, Vec<f32>) {
    let mut mean = host(statistics);
    let var = mean.split_off(mean.len() / 2);
    (mean, var)
}

impl BatchNormBackend for Flex {
    fn batch_statistics(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let layout = layout(&x);
        let (mut mean, var) = with_f32(&x, |values| kernels::statistics(layout, values));
        mean.extend(var);
        flex_tensor(mean, vec![2, layout.channels], &x)
    }

    fn batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        statistics: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let (mean, var) = split_statistics(&statistics);
        let (scale, shift) =
            kernels::normalizing_affine(&host(&gamma), &host(&beta), &mean, &var, epsilon as f32);
        affine(&x, &scale, &shift)
    }

    fn channel_affine(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        affine(&x, &host(&scale), &host(&shift))
    }
}

fn affine(x: &FloatTensor<Flex>, scale: &[f32], shift: &[f32]) -> FloatTensor<Flex> {
    let layout = layout(x);
    let y = with_f32(x, |values| {
        kernels::channel_affine(layout, values, scale, shift)
    });
    flex_tensor(y, x.shape().to_vec(), x)
}

/// Registers `(dx, d of the 2nd parent, d of the 3rd)` for the parents that need one.
fn register<S, const N: usize>(
    ops: &Ops<S, N>,
    grads: &mut Gradients,
    like: &FloatTensor<Flex>,
    (dx, d1, d2): (Vec<f32>, Vec<f32>, Vec<f32>),
) {
    let channels = d1.len();
    let shapes = [like.shape().to_vec(), vec![channels], vec![channels]];
    for ((parent, values), shape) in ops.parents.iter().zip([dx, d1, d2]).zip(shapes) {
        if let Some(node) = parent {
            grads.register::<Flex>(node.id, flex_tensor(values, shape, like));
        }
    }
}

#[derive(Debug)]
struct BatchNormTrainBackward;

/// The forward's input and γ through the checkpointer, the batch statistics and ε.
#[derive(Clone, Debug)]
struct TrainState {
    x: NodeId,
    gamma: NodeId,
    mean: Vec<f32>,
    var: Vec<f32>,
    epsilon: f32,
}

/// The forward rerun in the backward under gradient checkpointing, with the batch statistics of
/// the forward (the same values a rerun of the statistics would give).
#[derive(Debug)]
struct RetroBatchNorm {
    x: NodeId,
    gamma: NodeId,
    beta: NodeId,
    mean: Vec<f32>,
    var: Vec<f32>,
    epsilon: f32,
}

impl RetroForward for RetroBatchNorm {
    fn forward(&self, states: &mut BackwardStates, out_node: NodeId) {
        // Each parent read exactly once: the checkpointer counts the reads it expects.
        let x: FloatTensor<Flex> = states.get_state(&self.x);
        let gamma: FloatTensor<Flex> = states.get_state(&self.gamma);
        let beta: FloatTensor<Flex> = states.get_state(&self.beta);
        let (scale, shift) = kernels::normalizing_affine(
            &host(&gamma),
            &host(&beta),
            &self.mean,
            &self.var,
            self.epsilon,
        );
        states.save(out_node, affine(&x, &scale, &shift));
    }
}

impl Backward<Flex, 3> for BatchNormTrainBackward {
    type State = TrainState;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<Flex>(&ops.node);
        let s = &ops.state;
        let x: FloatTensor<Flex> = checkpointer.retrieve_node_output(s.x);
        let gamma = host(&checkpointer.retrieve_node_output::<FloatTensor<Flex>>(s.gamma));
        let grads_of = with_f32(&x, |xs| {
            with_f32(&dy, |dy| {
                kernels::train_backward(layout(&x), xs, dy, &gamma, &s.mean, &s.var, s.epsilon)
            })
        });
        register(&ops, grads, &x, grads_of);
    }
}

#[derive(Debug)]
struct ChannelAffineBackward;

impl Backward<Flex, 3> for ChannelAffineBackward {
    /// The forward's input and scale.
    type State = (FloatTensor<Flex>, FloatTensor<Flex>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, scale) = &ops.state;
        let scale = host(scale);
        let grads_of = with_f32(x, |xs| {
            with_f32(&dy, |dy| {
                kernels::affine_backward(layout(x), xs, dy, &scale)
            })
        });
        register(&ops, grads, x, grads_of);
    }
}

impl<C: CheckpointStrategy> BatchNormBackend for Autodiff<Flex, C> {
    fn batch_statistics(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let statistics = Flex::batch_statistics(x.primitive().clone());
        let device = x.primitive().device();
        let shape = statistics.shape().to_vec();
        Self::float_from_data(TensorData::new(host(&statistics), shape), &device)
    }

    fn batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        statistics: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let statistics = statistics.into_primitive();
        let (mean, var) = split_statistics(&statistics);
        let epsilon_f32 = epsilon as f32;
        let retro = RetroBatchNorm {
            x: x.id(),
            gamma: gamma.id(),
            beta: beta.id(),
            mean: mean.clone(),
            var: var.clone(),
            epsilon: epsilon_f32,
        };
        let prep = BatchNormTrainBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .memory_bound()
            .retro_forward(retro)
            .parents([&x, &gamma, &beta])
            .stateful();
        let forward = |x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>| {
            Flex::batch_norm_train(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                statistics.clone(),
                epsilon,
            )
        };
        match prep {
            OpsKind::Tracked(mut prep) => {
                let state = TrainState {
                    x: prep.checkpoint(&x),
                    gamma: prep.checkpoint(&gamma),
                    mean,
                    var,
                    epsilon: epsilon_f32,
                };
                prep.finish(state, forward(x, gamma, beta))
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x, gamma, beta)),
        }
    }

    fn channel_affine(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let prep = ChannelAffineBackward
            .prepare::<C>([x.node(), scale.node(), shift.node()])
            .compute_bound()
            .stateful();
        let state = (x.primitive().clone(), scale.primitive().clone());
        let y = Flex::channel_affine(
            x.into_primitive(),
            scale.into_primitive(),
            shift.into_primitive(),
        );
        match prep {
            OpsKind::Tracked(prep) => prep.finish(state, y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

/// `bn.forward(x)` for `x` of shape `[batch, channels, ...]`: with the batch's statistics (and the
/// running statistics updated as Burn does) on an autodiff device in training mode, with the
/// running statistics otherwise. The fused kernels on flex f32 tensors; Burn's `forward` elsewhere.
pub fn batch_norm<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    if x.dtype() != DType::F32 {
        return bn.forward(x);
    }
    let (channels, device) = (x.dims()[1], x.device());
    let training = device.is_autodiff() && bn.training.is_enabled();
    let x = x.into_dispatch();
    if !on_flex(&x) {
        return bn.forward(Tensor::from_dispatch(x));
    }
    let (gamma, beta) = (
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
    );
    if training {
        let statistics = <Dispatch as BatchNormBackend>::batch_statistics(x.clone());
        let rows = Tensor::<2>::from_dispatch(statistics.clone());
        let [mean, var] = [0, 1].map(|r| rows.clone().narrow(0, r, 1).reshape([channels]));
        let momentum = bn.momentum;
        let update = |running: Tensor<1>, batch: Tensor<1>| {
            running
                .to_device(&device)
                .mul_scalar(1.0 - momentum)
                .add(batch.mul_scalar(momentum))
                .detach()
        };
        bn.running_mean
            .update(update(bn.running_mean.value_sync(), mean));
        bn.running_var
            .update(update(bn.running_var.value_sync(), var));
        let y = <Dispatch as BatchNormBackend>::batch_norm_train(
            x, gamma, beta, statistics, bn.epsilon,
        );
        return Tensor::from_dispatch(y);
    }
    let (scale, shift) = eval_scale_shift(
        bn,
        Tensor::<1>::from_dispatch(gamma),
        Tensor::<1>::from_dispatch(beta),
    );
    let y = <Dispatch as BatchNormBackend>::channel_affine(
        x,
        scale.into_dispatch(),
        shift.into_dispatch(),
    );
    Tensor::from_dispatch(y)
}

/// BatchNorm with its running statistics as `x · scale[c] + shift[c]`, from `gamma` and `beta` (the
/// module's, or tensors derived from them): `scale = γ/√(var + ε)`, `shift = β − mean·scale`.
pub fn eval_scale_shift(
    bn: &BatchNorm,
    gamma: Tensor<1>,
    beta: Tensor<1>,
) -> (Tensor<1>, Tensor<1>) {
    let device = gamma.device();
    let mean = bn.running_mean.value().to_device(&device);
    let var = bn.running_var.value().to_device(&device);
    let scale = gamma.div(var.add_scalar(bn.epsilon).sqrt());
    let shift = beta.sub(mean.mul(scale.clone()));
    (scale, shift)
}
