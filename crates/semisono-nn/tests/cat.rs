//! `cat_op::cat_channels` (the parallel channel concatenation of inference) against
//! `Tensor::cat`: the same values, bit for bit, on a plain flex device (the kernel) and on an
//! autodiff one (the fallback, gradients included).

use burn::tensor::{Device, Tensor, TensorData};
use semisono_nn::kernels::cat_op::cat_channels;

fn tensor(shape: [usize; 4], seed: f32, dev: &Device) -> Tensor<4> {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|i| (i as f32 * 0.37 + seed).sin() * 3.0)
        .collect();
    Tensor::from_data(TensorData::new(values, shape), dev)
}

fn host(t: Tensor<4>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().unwrap()
}

#[test]
fn cat_channels_matches_tensor_cat() {
    for dev in [Device::flex(), Device::flex().autodiff()] {
        for (a_shape, b_shape) in [
            ([3, 5, 7, 9], [3, 2, 7, 9]),
            ([1, 1, 4, 4], [1, 6, 4, 4]),
            ([2, 64, 16, 16], [2, 64, 16, 16]),
        ] {
            let a = tensor(a_shape, 0.1, &dev);
            let b = tensor(b_shape, 2.3, &dev);
            let want = host(Tensor::cat(vec![a.clone(), b.clone()], 1));
            let got = cat_channels(vec![a, b]);
            assert_eq!(got.dims()[1], a_shape[1] + b_shape[1]);
            assert_eq!(host(got), want, "{a_shape:?} + {b_shape:?}");
        }
    }
    // Three parts: Tensor::cat.
    let dev = Device::flex();
    let parts: Vec<Tensor<4>> = (0..3)
        .map(|i| tensor([2, 2, 3, 3], i as f32, &dev))
        .collect();
    assert_eq!(
        host(cat_channels(parts.clone())),
        host(Tensor::cat(parts, 1))
    );
}
