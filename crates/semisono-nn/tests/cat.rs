//! `cat_op::cat_channels` against `Tensor::cat`: the same values, bit for bit, on a plain flex
//! device (the parallel copy of inference), and values and gradients on autodiff devices with and
//! without gradient checkpointing (the memory-bound op of training, pairwise for three parts).

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

const SHAPES: [&[[usize; 4]]; 4] = [
    &[[3, 5, 7, 9], [3, 2, 7, 9]],
    &[[1, 1, 4, 4], [1, 6, 4, 4]],
    &[[2, 64, 16, 16], [2, 64, 16, 16]],
    &[[2, 3, 5, 4], [2, 1, 5, 4], [2, 4, 5, 4]],
];

#[test]
fn cat_channels_matches_tensor_cat() {
    let dev = Device::flex();
    for shapes in SHAPES {
        let parts: Vec<_> = (shapes.iter().enumerate())
            .map(|(i, &s)| tensor(s, i as f32 * 1.3, &dev))
            .collect();
        let want = host(Tensor::cat(parts.clone(), 1));
        assert_eq!(host(cat_channels(parts)), want, "{shapes:?}");
    }
}

/// `(cat(parts) · weights).sum()` backward: the output and each part's gradient.
fn output_and_grads(
    cat: impl Fn(Vec<Tensor<4>>) -> Tensor<4>,
    shapes: &[[usize; 4]],
    dev: &Device,
) -> (Vec<f32>, Vec<Vec<f32>>) {
    let parts: Vec<_> = (shapes.iter().enumerate())
        .map(|(i, &s)| tensor(s, i as f32 * 1.3, dev).require_grad())
        .collect();
    // Each part through an op, as in the networks (their outputs are what the cat reads).
    let y = cat(parts.iter().map(|p| p.clone().mul_scalar(2.0)).collect());
    let weights = tensor(y.dims(), 0.7, dev);
    let grads = (y.clone() * weights).sum().backward();
    let part_grads = (parts.iter())
        .map(|p| host(p.grad(&grads).expect("a gradient")))
        .collect();
    (host(y), part_grads)
}

#[test]
fn cat_channels_has_tensor_cats_gradients_with_and_without_checkpointing() {
    for dev in [
        Device::flex().autodiff(),
        Device::flex().autodiff().gradient_checkpointing(),
    ] {
        for shapes in SHAPES {
            let want = output_and_grads(|p| Tensor::cat(p, 1), shapes, &dev);
            let got = output_and_grads(cat_channels, shapes, &dev);
            assert_eq!(got, want, "{shapes:?}, {dev:?}");
        }
    }
}
