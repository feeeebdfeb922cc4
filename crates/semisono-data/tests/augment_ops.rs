//! The single augmentation ops: geometry (exact, mask-safe), resizing conventions, photometry.

use semisono_data::augment::{
    adjust_brightness, adjust_contrast, apply_geom, flip, gaussian_blur, resize_bilinear,
    resize_nearest, rot90, rotate_nearest, FlipAxis, GeomOp,
};
use semisono_data::rng::Rng;
use semisono_data::GrayImage;

fn noise(w: u32, h: u32, seed: u64) -> GrayImage {
    let mut rng = Rng::new(seed);
    GrayImage::new(w, h, (0..w * h).map(|_| rng.below(256) as u8).collect())
}

fn blob_mask(w: u32, h: u32, seed: u64) -> GrayImage {
    let mut rng = Rng::new(seed);
    let (cx, cy) = (
        rng.range(0.3, 0.7) * w as f64,
        rng.range(0.3, 0.7) * h as f64,
    );
    let r = rng.range(0.1, 0.3) * w.min(h) as f64;
    let data = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| {
            let d = ((x as f64 - cx).powi(2) + (y as f64 - cy).powi(2)).sqrt();
            if d < r {
                255
            } else {
                0
            }
        })
        .collect();
    GrayImage::new(w, h, data)
}

fn is_binary(m: &GrayImage) -> bool {
    m.data.iter().all(|&v| v == 0 || v == 255)
}

#[test]
fn rot90_follows_numpy() {
    // [[1, 2, 3], [4, 5, 6]] -> np.rot90 -> [[3, 6], [2, 5], [1, 4]]
    let img = GrayImage::new(3, 2, vec![1, 2, 3, 4, 5, 6]);
    let r = rot90(&img, 1);
    assert_eq!((r.width, r.height), (2, 3));
    assert_eq!(r.data, vec![3, 6, 2, 5, 1, 4]);
    assert_eq!(rot90(&img, 2).data, vec![6, 5, 4, 3, 2, 1]);
    assert_eq!(rot90(&img, 3).data, vec![4, 1, 5, 2, 6, 3]);
    // Four quarter turns are the identity, for any shape.
    for (w, h) in [(7, 5), (4, 4), (1, 9)] {
        let img = noise(w, h, 1);
        let mut r = img.clone();
        for _ in 0..4 {
            r = rot90(&r, 1);
        }
        assert_eq!(r, img);
        assert_eq!(rot90(&img, 4), img);
    }
}

