//! Augmentations on 8-bit grayscale images (and their masks): the weak (geometric) and strong
//! (photometric) views of Hermes (spec §3.3), resizing, and the CutMix box.
//!
//! Everything is a pure function of its inputs and an explicit [`Rng`], so a view is reproducible from
//! a seed. Geometric ops are applied identically to image and mask; masks only ever go through exact or
//! nearest-neighbour ops, so a {0, 255} mask stays {0, 255}.
//!
//! Conventions:
//! * Coordinates are `(x, y)` = (column, row), row 0 at the top. Rotations are counter-clockwise as
//!   displayed for positive angles (like `np.rot90` and `scipy.ndimage.rotate`), about the centre
//!   `((w − 1)/2, (h − 1)/2)`.
//! * Resizing uses the half-pixel (align-corners = false) convention: output pixel `x` samples the
//!   input at `(x + 0.5)·in/out − 0.5`, clamped to the border. Bilinear for images, nearest for masks
//!   (`floor((x + 0.5)·in/out)`, i.e. PyTorch's `nearest-exact`). This is not bit-identical to the
//!   Hermes code's `scipy.ndimage.zoom`, which maps corners to corners; no antialiasing either way.
//! * Every op rounds its result to the nearest integer and clamps to [0, 255].

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::image_io::GrayImage;
use crate::rng::Rng;

/// Augmentation settings; the defaults are the Hermes code's (spec §3.3). A probability of 0 switches
/// a step off.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Resize every view to `size` (`[width, height]`). Default true, `[224, 224]`.
    pub resize: bool,
    pub size: [u32; 2],
    /// Probability of rot90 (k uniform in 0..=3) followed by a flip on a random axis. Default 0.5.
    pub p_rot_flip: f64,
    /// Probability, when there was no rot90/flip, of a rotation by a whole number of degrees drawn
    /// uniformly from `rotate_degrees` (inclusive). Default 0.5 (0.25 overall), [−20, 19].
    pub p_rotate: f64,
    pub rotate_degrees: [i32; 2],
    /// Probability of colour jitter in the strong view. Default 0.8.
    pub p_jitter: f64,
    /// Brightness factor drawn from U(1 − b, 1 + b). Default 0.5.
    pub brightness: f64,
    /// Contrast factor drawn from U(1 − c, 1 + c), applied around the image mean. Default 0.5.
    pub contrast: f64,
    /// Probability of a Gaussian blur in the strong view, σ drawn from `blur_sigma`. Default 0.5,
    /// [0.1, 2.0].
    pub p_blur: f64,
    pub blur_sigma: [f64; 2],
    /// Probability that [`cutmix_box`] returns a box. Default 0.5.
    pub p_cutmix: f64,
    /// Box area as a fraction of the image. Default [0.02, 0.4].
    pub cutmix_area: [f64; 2],
    /// Box aspect ratio height / width. Default [0.3, 3.3] (UniMatch uses 1/0.3).
    pub cutmix_aspect: [f64; 2],
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            resize: true,
            size: [224, 224],
            p_rot_flip: 0.5,
            p_rotate: 0.5,
            rotate_degrees: [-20, 19],
            p_jitter: 0.8,
            brightness: 0.5,
            contrast: 0.5,
            p_blur: 0.5,
            blur_sigma: [0.1, 2.0],
            p_cutmix: 0.5,
            cutmix_area: [0.02, 0.4],
            cutmix_aspect: [0.3, 3.3],
        }
    }
}

impl AugmentConfig {
    /// No random op at all: only the resize (what evaluation uses).
    pub fn identity() -> Self {
        AugmentConfig {
            p_rot_flip: 0.0,
            p_rotate: 0.0,
            p_jitter: 0.0,
            p_blur: 0.0,
            p_cutmix: 0.0,
            ..AugmentConfig::default()
        }
    }

