//! The GEMM conv2d kernels (`semisono_nn::kernels`) against Burn flex's own conv2d and its
//! autodiff gradients, on random inputs: stride 1 and 2, padding, 1×1, 7×7, dilation, a
//! non-square kernel, odd sizes (where a strided forward drops input rows), and batches that are
//! split across threads and across im2col buffers.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use semisono_nn::kernels::conv_op::{conv2d_with, ConvBackward};
use semisono_nn::kernels::{self, stock, Conv2dParams};

type ConvFn = fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>, ConvOptions<2>) -> Tensor<4>;

/// The extension op with the GEMM backward, whatever `SEMISONO_CONV` says.
fn gemm_conv(x: Tensor<4>, w: Tensor<4>, b: Option<Tensor<1>>, o: ConvOptions<2>) -> Tensor<4> {
    conv2d_with(x, w, b, o, ConvBackward::Gemm)
}

/// A seeded uniform [-1, 1) vector (splitmix64), so every run sees the same inputs.
fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn tensor<const D: usize>(v: &[f32], shape: [usize; D], dev: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v.to_vec(), shape), dev)
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().unwrap()
}

/// Max |got − want| must stay within 1e-4 of the reference's largest magnitude (at least 1): f32
/// rounding of sums of a few thousand products, far below what a wrong index gives.
fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let (i, err) = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .enumerate()
        .fold(
            (0, 0.0f32),
            |best, (i, e)| if e > best.1 { (i, e) } else { best },
        );
    assert!(
        err <= 1e-4 * scale,
        "{what}: max error {err} at {i} (got {}, want {}), scale {scale}",
        got[i],
        want[i]
    );
}

struct Case {
    x: [usize; 4],
    w: [usize; 4],
    p: Conv2dParams,
}

fn case(
    x: [usize; 4],
    w: [usize; 4],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
) -> Case {
    Case {
        x,
        w,
        p: Conv2dParams {
            stride,
            padding,
            dilation,
        },
    }
}

fn cases() -> Vec<Case> {
    vec![
        case([2, 3, 7, 6], [4, 3, 3, 3], [1, 1], [1, 1], [1, 1]),
        case([3, 5, 9, 8], [6, 5, 3, 3], [2, 2], [1, 1], [1, 1]),
        case([2, 4, 8, 7], [5, 4, 1, 1], [2, 2], [0, 0], [1, 1]),
        // 1x1 stride 1: the in-place path (no im2col / col2im), over several images per chunk.
        case([5, 6, 5, 7], [3, 6, 1, 1], [1, 1], [0, 0], [1, 1]),
        case([2, 3, 17, 16], [8, 3, 7, 7], [2, 2], [3, 3], [1, 1]),
        case([2, 3, 9, 9], [4, 3, 3, 3], [1, 1], [2, 2], [2, 2]),
        case([1, 2, 6, 5], [3, 2, 3, 1], [1, 2], [1, 0], [1, 1]),
        case([5, 4, 10, 10], [7, 4, 3, 3], [1, 1], [0, 0], [1, 1]),
        // Stride 1 with a rectangular kernel and padding; one image (gemm's own threads).
        case([2, 3, 6, 9], [4, 3, 3, 5], [1, 1], [1, 2], [1, 1]),
        case([1, 8, 12, 12], [16, 8, 3, 3], [1, 1], [1, 1], [1, 1]),
        // Planes of 256 and more: the stride-1 forward, and the input gradient as a forward of
        // the flipped kernel (rectangular, dilated, unpadded).
        case([2, 3, 16, 18], [4, 3, 3, 5], [1, 1], [1, 2], [1, 1]),
        case([2, 3, 17, 16], [5, 3, 3, 3], [1, 1], [2, 2], [2, 2]),
        case([2, 4, 18, 18], [3, 4, 3, 3], [1, 1], [0, 0], [1, 1]),
        // The direct kernel (AVX-512): a partial block of output channels, two input-channel
        // chunks, a rectangular dilated kernel, a masked column tail.
        case([2, 40, 17, 19], [13, 40, 3, 5], [1, 1], [1, 2], [2, 1]),
        // 14x14: the direct kernel below the GEMMs' smallest plane.
        case([2, 24, 14, 14], [16, 24, 3, 3], [1, 1], [1, 1], [1, 1]),
        // 576 × 4096 floats of im2col per image: more than one buffer per thread's chunk.
        case([3, 64, 64, 64], [8, 64, 3, 3], [1, 1], [1, 1], [1, 1]),
        // Winograd weight gradient (3x3 stride 1, >= 32 channels each side, a 16x16 plane).
        case([2, 32, 17, 16], [40, 32, 3, 3], [1, 1], [1, 1], [1, 1]),
    ]
}

