//! Class-conditional lesion descriptors, difficulty knobs and the exact Bayes posterior (spec C.10).
//!
//! A lesion's class-informative descriptors are drawn independently given the class ("naive Bayes"):
//! simple cyst (benign only), irregular shape, orientation, margin {circumscribed, spiculated, other},
//! posterior feature {none, enhancement, shadowing, combined}, halo, microcalcifications, heterogeneous
//! echo. Rates default to Hong et al. (AJR 2005) and the spec's tuning table. Five continuous cues
//! `z_k ~ N(±d′/2, 1)` (echo level, aspect ratio, margin roughness, spike count, posterior strength) add
//! graded evidence. With probability `q_amb` all descriptors come from the other class. Everything else is
//! sampled independently of the class, so the posterior computed here is exact.

use crate::rng::Rng;
use serde::Serialize;

/// Number of continuous cues.
pub const N_CUES: usize = 5;
/// Class index of "benign" and "malignant" inside the rate tables.
const B: usize = 0;
const M: usize = 1;

/// Margin classes that carry label information.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MarginClass {
    /// Smooth, sharply defined.
    Circumscribed,
    /// Thin spikes radiating from the mass.
    Spiculated,
    /// Not circumscribed, not spiculated: indistinct, angular or microlobulated (subtype is class-free).
    Other,
}

/// Posterior acoustic feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Posterior {
    /// |ΔP| < 1.5 dB.
    None,
    /// ΔP = +4…+10 dB.
    Enhancement,
    /// ΔP = −8…−20 dB.
    Shadowing,
    /// Shadow on one half, enhancement on the other.
    Combined,
}

/// The class-informative descriptors of one lesion (the variables of the naive-Bayes model).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Features {
    /// Simple (anechoic) cyst; when true the other descriptors are fixed to the cyst appearance.
    pub cyst: bool,
    /// Irregular shape (else oval or round).
    pub irregular: bool,
    /// Not parallel ("taller than wide").
    pub not_parallel: bool,
    /// Margin class.
    pub margin: MarginClass,
    /// Posterior acoustic feature.
    pub posterior: Posterior,
    /// Echogenic halo.
    pub halo: bool,
    /// Microcalcifications (punctate echogenic foci).
    pub microcalc: bool,
    /// Heterogeneous internal echo.
    pub heterogeneous: bool,
}

/// Per-class descriptor probabilities, index 0 = benign, 1 = malignant.
#[derive(Clone, Debug)]
pub struct Rates {
    cyst: [f64; 2],
    irregular: [f64; 2],
    not_parallel: [f64; 2],
    margin: [[f64; 3]; 2],
    posterior: [[f64; 4]; 2],
    halo: [f64; 2],
    microcalc: [f64; 2],
    heterogeneous: [f64; 2],
}

impl Rates {
    /// Default rates (Hong et al. 2005 + spec C.10 tuning table), mixed towards the class average by
    /// the overlap `t`: `p_t(f|c) = (1−t)·p(f|c) + t·½(p(f|M) + p(f|B))`.
    pub fn with_overlap(t: f64) -> Rates {
        let base = Rates {
            cyst: [0.25, 0.0],
            irregular: [62.0 / 262.0, 102.0 / 141.0],
            not_parallel: [34.0 / 262.0, 75.0 / 141.0],
            // circumscribed, spiculated, other
            margin: [
                [160.0 / 262.0, 3.0 / 262.0, 99.0 / 262.0],
                [18.0 / 141.0, 19.0 / 141.0, 104.0 / 141.0],
            ],
            // none, enhancement, shadowing, combined
            posterior: [[0.55, 0.30, 0.10, 0.05], [0.35, 0.15, 0.45, 0.05]],
            halo: [0.05, 0.30],
            microcalc: [0.05, 0.30],
            heterogeneous: [0.20, 0.60],
        };
        let mix2 = |p: [f64; 2]| {
            let a = 0.5 * (p[0] + p[1]);
            [(1.0 - t) * p[0] + t * a, (1.0 - t) * p[1] + t * a]
        };
        fn mixn<const N: usize>(p: [[f64; N]; 2], t: f64) -> [[f64; N]; 2] {
            let mut o = p;
            for i in 0..N {
                let a = 0.5 * (p[0][i] + p[1][i]);
                o[0][i] = (1.0 - t) * p[0][i] + t * a;
                o[1][i] = (1.0 - t) * p[1][i] + t * a;
            }
            o
        }
        Rates {
            cyst: mix2(base.cyst),
            irregular: mix2(base.irregular),
            not_parallel: mix2(base.not_parallel),
            margin: mixn(base.margin, t),
            posterior: mixn(base.posterior, t),
            halo: mix2(base.halo),
            microcalc: mix2(base.microcalc),
            heterogeneous: mix2(base.heterogeneous),
        }
    }

