//! Inference: concatenation of two tensors along channels on the rayon threads. flex's `cat`
//! copies on the calling thread while the other cores wait (the U-Net decoder's skip
//! concatenations were the largest `memmove` on that thread in `perf` of inference). Only a plain
//! flex device takes this path (no autodiff, f32); everything else runs `Tensor::cat`.

use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex, TensorMetadata};
use burn::tensor::{DType, Tensor};

use super::collect_runs;
use super::conv_op::{flex_tensor, on_flex, with_f32};

/// The custom op; only flex implements it ([`cat_channels`] routes nothing else here).
#[backend_extension(Flex)]
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

/// `Tensor::cat(parts, 1)`; two f32 parts on a plain flex device are copied in parallel.
pub fn cat_channels(mut parts: Vec<Tensor<4>>) -> Tensor<4> {
    let plain = parts.len() == 2
        && parts
            .iter()
            .all(|p| p.dtype() == DType::F32 && !p.device().is_autodiff());
    if !plain {
        return Tensor::cat(parts, 1);
    }
    let b = parts.pop().expect("two parts").into_dispatch();
    let a = parts.pop().expect("two parts").into_dispatch();
    if !on_flex(&a) || !on_flex(&b) {
        return Tensor::cat(vec![Tensor::from_dispatch(a), Tensor::from_dispatch(b)], 1);
    }
    Tensor::from_dispatch(<Dispatch as CatBackend>::cat_channels2(a, b))
}
