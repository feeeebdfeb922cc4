//! Weak / strong views and CutMix boxes: determinism, mask consistency, spec probabilities.

use semisono_data::augment::{
    cutmix_box, eval_view, rotate_nearest, strong_view, strong_view_with_params, weak_view,
    AugmentConfig, GeomOp,
};
use semisono_data::rng::Rng;
use semisono_data::GrayImage;

fn noise(w: u32, h: u32, seed: u64) -> GrayImage {
    let mut rng = Rng::new(seed);
    GrayImage::new(w, h, (0..w * h).map(|_| rng.below(256) as u8).collect())
}

/// Image and mask with the same bright `size`×`size` block near the centre.
fn block_pair(w: u32, h: u32, x0: u32, y0: u32, size: u32) -> (GrayImage, GrayImage) {
    let mut img = GrayImage::zeros(w, h);
    for y in y0..y0 + size {
        for x in x0..x0 + size {
            img.data[(y * w + x) as usize] = 255;
        }
    }
    (img.clone(), img)
}

#[test]
fn same_seed_same_views() {
    let img = noise(40, 30, 1);
    let mask = GrayImage::new(
        40,
        30,
        img.data
            .iter()
            .map(|&v| if v > 128 { 255 } else { 0 })
            .collect(),
    );
    let cfg = AugmentConfig::default();
    let mut distinct = std::collections::HashSet::new();
    for seed in 0..16 {
        let run = |seed| {
            let mut rng = Rng::derive(seed, 9);
            let (w, m, p) = weak_view(&img, Some(&mask), &cfg, &mut rng);
            let (s, sp) = strong_view_with_params(&w, &cfg, &mut rng);
            (w, m, p, s, format!("{sp:?}"))
        };
        let a = run(seed);
        assert_eq!(a, run(seed));
        assert_eq!((a.0.width, a.0.height), (224, 224));
        assert_eq!(a.2.size, [224, 224]);
        distinct.insert(a.3.data.clone());
    }
    assert!(distinct.len() > 12, "different seeds give different views");
}

#[test]
fn weak_view_keeps_mask_binary_and_aligned() {
    let cfg = AugmentConfig {
        resize: false,
        ..AugmentConfig::default()
    };
    let (img, mask) = block_pair(31, 25, 12, 9, 3);
    let mut ops = std::collections::HashSet::new();
    for seed in 0..200 {
        let mut rng = Rng::new(seed);
        let (i, m, p) = weak_view(&img, Some(&mask), &cfg, &mut rng);
        let m = m.unwrap();
        ops.insert(std::mem::discriminant(&p.op));
        assert!(m.data.iter().all(|&v| v == 0 || v == 255));
        // Same op on both, and nearest/exact everywhere without resize: identical pixels.
        assert_eq!(i, m, "seed {seed}, {:?}", p.op);
        assert!(m.count_nonzero() > 0);
    }
    assert_eq!(ops.len(), 3, "identity, rot90+flip and rotation all occur");
}

#[test]
fn weak_view_with_resize_moves_mask_with_image() {
    let cfg = AugmentConfig {
        size: [64, 48],
        ..AugmentConfig::default()
    };
    let (img, mask) = block_pair(32, 32, 14, 10, 4);
    for seed in 0..200 {
        let mut rng = Rng::new(seed);
        let (i, m, p) = weak_view(&img, Some(&mask), &cfg, &mut rng);
        let m = m.unwrap();
        assert_eq!((i.width, i.height, m.width, m.height), (64, 48, 64, 48));
        assert!(m.data.iter().all(|&v| v == 0 || v == 255), "{:?}", p.op);
        assert!(m.count_nonzero() > 0);
        for (k, (&iv, &mv)) in i.data.iter().zip(&m.data).enumerate() {
            if mv == 255 {
                // The nearest sample carries at least half the bilinear weight on each axis.
                assert!(
                    iv >= 63,
                    "seed {seed} {:?}: mask pixel {k} on a dark image pixel {iv}",
                    p.op
                );
            }
            if iv == 255 {
                assert_eq!(
                    mv, 255,
                    "seed {seed} {:?}: bright pixel {k} outside the mask",
                    p.op
                );
            }
        }
    }
}

#[test]
fn weak_op_probabilities_follow_the_spec() {
    let cfg = AugmentConfig {
        resize: false,
        ..AugmentConfig::default()
    };
    let img = GrayImage::zeros(8, 8);
    let mut rng = Rng::new(5);
    let (mut rf, mut rot, mut id) = (0, 0, 0);
    let n = 8000;
    for _ in 0..n {
        match weak_view(&img, None, &cfg, &mut rng).2.op {
            GeomOp::Rot90Flip { k, .. } => {
                assert!(k < 4);
                rf += 1;
            }
            GeomOp::Rotate { degrees } => {
                assert!((-20..=19).contains(&degrees));
                rot += 1;
            }
            GeomOp::Identity => id += 1,
        }
    }
    let frac = |c: i32| c as f64 / n as f64;
    assert!((frac(rf) - 0.5).abs() < 0.03, "{rf}");
    assert!((frac(rot) - 0.25).abs() < 0.03, "{rot}");
    assert!((frac(id) - 0.25).abs() < 0.03, "{id}");
    // Switched off: always the identity.
    let off = AugmentConfig {
        resize: false,
        ..AugmentConfig::identity()
    };
    for _ in 0..100 {
        assert_eq!(weak_view(&img, None, &off, &mut rng).2.op, GeomOp::Identity);
    }
}

