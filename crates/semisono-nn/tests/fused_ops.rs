//! The fused leaky ReLU against Burn's: values and input gradients under autodiff (zeros
//! included, where the convention matters), and without autodiff.

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use semisono_nn::kernels::activation_op::leaky_relu;

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().unwrap()
}

#[test]
fn fused_leaky_relu_matches_burn() {
    let dev = Device::flex().autodiff();
    dev.seed(9);
    let shape = [3, 4, 40, 50];
    let mut x = host(Tensor::<4>::random(
        shape,
        Distribution::Normal(0.0, 1.0),
        &dev,
    ));
    // Exact zeros and a stretch of negatives: the gradient's convention at 0.
    x[..100].iter_mut().for_each(|v| *v = 0.0);
    let g = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &dev);
    for slope in [0.2, 0.01, 0.0] {
        let run = |f: &dyn Fn(Tensor<4>) -> Tensor<4>| {
            let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), shape), &dev).require_grad();
            let y = f(xt.clone());
            let grads = (y.clone() * g.clone()).sum().backward();
            (host(y.detach()), host(xt.grad(&grads).unwrap()))
        };
        let (y, dx) = run(&|t| leaky_relu(t, slope));
        let (y_ref, dx_ref) = run(&|t| burn::tensor::activation::leaky_relu(t, slope));
        assert_eq!(y, y_ref, "slope {slope}: values");
        for (i, (a, b)) in dx.iter().zip(&dx_ref).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6,
                "slope {slope}: gradient {i}: {a} against {b}"
            );
        }
    }
    let plain = Device::flex();
    let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), shape), &plain);
    assert_eq!(
        host(leaky_relu(xt.clone(), 0.2)),
        host(burn::tensor::activation::leaky_relu(xt, 0.2)),
        "inference"
    );
}
