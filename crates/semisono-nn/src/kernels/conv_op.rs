//! conv2d as a Burn backend extension: on `flex`, the forward and the input, weight and bias
//! gradients are [`super::conv2d`]'s GEMM kernels instead of flex's forward and Burn's generic
//! backward (a transposed convolution, and a convolution with the output gradient as the kernel;
//! 1.9x the forward for the weight gradient alone, docs/benchmarks.md).
//!
//! [`conv2d`] is the one entry point the networks use. The GEMM backward is the default
//! (`SEMISONO_CONV=stock` selects Burn's, see [`ConvBackward`]); it applies only where the kernels
//! do (a flex tensor, f32, groups 1, symmetric padding) and Burn's `conv2d` runs everywhere else.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::ops::{FloatTensorOps, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    backend_extension, Backend, Dispatch, DispatchTensor, DispatchTensorKind, Flex, TensorMetadata,
};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor, TensorData};

use super::conv2d::{self as gemm_conv, Activation, Conv2dGeom, Epilogue};
use super::profile::{self, ConvPass};

/// The custom op. Only flex and autodiff-over-flex implement it: [`conv2d`] never routes other
/// backends here. Two methods because the extension macro of Burn 0.22.1 does not route an
/// `Option` tensor argument.
#[backend_extension(Flex, Autodiff)]
pub trait GemmConvBackend: Backend {
    /// `conv2d(x, weight)` (no bias) whose backward runs the GEMM kernels.
    fn gemm_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;

    /// `conv2d(x, weight, bias)` whose backward runs the GEMM kernels.
    fn gemm_conv2d_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;
}

impl GemmConvBackend for Flex {
    fn gemm_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        forward(x, weight, None, options)
    }

    fn gemm_conv2d_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        forward(x, weight, Some(bias), options)
    }
}

/// Fewest output channels the GEMM forward takes: below it (the 1x1 segmentation head) the GEMM is
/// too thin and flex's own 1x1 path is faster (docs/benchmarks.md, per-op profile).
pub(super) const GEMM_FORWARD_MIN_C_OUT: usize = 8;

/// The forward on flex: [`gemm_conv::conv2d_forward`] where the kernels apply, flex's own conv2d
/// elsewhere.
fn forward(
    x: FloatTensor<Flex>,
    weight: FloatTensor<Flex>,
    bias: Option<FloatTensor<Flex>>,
    options: ConvOptions<2>,
) -> FloatTensor<Flex> {
    let geom = geometry(&x, &weight, bias.as_ref(), &options);
    forward_with(geom, x, weight, bias, options)
}

/// [`forward`] with the geometry already known (`None`: the kernels do not apply).
fn forward_with(
    geom: Option<Conv2dGeom>,
    x: FloatTensor<Flex>,
    weight: FloatTensor<Flex>,
    bias: Option<FloatTensor<Flex>>,
    options: ConvOptions<2>,
) -> FloatTensor<Flex> {
    let Some(geom) = geom.filter(|g| g.c_out >= GEMM_FORWARD_MIN_C_OUT) else {
        return Flex::conv2d(x, weight, bias, options);
    };
    gemm_forward(
        &geom,
        &x,
        &weight,
        None,
        bias.as_ref(),
        Activation::Identity,
    )
}

/// [`gemm_conv::conv2d_forward_with`] on flex tensors: `activation(conv·scale[c] + shift[c])`.
pub(super) fn gemm_forward(
    geom: &Conv2dGeom,
    x: &FloatTensor<Flex>,
    weight: &FloatTensor<Flex>,
    scale: Option<&FloatTensor<Flex>>,
    shift: Option<&FloatTensor<Flex>>,
    activation: Activation,
) -> FloatTensor<Flex> {
    let y = with_f32(x, |xs| {
        with_f32(weight, |w| {
            with_optional_f32(scale, |scale| {
                with_optional_f32(shift, |shift| {
                    let epilogue = Epilogue {
                        scale,
                        shift,
                        activation,
                    };
                    profile::timed(ConvPass::Forward, geom, || {
                        gemm_conv::conv2d_forward_with(geom, xs, w, &epilogue)
                    })
                })
            })
        })
    });
    let [ho, wo] = geom.out_hw();
    flex_tensor(y, vec![geom.batch, geom.c_out, ho, wo], x)
}