#[test]
fn strong_view_is_photometric_only() {
    let img = noise(48, 40, 2);
    // Jitter alone is a monotone map of grey levels: same level in, same level out, order kept.
    let cfg = AugmentConfig {
        p_jitter: 1.0,
        p_blur: 0.0,
        ..AugmentConfig::default()
    };
    for seed in 0..50 {
        let (s, p) = strong_view_with_params(&img, &cfg, &mut Rng::new(seed));
        assert!(p.jitter.is_some() && p.blur_sigma.is_none());
        let mut map = [None::<u8>; 256];
        for (&a, &b) in img.data.iter().zip(&s.data) {
            let prev = map[a as usize].replace(b);
            assert!(prev.is_none() || prev == Some(b));
        }
        let seen: Vec<u8> = map.iter().flatten().copied().collect();
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "seed {seed}: not monotone"
        );
    }
    // With blur too, the zero-filled corners of a rotated view stay dark next to the content.
    let cfg = AugmentConfig {
        p_jitter: 1.0,
        p_blur: 1.0,
        ..AugmentConfig::default()
    };
    let rotated = rotate_nearest(&GrayImage::new(64, 64, vec![200; 4096]), 20.0);
    for seed in 0..50 {
        let s = strong_view(&rotated, &cfg, &mut Rng::new(seed));
        assert_eq!((s.width, s.height), (64, 64));
        for (cx, cy) in [(0, 0), (63, 0), (0, 63), (63, 63)] {
            assert!(s.get(cx, cy) + 30 < s.get(32, 32), "seed {seed}");
        }
    }
    // Switched off: the identity.
    let off = AugmentConfig::identity();
    assert_eq!(strong_view(&img, &off, &mut Rng::new(1)), img);
}

#[test]
fn strong_probabilities_follow_the_spec() {
    let cfg = AugmentConfig::default();
    let img = noise(8, 8, 3);
    let mut rng = Rng::new(11);
    let (mut j, mut b) = (0, 0);
    let n = 4000;
    for _ in 0..n {
        let (_, p) = strong_view_with_params(&img, &cfg, &mut rng);
        if let Some(jit) = p.jitter {
            j += 1;
            assert!((0.5..1.5).contains(&jit.brightness) && (0.5..1.5).contains(&jit.contrast));
        }
        if let Some(s) = p.blur_sigma {
            b += 1;
            assert!((0.1..2.0).contains(&s));
        }
    }
    assert!((j as f64 / n as f64 - 0.8).abs() < 0.03, "{j}");
    assert!((b as f64 / n as f64 - 0.5).abs() < 0.03, "{b}");
}

#[test]
fn eval_view_only_resizes() {
    let (img, mask) = block_pair(32, 32, 8, 8, 8);
    let (i, m) = eval_view(&img, Some(&mask), &AugmentConfig::default());
    assert_eq!((i.width, i.height), (224, 224));
    let m = m.unwrap();
    assert!(m.data.iter().all(|&v| v == 0 || v == 255));
    // 8x8 of 32x32 scaled by 7: 56x56.
    assert_eq!(m.count_nonzero(), 56 * 56);
}

#[test]
fn cutmix_boxes() {
    let cfg = AugmentConfig {
        p_cutmix: 1.0,
        ..AugmentConfig::default()
    };
    let mut rng = Rng::new(4);
    for (w, h) in [(224u32, 224u32), (64, 32), (5, 7)] {
        for _ in 0..500 {
            let b = cutmix_box(w, h, &cfg, &mut rng).expect("p = 1");
            assert!(
                b.w >= 1 && b.h >= 1 && b.x + b.w <= w && b.y + b.h <= h,
                "{b:?} in {w}x{h}"
            );
            if w >= 64 {
                let frac = b.area() as f64 / (w * h) as f64;
                assert!((0.01..=0.41).contains(&frac), "{frac}");
            }
        }
    }
    let a = cutmix_box(100, 100, &cfg, &mut Rng::new(1));
    assert_eq!(a, cutmix_box(100, 100, &cfg, &mut Rng::new(1)));
    let b = a.unwrap();
    let m = b.to_mask(100, 100);
    assert_eq!(m.count_nonzero() as u64, b.area());
    assert!(b.contains(b.x, b.y) && !b.contains(b.x + b.w, b.y));
    // Paste copies the source inside the box only.
    let mut dst = GrayImage::zeros(100, 100);
    b.paste(&mut dst, &GrayImage::new(100, 100, vec![9; 10_000]));
    assert_eq!(dst.count_nonzero() as u64, b.area());
    // p = 0.5 gives a box about half the time; p = 0 never.
    let half = AugmentConfig::default();
    let hits = (0..2000)
        .filter(|_| cutmix_box(50, 50, &half, &mut rng).is_some())
        .count();
    assert!((900..1100).contains(&hits), "{hits}");
    let off = AugmentConfig::identity();
    assert!(cutmix_box(50, 50, &off, &mut rng).is_none());
}

#[test]
fn config_defaults_and_validation() {
    let cfg: AugmentConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(cfg, AugmentConfig::default());
    cfg.validate().unwrap();
    AugmentConfig::identity().validate().unwrap();
    let round: AugmentConfig = serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(round, cfg);
    assert!(serde_json::from_str::<AugmentConfig>("{\"p_flip\": 0.5}").is_err());
    let bad = AugmentConfig {
        p_blur: 1.5,
        ..AugmentConfig::default()
    };
    assert!(bad.validate().unwrap_err().to_string().contains("p_blur"));
    let bad = AugmentConfig {
        rotate_degrees: [10, -10],
        ..AugmentConfig::default()
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("rotate_degrees"));
}
