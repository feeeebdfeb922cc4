//! 2-D max pooling (the ResNet/Res2Net stem's 3x3/2) as a Burn backend extension. Flex runs it as
//! a 3-D pool with per-element window arithmetic and i64 indices (22 ms forward for 8x64x64² in
//! `bench --ops`); here one pass per plane keeps the argmax as a u32 plane offset, and the
//! backward adds `dy` at those offsets. Ties go to the first maximum in the window and NaN wins,
//! as in flex and PyTorch.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex, TensorMetadata};
use burn::nn::pool::MaxPool2d;
use burn::nn::PaddingConfig2d;
use burn::tensor::{DType, Tensor};
use rayon::prelude::*;

use super::conv_op::{flex_tensor, on_flex, with_f32};
use super::zeroed;

/// One max pool: `planes` images × channels of `input` pixels, window `kernel`, `stride` and
/// `padding` per axis (padded pixels never win), dilation 1, floor mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    pub planes: usize,
    pub input: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
}

impl Pool {
    pub fn output(&self) -> [usize; 2] {
        [0, 1].map(|a| (self.input[a] + 2 * self.padding[a] - self.kernel[a]) / self.stride[a] + 1)
    }

    /// The input range along axis `a` of the window of output index `o`.
    fn window(&self, a: usize, o: usize) -> std::ops::Range<usize> {
        let start = (o * self.stride[a]) as isize - self.padding[a] as isize;
        let end = (start + self.kernel[a] as isize).min(self.input[a] as isize);
        start.max(0) as usize..end.max(0) as usize
    }
}

/// Max values and their offsets within the input plane. Separable: per output row, a vertical pass
/// over the window's rows keeps each input column's best value and its offset (element-wise, so it
/// vectorises), then each output takes the best of its window's columns. Offsets grow in row-major
/// order, so "first maximum in the window" = the smallest offset among equal values and "last NaN"
/// = the largest offset among NaNs: the same result as a row-major scan (flex, PyTorch).
pub fn max_pool_forward(p: Pool, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
    let ([h, w], [ho, wo]) = (p.input, p.output());
    let mut y = zeroed::<f32>(p.planes * ho * wo);
    let mut arg = zeroed::<u32>(p.planes * ho * wo);
    let rows: Vec<_> = (0..ho).map(|o| p.window(0, o)).collect();
    let cols: Vec<_> = (0..wo).map(|o| p.window(1, o)).collect();
    y.par_chunks_mut(ho * wo)
        .zip(arg.par_chunks_mut(ho * wo))
        .zip(x.par_chunks(h * w))
        .for_each_init(
            || (vec![0f32; w], vec![0u32; w]),
            |(col_best, col_at), ((y, arg), x)| {
                for (oi, r) in rows.iter().enumerate() {
                    let first = &x[r.start * w..][..w];
                    col_best.copy_from_slice(first);
                    col_at
                        .iter_mut()
                        .zip((r.start * w) as u32..)
                        .for_each(|(a, k)| *a = k);
                    for i in r.start + 1..r.end {
                        let row = &x[i * w..][..w];
                        let offsets = (i * w) as u32..;
                        for (((b, a), &v), k) in col_best
                            .iter_mut()
                            .zip(col_at.iter_mut())
                            .zip(row)
                            .zip(offsets)
                        {
                            // Selects, not branches: random activations mispredict.
                            let take = v > *b || v.is_nan();
                            *b = if take { v } else { *b };
                            *a = if take { k } else { *a };
                        }
                    }
                    let (y_row, arg_row) = (&mut y[oi * wo..][..wo], &mut arg[oi * wo..][..wo]);
                    for ((out, out_at), c) in y_row.iter_mut().zip(arg_row.iter_mut()).zip(&cols) {
                        let (mut best, mut at) = (col_best[c.start], col_at[c.start]);
                        for (&v, &k) in col_best[c.clone()].iter().zip(&col_at[c.clone()]).skip(1) {
                            let take = if v.is_nan() {
                                !best.is_nan() || k > at
                            } else {
                                v > best || (v == best && k < at)
                            };
                            if take {
                                (best, at) = (v, k);
                            }
                        }
                        *out = best;
                        *out_at = at;
                    }
                }
            },
        );
    (y, arg)
}