/// Flex's conv2d and its autodiff gradients for `(x·dy).sum()`: y, dx, dw, db.
fn reference(c: &Case, x: &[f32], w: &[f32], b: &[f32], dy: &[f32]) -> [Vec<f32>; 4] {
    let options = ConvOptions::new(c.p.stride, c.p.padding, c.p.dilation, 1);
    let [y, dx, dw, db] = autodiff_run(conv2d, options, [c.x, c.w], [x, w, b, dy], [true; 3]);
    [y.unwrap(), dx.unwrap(), dw.unwrap(), db.unwrap()]
}

/// `conv` and its autodiff gradients for `(y·dy).sum()` on flex: y, then dx, dw, db for the
/// inputs marked in `track` (`None` for the others, and for a bias of length 0: no bias).
fn autodiff_run(
    conv: ConvFn,
    options: ConvOptions<2>,
    [x_shape, w_shape]: [[usize; 4]; 2],
    [x, w, b, dy]: [&[f32]; 4],
    track: [bool; 3],
) -> [Option<Vec<f32>>; 4] {
    let dev = Device::flex().autodiff();
    let input = |t: Tensor<4>, tracked: bool| if tracked { t.require_grad() } else { t };
    let xt = input(tensor(x, x_shape, &dev), track[0]);
    let wt = input(tensor(w, w_shape, &dev), track[1]);
    let bt = (!b.is_empty()).then(|| {
        let t = tensor(b, [b.len()], &dev);
        if track[2] {
            t.require_grad()
        } else {
            t
        }
    });
    let y = conv(xt.clone(), wt.clone(), bt.clone(), options);
    let dyt = tensor(dy, y.dims(), &dev);
    let grads = (y.clone() * dyt).sum().backward();
    [
        Some(host(y)),
        xt.grad(&grads).map(host),
        wt.grad(&grads).map(host),
        bt.and_then(|b| b.grad(&grads)).map(host),
    ]
}

/// The backend-extension op the networks use: same values and gradients as Burn's conv2d, with
/// and without bias, with only some inputs tracked, and through Burn's fallback where the GEMM
/// kernels do not apply (groups 2, asymmetric padding).
#[test]
fn conv_op_matches_burn_conv2d_under_autodiff() {
    let mut options: Vec<(String, [usize; 4], [usize; 4], ConvOptions<2>)> = cases()
        .iter()
        .map(|c| {
            let o = ConvOptions::new(c.p.stride, c.p.padding, c.p.dilation, 1);
            (format!("{:?} w {:?} {:?}", c.x, c.w, c.p), c.x, c.w, o)
        })
        .collect();
    options.push((
        "groups 2".into(),
        [2, 4, 7, 7],
        [6, 2, 3, 3],
        ConvOptions::new([1, 1], [1, 1], [1, 1], 2),
    ));
    options.push((
        "asymmetric padding".into(),
        [2, 3, 7, 6],
        [4, 3, 3, 3],
        ConvOptions::new_with_padding([1, 1], [(0, 1), (1, 2)], [1, 1], 1),
    ));
    for (n, (name, x_shape, w_shape, o)) in options.into_iter().enumerate() {
        let seed = 1000 + 10 * n as u64;
        let x = random(x_shape.iter().product(), seed + 1);
        let w = random(w_shape.iter().product(), seed + 2);
        let b = random(w_shape[0], seed + 3);
        let y_len = host(conv2d(
            tensor(&x, x_shape, &Device::flex()),
            tensor(&w, w_shape, &Device::flex()),
            None,
            o.clone(),
        ))
        .len();
        let dy = random(y_len, seed + 4);
        for (bias, track) in [
            (&b[..], [true; 3]),
            (&[][..], [true, true, false]),
            (&b[..], [false, true, true]),
            (&b[..], [true, false, false]),
        ] {
            let inputs = [&x[..], &w[..], bias, &dy[..]];
            let shapes = [x_shape, w_shape];
            let want = autodiff_run(conv2d, o.clone(), shapes, inputs, track);
            let got = autodiff_run(gemm_conv, o.clone(), shapes, inputs, track);
            for (i, what) in ["forward", "dx", "dw", "db"].iter().enumerate() {
                let at = format!(
                    "case {n} ({name}), bias {}, tracked {track:?}: {what}",
                    !bias.is_empty()
                );
                match (&got[i], &want[i]) {
                    (Some(g), Some(w)) => assert_close(&at, g, w),
                    (None, None) => {}
                    (g, w) => panic!(
                        "{at}: got {:?} values, want {:?}",
                        g.as_ref().map(Vec::len),
                        w.as_ref().map(Vec::len)
                    ),
                }
            }
        }
        // Without autodiff (inference): the GEMM forward (or flex's, for the fallbacks).
        let plain = |conv: ConvFn| {
            host(conv(
                tensor(&x, x_shape, &Device::flex()),
                tensor(&w, w_shape, &Device::flex()),
                Some(tensor(&b, [w_shape[0]], &Device::flex())),
                o.clone(),
            ))
        };
        assert_close(
            &format!("case {n} ({name}): inference"),
            &plain(gemm_conv),
            &plain(conv2d),
        );
    }
}

