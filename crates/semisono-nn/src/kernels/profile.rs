//! Opt-in time per convolution shape and pass: where a network's step spends its convolution time,
//! layer shape by layer shape (`semisono bench --train --conv-profile`). Off by default; off, each
//! convolution pays one relaxed atomic load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::Conv2dGeom;

/// Which of a convolution's computations was timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConvPass {
    /// Forward (with inference's fused BatchNorm and activation, where they were fused).
    Forward,
    InputGrad,
    WeightGrad,
    BiasGrad,
}

impl ConvPass {
    pub fn name(self) -> &'static str {
        match self {
            ConvPass::Forward => "forward",
            ConvPass::InputGrad => "input grad",
            ConvPass::WeightGrad => "weight grad",
            ConvPass::BiasGrad => "bias grad",
        }
    }
}

/// Calls and wall seconds of one (pass, geometry) since the last [`reset`].
#[derive(Clone, Debug, PartialEq)]
pub struct ConvProfileEntry {
    pub pass: ConvPass,
    pub geom: Conv2dGeom,
    pub calls: u64,
    pub seconds: f64,
}

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Calls and seconds per (pass, geometry); `None` until the first call is recorded.
type Table = Option<HashMap<(ConvPass, Conv2dGeom), (u64, f64)>>;
static TABLE: Mutex<Table> = Mutex::new(None);

/// Starts or stops recording.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Forgets what was recorded (e.g. after warm-up).
pub fn reset() {
    *TABLE.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// What was recorded since the last [`reset`], the most time first.
pub fn snapshot() -> Vec<ConvProfileEntry> {
    let table = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    let mut rows: Vec<ConvProfileEntry> = table
        .iter()
        .flatten()
        .map(|(&(pass, geom), &(calls, seconds))| ConvProfileEntry {
            pass,
            geom,
            calls,
            seconds,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.seconds
            .total_cmp(&a.seconds)
            .then((a.pass, a.geom.c_in, a.geom.c_out).cmp(&(b.pass, b.geom.c_in, b.geom.c_out)))
    });
    rows
}

/// Runs `f`, adding its wall time to (pass, geometry) when recording is on.
pub(crate) fn timed<R>(pass: ConvPass, geom: &Conv2dGeom, f: impl FnOnce() -> R) -> R {
    if !ENABLED.load(Ordering::Relaxed) {
        return f();
    }
    let start = Instant::now();
    let out = f();
    let secs = start.elapsed().as_secs_f64();
    let mut table = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    let entry = table
        .get_or_insert_with(HashMap::new)
        .entry((pass, *geom))
        .or_default();
    entry.0 += 1;
    entry.1 += secs;
    out
}
