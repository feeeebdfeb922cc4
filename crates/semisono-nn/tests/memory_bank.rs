//! Memory banks: FIFO behaviour, the segment-mean update, and the bank forms of SupCon and the
//! pixel contrast. Expected values were computed once in float64 with numpy, straight from the
//! formulas in the module docs (an independent loop-per-anchor implementation; the same code
//! reproduces spec §14.8 without a bank).

use burn::tensor::{Device, Int, Tensor, TensorData};

use semisono_nn::losses::{MemoryBank, PixelContrastConfig, SupConConfig};
use semisono_nn::ops::float_tensor_to_vec;

fn rows(v: &[[f32; 2]], device: &Device) -> Tensor<2> {
    let flat: Vec<f32> = v.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [v.len(), 2]), device)
}

fn ints(v: &[i64], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
}

fn assert_close(got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= rel * w.abs().max(1e-3),
            "got {got:?}\nwant {want:?}"
        );
    }
}

#[test]
fn bank_is_a_per_class_fifo() {
    let mut bank = MemoryBank::new(2, 2, 2);
    assert!(bank.is_empty());
    assert!(bank.contrast_set(&Device::flex()).is_none());
    bank.push(1, &[1.0, 0.0]);
    bank.push(1, &[2.0, 0.0]);
    bank.push(1, &[3.0, 0.0]); // drops [1, 0]
    bank.push(0, &[9.0, 9.0]);
    assert_eq!((bank.len(0), bank.len(1), bank.total_len()), (1, 2, 3));
    assert_eq!(bank.class_entries(1), vec![2.0, 0.0, 3.0, 0.0]);

    let (features, labels) = bank.contrast_set(&Device::flex()).unwrap();
    assert_eq!(
        float_tensor_to_vec(features),
        vec![9.0, 9.0, 2.0, 0.0, 3.0, 0.0]
    );
    assert_eq!(semisono_nn::ops::int_tensor_to_vec(labels), vec![0, 1, 1]);

    let copy =
        MemoryBank::from_entries(2, 2, vec![bank.class_entries(0), bank.class_entries(1)]).unwrap();
    assert_eq!(copy, bank);
    assert!(MemoryBank::from_entries(2, 2, vec![vec![1.0; 3]]).is_err());
    assert!(MemoryBank::from_entries(2, 2, vec![vec![1.0; 6]]).is_err());
}

#[test]
fn push_rows_skips_negative_labels() {
    let d = Device::flex();
    let mut bank = MemoryBank::new(2, 4, 2);
    bank.push_rows(rows(&[[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], &d), &[1, -1, 0]);
    assert_eq!(bank.class_entries(0), vec![0.5, 0.5]);
    assert_eq!(bank.class_entries(1), vec![1.0, 0.0]);
}

#[test]
fn segment_means_are_normalised_per_image_and_class() {
    let d = Device::flex();
    // [B = 2, D = 2, 1, 3]: image 0 labels [0, 0, 1], image 1 labels [-1, 1, 1].
    let emb = Tensor::<4>::from_data(
        TensorData::new(
            vec![
                1.0f32, 3.0, 0.0, 2.0, 0.0, 5.0, 0.5, 0.5, -1.0, 0.0, 0.0, 2.0,
            ],
            [2, 2, 1, 3],
        ),
        &d,
    );
    let labels =
        Tensor::<3, Int>::from_data(TensorData::new(vec![0i64, 0, 1, -1, 1, 1], [2, 1, 3]), &d);
    let mut bank = MemoryBank::new(2, 8, 2);
    bank.push_segment_means(emb, labels, -1);
    let c0: Vec<f64> = bank
        .class_entries(0)
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let c1: Vec<f64> = bank
        .class_entries(1)
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    assert_close(&c0, &[0.894427191, 0.4472135955], 1e-6);
    // Image 0 first, then image 1 (the ignored pixel is not in its mean).
    assert_close(&c1, &[0.0, 1.0, -0.242535625036, 0.970142500145], 1e-6);
}

/// Spec §14.8's batch (B = 3, two views) plus a bank of three entries.
fn supcon_case(d: &Device) -> (Tensor<3>, Tensor<1, Int>, (Tensor<2>, Tensor<1, Int>)) {
    let strong = rows(&[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], d);
    let weak = rows(&[[0.6, 0.8], [0.8, 0.6], [1.0, 0.0]], d);
    let features = Tensor::stack::<3>(vec![strong, weak], 1);
    let bank = (
        rows(&[[0.6, -0.8], [-1.0, 0.0], [0.28, 0.96]], d),
        ints(&[0, 1, 1], d),
    );
    (features, ints(&[0, 1, 0], d), bank)
}

#[test]
fn supcon_with_bank_matches_numpy() {
    let d = Device::flex();
    for (t, tb, want) in [
        (
            1.0,
            1.0,
            [
                1.838868128839,
                1.887727249791,
                1.838868128839,
                2.270276383295,
                2.493633981759,
                1.838868128839,
            ],
        ),
        (
            0.07,
            0.07,
            [
                3.581819892585,
                6.387861761268,
                3.581819892585,
                8.88946393951,
                11.202608568885,
                3.581819892585,
            ],
        ),
        (
            0.5,
            0.07,
            [
                12.68665759436,
                13.713557465518,
                12.68665759436,
                18.650100804022,
                21.706985766776,
                12.68665759436,
            ],
        ),
    ] {
        let (features, labels, bank) = supcon_case(&d);
        let loss = SupConConfig::new()
            .with_temperature(t)
            .with_base_temperature(tb)
            .init();
        let got = float_tensor_to_vec(loss.per_anchor_with_bank(features, labels, Some(bank)));
        assert_close(&got, &want, 1e-5);
    }
    // Anchor weights keep [1, 0, 1], mean over all six anchors.
    let (features, labels, bank) = supcon_case(&d);
    let keep = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 0.0, 1.0], [3]), &d);
    let loss = SupConConfig::new().init();
    let got = float_tensor_to_vec(loss.forward_with_bank(features, labels, Some(keep), Some(bank)));
    assert_close(&got, &[3.2724872695444183], 1e-5);
}

