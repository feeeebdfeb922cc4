//! The bilinear resize kernel (align_corners = true) against Burn's `interpolate`: values and
//! input gradients under autodiff, up and down, odd sizes, one-pixel outputs, planes larger than
//! one task; values without autodiff.

use burn::tensor::{Device, Distribution, Tensor};
use semisono_nn::kernels::bilinear_op::reference as upsample_bilinear_reference;
use semisono_nn::nets::unet::upsample_bilinear;

type Resize = fn(Tensor<4>, [usize; 2]) -> Tensor<4>;

/// Output and input gradient of `(resize(x)² · g).sum()`: the square's backward reads the resize,
/// which under gradient checkpointing is recomputed.
fn run(resize: Resize, x: &Tensor<4>, g: &Tensor<4>, size: [usize; 2]) -> (Vec<f32>, Vec<f32>) {
    let x = x.clone().require_grad();
    let y = resize(x.clone(), size);
    let grads = (y.clone() * y.clone() * g.clone()).sum().backward();
    let dx = x.grad(&grads).expect("x gradient");
    let host = |t: Tensor<4>| t.try_into_vec_as::<f32>().unwrap();
    (host(y.detach()), host(dx))
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 + 1e-5 * w.abs(),
            "{what}: element {i}: {g} against {w}"
        );
    }
}

/// Also under gradient checkpointing, where the backward recomputes the resize.
#[test]
fn matches_interpolate_values_and_gradients() {
    let plain = Device::flex().autodiff();
    for dev in [plain.clone(), plain.gradient_checkpointing()] {
        matches_interpolate_on(&dev);
    }
}

fn matches_interpolate_on(dev: &Device) {
    dev.seed(3);
    for (x_shape, size) in [
        ([2, 3, 8, 8], [16, 16]),
        ([1, 2, 5, 7], [10, 14]),
        ([2, 1, 6, 9], [4, 5]),
        ([1, 2, 4, 4], [1, 3]),
        ([1, 1, 1, 3], [4, 6]),
        ([2, 5, 40, 30], [80, 60]),
    ] {
        let x = Tensor::<4>::random(x_shape, Distribution::Normal(0.0, 1.0), dev);
        let [n, c, _, _] = x_shape;
        let g = Tensor::<4>::random(
            [n, c, size[0], size[1]],
            Distribution::Normal(0.0, 1.0),
            dev,
        );
        let (y, dx) = run(upsample_bilinear, &x, &g, size);
        let (y_ref, dx_ref) = run(upsample_bilinear_reference, &x, &g, size);
        let at = format!("{x_shape:?} -> {size:?} on {dev:?}");
        assert_close(&format!("{at}: values"), &y, &y_ref);
        assert_close(&format!("{at}: input gradient"), &dx, &dx_ref);
    }
}

#[test]
fn matches_interpolate_without_autodiff() {
    let dev = Device::flex();
    dev.seed(4);
    let x = Tensor::<4>::random([2, 3, 9, 12], Distribution::Normal(0.0, 1.0), &dev);
    let host = |t: Tensor<4>| t.try_into_vec_as::<f32>().unwrap();
    assert_close(
        "inference",
        &host(upsample_bilinear(x.clone(), [18, 24])),
        &host(upsample_bilinear_reference(x, [18, 24])),
    );
}