    /// Checks ranges; the message names the offending key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: &str| Err(DataError::Invalid(format!("augment: {key} {why}")));
        for (key, p) in [
            ("p_rot_flip", self.p_rot_flip),
            ("p_rotate", self.p_rotate),
            ("p_jitter", self.p_jitter),
            ("p_blur", self.p_blur),
            ("p_cutmix", self.p_cutmix),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(key, &format!("= {p} is not a probability in [0, 1]"));
            }
        }
        if self.resize && (self.size[0] == 0 || self.size[1] == 0) {
            return bad("size", "must be at least 1x1");
        }
        if self.rotate_degrees[0] > self.rotate_degrees[1] {
            return bad("rotate_degrees", "must be [min, max] with min <= max");
        }
        for (key, v) in [("brightness", self.brightness), ("contrast", self.contrast)] {
            if !(0.0..=1.0).contains(&v) {
                return bad(key, &format!("= {v} must be in [0, 1]"));
            }
        }
        let range_ok = |r: [f64; 2], lo: f64| r[0] >= lo && r[0] <= r[1] && r[1].is_finite();
        if !range_ok(self.blur_sigma, 0.0) || self.blur_sigma[1] <= 0.0 {
            return bad(
                "blur_sigma",
                "must be [min, max] with 0 <= min <= max, max > 0",
            );
        }
        if !range_ok(self.cutmix_area, 0.0) || self.cutmix_area[1] > 1.0 {
            return bad("cutmix_area", "must be [min, max] within [0, 1]");
        }
        if !range_ok(self.cutmix_aspect, 0.0) || self.cutmix_aspect[0] <= 0.0 {
            return bad("cutmix_aspect", "must be [min, max] with 0 < min <= max");
        }
        Ok(())
    }
}

/// Flip axis, named as in NumPy: `Vertical` = axis 0 (rows reversed, upside down), `Horizontal` =
/// axis 1 (mirror left-right).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlipAxis {
    Vertical,
    Horizontal,
}

/// The geometric op of a weak view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GeomOp {
    Identity,
    /// `k` quarter turns counter-clockwise, then a flip.
    Rot90Flip {
        k: u8,
        axis: FlipAxis,
    },
    /// Rotation about the centre (nearest, zero fill, same canvas).
    Rotate {
        degrees: i32,
    },
}

/// What [`weak_view`] did, for logging and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeakParams {
    pub op: GeomOp,
    /// Output `[width, height]`.
    pub size: [u32; 2],
}

/// Colour jitter factors. On a gray image saturation and hue are no-ops (the RGB channels are equal,
/// so blending with the grayscale is the identity and the hue is undefined), so only brightness and
/// contrast remain; `contrast_first` is their random order (torchvision permutes the four ops).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Jitter {
    pub brightness: f64,
    pub contrast: f64,
    pub contrast_first: bool,
}

/// What [`strong_view_with_params`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StrongParams {
    pub jitter: Option<Jitter>,
    pub blur_sigma: Option<f64>,
}

