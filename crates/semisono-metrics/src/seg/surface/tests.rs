use super::*;
use crate::numeric::np_percentile_linear;

fn parse(rows: &[&str]) -> (Vec<u8>, usize, usize) {
    let h = rows.len();
    let w = rows[0].len();
    let d = rows
        .iter()
        .flat_map(|r| r.bytes().map(|b| u8::from(b == b'1')))
        .collect();
    (d, h, w)
}

/// Brute force over all surface pairs (the README's reference definition).
fn brute_directed(sa: &[u8], sb: &[u8], h: usize, w: usize, s: Spacing) -> Vec<f64> {
    let mut out = Vec::new();
    for (i, &a) in sa.iter().enumerate().take(h * w) {
        if a == 0 {
            continue;
        }
        let (r, c) = ((i / w) as f64, (i % w) as f64);
        let mut best = f64::INFINITY;
        for (j, &b) in sb.iter().enumerate().take(h * w) {
            if b != 0 {
                let dr = ((j / w) as f64 - r) * s.row;
                let dc = ((j % w) as f64 - c) * s.col;
                best = best.min(dr * dr + dc * dc);
            }
        }
        out.push(best.sqrt());
    }
    out
}

fn check_against_brute(a: &[u8], b: &[u8], h: usize, w: usize, s: Spacing, label: &str) {
    let ma = Mask::new(a, h, w).unwrap();
    let mb = Mask::new(b, h, w).unwrap();
    let mut ws = SurfaceWorkspace::new();
    let d = ws.compute(ma, mb, s).unwrap().unwrap();
    let (sa, sb) = (surface(ma), surface(mb));
    let ab = brute_directed(&sa, &sb, h, w, s);
    let ba = brute_directed(&sb, &sa, h, w, s);
    assert_eq!(
        ws.directed_result_to_reference(),
        &ab[..],
        "{label}: d(A->B)"
    );
    assert_eq!(
        ws.directed_reference_to_result(),
        &ba[..],
        "{label}: d(B->A)"
    );
    let mut pooled: Vec<f64> = ab.iter().chain(&ba).copied().collect();
    let hd = pooled.iter().copied().fold(0.0, f64::max);
    assert_eq!(d.hd, hd, "{label}: hd");
    assert_eq!(
        d.hd95,
        np_percentile_linear(&mut pooled, 95.0).unwrap(),
        "{label}: hd95"
    );
    // A mean of equal values can exceed them by rounding, hence the slack.
    assert!(d.hd95 <= d.hd && d.assd <= d.hd * (1.0 + 1e-15), "{label}");
}

fn noise(n: usize, seed: u64, den: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            u8::from(!x.is_multiple_of(den))
        })
        .collect()
}

const SPACINGS: [Spacing; 3] = [
    Spacing { row: 1.0, col: 1.0 },
    Spacing { row: 0.5, col: 0.8 },
    Spacing {
        row: 1.25,
        col: 0.4,
    },
];

#[test]
fn surface_definition() {
    let (m, h, w) = parse(&["0000", "0111", "0111", "0111"]);
    let s = surface(Mask::new(&m, h, w).unwrap());
    // (2,2) is interior; (3,*) and (*,3) touch the border; (2,1) has a bg left neighbour.
    let (exp, _, _) = parse(&["0000", "0111", "0101", "0111"]);
    assert_eq!(s, exp);
    let full = vec![1u8; 12];
    let s = surface(Mask::new(&full, 3, 4).unwrap());
    let (frame, _, _) = parse(&["1111", "1001", "1111"]);
    assert_eq!(s, frame, "a full image's surface is its frame");
    let line = vec![1u8; 16];
    assert_eq!(surface(Mask::new(&line, 1, 16).unwrap()), line);
    assert_eq!(surface(Mask::new(&line, 16, 1).unwrap()), line);
}

