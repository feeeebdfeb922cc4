//! CPU kernels that replace slow paths of Burn's `flex` backend (issue 5, CPU speed).
//!
//! [`conv2d`] has convolution forward, input gradient and weight gradient as GEMMs (`gemm` 0.19,
//! the crate flex itself uses) with rayon over image chunks: stride 1 as one GEMM per kernel tap
//! over the padded image read in place (or, on CPUs with AVX-512, a direct register-tile kernel
//! with no GEMM), other strides over an im2col buffer.
//! [`conv_op`] puts them under autodiff as a Burn backend extension; every convolution of the
//! networks goes through [`conv_op::conv2d`]. The other extensions replace flex's (or Burn's
//! generic) single-threaded or many-pass ops the same way: [`batch_norm_op`] (over the kernels of
//! [`batch_norm`]), [`bilinear_op`], [`max_pool_op`], [`activation_op`] (ReLU, leaky ReLU),
//! [`cat_op`] (channel concatenation) and [`dropout_op`]; each has a test against Burn's op in
//! `tests/`. The autodiff ops read what their backward needs through Burn's checkpointer, so that
//! with gradient checkpointing (the CPU training device) BatchNorm, the activations, concatenations,
//! up-sampling and dropout are recomputed instead of kept; `semisono-train`'s methods test checks
//! the weights come out bit-identical.
//! The functions here wrap the conv kernels for `Tensor<4>`: they read the tensor to the host, run
//! the kernel and build a new tensor on the same device, so they are for tests and benchmarks.

pub mod activation_op;
pub mod adam;
pub mod batch_norm;
pub mod batch_norm_op;
pub mod bilinear_op;
pub mod cat_op;
pub mod conv2d;
pub mod conv_bn_op;
pub mod conv_op;
pub mod dropout_op;
pub mod max_pool_op;
pub mod profile;

use burn::backend::autodiff::checkpoint::retro_forward::RetroForward;
use burn::backend::autodiff::checkpoint::state::BackwardStates;
use burn::backend::autodiff::checkpoint::strategy::{CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::NodeId;
use burn::backend::tensor::FloatTensor;
use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};

/// A one-input op rerun in the backward under gradient checkpointing: `op` of the input's
/// (kept or itself recomputed) value. What the memory-bound element-wise ops register.
pub(crate) struct RetroUnary<F> {
    pub input: NodeId,
    pub op: F,
}

impl<F> std::fmt::Debug for RetroUnary<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetroUnary")
            .field("input", &self.input)
            .finish_non_exhaustive()
    }
}

impl<F> RetroForward for RetroUnary<F>
where
    F: Fn(FloatTensor<Flex>) -> FloatTensor<Flex> + Send + 'static,
{
    fn forward(&self, states: &mut BackwardStates, out_node: NodeId) {
        let x: FloatTensor<Flex> = states.get_state(&self.input);
        states.save(out_node, (self.op)(x));
    }
}

/// Whether autodiff runs with gradient checkpointing (Burn's balanced strategy: memory-bound ops
/// such as BatchNorm and ReLU are recomputed in the backward instead of kept).
pub(crate) fn checkpointing<C: CheckpointStrategy>() -> bool {
    std::any::TypeId::of::<C>() != std::any::TypeId::of::<NoCheckpointing>()
}

pub use conv2d::Conv2dGeom;

/// Stride, padding and dilation of a 2-D convolution (`groups` = 1, symmetric padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

impl Conv2dParams {
    pub fn new(stride: usize, padding: usize) -> Self {
        Self {
            stride: [stride; 2],
            padding: [padding; 2],
            dilation: [1, 1],
        }
    }

    /// The geometry of this convolution on an input of shape `x` with weights of shape `w`.
    pub fn geom(&self, x: [usize; 4], w: [usize; 4]) -> Conv2dGeom {
        assert_eq!(
            x[1], w[1],
            "conv2d: input channels differ from the weight's (groups = 1)"
        );
        Conv2dGeom {
            batch: x[0],
            c_in: x[1],
            h_in: x[2],
            w_in: x[3],
            c_out: w[0],
            kernel: [w[2], w[3]],
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
        }
    }
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().expect("f32 tensor data")
}

