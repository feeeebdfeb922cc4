//! `nets::layers::dropout`: identity without autodiff or when frozen, `{0, x/keep}` with about
//! `keep` of the elements kept in training, the same mask for the same device seed, a different
//! one for another, and the mask as the input gradient.

use burn::nn::DropoutConfig;
use burn::tensor::{Device, Distribution, Tensor};
use semisono_nn::nets::dropout;

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().unwrap()
}

#[test]
fn dropout_keeps_about_keep_scaled_and_is_seeded() {
    let layer = DropoutConfig::new(0.25).init();
    let plain = Device::flex();
    let x = Tensor::<4>::random([4, 8, 32, 32], Distribution::Uniform(1.0, 2.0), &plain);
    assert_eq!(
        host(dropout(&layer, x.clone())),
        host(x.clone()),
        "inference"
    );

    let dev = Device::flex().autodiff();
    let xs = host(x);
    let run = |seed: u64| {
        dev.seed(seed);
        let x = Tensor::<4>::from_data(
            burn::tensor::TensorData::new(xs.clone(), [4, 8, 32, 32]),
            &dev,
        )
        .require_grad();
        let y = dropout(&layer, x.clone());
        let grads = y.clone().sum().backward();
        (host(y.detach()), host(x.grad(&grads).unwrap()))
    };
    let (y, dx) = run(5);
    let keep = 0.75f32;
    let mut kept = 0usize;
    for ((&yi, &xi), &gi) in y.iter().zip(&xs).zip(&dx) {
        if yi == 0.0 {
            assert_eq!(gi, 0.0);
        } else {
            kept += 1;
            assert!((yi - xi / keep).abs() < 1e-5, "{yi} against {xi}/keep");
            assert!((gi - 1.0 / keep).abs() < 1e-6, "gradient {gi}");
        }
    }
    let frac = kept as f32 / y.len() as f32;
    assert!((frac - keep).abs() < 0.01, "kept fraction {frac}");
    assert_eq!(run(5).0, y, "same seed, same mask");
    assert_ne!(run(6).0, y, "another seed, another mask");

    let mut frozen = DropoutConfig::new(0.25).init();
    frozen.training = burn::module::Param::from_bool(false);
    let x = Tensor::<4>::from_data(
        burn::tensor::TensorData::new(xs.clone(), [4, 8, 32, 32]),
        &dev,
    );
    assert_eq!(host(dropout(&frozen, x)), xs, "frozen layer");
}

/// The flex op (mask made where used, recomputed in the backward under gradient checkpointing)
/// against a mask tensor and Burn's multiply: values and input gradients of `(y² · g).sum()` bit
/// for bit, with and without checkpointing (the square's backward reads `y`).
#[test]
fn hashed_dropout_matches_a_mask_tensor_with_and_without_checkpointing() {
    use semisono_nn::kernels::dropout_op::{hashed_dropout, hashed_dropout_reference};
    type Dropout = fn(Tensor<3>, u64, f64) -> Tensor<3>;
    let plain = Device::flex().autodiff();
    // Values from a formula, not the device's RNG: the other test seeds it (process-wide) and
    // expects its own draws.
    let values = |phase: f32| -> Vec<f32> {
        (0..3 * 70 * 513)
            .map(|i| (i as f32 * 0.61 + phase).sin())
            .collect()
    };
    for dev in [plain.clone(), plain.gradient_checkpointing()] {
        let tensor = |phase| {
            Tensor::<3>::from_data(
                burn::tensor::TensorData::new(values(phase), [3, 70, 513]),
                &dev,
            )
        };
        let (x, g) = (tensor(0.0), tensor(1.7));
        let run = |drop: Dropout| {
            let x = x.clone().require_grad();
            let y = drop(x.clone(), 0x5EED, 0.75);
            let grads = (y.clone() * y.clone() * g.clone()).sum().backward();
            (host(y.detach()), host(x.grad(&grads).unwrap()))
        };
        assert_eq!(
            run(hashed_dropout),
            run(hashed_dropout_reference),
            "{dev:?}"
        );
    }
}
