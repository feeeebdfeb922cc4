//! Speckle statistics and grain size (spec C.12 items 1–2).

mod common;
use common::mean_std;
use semisono_phantom::internals::homogeneous_envelope;

#[test]
fn rayleigh_envelope_statistics() {
    let (nz, nl) = (384, 384);
    let env = homogeneous_envelope(nz, nl, 1.0, 2.5, 42);
    let a: Vec<f64> = env.iter().map(|&v| v as f64).collect();
    let (m, s) = mean_std(&a);
    let snr = m / s;
    assert!((snr - 1.91).abs() < 0.05, "envelope mean/std = {snr}");
    let db: Vec<f64> = a.iter().map(|&v| 20.0 * v.max(1e-12).log10()).collect();
    let (mdb, sdb) = mean_std(&db);
    assert!((sdb - 5.57).abs() < 0.2, "log std = {sdb} dB");
    // Unit-L2 PSF keeps the mean power at 1 (0 dB); the log mean sits 2.51 dB below it.
    let power = a.iter().map(|v| v * v).sum::<f64>() / a.len() as f64;
    assert!((10.0 * power.log10()).abs() < 0.3, "mean power {power}");
    assert!(
        (mdb - 10.0 * power.log10() + 2.51).abs() < 0.15,
        "log mean offset {}",
        mdb - 10.0 * power.log10()
    );
    // Intensity is exponential: Kolmogorov–Smirnov distance to Exp(mean) is small.
    let mut inten: Vec<f64> = a.iter().map(|v| v * v).collect();
    inten.sort_by(f64::total_cmp);
    let n = inten.len() as f64;
    let ks = inten
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = 1.0 - (-x / power).exp();
            (f - i as f64 / n).abs().max((f - (i + 1) as f64 / n).abs())
        })
        .fold(0.0, f64::max);
    assert!(ks < 0.03, "KS distance {ks}");
}

/// FWHM (in samples) of the normalised intensity autocovariance along one axis.
fn fwhm(inten: &[f64], nz: usize, nl: usize, lateral: bool) -> f64 {
    let m = inten.iter().sum::<f64>() / inten.len() as f64;
    let d: Vec<f64> = inten.iter().map(|v| v - m).collect();
    let max_lag = 24;
    let mut c = vec![0.0; max_lag + 1];
    for (lag, cv) in c.iter_mut().enumerate() {
        let mut acc = 0.0;
        let mut cnt = 0.0;
        for z in 0..nz - if lateral { 0 } else { lag } {
            for l in 0..nl - if lateral { lag } else { 0 } {
                let j = if lateral {
                    z * nl + l + lag
                } else {
                    (z + lag) * nl + l
                };
                acc += d[z * nl + l] * d[j];
                cnt += 1.0;
            }
        }
        *cv = acc / cnt;
    }
    let half = 0.5 * c[0];
    for k in 1..=max_lag {
        if c[k] < half {
            let t = (c[k - 1] - half) / (c[k - 1] - c[k]);
            return 2.0 * ((k - 1) as f64 + t);
        }
    }
    f64::NAN
}

#[test]
fn grain_size_matches_psf() {
    let (nz, nl) = (256, 256);
    let (sa, sl) = (1.5, 3.0);
    let env = homogeneous_envelope(nz, nl, sa, sl, 7);
    let inten: Vec<f64> = env.iter().map(|&v| (v as f64).powi(2)).collect();
    let fl = fwhm(&inten, nz, nl, true);
    let fa = fwhm(&inten, nz, nl, false);
    assert!(
        (fl / (2.355 * sl) - 1.0).abs() < 0.06,
        "lateral FWHM {fl} vs {}",
        2.355 * sl
    );
    assert!(
        (fa / (2.355 * sa) - 1.0).abs() < 0.08,
        "axial FWHM {fa} vs {}",
        2.355 * sa
    );
}