/// The weight gradient sums its partials over a split that does not depend on the thread count,
/// so training is bit-identical on machines with different core counts.
#[test]
fn weight_gradient_is_bit_identical_on_any_thread_count() {
    // The tap GEMMs, then Winograd.
    for c in [
        case([8, 16, 32, 32], [16, 16, 3, 3], [1, 1], [1, 1], [1, 1]),
        case([4, 32, 16, 16], [32, 32, 3, 3], [1, 1], [1, 1], [1, 1]),
    ] {
        let g = c.p.geom(c.x, c.w);
        let x = random(g.x_len(), 7);
        let dy = random(g.y_len(), 8);
        let dw = |threads| {
            kernels::with_threads(threads, || kernels::conv2d::conv2d_w_grad(&g, &x, &dy))
        };
        let one = dw(1);
        for threads in [2, 3, 5] {
            assert!(
                one.iter()
                    .zip(dw(threads))
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{g:?}: {threads} threads"
            );
        }
    }
}

#[test]
fn gemm_conv2d_and_its_gradients_match_flex_autodiff() {
    let dev = Device::flex();
    for (n, c) in cases().iter().enumerate() {
        let g = c.p.geom(c.x, c.w);
        let [ho, wo] = g.out_hw();
        let y_shape = [c.x[0], c.w[0], ho, wo];
        let seed = 10 * n as u64;
        let x = random(g.x_len(), seed + 1);
        let w = random(g.w_len(), seed + 2);
        let b = random(c.w[0], seed + 3);
        let dy = random(g.y_len(), seed + 4);
        let [y_ref, dx_ref, dw_ref, db_ref] = reference(c, &x, &w, &b, &dy);
        for threads in [1, 2, 3] {
            let at = |what: &str| {
                format!(
                    "case {n} {:?} w {:?} {:?}, {threads} threads: {what}",
                    c.x, c.w, c.p
                )
            };
            let (y, dx, dw) = kernels::with_threads(threads, || {
                let y = kernels::conv2d_forward(
                    tensor(&x, c.x, &dev),
                    tensor(&w, c.w, &dev),
                    Some(tensor(&b, [c.w[0]], &dev)),
                    c.p,
                );
                let dx = kernels::conv2d_x_grad(
                    c.x,
                    tensor(&w, c.w, &dev),
                    tensor(&dy, y_shape, &dev),
                    c.p,
                );
                let dw = kernels::conv2d_w_grad(
                    tensor(&x, c.x, &dev),
                    c.w,
                    tensor(&dy, y_shape, &dev),
                    c.p,
                );
                (host(y), host(dx), host(dw))
            });
            assert_close(&at("forward"), &y, &y_ref);
            assert_close(&at("input gradient"), &dx, &dx_ref);
            assert_close(&at("weight gradient"), &dw, &dw_ref);
        }
        let db = host(kernels::conv2d_b_grad(tensor(&dy, y_shape, &dev)));
        assert_close(&format!("case {n}: bias gradient"), &db, &db_ref);
        // Without bias the forward is the bare GEMM (the other accumulate branch).
        let y0 = host(kernels::conv2d_forward(
            tensor(&x, c.x, &dev),
            tensor(&w, c.w, &dev),
            None,
            c.p,
        ));
        let y0_ref: Vec<f32> = y_ref
            .chunks(ho * wo)
            .enumerate()
            .flat_map(|(i, plane)| {
                let bias = b[i % c.w[0]];
                plane.iter().map(move |v| v - bias)
            })
            .collect();
        assert_close(&format!("case {n}: forward without bias"), &y0, &y0_ref);
    }
}

