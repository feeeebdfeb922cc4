//! The direct stride-1 convolution (AVX-512 register tiles) against the GEMM path it replaces,
//! forward and input gradient, on the shapes that select it: partial output-channel blocks, more
//! input channels than one chunk, column tails, one image (output channels split over threads)
//! and several; on a CPU with AVX-512 it also checks the direct kernel was taken. Without it both
//! runs take the GEMM path and the test says so. The Winograd path of the 3x3s with many
//! channels against the kernels it replaces, the same way.

use semisono_nn::kernels::conv2d::{
    conv2d_forward, conv2d_x_grad, conv_kernel_name, set_direct_conv, set_winograd, Conv2dGeom,
};

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| {
            let h = (i ^ seed).wrapping_mul(0x9E37_79B9).rotate_left(13);
            (h >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

/// Max |got − want| within `tolerance` x the largest |want| (at least 1).
fn assert_close(what: &str, got: &[f32], want: &[f32], tolerance: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tolerance * scale,
            "{what} at {i}: {g} vs {w}"
        );
    }
}

/// A stride-1 convolution: (batch, c_in, [h, w], c_out, kernel, padding, dilation).
type Shape = (
    usize,
    usize,
    [usize; 2],
    usize,
    [usize; 2],
    [usize; 2],
    [usize; 2],
);

fn geometry((batch, c_in, [h_in, w_in], c_out, kernel, padding, dilation): Shape) -> Conv2dGeom {
    Conv2dGeom {
        batch,
        c_in,
        h_in,
        w_in,
        c_out,
        kernel,
        stride: [1, 1],
        padding,
        dilation,
    }
}

/// Forward with bias and input gradient of `g` on fixed inputs, with `switch` off and then on (the
/// previous setting restored after each), checked to agree within `tolerance`; returns whether
/// the forward and the input gradient differ in any bit between the two.
fn compare_with_switch(switch: fn(bool) -> bool, g: &Conv2dGeom, tolerance: f32) -> [bool; 2] {
    let x = values(g.x_len(), 1);
    let w = values(g.w_len(), 2);
    let b = values(g.c_out, 3);
    let dy = values(g.y_len(), 4);
    let run = |on: bool| {
        let before = switch(on);
        let out = (
            conv2d_forward(g, &x, &w, Some(&b)),
            conv2d_x_grad(g, &w, &dy),
        );
        switch(before);
        out
    };
    let (y_off, dx_off) = run(false);
    let (y_on, dx_on) = run(true);
    assert_close(&format!("forward {g:?}"), &y_on, &y_off, tolerance);
    assert_close(&format!("input gradient {g:?}"), &dx_on, &dx_off, tolerance);
    [y_on != y_off, dx_on != dx_off]
}

#[test]
fn direct_conv_matches_the_gemm_path() {
    let shapes: [Shape; 6] = [
        (2, 64, [32, 32], 64, [3, 3], [1, 1], [1, 1]),
        (1, 40, [20, 23], 13, [3, 3], [1, 1], [1, 1]),
        (3, 7, [16, 17], 24, [3, 5], [1, 2], [1, 1]),
        (2, 33, [18, 18], 9, [3, 3], [2, 2], [2, 2]),
        (1, 16, [16, 16], 8, [3, 3], [0, 0], [1, 1]),
        // A plane under 256 that the direct kernel takes (im2col without it).
        (2, 40, [14, 14], 16, [3, 3], [1, 1], [1, 1]),
    ];
    let mut differing = 0;
    for shape in shapes {
        let [forward_differs, _] = compare_with_switch(set_direct_conv, &geometry(shape), 1e-5);
        differing += usize::from(forward_differs);
    }
    // The tap GEMMs (planes of 256 and more) add tap by tap, the direct kernel channel by
    // channel, so where the direct kernel runs some bits differ; equal bits everywhere would
    // mean it was never taken. (im2col adds in the direct kernel's order: its shapes may match.)
    if conv_kernel_name().contains("direct") {
        assert!(differing > 0, "the direct kernel was never taken");
    } else {
        eprintln!("no AVX-512 here: both runs took the GEMM path");
    }
}

/// Winograd F(2x2, 3x3) against the direct kernel or GEMMs (whichever this CPU runs without it),
/// forward with bias and input gradient (a 3x3 stride-1 convolution too); one image (split over
/// threads) and several, ragged last tiles, paddings 0-2, and 12x12 planes whose input gradients
/// (96 -> 64, 144 -> 96 channels) neither the direct kernel nor the tap GEMMs take. Winograd rounds differently, so on
/// every shape both results must differ in some bit: equal bits mean it was not taken.
#[test]
fn winograd_matches_the_kernels_it_replaces() {
    let shapes: [Shape; 6] = [
        (1, 64, [12, 12], 96, [3, 3], [1, 1], [1, 1]),
        (3, 96, [12, 13], 64, [3, 3], [1, 1], [1, 1]),
        (2, 128, [16, 16], 128, [3, 3], [1, 1], [1, 1]),
        (2, 80, [14, 15], 80, [3, 3], [0, 0], [1, 1]),
        (1, 72, [12, 13], 96, [3, 3], [2, 2], [1, 1]),
        (2, 96, [12, 12], 144, [3, 3], [1, 1], [1, 1]),
    ];
    for shape in shapes {
        let g = geometry(shape);
        let [forward, input_grad] = compare_with_switch(set_winograd, &g, 2e-5);
        assert!(forward, "{g:?}: the forward did not take Winograd");
        assert!(
            input_grad,
            "{g:?}: the input gradient did not take Winograd"
        );
    }
}
