//! Pictures of predictions for people: mask overlays coloured as in the Hermes paper's figure
//! (agreement yellow, missed red, extra green), outlines when there is no ground truth, and saliency
//! heat maps. Plain RGB buffers written as PNG; no deep-learning framework here.

use std::path::Path;

use crate::error::Result;
use crate::image_io::{write_png, GrayImage};

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl RgbImage {
    /// The grayscale image as RGB.
    pub fn from_gray(img: &GrayImage) -> Self {
        RgbImage {
            width: img.width,
            height: img.height,
            data: img.data.iter().flat_map(|&v| [v, v, v]).collect(),
        }
    }

    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = 3 * (y as usize * self.width as usize + x as usize);
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Mixes `colour` into pixel `i` with weight `alpha`.
    fn blend(&mut self, i: usize, colour: [u8; 3], alpha: f32) {
        for (c, &v) in colour.iter().enumerate() {
            let old = f32::from(self.data[3 * i + c]);
            self.data[3 * i + c] = (old + alpha * (f32::from(v) - old)).round() as u8;
        }
    }
}

/// Colours of the comparison overlay (the paper's figure) and of the outline.
pub const AGREE: [u8; 3] = [255, 255, 0];
pub const MISSED: [u8; 3] = [255, 0, 0];
pub const EXTRA: [u8; 3] = [0, 255, 0];
pub const OUTLINE: [u8; 3] = [255, 255, 0];

/// How strongly region colours cover the image.
const REGION_ALPHA: f32 = 0.45;

fn check_same_size(a: &GrayImage, b: &GrayImage, what: &str) {
    assert_eq!(
        (a.width, a.height),
        (b.width, b.height),
        "{what} must have the image's size"
    );
}

/// `image` with prediction `pred` compared to ground truth `truth` (both masks: nonzero = lesion):
/// true positives yellow, false negatives (missed) red, false positives (extra) green.
pub fn overlay_compare(image: &GrayImage, pred: &GrayImage, truth: &GrayImage) -> RgbImage {
    check_same_size(image, pred, "the predicted mask");
    check_same_size(image, truth, "the ground-truth mask");
    let mut out = RgbImage::from_gray(image);
    for (i, (&p, &t)) in pred.data.iter().zip(&truth.data).enumerate() {
        let colour = match (p > 0, t > 0) {
            (true, true) => AGREE,
            (false, true) => MISSED,
            (true, false) => EXTRA,
            (false, false) => continue,
        };
        out.blend(i, colour, REGION_ALPHA);
    }
    out
}

/// `image` with the boundary of `pred` drawn in [`OUTLINE`]: lesion pixels with a 4-neighbour
/// outside the lesion (or on the image border).
pub fn overlay_outline(image: &GrayImage, pred: &GrayImage) -> RgbImage {
    check_same_size(image, pred, "the predicted mask");
    let mut out = RgbImage::from_gray(image);
    let (w, h) = (image.width as usize, image.height as usize);
    let inside = |x: isize, y: isize| {
        x >= 0
            && y >= 0
            && (x as usize) < w
            && (y as usize) < h
            && pred.data[y as usize * w + x as usize] > 0
    };
    for y in 0..h as isize {
        for x in 0..w as isize {
            if inside(x, y)
                && !(inside(x - 1, y) && inside(x + 1, y) && inside(x, y - 1) && inside(x, y + 1))
            {
                out.blend(y as usize * w + x as usize, OUTLINE, 1.0);
            }
        }
    }
    out
}

/// A colour for `v` in [0, 1] on a blue → cyan → yellow → red ramp (a "jet"-like map).
pub fn heat_colour(v: f32) -> [u8; 3] {
    let v = v.clamp(0.0, 1.0);
    let ramp = |a: f32| (255.0 * a.clamp(0.0, 1.0)).round() as u8;
    [
        ramp(1.5 - (4.0 * v - 3.0).abs()),
        ramp(1.5 - (4.0 * v - 2.0).abs()),
        ramp(1.5 - (4.0 * v - 1.0).abs()),
    ]
}

