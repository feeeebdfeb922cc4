//! Per-class FIFO memory banks for the contrastive losses (Hermes paper Fig. 2, spec §5.6 "Memory
//! bank" and §13; the released code has none).
//!
//! A bank holds, per class, at most `capacity` detached vectors of `dim` values on the host,
//! oldest first; a push into a full class drops its oldest entry. Two uses:
//! * pixel contrast: UGPCL's "segment queue", one L2-normalised mean embedding per (image, class)
//!   of the certainty labels ([`MemoryBank::push_segment_means`]), background included (in a
//!   binary task the background anchors would otherwise have no positives);
//! * image SupCon: the projections `h` of kept samples ([`MemoryBank::push_rows`]).
//!
//! The entries are plain `f32`s so that a training method can save them with its checkpoint and a
//! resumed run continues with exactly the same bank.

use std::collections::VecDeque;

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::nets::heads::EMBEDDING_NORM_EPS;
use crate::ops::int_tensor_to_vec;

/// Per-class FIFO of vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryBank {
    dim: usize,
    capacity: usize,
    queues: Vec<VecDeque<Vec<f32>>>,
}

/// [`MemoryBank::from_entries`] got entries that do not fit the bank's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("memory bank: {0}")]
pub struct BankShapeError(String);

impl MemoryBank {
    /// An empty bank for `classes` classes, `capacity` entries per class, vectors of `dim`.
    pub fn new(classes: usize, capacity: usize, dim: usize) -> Self {
        assert!(
            classes > 0 && capacity > 0 && dim > 0,
            "MemoryBank: classes, capacity and dim must be > 0"
        );
        Self {
            dim,
            capacity,
            queues: vec![VecDeque::new(); classes],
        }
    }

    /// A bank with the given entries: `entries[c]` holds class `c`'s vectors back to back, oldest
    /// first (the layout of [`class_entries`](Self::class_entries)).
    pub fn from_entries(
        capacity: usize,
        dim: usize,
        entries: Vec<Vec<f32>>,
    ) -> Result<Self, BankShapeError> {
        if entries.is_empty() || capacity == 0 || dim == 0 {
            return Err(BankShapeError(
                "classes, capacity and dim must be > 0".into(),
            ));
        }
        let mut bank = Self::new(entries.len(), capacity, dim);
        for (class, flat) in entries.into_iter().enumerate() {
            if !flat.len().is_multiple_of(dim) || flat.len() / dim > capacity {
                return Err(BankShapeError(format!(
                    "class {class} has {} values: not a multiple of dim {dim} or more than \
                     {capacity} entries",
                    flat.len()
                )));
            }
            bank.queues[class] = flat.chunks(dim).map(<[f32]>::to_vec).collect();
        }
        Ok(bank)
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.queues.len()
    }

    /// Entries per class at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Length of every vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Entries of `class` now.
    pub fn len(&self, class: usize) -> usize {
        self.queues[class].len()
    }

    /// Entries of all classes now.
    pub fn total_len(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    /// No entry in any class.
    pub fn is_empty(&self) -> bool {
        self.total_len() == 0
    }

    /// Class `class`'s vectors back to back, oldest first.
    pub fn class_entries(&self, class: usize) -> Vec<f32> {
        self.queues[class].iter().flatten().copied().collect()
    }

    /// Appends `entry` to `class`, dropping the class's oldest entry when it is full.
    pub fn push(&mut self, class: usize, entry: &[f32]) {
        assert_eq!(
            entry.len(),
            self.dim,
            "MemoryBank::push: wrong vector length"
        );
        let queue = &mut self.queues[class];
        if queue.len() == self.capacity {
            queue.pop_front();
        }
        queue.push_back(entry.to_vec());
    }

    /// Pushes each row of `rows` `[N, dim]` (detached values) into the class `labels[i]`; rows
    /// with a negative label are skipped.
    pub fn push_rows(&mut self, rows: Tensor<2>, labels: &[i64]) {
        let [n, dim] = rows.dims();
        assert_eq!(n, labels.len(), "MemoryBank::push_rows: one label per row");
        assert_eq!(dim, self.dim, "MemoryBank::push_rows: wrong vector length");
        let values = host_f32(rows);
        for (row, &label) in values.chunks(dim).zip(labels) {
            if label >= 0 {
                self.push(label as usize, row);
            }
        }
    }

    /// UGPCL's segment-queue update: for each image and each class present in its `labels`
    /// `[B, h, w]` (at the embeddings' resolution; `ignore_label` skipped), the mean of that
    /// class's embeddings `[B, dim, h, w]`, L2-normalised, is pushed. Images in order, classes
    /// ascending.
    pub fn push_segment_means(
        &mut self,
        embeddings: Tensor<4>,
        labels: Tensor<3, Int>,
        ignore_label: i64,
    ) {
        let [batch, dim, h, w] = embeddings.dims();
        assert_eq!(
            dim, self.dim,
            "MemoryBank::push_segment_means: embedding width"
        );
        assert_eq!(labels.dims(), [batch, h, w], "MemoryBank: label shape");
        let pixels = h * w;
        let values = host_f32(embeddings);
        let labels = int_tensor_to_vec(labels);
        for b in 0..batch {
            let image_labels = &labels[b * pixels..(b + 1) * pixels];
            let image = &values[b * dim * pixels..(b + 1) * dim * pixels];
            for class in 0..self.classes() as i64 {
                if class == ignore_label {
                    continue;
                }
                let members: Vec<usize> =
                    (0..pixels).filter(|&p| image_labels[p] == class).collect();
                if members.is_empty() {
                    continue;
                }
                let mut mean: Vec<f32> = (0..dim)
                    .map(|d| {
                        let channel = &image[d * pixels..(d + 1) * pixels];
                        members.iter().map(|&p| channel[p]).sum::<f32>() / members.len() as f32
                    })
                    .collect();
                normalise(&mut mean);
                self.push(class as usize, &mean);
            }
        }
    }

    /// Every entry as a contrast set: `([M, dim], [M] class ids)`, classes ascending, oldest first
    /// within a class. `None` when the bank is empty.
    pub fn contrast_set(&self, device: &Device) -> Option<(Tensor<2>, Tensor<1, Int>)> {
        let m = self.total_len();
        if m == 0 {
            return None;
        }
        let mut values = Vec::with_capacity(m * self.dim);
        let mut classes = Vec::with_capacity(m);
        for (class, queue) in self.queues.iter().enumerate() {
            for entry in queue {
                values.extend_from_slice(entry);
                classes.push(class as i64);
            }
        }
        Some((
            Tensor::from_data(TensorData::new(values, [m, self.dim]), device),
            Tensor::from_data(TensorData::new(classes, [m]), device),
        ))
    }
}

/// `F.normalize(v, dim=0)`: `v / max(‖v‖, ε)`.
fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let scale = 1.0 / norm.max(EMBEDDING_NORM_EPS as f32);
    v.iter_mut().for_each(|x| *x *= scale);
}

fn host_f32<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>()
        .expect("float tensor data converts to f32")
}
