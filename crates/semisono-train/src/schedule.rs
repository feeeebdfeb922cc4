//! Schedules and ramps of the training loop (Hermes spec §4.2, §4.3, §8), as plain `f64` functions.
//!
//! Step convention (spec §4): the global step `t` starts at 1 and is incremented after each
//! iteration; epochs are 0-based. Every function here is pure, so a resumed run recomputes exactly
//! the values a continuous run would have used.

/// The sigmoid ramp-up ρ(c, L) of the Mean Teacher / UGPCL code: `exp(−5 (1 − c/L)²)` with `c`
/// clipped to `[0, L]`; `1` when `L = 0` (a zero-length ramp is already complete).
pub fn sigmoid_rampup(current: f64, length: f64) -> f64 {
    if length == 0.0 {
        return 1.0;
    }
    let c = current.clamp(0.0, length);
    let phase = 1.0 - c / length;
    (-5.0 * phase * phase).exp()
}

/// A ramp that advances in whole chunks of `every` steps: ρ(⌊t / every⌋, length). The Hermes ITC
/// weight is `stepped_rampup(t, 100, 40)`, the MLRPL consistency weight `stepped_rampup(t, 150, 40)`.
/// `every = 0` is treated as 1.
pub fn stepped_rampup(step: u64, every: u64, length: u64) -> f64 {
    sigmoid_rampup((step / every.max(1)) as f64, length as f64)
}

/// The Hermes inter-task-consistency weight w_itc(t) = ρ(⌊t/100⌋, 40) (spec §4.2). It never reaches 1
/// within 3000 steps; that is the code's behaviour and kept.
pub fn itc_weight(step: u64) -> f64 {
    stepped_rampup(step, 100, 40)
}

/// The ramped entropy threshold τ_H(t) = (0.75 + 0.25·ρ(t, T))·ln K (spec §4.1). The Hermes code
/// hard-codes ln 2; ln K is the maximum entropy of K classes, so the two agree for K = 2 (§13).
/// Panics if `classes < 2` (one class has no uncertainty to threshold).
pub fn entropy_threshold(step: u64, total_steps: u64, classes: usize) -> f64 {
    assert!(classes >= 2, "entropy threshold needs at least 2 classes");
    (0.75 + 0.25 * sigmoid_rampup(step as f64, total_steps as f64)) * (classes as f64).ln()
}

/// Polynomial decay `base·(1 − t/T)^power`, clamped to 0 for `t ≥ T` (a negative base to a fractional
/// power would be NaN). `T = 0` gives `base`.
pub fn poly_lr(base: f64, step: u64, total_steps: u64, power: f64) -> f64 {
    if total_steps == 0 {
        return base;
    }
    if step >= total_steps {
        return 0.0;
    }
    base * (1.0 - step as f64 / total_steps as f64).powf(power)
}

/// The learning rate used *during* iteration `t` (1-based): the code sets `lr = poly(t)` after
/// iteration `t`, so iteration `t` runs with `poly(t − 1)` and iteration 1 with the base rate
/// (spec §4.3).
pub fn lr_at_iteration(base: f64, step: u64, total_steps: u64, power: f64) -> f64 {
    poly_lr(base, step.saturating_sub(1), total_steps, power)
}

/// Whether the contrastive terms are on in 0-based `epoch`: the code's `e > 10` test, i.e. strictly
/// after epoch `after` (spec §4.2: from the 12th epoch when `after = 10`).
pub fn contrast_active(epoch: u64, after: u64) -> bool {
    epoch > after
}

/// How steps fall into epochs. An epoch is one pass over the epoch-defining set (the unlabeled set
/// for semi-supervised methods) with the last partial batch dropped, as in spec §3.4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochPlan {
    /// ⌊N / batch⌋, at least 1.
    pub iters_per_epoch: u64,
    /// Epochs to run (the last one may be partial when `whole_epochs` was false).
    pub epochs: u64,
    /// Steps the run actually takes.
    pub total_steps: u64,
}

