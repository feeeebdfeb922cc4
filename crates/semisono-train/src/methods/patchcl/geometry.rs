//! Where PatchCL cuts its patches (specs/patchcl.md §3), with the reference code's geometry bugs
//! fixed (§10.8): background windows on a true `P`-pixel grid, every window coordinate clamped into
//! the image on its own, and duplicate suppression (NMS) per image, never across the batch.
//!
//! Plain `std` code on label maps, so it is tested against the §12.5 / §12.6 oracles directly.

/// A window `(r0, c0, r1, c1)`, end-exclusive in pixels: rows `r0..r1`, cols `c0..c1`.
pub type Window = [usize; 4];

/// Origins of the windows of length `p` covering the extent `start .. start + extent` of a
/// dimension of length `s` (§3 steps 3–4): an extent shorter than `p` gets one window centred on it
/// (`start + ⌊extent/2⌋ − ⌊p/2⌋`); a longer one is tiled by `⌈extent/p⌉` windows at `start + i·p`,
/// the last aligned to the extent's end. Every origin is clamped into `[0, s − p]` on its own (the
/// code clamps two out-of-bounds coordinates from the row flags only, §12.5).
pub fn window_origins(start: usize, extent: usize, p: usize, s: usize) -> Vec<usize> {
    assert!(p >= 1 && p <= s, "patch size {p} must be in 1..={s}");
    let max = (s - p) as i64;
    let clamp = |o: i64| o.clamp(0, max) as usize;
    if extent < p {
        return vec![clamp(start as i64 + (extent / 2) as i64 - (p / 2) as i64)];
    }
    let n = extent.div_ceil(p);
    (0..n)
        .map(|i| {
            if i + 1 == n {
                clamp((start + extent - p) as i64)
            } else {
                clamp((start + i * p) as i64)
            }
        })
        .collect()
}

/// Origins of the background grid along a dimension of length `s`: `⌈s/p⌉` windows at `i·p`, the
/// last at `s − p` (the code uses `i` pixels instead of `i·p`, §12.5).
pub fn grid_origins(p: usize, s: usize) -> Vec<usize> {
    assert!(p >= 1 && p <= s, "patch size {p} must be in 1..={s}");
    let g = s.div_ceil(p);
    (0..g)
        .map(|i| if i + 1 == g { s - p } else { i * p })
        .collect()
}

