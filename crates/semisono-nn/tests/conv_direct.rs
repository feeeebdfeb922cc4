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

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_close_within(what, got, want, 1e-5);
}

/// Max |got − want| within `tolerance` x the largest |want| (at least 1).
fn assert_close_within(what: &str, got: &[f32], want: &[f32], tolerance: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tolerance * scale,
            "{what} at {i}: {g} vs {w}"
        );
    }
}

/// Forward with bias and input gradient with `switch(on)` in force (the previous setting restored).
fn forward_and_input_grad(
    switch: fn(bool) -> bool,
    on: bool,
    g: &Conv2dGeom,
    [x, w, b, dy]: [&[f32]; 4],
) -> (Vec<f32>, Vec<f32>) {
    let before = switch(on);
    let out = (conv2d_forward(g, x, w, Some(b)), conv2d_x_grad(g, w, dy));
    switch(before);
    out
}

#[test]
fn direct_conv_matches_the_gemm_path() {
    let shapes = [
        // (batch, c_in, h, w, c_out, kernel, padding, dilation)
        (2, 64, 32, 32, 64, [3, 3], [1, 1], [1, 1]),
        (1, 40, 20, 23, 13, [3, 3], [1, 1], [1, 1]),
        (3, 7, 16, 17, 24, [3, 5], [1, 2], [1, 1]),
        (2, 33, 18, 18, 9, [3, 3], [2, 2], [2, 2]),
        (1, 16, 16, 16, 8, [3, 3], [0, 0], [1, 1]),
        // A plane under 256 that the direct kernel takes (im2col without it).
        (2, 40, 14, 14, 16, [3, 3], [1, 1], [1, 1]),
    ];
    let direct_here = conv_kernel_name().contains("direct");
    let mut differing = 0;
    for (batch, c_in, h_in, w_in, c_out, kernel, padding, dilation) in shapes {
        let g = Conv2dGeom {
            batch,
            c_in,
            h_in,
            w_in,
            c_out,
            kernel,
            stride: [1, 1],
            padding,
            dilation,
        };
        let x = values(g.x_len(), 1);
        let w = values(g.w_len(), 2);
        let b = values(c_out, 3);
        let dy = values(g.y_len(), 4);
        let run =
            |direct: bool| forward_and_input_grad(set_direct_conv, direct, &g, [&x, &w, &b, &dy]);
        let (y_gemm, dx_gemm) = run(false);
        let (y_direct, dx_direct) = run(true);
        let what = format!("{g:?}");
        assert_close(&format!("forward {what}"), &y_direct, &y_gemm);
        assert_close(&format!("input gradient {what}"), &dx_direct, &dx_gemm);
        differing += usize::from(y_direct != y_gemm);
    }
    // The tap GEMMs (planes of 256 and more) add tap by tap, the direct kernel channel by
    // channel, so where the direct kernel runs some bits differ; equal bits everywhere would
    // mean it was never taken. (im2col adds in the direct kernel's order: its shapes may match.)
    if direct_here {
        assert!(differing > 0, "the direct kernel was never taken");
    } else {
        eprintln!("no AVX-512 here: both runs took the GEMM path");
    }
}

/// Winograd F(2x2, 3x3) against the direct kernel or GEMMs (whichever this CPU runs without it),
/// forward with bias and input gradient (a 3x3 stride-1 convolution too); one image (split over
/// threads) and several, ragged last tiles, paddings 0-2. Its rounding differs, so some bits must.
#[test]
fn winograd_matches_the_kernels_it_replaces() {
    // (batch, c_in, h, w, c_out, padding)
    let shapes = [
        (1, 64, 12, 10, 96, 1),
        (3, 96, 9, 9, 64, 1),
        (2, 128, 16, 16, 128, 1),
        (2, 80, 7, 11, 80, 0),
        (1, 72, 6, 5, 96, 2),
    ];
    let mut differing = 0;
    for (batch, c_in, h_in, w_in, c_out, pad) in shapes {
        let g = Conv2dGeom {
            batch,
            c_in,
            h_in,
            w_in,
            c_out,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [pad; 2],
            dilation: [1, 1],
        };
        let x = values(g.x_len(), 5);
        let w = values(g.w_len(), 6);
        let b = values(c_out, 7);
        let dy = values(g.y_len(), 8);
        let run =
            |winograd: bool| forward_and_input_grad(set_winograd, winograd, &g, [&x, &w, &b, &dy]);
        let (y_other, dx_other) = run(false);
        let (y_winograd, dx_winograd) = run(true);
        let what = format!("{g:?}");
        assert_close_within(&format!("forward {what}"), &y_winograd, &y_other, 2e-5);
        assert_close_within(
            &format!("input gradient {what}"),
            &dx_winograd,
            &dx_other,
            2e-5,
        );
        differing += usize::from(y_winograd != y_other) + usize::from(dx_winograd != dx_other);
    }
    assert!(differing > 0, "the Winograd path was never taken");
}