#[test]
fn flips_follow_numpy_and_are_involutions() {
    let img = GrayImage::new(3, 2, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(flip(&img, FlipAxis::Vertical).data, vec![4, 5, 6, 1, 2, 3]);
    assert_eq!(
        flip(&img, FlipAxis::Horizontal).data,
        vec![3, 2, 1, 6, 5, 4]
    );
    let img = noise(9, 6, 2);
    for axis in [FlipAxis::Vertical, FlipAxis::Horizontal] {
        assert_eq!(flip(&flip(&img, axis), axis), img);
    }
}

#[test]
fn rotation_conventions() {
    let img = noise(10, 7, 3);
    assert_eq!(rotate_nearest(&img, 0.0), img);
    assert_eq!(apply_geom(&img, GeomOp::Rotate { degrees: 0 }), img);
    // On a square canvas a 90° rotation about the centre is exact and counter-clockwise, like rot90.
    for n in [5, 6] {
        let sq = noise(n, n, 4);
        assert_eq!(rotate_nearest(&sq, 90.0), rot90(&sq, 1), "n = {n}");
        assert_eq!(rotate_nearest(&sq, -90.0), rot90(&sq, 3), "n = {n}");
        assert_eq!(rotate_nearest(&sq, 180.0), rot90(&sq, 2), "n = {n}");
    }
    // Same canvas, zero fill: a constant image keeps its centre and loses its corners.
    let c = GrayImage::new(32, 32, vec![200; 1024]);
    let r = rotate_nearest(&c, 20.0);
    assert_eq!((r.width, r.height), (32, 32));
    assert_eq!(r.get(16, 16), 200);
    assert_eq!(r.get(0, 0), 0);
    assert_eq!(r.get(31, 31), 0);
    assert!(r.data.iter().all(|&v| v == 0 || v == 200));
}

#[test]
fn masks_stay_binary_through_every_geometric_op() {
    for seed in 0..20 {
        let m = blob_mask(33, 24, seed);
        assert!(m.count_nonzero() > 0);
        let mut outs = vec![
            rotate_nearest(&m, 13.0),
            rotate_nearest(&m, -20.0),
            resize_nearest(&m, 224, 224),
            resize_nearest(&m, 17, 11),
        ];
        for k in 0..4 {
            for axis in [FlipAxis::Vertical, FlipAxis::Horizontal] {
                outs.push(apply_geom(&m, GeomOp::Rot90Flip { k, axis }));
            }
        }
        for o in &outs {
            assert!(is_binary(o));
        }
        // Exact ops keep the foreground area.
        assert_eq!(outs[4].count_nonzero(), m.count_nonzero());
    }
}

#[test]
fn resize_conventions() {
    // Half-pixel centres, border clamped: [0, 100] -> [0, 25, 75, 100].
    let img = GrayImage::new(2, 1, vec![0, 100]);
    assert_eq!(resize_bilinear(&img, 4, 1).data, vec![0, 25, 75, 100]);
    assert_eq!(resize_nearest(&img, 4, 1).data, vec![0, 0, 100, 100]);
    // Downscaling by 2 averages pixel pairs (sample point between them).
    let img = GrayImage::new(4, 1, vec![0, 100, 200, 250]);
    assert_eq!(resize_bilinear(&img, 2, 1).data, vec![50, 225]);
    assert_eq!(resize_nearest(&img, 2, 1).data, vec![100, 250]);
    // Same size is the identity.
    let n = noise(13, 9, 5);
    assert_eq!(resize_bilinear(&n, 13, 9), n);
    assert_eq!(resize_nearest(&n, 13, 9), n);
    // A constant image stays constant, whatever the ratio.
    for v in [0u8, 1, 77, 254, 255] {
        let c = GrayImage::new(37, 23, vec![v; 37 * 23]);
        for (w, h) in [(224, 224), (10, 31), (37, 5), (1, 1)] {
            let b = resize_bilinear(&c, w, h);
            assert_eq!((b.width, b.height), (w, h));
            assert!(b.data.iter().all(|&x| x == v), "bilinear {v} -> {w}x{h}");
            assert!(resize_nearest(&c, w, h).data.iter().all(|&x| x == v));
        }
    }
}

#[test]
fn blur_preserves_the_mean_and_constants() {
    let img = noise(64, 48, 6);
    let mean = |g: &GrayImage| g.data.iter().map(|&v| v as f64).sum::<f64>() / g.data.len() as f64;
    for sigma in [0.1, 0.5, 1.3, 2.0] {
        let b = gaussian_blur(&img, sigma);
        assert_eq!((b.width, b.height), (64, 48));
        assert!((mean(&b) - mean(&img)).abs() < 1.0, "sigma {sigma}");
    }
    // Strong smoothing reduces the spread of pure noise.
    let var = |g: &GrayImage| {
        let m = mean(g);
        g.data.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / g.data.len() as f64
    };
    assert!(var(&gaussian_blur(&img, 2.0)) < var(&img) / 10.0);
    // A tiny sigma is (nearly) the identity; a constant image stays constant.
    assert_eq!(gaussian_blur(&img, 0.1), img);
    let c = GrayImage::new(20, 20, vec![123; 400]);
    assert_eq!(gaussian_blur(&c, 2.0), c);
    // Images smaller than the kernel work (borders replicated).
    let tiny = GrayImage::new(2, 3, vec![0, 255, 0, 255, 0, 255]);
    assert_eq!(gaussian_blur(&tiny, 2.0).data.len(), 6);
}

#[test]
fn brightness_and_contrast() {
    let mut img = GrayImage::new(4, 1, vec![0, 100, 200, 250]);
    adjust_brightness(&mut img, 1.5);
    assert_eq!(img.data, vec![0, 150, 255, 255]);
    let mut img = GrayImage::new(4, 1, vec![0, 100, 200, 100]);
    // Mean 100: distances to the mean are halved.
    adjust_contrast(&mut img, 0.5);
    assert_eq!(img.data, vec![50, 100, 150, 100]);
    let mut c = GrayImage::new(3, 3, vec![90; 9]);
    adjust_contrast(&mut c, 1.5);
    assert!(c.data.iter().all(|&v| v == 90));
}
