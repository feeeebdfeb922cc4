//! Single-thread throughput of the phantom generator.
//!
//! `cargo bench -p semisono-phantom -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use semisono_phantom::{generate, PhantomConfig, Preset, ProbeChoice};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("phantom");
    group.throughput(Throughput::Elements(1));
    for size in [128u32, 256] {
        for (name, preset, probe) in [
            ("breast-linear", Preset::Breast, ProbeChoice::Linear),
            (
                "breast-curvilinear",
                Preset::Breast,
                ProbeChoice::Curvilinear,
            ),
            ("thyroid-linear", Preset::Thyroid, ProbeChoice::Linear),
        ] {
            let cfg = PhantomConfig {
                preset,
                probe,
                width: size,
                height: size,
                seed: 1,
                ..Default::default()
            };
            // Warm the scan-conversion table cache for the images used below.
            for i in 0..64 {
                black_box(generate(&cfg, i));
            }
            let mut i = 0u64;
            group.bench_function(format!("{name}/{size}x{size}"), |b| {
                b.iter(|| {
                    i = (i + 1) % 64;
                    black_box(generate(&cfg, i))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
