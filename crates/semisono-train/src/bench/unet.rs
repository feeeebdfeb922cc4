//! `semisono bench --unet`: the reference network and step of issue 5, which
//! `bench/torch_unet.py` runs in PyTorch: a U-Net on a ResNet-18 encoder (our `SegModel`: the
//! ResNet-18 stem and stages 1-3, the decoder of `semisono_nn::nets::unet` with its bilinear
//! up-sampling and skip concatenations, a 1x1 head, 2 classes; width 1, 3 input channels).
//!
//! * **train**: one step = train-mode forward to the logits, pixel cross-entropy against one
//!   random elliptical mask per image, backward, Adam (PyTorch defaults, lr 1e-3), and the loss
//!   read back to the host.
//! * **infer**: eval-mode forward, softmax, probabilities read back.
//! * **saliency**: vanilla input-gradient saliency of an eval-mode ResNet-18 classifier (our
//!   `ClsModel` logits, 2 classes): forward, backward of the top logits to the input, the map
//!   `max_c |∂/∂x|` read back.
//!
//! The images are uniform noise, made before the clock starts; each repetition gets the same batch.

use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use semisono_data::rng::Rng;
use semisono_nn::kernels::adam::FusedAdam;
use semisono_nn::losses::cross_entropy::pixel_cross_entropy;
use semisono_nn::nets::backbone::BackboneConfig;
use semisono_nn::nets::cls::ClsModelConfig;
use semisono_nn::nets::seg::SegModelConfig;
use semisono_nn::saliency::vanilla_saliency;

use super::{ellipse_masks, mem, synthetic_images, Timings, IMAGES, MASKS};

/// Which of the three the benchmark times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnetCase {
    Train,
    Infer,
    Saliency,
}

impl UnetCase {
    pub const ALL: [UnetCase; 3] = [UnetCase::Train, UnetCase::Infer, UnetCase::Saliency];

    pub fn name(self) -> &'static str {
        match self {
            UnetCase::Train => "train",
            UnetCase::Infer => "infer",
            UnetCase::Saliency => "saliency",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Sizes and repetitions.
#[derive(Clone, Debug, PartialEq)]
pub struct UnetBenchOptions {
    pub batch: usize,
    pub size: usize,
    pub warmup: usize,
    pub reps: usize,
    pub seed: u64,
}

impl Default for UnetBenchOptions {
    /// The network: batch 8 x 3 x 128 x 128, 10 measured repetitions after 2 warm-up ones.
    fn default() -> Self {
        Self {
            batch: 8,
            size: 128,
            warmup: 2,
            reps: 10,
            seed: 0,
        }
    }
}

const IN_CHANNELS: usize = 3;
const CLASSES: usize = 2;

const BUILT_IN: &str = "resnet18 is in the backbone registry";

/// ResNet-18, width 1 (the backbone config's defaults, spelled out).
fn backbone() -> BackboneConfig {
    BackboneConfig::new()
        .with_name("resnet18".into())
        .with_in_channels(IN_CHANNELS)
}

fn images(o: &UnetBenchOptions, device: &Device) -> Tensor<4> {
    let mut rng = Rng::derive(o.seed, IMAGES);
    let batch = synthetic_images(o.batch, IN_CHANNELS, o.size, &mut rng);
    Tensor::from_data(
        TensorData::new(batch.data, [o.batch, IN_CHANNELS, o.size, o.size]),
        device,
    )
}

/// Times `warmup + reps` repetitions of `case` on `device` (an autodiff device: training and
/// saliency need gradients). `on_rep(index, warmup, seconds)` runs after each.
pub fn time_unet(
    case: UnetCase,
    o: &UnetBenchOptions,
    device: &Device,
    mut on_rep: impl FnMut(usize, bool, f64),
) -> Timings {
    device.seed(o.seed);
    let x = images(o, device);
    let mut timings = Timings::default();
    let mut run = |rep: &mut dyn FnMut()| {
        for i in 0..o.warmup + o.reps {
            let cpu = mem::cpu_seconds();
            let t = Instant::now();
            rep();
            let secs = t.elapsed().as_secs_f64();
            let warm = i < o.warmup;
            timings.record(warm, secs, cpu);
            on_rep(i, warm, secs);
        }
    };
    match case {
        UnetCase::Train => {
            let mut model = Some(
                SegModelConfig::new()
                    .with_backbone(backbone())
                    .with_num_classes(CLASSES)
                    .init(device)
                    .expect(BUILT_IN),
            );
            let mut rng = Rng::derive(o.seed, MASKS);
            let masks: Vec<i64> = ellipse_masks(o.batch, o.size, &mut rng)
                .into_iter()
                .map(i64::from)
                .collect();
            let target: Tensor<3, Int> =
                Tensor::from_data(TensorData::new(masks, [o.batch, o.size, o.size]), device);
            let mut adam = ModuleOptimizer::from(FusedAdam::new(0.9, 0.999, 1e-8, None));
            run(&mut || {
                let m = model
                    .take()
                    .expect("the model is put back after every step");
                let loss =
                    pixel_cross_entropy(m.forward_logits(x.clone()), target.clone(), None).mean;
                let mut grads = loss.backward();
                let g = GradientsParams::from_module(&mut grads, &m);
                model = Some(adam.step(1e-3, m, g));
                std::hint::black_box(loss.into_scalar::<f32>());
            });
        }
        UnetCase::Infer => {
            let model = SegModelConfig::new()
                .with_backbone(backbone())
                .with_num_classes(CLASSES)
                .init(device)
                .expect(BUILT_IN)
                .valid();
            let x = x.clone().without_autodiff();
            run(&mut || {
                let p = burn::tensor::activation::softmax(model.forward_logits(x.clone()), 1);
                std::hint::black_box(p.into_data());
            });
        }
        UnetCase::Saliency => {
            let model = ClsModelConfig::new()
                .with_backbone(backbone())
                .with_num_classes(CLASSES)
                .init(device)
                .expect(BUILT_IN)
                .valid();
            run(&mut || {
                let s = vanilla_saliency(x.clone(), |x| model.forward_logits(x));
                std::hint::black_box(s.map.into_data());
            });
        }
    }
    timings
}