/// `conv2d(x, w, bias)` through [`conv2d::conv2d_forward`].
pub fn conv2d_forward(
    x: Tensor<4>,
    w: Tensor<4>,
    bias: Option<Tensor<1>>,
    p: Conv2dParams,
) -> Tensor<4> {
    let device = x.device();
    let g = p.geom(x.dims(), w.dims());
    let [ho, wo] = g.out_hw();
    let bias = bias.map(host);
    let y = conv2d::conv2d_forward(&g, &host(x), &host(w), bias.as_deref());
    Tensor::from_data(TensorData::new(y, [g.batch, g.c_out, ho, wo]), &device)
}

/// The gradient of `conv2d` with respect to its input, of shape `x_shape`.
pub fn conv2d_x_grad(
    x_shape: [usize; 4],
    w: Tensor<4>,
    dy: Tensor<4>,
    p: Conv2dParams,
) -> Tensor<4> {
    let device = dy.device();
    let g = p.geom(x_shape, w.dims());
    let dx = conv2d::conv2d_x_grad(&g, &host(w), &host(dy));
    Tensor::from_data(TensorData::new(dx, x_shape), &device)
}

/// The gradient of `conv2d` with respect to its weight, of shape `w_shape`.
pub fn conv2d_w_grad(
    x: Tensor<4>,
    w_shape: [usize; 4],
    dy: Tensor<4>,
    p: Conv2dParams,
) -> Tensor<4> {
    let device = dy.device();
    let g = p.geom(x.dims(), w_shape);
    let dw = conv2d::conv2d_w_grad(&g, &host(x), &host(dy));
    Tensor::from_data(TensorData::new(dw, w_shape), &device)
}

/// The gradient of `conv2d` with respect to its bias.
pub fn conv2d_b_grad(dy: Tensor<4>) -> Tensor<1> {
    let device = dy.device();
    let [n, c, h, w] = dy.dims();
    let g = Conv2dGeom {
        batch: n,
        c_in: 1,
        h_in: h,
        w_in: w,
        c_out: c,
        kernel: [1, 1],
        stride: [1, 1],
        padding: [0, 0],
        dilation: [1, 1],
    };
    let db = conv2d::conv2d_b_grad(&g, &host(dy));
    Tensor::from_data(TensorData::new(db, [c]), &device)
}

/// A vector of `len` values, run `i` (of `run` values; the last may be shorter) taken from
/// `values(i)` on rayon tasks of at least `min_runs` runs, without zeroing the buffer first: the
/// zeroing of outputs that are then overwritten was ~5% of the U-Net's inference (`perf`).
pub(crate) fn collect_runs<I: Iterator<Item = f32>>(
    len: usize,
    run: usize,
    min_runs: usize,
    values: impl Fn(usize) -> I + Sync,
) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(run.max(1))
        .enumerate()
        .with_min_len(min_runs.max(1))
        .for_each(|(i, slots)| {
            let mut written = 0;
            for (slot, value) in slots.iter_mut().zip(values(i)) {
                slot.write(value);
                written += 1;
            }
            assert_eq!(written, slots.len(), "collect_runs: run {i} too short");
        });
    // SAFETY: every slot of `out[..len]` was written above (each run's count is asserted).
    unsafe { out.set_len(len) };
    out
}

/// `vec![T::default(); len]` with the zeroing (and the page faults of fresh memory) spread over the
/// rayon threads: done on the calling thread it left the other cores idle (serial `memset` was a
/// third of the main thread's time in `perf` of the U-Net's inference).
pub(crate) fn zeroed<T: Copy + Default + Send + Sync>(len: usize) -> Vec<T> {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 16;
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(CHUNK)
        .for_each(|chunk| chunk.fill(std::mem::MaybeUninit::new(T::default())));
    // SAFETY: every slot of `out[..len]` was written above.
    unsafe { out.set_len(len) };
    out
}

/// Scratch space of `len` f32s from the current thread's pool, its contents left over from an
/// earlier use: for buffers the caller overwrites completely before reading (padded images, im2col
/// columns, GEMM outputs). Fresh `vec![0.0; len]` buffers cost a `memset` each, and page faults
/// where the allocator had handed the memory back (together ~7% of a training step in `perf`).
/// The buffer goes back to the pool when dropped.
pub(crate) struct Scratch {
    /// Kept at its full length (a buffer only grows), so reuse writes nothing.
    buf: Vec<f32>,
    len: usize,
}