/// [`with_f32`] of an optional tensor.
fn with_optional_f32<R>(t: Option<&FloatTensor<Flex>>, f: impl FnOnce(Option<&[f32]>) -> R) -> R {
    match t {
        Some(t) => with_f32(t, |values| f(Some(values))),
        None => f(None),
    }
}

/// The backward of [`GemmConvBackend`]'s convolutions on flex; `N` = 2 (no bias) or 3 parents.
#[derive(Debug)]
struct GemmConvBackward<const N: usize>;

/// What the backward needs: the forward's input and weight through the checkpointer (kept, or
/// recomputed where gradient checkpointing marks the input's op memory-bound) and the geometry.
#[derive(Clone, Debug)]
struct GemmConvState {
    x: NodeId,
    weight: NodeId,
    geom: Conv2dGeom,
}

impl<const N: usize> Backward<Flex, N> for GemmConvBackward<N> {
    type State = GemmConvState;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<Flex>(&ops.node);
        let GemmConvState { x, weight, geom } = ops.state;
        let x: FloatTensor<Flex> = checkpointer.retrieve_node_output(x);
        let weight: FloatTensor<Flex> = checkpointer.retrieve_node_output(weight);
        let to_flex = |values: Vec<f32>, shape: Vec<usize>| flex_tensor(values, shape, &dy);
        let [x_shape, w_shape] = [&x, &weight].map(|t| t.shape().to_vec());
        with_f32(&dy, |dy| {
            if let Some(node) = &ops.parents[0] {
                let dx = profile::timed(ConvPass::InputGrad, &geom, || {
                    with_f32(&weight, |w| gemm_conv::conv2d_x_grad(&geom, w, dy))
                });
                grads.register::<Flex>(node.id, to_flex(dx, x_shape));
            }
            if let Some(node) = &ops.parents[1] {
                let dw = profile::timed(ConvPass::WeightGrad, &geom, || {
                    with_f32(&x, |x| gemm_conv::conv2d_w_grad(&geom, x, dy))
                });
                grads.register::<Flex>(node.id, to_flex(dw, w_shape));
            }
            if let Some(Some(node)) = ops.parents.get(2) {
                let db = profile::timed(ConvPass::BiasGrad, &geom, || {
                    gemm_conv::conv2d_b_grad(&geom, dy)
                });
                grads.register::<Flex>(node.id, to_flex(db, vec![geom.c_out]));
            }
        });
    }
}

/// A flex f32 tensor of `shape` holding `values`, on the device of `like`.
pub(super) fn flex_tensor(
    values: Vec<f32>,
    shape: Vec<usize>,
    like: &FloatTensor<Flex>,
) -> FloatTensor<Flex> {
    Flex::float_from_data(TensorData::new(values, shape), &like.device())
}

/// Runs `f` on the tensor's f32 values in row-major order, copying only a strided view.
pub(super) fn with_f32<R>(t: &FloatTensor<Flex>, f: impl FnOnce(&[f32]) -> R) -> R {
    match t.as_slice::<f32>() {
        Some(values) => f(values),
        None => f(t
            .to_contiguous()
            .as_slice::<f32>()
            .expect("a contiguous f32 flex tensor")),
    }
}

impl<C: CheckpointStrategy> GemmConvBackend for Autodiff<Flex, C> {
    fn gemm_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        tracked_conv2d::<C>(x, weight, None, options)
    }

    fn gemm_conv2d_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        tracked_conv2d::<C>(x, weight, Some(bias), options)
    }
}

/// [`forward`], registering [`GemmConvBackward`] where a gradient is needed.
fn tracked_conv2d<C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<Flex, C>>,
    weight: FloatTensor<Autodiff<Flex, C>>,
    bias: Option<FloatTensor<Autodiff<Flex, C>>>,
    options: ConvOptions<2>,
) -> FloatTensor<Autodiff<Flex, C>> {
    let geom = match geometry(
        x.primitive(),
        weight.primitive(),
        bias.as_ref().map(|b| b.primitive()),
        &options,
    ) {
        Some(geom) => geom,
        // Burn's own differentiable conv2d for what the kernels do not cover.
        None => return Autodiff::<Flex, C>::conv2d(x, weight, bias, options),
    };
    let forward = |x: FloatTensor<Autodiff<Flex, C>>,
                   weight: FloatTensor<Autodiff<Flex, C>>,
                   bias: Option<FloatTensor<Autodiff<Flex, C>>>| {
        forward_with(
            Some(geom),
            x.into_primitive(),
            weight.into_primitive(),
            bias.map(|b| b.into_primitive()),
            options,
        )
    };
    match bias {
        Some(bias) => match GemmConvBackward::<3>
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = GemmConvState {
                    x: prep.checkpoint(&x),
                    weight: prep.checkpoint(&weight),
                    geom,
                };
                prep.finish(state, forward(x, weight, Some(bias)))
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x, weight, Some(bias))),
        },
        None => match GemmConvBackward::<2>
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = GemmConvState {
                    x: prep.checkpoint(&x),
                    weight: prep.checkpoint(&weight),
                    geom,
                };
                prep.finish(state, forward(x, weight, None))
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x, weight, None)),
        },
    }
}

