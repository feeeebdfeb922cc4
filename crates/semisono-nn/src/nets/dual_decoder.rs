//! MLRPL's segmentation network in 2-D (mlrpl spec §1, §11): one shared registry encoder and two
//! U-Net decoders ([`UNetDecoder`]) that differ only in their up-sampling ([`Upsample`]).
//!
//! Each decoder returns its logits and its last feature map `f_k`: the head's input, the deepest
//! decoder feature up-sampled to the input size (`c0` channels, 16 for ResNet-18 at width 0.25, as
//! the spec's 16). In training, `f_k` goes through a channel dropout (PyTorch `Dropout2d`, whole
//! channels; spec §11 `decoder_feat_dropout`, the 3-D code's `Dropout3d(0.5)` on x9) and the
//! **dropped** feature is both returned and fed to the head, as in the reference. Evaluation (a
//! non-autodiff device, i.e. after `valid()`) skips it, as the test-time network of the code
//! (`has_dropout = False`) does.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};

use super::backbone::{Backbone, BackboneConfig, UnknownBackbone};
use super::unet::{UNetDecoder, UNetDecoderConfig, Upsample};

/// Configuration of a [`DualDecoderSeg`].
#[derive(Config, Debug)]
pub struct DualDecoderSegConfig {
    /// The shared encoder (stem and stages 1–3 are used).
    #[config(default = "BackboneConfig::new()")]
    pub backbone: BackboneConfig,
    /// Output classes, background included.
    #[config(default = 2)]
    pub num_classes: usize,
    /// Dropout at the end of every decoder block (as [`UNetDecoderConfig::dropout`]).
    #[config(default = 0.25)]
    pub dropout: f64,
    /// Up-sampling of decoder 1 and decoder 2. The 3-D code's `Mine3d_v1` pairs a transposed
    /// convolution (decoder 1) with nearest + conv (decoder 2).
    #[config(default = "[Upsample::Transposed, Upsample::Nearest]")]
    pub upsample: [Upsample; 2],
    /// Probability of dropping a whole channel of each decoder's last feature in training; 0 = off.
    #[config(default = 0.5)]
    pub feature_dropout: f64,
}

impl DualDecoderSegConfig {
    /// Builds the network (decoders with PyTorch's default init, like the U-Net decoder).
    ///
    /// # Panics
    /// If `feature_dropout` is not in `[0, 1)`.
    pub fn init(&self, device: &Device) -> Result<DualDecoderSeg, UnknownBackbone> {
        assert!(
            (0.0..1.0).contains(&self.feature_dropout),
            "DualDecoderSegConfig: feature_dropout must be in [0, 1), got {}",
            self.feature_dropout
        );
        let encoder = self.backbone.init(false, device)?;
        let [c0, c1, c2, c3, _] = encoder.channels();
        let decoder = |up: Upsample| {
            UNetDecoderConfig::new([c0, c1, c2, c3])
                .with_num_classes(self.num_classes)
                .with_dropout(self.dropout)
                .with_upsample(up)
                .init(device)
        };
        Ok(DualDecoderSeg {
            encoder,
            decoder1: decoder(self.upsample[0]),
            decoder2: decoder(self.upsample[1]),
            feature_dropout: self.feature_dropout,
        })
    }
}

/// Both decoders' outputs of one forward pass; index 0 is decoder 1.
#[derive(Debug, Clone)]
pub struct DualDecoderOutput {
    /// Class logits `[N, classes, H, W]` of each decoder.
    pub logits: [Tensor<4>; 2],
    /// Each decoder's last feature `[N, c0, H, W]` (after the training-time channel dropout).
    pub features: [Tensor<4>; 2],
}

/// Shared encoder, two decoders.
#[derive(Module, Debug)]
pub struct DualDecoderSeg {
    /// Stem and stages 1–3, shared by both decoders.
    pub encoder: Backbone,
    /// Decoder 1 (the one evaluation uses by default).
    pub decoder1: UNetDecoder,
    /// Decoder 2.
    pub decoder2: UNetDecoder,
    /// Channel-dropout probability on each decoder's last feature in training.
    pub feature_dropout: f64,
}

impl DualDecoderSeg {
    /// Both decoders on `x` `[N, C, H, W]`: logits and last features.
    pub fn forward(&self, x: Tensor<4>) -> DualDecoderOutput {
        let [_, _, h, w] = x.dims();
        let f = self.encoder.forward_features(x);
        let feats = [f.stem, f.layer1, f.layer2, f.layer3];
        let run = |decoder: &UNetDecoder| {
            let head_input = decoder
                .decode_bridged(feats.clone(), [h, w], None)
                .head_input;
            let feature = channel_dropout(head_input, self.feature_dropout);
            (decoder.head.forward(feature.clone()), feature)
        };
        let (z1, f1) = run(&self.decoder1);
        let (z2, f2) = run(&self.decoder2);
        DualDecoderOutput {
            logits: [z1, z2],
            features: [f1, f2],
        }
    }

    /// Logits of both decoders (evaluation).
    pub fn forward_logits(&self, x: Tensor<4>) -> [Tensor<4>; 2] {
        self.forward(x).logits
    }
}

/// PyTorch `Dropout2d(p)`: zeroes whole channels of `x` `[N, C, H, W]` with probability `p` and
/// scales the rest by `1/(1 − p)`. Identity off the autodiff device (evaluation) and for `p = 0`,
/// the same rule as Burn's `Dropout`. Draws from the device generator, so a step reseeded from
/// (seed, step) draws the same channels on resume.
pub fn channel_dropout(x: Tensor<4>, p: f64) -> Tensor<4> {
    if p == 0.0 || !x.device().is_autodiff() {
        return x;
    }
    let [n, c, _, _] = x.dims();
    let keep = 1.0 - p;
    let mask = Tensor::<4>::random([n, c, 1, 1], Distribution::Bernoulli(keep), &x.device());
    x * mask.div_scalar(keep)
}
