//! Determinism (spec C.12 item 6): per (seed, index), independent of the thread count.

use semisono_phantom::{generate, generate_many, PhantomConfig, Preset, ProbeChoice};

fn cfg() -> PhantomConfig {
    PhantomConfig {
        probe: ProbeChoice::Mixed,
        width: 64,
        height: 64,
        seed: 1234,
        ..Default::default()
    }
}

#[test]
fn same_seed_and_index_give_identical_bytes() {
    for preset in [Preset::Breast, Preset::Thyroid] {
        let c = PhantomConfig { preset, ..cfg() };
        for i in [0u64, 7, 1_000_003] {
            let (a, b) = (generate(&c, i), generate(&c, i));
            assert_eq!(a.image, b.image);
            assert_eq!(a.mask, b.mask);
            assert_eq!(a.lesion_masks, b.lesion_masks);
            assert_eq!((a.label, a.clean_label), (b.label, b.clean_label));
            assert_eq!(a.meta, b.meta);
            assert_eq!(a.pixel_spacing_mm, b.pixel_spacing_mm);
            assert_eq!(a.image.len(), 64 * 64);
        }
    }
}

#[test]
fn different_indices_and_seeds_differ() {
    let c = cfg();
    let a = generate(&c, 0);
    let b = generate(&c, 1);
    assert_ne!(a.image, b.image);
    let d = generate(&PhantomConfig { seed: 1235, ..c }, 0);
    assert_ne!(a.image, d.image);
}

#[test]
fn generate_many_matches_generate_for_1_and_2_threads() {
    let c = cfg();
    let expected: Vec<_> = (5..13).map(|i| generate(&c, i)).collect();
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let got = pool.install(|| generate_many(&c, 5, 8));
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g.image, e.image, "{threads} threads");
            assert_eq!(g.mask, e.mask);
            assert_eq!(g.meta, e.meta);
        }
    }
}
