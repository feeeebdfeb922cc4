//! The patch contrastive loss PCGJCL (specs/patchcl.md §6) and its hard-negative Gaussians (§6.1),
//! in `f64` on the host.
//!
//! The loss depends on the network only through the student embeddings `t`; the class statistics
//! are constants (§6). So it is computed here exactly, together with its gradient `∂L/∂t`, and the
//! caller feeds both back into the graph as `Σ t·G + (L − Σ t·G)` with `G` constant: the value is
//! `L` and the gradient `G`. Randomness (hard negatives) comes from a caller-given uniform source,
//! so a step is a pure function of its seed.

/// A class Gaussian: mean and population covariance (row-major `dim × dim`).
#[derive(Clone, Debug, PartialEq)]
pub struct Gaussian {
    pub mean: Vec<f64>,
    pub cov: Vec<f64>,
}

impl Gaussian {
    /// Mean and population covariance `(1/n) Σ (v − μ)(v − μ)ᵀ` of `samples` (at least one).
    pub fn of(samples: &[Vec<f64>]) -> Self {
        let n = samples.len();
        assert!(n > 0, "a Gaussian of no samples");
        let d = samples[0].len();
        let mut mean = vec![0.0; d];
        for s in samples {
            for (m, v) in mean.iter_mut().zip(s) {
                *m += v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut cov = vec![0.0; d * d];
        for s in samples {
            for a in 0..d {
                let da = s[a] - mean[a];
                for b in 0..d {
                    cov[a * d + b] += da * (s[b] - mean[b]);
                }
            }
        }
        cov.iter_mut().for_each(|c| *c /= n as f64);
        Gaussian { mean, cov }
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// `Σ t`.
    fn cov_mul(&self, t: &[f64]) -> Vec<f64> {
        let d = self.dim();
        (0..d)
            .map(|a| dot(&self.cov[a * d..(a + 1) * d], t))
            .collect()
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// τ, λ and ψ of PCGJCL (phase 1: 0.2, 4, 4096; phase 2: 1, 10, 4096).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PcgjclParams {
    pub tau: f64,
    pub lambda: f64,
    pub psi: f64,
}

/// One class of the step: its student embeddings, its own Gaussian and one (hard-)negative
/// Gaussian for every other class present.
pub struct ClassTerm<'a> {
    pub samples: &'a [Vec<f64>],
    pub positive: &'a Gaussian,
    pub negatives: Vec<&'a Gaussian>,
}

/// The loss and `∂L/∂t` for every sample, in the order of `classes` and their samples.
#[derive(Clone, Debug, PartialEq)]
pub struct PcgjclOutput {
    pub loss: f64,
    pub grads: Vec<Vec<Vec<f64>>>,
}

/// L = (1/N) Σ_i Σ_{t ∈ class i} [ −t·μ_i/τ + log( e^{pos(t)} + (ψ/K) Σ_{j≠i} e^{neg_j(t)} ) ] with
/// pos(t) = t·μ_i/τ + λ/(2τ²)·tᵀΣ_i t and neg_j(t) = t·μ̃_j/τ + λ/(2τ²)·tᵀΣ̃_j t (§6); K = number of
/// classes, N = number of samples. The log-sum-exp is evaluated stably.
pub fn pcgjcl(classes: &[ClassTerm<'_>], p: PcgjclParams) -> PcgjclOutput {
    let k = classes.len() as f64;
    let n: usize = classes.iter().map(|c| c.samples.len()).sum();
    if n == 0 {
        return PcgjclOutput {
            loss: 0.0,
            grads: classes.iter().map(|_| Vec::new()).collect(),
        };
    }
    let ln_w = (p.psi / k).ln();
    let quad = p.lambda / (2.0 * p.tau * p.tau);
    let mut loss = 0.0;
    let mut grads = Vec::with_capacity(classes.len());
    for c in classes {
        // (logit, ∂logit/∂t) for the positive and every negative.
        let term = |g: &Gaussian, t: &[f64], shift: f64| {
            let st = g.cov_mul(t);
            let value = dot(t, &g.mean) / p.tau + quad * dot(t, &st) + shift;
            let grad: Vec<f64> = g
                .mean
                .iter()
                .zip(&st)
                .map(|(m, s)| m / p.tau + 2.0 * quad * s)
                .collect();
            (value, grad)
        };
        let mut class_grads = Vec::with_capacity(c.samples.len());
        for t in c.samples {
            let mut terms = vec![term(c.positive, t, 0.0)];
            terms.extend(c.negatives.iter().map(|g| term(g, t, ln_w)));
            let max = terms
                .iter()
                .map(|(v, _)| *v)
                .fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = terms.iter().map(|(v, _)| (v - max).exp()).sum();
            let lse = max + z.ln();
            let anchor = dot(t, &c.positive.mean) / p.tau;
            loss += lse - anchor;
            let mut g: Vec<f64> = c.positive.mean.iter().map(|m| -m / p.tau).collect();
            for (v, dg) in &terms {
                let w = (v - lse).exp();
                for (gi, di) in g.iter_mut().zip(dg) {
                    *gi += w * di;
                }
            }
            g.iter_mut().for_each(|gi| *gi /= n as f64);
            class_grads.push(g);
        }
        grads.push(class_grads);
    }
    PcgjclOutput {
        loss: loss / n as f64,
        grads,
    }
}

/// Eigen-decomposition of a symmetric matrix: `values[k]` with eigenvector `vectors[·][k]`
/// (row-major `dim × dim`, columns are eigenvectors).
#[derive(Clone, Debug)]
pub struct Spectral {
    pub values: Vec<f64>,
    pub vectors: Vec<f64>,
}

impl Spectral {
    /// Cyclic Jacobi rotations until the off-diagonal mass is negligible (small `dim`: the
    /// embedding width).
    pub fn of(a: &[f64], d: usize) -> Self {
        let mut m = a.to_vec();
        let mut v = vec![0.0; d * d];
        (0..d).for_each(|i| v[i * d + i] = 1.0);
        let scale: f64 = m
            .iter()
            .map(|x| x * x)
            .sum::<f64>()
            .sqrt()
            .max(f64::MIN_POSITIVE);
        for _sweep in 0..100 {
            let off: f64 = (0..d)
                .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
                .map(|(i, j)| m[i * d + j] * m[i * d + j])
                .sum::<f64>()
                .sqrt();
            if off <= 1e-15 * scale {
                break;
            }
            for p in 0..d {
                for q in p + 1..d {
                    let apq = m[p * d + q];
                    if apq.abs() <= 1e-300 {
                        continue;
                    }
                    let theta = (m[q * d + q] - m[p * d + p]) / (2.0 * apq);
                    let sign = if theta >= 0.0 { 1.0 } else { -1.0 };
                    let t = sign / (theta.abs() + (theta * theta + 1.0).sqrt());
                    let c = 1.0 / (t * t + 1.0).sqrt();
                    let s = t * c;
                    for k in 0..d {
                        let (mkp, mkq) = (m[k * d + p], m[k * d + q]);
                        m[k * d + p] = c * mkp - s * mkq;
                        m[k * d + q] = s * mkp + c * mkq;
                    }
                    for k in 0..d {
                        let (mpk, mqk) = (m[p * d + k], m[q * d + k]);
                        m[p * d + k] = c * mpk - s * mqk;
                        m[q * d + k] = s * mpk + c * mqk;
                    }
                    for k in 0..d {
                        let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                        v[k * d + p] = c * vkp - s * vkq;
                        v[k * d + q] = s * vkp + c * vkq;
                    }
                }
            }
        }
        Spectral {
            values: (0..d).map(|i| m[i * d + i]).collect(),
            vectors: v,
        }
    }

    fn dim(&self) -> usize {
        self.values.len()
    }

    /// Eigenvalues the pseudo-inverse keeps (NumPy's `pinv` cut-off, relative 1e-15 there; 1e-12
    /// here so that round-off in the Jacobi result is not inverted).
    fn kept(&self) -> impl Iterator<Item = usize> + '_ {
        let max = self.values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        (0..self.dim()).filter(move |&k| self.values[k].abs() > 1e-12 * max && max > 0.0)
    }

    /// `u_k · x`.
    fn project(&self, k: usize, x: &[f64]) -> f64 {
        let d = self.dim();
        (0..d).map(|i| self.vectors[i * d + k] * x[i]).sum()
    }

    /// `(x − μ)ᵀ pinv(Σ) (x − μ)` (the code also scales pinv by 1e−10, which no comparison sees).
    pub fn mahalanobis(&self, mean: &[f64], x: &[f64]) -> f64 {
        let diff: Vec<f64> = x.iter().zip(mean).map(|(a, b)| a - b).collect();
        self.kept()
            .map(|k| self.project(k, &diff).powi(2) / self.values[k])
            .sum()
    }
}

/// Settings of the hard-negative search (§6.1, with the §11 cap).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MiningParams {
    /// Mixing weights w ~ U(β − 0.2, β + 0.2) of the synthetic negatives.
    pub beta: f64,
    /// Accepted draws wanted, as a multiple of the negative queue's length (the code: 3).
    pub oversample: usize,
    /// Draws per rejection round (the code: 1000).
    pub chunk: usize,
    /// Rounds before giving up (the code has no cap and may loop for ever).
    pub max_chunks: usize,
}

/// A standard normal from two uniforms in [0, 1) (Box–Muller).
fn normal(uniform: &mut dyn FnMut() -> f64) -> f64 {
    let u1 = 1.0 - uniform();
    let u2 = uniform();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The hard-negative Gaussian (μ̃_j, Σ̃_j) of negative class j against positive class i (§6.1):
/// anchors by Mahalanobis distance, draws from N(μ_j, Σ_j) inside the slab between them, the
/// |T_n| draws closest to the negative distribution, a synthetic mix for every draw farther from
/// the positive distribution than the anchor, L2-normalised, then mean and covariance.
/// `None` when fewer than `oversample·|T_n|` draws land in the slab within `max_chunks` rounds:
/// the caller falls back to (μ_j, Σ_j).
///
/// Draws: the slab test only needs the projection `v·z`, so each draw first samples that scalar
/// and completes the full vector (conditionally on it) only when accepted. Accepted draws have
/// exactly the distribution of the code's full-vector rejection sampling, at a fraction of the
/// cost.
#[allow(clippy::too_many_arguments)]
pub fn hard_negative(
    t_p: &[Vec<f64>],
    pos: &Gaussian,
    pos_spec: &Spectral,
    t_n: &[Vec<f64>],
    neg: &Gaussian,
    neg_spec: &Spectral,
    m: MiningParams,
    uniform: &mut dyn FnMut() -> f64,
) -> Option<Gaussian> {
    if t_p.is_empty() || t_n.is_empty() {
        return None;
    }
    let argmin = |set: &[Vec<f64>], spec: &Spectral, mean: &[f64]| {
        let dist: Vec<f64> = set.iter().map(|x| spec.mahalanobis(mean, x)).collect();
        let i = (0..set.len())
            .min_by(|&a, &b| dist[a].total_cmp(&dist[b]))
            .expect("non-empty");
        (i, dist[i])
    };
    let (i_n, d_anchor) = argmin(t_n, pos_spec, &pos.mean);
    let (i_p, _) = argmin(t_p, neg_spec, &neg.mean);
    let (a_n, a_p) = (&t_n[i_n], &t_p[i_p]);
    let v: Vec<f64> = a_n.iter().zip(a_p).map(|(x, y)| x - y).collect();
    let (lo, hi) = (dot(&v, a_p), dot(&v, a_n));

    // z = μ + L ε with L = U·diag(√λ⁺); v·z = v·μ + aᵀε with a = Lᵀv.
    let d = neg.dim();
    let roots: Vec<f64> = neg_spec.values.iter().map(|l| l.max(0.0).sqrt()).collect();
    let a: Vec<f64> = (0..d).map(|k| roots[k] * neg_spec.project(k, &v)).collect();
    let a2 = dot(&a, &a);
    let centre = dot(&v, &neg.mean);
    let need = m.oversample * t_n.len();
    let mut accepted: Vec<Vec<f64>> = Vec::with_capacity(need);
    'rounds: for _ in 0..m.max_chunks {
        for _ in 0..m.chunk {
            let s = a2.sqrt() * normal(uniform);
            if !(lo..=hi).contains(&(centre + s)) {
                continue;
            }
            // ε conditioned on aᵀε = s.
            let mut eps: Vec<f64> = (0..d).map(|_| normal(uniform)).collect();
            if a2 > 0.0 {
                let fix = (s - dot(&a, &eps)) / a2;
                eps.iter_mut().zip(&a).for_each(|(e, ak)| *e += fix * ak);
            }
            let z: Vec<f64> = (0..d)
                .map(|i| {
                    neg.mean[i]
                        + (0..d)
                            .map(|k| neg_spec.vectors[i * d + k] * roots[k] * eps[k])
                            .sum::<f64>()
                })
                .collect();
            accepted.push(z);
            if accepted.len() >= need {
                break 'rounds;
            }
        }
    }
    if accepted.len() < need {
        return None;
    }
    let mut keyed: Vec<(f64, Vec<f64>)> = accepted
        .into_iter()
        .map(|z| (neg_spec.mahalanobis(&neg.mean, &z), z))
        .collect();
    keyed.sort_by(|x, y| x.0.total_cmp(&y.0));
    keyed.truncate(t_n.len());
    let mut pool: Vec<Vec<f64>> = keyed.into_iter().map(|(_, z)| z).collect();
    let disqualified = pool
        .iter()
        .filter(|z| pos_spec.mahalanobis(&pos.mean, z) > d_anchor)
        .count();
    for _ in 0..disqualified {
        let a = pool[(uniform() * pool.len() as f64) as usize % pool.len()].clone();
        let b = &pool[(uniform() * pool.len() as f64) as usize % pool.len()];
        let w = m.beta - 0.2 + 0.4 * uniform();
        let mix = a
            .iter()
            .zip(b)
            .map(|(x, y)| w * x + (1.0 - w) * y)
            .collect();
        pool.push(mix);
    }
    for z in &mut pool {
        let norm = dot(z, z).sqrt().max(1e-12);
        z.iter_mut().for_each(|x| *x /= norm);
    }
    Some(Gaussian::of(&pool))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues() -> (Gaussian, Gaussian) {
        (
            Gaussian::of(&[vec![1.0, 0.0], vec![0.6, 0.8]]),
            Gaussian::of(&[vec![0.0, 1.0], vec![-0.6, 0.8]]),
        )
    }

    fn loss(g0: &Gaussian, g1: &Gaussian, p: PcgjclParams) -> PcgjclOutput {
        let (s0, s1) = ([vec![1.0, 0.0]], [vec![0.0, 1.0]]);
        pcgjcl(
            &[
                ClassTerm {
                    samples: &s0,
                    positive: g0,
                    negatives: vec![g1],
                },
                ClassTerm {
                    samples: &s1,
                    positive: g1,
                    negatives: vec![g0],
                },
            ],
            p,
        )
    }

    /// specs/patchcl.md §12.1: the class statistics of the two queues.
    #[test]
    fn queue_statistics_oracle() {
        let (g0, g1) = queues();
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
        assert!(close(&g0.mean, &[0.8, 0.4]));
        assert!(close(&g0.cov, &[0.04, -0.08, -0.08, 0.16]));
        assert!(close(&g1.mean, &[-0.3, 0.9]));
        assert!(close(&g1.cov, &[0.09, 0.03, 0.03, 0.01]));
    }

    /// §12.1: PCGJCL without mining (μ̃ = μ, Σ̃ = Σ), four (τ, λ, ψ) rows.
    #[test]
    fn pcgjcl_oracle() {
        let (g0, g1) = queues();
        for (tau, lambda, psi, want) in [
            (1.0, 0.0, 2.0, 0.380706155),
            (1.0, 1.0, 2.0, 0.410847510),
            (0.2, 4.0, 4096.0, 9.879500437),
            (1.0, 10.0, 4096.0, 7.450379964),
        ] {
            let got = loss(&g0, &g1, PcgjclParams { tau, lambda, psi }).loss;
            assert!(
                (got - want).abs() < 1e-8,
                "τ {tau} λ {lambda} ψ {psi}: {got} vs {want}"
            );
        }
    }

    /// The analytic gradient against central differences, on every row of the oracle.
    #[test]
    fn gradient_matches_finite_differences() {
        let (g0, g1) = queues();
        let p = PcgjclParams {
            tau: 0.2,
            lambda: 4.0,
            psi: 4096.0,
        };
        let base = vec![vec![0.3, -0.7], vec![0.5, 0.2], vec![-0.1, 0.9]];
        let f = |s: &[Vec<f64>]| {
            pcgjcl(
                &[
                    ClassTerm {
                        samples: &s[..2],
                        positive: &g0,
                        negatives: vec![&g1],
                    },
                    ClassTerm {
                        samples: &s[2..],
                        positive: &g1,
                        negatives: vec![&g0],
                    },
                ],
                p,
            )
        };
        let out = f(&base);
        let flat: Vec<&Vec<f64>> = out.grads.iter().flatten().collect();
        for (i, g) in flat.iter().enumerate() {
            for a in 0..2 {
                let h = 1e-6;
                let (mut up, mut down) = (base.clone(), base.clone());
                up[i][a] += h;
                down[i][a] -= h;
                let num = (f(&up).loss - f(&down).loss) / (2.0 * h);
                assert!(
                    (num - g[a]).abs() < 1e-6,
                    "sample {i} dim {a}: {num} vs {}",
                    g[a]
                );
            }
        }
    }

    #[test]
    fn eigen_decomposition_reconstructs_and_inverts() {
        let a = [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0];
        let s = Spectral::of(&a, 3);
        for i in 0..3 {
            for j in 0..3 {
                let r: f64 = (0..3)
                    .map(|k| s.vectors[i * 3 + k] * s.values[k] * s.vectors[j * 3 + k])
                    .sum();
                assert!((r - a[i * 3 + j]).abs() < 1e-10);
            }
        }
        // Mahalanobis of e1 with Σ = diag(4, 1): 1/4.
        let d = Spectral::of(&[4.0, 0.0, 0.0, 1.0], 2);
        assert!((d.mahalanobis(&[0.0, 0.0], &[1.0, 0.0]) - 0.25).abs() < 1e-12);
        // Singular: only the kept direction counts.
        let z = Spectral::of(&[1.0, 0.0, 0.0, 0.0], 2);
        assert!((z.mahalanobis(&[0.0, 0.0], &[2.0, 5.0]) - 4.0).abs() < 1e-12);
    }

    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn cloud(centre: [f64; 2], n: usize, next: &mut dyn FnMut() -> f64) -> Vec<Vec<f64>> {
        (0..n)
            .map(|_| {
                let v = [
                    centre[0] + 0.3 * normal(next),
                    centre[1] + 0.3 * normal(next),
                ];
                let norm = (v[0] * v[0] + v[1] * v[1]).sqrt();
                vec![v[0] / norm, v[1] / norm]
            })
            .collect()
    }

    #[test]
    fn hard_negatives_are_unit_vectors_and_repeatable() {
        let mut next = lcg(7);
        let t_p = cloud([1.0, 0.2], 6, &mut next);
        let t_n = cloud([0.2, 1.0], 8, &mut next);
        let (gp, gn) = (Gaussian::of(&t_p), Gaussian::of(&t_n));
        let (sp, sn) = (Spectral::of(&gp.cov, 2), Spectral::of(&gn.cov, 2));
        let m = MiningParams {
            beta: 0.5,
            oversample: 3,
            chunk: 1000,
            max_chunks: 100,
        };
        let run = |seed| hard_negative(&t_p, &gp, &sp, &t_n, &gn, &sn, m, &mut lcg(seed));
        let a = run(1).expect("the slab is wide enough");
        assert_eq!(Some(a.clone()), run(1), "same seed, same result");
        assert_ne!(Some(a.clone()), run(2));
        // The mean of unit vectors has norm ≤ 1, and the result differs from the plain queue.
        assert!(a.mean.iter().map(|x| x * x).sum::<f64>() <= 1.0 + 1e-12);
        assert_ne!(a, gn);
        // No rounds allowed: the caller's fallback.
        let none = MiningParams { max_chunks: 0, ..m };
        assert!(hard_negative(&t_p, &gp, &sp, &t_n, &gn, &sn, none, &mut lcg(1)).is_none());
    }
}
