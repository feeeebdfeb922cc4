//! Backbones by name: the registry the configs refer to.
//!
//! A name picks the architecture; [`BackboneConfig::width_multiplier`] scales it (1.0 = the
//! published widths, which pretrained weights need). Each entry also states the input
//! normalisation its pretrained weights expect; [`BackboneConfig::imagenet_norm`] switches it on
//! ([`InputNorm`], the first thing the backbone's forward pass does).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use super::res2net::{Res2Net, Res2NetConfig};
use super::resnet::{ResNet, ResNetConfig};

/// Architecture family of a registry entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackboneFamily {
    /// torchvision BasicBlock ResNet.
    ResNet,
    /// Res2Net v1b, 26w×4s Bottle2neck.
    Res2Net,
}

/// One registry entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackboneSpec {
    /// The name used in configs.
    pub name: &'static str,
    /// Architecture family.
    pub family: BackboneFamily,
    /// Blocks per stage.
    pub layers: [usize; 4],
    /// Per-channel input mean of its ImageNet weights (RGB, inputs in [0, 1]).
    pub input_mean: [f32; 3],
    /// Per-channel input std of its ImageNet weights.
    pub input_std: [f32; 3],
}

const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Every backbone that can be named in a config.
pub const BACKBONES: &[BackboneSpec] = &[
    BackboneSpec {
        name: "resnet18",
        family: BackboneFamily::ResNet,
        layers: [2, 2, 2, 2],
        input_mean: IMAGENET_MEAN,
        input_std: IMAGENET_STD,
    },
    BackboneSpec {
        name: "resnet34",
        family: BackboneFamily::ResNet,
        layers: [3, 4, 6, 3],
        input_mean: IMAGENET_MEAN,
        input_std: IMAGENET_STD,
    },
    BackboneSpec {
        name: "res2net50_v1b",
        family: BackboneFamily::Res2Net,
        layers: [3, 4, 6, 3],
        input_mean: IMAGENET_MEAN,
        input_std: IMAGENET_STD,
    },
    BackboneSpec {
        name: "res2net101_v1b",
        family: BackboneFamily::Res2Net,
        layers: [3, 4, 23, 3],
        input_mean: IMAGENET_MEAN,
        input_std: IMAGENET_STD,
    },
];

/// The registry entry called `name`, if any.
pub fn find_backbone(name: &str) -> Option<&'static BackboneSpec> {
    BACKBONES.iter().find(|spec| spec.name == name)
}

/// A config named a backbone the registry does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backbone {name:?}; known backbones: {known}")]
pub struct UnknownBackbone {
    /// The name asked for.
    pub name: String,
    /// The known names, comma-separated.
    pub known: String,
}

/// Which backbone to build.
#[derive(Config, Debug)]
pub struct BackboneConfig {
    /// A name from [`BACKBONES`].
    #[config(default = "String::from(\"resnet18\")")]
    pub name: String,
    /// Channel multiplier on the published widths (e.g. 0.25 for a small CPU preset).
    #[config(default = 1.0)]
    pub width_multiplier: f64,
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Normalise the inputs with the registry entry's `input_mean` / `input_std` (what its
    /// ImageNet weights expect) before the stem; see [`InputNormConfig::for_spec`].
    #[config(default = false)]
    pub imagenet_norm: bool,
}

