//! Batches for training and evaluation, prepared on worker threads ahead of the step.
//!
//! # Data
//! Every image of the split's labeled, unlabeled, val and test parts is decoded once, at native size,
//! and kept in memory (8-bit gray + {0, 255} mask). Augmentation works on the native image and resizes
//! last, as the Hermes pipeline does (spec §3.3), so caching pre-resized images would change the views.
//!
//! # Batches
//! Images are `f32` NCHW in [0, 1]; gray is replicated to `channels` (1 or 3). No mean/std
//! normalisation here: that belongs to the backbone (its pretrained weights decide). Masks are `u8`
//! 0/1 per pixel (N·H·W). A labeled image without a mask has an all-zero mask and `has_mask = false`;
//! one without a class label has label −1.
//!
//! # Sampling (spec §3.4, with the §13 fix)
//! * An **epoch** is one pass over the unlabeled part: a fresh permutation per epoch, cut into
//!   `⌊N_u / B_u⌋` batches (the last partial batch dropped). Without unlabeled batches
//!   (`batch_unlabeled = 0`, supervised) the labeled part defines it the same way.
//! * The **labeled** stream is an endless sequence of passes, each a fresh permutation (and every
//!   batch freshly augmented), cut into batches one per step — never a replay of a cached pass like
//!   `itertools.cycle`. A batch may straddle two passes, so no image is ever left out and a labeled
//!   part smaller than a batch still works.
//! * **Eval** batches follow the part's order and keep the last partial batch.
//!
//! # Determinism
//! The batch of step `t` is a pure function of (seed, t, data): permutations come from
//! `Rng` streams keyed by (purpose, epoch or pass), augmentations from streams keyed by (purpose, step,
//! slot in the batch). Workers only decide *when* a batch is made, never *what* it is, so a run resumed
//! at step `t` receives exactly the batches it would have had, for any thread count.

mod prefetch;

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;
use semisono_data::augment::{eval_view, strong_view, weak_view, AugmentConfig};
use semisono_data::rng::Rng;
use semisono_data::split::{Part, Split};
use semisono_data::{DataError, Dataset, GrayImage};

use crate::config::TrainConfig;
use crate::schedule::EpochPlan;

pub use prefetch::Prefetch;

/// Stream purposes, kept apart from other users of the same seed (splits use small stream ids).
const LABELED_ORDER: u64 = 0x4C4F_4144_0000_0001;
const UNLABELED_ORDER: u64 = 0x4C4F_4144_0000_0002;
const LABELED_AUG: u64 = 0x4C4F_4144_0000_0003;
const UNLABELED_AUG: u64 = 0x4C4F_4144_0000_0004;

#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("{0}")]
    Invalid(String),
}

/// What the loader needs from the run configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct LoaderConfig {
    pub seed: u64,
    pub batch_labeled: usize,
    /// 0 = no unlabeled batches (supervised).
    pub batch_unlabeled: usize,
    pub batch_eval: usize,
    /// 1, or 3 for gray replicated.
    pub channels: usize,
    /// Must resize (batches need one size).
    pub augment: AugmentConfig,
    /// Threads making batches; 0 = on the consumer's thread.
    pub workers: usize,
    /// Batches each worker may have ready.
    pub prefetch: usize,
}

impl LoaderConfig {
    pub fn from_config(cfg: &TrainConfig) -> Self {
        LoaderConfig {
            seed: cfg.seed,
            batch_labeled: cfg.batch_labeled,
            batch_unlabeled: cfg.batch_unlabeled,
            batch_eval: cfg.batch_eval,
            channels: cfg.model.in_channels,
            augment: cfg.augment_resolved(),
            workers: cfg.data.workers,
            prefetch: cfg.data.prefetch,
        }
    }
}

/// One image held in memory, at native size.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub id: String,
    pub image: GrayImage,
    /// {0, 255}, the image's size.
    pub mask: Option<GrayImage>,
    pub label: Option<u32>,
    /// Physical pixel size (row, col) in mm when the dataset knows it; distances are in mm then.
    pub pixel_spacing_mm: Option<[f64; 2]>,
}

/// `n` images as `f32` NCHW in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct ImageBatch {
    pub n: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

impl ImageBatch {
    fn with_capacity(n: usize, channels: usize, [w, h]: [u32; 2]) -> Self {
        let (width, height) = (w as usize, h as usize);
        ImageBatch {
            n: 0,
            channels,
            height,
            width,
            data: Vec::with_capacity(n * channels * height * width),
        }
    }

    /// Images of one size as a batch; each gray image is repeated over `channels`.
    pub fn from_images(images: &[GrayImage], channels: usize) -> Self {
        let size = images.first().map_or([0, 0], |i| [i.width, i.height]);
        let mut b = ImageBatch::with_capacity(images.len(), channels, size);
        for img in images {
            assert_eq!(
                [img.width, img.height],
                size,
                "a batch needs images of one size"
            );
            b.push(img);
        }
        b
    }

