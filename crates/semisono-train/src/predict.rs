//! Prediction on images without ground truth (`semisono predict`): the network sees each image
//! resized to `image_size` (bilinear, as in evaluation); its probabilities and saliency map are
//! resized back to the image's native size, so masks line up with the input pixels.

use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::Tensor;
use semisono_data::augment::eval_view;
use semisono_data::GrayImage;
use semisono_nn::ops::float_tensor_to_vec;

use crate::config::TrainConfig;
use crate::loader::ImageBatch;
use crate::methods::SslMethod;

/// What the networks say about one image, at its native size.
#[derive(Clone, Debug, PartialEq)]
pub struct ImagePrediction {
    /// Lesion mask (argmax class > 0) as {0, 255}; `None` without a segmenter.
    pub mask: Option<GrayImage>,
    /// Per pixel, the probability of a lesion (1 − P(background)); `None` without a segmenter.
    pub lesion_probability: Option<Vec<f32>>,
    /// Softmax over the image classes; `None` without a classifier.
    pub class_probabilities: Option<Vec<f64>>,
    /// Argmax of `class_probabilities`.
    pub class: Option<u32>,
    /// Vanilla input-gradient saliency of the classifier's top class (unnormalised, ≥ 0).
    pub saliency: Option<Vec<f32>>,
}

/// Bilinear (`align_corners = false`) resize of `[N, C, h, w]` to `[h', w']`; a no-op at that size.
pub(crate) fn resize_to(x: Tensor<4>, [h, w]: [usize; 2]) -> Tensor<4> {
    let [_, _, xh, xw] = x.dims();
    if (xh, xw) == (h, w) {
        return x;
    }
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size([h, w]),
    )
}

/// Index of the largest value (the first of ties).
pub(crate) fn argmax(p: &[f64]) -> usize {
    p.iter()
        .enumerate()
        .fold(
            (0, f64::NEG_INFINITY),
            |b, (c, &v)| if v > b.1 { (c, v) } else { b },
        )
        .0
}

/// Predicts `images` (any sizes) as one batch; `saliency` adds the classifier's saliency map.
pub fn predict_images(
    method: &dyn SslMethod,
    cfg: &TrainConfig,
    images: &[GrayImage],
    saliency: bool,
) -> Vec<ImagePrediction> {
    if images.is_empty() {
        return Vec::new();
    }
    let augment = cfg.augment_resolved();
    let resized: Vec<GrayImage> = images
        .iter()
        .map(|img| eval_view(img, None, &augment).0)
        .collect();
    let batch = ImageBatch::from_images(&resized, cfg.model.in_channels);
    let pred = method.eval_forward(&batch);
    let k = cfg.model.num_classes;
    let cls = pred.cls_probs.map(float_tensor_to_vec);
    let sal = if saliency {
        method.saliency(&batch)
    } else {
        None
    };
    images
        .iter()
        .enumerate()
        .map(|(i, img)| {
            let native = [img.height as usize, img.width as usize];
            let (mask, lesion_probability) = match &pred.seg_probs {
                Some(probs) => {
                    let p = resize_to(probs.clone().narrow(0, i, 1), native);
                    let labels = semisono_nn::ops::int_tensor_to_vec(p.clone().argmax(1));
                    let background = p.narrow(1, 0, 1);
                    let lesion: Vec<f32> = float_tensor_to_vec(background.neg().add_scalar(1.0))
                        .into_iter()
                        .map(|v| v as f32)
                        .collect();
                    let mask = labels
                        .iter()
                        .map(|&c| if c > 0 { 255 } else { 0 })
                        .collect();
                    (
                        Some(GrayImage::new(img.width, img.height, mask)),
                        Some(lesion),
                    )
                }
                None => (None, None),
            };
            let class_probabilities = cls.as_ref().map(|all| all[i * k..(i + 1) * k].to_vec());
            let class = class_probabilities.as_deref().map(|p| argmax(p) as u32);
            let saliency = sal.as_ref().map(|maps| {
                let m = maps.clone().narrow(0, i, 1).unsqueeze_dim::<4>(1);
                float_tensor_to_vec(resize_to(m, native))
                    .into_iter()
                    .map(|v| v as f32)
                    .collect()
            });
            ImagePrediction {
                mask,
                lesion_probability,
                class_probabilities,
                class,
                saliency,
            }
        })
        .collect()
}