/// The kernels' geometry for this convolution, or `None` where they do not apply (not f32,
/// groups ≠ 1, asymmetric padding, not 4-D).
pub(super) fn geometry(
    x: &FloatTensor<Flex>,
    weight: &FloatTensor<Flex>,
    bias: Option<&FloatTensor<Flex>>,
    options: &ConvOptions<2>,
) -> Option<Conv2dGeom> {
    let all_f32 = [Some(x), Some(weight), bias]
        .into_iter()
        .flatten()
        .all(|t| t.dtype() == DType::F32);
    geometry_of(&x.shape(), &weight.shape(), all_f32, options)
}

/// [`geometry`] from the shapes of the input and the weight and whether every operand is f32.
pub(super) fn geometry_of(
    x_shape: &[usize],
    w_shape: &[usize],
    all_f32: bool,
    options: &ConvOptions<2>,
) -> Option<Conv2dGeom> {
    let (&[batch, c_in, h_in, w_in], &[c_out, w_c_in, kh, kw]) = (x_shape, w_shape) else {
        return None;
    };
    let symmetric = options.padding.iter().all(|(begin, end)| begin == end);
    if !all_f32 || options.groups != 1 || !symmetric || w_c_in != c_in {
        return None;
    }
    Some(Conv2dGeom {
        batch,
        c_in,
        h_in,
        w_in,
        c_out,
        kernel: [kh, kw],
        stride: options.stride,
        padding: options.padding.map(|(begin, _)| begin),
        dilation: options.dilation,
    })
}

/// Whether a dispatch tensor lives on flex (with or without autodiff).
pub(super) fn on_flex(t: &DispatchTensor) -> bool {
    match &t.kind {
        DispatchTensorKind::Flex(_) => true,
        DispatchTensorKind::Autodiff(inner) => matches!(**inner, DispatchTensorKind::Flex(_)),
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// Which backward a flex convolution runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvBackward {
    /// Burn's own (a transposed convolution and a swapped convolution).
    Stock,
    /// The GEMM kernels of [`super::conv2d`] through the backend extension: the default.
    Gemm,
}

impl ConvBackward {
    /// `SEMISONO_CONV=stock` selects [`ConvBackward::Stock`]; anything else (or unset) is
    /// [`ConvBackward::Gemm`]. Read once per process.
    pub fn from_env() -> Self {
        static CHOICE: std::sync::OnceLock<ConvBackward> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| match std::env::var("SEMISONO_CONV").as_deref() {
            Ok("stock") => ConvBackward::Stock,
            _ => ConvBackward::Gemm,
        })
    }
}

/// 2-D convolution, differentiable, with the backward [`ConvBackward::from_env`] selects. Same
/// arguments and result as `burn::tensor::module::conv2d`.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    conv2d_with(x, weight, bias, options, ConvBackward::from_env())
}

/// [`conv2d`] with an explicit backward; [`ConvBackward::Gemm`] applies on flex tensors only (Burn's
/// `conv2d` elsewhere).
pub fn conv2d_with(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
    backward: ConvBackward,
) -> Tensor<4> {
    let x = x.into_dispatch();
    if backward == ConvBackward::Stock || !on_flex(&x) {
        return burn::tensor::module::conv2d(Tensor::from_dispatch(x), weight, bias, options);
    }
    let weight = weight.into_dispatch();
    Tensor::from_dispatch(match bias {
        Some(bias) => <Dispatch as GemmConvBackend>::gemm_conv2d_bias(
            x,
            weight,
            bias.into_dispatch(),
            options,
        ),
        None => <Dispatch as GemmConvBackend>::gemm_conv2d(x, weight, options),
    })
}