#[test]
fn supcon_without_bank_is_unchanged() {
    // Spec §14.8 at τ = 0.07.
    let d = Device::flex();
    let (features, labels, _) = supcon_case(&d);
    let got = float_tensor_to_vec(
        SupConConfig::new()
            .init()
            .per_anchor_with_bank(features, labels, None),
    );
    assert_close(
        &got,
        &[
            2.627823043,
            2.913017637,
            2.627823043,
            5.255493021,
            5.413605512,
            2.627823043,
        ],
        1e-5,
    );
}

#[test]
fn pixel_contrast_against_a_bank_matches_numpy() {
    let d = Device::flex();
    let anchors = || rows(&[[1.0, 0.0], [0.0, 1.0], [0.8, 0.6], [0.6, 0.8]], &d);
    let bank = || {
        (
            rows(
                &[
                    [0.6, -0.8],
                    [1.0, 0.0],
                    [0.0, 1.0],
                    [-0.6, 0.8],
                    [0.28, 0.96],
                ],
                &d,
            ),
            ints(&[0, 0, 1, 1, 1], &d),
        )
    };
    for (t, tb, want) in [
        (
            1.0,
            1.0,
            [
                0.833658580599,
                0.456765387134,
                1.491933912841,
                0.849741521505,
            ],
        ),
        (
            0.07,
            0.07,
            [
                5.256155191775e-03,
                4.203872599954e-06,
                6.102950056033,
                1.548587417084,
            ],
        ),
        (
            0.1,
            0.07,
            [
                3.080703270865e-02,
                2.136581717889e-04,
                6.347356821091,
                1.619616569716,
            ],
        ),
    ] {
        let loss = PixelContrastConfig::new()
            .with_temperature(t)
            .with_base_temperature(tb)
            .init();
        let (b, bl) = bank();
        let got =
            float_tensor_to_vec(loss.per_anchor_against(anchors(), ints(&[0, 1, 0, 1], &d), b, bl));
        // The smallest values are differences of nearly equal f32 terms: compare absolutely there.
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 2e-5 * w.abs().max(1.0),
                "{got:?} vs {want:?}"
            );
        }
    }
    // An anchor of a class with no bank entry contributes 0.
    let loss = PixelContrastConfig::new()
        .with_temperature(0.5)
        .with_base_temperature(0.5)
        .init();
    let (b, bl) = bank();
    let got = float_tensor_to_vec(loss.per_anchor_against(
        rows(&[[1.0, 0.0], [0.0, 1.0]], &d),
        ints(&[0, 2], &d),
        b,
        bl,
    ));
    assert_close(&got, &[0.498821897094, 0.0], 1e-5);
}

#[test]
fn pixel_contrast_forward_with_bank_uses_the_sampled_anchors() {
    let d = Device::flex();
    // One image of 2×3 pixels: class 0 on the top row (all [1, 0]), class 1 on the bottom row (all
    // [0.6, 0.8]); with max_views 2 both classes are valid and 2 views each are sampled. Every
    // choice gives the same anchors, so the value does not depend on the seed.
    let emb = Tensor::<4>::from_data(
        TensorData::new(
            vec![
                1.0f32, 1.0, 1.0, 0.6, 0.6, 0.6, 0.0, 0.0, 0.0, 0.8, 0.8, 0.8,
            ],
            [1, 2, 2, 3],
        ),
        &d,
    );
    let labels =
        || Tensor::<3, Int>::from_data(TensorData::new(vec![0i64, 0, 0, 1, 1, 1], [1, 2, 3]), &d);
    let loss = PixelContrastConfig::new().with_max_views(2).init();
    let mut bank = MemoryBank::new(2, 4, 2);
    // Empty bank: the batch form.
    let batch = float_tensor_to_vec(loss.forward(emb.clone(), labels(), labels(), 5));
    let empty =
        float_tensor_to_vec(loss.forward_with_bank(emb.clone(), labels(), labels(), 5, &bank));
    assert_eq!(batch, empty);
    bank.push(0, &[0.8, 0.6]);
    bank.push(1, &[0.0, 1.0]);
    bank.push(1, &[-0.6, 0.8]);
    for seed in [1, 2] {
        let got = float_tensor_to_vec(loss.forward_with_bank(
            emb.clone(),
            labels(),
            labels(),
            seed,
            &bank,
        ));
        assert_close(&got, &[3.0242344704602107], 1e-5);
    }
}