/// A CutMix rectangle: columns `x..x + w`, rows `y..y + h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutBox {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl CutBox {
    pub fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x && x < self.x + self.w && y >= self.y && y < self.y + self.h
    }

    pub fn area(&self) -> u64 {
        self.w as u64 * self.h as u64
    }

    /// The box as a {0, 255} mask of the given size.
    pub fn to_mask(&self, width: u32, height: u32) -> GrayImage {
        let mut m = GrayImage::zeros(width, height);
        self.fill(&mut m, None);
        m
    }

    /// Copies `src`'s pixels inside the box into `dst` (same size), the CutMix paste.
    pub fn paste(&self, dst: &mut GrayImage, src: &GrayImage) {
        assert_eq!(
            (dst.width, dst.height),
            (src.width, src.height),
            "CutMix images differ in size"
        );
        self.fill(dst, Some(src));
    }

    fn fill(&self, dst: &mut GrayImage, src: Option<&GrayImage>) {
        let w = dst.width as usize;
        let x0 = (self.x as usize).min(w);
        let x1 = (self.x as usize + self.w as usize).min(w);
        let y1 = ((self.y + self.h) as usize).min(dst.height as usize);
        for y in self.y as usize..y1 {
            let row = y * w;
            match src {
                Some(s) => {
                    dst.data[row + x0..row + x1].copy_from_slice(&s.data[row + x0..row + x1])
                }
                None => dst.data[row + x0..row + x1].fill(255),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Geometric ops (exact or nearest: valid for masks)

/// `k` quarter turns counter-clockwise, like `np.rot90(img, k)`; odd `k` swaps width and height.
pub fn rot90(img: &GrayImage, k: u8) -> GrayImage {
    let (w, h) = (img.width as usize, img.height as usize);
    let k = k % 4;
    if k == 0 {
        return img.clone();
    }
    let (ow, oh) = if k % 2 == 1 { (h, w) } else { (w, h) };
    let mut out = vec![0u8; w * h];
    for y in 0..oh {
        let row = &mut out[y * ow..(y + 1) * ow];
        for (x, o) in row.iter_mut().enumerate() {
            let (sx, sy) = match k {
                1 => (w - 1 - y, x),
                2 => (w - 1 - x, h - 1 - y),
                _ => (y, h - 1 - x),
            };
            *o = img.data[sy * w + sx];
        }
    }
    GrayImage::new(ow as u32, oh as u32, out)
}

/// Mirror along `axis` (see [`FlipAxis`]).
pub fn flip(img: &GrayImage, axis: FlipAxis) -> GrayImage {
    let w = img.width as usize;
    let mut out = Vec::with_capacity(img.data.len());
    match axis {
        FlipAxis::Vertical => {
            for row in img.data.chunks_exact(w.max(1)).rev() {
                out.extend_from_slice(row);
            }
        }
        FlipAxis::Horizontal => {
            for row in img.data.chunks_exact(w.max(1)) {
                out.extend(row.iter().rev());
            }
        }
    }
    GrayImage::new(img.width, img.height, out)
}

/// Rotation by `degrees` counter-clockwise about the centre, nearest neighbour, zero fill, same canvas
/// (`scipy.ndimage.rotate(reshape=False, order=0)`).
pub fn rotate_nearest(img: &GrayImage, degrees: f64) -> GrayImage {
    if degrees == 0.0 {
        return img.clone();
    }
    let (w, h) = (img.width as usize, img.height as usize);
    let (s, c) = degrees.to_radians().sin_cos();
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let mut out = vec![0u8; w * h];
    for y in 0..h {
        let dy = y as f64 - cy;
        // Inverse map: source = R(-θ) · (p − c) + c, in display coordinates (y down).
        let (bx, by) = (cx - s * dy, cy + c * dy);
        let row = &mut out[y * w..(y + 1) * w];
        for (x, o) in row.iter_mut().enumerate() {
            let dx = x as f64 - cx;
            // Nearest: truncating `v + 0.5` is `floor(v + 0.5)` for the non-negative values kept.
            let (fx, fy) = (bx + c * dx + 0.5, by + s * dx + 0.5);
            if fx >= 0.0 && fy >= 0.0 {
                let (sx, sy) = (fx as usize, fy as usize);
                if sx < w && sy < h {
                    *o = img.data[sy * w + sx];
                }
            }
        }
    }
    GrayImage::new(w as u32, h as u32, out)
}

/// Applies a geometric op (the same call for the image and its mask).
pub fn apply_geom(img: &GrayImage, op: GeomOp) -> GrayImage {
    match op {
        GeomOp::Identity => img.clone(),
        GeomOp::Rot90Flip { k, axis } => flip(&rot90(img, k), axis),
        GeomOp::Rotate { degrees } => rotate_nearest(img, degrees as f64),
    }
}

/// Nearest-neighbour resize (half-pixel convention); keeps a binary mask binary.
pub fn resize_nearest(img: &GrayImage, width: u32, height: u32) -> GrayImage {
    if (width, height) == (img.width, img.height) {
        return img.clone();
    }
    let idx = |n_in: u32, n_out: u32| -> Vec<usize> {
        let scale = n_in as f64 / n_out as f64;
        (0..n_out)
            .map(|o| (((o as f64 + 0.5) * scale) as usize).min(n_in as usize - 1))
            .collect()
    };
    let (xs, ys) = (idx(img.width, width), idx(img.height, height));
    let iw = img.width as usize;
    let mut out = Vec::with_capacity(width as usize * height as usize);
    for &sy in &ys {
        let row = &img.data[sy * iw..(sy + 1) * iw];
        out.extend(xs.iter().map(|&sx| row[sx]));
    }
    GrayImage::new(width, height, out)
}

/// Per output coordinate: the two input neighbours and the weight of the second.
fn bilinear_table(n_in: u32, n_out: u32) -> Vec<(usize, usize, f32)> {
    let scale = n_in as f64 / n_out as f64;
    let max = (n_in - 1) as f64;
    (0..n_out)
        .map(|o| {
            let src = ((o as f64 + 0.5) * scale - 0.5).clamp(0.0, max);
            let i0 = src.floor() as usize;
            let i1 = (i0 + 1).min(n_in as usize - 1);
            (i0, i1, (src - i0 as f64) as f32)
        })
        .collect()
}

/// Bilinear resize (half-pixel convention, border clamped, no antialiasing).
pub fn resize_bilinear(img: &GrayImage, width: u32, height: u32) -> GrayImage {
    if (width, height) == (img.width, img.height) {
        return img.clone();
    }
    let (xs, ys) = (
        bilinear_table(img.width, width),
        bilinear_table(img.height, height),
    );
    let iw = img.width as usize;
    let mut out = Vec::with_capacity(width as usize * height as usize);
    for &(y0, y1, wy) in &ys {
        let r0 = &img.data[y0 * iw..(y0 + 1) * iw];
        let r1 = &img.data[y1 * iw..(y1 + 1) * iw];
        out.extend(xs.iter().map(|&(x0, x1, wx)| {
            let a = r0[x0] as f32 + (r0[x1] as f32 - r0[x0] as f32) * wx;
            let b = r1[x0] as f32 + (r1[x1] as f32 - r1[x0] as f32) * wx;
            to_u8(a + (b - a) * wy)
        }));
    }
    GrayImage::new(width, height, out)
}

/// Rounds half up and saturates to [0, 255] (`as` saturates; this avoids a libm `roundf` call per
/// pixel).
#[inline]
fn to_u8(v: f32) -> u8 {
    (v + 0.5) as u8
}

// ---------------------------------------------------------------------------------------------------
// Photometric ops

fn apply_lut(img: &mut GrayImage, lut: &[u8; 256]) {
    for v in &mut img.data {
        *v = lut[*v as usize];
    }
}

/// Multiplies by `factor` (PIL `ImageEnhance.Brightness`).
pub fn adjust_brightness(img: &mut GrayImage, factor: f64) {
    let mut lut = [0u8; 256];
    for (i, l) in lut.iter_mut().enumerate() {
        *l = to_u8((i as f64 * factor) as f32);
    }
    apply_lut(img, &lut);
}

/// Scales the distance to the image mean by `factor` (PIL `ImageEnhance.Contrast`, whose mean is
/// rounded to an integer).
pub fn adjust_contrast(img: &mut GrayImage, factor: f64) {
    if img.data.is_empty() {
        return;
    }
    let sum: u64 = img.data.iter().map(|&v| v as u64).sum();
    let mean = (sum as f64 / img.data.len() as f64 + 0.5).floor();
    let mut lut = [0u8; 256];
    for (i, l) in lut.iter_mut().enumerate() {
        *l = to_u8((mean + factor * (i as f64 - mean)) as f32);
    }
    apply_lut(img, &lut);
}

/// Brightness and contrast in the drawn order.
pub fn color_jitter(img: &mut GrayImage, j: &Jitter) {
    if j.contrast_first {
        adjust_contrast(img, j.contrast);
        adjust_brightness(img, j.brightness);
    } else {
        adjust_brightness(img, j.brightness);
        adjust_contrast(img, j.contrast);
    }
}

/// Separable Gaussian blur with standard deviation `sigma`, kernel radius `ceil(3σ)`, borders
/// replicated (so a constant image stays constant and the mean is nearly preserved). PIL's
/// `GaussianBlur(radius=σ)`, which the Hermes code uses, approximates the same Gaussian by box blurs.
pub fn gaussian_blur(img: &GrayImage, sigma: f64) -> GrayImage {
    let (w, h) = (img.width as usize, img.height as usize);
    if sigma <= 0.0 || w == 0 || h == 0 {
        return img.clone();
    }
    let r = (3.0 * sigma).ceil() as usize;
    let mut kernel: Vec<f32> = (0..=2 * r)
        .map(|i| {
            let d = i as f64 - r as f64;
            (-d * d / (2.0 * sigma * sigma)).exp() as f32
        })
        .collect();
    let total: f32 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= total);

    // Horizontal pass into f32, through a padded copy of each row.
    let mut tmp = vec![0f32; w * h];
    let mut padded = vec![0f32; w + 2 * r];
    for y in 0..h {
        let row = &img.data[y * w..(y + 1) * w];
        for (i, p) in padded.iter_mut().enumerate() {
            *p = row[i.saturating_sub(r).min(w - 1)] as f32;
        }
        // Tap by tap over the whole row (contiguous, vectorisable).
        let out = &mut tmp[y * w..(y + 1) * w];
        for (t, &k) in kernel.iter().enumerate() {
            for (o, &v) in out.iter_mut().zip(&padded[t..t + w]) {
                *o += k * v;
            }
        }
    }
    // Vertical pass: accumulate whole rows (contiguous, vectorisable).
    let mut out = Vec::with_capacity(w * h);
    let mut acc = vec![0f32; w];
    for y in 0..h {
        acc.fill(0.0);
        for (t, &k) in kernel.iter().enumerate() {
            let sy = (y + t).saturating_sub(r).min(h - 1);
            for (a, &v) in acc.iter_mut().zip(&tmp[sy * w..(sy + 1) * w]) {
                *a += k * v;
            }
        }
        out.extend(acc.iter().map(|&v| to_u8(v)));
    }
    GrayImage::new(w as u32, h as u32, out)
}

// ---------------------------------------------------------------------------------------------------
// Views

/// Draws the weak view's geometric op: with `p_rot_flip` rot90 + flip, else with `p_rotate` a
/// rotation, else nothing.
pub fn sample_geom(cfg: &AugmentConfig, rng: &mut Rng) -> GeomOp {
    if rng.bernoulli(cfg.p_rot_flip) {
        let k = rng.int(0, 3) as u8;
        let axis = if rng.bernoulli(0.5) {
            FlipAxis::Vertical
        } else {
            FlipAxis::Horizontal
        };
        GeomOp::Rot90Flip { k, axis }
    } else if rng.bernoulli(cfg.p_rotate) {
        let [lo, hi] = cfg.rotate_degrees;
        GeomOp::Rotate {
            degrees: rng.int(lo as i64, hi as i64) as i32,
        }
    } else {
        GeomOp::Identity
    }
}

fn output_size(cfg: &AugmentConfig, img: &GrayImage) -> [u32; 2] {
    if cfg.resize {
        cfg.size
    } else {
        [img.width, img.height]
    }
}

/// The weak (geometric) view: a random op from [`sample_geom`] on image and mask alike, then the
/// resize (bilinear image, nearest mask). Panics if the mask's size differs from the image's.
pub fn weak_view(
    img: &GrayImage,
    mask: Option<&GrayImage>,
    cfg: &AugmentConfig,
    rng: &mut Rng,
) -> (GrayImage, Option<GrayImage>, WeakParams) {
    if let Some(m) = mask {
        assert_eq!(
            (m.width, m.height),
            (img.width, img.height),
            "mask and image differ in size"
        );
    }
    let op = sample_geom(cfg, rng);
    let (i, m) = (apply_geom(img, op), mask.map(|m| apply_geom(m, op)));
    let [w, h] = output_size(cfg, &i);
    let i = resize_bilinear(&i, w, h);
    let m = m.map(|m| resize_nearest(&m, w, h));
    (i, m, WeakParams { op, size: [w, h] })
}

/// The evaluation view: the resize only (bilinear image, nearest mask).
pub fn eval_view(
    img: &GrayImage,
    mask: Option<&GrayImage>,
    cfg: &AugmentConfig,
) -> (GrayImage, Option<GrayImage>) {
    let [w, h] = output_size(cfg, img);
    (
        resize_bilinear(img, w, h),
        mask.map(|m| resize_nearest(m, w, h)),
    )
}

/// The strong view of a weak view: with `p_jitter` brightness/contrast jitter, then with `p_blur` a
/// Gaussian blur. Photometric only, so it stays pixel-aligned with its input.
pub fn strong_view_with_params(
    img: &GrayImage,
    cfg: &AugmentConfig,
    rng: &mut Rng,
) -> (GrayImage, StrongParams) {
    let mut out = img.clone();
    let mut params = StrongParams::default();
    if rng.bernoulli(cfg.p_jitter) {
        let b = cfg.brightness;
        let c = cfg.contrast;
        let j = Jitter {
            brightness: rng.range((1.0 - b).max(0.0), 1.0 + b),
            contrast: rng.range((1.0 - c).max(0.0), 1.0 + c),
            contrast_first: rng.bernoulli(0.5),
        };
        color_jitter(&mut out, &j);
        params.jitter = Some(j);
    }
    if rng.bernoulli(cfg.p_blur) {
        let sigma = rng.range(cfg.blur_sigma[0], cfg.blur_sigma[1]);
        out = gaussian_blur(&out, sigma);
        params.blur_sigma = Some(sigma);
    }
    (out, params)
}

/// [`strong_view_with_params`] without the parameters.
pub fn strong_view(img: &GrayImage, cfg: &AugmentConfig, rng: &mut Rng) -> GrayImage {
    strong_view_with_params(img, cfg, rng).0
}

/// With probability `p_cutmix`, a box of `cutmix_area` · (width · height) pixels with aspect ratio
/// (height / width) from `cutmix_aspect`, placed uniformly inside the image (UniMatch's
/// `obtain_cutmix_box`, with a bounded retry instead of an endless one). `None` otherwise.
pub fn cutmix_box(width: u32, height: u32, cfg: &AugmentConfig, rng: &mut Rng) -> Option<CutBox> {
    if width == 0 || height == 0 || !rng.bernoulli(cfg.p_cutmix) {
        return None;
    }
    let area = rng.range(cfg.cutmix_area[0], cfg.cutmix_area[1]) * width as f64 * height as f64;
    let mut wh = (1, 1);
    for _ in 0..64 {
        let ratio = rng.range(cfg.cutmix_aspect[0], cfg.cutmix_aspect[1]);
        let w = (area / ratio).sqrt() as u32;
        let h = (area * ratio).sqrt() as u32;
        wh = (w.clamp(1, width), h.clamp(1, height));
        if (1..=width).contains(&w) && (1..=height).contains(&h) {
            break;
        }
    }
    let (w, h) = wh;
    let x = rng.below((width - w + 1) as usize) as u32;
    let y = rng.below((height - h + 1) as usize) as u32;
    Some(CutBox { x, y, w, h })
}
