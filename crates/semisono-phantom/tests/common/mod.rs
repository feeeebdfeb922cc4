//! Shared helpers for the phantom integration tests.
#![allow(dead_code)]

use semisono_phantom::internals::*;
use semisono_phantom::{PhantomConfig, ProbeKind};

/// A linear 40×40 mm case with homogeneous tissue, no lesion, no smoothing and gamma 1.
pub fn homogeneous_case(size: u32, echo_db: f64, alpha: f64, index: u64) -> (PhantomConfig, Case) {
    let cfg = PhantomConfig {
        width: size,
        height: size,
        seed: 11,
        annotation_prob: 0.0,
        ..Default::default()
    };
    let mut case = sample_case(&cfg, index);
    case.geom = Geometry::new(
        ProbeKind::Linear,
        40.0,
        40.0,
        0.0,
        0.0,
        size as usize,
        size as usize,
    );
    case.anatomy = Anatomy::Homogeneous { echo_db, alpha };
    case.lesions.clear();
    case.acq.smoothing = 0;
    case.acq.gamma = 1.0;
    case.acq.sigma_axial = 1.0;
    case.acq.sigma_lateral = 2.0;
    case.annotations = false;
    (cfg, case)
}

/// Places a plain ellipse lesion (no edge shadows, no heterogeneity) in a case:
/// centre (x, z) and semi-axes (a, b) in mm, tilt in rad.
pub fn add_ellipse(
    case: &mut Case,
    (cx, cz): (f64, f64),
    (a, b): (f64, f64),
    tilt: f64,
    echo_db: f64,
    posterior_db: f64,
) {
    let mut plan = LesionPlan::ellipse(a, b, tilt, echo_db);
    plan.desc.posterior_db = [posterior_db, posterior_db];
    let mut rng = Rng::from_seed(5);
    let mut l = plan.place(&mut rng, cx, cz, case.anatomy.reference_db());
    l.edge_shadow = false;
    l.hetero_db = 0.0;
    case.lesions.push(l);
}

/// Mean and standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, var.sqrt())
}

/// Chi-square statistic of a contingency table (rows × cols of counts).
pub fn chi_square(table: &[Vec<f64>]) -> f64 {
    let rows: Vec<f64> = table.iter().map(|r| r.iter().sum()).collect();
    let ncol = table[0].len();
    let cols: Vec<f64> = (0..ncol)
        .map(|j| table.iter().map(|r| r[j]).sum())
        .collect();
    let total: f64 = rows.iter().sum();
    let mut chi = 0.0;
    for (i, r) in table.iter().enumerate() {
        for (j, &o) in r.iter().enumerate() {
            let e = rows[i] * cols[j] / total;
            if e > 0.0 {
                chi += (o - e).powi(2) / e;
            }
        }
    }
    chi
}
