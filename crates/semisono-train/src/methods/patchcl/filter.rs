//! The stochastic-approximation patch filter (specs/patchcl.md §4) and the phase-2 learning-rate
//! decay (§7, §12.3): plain `f64` code, tested against the §12.2 / §12.3 oracles.

/// Per-class threshold θ_c that keeps the patches with `score ≤ θ_c` and moves θ_c so that the kept
/// fraction tends to `target` (§4):
/// `θ_c ← clip(θ_c + η(n_c)·(target·N − N_kept), 0, 1)`, `η(0) = eta`, `η(n) = eta/n`, then
/// `n_c += 1`.
///
/// The score is the patch's coverage fraction (class pixels with a non-zero image value / P², the
/// code) or its average patch entropy (the paper's criterion, reconstructed). Raising θ keeps more
/// patches, which is why the update converges (with "keep score > θ" it would run off to θ = 1).
#[derive(Clone, Debug, PartialEq)]
pub struct SaFilter {
    /// θ_c per class.
    pub theta: Vec<f64>,
    /// Updates so far per class (n_c).
    pub count: Vec<u64>,
    pub target: f64,
    pub eta: f64,
}

impl SaFilter {
    pub fn new(classes: usize, theta0: f64, target: f64, eta: f64) -> Self {
        SaFilter {
            theta: vec![theta0; classes],
            count: vec![0; classes],
            target,
            eta,
        }
    }

    /// Which of this step's patches of `class` to keep (`score ≤ θ` before the update), then the
    /// update. A class without patches is left alone.
    pub fn apply(&mut self, class: usize, scores: &[f64]) -> Vec<bool> {
        if scores.is_empty() {
            return Vec::new();
        }
        let theta = self.theta[class];
        let keep: Vec<bool> = scores.iter().map(|&s| s <= theta).collect();
        let kept = keep.iter().filter(|&&k| k).count() as f64;
        let n = self.count[class];
        let eta = if n == 0 {
            self.eta
        } else {
            self.eta / n as f64
        };
        self.theta[class] =
            (theta + eta * (self.target * scores.len() as f64 - kept)).clamp(0.0, 1.0);
        self.count[class] = n + 1;
        keep
    }
}

/// Polynomial decay with a floor (the code's `PolynomialLRDecay`):
/// `(base − end)·(1 − k/T)^power + end` for `k ≤ T`, `end` afterwards (and for `T = 0`).
pub fn poly_lr_with_end(base: f64, end: f64, k: u64, total: u64, power: f64) -> f64 {
    if total == 0 || k >= total {
        return end;
    }
    (base - end) * (1.0 - k as f64 / total as f64).powf(power) + end
}

#[cfg(test)]
mod tests {
    use super::*;

    /// specs/patchcl.md §12.2: P = 4 (A = 16), θ0 = 0.5, ρ = 0.8, coverages [2, 6, 10, 16] →
    /// θ = 0.512, 0.524, 0.530 over three identical steps, keeping [2, 6] each time.
    #[test]
    fn stochastic_approximation_oracle() {
        let mut f = SaFilter::new(1, 0.5, 0.8, 0.01);
        let scores: Vec<f64> = [2.0, 6.0, 10.0, 16.0].iter().map(|c| c / 16.0).collect();
        for want in [0.512, 0.524, 0.530] {
            let keep = f.apply(0, &scores);
            assert_eq!(keep, vec![true, true, false, false]);
            assert!(
                (f.theta[0] - want).abs() < 1e-12,
                "{} vs {want}",
                f.theta[0]
            );
        }
        assert_eq!(f.count[0], 3);
    }

    #[test]
    fn threshold_stays_in_the_unit_interval_and_classes_are_separate() {
        let mut f = SaFilter::new(2, 0.99, 0.8, 1.0);
        // Nothing kept: θ rises by 0.8·2 and is clipped at 1.
        assert_eq!(f.apply(1, &[1.5, 1.5]), vec![false, false]);
        assert_eq!(f.theta, vec![0.99, 1.0]);
        assert!(f.apply(0, &[]).is_empty());
        assert_eq!(f.count, vec![0, 1]);
    }

    /// §12.3: base 0.007, end 1e-4, T = 200, power 2.
    #[test]
    fn poly_decay_oracle() {
        for (k, want) in [
            (1, 0.0069311725),
            (2, 0.00686269),
            (100, 0.001825),
            (199, 0.0001001725),
            (200, 0.0001),
            (201, 0.0001),
        ] {
            let lr = poly_lr_with_end(0.007, 1e-4, k, 200, 2.0);
            assert!((lr - want).abs() < 1e-12, "k = {k}: {lr} vs {want}");
        }
    }
}