/// `image` under a heat map of `values` (one per pixel, any non-negative scale). Values are scaled
/// by their 99th percentile so that a few extreme gradients do not wash the map out, and blended
/// in proportion to their strength so that the anatomy stays visible where saliency is low.
pub fn heat_map(image: &GrayImage, values: &[f32]) -> RgbImage {
    assert_eq!(
        values.len(),
        image.data.len(),
        "one saliency value per pixel"
    );
    let mut sorted: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f32::total_cmp);
    let scale = sorted
        .get(((sorted.len() as f64 * 0.99) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .filter(|&s| s > 0.0)
        .unwrap_or(1.0);
    let mut out = RgbImage::from_gray(image);
    for (i, &v) in values.iter().enumerate() {
        let a = if v.is_finite() {
            (v / scale).clamp(0.0, 1.0)
        } else {
            0.0
        };
        out.blend(i, heat_colour(a), 0.25 + 0.5 * a);
    }
    out
}

/// Probabilities in [0, 1] as an 8-bit grayscale image (`round(255·p)`).
pub fn probability_image(width: u32, height: u32, probs: &[f32]) -> GrayImage {
    GrayImage::new(
        width,
        height,
        probs
            .iter()
            .map(|&p| (255.0 * p.clamp(0.0, 1.0)).round() as u8)
            .collect(),
    )
}

/// Writes an RGB PNG via a temporary file renamed into place.
pub fn save_rgb_png(path: &Path, img: &RgbImage) -> Result<()> {
    write_png(path, img.width, img.height, png::ColorType::Rgb, &img.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_colours_follow_the_paper() {
        let img = GrayImage::new(4, 1, vec![0, 0, 0, 0]);
        let pred = GrayImage::new(4, 1, vec![255, 0, 255, 0]);
        let truth = GrayImage::new(4, 1, vec![255, 255, 0, 0]);
        let o = overlay_compare(&img, &pred, &truth);
        let dominant = |p: [u8; 3]| p.map(|c| c > 50);
        assert_eq!(
            dominant(o.pixel(0, 0)),
            [true, true, false],
            "agreement yellow"
        );
        assert_eq!(dominant(o.pixel(1, 0)), [true, false, false], "missed red");
        assert_eq!(dominant(o.pixel(2, 0)), [false, true, false], "extra green");
        assert_eq!(o.pixel(3, 0), [0, 0, 0], "background untouched");
    }

    #[test]
    fn outline_marks_only_the_boundary() {
        let img = GrayImage::zeros(5, 5);
        let mut m = GrayImage::zeros(5, 5);
        for y in 1..4 {
            for x in 1..4 {
                m.data[y * 5 + x] = 255;
            }
        }
        let o = overlay_outline(&img, &m);
        assert_eq!(o.pixel(2, 2), [0, 0, 0], "interior is not drawn");
        assert_eq!(o.pixel(1, 1), OUTLINE);
        assert_eq!(o.pixel(3, 2), OUTLINE);
        assert_eq!(o.pixel(0, 0), [0, 0, 0], "outside is not drawn");
    }

    #[test]
    fn heat_ramp_runs_blue_to_red() {
        assert_eq!(heat_colour(0.0), [0, 0, 128]);
        assert_eq!(heat_colour(1.0), [128, 0, 0]);
        let mid = heat_colour(0.5);
        assert!(mid[1] == 255 && mid[0] == 128 && mid[2] == 128, "{mid:?}");
        let img = GrayImage::zeros(2, 1);
        let h = heat_map(&img, &[0.0, 10.0]);
        assert!(h.pixel(1, 0)[0] > h.pixel(0, 0)[0], "hot pixel is redder");
    }

    #[test]
    fn rgb_png_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.png");
        let img = RgbImage {
            width: 2,
            height: 1,
            data: vec![1, 2, 3, 250, 251, 252],
        };
        save_rgb_png(&p, &img).unwrap();
        let back = image::open(&p).unwrap().into_rgb8();
        assert_eq!(back.into_raw(), img.data);
    }
}
