//! Patches on the host (specs/patchcl.md §3, §5): cutting class-wise masked crops out of a batch,
//! their filter scores, the teacher's augmentations and the class-balanced teacher batch.

use semisono_data::rng::Rng;

use super::geometry::{background_windows, foreground_windows, Window};

/// One image to cut: `channels × h × w` pixels in [0, 1], a class per pixel, and (for pseudo-labels
/// under the entropy filter) the teacher's normalised entropy per pixel.
pub struct Source<'a> {
    pub pixels: &'a [f32],
    pub labels: &'a [u8],
    pub entropy: Option<&'a [f32]>,
}

/// A crop multiplied by its class mask (other classes' pixels are 0), with its filter scores.
#[derive(Clone, Debug, PartialEq)]
pub struct Patch {
    /// `channels × p × p`.
    pub data: Vec<f32>,
    /// The class mask inside the window, `p × p`.
    pub mask: Vec<bool>,
    /// Class pixels with a non-zero image value / p² (the code's criterion).
    pub coverage: f64,
    /// Mean normalised teacher entropy over the class pixels; 0 for ground-truth labels.
    pub entropy: f64,
}

/// Geometry of a batch: image size, patch size, channels, classes and the NMS threshold.
#[derive(Clone, Copy, Debug)]
pub struct Cutter {
    pub h: usize,
    pub w: usize,
    pub p: usize,
    pub channels: usize,
    pub classes: usize,
    pub nms: f64,
}