    pub fn shape(&self) -> [usize; 4] {
        [self.n, self.channels, self.height, self.width]
    }

    fn push(&mut self, img: &GrayImage) {
        debug_assert_eq!(
            (img.width as usize, img.height as usize),
            (self.width, self.height)
        );
        for _ in 0..self.channels {
            self.data.extend(img.data.iter().map(|&v| v as f32 / 255.0));
        }
        self.n += 1;
    }
}

/// Images with their masks and class labels (labeled training data, or evaluation data).
#[derive(Clone, Debug, PartialEq)]
pub struct LabeledBatch {
    pub ids: Vec<String>,
    pub images: ImageBatch,
    /// 0/1 per pixel, N·H·W.
    pub masks: Vec<u8>,
    pub has_mask: Vec<bool>,
    /// Class label, −1 where the image has none.
    pub labels: Vec<i64>,
}

impl LabeledBatch {
    fn new(n: usize, channels: usize, size: [u32; 2]) -> Self {
        LabeledBatch {
            ids: Vec::with_capacity(n),
            images: ImageBatch::with_capacity(n, channels, size),
            masks: Vec::with_capacity(n * (size[0] * size[1]) as usize),
            has_mask: Vec::with_capacity(n),
            labels: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, s: &Sample, img: &GrayImage, mask: Option<&GrayImage>) {
        self.ids.push(s.id.clone());
        self.images.push(img);
        match mask {
            Some(m) => self
                .masks
                .extend(m.data.iter().map(|&v| u8::from(v >= 128))),
            None => self.masks.resize(self.masks.len() + img.data.len(), 0),
        }
        self.has_mask.push(mask.is_some());
        self.labels.push(s.label.map_or(-1, i64::from));
    }
}

/// Unlabeled images as a weak (geometric) view and a pixel-aligned strong (photometric) view of it.
#[derive(Clone, Debug, PartialEq)]
pub struct UnlabeledBatch {
    pub ids: Vec<String>,
    pub weak: ImageBatch,
    pub strong: ImageBatch,
}

/// Everything one training step consumes.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainBatch {
    /// 1-based global step.
    pub step: u64,
    /// 0-based epoch of the step.
    pub epoch: u64,
    pub labeled: LabeledBatch,
    /// `None` when `batch_unlabeled = 0`.
    pub unlabeled: Option<UnlabeledBatch>,
}

/// One evaluation batch: the resized images and masks, plus the native samples so that predictions
/// can be resized back and scored at native resolution.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalBatch {
    /// 0-based batch index within the part.
    pub index: usize,
    pub batch: LabeledBatch,
    /// `[width, height]` of each native image.
    pub native_sizes: Vec<[u32; 2]>,
    pub samples: Vec<Arc<Sample>>,
}

struct Inner {
    cfg: LoaderConfig,
    samples: Vec<Arc<Sample>>,
    by_id: HashMap<String, usize>,
    /// Sample indices of each part, in the split's order.
    labeled: Vec<usize>,
    unlabeled: Vec<usize>,
    val: Vec<usize>,
    test: Vec<usize>,
    iters_per_epoch: u64,
}

/// The batch source of a run. Cheap to clone (shared data).
#[derive(Clone)]
pub struct Loader {
    inner: Arc<Inner>,
}