/// Bounding boxes `(r0, c0, rows, cols)` of the 8-connected components of `mask` (`h × w`, row
/// major). OpenCV's external contours give the same boxes, except for a component lying inside a
/// hole of another one, which it skips; such a component is kept here.
pub fn component_boxes(mask: &[bool], h: usize, w: usize) -> Vec<[usize; 4]> {
    assert_eq!(mask.len(), h * w, "mask of {h}×{w}");
    let mut seen = vec![false; h * w];
    let mut boxes = Vec::new();
    let mut stack = Vec::new();
    for start in 0..h * w {
        if !mask[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut r0, mut c0, mut r1, mut c1) = (usize::MAX, usize::MAX, 0, 0);
        while let Some(i) = stack.pop() {
            let (r, c) = (i / w, i % w);
            (r0, c0, r1, c1) = (r0.min(r), c0.min(c), r1.max(r), c1.max(c));
            for dr in -1i64..=1 {
                for dc in -1i64..=1 {
                    let (nr, nc) = (r as i64 + dr, c as i64 + dc);
                    if nr < 0 || nc < 0 || nr >= h as i64 || nc >= w as i64 {
                        continue;
                    }
                    let j = nr as usize * w + nc as usize;
                    if mask[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        boxes.push([r0, c0, r1 - r0 + 1, c1 - c0 + 1]);
    }
    boxes
}

/// The windows of one foreground class in one image (§3 "Foreground classes"): for each component
/// box with more than 10 pixels of area, its windows ([`window_origins`] per dimension), then
/// [`nms`] over this image's windows only.
pub fn foreground_windows(
    mask: &[bool],
    h: usize,
    w: usize,
    p: usize,
    overlap: f64,
) -> Vec<Window> {
    let mut windows = Vec::new();
    for [r0, c0, rows, cols] in component_boxes(mask, h, w) {
        if rows * cols <= 10 {
            continue;
        }
        for &r in &window_origins(r0, rows, p, h) {
            for &c in &window_origins(c0, cols, p, w) {
                windows.push([r, c, r + p, c + p]);
            }
        }
    }
    let keep = nms(&windows, overlap);
    keep.into_iter().map(|i| windows[i]).collect()
}

/// The background grid windows of an `h × w` image.
pub fn background_windows(h: usize, w: usize, p: usize) -> Vec<Window> {
    let cols = grid_origins(p, w);
    grid_origins(p, h)
        .into_iter()
        .flat_map(|r| cols.iter().map(move |&c| [r, c, r + p, c + p]))
        .collect()
}

/// The code's overlap of box `j` under box `i`: intersection / area of `j`, both with the `+1`
/// pixel convention applied to the stored coordinates (§12.6).
pub fn overlap_of(i: &Window, j: &Window) -> f64 {
    let inter_r = (i[2].min(j[2]) as i64 - i[0].max(j[0]) as i64 + 1).max(0);
    let inter_c = (i[3].min(j[3]) as i64 - i[1].max(j[1]) as i64 + 1).max(0);
    let area = ((j[2] - j[0] + 1) * (j[3] - j[1] + 1)) as f64;
    (inter_r * inter_c) as f64 / area
}

/// Non-maximum suppression of the windows of one class in one image (§3 step 6): visit the boxes in
/// descending order of their last coordinate (ties: the later box first, as the code's argsort
/// does), keep the current one and drop every remaining box it covers by more than `threshold`
/// ([`overlap_of`], strict). Returns the indices kept, in visiting order.
pub fn nms(windows: &[Window], threshold: f64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..windows.len()).collect();
    // Stable ascending sort; the code pops from the end.
    order.sort_by_key(|&i| windows[i][3]);
    let mut kept = Vec::new();
    while let Some(i) = order.pop() {
        kept.push(i);
        order.retain(|&j| overlap_of(&windows[i], &windows[j]) <= threshold);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    /// specs/patchcl.md §12.5, first component: rows 1..2, cols 5..6 in S = 8, P = 4.
    #[test]
    fn small_box_is_centred() {
        assert_eq!(window_origins(1, 2, 4, 8), vec![0]);
        assert_eq!(window_origins(5, 2, 4, 8), vec![4]);
    }

    /// §12.5, second component: rows 6..7, cols 0..1 → raw (5, −1); the correct clamp is (4, 0)
    /// (the code's two-flag bug gives (4, 4)).
    #[test]
    fn each_coordinate_is_clamped_on_its_own() {
        let mut mask = vec![false; 64];
        for r in 6..8 {
            for c in 0..2 {
                mask[r * 8 + c] = true;
            }
        }
        // Area 4 ≤ 10 is skipped by the area rule, so place the window directly and through a
        // component big enough to pass it.
        assert_eq!(component_boxes(&mask, 8, 8), vec![[6, 0, 2, 2]]);
        let r = window_origins(6, 2, 4, 8);
        let c = window_origins(0, 2, 4, 8);
        assert_eq!((r, c), (vec![4], vec![0]));
    }

    /// §12.5: background grid for S = 8, P = 2 has row origins {0, 2, 4, 6} (the code: {0, 1, 2, 6}).
    #[test]
    fn background_grid_steps_by_the_patch_size() {
        assert_eq!(grid_origins(2, 8), vec![0, 2, 4, 6]);
        assert_eq!(background_windows(8, 8, 2).len(), 16);
        // A size that does not divide: the last window is aligned to the end.
        assert_eq!(grid_origins(3, 8), vec![0, 3, 5]);
    }

    #[test]
    fn a_large_box_is_tiled_and_ends_at_its_edge() {
        assert_eq!(window_origins(2, 10, 4, 16), vec![2, 6, 8]);
        assert_eq!(window_origins(0, 4, 4, 8), vec![0]);
    }

    /// §12.6: the three NMS examples (overlap = inter / area of the other box, +1 convention,
    /// strict `> 0.8`).
    #[test]
    fn nms_oracles() {
        let (a, b) = ([0, 0, 3, 3], [0, 1, 3, 4]);
        assert!((overlap_of(&b, &a) - 0.75).abs() < 1e-12);
        assert_eq!(nms(&[a, b], 0.8), vec![1, 0]);

        let (a, b) = ([0, 0, 9, 9], [0, 1, 9, 10]);
        assert!((overlap_of(&b, &a) - 0.9).abs() < 1e-12);
        assert_eq!(nms(&[a, b], 0.8), vec![1], "A is suppressed, B kept");

        let (a, b) = ([0, 0, 4, 4], [0, 1, 4, 5]);
        assert!((overlap_of(&b, &a) - 0.8).abs() < 1e-12);
        assert_eq!(nms(&[a, b], 0.8), vec![1, 0], "0.8 is not > 0.8");
    }

    /// Per-image NMS: the same window in two images is kept in both (the code suppresses across
    /// the batch, §10.8) — each image's windows go through `foreground_windows` on their own.
    #[test]
    fn windows_of_two_images_do_not_suppress_each_other() {
        let mut mask = vec![false; 64];
        for r in 2..6 {
            for c in 2..6 {
                mask[r * 8 + c] = true;
            }
        }
        let one = foreground_windows(&mask, 8, 8, 4, 0.8);
        assert_eq!(one, vec![[2, 2, 6, 6]]);
        // A component of 3×3 = 9 pixels is too small (area ≤ 10).
        let mut small = vec![false; 64];
        for r in 0..3 {
            for c in 0..3 {
                small[r * 8 + c] = true;
            }
        }
        assert!(foreground_windows(&small, 8, 8, 4, 0.8).is_empty());
    }

    #[test]
    fn components_are_eight_connected() {
        // Two diagonal pixels form one component; a separate pixel another.
        let mut mask = vec![false; 16];
        mask[0] = true;
        mask[5] = true;
        mask[15] = true;
        assert_eq!(
            component_boxes(&mask, 4, 4),
            vec![[0, 0, 2, 2], [3, 3, 1, 1]]
        );
    }
}
