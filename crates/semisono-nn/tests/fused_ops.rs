//! The fused element-wise ops against Burn's on random inputs: leaky ReLU (values and input
//! gradients under autodiff, zeros included where the convention matters, and without autodiff)
//! and batch norm (training: values, gradients of input, γ and β, running statistics; eval with
//! and without autodiff; NCHW and `[N, C]`).

use burn::module::{Module, Param};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use semisono_nn::kernels::activation_op::leaky_relu;
use semisono_nn::kernels::batch_norm_op::batch_norm;

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().unwrap()
}

fn bits(values: Vec<f32>) -> Vec<u32> {
    values.into_iter().map(f32::to_bits).collect()
}

/// Random normal values of `shape` with zeros in the first `zeros` (the gradient conventions at 0).
fn activations_input(shape: [usize; 4], zeros: usize, dev: &Device) -> Vec<f32> {
    let mut x = host(Tensor::<4>::random(
        shape,
        Distribution::Normal(0.0, 1.0),
        dev,
    ));
    x[..zeros].iter_mut().for_each(|v| *v = 0.0);
    x
}

/// `f(x)` and the gradient of `Σ f(x)·g` with respect to `x`, a fresh leaf of `shape` holding
/// `values`.
fn output_and_input_grad(
    values: &[f32],
    shape: [usize; 4],
    g: &Tensor<4>,
    f: &dyn Fn(Tensor<4>) -> Tensor<4>,
) -> (Vec<f32>, Vec<f32>) {
    let x = Tensor::<4>::from_data(TensorData::new(values.to_vec(), shape), &g.device());
    let x = x.require_grad();
    let y = f(x.clone());
    let grads = (y.clone() * g.clone()).sum().backward();
    (host(y.detach()), host(x.grad(&grads).unwrap()))
}

#[test]
fn fused_leaky_relu_matches_burn() {
    let dev = Device::flex().autodiff();
    dev.seed(9);
    let shape = [3, 4, 40, 50];
    let x = activations_input(shape, 100, &dev);
    let g = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &dev);
    for slope in [0.2, 0.01, 0.0] {
        let (y, dx) = output_and_input_grad(&x, shape, &g, &|t| leaky_relu(t, slope));
        let (y_ref, dx_ref) = output_and_input_grad(&x, shape, &g, &|t| {
            burn::tensor::activation::leaky_relu(t, slope)
        });
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

#[test]
fn fused_relu_is_burns_bit_for_bit() {
    let dev = Device::flex().autodiff();
    dev.seed(10);
    let shape = [3, 5, 61, 70];
    // Zeros (the gradient's convention at 0), a NaN (propagates, keeps its gradient).
    let mut x = activations_input(shape, 50, &dev);
    x[77] = f32::NAN;
    let g = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &dev);
    let (y, dx) = output_and_input_grad(&x, shape, &g, &semisono_nn::kernels::activation_op::relu);
    let (y_ref, dx_ref) = output_and_input_grad(&x, shape, &g, &burn::tensor::activation::relu);
    assert_eq!(bits(y), bits(y_ref), "values");
    assert_eq!(bits(dx), bits(dx_ref), "input gradient");
    let plain = Tensor::<4>::from_data(TensorData::new(x, shape), &Device::flex());
    assert_eq!(
        bits(host(semisono_nn::kernels::activation_op::relu(
            plain.clone()
        ))),
        bits(host(burn::tensor::activation::relu(plain))),
        "inference"
    );
}

/// `a` and `b` agree to `tol` relative to the larger of 1 and `b`'s largest magnitude.
fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * scale, "{what}[{i}]: {x} against {y}");
    }
}

/// Two BatchNorms with the same random γ, β (so their gradients and the affine part are
/// exercised) and their own running statistics (a clone would share them).
fn random_batch_norms(channels: usize, dev: &Device) -> [BatchNorm; 2] {
    let gamma = Tensor::<1>::random([channels], Distribution::Normal(1.0, 0.5), dev);
    let beta = Tensor::<1>::random([channels], Distribution::Normal(0.0, 0.5), dev);
    [0, 1].map(|_| {
        let mut bn = BatchNormConfig::new(channels).init(dev);
        bn.gamma = Param::from_tensor(gamma.clone());
        bn.beta = Param::from_tensor(beta.clone());
        bn
    })
}

/// Runs `f` on `x` (as a fresh leaf) and returns the output and the gradients of `Σ f(x)·g` with
/// respect to `x`, γ and β.
fn run_batch_norm<const D: usize>(
    bn: &BatchNorm,
    x: &Tensor<D>,
    g: &Tensor<D>,
    f: impl Fn(&BatchNorm, Tensor<D>) -> Tensor<D>,
) -> [Vec<f32>; 4] {
    let x = x.clone().detach().require_grad();
    let y = f(bn, x.clone());
    let grads = (y.clone() * g.clone()).sum().backward();
    [
        host(y.detach()),
        host(x.grad(&grads).unwrap()),
        host(bn.gamma.val().grad(&grads).unwrap()),
        host(bn.beta.val().grad(&grads).unwrap()),
    ]
}