    /// P(features | class) with `class` 0 = benign, 1 = malignant.
    pub fn likelihood(&self, f: &Features, class: usize) -> f64 {
        let c = class;
        if f.cyst {
            return self.cyst[c];
        }
        let b = |p: &[f64; 2], v: bool| if v { p[c] } else { 1.0 - p[c] };
        (1.0 - self.cyst[c])
            * b(&self.irregular, f.irregular)
            * b(&self.not_parallel, f.not_parallel)
            * self.margin[c][f.margin as usize]
            * self.posterior[c][f.posterior as usize]
            * b(&self.halo, f.halo)
            * b(&self.microcalc, f.microcalc)
            * b(&self.heterogeneous, f.heterogeneous)
    }

    /// Draws the features of a lesion of class `class` (0 benign, 1 malignant).
    pub fn sample(&self, rng: &mut Rng, class: usize) -> Features {
        let c = class;
        if rng.bernoulli(self.cyst[c]) {
            return Features {
                cyst: true,
                irregular: false,
                not_parallel: false,
                margin: MarginClass::Circumscribed,
                posterior: Posterior::Enhancement,
                halo: false,
                microcalc: false,
                heterogeneous: false,
            };
        }
        let margin = [
            MarginClass::Circumscribed,
            MarginClass::Spiculated,
            MarginClass::Other,
        ][rng.categorical(&self.margin[c])];
        let posterior = [
            Posterior::None,
            Posterior::Enhancement,
            Posterior::Shadowing,
            Posterior::Combined,
        ][rng.categorical(&self.posterior[c])];
        Features {
            cyst: false,
            irregular: rng.bernoulli(self.irregular[c]),
            not_parallel: rng.bernoulli(self.not_parallel[c]),
            margin,
            posterior,
            halo: rng.bernoulli(self.halo[c]),
            microcalc: rng.bernoulli(self.microcalc[c]),
            heterogeneous: rng.bernoulli(self.heterogeneous[c]),
        }
    }

    /// Every distinct feature vector (cyst + 2·2·3·4·2·2·2 solid combinations).
    pub fn all_features() -> Vec<Features> {
        let mut v = vec![Features {
            cyst: true,
            irregular: false,
            not_parallel: false,
            margin: MarginClass::Circumscribed,
            posterior: Posterior::Enhancement,
            halo: false,
            microcalc: false,
            heterogeneous: false,
        }];
        for bits in 0..32u32 {
            for margin in [
                MarginClass::Circumscribed,
                MarginClass::Spiculated,
                MarginClass::Other,
            ] {
                for posterior in [
                    Posterior::None,
                    Posterior::Enhancement,
                    Posterior::Shadowing,
                    Posterior::Combined,
                ] {
                    v.push(Features {
                        cyst: false,
                        irregular: bits & 1 != 0,
                        not_parallel: bits & 2 != 0,
                        margin,
                        posterior,
                        halo: bits & 4 != 0,
                        microcalc: bits & 8 != 0,
                        heterogeneous: bits & 16 != 0,
                    });
                }
            }
        }
        v
    }
}

/// Parameters of the label model, resolved from the config.
#[derive(Clone, Debug)]
pub struct LabelModel {
    /// Descriptor rates after overlap mixing.
    pub rates: Rates,
    /// Continuous-cue separation d′.
    pub d_prime: f64,
    /// Fraction of cases whose descriptors come from the other class.
    pub q_amb: f64,
    /// Unnormalised priors of benign and malignant lesions (lesion classes only).
    pub prior_bm: [f64; 2],
    /// Prior of the normal (no lesion) class; 0 in binary mode.
    pub prior_normal: f64,
}

/// Descriptors drawn for one lesion case.
#[derive(Clone, Debug, Serialize)]
pub struct DrawnDescriptors {
    /// Class-informative features.
    pub features: Features,
    /// Continuous cues z_k (positive = more suspicious).
    pub cues: [f64; N_CUES],
    /// True when the descriptors were drawn from the other class (ambiguous case).
    pub ambiguous: bool,
}

impl LabelModel {
    /// Draws the descriptors of a lesion whose clean class is `class` (0 benign, 1 malignant).
    pub fn draw(&self, rng: &mut Rng, class: usize) -> DrawnDescriptors {
        let ambiguous = rng.bernoulli(self.q_amb);
        let src = if ambiguous { 1 - class } else { class };
        let features = self.rates.sample(rng, src);
        let mean = if src == M {
            0.5 * self.d_prime
        } else {
            -0.5 * self.d_prime
        };
        let mut cues = [0.0; N_CUES];
        for z in &mut cues {
            *z = mean + rng.normal();
        }
        DrawnDescriptors {
            features,
            cues,
            ambiguous,
        }
    }

