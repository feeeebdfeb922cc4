//! PatchCL's method state besides weights and optimizers: the per-class embedding queues (§5), the
//! filter thresholds (§4) and the step counts of the two phases, in one checkpoint file. Values
//! are stored as bit patterns, so a resumed run continues with exactly the same state.

use std::collections::VecDeque;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

use super::filter::SaFilter;

pub const STATE_FILE: &str = "patchcl-state.json";
const FORMAT: u32 = 1;

/// Per-class FIFO queues of teacher embeddings, the newest `capacity` kept.
#[derive(Clone, Debug, PartialEq)]
pub struct Queues {
    pub capacity: usize,
    pub dim: usize,
    pub classes: Vec<VecDeque<Vec<f32>>>,
}

impl Queues {
    pub fn new(classes: usize, capacity: usize, dim: usize) -> Self {
        Queues {
            capacity,
            dim,
            classes: vec![VecDeque::new(); classes],
        }
    }

    /// Appends `rows` to class `c`, dropping the oldest beyond the capacity.
    pub fn push(&mut self, c: usize, rows: impl IntoIterator<Item = Vec<f32>>) {
        let q = &mut self.classes[c];
        for r in rows {
            debug_assert_eq!(r.len(), self.dim);
            q.push_back(r);
        }
        while q.len() > self.capacity {
            q.pop_front();
        }
    }

    /// Class `c`'s entries in `f64`, oldest first.
    pub fn entries(&self, c: usize) -> Vec<Vec<f64>> {
        self.classes[c]
            .iter()
            .map(|r| r.iter().map(|&v| f64::from(v)).collect())
            .collect()
    }
}

/// Everything [`STATE_FILE`] restores.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodState {
    pub queues: Queues,
    pub filter: SaFilter,
    /// Optimizer steps taken in phase 1 and in phase 2 (which optimizer files exist).
    pub phase_steps: [u64; 2],
}

#[derive(Serialize, Deserialize)]
struct StateRecord {
    format: u32,
    capacity: usize,
    dim: usize,
    /// Per class, the entries back to back (oldest first) as `f32::to_bits`.
    queues: Vec<Vec<u32>>,
    /// θ_c as `f64::to_bits`.
    theta: Vec<u64>,
    count: Vec<u64>,
    phase_steps: [u64; 2],
}

impl MethodState {
    pub fn save(&self, dir: &Path) -> Result<()> {
        let q = &self.queues;
        let record = StateRecord {
            format: FORMAT,
            capacity: q.capacity,
            dim: q.dim,
            queues: q
                .classes
                .iter()
                .map(|c| c.iter().flatten().map(|v| v.to_bits()).collect())
                .collect(),
            theta: self.filter.theta.iter().map(|t| t.to_bits()).collect(),
            count: self.filter.count.clone(),
            phase_steps: self.phase_steps,
        };
        let path = dir.join(STATE_FILE);
        let json = serde_json::to_vec(&record).expect("state records serialise");
        fs::write(&path, json).map_err(|e| TrainError::io(&path, e))
    }

    /// Restores the state saved by [`save`](Self::save) into this one (built from the same
    /// configuration): sizes must agree.
    pub fn load(&mut self, dir: &Path) -> Result<()> {
        let path = dir.join(STATE_FILE);
        let fail = |message: String| TrainError::RunDir {
            path: path.clone(),
            message,
        };
        let text = fs::read_to_string(&path).map_err(|e| fail(format!("patchcl state: {e}")))?;
        let r: StateRecord =
            serde_json::from_str(&text).map_err(|e| fail(format!("patchcl state: {e}")))?;
        let q = &self.queues;
        if r.format != FORMAT
            || r.capacity != q.capacity
            || r.dim != q.dim
            || r.queues.len() != q.classes.len()
            || r.theta.len() != q.classes.len()
            || r.count.len() != q.classes.len()
            || r.queues.iter().any(|c| c.len() % r.dim.max(1) != 0)
        {
            return Err(fail(format!(
                "patchcl state of format {}, queue length {}, embedding dim {} and {} classes does \
                 not fit this configuration ({}, {}, {} classes)",
                r.format,
                r.capacity,
                r.dim,
                r.queues.len(),
                q.capacity,
                q.dim,
                q.classes.len()
            )));
        }
        let dim = r.dim;
        self.queues.classes = r
            .queues
            .iter()
            .map(|bits| {
                bits.chunks(dim)
                    .map(|row| row.iter().map(|&b| f32::from_bits(b)).collect())
                    .collect()
            })
            .collect();
        self.filter.theta = r.theta.iter().map(|&b| f64::from_bits(b)).collect();
        self.filter.count = r.count;
        self.phase_steps = r.phase_steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_keep_the_newest_entries() {
        let mut q = Queues::new(2, 3, 1);
        q.push(1, (0..5).map(|i| vec![i as f32]));
        assert_eq!(q.entries(1), vec![vec![2.0], vec![3.0], vec![4.0]]);
        assert!(q.entries(0).is_empty());
    }

    #[test]
    fn state_round_trips_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = MethodState {
            queues: Queues::new(2, 4, 2),
            filter: SaFilter::new(2, 0.5, 0.8, 0.01),
            phase_steps: [3, 1],
        };
        s.queues.push(0, [vec![0.1, -0.3], vec![1e-30, 7.0]]);
        s.filter.apply(0, &[0.1, 0.9, 0.2]);
        s.save(dir.path()).unwrap();
        let mut back = MethodState {
            queues: Queues::new(2, 4, 2),
            filter: SaFilter::new(2, 0.5, 0.8, 0.01),
            phase_steps: [0, 0],
        };
        back.load(dir.path()).unwrap();
        assert_eq!(back, s);
        let mut other = MethodState {
            queues: Queues::new(2, 8, 2),
            ..back.clone()
        };
        assert!(other.load(dir.path()).is_err(), "another queue length");
    }
}