fn check_batch_norm<const D: usize>(shape: [usize; D]) {
    let dev = Device::flex().autodiff();
    dev.seed(21);
    let channels = shape[1];
    let [ours, burns] = random_batch_norms(channels, &dev);
    // Off-centre inputs: a wrong mean shows in the variance and the gradients.
    let x = Tensor::<D>::random(shape, Distribution::Normal(1.5, 2.0), &dev);
    let g = Tensor::<D>::random(shape, Distribution::Normal(0.0, 1.0), &dev);
    let names = [
        "values",
        "input gradient",
        "gamma gradient",
        "beta gradient",
    ];

    let a = run_batch_norm(&ours, &x, &g, batch_norm);
    let b = run_batch_norm(&burns, &x, &g, |bn, x| bn.forward(x));
    for ((name, a), b) in names.iter().zip(&a).zip(&b) {
        assert_close(&format!("{shape:?} training {name}"), a, b, 2e-5);
    }
    for (what, a, b) in [
        ("running mean", &ours.running_mean, &burns.running_mean),
        ("running var", &ours.running_var, &burns.running_var),
    ] {
        assert_close(what, &host(a.value()), &host(b.value()), 1e-6);
    }

    // Eval mode on the autodiff device (saliency maps): the running statistics just updated.
    let eval = |bn: &BatchNorm| {
        let mut bn = bn.clone();
        bn.training = Param::from_bool(false);
        bn
    };
    let (ours, burns) = (eval(&ours), eval(&burns));
    let a = run_batch_norm(&ours, &x, &g, batch_norm);
    let b = run_batch_norm(&burns, &x, &g, |bn, x| bn.forward(x));
    for ((name, a), b) in names.iter().zip(&a).zip(&b) {
        assert_close(&format!("{shape:?} eval {name}"), a, b, 2e-5);
    }

    // Inference without autodiff.
    let plain = Device::flex();
    let (ours, burns) = (ours.valid(), burns.valid());
    let x = Tensor::<D>::from_data(x.into_data(), &plain);
    assert_close(
        &format!("{shape:?} inference"),
        &host(batch_norm(&ours, x.clone())),
        &host(burns.forward(x)),
        2e-5,
    );
}

#[test]
fn fused_batch_norm_matches_burn() {
    // 99 values per run (not a multiple of the 16 sum lanes), a 1-value run, and `[N, C]`.
    check_batch_norm([4, 6, 9, 11]);
    check_batch_norm([3, 5, 1, 1]);
    check_batch_norm([10, 7]);
    check_batch_norm([2, 3, 70, 90]);
}

/// Max pool against Burn's: values and input gradients (ties from a ReLU'd input included, where
/// the first maximum must take the gradient, and NaNs), padded and unpadded, and without autodiff.
#[test]
fn fused_max_pool_matches_burn() {
    use burn::nn::pool::MaxPool2dConfig;
    use burn::nn::PaddingConfig2d;
    use semisono_nn::kernels::max_pool_op::max_pool2d;

    let dev = Device::flex().autodiff();
    dev.seed(5);
    for (shape, k, s, p) in [
        ([2, 3, 17, 20], 3, 2, 1),
        ([1, 2, 8, 8], 2, 2, 0),
        ([2, 2, 9, 7], 3, 1, 1),
    ] {
        let pool = MaxPool2dConfig::new([k, k])
            .with_strides([s, s])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .init();
        // ReLU'd: a quarter of the windows hold ties at 0. A few NaNs, which win their windows.
        let mut values = host(burn::tensor::activation::relu(Tensor::<4>::random(
            shape,
            Distribution::Normal(-0.3, 1.0),
            &dev,
        )));
        for i in (7..values.len()).step_by(97) {
            values[i] = f32::NAN;
        }
        // Two NaNs in the first window, the later one (row-major) in the earlier column: it wins.
        values[1] = f32::NAN;
        values[shape[3]] = f32::NAN;
        let x = Tensor::<4>::from_data(TensorData::new(values.clone(), shape), &dev);
        let gy = pool.forward(x.clone()).detach();
        let g = Tensor::<4>::random(gy.dims(), Distribution::Normal(0.0, 1.0), &dev);
        let (y, dx) = output_and_input_grad(&values, shape, &g, &|t| max_pool2d(&pool, t));
        let (y_ref, dx_ref) = output_and_input_grad(&values, shape, &g, &|t| pool.forward(t));
        assert_eq!(bits(y), bits(y_ref), "{shape:?} k{k} s{s} p{p}: values");
        assert_eq!(dx, dx_ref, "{shape:?} k{k} s{s} p{p}: input gradient");
        let plain = Tensor::<4>::from_data(x.into_data(), &Device::flex());
        assert_eq!(
            bits(host(max_pool2d(&pool, plain.clone()))),
            bits(host(pool.forward(plain))),
            "{shape:?}: inference"
        );
    }
}
