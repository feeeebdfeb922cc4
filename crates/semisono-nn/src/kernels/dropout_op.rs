//! Dropout as a Burn backend extension: `x · m` with the mask `m[i] ∈ {0, 1/keep}` a counter-based
//! hash of `(seed, i)` (`kept`). The forward hashes once and keeps the mask as bits (1/32
//! of the activation); the backward (`dy · m`) and, under gradient checkpointing, the forward's
//! rerun read the bits. The op is memory-bound there, so the convolution reading its output has
//! it recomputed from the input instead of kept (Burn's `x * mask` keeps the f32 mask, and its
//! output where a convolution reads it, since the mask is an untracked input).

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex, TensorMetadata};
use burn::tensor::{DType, Tensor};

use super::conv_op::{flex_tensor, on_flex, with_f32};
use super::{collect_runs, RetroUnary};

/// Whether element `i` is kept: the top 24 bits of the hash of `(seed, i)` fall under
/// `threshold` (`keep · 2²⁴`).
#[inline]
fn kept(seed: u64, i: usize, threshold: u64) -> bool {
    let mut state = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (semisono_rng::splitmix64(&mut state) >> 40) < threshold
}

/// The mask of `(seed, keep)` over `len` elements as bits (bit `i % 64` of word `i / 64` set where
/// element `i` is kept), and the kept values' scale.
#[derive(Debug)]
struct MaskBits {
    words: Vec<u64>,
    scale: f32,
}

impl MaskBits {
    fn new(len: usize, seed: u64, keep: f64) -> Self {
        use rayon::prelude::*;
        const WORDS_PER_TASK: usize = 512;
        let threshold = (keep * (1u64 << 24) as f64) as u64;
        let mut words = vec![0u64; len.div_ceil(64)];
        words
            .par_chunks_mut(WORDS_PER_TASK)
            .enumerate()
            .for_each(|(task, chunk)| {
                for (w, word) in chunk.iter_mut().enumerate() {
                    let first = (task * WORDS_PER_TASK + w) * 64;
                    for (bit, i) in (first..(first + 64).min(len)).enumerate() {
                        if kept(seed, i, threshold) {
                            *word |= 1 << bit;
                        }
                    }
                }
            });
        Self {
            words,
            scale: (1.0 / keep) as f32,
        }
    }

    /// `m[i]`: the scale where element `i` is kept, else 0.
    #[inline]
    fn factor(&self, i: usize) -> f32 {
        if self.words[i / 64] >> (i % 64) & 1 == 1 {
            self.scale
        } else {
            0.0
        }
    }

    /// `values[i] · m[i]` over all of `values`, in parallel.
    fn apply(&self, values: &[f32]) -> Vec<f32> {
        const RUN: usize = 1 << 15;
        collect_runs(values.len(), RUN, 1, |run| {
            let at = run * RUN;
            let span = &values[at..(at + RUN).min(values.len())];
            (at..).zip(span).map(move |(i, &v)| v * self.factor(i))
        })
    }

    /// The mask itself, `m[0..len]`, in parallel.
    fn factors(&self, len: usize) -> Vec<f32> {
        const RUN: usize = 1 << 15;
        collect_runs(len, RUN, 1, |run| {
            (run * RUN..((run + 1) * RUN).min(len)).map(|i| self.factor(i))
        })
    }

    fn apply_to(&self, x: &FloatTensor<Flex>) -> FloatTensor<Flex> {
        let values = with_f32(x, |v| self.apply(v));
        flex_tensor(values, x.shape().to_vec(), x)
    }
}

fn masked_tensor(x: &FloatTensor<Flex>, seed: u64, keep: f64) -> FloatTensor<Flex> {
    MaskBits::new(x.shape().num_elements(), seed, keep).apply_to(x)
}

/// The custom op; only flex and autodiff-over-flex implement it ([`hashed_dropout`] routes
/// nothing else here).
#[backend_extension(Flex, Autodiff)]
pub trait DropoutBackend: Backend {
    /// `x · m` with the mask of `(seed, keep)`.
    fn hashed_dropout(x: FloatTensor<Self>, seed: u64, keep: f64) -> FloatTensor<Self>;
}

impl DropoutBackend for Flex {
    fn hashed_dropout(x: FloatTensor<Self>, seed: u64, keep: f64) -> FloatTensor<Self> {
        masked_tensor(&x, seed, keep)
    }
}

#[derive(Debug)]
struct DropoutBackward;

impl Backward<Flex, 1> for DropoutBackward {
    /// The forward's mask.
    type State = Arc<MaskBits>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        if let Some(node) = &ops.parents[0] {
            grads.register::<Flex>(node.id, ops.state.apply_to(&dy));
        }
    }
}

impl<C: CheckpointStrategy> DropoutBackend for Autodiff<Flex, C> {
    fn hashed_dropout(x: FloatTensor<Self>, seed: u64, keep: f64) -> FloatTensor<Self> {
        let mask = Arc::new(MaskBits::new(
            x.primitive().shape().num_elements(),
            seed,
            keep,
        ));
        let rerun_mask = mask.clone();
        let retro = RetroUnary {
            input: x.id(),
            op: move |x| rerun_mask.apply_to(&x),
        };
        let prep = DropoutBackward
            .prepare::<C>([x.node()])
            .memory_bound()
            .retro_forward(retro)
            .parents([&x])
            .stateful();
        let y = mask.apply_to(x.primitive());
        match prep {
            OpsKind::Tracked(prep) => prep.finish(mask, y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

/// `x · m` with the mask of `(seed, keep)`, differentiable: the op above on flex f32 tensors, a
/// mask tensor and Burn's multiply elsewhere (the same values).
pub fn hashed_dropout<const D: usize>(x: Tensor<D>, seed: u64, keep: f64) -> Tensor<D> {
    if x.dtype() == DType::F32 {
        let x = x.into_dispatch();
        if on_flex(&x) {
            return Tensor::from_dispatch(<Dispatch as DropoutBackend>::hashed_dropout(
                x, seed, keep,
            ));
        }
        return hashed_dropout_reference(Tensor::from_dispatch(x), seed, keep);
    }
    hashed_dropout_reference(x, seed, keep)
}

/// [`hashed_dropout`] as a mask tensor and a multiply (other backends; the tests' reference).
pub fn hashed_dropout_reference<const D: usize>(x: Tensor<D>, seed: u64, keep: f64) -> Tensor<D> {
    let shape = x.shape();
    let mask = MaskBits::new(shape.num_elements(), seed, keep).factors(shape.num_elements());
    let device = x.device();
    x * Tensor::from_data(burn::tensor::TensorData::new(mask, shape), &device)
}