/// The benchmark's stock input / weight gradients are what autodiff computes on flex.
#[test]
fn stock_gradients_written_out_match_flex_autodiff() {
    let dev = Device::flex();
    for (n, c) in cases().iter().enumerate().take(8) {
        let g = c.p.geom(c.x, c.w);
        let [ho, wo] = g.out_hw();
        let y_shape = [c.x[0], c.w[0], ho, wo];
        let seed = 100 + 10 * n as u64;
        let x = random(g.x_len(), seed + 1);
        let w = random(g.w_len(), seed + 2);
        let b = random(c.w[0], seed + 3);
        let dy = random(g.y_len(), seed + 4);
        let [y_ref, dx_ref, dw_ref, _] = reference(c, &x, &w, &b, &dy);
        let y = stock::forward(
            tensor(&x, c.x, &dev),
            tensor(&w, c.w, &dev),
            Some(tensor(&b, [c.w[0]], &dev)),
            c.p,
        );
        let dx = stock::x_grad(c.x, tensor(&w, c.w, &dev), tensor(&dy, y_shape, &dev), c.p);
        let dw = stock::w_grad(tensor(&x, c.x, &dev), c.w, tensor(&dy, y_shape, &dev), c.p);
        assert_close(&format!("case {n}: stock forward"), &host(y), &y_ref);
        assert_close(
            &format!("case {n}: stock input gradient"),
            &host(dx),
            &dx_ref,
        );
        assert_close(
            &format!("case {n}: stock weight gradient"),
            &host(dw),
            &dw_ref,
        );
    }
}

/// `kernels::profile` records each pass of a convolution once per call, under its geometry, only
/// while it is on.
#[test]
fn the_conv_profile_records_each_pass_of_a_call() {
    use kernels::profile::{self, ConvPass};
    // A shape no other test here uses, so concurrent tests cannot add calls to its rows.
    let (x_shape, w_shape) = ([1, 3, 11, 13], [9, 3, 3, 3]);
    let x = random(x_shape.iter().product(), 41);
    let w = random(w_shape.iter().product(), 42);
    let b = random(9, 43);
    let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let run = || {
        let dy = random(9 * 11 * 13, 44);
        autodiff_run(
            gemm_conv,
            options.clone(),
            [x_shape, w_shape],
            [&x, &w, &b, &dy],
            [true; 3],
        );
    };
    let mine = |pass: ConvPass| {
        profile::snapshot()
            .into_iter()
            .filter(|e| {
                e.pass == pass && e.geom.c_in == 3 && e.geom.c_out == 9 && e.geom.h_in == 11
            })
            .map(|e| e.calls)
            .sum::<u64>()
    };
    run(); // off: nothing recorded
    profile::set_enabled(true);
    run();
    run();
    profile::set_enabled(false);
    run();
    for pass in [
        ConvPass::Forward,
        ConvPass::InputGrad,
        ConvPass::WeightGrad,
        ConvPass::BiasGrad,
    ] {
        assert_eq!(mine(pass), 2, "{pass:?}");
    }
    profile::reset();
    assert_eq!(mine(ConvPass::Forward), 0);
}