impl EpochPlan {
    /// The plan for `items` images in batches of `batch` and at most `max_steps` steps.
    ///
    /// With `whole_epochs` (the `paper` protocol) only complete epochs run, as in the Hermes code:
    /// `epochs = ⌊max_steps / iters_per_epoch⌋`, `total = epochs · iters_per_epoch` (SZ-TUS-60: 78 it ×
    /// 38 = 2964 of 3000). A run shorter than one epoch would then train nothing, so at least one epoch
    /// is kept. Without it (`clean`) the run takes exactly `max_steps` steps and the last epoch may be
    /// partial. A set smaller than one batch gives one iteration per epoch.
    pub fn new(items: usize, batch: usize, max_steps: u64, whole_epochs: bool) -> Self {
        let ipe = (items / batch.max(1)).max(1) as u64;
        if whole_epochs {
            let epochs = (max_steps / ipe).max(1);
            EpochPlan {
                iters_per_epoch: ipe,
                epochs,
                total_steps: epochs * ipe,
            }
        } else {
            EpochPlan {
                iters_per_epoch: ipe,
                epochs: max_steps.div_ceil(ipe),
                total_steps: max_steps,
            }
        }
    }

    /// The 0-based epoch of 1-based step `t` (`t = 0` counts as epoch 0).
    pub fn epoch_of(&self, step: u64) -> u64 {
        step.saturating_sub(1) / self.iters_per_epoch
    }

    /// Whether step `t` is the last of its epoch (where the code evaluates).
    pub fn ends_epoch(&self, step: u64) -> bool {
        step > 0 && (step.is_multiple_of(self.iters_per_epoch) || step == self.total_steps)
    }

