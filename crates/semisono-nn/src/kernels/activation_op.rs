//! Leaky ReLU as a Burn backend extension. Burn's autodiff builds it from a comparison, a scaled
//! copy and a `mask_where`, and differentiates those (two more `mask_where` and a scale): flex runs
//! each on one thread (`mask_where` was 6.8% of the reference U-Net's training step in `perf`,
//! docs/benchmarks.md). Here the forward is flex's own leaky ReLU and the backward one pass over
//! all cores, `dx = x ≥ 0 ? dy : slope·dy` (Burn's convention at 0).
//!
//! Under gradient checkpointing both are memory-bound: their outputs are recomputed in the
//! backward from their inputs instead of kept, so a convolution -> BatchNorm -> ReLU keeps only the
//! convolution's output (two activations per layer otherwise, as in PyTorch).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::ops::ActivationOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex, TensorMetadata};
use burn::tensor::{DType, Tensor};

use super::conv_op::{flex_tensor, on_flex, with_f32};
use super::{checkpointing, collect_runs, RetroUnary};

/// The custom op; only flex and autodiff-over-flex implement it ([`leaky_relu`] routes nothing
/// else here).
#[backend_extension(Flex, Autodiff)]
pub trait LeakyReluBackend: Backend {
    /// `leaky_relu(x, slope)` whose backward is one multi-threaded pass.
    fn fused_leaky_relu(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self>;

    /// `relu(x)`, forward and backward each one multi-threaded pass (flex runs both on one
    /// thread: ~65 ms of the reference U-Net's training step in `bench --ops`).
    fn fused_relu(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl LeakyReluBackend for Flex {
    fn fused_leaky_relu(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
        Flex::leaky_relu(x, slope.into())
    }

    fn fused_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        if x.dtype() != DType::F32 {
            return Flex::relu(x);
        }
        let shape = x.shape().to_vec();
        let y = with_f32(&x, |x| {
            map_runs(x.len(), |span| x[span].iter().map(|&v| relu_value(v)))
        });
        flex_tensor(y, shape, &x)
    }
}

/// Flex's (and PyTorch's) ReLU of one value: NaN propagates (`f32::max` would map it to 0).
#[inline]
pub(crate) fn relu_value(v: f32) -> f32 {
    if v.is_nan() || v > 0.0 {
        v
    } else {
        0.0
    }
}

/// Element-wise ops in parallel runs of [`RUN`] values: `values(span)` yields the outputs of the
/// inputs in `span`.
fn map_runs<I: Iterator<Item = f32>>(
    len: usize,
    values: impl Fn(std::ops::Range<usize>) -> I + Sync,
) -> Vec<f32> {
    collect_runs(len, RUN, 1, |run| {
        values(run * RUN..((run + 1) * RUN).min(len))
    })
}

const RUN: usize = 1 << 15;

#[derive(Debug)]
struct ReluBackward;

/// What ReLU's backward reads its mask from: the output (shared, not copied), or with gradient
/// checkpointing the input through the checkpointer (then ReLU is recomputed, not kept: the next
/// convolution's saved input is the only copy, and it is recomputed too).
#[derive(Clone, Debug)]
enum ReluState {
    Output(FloatTensor<Flex>),
    Input(NodeId),
}

impl Backward<Flex, 1> for ReluBackward {
    type State = ReluState;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<Flex>(&ops.node);
        // Input and output are positive (or NaN) at the same places.
        let y: FloatTensor<Flex> = match ops.state {
            ReluState::Output(y) => y,
            ReluState::Input(x) => checkpointer.retrieve_node_output(x),
        };
        if let Some(node) = &ops.parents[0] {
            let shape = y.shape().to_vec();
            // Flex's relu_backward: the gradient where the output is positive or NaN.
            let dx = with_f32(&y, |y| {
                with_f32(&dy, |dy| {
                    map_runs(y.len(), |span| {
                        (y[span.clone()].iter()).zip(&dy[span]).map(|(&y, &g)| {
                            if y.is_nan() || y > 0.0 {
                                g
                            } else {
                                0.0
                            }
                        })
                    })
                })
            });
            grads.register::<Flex>(node.id, flex_tensor(dx, shape, &dy));
        }
    }
}

#[derive(Debug)]
struct LeakyReluBackward;

impl Backward<Flex, 1> for LeakyReluBackward {
    /// The forward's input through the checkpointer, and the slope.
    type State = (NodeId, f32);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, slope) = ops.state;
        let x: FloatTensor<Flex> = checkpointer.retrieve_node_output(x);
        if let Some(node) = &ops.parents[0] {
            let shape = x.shape().to_vec();
            let dx = with_f32(&x, |x| with_f32(&dy, |dy| leaky_relu_grad(x, dy, slope)));
            let dx = flex_tensor(dx, shape, &dy);
            grads.register::<Flex>(node.id, dx);
        }
    }
}

