//! HD95 (and the full surface-distance set) on 256x256 mask pairs.
//!
//! The pairs are generated with integer arithmetic only, by the same formula as
//! `bench/medpy_hd95.py`, so both benchmarks time identical inputs. Both print the same
//! checksum line (foreground pixel total and the sum of HD95 over the pairs) to confirm it.
//!
//! Run: `cargo bench -p semisono-metrics --bench hd95 -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use semisono_metrics::seg::{surface_distances, Mask, SegEvaluator, Spacing};

const H: usize = 256;
const W: usize = 256;
const N_PAIRS: usize = 16;

/// Fills an axis-aligned ellipse: `(dy*ax)^2 + (dx*ay)^2 <= (ax*ay)^2`, integers only.
fn ellipse(m: &mut [u8], cy: i64, cx: i64, ay: i64, ax: i64) {
    for r in 0..H as i64 {
        for c in 0..W as i64 {
            let (dy, dx) = (r - cy, c - cx);
            if (dy * ax).pow(2) + (dx * ay).pow(2) <= (ax * ay).pow(2) {
                m[(r as usize) * W + c as usize] = 1;
            }
        }
    }
}

/// Pair `i` (keep in sync with `bench/medpy_hd95.py`): reference ellipse, a jittered result
/// ellipse, and every third pair a small false-positive disc in the result.
fn pair(i: i64) -> (Vec<u8>, Vec<u8>) {
    let cy = 128 + (i * 37 % 41) - 20;
    let cx = 128 + (i * 53 % 43) - 21;
    let ay = 30 + (i * 29 % 60);
    let ax = 25 + (i * 31 % 70);
    let mut reference = vec![0u8; H * W];
    ellipse(&mut reference, cy, cx, ay, ax);
    let mut result = vec![0u8; H * W];
    ellipse(
        &mut result,
        cy + (i % 5) - 2,
        cx + (i % 7) - 3,
        ay + (i % 9) - 4,
        ax - (i % 6) + 2,
    );
    if i % 3 == 0 {
        ellipse(&mut result, 20 + (i * 7 % 30), 230 - (i * 11 % 40), 6, 6);
    }
    (result, reference)
}

fn mask(d: &[u8]) -> Mask<'_, u8> {
    Mask::new(d, H, W).expect("256x256")
}

fn bench(c: &mut Criterion) {
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..N_PAIRS as i64).map(pair).collect();
    let mut ev = SegEvaluator::new();
    let (mut fg, mut sum_hd95) = (0usize, 0.0f64);
    for (r, g) in &pairs {
        fg += r.iter().chain(g).filter(|&&v| v != 0).count();
        sum_hd95 += ev
            .evaluate(mask(r), mask(g), Spacing::default())
            .unwrap()
            .distances
            .unwrap()
            .hd95;
    }
    println!("checksum: pairs={N_PAIRS} foreground_total={fg} sum_hd95={sum_hd95:.6}");

    let mut g = c.benchmark_group("hd95_256x256_per_pair");
    let mut i = 0usize;
    g.bench_function("evaluate_all_metrics_reused_buffers", |b| {
        b.iter(|| {
            let (r, gt) = &pairs[i % N_PAIRS];
            i += 1;
            black_box(ev.evaluate(mask(r), mask(gt), Spacing::default()).unwrap())
        })
    });
    let mut i = 0usize;
    g.bench_function("surface_distances_fresh_buffers", |b| {
        b.iter(|| {
            let (r, gt) = &pairs[i % N_PAIRS];
            i += 1;
            black_box(surface_distances(mask(r), mask(gt), Spacing::new(0.5, 0.8)).unwrap())
        })
    });
    g.finish();

    // Adversarial input for the O(pixels) bound: ~50% noise against one far corner pixel (every
    // noise pixel is surface and far from the single reference pixel). Not in the MedPy script.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..H * W)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            u8::from(x & 1 == 1)
        })
        .collect();
    let mut corner = vec![0u8; H * W];
    corner[H * W - 1] = 1;
    let mut g = c.benchmark_group("worst_case_256x256");
    g.bench_function("noise_vs_single_pixel", |b| {
        b.iter(|| {
            black_box(
                ev.evaluate(mask(&noise), mask(&corner), Spacing::new(1.25, 0.4))
                    .unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