    /// The first step of 0-based `epoch`.
    pub fn first_step(&self, epoch: u64) -> u64 {
        epoch * self.iters_per_epoch + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `got` equals the printed oracle `want` to within half a unit of its last printed digit (the
    /// spec prints 7 to 9 significant digits, computed in float64), plus 1e-9 relative.
    fn close(got: f64, want: &str) {
        let w: f64 = want.parse().unwrap();
        let (mantissa, exp) = match want.split_once('e') {
            Some((m, e)) => (m, e.parse::<i32>().unwrap()),
            None => (want, 0),
        };
        let decimals = mantissa.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
        let tol = 0.5 * 10f64.powi(exp - decimals) + 1e-9 * w.abs();
        assert!((got - w).abs() <= tol, "got {got:.12e}, want {want}");
    }

    #[test]
    fn sigmoid_rampup_oracle() {
        // spec §14.1
        let want = [
            (0.0, "0.006737947"),
            (10.0, "0.060054668"),
            (15.0, "0.141830159"),
            (20.0, "0.286504797"),
            (30.0, "0.731615629"),
            (40.0, "1.000000000"),
            (50.0, "1.000000000"),
        ];
        for (c, w) in want {
            close(sigmoid_rampup(c, 40.0), w);
        }
        for c in [0.0, 3.0, 1e9, -5.0] {
            assert_eq!(sigmoid_rampup(c, 0.0), 1.0);
        }
        close(sigmoid_rampup(1.0, 3000.0), "0.006760441");
        close(sigmoid_rampup(1500.0, 3000.0), "0.286504797");
        close(sigmoid_rampup(-3.0, 40.0), "0.006737947");
    }

    #[test]
    fn itc_weight_oracle() {
        let want = [
            (1, "0.006737947"),
            (99, "0.006737947"),
            (100, "0.008624701"),
            (1500, "0.141830159"),
            (2964, "0.685144852"),
            (3000, "0.731615629"),
            (4000, "1.000000000"),
        ];
        for (t, w) in want {
            close(itc_weight(t), w);
        }
        // MLRPL's ρ(⌊t/150⌋, 40) (mlrpl spec §12.3) through the same helper.
        close(stepped_rampup(149, 150, 40), "0.006737947");
        close(stepped_rampup(150, 150, 40), "0.008624701");
        close(stepped_rampup(1500, 150, 40), "0.060054668");
        close(stepped_rampup(3000, 150, 40), "0.286504797");
        close(stepped_rampup(4500, 150, 40), "0.731615629");
        assert_eq!(stepped_rampup(6000, 150, 40), 1.0);
    }

    #[test]
    fn entropy_threshold_oracle() {
        // spec §14.2, T = 3000, K = 2
        let want = [
            (1, "0.521031880"),
            (859, "0.533436982"),
            (1500, "0.569507883"),
            (2964, "0.693022459"),
            (3000, "0.693147181"),
        ];
        for (t, w) in want {
            close(entropy_threshold(t, 3000, 2), w);
        }
        assert_eq!(entropy_threshold(3000, 3000, 2), std::f64::consts::LN_2);
        // K classes: the end of the ramp is ln K.
        assert_eq!(entropy_threshold(10, 10, 3), 3f64.ln());
        let start = (0.75 + 0.25 * (-5f64).exp()) * 4f64.ln();
        assert!((entropy_threshold(0, 10, 4) - start).abs() < 1e-15);
    }

    #[test]
    fn poly_lr_oracle() {
        // spec §14.3 (base 1e-4, T = 3000, power 0.9)
        let want = [
            (0, "1.00000000e-4"),
            (1, "9.99699995e-5"),
            (1500, "5.358867313e-5"),
            (2964, "1.867510797e-6"),
            (2999, "7.42319503e-8"),
        ];
        for (t, w) in want {
            close(poly_lr(1e-4, t, 3000, 0.9), w);
        }
        assert_eq!(poly_lr(1e-4, 3000, 3000, 0.9), 0.0);
        assert_eq!(poly_lr(1e-4, 4000, 3000, 0.9), 0.0);
        assert_eq!(poly_lr(1e-4, 5, 0, 0.9), 1e-4);
        // Iteration t uses poly(t − 1): iteration 1 the base rate, iteration 2 poly(1).
        assert_eq!(lr_at_iteration(1e-4, 1, 3000, 0.9), 1e-4);
        close(lr_at_iteration(1e-4, 2, 3000, 0.9), "9.99699995e-5");
        close(lr_at_iteration(1e-4, 3000, 3000, 0.9), "7.42319503e-8");
        // MLRPL's optional poly (mlrpl spec §12.4).
        close(poly_lr(0.01, 15000, 30000, 0.9), "0.005358867");
    }

    #[test]
    fn contrast_switch() {
        assert!(!contrast_active(0, 10));
        assert!(!contrast_active(10, 10));
        assert!(contrast_active(11, 10));
        // SZ-TUS-60: 78 it/epoch, so the first contrastive step is 11·78 + 1 = 859 (spec §4.2).
        let plan = EpochPlan::new(627, 8, 3000, true);
        assert_eq!(plan.iters_per_epoch, 78);
        assert!(!contrast_active(plan.epoch_of(858), 10));
        assert!(contrast_active(plan.epoch_of(859), 10));
        assert_eq!(plan.first_step(11), 859);
    }

    #[test]
    fn epoch_plans() {
        let paper = EpochPlan::new(627, 8, 3000, true);
        assert_eq!((paper.epochs, paper.total_steps), (38, 2964));
        assert_eq!(paper.epoch_of(1), 0);
        assert_eq!(paper.epoch_of(78), 0);
        assert_eq!(paper.epoch_of(79), 1);
        assert!(paper.ends_epoch(78) && !paper.ends_epoch(77) && paper.ends_epoch(2964));
        let clean = EpochPlan::new(627, 8, 3000, false);
        assert_eq!((clean.epochs, clean.total_steps), (39, 3000));
        assert!(clean.ends_epoch(3000));
        // Shorter than an epoch: the paper protocol still runs one epoch, clean runs what was asked.
        assert_eq!(EpochPlan::new(100, 8, 3, true).total_steps, 12);
        assert_eq!(EpochPlan::new(100, 8, 3, false).total_steps, 3);
        // Fewer items than a batch: one iteration per epoch.
        assert_eq!(EpochPlan::new(3, 8, 10, false).iters_per_epoch, 1);
    }
}