/// The input gradient: `dy` added at each output's argmax.
pub fn max_pool_backward(p: Pool, arg: &[u32], dy: &[f32]) -> Vec<f32> {
    let ([h, w], [ho, wo]) = (p.input, p.output());
    let mut dx = zeroed::<f32>(p.planes * h * w);
    dx.par_chunks_mut(h * w)
        .zip(arg.par_chunks(ho * wo).zip(dy.par_chunks(ho * wo)))
        .for_each(|(dx, (arg, dy))| {
            for (&at, &g) in arg.iter().zip(dy) {
                dx[at as usize] += g;
            }
        });
    dx
}

/// The custom op; only flex and autodiff-over-flex implement it.
#[backend_extension(Flex, Autodiff)]
pub trait MaxPoolBackend: Backend {
    /// Max pool of `[N, C, H, W]`, dilation 1, floor mode; `[kernel, stride, padding]` per axis.
    fn fused_max_pool2d(x: FloatTensor<Self>, window: [[usize; 2]; 3]) -> FloatTensor<Self>;
}

fn pool_of(x: &FloatTensor<Flex>, [kernel, stride, padding]: [[usize; 2]; 3]) -> Pool {
    let dims = x.shape().to_vec();
    Pool {
        planes: dims[0] * dims[1],
        input: [dims[2], dims[3]],
        kernel,
        stride,
        padding,
    }
}

/// The forward on flex: values and argmax offsets.
fn forward(x: &FloatTensor<Flex>, p: Pool) -> (FloatTensor<Flex>, Vec<u32>) {
    let (y, arg) = with_f32(x, |values| max_pool_forward(p, values));
    let dims = x.shape().to_vec();
    let [ho, wo] = p.output();
    let y = flex_tensor(y, vec![dims[0], dims[1], ho, wo], x);
    (y, arg)
}

impl MaxPoolBackend for Flex {
    fn fused_max_pool2d(x: FloatTensor<Self>, window: [[usize; 2]; 3]) -> FloatTensor<Self> {
        forward(&x, pool_of(&x, window)).0
    }
}

#[derive(Debug)]
struct MaxPoolBackward;

impl Backward<Flex, 1> for MaxPoolBackward {
    /// The pool, the argmax offsets and the input's shape.
    type State = (Pool, Vec<u32>, Vec<usize>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let (p, arg, shape) = ops.state;
        if let Some(node) = &ops.parents[0] {
            let dx = with_f32(&dy, |dy| max_pool_backward(p, &arg, dy));
            let dx = flex_tensor(dx, shape, &dy);
            grads.register::<Flex>(node.id, dx);
        }
    }
}

impl<C: CheckpointStrategy> MaxPoolBackend for Autodiff<Flex, C> {
    fn fused_max_pool2d(x: FloatTensor<Self>, window: [[usize; 2]; 3]) -> FloatTensor<Self> {
        let p = pool_of(x.primitive(), window);
        let shape = x.primitive().shape().to_vec();
        match MaxPoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (y, arg) = forward(x.primitive(), p);
                prep.finish((p, arg, shape), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive(), p).0),
        }
    }
}

/// `pool.forward(x)`: the kernels above on flex f32 tensors for dilation 1, floor mode and equal
/// explicit padding on all sides (the stems' 3x3/2, padding 1); Burn's `forward` otherwise.
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match pool.padding {
        PaddingConfig2d::Explicit(a, b, c, d) if [b, c, d] == [a; 3] => Some(a),
        PaddingConfig2d::Valid => Some(0),
        _ => None,
    };
    let plain = pool.dilation == [1, 1] && !pool.ceil_mode && x.dtype() == DType::F32;
    let (Some(padding), true) = (padding, plain) else {
        return pool.forward(x);
    };
    // A window wholly in the padding would have no input pixel.
    if (0..2).any(|a| padding >= pool.kernel_size[a]) {
        return pool.forward(x);
    }
    let x = x.into_dispatch();
    if !on_flex(&x) {
        return pool.forward(Tensor::from_dispatch(x));
    }
    let window = [pool.kernel_size, pool.stride, [padding; 2]];
    Tensor::from_dispatch(<Dispatch as MaxPoolBackend>::fused_max_pool2d(x, window))
}