    /// Exact posterior P(malignant | features, cues) among lesion classes.
    pub fn posterior_malignant(&self, d: &DrawnDescriptors) -> f64 {
        let a = self.rates.likelihood(&d.features, M);
        let b = self.rates.likelihood(&d.features, B);
        let s: f64 = self.d_prime * d.cues.iter().sum::<f64>();
        let (em, eb) = (
            (0.5 * s).clamp(-300.0, 300.0).exp(),
            (-0.5 * s).clamp(-300.0, 300.0).exp(),
        );
        let q = self.q_amb;
        let lm = (1.0 - q) * a * em + q * b * eb;
        let lb = (1.0 - q) * b * eb + q * a * em;
        let num = self.prior_bm[M] * lm;
        let den = num + self.prior_bm[B] * lb;
        if den > 0.0 {
            num / den
        } else {
            0.5
        }
    }

    /// Dataset-level Bayes accuracy on clean labels (spec C.10 item 5): exact sum over all feature
    /// vectors, with the continuous cues entering through their 1-D log-likelihood ratio (quadrature).
    pub fn bayes_accuracy(&self) -> f64 {
        let total = self.prior_normal + self.prior_bm[0] + self.prior_bm[1];
        let (pb, pm) = (self.prior_bm[B] / total, self.prior_bm[M] / total);
        let q = self.q_amb;
        let k = N_CUES as f64;
        let dp = self.d_prime;
        // s = d'·Σz is the cue log-likelihood ratio; under benign s ~ N(-k d'^2/2, k d'^2).
        let nodes: Vec<(f64, f64)> = if dp <= 1e-9 {
            vec![(0.0, 1.0)]
        } else {
            let mu = 0.5 * k * dp * dp;
            let sd = (k * dp * dp).sqrt();
            let (lo, hi, n) = (-mu - 9.0 * sd, mu + 9.0 * sd, 4001usize);
            let h = (hi - lo) / (n - 1) as f64;
            (0..n)
                .map(|i| {
                    let s = lo + i as f64 * h;
                    let w = if i == 0 || i == n - 1 { 0.5 } else { 1.0 };
                    let dens = (-(s + mu).powi(2) / (2.0 * sd * sd)).exp()
                        / (sd * (2.0 * std::f64::consts::PI).sqrt());
                    (s, w * h * dens)
                })
                .collect()
        };
        let mut acc = 0.0;
        for f in Rates::all_features() {
            let a = self.rates.likelihood(&f, M);
            let b = self.rates.likelihood(&f, B);
            for &(s, w) in &nodes {
                let es = s.exp();
                let jm = pm * ((1.0 - q) * a * es + q * b);
                let jb = pb * ((1.0 - q) * b + q * a * es);
                acc += w * jm.max(jb);
            }
        }
        acc + self.prior_normal / total
    }
}

/// Applies symmetric label noise: with probability `eps` the recorded label is one of the other
/// `n_classes − 1` labels, uniformly.
pub fn noisy_label(rng: &mut Rng, clean: u8, n_classes: u8, eps: f64) -> u8 {
    if n_classes < 2 || !rng.bernoulli(eps) {
        return clean;
    }
    let k = rng.int(0, n_classes as i64 - 2) as u8;
    if k >= clean {
        k + 1
    } else {
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(t: f64, d: f64, q: f64, prior: [f64; 2]) -> LabelModel {
        LabelModel {
            rates: Rates::with_overlap(t),
            d_prime: d,
            q_amb: q,
            prior_bm: prior,
            prior_normal: 0.0,
        }
    }

    #[test]
    fn likelihoods_sum_to_one() {
        for t in [0.0, 0.4, 1.0] {
            let r = Rates::with_overlap(t);
            for c in 0..2 {
                let s: f64 = Rates::all_features()
                    .iter()
                    .map(|f| r.likelihood(f, c))
                    .sum();
                assert!((s - 1.0).abs() < 1e-12, "t={t} c={c} s={s}");
            }
        }
    }

    #[test]
    fn bayes_accuracy_limits() {
        let t1 = model(1.0, 0.0, 0.0, [0.68, 0.32]).bayes_accuracy();
        assert!((t1 - 0.68).abs() < 1e-9);
        let t0 = model(0.0, 0.0, 0.0, [0.68, 0.32]).bayes_accuracy();
        let t5 = model(0.5, 0.0, 0.0, [0.68, 0.32]).bayes_accuracy();
        assert!(t0 > t5 && t5 > t1, "{t0} {t5}");
        let d2 = model(1.0, 2.0, 0.0, [0.5, 0.5]).bayes_accuracy();
        // Five cues of separation 2: LLR ~ N(±10, 20) -> accuracy Φ(√5·2/2) = Φ(2.236).
        assert!(
            (d2 - crate::rng::normal_cdf(5f64.sqrt())).abs() < 1e-4,
            "{d2}"
        );
        let amb = model(0.0, 0.0, 0.5, [0.5, 0.5]).bayes_accuracy();
        assert!((amb - 0.5).abs() < 1e-9);
    }

    #[test]
    fn label_noise_never_keeps_when_forced() {
        let mut r = Rng::from_seed(3);
        for clean in 0..3u8 {
            for _ in 0..50 {
                let y = noisy_label(&mut r, clean, 3, 1.0);
                assert!(y != clean && y < 3);
            }
        }
    }
}