/// `dx[i] = x[i] ≥ 0 ? dy[i] : slope·dy[i]`, in parallel chunks.
fn leaky_relu_grad(x: &[f32], dy: &[f32], slope: f32) -> Vec<f32> {
    map_runs(x.len(), |span| {
        (x[span.clone()].iter())
            .zip(&dy[span])
            .map(move |(&x, &g)| if x >= 0.0 { g } else { slope * g })
    })
}

impl<C: CheckpointStrategy> LeakyReluBackend for Autodiff<Flex, C> {
    fn fused_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        if x.primitive().dtype() != DType::F32 {
            return Autodiff::<Flex, C>::relu(x);
        }
        if !checkpointing::<C>() {
            return match ReluBackward
                .prepare::<C>([x.node()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => {
                    let y = Flex::fused_relu(x.into_primitive());
                    prep.finish(ReluState::Output(y.clone()), y)
                }
                OpsKind::UnTracked(prep) => prep.finish(Flex::fused_relu(x.into_primitive())),
            };
        }
        match ReluBackward
            .prepare::<C>([x.node()])
            .memory_bound()
            .retro_forward(RetroUnary {
                input: x.id(),
                op: Flex::fused_relu,
            })
            .parents([&x])
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let input = prep.checkpoint(&x);
                prep.finish(
                    ReluState::Input(input),
                    Flex::fused_relu(x.into_primitive()),
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fused_relu(x.into_primitive())),
        }
    }

    fn fused_leaky_relu(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
        if x.primitive().dtype() != DType::F32 {
            return Autodiff::<Flex, C>::leaky_relu(x, slope.into());
        }
        match LeakyReluBackward
            .prepare::<C>([x.node()])
            .memory_bound()
            .retro_forward(RetroUnary {
                input: x.id(),
                op: move |x| Flex::leaky_relu(x, slope.into()),
            })
            .parents([&x])
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), slope as f32);
                prep.finish(state, Flex::leaky_relu(x.into_primitive(), slope.into()))
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(Flex::leaky_relu(x.into_primitive(), slope.into()))
            }
        }
    }
}

/// ReLU, differentiable: the multi-threaded passes on flex, Burn's `relu` elsewhere.
pub fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let x = x.into_dispatch();
    if !on_flex(&x) {
        return burn::tensor::activation::relu(Tensor::from_dispatch(x));
    }
    Tensor::from_dispatch(<Dispatch as LeakyReluBackend>::fused_relu(x))
}

/// Leaky ReLU, differentiable: the fused backward on flex, Burn's `leaky_relu` elsewhere.
pub fn leaky_relu<const D: usize>(x: Tensor<D>, slope: f64) -> Tensor<D> {
    let x = x.into_dispatch();
    if !on_flex(&x) {
        return burn::tensor::activation::leaky_relu(Tensor::from_dispatch(x), slope);
    }
    Tensor::from_dispatch(<Dispatch as LeakyReluBackend>::fused_leaky_relu(x, slope))
}