impl Loader {
    /// Loads every image of the split's labeled, unlabeled, val and test parts (in parallel) and
    /// checks that batches can be formed.
    pub fn new(dataset: &Dataset, split: &Split, cfg: LoaderConfig) -> Result<Self, LoaderError> {
        let invalid = |m: String| Err(LoaderError::Invalid(m));
        if cfg.channels != 1 && cfg.channels != 3 {
            return invalid(format!("channels = {} must be 1 or 3", cfg.channels));
        }
        if !cfg.augment.resize || cfg.augment.size.contains(&0) {
            return invalid("the augmentation must resize to a fixed size, for batching".into());
        }
        cfg.augment.validate()?;
        if cfg.batch_labeled == 0 || cfg.batch_eval == 0 {
            return invalid("batch_labeled and batch_eval must be at least 1".into());
        }
        let split_name = split
            .path
            .as_ref()
            .map_or_else(|| "the split".to_string(), |p| p.display().to_string());
        let parts = [Part::Labeled, Part::Unlabeled, Part::Val, Part::Test];
        let ids: Vec<&String> = parts.iter().flat_map(|&p| split.part(p)).collect();
        let samples = ids
            .par_iter()
            .map(|id| load_sample(dataset, id, &split_name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut by_id = HashMap::with_capacity(samples.len());
        for (i, s) in samples.iter().enumerate() {
            by_id.entry(s.id.clone()).or_insert(i);
        }
        let indices =
            |p: Part| -> Vec<usize> { split.part(p).iter().map(|id| by_id[id]).collect() };
        let (labeled, unlabeled) = (indices(Part::Labeled), indices(Part::Unlabeled));
        if labeled.is_empty() {
            return invalid(format!("{split_name} has no labeled images"));
        }
        for &i in &labeled {
            let s = &samples[i];
            if s.mask.is_none() && s.label.is_none() {
                return invalid(format!(
                    "{split_name}: labeled image {:?} has neither a mask nor a class label",
                    s.id
                ));
            }
        }
        let iters_per_epoch = if cfg.batch_unlabeled > 0 {
            if unlabeled.len() < cfg.batch_unlabeled {
                return invalid(format!(
                    "{split_name} has {} unlabeled images, fewer than batch_unlabeled = {}",
                    unlabeled.len(),
                    cfg.batch_unlabeled
                ));
            }
            (unlabeled.len() / cfg.batch_unlabeled) as u64
        } else {
            (labeled.len() / cfg.batch_labeled).max(1) as u64
        };
        Ok(Loader {
            inner: Arc::new(Inner {
                val: indices(Part::Val),
                test: indices(Part::Test),
                samples: samples.into_iter().map(Arc::new).collect(),
                by_id,
                labeled,
                unlabeled,
                iters_per_epoch,
                cfg,
            }),
        })
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.inner.cfg
    }

    /// Steps per epoch: ⌊N_u / B_u⌋ (or ⌊N_l / B_l⌋, at least 1, without unlabeled batches).
    pub fn iters_per_epoch(&self) -> u64 {
        self.inner.iters_per_epoch
    }

    /// The run's epoch plan for at most `max_steps` steps (see [`EpochPlan::new`]).
    pub fn epoch_plan(&self, max_steps: u64, whole_epochs: bool) -> EpochPlan {
        let c = &self.inner.cfg;
        let (items, batch) = if c.batch_unlabeled > 0 {
            (self.inner.unlabeled.len(), c.batch_unlabeled)
        } else {
            (self.inner.labeled.len(), c.batch_labeled)
        };
        EpochPlan::new(items, batch, max_steps, whole_epochs)
    }

    /// 0-based epoch of 1-based `step`.
    pub fn epoch_of(&self, step: u64) -> u64 {
        step.saturating_sub(1) / self.inner.iters_per_epoch
    }

    /// A cached image by id.
    pub fn sample(&self, id: &str) -> Option<&Arc<Sample>> {
        self.inner.by_id.get(id).map(|&i| &self.inner.samples[i])
    }

    /// Number of images in a part (`Excluded` is not loaded: 0).
    pub fn part_len(&self, part: Part) -> usize {
        self.inner.part(part).len()
    }

    /// The batch of 1-based step `step` (`step = 0` is treated as 1).
    pub fn train_batch(&self, step: u64) -> TrainBatch {
        self.inner.train_batch(step.max(1))
    }

    /// The batches of steps `first..=last`, made ahead on `workers` threads. To resume at step `k`,
    /// start at `k`.
    pub fn train_batches(&self, first: u64, last: u64) -> Prefetch<TrainBatch> {
        let inner = self.inner.clone();
        Prefetch::new(
            first.max(1),
            last.saturating_add(1),
            inner.cfg.workers,
            inner.cfg.prefetch,
            Arc::new(move |t| inner.train_batch(t)),
        )
    }

    /// Number of eval batches of `part` (the last may be partial).
    pub fn eval_batch_count(&self, part: Part) -> usize {
        self.part_len(part).div_ceil(self.inner.cfg.batch_eval)
    }

    /// Eval batch `index` of `part`. Panics if out of range.
    pub fn eval_batch(&self, part: Part, index: usize) -> EvalBatch {
        self.inner.eval_batch(part, index)
    }

    /// All eval batches of `part`, in order, made ahead on the worker threads.
    pub fn eval_batches(&self, part: Part) -> Prefetch<EvalBatch> {
        let inner = self.inner.clone();
        let n = self.eval_batch_count(part) as u64;
        Prefetch::new(
            0,
            n,
            inner.cfg.workers,
            inner.cfg.prefetch,
            Arc::new(move |i| inner.eval_batch(part, i as usize)),
        )
    }
}

fn load_sample(ds: &Dataset, id: &str, split_name: &str) -> Result<Sample, LoaderError> {
    let Some(entry) = ds.get(id) else {
        return Err(LoaderError::Invalid(format!(
            "{split_name} lists {id:?}, which is not in the dataset {}; was the split made for \
             another dataset?",
            ds.root.display()
        )));
    };
    let image = ds.load_image(entry)?;
    let mask = ds.load_mask(entry)?;
    if let Some(m) = &mask {
        if (m.width, m.height) != (image.width, image.height) {
            return Err(LoaderError::Invalid(format!(
                "{id}: mask is {}x{} but the image is {}x{}",
                m.width, m.height, image.width, image.height
            )));
        }
    }
    Ok(Sample {
        id: id.to_string(),
        image,
        mask,
        label: entry.label,
        pixel_spacing_mm: entry.pixel_spacing_mm,
    })
}

/// The generator for (purpose, a, b): one level of derivation per key, so different purposes,
/// epochs, steps and slots never share a stream.
fn stream(seed: u64, purpose: u64, a: u64, b: u64) -> Rng {
    let p = Rng::derive(seed, purpose).next_u64();
    let pa = Rng::derive(p, a).next_u64();
    Rng::derive(pa, b)
}

impl Inner {
    fn part(&self, part: Part) -> &[usize] {
        match part {
            Part::Labeled => &self.labeled,
            Part::Unlabeled => &self.unlabeled,
            Part::Val => &self.val,
            Part::Test => &self.test,
            Part::Excluded => &[],
        }
    }

    /// `items` shuffled with the stream of (purpose, round).
    fn permutation(&self, items: &[usize], purpose: u64, round: u64) -> Vec<usize> {
        let mut v = items.to_vec();
        stream(self.cfg.seed, purpose, round, 0).shuffle(&mut v);
        v
    }

    fn train_batch(&self, step: u64) -> TrainBatch {
        let c = &self.cfg;
        let epoch = (step - 1) / self.iters_per_epoch;
        let size = c.augment.size;

        // Labeled: items (step − 1)·B .. step·B of the endless sequence of shuffled passes.
        let n_l = self.labeled.len() as u64;
        let mut labeled = LabeledBatch::new(c.batch_labeled, c.channels, size);
        let mut pass: Option<(u64, Vec<usize>)> = None;
        for slot in 0..c.batch_labeled as u64 {
            let item = (step - 1) * c.batch_labeled as u64 + slot;
            let p = item / n_l;
            if pass.as_ref().is_none_or(|(q, _)| *q != p) {
                pass = Some((p, self.permutation(&self.labeled, LABELED_ORDER, p)));
            }
            let s = &self.samples[pass.as_ref().expect("set above").1[(item % n_l) as usize]];
            let mut rng = stream(c.seed, LABELED_AUG, step, slot);
            let (img, mask, _) = weak_view(&s.image, s.mask.as_ref(), &c.augment, &mut rng);
            labeled.push(s, &img, mask.as_ref());
        }

        // Unlabeled: batch j of this epoch's permutation; weak view, then its strong view.
        let unlabeled = (c.batch_unlabeled > 0).then(|| {
            let perm = self.permutation(&self.unlabeled, UNLABELED_ORDER, epoch);
            let j = ((step - 1) % self.iters_per_epoch) as usize;
            let mut ids = Vec::with_capacity(c.batch_unlabeled);
            let mut weak = ImageBatch::with_capacity(c.batch_unlabeled, c.channels, size);
            let mut strong = ImageBatch::with_capacity(c.batch_unlabeled, c.channels, size);
            let slots = &perm[j * c.batch_unlabeled..(j + 1) * c.batch_unlabeled];
            for (slot, &i) in slots.iter().enumerate() {
                let s = &self.samples[i];
                let mut rng = stream(c.seed, UNLABELED_AUG, step, slot as u64);
                let (w, _, _) = weak_view(&s.image, None, &c.augment, &mut rng);
                strong.push(&strong_view(&w, &c.augment, &mut rng));
                weak.push(&w);
                ids.push(s.id.clone());
            }
            UnlabeledBatch { ids, weak, strong }
        });
        TrainBatch {
            step,
            epoch,
            labeled,
            unlabeled,
        }
    }

    fn eval_batch(&self, part: Part, index: usize) -> EvalBatch {
        let c = &self.cfg;
        let items = self.part(part);
        let start = index * c.batch_eval;
        assert!(
            start < items.len(),
            "eval batch {index} of {} is out of range",
            part.as_str()
        );
        let chunk = &items[start..(start + c.batch_eval).min(items.len())];
        let mut batch = LabeledBatch::new(chunk.len(), c.channels, c.augment.size);
        let mut native_sizes = Vec::with_capacity(chunk.len());
        let mut samples = Vec::with_capacity(chunk.len());
        for &i in chunk {
            let s = &self.samples[i];
            let (img, mask) = eval_view(&s.image, s.mask.as_ref(), &c.augment);
            batch.push(s, &img, mask.as_ref());
            native_sizes.push([s.image.width, s.image.height]);
            samples.push(s.clone());
        }
        EvalBatch {
            index,
            batch,
            native_sizes,
            samples,
        }
    }
}
