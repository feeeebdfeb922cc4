//! Concatenation along channels on the rayon threads. flex's `cat` copies on the calling thread
//! while the other cores wait (the U-Net decoder's skip concatenations were the largest `memmove`
//! on that thread in `perf` of inference).
//!
//! In training it is a memory-bound op with a retro-forward: under gradient checkpointing the
//! concatenation a convolution reads (a U-Net decoder's skip and up-sampled features, a Res2Net
//! block's scales) is rebuilt from its parts in the backward instead of kept next to them (Burn's
//! own `cat` is kept whenever a convolution reads it). Its backward needs no tensor, only the split.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::retro_forward::RetroForward;
use burn::backend::autodiff::checkpoint::state::BackwardStates;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex, TensorMetadata};
use burn::tensor::{DType, Tensor};

use super::collect_runs;
use super::conv_op::{flex_tensor, on_flex, with_f32};

/// The custom op; only flex and autodiff-over-flex implement it ([`cat_channels`] routes nothing
/// else here).
#[backend_extension(Flex, Autodiff)]
pub trait CatBackend: Backend {
    /// `cat([a, b], 1)` of two `[N, C, H, W]` tensors.
    fn cat_channels2(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl CatBackend for Flex {
    fn cat_channels2(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
        let [n, ca, h, w] = sa[..] else {
            panic!("cat_channels: a 4-D tensor, got {sa:?}")
        };
        assert_eq!(
            [sb[0], sb[2], sb[3]],
            [n, h, w],
            "cat_channels: shapes differ"
        );
        let (cb, plane) = (sb[1], h * w);
        let channels = ca + cb;
        let values = with_f32(&a, |xa| {
            with_f32(&b, |xb| {
                // One run per output plane: plane `c` of image `i` from `a` or `b`.
                collect_runs(n * channels * plane, plane, 8, |run| {
                    let (i, c) = (run / channels, run % channels);
                    let src = if c < ca {
                        &xa[(i * ca + c) * plane..]
                    } else {
                        &xb[(i * cb + c - ca) * plane..]
                    };
                    src[..plane].iter().copied()
                })
            })
        });
        flex_tensor(values, vec![n, channels, h, w], &a)
    }
}

/// `dy` of `[N, ca + cb, H, W]` split into its first `ca` channels and the rest, in parallel.
fn split_channels(dy: &FloatTensor<Flex>, ca: usize) -> [FloatTensor<Flex>; 2] {
    let shape = dy.shape().to_vec();
    let [n, channels, h, w] = shape[..] else {
        panic!("cat_channels: a 4-D gradient, got {shape:?}")
    };
    let plane = h * w;
    with_f32(dy, |g| {
        [(0, ca), (ca, channels - ca)].map(|(first, count)| {
            let values = collect_runs(n * count * plane, plane, 8, |run| {
                let (i, c) = (run / count, run % count);
                g[(i * channels + first + c) * plane..][..plane]
                    .iter()
                    .copied()
            });
            flex_tensor(values, vec![n, count, h, w], dy)
        })
    })
}

#[derive(Debug)]
struct CatBackward;

impl Backward<Flex, 2> for CatBackward {
    /// The first part's channel count.
    type State = usize;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        for (parent, grad) in ops.parents.iter().zip(split_channels(&dy, ops.state)) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

/// The concatenation rerun in the backward, under gradient checkpointing.
#[derive(Debug)]
struct RetroCat {
    a: NodeId,
    b: NodeId,
}

impl RetroForward for RetroCat {
    fn forward(&self, states: &mut BackwardStates, out_node: NodeId) {
        let a: FloatTensor<Flex> = states.get_state(&self.a);
        let b: FloatTensor<Flex> = states.get_state(&self.b);
        states.save(out_node, Flex::cat_channels2(a, b));
    }
}

impl<C: CheckpointStrategy> CatBackend for Autodiff<Flex, C> {
    fn cat_channels2(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        let ca = a.primitive().shape()[1];
        let retro = RetroCat {
            a: a.id(),
            b: b.id(),
        };
        let prep = CatBackward
            .prepare::<C>([a.node(), b.node()])
            .memory_bound()
            .retro_forward(retro)
            .parents([&a, &b])
            .stateful();
        let y = Flex::cat_channels2(a.into_primitive(), b.into_primitive());
        match prep {
            OpsKind::Tracked(prep) => prep.finish(ca, y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

/// `Tensor::cat(parts, 1)`. On flex (f32) two parts are copied in parallel; in training any number
/// of parts goes through the memory-bound pairwise op (`((a, b), c), ...`).
pub fn cat_channels(parts: Vec<Tensor<4>>) -> Tensor<4> {
    let f32_parts = parts.len() >= 2 && parts.iter().all(|p| p.dtype() == DType::F32);
    let tracked = parts.iter().filter(|p| p.device().is_autodiff()).count();
    let training = tracked == parts.len();
    let mixed = tracked != 0 && !training;
    if !f32_parts || mixed || (parts.len() > 2 && !training) {
        return Tensor::cat(parts, 1);
    }
    let parts: Vec<_> = parts.into_iter().map(Tensor::into_dispatch).collect();
    if !parts.iter().all(on_flex) {
        return Tensor::cat(parts.into_iter().map(Tensor::from_dispatch).collect(), 1);
    }
    let joined = parts
        .into_iter()
        .reduce(<Dispatch as CatBackend>::cat_channels2)
        .expect("two parts or more");
    Tensor::from_dispatch(joined)
}