/// Buffers a thread keeps for reuse (a kernel holds at most two at once).
const SCRATCH_KEPT: usize = 4;

thread_local! {
    static SCRATCH_POOL: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Scratch {
    pub(crate) fn new(len: usize) -> Self {
        let reused = SCRATCH_POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            // The largest kept buffer, so a big request does not regrow a small one.
            let best = (0..pool.len()).max_by_key(|&i| pool[i].capacity())?;
            Some(pool.swap_remove(best))
        });
        let mut buf = reused.unwrap_or_default();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        if cfg!(debug_assertions) {
            // Debug builds (the tests) poison it, so a kernel reading what it did not write
            // gives NaN.
            buf[..len].fill(f32::NAN);
        }
        Self { buf, len }
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[..self.len]
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[..self.len]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        SCRATCH_POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < SCRATCH_KEPT {
                pool.push(buf);
            } else if let Some(smallest) = (0..pool.len()).min_by_key(|&i| pool[i].capacity()) {
                if pool[smallest].capacity() < buf.capacity() {
                    pool[smallest] = buf;
                }
            }
        });
    }
}

/// Runs `f` on a rayon pool of `threads` threads (benchmarks: the kernels' speed on one core
/// against several).
pub fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .expect("rayon pool")
        .install(f)
}

/// Burn's own conv2d backward, written out at the tensor level exactly as burn-backend 0.22.1's
/// generic `conv2d_x_backward` / `conv2d_weight_backward` run it on `flex` (which overrides
/// neither), so a benchmark can time the input and weight gradients separately. The tests check
/// these against autodiff.
pub mod stock {
    use burn::tensor::module::{conv2d, conv_transpose2d};
    use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
    use burn::tensor::Tensor;

    use super::Conv2dParams;

    fn options(p: Conv2dParams) -> ConvOptions<2> {
        ConvOptions::new(p.stride, p.padding, p.dilation, 1)
    }

    /// burn-backend's `calculate_padding_out`: the input rows a strided forward dropped.
    fn padding_out(k: usize, s: usize, pad: usize, d: usize, n_in: usize, n_out: usize) -> usize {
        if s <= 1 {
            return 0;
        }
        let span = (d * (k - 1) + 1) as i64;
        let base = (n_out as i64 - 1) * s as i64 + span - 2 * pad as i64;
        (n_in as i64 - base).max(0) as usize
    }

    /// Forward: flex's own conv2d.
    pub fn forward(
        x: Tensor<4>,
        w: Tensor<4>,
        bias: Option<Tensor<1>>,
        p: Conv2dParams,
    ) -> Tensor<4> {
        conv2d(x, w, bias, options(p))
    }

    /// Input gradient: a transposed convolution of `dy` with `w`.
    pub fn x_grad(x_shape: [usize; 4], w: Tensor<4>, dy: Tensor<4>, p: Conv2dParams) -> Tensor<4> {
        let [_, _, kh, kw] = w.dims();
        let [_, _, ho, wo] = dy.dims();
        let pad_out = [
            padding_out(kh, p.stride[0], p.padding[0], p.dilation[0], x_shape[2], ho),
            padding_out(kw, p.stride[1], p.padding[1], p.dilation[1], x_shape[3], wo),
        ];
        conv_transpose2d(
            dy,
            w,
            None,
            ConvTransposeOptions::new(p.stride, p.padding, pad_out, p.dilation, 1),
        )
    }

    /// Weight gradient: `x` (batch and channels swapped) convolved with `dy` (swapped) as the
    /// kernel, stride and dilation exchanged, then swapped back and cropped.
    pub fn w_grad(x: Tensor<4>, w_shape: [usize; 4], dy: Tensor<4>, p: Conv2dParams) -> Tensor<4> {
        let g = conv2d(
            x.swap_dims(0, 1),
            dy.swap_dims(0, 1),
            None,
            ConvOptions::new(p.dilation, p.padding, p.stride, 1),
        )
        .swap_dims(0, 1);
        if g.dims() == w_shape {
            g
        } else {
            g.slice([0..w_shape[0], 0..w_shape[1], 0..w_shape[2], 0..w_shape[3]])
        }
    }
}