impl Cutter {
    /// Every class's patches of `sources`, per class (§3): background windows on the grid,
    /// foreground windows per connected component with per-image NMS. Windows without a pixel
    /// of their class are dropped (the code keeps all-zero background patches, which carry
    /// nothing but the filter always keeps).
    pub fn cut(&self, sources: &[Source<'_>]) -> Vec<Vec<Patch>> {
        let mut out: Vec<Vec<Patch>> = vec![Vec::new(); self.classes];
        for s in sources {
            assert_eq!(s.labels.len(), self.h * self.w, "label map size");
            assert_eq!(
                s.pixels.len(),
                self.channels * self.h * self.w,
                "image size"
            );
            for (class, patches) in out.iter_mut().enumerate() {
                let windows = if class == 0 {
                    background_windows(self.h, self.w, self.p)
                } else {
                    let mask: Vec<bool> = s.labels.iter().map(|&l| l as usize == class).collect();
                    if !mask.iter().any(|&m| m) {
                        continue;
                    }
                    foreground_windows(&mask, self.h, self.w, self.p, self.nms)
                };
                patches.extend(windows.iter().filter_map(|win| self.crop(s, class, win)));
            }
        }
        out
    }

    fn crop(&self, s: &Source<'_>, class: usize, win: &Window) -> Option<Patch> {
        let (p, hw) = (self.p, self.h * self.w);
        let [r0, c0, ..] = *win;
        let mut data = vec![0.0f32; self.channels * p * p];
        let mut mask = vec![false; p * p];
        let (mut covered, mut pixels, mut entropy) = (0usize, 0usize, 0.0f64);
        for r in 0..p {
            for c in 0..p {
                let i = (r0 + r) * self.w + c0 + c;
                if s.labels[i] as usize != class {
                    continue;
                }
                mask[r * p + c] = true;
                pixels += 1;
                let mut sum = 0.0;
                for ch in 0..self.channels {
                    let v = s.pixels[ch * hw + i];
                    data[ch * p * p + r * p + c] = v;
                    sum += v;
                }
                covered += usize::from(sum > 0.0);
                entropy += s.entropy.map_or(0.0, |e| f64::from(e[i]));
            }
        }
        (pixels > 0).then(|| Patch {
            data,
            mask,
            coverage: covered as f64 / (p * p) as f64,
            entropy: entropy / pixels as f64,
        })
    }
}

/// The teacher's augmentation of one patch copy (§5, for gray images): horizontal flip with
/// p = 0.7, then 1–3 of additive Gaussian noise (σ ∈ [0, 0.05]), linear contrast [0.5, 1.5] around
/// 0.5 and multiply [0.5, 1.5], clamped to [0, 1] and masked again. The code's crop-and-resize,
/// hue/saturation and grayscale blending are left out: the last two do nothing to gray images, and
/// re-masking keeps the "other classes are 0" rule that the photometric ops would break.
pub fn augment(patch: &Patch, p: usize, channels: usize, rng: &mut Rng) -> Patch {
    let mut out = patch.clone();
    if rng.bernoulli(0.7) {
        for r in 0..p {
            for c in 0..p / 2 {
                let (a, b) = (r * p + c, r * p + p - 1 - c);
                out.mask.swap(a, b);
                for ch in 0..channels {
                    out.data.swap(ch * p * p + a, ch * p * p + b);
                }
            }
        }
    }
    let mut ops = [0usize, 1, 2];
    rng.shuffle(&mut ops);
    let n_ops = 1 + rng.below(3);
    for &op in &ops[..n_ops] {
        match op {
            0 => {
                let sigma = rng.range(0.0, 0.05) as f32;
                // One draw per pixel, shared by the channels, so replicated gray stays gray.
                for i in 0..p * p {
                    let n = sigma * gauss(rng);
                    for ch in 0..channels {
                        out.data[ch * p * p + i] += n;
                    }
                }
            }
            1 => {
                let a = rng.range(0.5, 1.5) as f32;
                out.data.iter_mut().for_each(|v| *v = 0.5 + a * (*v - 0.5));
            }
            _ => {
                let m = rng.range(0.5, 1.5) as f32;
                out.data.iter_mut().for_each(|v| *v *= m);
            }
        }
    }
    for ch in 0..channels {
        for i in 0..p * p {
            let v = &mut out.data[ch * p * p + i];
            *v = if out.mask[i] { v.clamp(0.0, 1.0) } else { 0.0 };
        }
    }
    out
}

fn gauss(rng: &mut Rng) -> f32 {
    let u1 = 1.0 - rng.uniform();
    let u2 = rng.uniform();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// The class-balanced teacher batch (§5 `batch_augment`): with K_p classes present, each gets
/// q = ⌈total/K_p⌉ patches — a random q of its own if it has that many, else all of them
/// (shuffled) followed by augmented copies of all of them, round after round, cut at q. Works on
/// copies: the student's patches keep their order (the code shuffles them in place, §10.9).
pub fn teacher_batch(
    classes: &[Vec<Patch>],
    total: usize,
    p: usize,
    channels: usize,
    rng: &mut Rng,
) -> Vec<Vec<Patch>> {
    let present = classes.iter().filter(|c| !c.is_empty()).count();
    if present == 0 {
        return vec![Vec::new(); classes.len()];
    }
    let q = total.div_ceil(present);
    classes
        .iter()
        .map(|patches| {
            if patches.is_empty() {
                return Vec::new();
            }
            let mut order: Vec<usize> = (0..patches.len()).collect();
            rng.shuffle(&mut order);
            let mut out: Vec<Patch> = order.iter().map(|&i| patches[i].clone()).collect();
            while out.len() < q {
                rng.shuffle(&mut order);
                for &i in &order {
                    out.push(augment(&patches[i], p, channels, rng));
                }
            }
            out.truncate(q);
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cutter() -> Cutter {
        Cutter {
            h: 8,
            w: 8,
            p: 4,
            channels: 1,
            classes: 2,
            nms: 0.8,
        }
    }

    #[test]
    fn patches_are_masked_crops_with_their_coverage() {
        // A 4×4 lesion at rows/cols 2..6; one of its pixels is black.
        let mut labels = vec![0u8; 64];
        let mut pixels = vec![0.5f32; 64];
        for r in 2..6 {
            for c in 2..6 {
                labels[r * 8 + c] = 1;
            }
        }
        pixels[2 * 8 + 2] = 0.0;
        let src = Source {
            pixels: &pixels,
            labels: &labels,
            entropy: None,
        };
        let out = cutter().cut(&[src]);
        assert_eq!(out[1].len(), 1);
        let fg = &out[1][0];
        assert_eq!(fg.mask.iter().filter(|&&m| m).count(), 16);
        assert!((fg.coverage - 15.0 / 16.0).abs() < 1e-12);
        // Background: 4 grid windows, each with 12 background pixels (the lesion's quarter is 0).
        assert_eq!(out[0].len(), 4);
        for b in &out[0] {
            assert_eq!(b.data.iter().filter(|&&v| v > 0.0).count(), 12);
            assert!((b.coverage - 0.75).abs() < 1e-12);
        }
    }

    #[test]
    fn teacher_batch_is_balanced_and_leaves_the_input_alone() {
        let patch = |v: f32| Patch {
            data: vec![v; 16],
            mask: vec![true; 16],
            coverage: 1.0,
            entropy: 0.0,
        };
        let classes = vec![
            (0..10).map(|i| patch(i as f32 / 10.0)).collect(),
            vec![patch(0.9)],
        ];
        let before = classes.clone();
        let mut rng = Rng::new(3);
        let batch = teacher_batch(&classes, 8, 4, 1, &mut rng);
        assert_eq!(classes, before);
        assert_eq!((batch[0].len(), batch[1].len()), (4, 4));
        // Class 1 has one patch: the original first, then augmented copies inside [0, 1].
        assert_eq!(batch[1][0], classes[1][0]);
        assert!(batch[1]
            .iter()
            .flat_map(|p| &p.data)
            .all(|v| (0.0..=1.0).contains(v)));
        assert!(batch[1][1..].iter().any(|p| p.data != classes[1][0].data));
    }
}