#[test]
fn identical_masks_are_zero() {
    let (m, h, w) = parse(&["00000", "01110", "01110", "00000"]);
    for s in SPACINGS {
        let d = surface_distances(
            Mask::new(&m, h, w).unwrap(),
            Mask::new(&m, h, w).unwrap(),
            s,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (d.hd, d.hd95, d.asd, d.asd_reverse, d.assd, d.assd_legacy),
            (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        );
    }
}

#[test]
fn two_single_pixels_in_opposite_corners() {
    let (a, h, w) = parse(&["100", "000", "000"]);
    let (b, _, _) = parse(&["000", "000", "001"]);
    let s = Spacing::new(1.25, 0.4);
    let d = surface_distances(
        Mask::new(&a, h, w).unwrap(),
        Mask::new(&b, h, w).unwrap(),
        s,
    )
    .unwrap()
    .unwrap();
    let (x, y): (f64, f64) = (2.0 * 1.25, 2.0 * 0.4);
    let e = (x * x + y * y).sqrt();
    assert_eq!(
        (d.hd, d.hd95, d.asd, d.asd_reverse, d.assd),
        (e, e, e, e, e)
    );
}

#[test]
fn asd_is_asymmetric_and_assd_is_pooled() {
    // A: a single pixel inside B's disk-like square; B: 3x3 block (8 surface pixels).
    let (a, h, w) = parse(&["00000", "00000", "00100", "00000", "00000"]);
    let (b, _, _) = parse(&["00000", "01110", "01110", "01110", "00000"]);
    let d = surface_distances(
        Mask::new(&a, h, w).unwrap(),
        Mask::new(&b, h, w).unwrap(),
        Spacing::default(),
    )
    .unwrap()
    .unwrap();
    let s2 = 2f64.sqrt();
    assert_eq!(d.asd, 1.0);
    // B's surface: 4 edge-centres at 1, 4 corners at sqrt(2) from A's pixel.
    // B's surface in row-major order: corners at sqrt(2), edge centres at 1.
    let d_ba = [s2, 1.0, s2, 1.0, 1.0, s2, 1.0, s2];
    assert_eq!(d.asd_reverse, crate::numeric::np_mean(&d_ba));
    assert!((d.asd_reverse - (4.0 + 4.0 * s2) / 8.0).abs() < 1e-15);
    let pooled = [1.0, s2, 1.0, s2, 1.0, 1.0, s2, 1.0, s2];
    assert_eq!(d.assd, crate::numeric::np_mean(&pooled));
    assert!((d.assd - (5.0 + 4.0 * s2) / 9.0).abs() < 1e-15);
    assert_ne!(
        d.assd, d.assd_legacy,
        "pooled and legacy ASSD must differ here"
    );
    assert_eq!(d.assd_legacy, (d.asd + d.asd_reverse) / 2.0);
}

#[test]
fn empty_masks_are_undefined_not_zero() {
    let z = [0u8; 4];
    let o = [0u8, 1, 0, 0];
    let m = |d| Mask::new(d, 2, 2).unwrap();
    let s = Spacing::default();
    assert_eq!(
        surface_distances(m(&z), m(&o), s).unwrap(),
        Err(EmptyMask::Result)
    );
    assert_eq!(
        surface_distances(m(&o), m(&z), s).unwrap(),
        Err(EmptyMask::Reference)
    );
    assert_eq!(
        surface_distances(m(&z), m(&z), s).unwrap(),
        Err(EmptyMask::Both)
    );
    assert_eq!(hd95(m(&z), m(&z), s).unwrap(), Err(EmptyMask::Both));
}

/// (label, result, reference, height, width)
type Case = (String, Vec<u8>, Vec<u8>, usize, usize);

#[test]
fn tiny_grids_checkerboards_and_full_masks_match_brute_force() {
    let mut cases: Vec<Case> = Vec::new();
    for (h, w) in [(1, 16), (16, 1), (2, 2), (3, 3), (5, 7), (1, 1)] {
        let n = h * w;
        let full = vec![1u8; n];
        let checker: Vec<u8> = (0..n).map(|i| u8::from((i / w + i % w) % 2 == 0)).collect();
        let anti: Vec<u8> = checker.iter().map(|&v| 1 - v).collect();
        let mut corner = vec![0u8; n];
        corner[0] = 1;
        let mut other = vec![0u8; n];
        other[n - 1] = 1;
        cases.push((
            format!("{h}x{w} full/full"),
            full.clone(),
            full.clone(),
            h,
            w,
        ));
        cases.push((
            format!("{h}x{w} full/corner"),
            full.clone(),
            corner.clone(),
            h,
            w,
        ));
        cases.push((
            format!("{h}x{w} corner/other"),
            corner.clone(),
            other.clone(),
            h,
            w,
        ));
        if anti.iter().any(|&v| v != 0) {
            cases.push((format!("{h}x{w} checker/anti"), checker.clone(), anti, h, w));
        }
        cases.push((format!("{h}x{w} checker/full"), checker, full, h, w));
    }
    for seed in 0..12u64 {
        let (h, w) = [(9, 13), (20, 20), (31, 17), (4, 40)][seed as usize % 4];
        let a = noise(h * w, seed + 1, 2 + seed % 3);
        let b = noise(h * w, seed + 100, 3);
        if a.iter().any(|&v| v != 0) && b.iter().any(|&v| v != 0) {
            cases.push((format!("noise {seed} {h}x{w}"), a, b, h, w));
        }
    }
    for (label, a, b, h, w) in &cases {
        for s in SPACINGS {
            check_against_brute(a, b, *h, *w, s, &format!("{label} {s:?}"));
        }
    }
}

#[test]
fn one_pixel_grid_is_defined() {
    let one = [1u8];
    let d = surface_distances(
        Mask::new(&one, 1, 1).unwrap(),
        Mask::new(&one, 1, 1).unwrap(),
        Spacing::default(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(d.hd95, 0.0);
}

#[test]
fn workspace_reuse_across_shapes() {
    let mut ws = SurfaceWorkspace::new();
    let (a, h, w) = parse(&["0110", "0110"]);
    let (b, _, _) = parse(&["1000", "0000"]);
    let first = ws.compute(
        Mask::new(&a, h, w).unwrap(),
        Mask::new(&b, h, w).unwrap(),
        Spacing::default(),
    );
    let big = noise(30 * 30, 5, 2);
    let _ = ws.compute(
        Mask::new(&big, 30, 30).unwrap(),
        Mask::new(&big, 30, 30).unwrap(),
        Spacing::default(),
    );
    let again = ws.compute(
        Mask::new(&a, h, w).unwrap(),
        Mask::new(&b, h, w).unwrap(),
        Spacing::default(),
    );
    assert_eq!(first.unwrap(), again.unwrap());
    assert_eq!(
        ws.pooled_percentile(100.0),
        Some(
            ws.compute(
                Mask::new(&a, h, w).unwrap(),
                Mask::new(&b, h, w).unwrap(),
                Spacing::default()
            )
            .unwrap()
            .unwrap()
            .hd
        )
    );
}
