//! The fused Adam against Burn's `Adam` on random parameters and gradients: parameters and both
//! moments bit for bit over several steps, with and without weight decay, and Burn's own path for
//! a non-f32 parameter.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, Optimizer};
use burn::tensor::{DType, Device, Distribution, Tensor};
use semisono_nn::kernels::adam::FusedAdam;

fn bits(t: &Tensor<2>) -> Vec<u32> {
    t.clone()
        .try_into_vec_as::<f32>()
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

#[test]
fn fused_adam_is_burns_adam_bit_for_bit() {
    let dev = Device::flex();
    dev.seed(3);
    for weight_decay in [None, Some(0.01f32)] {
        let (b1, b2, eps) = (0.9, 0.99, 1e-8);
        let burn = AdamConfig::new()
            .with_beta_1(b1)
            .with_beta_2(b2)
            .with_epsilon(eps)
            .with_weight_decay(weight_decay.map(WeightDecayConfig::new))
            .build();
        let fused = FusedAdam::new(b1, b2, eps, weight_decay);
        // Large enough for several parallel chunks, with a ragged end.
        let shape = [300, 171];
        let init = Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), &dev);
        let (mut p_burn, mut p_fused) = (init.clone(), init);
        let (mut s_burn, mut s_fused) = (None, None);
        for step in 0..4 {
            let grad = Tensor::<2>::random(shape, Distribution::Normal(0.0, 0.1), &dev);
            let lr = 1e-3 * (step + 1) as f64;
            (p_burn, s_burn) = burn.step(lr, p_burn, grad.clone(), s_burn);
            (p_fused, s_fused) = fused.step(lr, p_fused, grad, s_fused);
            let what = format!("decay {weight_decay:?}, step {step}");
            assert_eq!(bits(&p_fused), bits(&p_burn), "{what}: parameters");
            let (mb, mf) = (
                &s_burn.as_ref().unwrap().momentum,
                &s_fused.as_ref().unwrap().momentum,
            );
            assert_eq!(mf.time, mb.time, "{what}: time");
            assert_eq!(
                bits(&mf.moment_1),
                bits(&mb.moment_1),
                "{what}: first moment"
            );
            assert_eq!(
                bits(&mf.moment_2),
                bits(&mb.moment_2),
                "{what}: second moment"
            );
        }
    }
}

#[test]
fn fused_adam_takes_burns_path_for_other_dtypes() {
    let dev = Device::flex();
    dev.seed(4);
    let p = Tensor::<2>::random([8, 5], Distribution::Normal(0.0, 1.0), &dev).cast(DType::F64);
    let g = Tensor::<2>::random([8, 5], Distribution::Normal(0.0, 1.0), &dev).cast(DType::F64);
    let burn = AdamConfig::new().build();
    let fused = FusedAdam::new(0.9, 0.999, 1e-5, None);
    let (a, _) = burn.step(1e-2, p.clone(), g.clone(), None);
    let (b, _) = fused.step(1e-2, p, g, None);
    assert_eq!(b.dtype(), DType::F64);
    assert_eq!(
        a.try_into_vec_as::<f64>().unwrap(),
        b.try_into_vec_as::<f64>().unwrap()
    );
}
