//! Configuration parsing and validation.

use semisono_phantom::{
    class_names, ClassMode, PhantomConfig, PhantomError, Preset, ProbeChoice, Smoothing,
};

fn err_key(cfg: &PhantomConfig) -> &'static str {
    match cfg.validate() {
        Err(PhantomError::InvalidConfig { key, .. }) => key,
        Ok(()) => panic!("expected an error for {cfg:?}"),
    }
}

#[test]
fn defaults_are_valid_and_documented_values() {
    let c = PhantomConfig::default();
    c.validate().unwrap();
    assert_eq!((c.width, c.height), (128, 128));
    assert_eq!(c.preset, Preset::Breast);
    assert_eq!(class_names(&c), vec!["normal", "benign", "malignant"]);
    let b = PhantomConfig {
        classes: ClassMode::Binary,
        ..c
    };
    assert_eq!(class_names(&b), vec!["benign", "malignant"]);
}

#[test]
fn out_of_range_values_are_rejected_with_the_key() {
    let d = PhantomConfig::default;
    assert_eq!(err_key(&PhantomConfig { width: 16, ..d() }), "width");
    assert_eq!(
        err_key(&PhantomConfig {
            height: 10_000,
            ..d()
        }),
        "height"
    );
    assert_eq!(
        err_key(&PhantomConfig {
            overlap: 1.5,
            ..d()
        }),
        "overlap"
    );
    assert_eq!(
        err_key(&PhantomConfig {
            overlap: f64::NAN,
            ..d()
        }),
        "overlap"
    );
    assert_eq!(
        err_key(&PhantomConfig {
            label_noise: -0.1,
            ..d()
        }),
        "label_noise"
    );
    assert_eq!(
        err_key(&PhantomConfig {
            ambiguous_fraction: 2.0,
            ..d()
        }),
        "ambiguous_fraction"
    );
    assert_eq!(
        err_key(&PhantomConfig {
            d_prime: -1.0,
            ..d()
        }),
        "d_prime"
    );
    assert_eq!(
        err_key(&PhantomConfig {
            multi_lesion_prob: 1.1,
            ..d()
        }),
        "multi_lesion_prob"
    );
    assert_eq!(
        err_key(&PhantomConfig {
            annotation_prob: 7.0,
            ..d()
        }),
        "annotation_prob"
    );
    assert_eq!(
        err_key(&PhantomConfig {
            shortcut: -2.0,
            ..d()
        }),
        "shortcut"
    );
    assert_eq!(
        err_key(&PhantomConfig {
            class_prior: Some(vec![0.5, 0.5]),
            ..d()
        }),
        "class_prior"
    );
    assert_eq!(
        err_key(&PhantomConfig {
            class_prior: Some(vec![0.5, -0.1, 0.6]),
            ..d()
        }),
        "class_prior"
    );
    assert_eq!(
        err_key(&PhantomConfig {
            class_prior: Some(vec![0.0, 0.0, 0.0]),
            ..d()
        }),
        "class_prior"
    );
    let msg = PhantomConfig {
        overlap: 1.5,
        ..d()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(msg.contains("overlap") && msg.contains("[0, 1]"), "{msg}");
}

#[test]
fn serde_names_defaults_and_unknown_keys() {
    let c: PhantomConfig = serde_json::from_str(
        r#"{"preset":"thyroid","probe":"curvilinear","classes":"binary","smoothing":"strong","width":96,"class_prior":[0.5,0.5]}"#,
    )
    .unwrap();
    assert_eq!(c.preset, Preset::Thyroid);
    assert_eq!(c.probe, ProbeChoice::Curvilinear);
    assert_eq!(c.classes, ClassMode::Binary);
    assert_eq!(c.smoothing, Smoothing::Strong);
    assert_eq!((c.width, c.height), (96, 128));
    c.validate().unwrap();
    let m: PhantomConfig =
        serde_json::from_str(r#"{"probe":"mixed","classes":"three-class"}"#).unwrap();
    assert_eq!(m.probe, ProbeChoice::Mixed);
    assert!(serde_json::from_str::<PhantomConfig>(r#"{"widht":96}"#).is_err());
    assert!(serde_json::from_str::<PhantomConfig>(r#"{"preset":"liver"}"#).is_err());
    // Round trip.
    let s = serde_json::to_string(&c).unwrap();
    let back: PhantomConfig = serde_json::from_str(&s).unwrap();
    assert_eq!(back.preset, c.preset);
}