impl BackboneConfig {
    /// The registry entry of [`name`](Self::name).
    pub fn spec(&self) -> Result<&'static BackboneSpec, UnknownBackbone> {
        find_backbone(&self.name).ok_or_else(|| UnknownBackbone {
            name: self.name.clone(),
            known: BACKBONES
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Builds the backbone; `with_last_stage = false` leaves out the deepest stage (the
    /// segmentation encoder does not use it).
    pub fn init(
        &self,
        with_last_stage: bool,
        device: &Device,
    ) -> Result<Backbone, UnknownBackbone> {
        let spec = self.spec()?;
        let input_norm = self
            .imagenet_norm
            .then(|| InputNormConfig::for_spec(spec, self.in_channels));
        Ok(match spec.family {
            BackboneFamily::ResNet => Backbone::ResNet(
                ResNetConfig::new(spec.layers)
                    .with_width_multiplier(self.width_multiplier)
                    .with_in_channels(self.in_channels)
                    .with_layer4(with_last_stage)
                    .with_input_norm(input_norm)
                    .init(device),
            ),
            BackboneFamily::Res2Net => Backbone::Res2Net(
                Res2NetConfig::new(spec.layers)
                    .with_width_multiplier(self.width_multiplier)
                    .with_in_channels(self.in_channels)
                    .with_layer4(with_last_stage)
                    .with_input_norm(input_norm)
                    .init(device),
            ),
        })
    }
}

/// A backbone built from the registry. An enum, so that the models do not depend on the family;
/// burn-store skips enum variant names, so weights load with the family's own key names.
#[derive(Module, Debug)]
// The enum holds a whole network and is built once per model: its inline size does not matter,
// and boxing the variants would only add an indirection to every forward pass.
#[allow(clippy::large_enum_variant)]
pub enum Backbone {
    /// A BasicBlock ResNet (18 / 34).
    ResNet(ResNet),
    /// A Res2Net v1b (50 / 101).
    Res2Net(Res2Net),
}

impl Backbone {
    /// All intermediate feature maps.
    pub fn forward_features(&self, x: Tensor<4>) -> EncoderFeatures {
        match self {
            Self::ResNet(net) => net.forward_features(x),
            Self::Res2Net(net) => net.forward_features(x),
        }
    }

    /// [`forward_features`](Self::forward_features) with `hook(site, feature)` replacing the stem
    /// output (site 0, before the max-pool) and the outputs of stages 1–3 (sites 1–3) before the
    /// next stage runs: the classifier's IAS attention sites.
    pub fn forward_features_with(&self, x: Tensor<4>, hook: StageHook<'_>) -> EncoderFeatures {
        match self {
            Self::ResNet(net) => net.forward_features_with(x, hook),
            Self::Res2Net(net) => net.forward_features_with(x, hook),
        }
    }

    /// Channels of the stem and of the four stages: `[stem, s1, s2, s3, s4]`.
    pub fn channels(&self) -> [usize; 5] {
        match self {
            Self::ResNet(net) => {
                let [s1, s2, s3, s4] = net.stage_channels();
                [s1, s1, s2, s3, s4]
            }
            Self::Res2Net(net) => net.channels(),
        }
    }

    /// Whether the deepest stage (`layer4`) was built.
    pub fn has_last_stage(&self) -> bool {
        match self {
            Self::ResNet(net) => !net.layer4.is_empty(),
            Self::Res2Net(net) => !net.layer4.is_empty(),
        }
    }

    /// The input normalisation applied before the stem, if any.
    pub fn input_norm(&self) -> Option<&InputNorm> {
        match self {
            Self::ResNet(net) => net.input_norm.as_ref(),
            Self::Res2Net(net) => net.input_norm.as_ref(),
        }
    }
}

/// Per-channel input normalisation `(x − mean) / std`.
#[derive(Config, Debug)]
pub struct InputNormConfig {
    /// Mean per input channel.
    pub mean: Vec<f64>,
    /// Standard deviation per input channel.
    pub std: Vec<f64>,
}

impl InputNormConfig {
    /// The normalisation a registry entry's pretrained weights expect, for `in_channels` inputs:
    /// its RGB `input_mean` / `input_std` for 3 channels; otherwise (gray, 1 channel) every channel
    /// gets the mean of the three means and the mean of the three stds.
    pub fn for_spec(spec: &BackboneSpec, in_channels: usize) -> Self {
        let widen = |v: [f32; 3]| -> Vec<f64> {
            if in_channels == 3 {
                v.iter().map(|&c| f64::from(c)).collect()
            } else {
                let avg = v.iter().map(|&c| f64::from(c)).sum::<f64>() / 3.0;
                vec![avg; in_channels]
            }
        };
        Self::new(widen(spec.input_mean), widen(spec.input_std))
    }

    /// Builds the module.
    ///
    /// # Panics
    /// If `mean` and `std` differ in length, are empty, or a std is not positive.
    pub fn init(&self) -> InputNorm {
        assert!(
            !self.mean.is_empty() && self.mean.len() == self.std.len(),
            "InputNormConfig: mean and std need one value per channel (got {} and {})",
            self.mean.len(),
            self.std.len()
        );
        assert!(
            self.std.iter().all(|&s| s > 0.0),
            "InputNormConfig: std must be > 0"
        );
        InputNorm {
            mean: self.mean.clone(),
            std: self.std.clone(),
        }
    }
}

/// `(x − mean[c]) / std[c]` over the channels of an NCHW input. Constants only: it adds no
/// parameter, so checkpoints and `.pth` key lists are the same with and without it.
#[derive(Module, Debug)]
pub struct InputNorm {
    /// Mean per channel.
    pub mean: Vec<f64>,
    /// Standard deviation per channel.
    pub std: Vec<f64>,
}

impl InputNorm {
    /// Normalises `x` (`[N, C, H, W]`, C = the number of channels of this module).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let channels = self.mean.len();
        let [_, c, _, _] = x.dims();
        assert_eq!(
            c, channels,
            "InputNorm: the input has {c} channels, the normalisation {channels}"
        );
        let device = x.device();
        let column = |v: &[f64]| -> Tensor<4> {
            Tensor::from_data(TensorData::new(v.to_vec(), [1, channels, 1, 1]), &device)
        };
        (x - column(&self.mean)) / column(&self.std)
    }
}

/// A function applied to a backbone feature before the next stage: `(site, feature) → feature`,
/// site 0 = stem, 1–3 = stages 1–3.
pub type StageHook<'a> = &'a mut dyn FnMut(usize, Tensor<4>) -> Tensor<4>;

/// The feature maps of a backbone forward pass (channel counts for a ResNet; a Res2Net has 4× as
/// many in the stages).
#[derive(Debug, Clone)]
pub struct EncoderFeatures {
    /// Stem output after ReLU, before max-pooling: `[N, c0, H/2, W/2]` (Hermes' `x0`, IAS-4).
    pub stem: Tensor<4>,
    /// After the max-pool: `[N, c0, H/4, W/4]` (Hermes' `xk`).
    pub pooled: Tensor<4>,
    /// `layer1`: `[N, c0, H/4, W/4]`.
    pub layer1: Tensor<4>,
    /// `layer2`: `[N, 2·c0, H/8, W/8]`.
    pub layer2: Tensor<4>,
    /// `layer3`: `[N, 4·c0, H/16, W/16]`.
    pub layer3: Tensor<4>,
    /// `layer4`: `[N, 8·c0, H/32, W/32]`, `None` when the network was built without it.
    pub layer4: Option<Tensor<4>>,
}
