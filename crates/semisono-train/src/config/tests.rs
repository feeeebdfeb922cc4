//! Configuration tests: presets, TOML round trips, merging over presets, overrides and every error.

use super::*;

fn err_text(r: Result<TrainConfig, ConfigError>) -> (ConfigError, String) {
    let e = r.expect_err("expected an error");
    let s = e.to_string();
    (e, s)
}

#[test]
fn presets_are_valid_and_as_documented() {
    for name in PRESETS {
        let cfg = TrainConfig::preset(name).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.preset.as_deref(), Some(*name));
        assert_eq!(cfg.augment.size, [cfg.image_size; 2]);
    }
    let p = TrainConfig::preset("hermes-paper").unwrap();
    assert_eq!(p.method, "hermes");
    assert_eq!(p.protocol, Protocol::Paper);
    assert_eq!(
        (p.model.seg_backbone.as_str(), p.model.cls_backbone.as_str()),
        ("res2net101_v1b", "resnet18")
    );
    assert_eq!(
        (p.image_size, p.batch_labeled, p.batch_unlabeled),
        (224, 8, 8)
    );
    assert_eq!(
        (p.steps, p.model.in_channels, p.model.width_multiplier),
        (3000, 3, 1.0)
    );
    assert_eq!(p.optim.seg, OptimizerConfig::adam(1e-4));
    assert_eq!(p.optim.seg.betas, [0.9, 0.999]);
    assert_eq!(p.optim.seg.eps, 1e-8);
    assert_eq!(p.optim.cls.kind, OptimKind::Sgd);
    assert_eq!(
        (
            p.optim.cls.lr,
            p.optim.cls.momentum,
            p.optim.cls.weight_decay
        ),
        (1e-4, 0.9, 1e-4)
    );
    assert_eq!(p.optim.poly_power, 0.9);
    let h = &p.hermes;
    assert_eq!((h.t_min, h.t_max), (0.5, 0.95));
    assert_eq!(
        (
            h.cls_weight,
            h.seg_weight,
            h.cls_contrast_weight,
            h.seg_contrast_weight,
            h.unsup_weight
        ),
        (1.1, 0.5, 0.2, 0.8, 0.1)
    );
    assert_eq!((h.temperature, h.base_temperature), (0.07, 0.07));
    assert_eq!(
        (h.max_samples, h.max_views, h.contrast_after_epoch),
        (1024, 100, 10)
    );
    assert_eq!((h.mode, h.seg_dice_keep), (HermesMode::Code, DiceKeep::Or));
    assert!(h.dual_threshold && h.attention && h.consistency && !h.saliency && !h.memory_bank);
    assert_eq!(h.contrast_keep(), ContrastKeep::EntropyOnly);

    let q = TrainConfig::preset("quickstart-cpu").unwrap();
    assert_eq!(
        (q.image_size, q.batch_labeled, q.batch_unlabeled),
        (64, 4, 4)
    );
    assert_eq!((q.model.width_multiplier, q.model.in_channels), (0.25, 1));
    assert!(q.steps <= 500);
    assert_eq!(q.protocol, Protocol::Clean);

    // The defaults are the paper's settings with the clean protocol and no preset.
    let d = TrainConfig::default();
    assert_eq!(
        TrainConfig {
            preset: Some("hermes-paper".into()),
            protocol: Protocol::Paper,
            ..d
        },
        p
    );
}

#[test]
fn unknown_preset_lists_the_valid_ones() {
    let (e, s) = err_text(TrainConfig::preset("fast"));
    assert!(matches!(e, ConfigError::UnknownPreset { .. }));
    assert!(
        s.contains("\"fast\"") && s.contains("quickstart-cpu, hermes-paper"),
        "{s}"
    );
    // Named inside a file: the error points at the key.
    let (_, s) = err_text(TrainConfig::from_toml_str(
        "seed = 1\npreset = \"fast\"\n",
        None,
    ));
    assert!(s.starts_with("<config>:2:1: `preset`"), "{s}");
    assert!(s.contains("valid presets"), "{s}");
}

#[test]
fn toml_round_trip() {
    let mut changed = TrainConfig::preset("quickstart-cpu").unwrap();
    changed.model.seg_pretrained = Some("weights/res2net.pth".into());
    changed.optim.seg.lr = 3.3e-4;
    changed.seed = 123_456_789;
    for cfg in [
        TrainConfig::default(),
        TrainConfig::preset("hermes-paper").unwrap(),
        changed,
    ] {
        let text = cfg.to_toml().unwrap();
        let back = TrainConfig::from_toml_str(&text, None).unwrap();
        assert_eq!(back, cfg, "{text}");
    }
    let text = TrainConfig::preset("quickstart-cpu")
        .unwrap()
        .to_toml()
        .unwrap();
    assert!(text.starts_with("preset = \"quickstart-cpu\""), "{text}");
    assert!(
        text.contains("[optim.seg]") && text.contains("[hermes]"),
        "{text}"
    );
}

#[test]
fn file_overrides_its_preset() {
    let text = r#"
preset = "quickstart-cpu"
steps = 50
method = "supervised"

[optim.seg]
lr = 3e-4

[hermes]
attention = false
"#;
    let cfg = TrainConfig::from_toml_str(text, None).unwrap();
    let q = TrainConfig::preset("quickstart-cpu").unwrap();
    assert_eq!((cfg.steps, cfg.method.as_str()), (50, "supervised"));
    assert_eq!(cfg.optim.seg.lr, 3e-4);
    // Untouched keys come from the preset, not from the defaults.
    assert_eq!(cfg.optim.seg.kind, OptimKind::Adam);
    assert_eq!(cfg.optim.cls, q.optim.cls);
    assert_eq!((cfg.image_size, cfg.model.width_multiplier), (64, 0.25));
    assert!(!cfg.hermes.attention);
    assert_eq!(cfg.hermes.max_views, q.hermes.max_views);
    assert_eq!(cfg.preset.as_deref(), Some("quickstart-cpu"));

    // The caller's base preset, and no preset at all.
    let cfg = TrainConfig::from_toml_str("steps = 5", Some("quickstart-cpu")).unwrap();
    assert_eq!((cfg.steps, cfg.image_size), (5, 64));
    let cfg = TrainConfig::from_toml_str("steps = 5", None).unwrap();
    assert_eq!((cfg.steps, cfg.image_size, cfg.preset), (5, 224, None));
    let cfg = TrainConfig::from_toml_str("preset = \"hermes-paper\"", Some("hermes-paper"));
    assert_eq!(cfg.unwrap().protocol, Protocol::Paper);
    // Two different presets.
    let (e, s) = err_text(TrainConfig::from_toml_str(
        "preset = \"hermes-paper\"",
        Some("quickstart-cpu"),
    ));
    assert!(matches!(e, ConfigError::PresetConflict { .. }), "{s}");
}

#[test]
fn unknown_keys_name_the_key_its_table_and_the_valid_keys() {
    let (e, s) = err_text(TrainConfig::from_toml_str("stepz = 3\n", None));
    match &e {
        ConfigError::UnknownKey {
            at,
            key,
            table,
            valid,
        } => {
            assert_eq!(
                (at.as_str(), key.as_str(), table.as_str()),
                ("<config>:1:1", "stepz", "")
            );
            assert!(valid.contains(&"steps".to_string()) && valid.contains(&"hermes".to_string()));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        s.contains("valid keys at the top level: preset, method,"),
        "{s}"
    );

    let text = "seed = 1\n\n[hermes]\nattention = true\nt_mx = 0.9\n";
    let (e, s) = err_text(TrainConfig::from_toml_str(text, None));
    let ConfigError::UnknownKey {
        key, table, valid, ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!((key.as_str(), table.as_str()), ("hermes.t_mx", "hermes"));
    assert!(valid.contains(&"t_max".to_string()));
    assert!(
        s.starts_with("<config>:5:1: unknown key `hermes.t_mx`; valid keys in [hermes]: mode,"),
        "{s}"
    );

    // Nested two levels, written as a dotted key and as an inline table.
    for text in [
        "optim.seg.rate = 1e-3",
        "[optim]\nseg = { lr = 1e-3, rate = 2 }",
    ] {
        let (e, s) = err_text(TrainConfig::from_toml_str(text, None));
        let ConfigError::UnknownKey { key, table, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(
            (key.as_str(), table.as_str()),
            ("optim.seg.rate", "optim.seg"),
            "{s}"
        );
        assert!(
            s.contains("kind, lr, betas, eps, momentum, nesterov, weight_decay"),
            "{s}"
        );
    }
    // A table the config does not have.
    let (_, s) = err_text(TrainConfig::from_toml_str("[unet]\nx = 1", None));
    assert!(
        s.contains("unknown key `unet`") && s.contains("<config>:1:"),
        "{s}"
    );
    // A key of the augmentation table (defined in semisono-data).
    let (_, s) = err_text(TrainConfig::from_toml_str("[augment]\np_flip = 0.5", None));
    assert!(
        s.contains("`augment.p_flip`") && s.contains("p_rot_flip"),
        "{s}"
    );
}

#[test]
fn wrong_types_name_the_key_and_the_expected_type() {
    let cases = [
        (
            "[optim.seg]\nlr = \"fast\"",
            "<config>:2:6",
            "optim.seg.lr",
            "expected a number",
        ),
        (
            "batch_labeled = -1",
            "<config>:1:17",
            "batch_labeled",
            "expected a non-negative integer",
        ),
        (
            "steps = 1.5",
            "<config>:1:9",
            "steps",
            "expected a non-negative integer",
        ),
        (
            "[hermes]\nattention = 1",
            "<config>:2:13",
            "hermes.attention",
            "expected a boolean",
        ),
        ("task = \"segm\"", "<config>:1:8", "task", "segmentation"),
        (
            "[optim.seg]\nbetas = [0.9, \"x\"]",
            "<config>:2:15",
            "optim.seg.betas",
            "expected a number",
        ),
        (
            "[model]\nseg_pretrained = 3",
            "<config>:2:18",
            "model.seg_pretrained",
            "string",
        ),
    ];
    for (text, want_at, want_key, want_msg) in cases {
        let (e, s) = err_text(TrainConfig::from_toml_str(text, None));
        let ConfigError::WrongType { at, key, message } = &e else {
            panic!("{text}: {e:?}")
        };
        assert_eq!((at.as_str(), key.as_str()), (want_at, want_key), "{s}");
        assert!(message.contains(want_msg), "{text}: {s}");
    }
}

#[test]
fn syntax_errors_have_a_line() {
    let (e, s) = err_text(TrainConfig::from_toml_str("seed = 1\nsteps = = 3\n", None));
    assert!(matches!(e, ConfigError::Syntax { .. }), "{s}");
    assert!(s.starts_with("<config>:2:"), "{s}");
    assert!(!s.contains('\n'), "{s}");
}

#[test]
fn file_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.toml");
    std::fs::write(
        &path,
        "preset = \"quickstart-cpu\"\n\n[data]\nworkers = 1\nbogus = 2\n",
    )
    .unwrap();
    let s = TrainConfig::from_file(&path).unwrap_err().to_string();
    assert!(
        s.starts_with(&format!("{}:5:1: unknown key `data.bogus`", path.display())),
        "{s}"
    );
    // Value errors from validation point at the key's line too.
    std::fs::write(&path, "[hermes]\nt_min = 0.99\nt_max = 0.9\n").unwrap();
    let s = TrainConfig::from_file(&path).unwrap_err().to_string();
    assert!(
        s.starts_with(&format!("{}:2:1: `hermes.t_min`", path.display())),
        "{s}"
    );
    // A good file.
    std::fs::write(&path, "preset = \"quickstart-cpu\"\nseed = 7\n").unwrap();
    assert_eq!(TrainConfig::from_file(&path).unwrap().seed, 7);
    // A missing file.
    let s = TrainConfig::from_file(&dir.path().join("nope.toml"))
        .unwrap_err()
        .to_string();
    assert!(s.contains("nope.toml"), "{s}");
}

#[test]
fn set_overrides_single_keys() {
    let mut cfg = TrainConfig::preset("quickstart-cpu").unwrap();
    cfg.set("optim.seg.lr", "3e-4").unwrap();
    cfg.set("model.seg_backbone", "resnet34").unwrap();
    cfg.set("model.cls_backbone", "\"resnet34\"").unwrap();
    cfg.set("hermes.attention", "false").unwrap();
    cfg.set("optim.seg.betas", "[0.8, 0.99]").unwrap();
    cfg.set("task", "segmentation").unwrap();
    cfg.apply_override("steps = 42").unwrap();
    cfg.apply_override("optim.cls.lr=1").unwrap();
    assert_eq!(cfg.optim.seg.lr, 3e-4);
    assert_eq!(cfg.model.seg_backbone, "resnet34");
    assert_eq!(cfg.model.cls_backbone, "resnet34");
    assert!(!cfg.hermes.attention);
    assert_eq!(cfg.optim.seg.betas, [0.8, 0.99]);
    assert_eq!(cfg.task, Task::Segmentation);
    assert_eq!(cfg.steps, 42);
    assert_eq!(cfg.optim.cls.lr, 1.0);
    // Everything else untouched.
    let q = TrainConfig::preset("quickstart-cpu").unwrap();
    assert_eq!((cfg.image_size, &cfg.augment), (q.image_size, &q.augment));

    // Weights: a path, then switched off with an empty value.
    cfg.set("model.seg_pretrained", "/w/r.pth").unwrap();
    assert_eq!(cfg.model.seg_pretrained, Some("/w/r.pth".into()));
    cfg.set("model.seg_pretrained", "").unwrap();
    assert_eq!(cfg.model.seg_pretrained, None);
}

#[test]
fn set_errors() {
    let cfg = TrainConfig::preset("quickstart-cpu").unwrap();
    let try_set = |k: &str, v: &str| {
        let mut c = cfg.clone();
        let r = c.set(k, v);
        // A failed override leaves the configuration as it was.
        assert_eq!(c, cfg);
        r.unwrap_err()
    };
    let e = try_set("optim.seg.lrr", "1e-3");
    let s = e.to_string();
    assert!(matches!(e, ConfigError::UnknownKey { .. }), "{s}");
    assert!(s.starts_with("--set optim.seg.lrr=1e-3: unknown key `optim.seg.lrr`; valid keys in [optim.seg]: kind, lr,"), "{s}");
    let s = try_set("seed", "abc").to_string();
    assert!(
        s.starts_with(
            "--set seed=abc: `seed`: invalid type: string \"abc\", expected a non-negative integer"
        ),
        "{s}"
    );
    let s = try_set("hermes.t_min", "0.99").to_string();
    assert!(s.contains("`hermes.t_min`") && s.contains("t_max"), "{s}");
    assert!(try_set("preset", "hermes-paper")
        .to_string()
        .contains("cannot be overridden"));
    assert!(try_set("optim..lr", "1")
        .to_string()
        .contains("dotted path"));
    assert!(try_set("a b", "1").to_string().contains("dotted path"));
    let mut c = cfg.clone();
    let s = c.apply_override("steps").unwrap_err().to_string();
    assert!(s.contains("KEY=VALUE"), "{s}");
}

#[test]
fn image_size_drives_the_augmentation_size() {
    let mut cfg = TrainConfig::preset("quickstart-cpu").unwrap();
    cfg.set("image_size", "96").unwrap();
    assert_eq!(cfg.augment.size, [96, 96]);
    assert_eq!(cfg.augment_resolved().size, [96, 96]);
    let s = cfg.set("augment.size", "[32, 32]").unwrap_err().to_string();
    assert!(
        s.contains("`augment.size`") && s.contains("image_size"),
        "{s}"
    );
    // Agreeing values are fine (a resolved config lists both).
    cfg.set("augment.size", "[96, 96]").unwrap();
    let cfg = TrainConfig::from_toml_str("image_size = 128", None).unwrap();
    assert_eq!(cfg.augment.size, [128, 128]);
    let s = TrainConfig::from_toml_str("image_size = 128\n[augment]\nsize = [64, 64]", None)
        .unwrap_err()
        .to_string();
    assert!(s.starts_with("<config>:3:1: `augment.size`"), "{s}");
}

#[test]
fn validation_names_the_key() {
    let bad = [
        (
            "method = \"unimatch\"",
            "method",
            "registered methods: supervised, hermes",
        ),
        (
            "[model]\nin_channels = 2",
            "model.in_channels",
            "1 (gray) or 3",
        ),
        ("[optim.cls]\nlr = 0", "optim.cls.lr", "positive"),
        (
            "[optim.seg]\nbetas = [0.9, 1.0]",
            "optim.seg.betas",
            "[0, 1)",
        ),
        ("batch_unlabeled = 0", "batch_unlabeled", "supervised"),
        (
            "[augment]\np_blur = 2.0",
            "augment.p_blur",
            "not a probability",
        ),
        ("[augment]\nresize = false", "augment.resize", "one size"),
        (
            "[hermes]\nmode = \"paper\"\ncode_index_bug = true",
            "hermes.code_index_bug",
            "mode",
        ),
        (
            "[hermes]\ntemperature = 0",
            "hermes.temperature",
            "positive",
        ),
        ("steps = 0", "steps", "at least 1"),
    ];
    for (text, want_key, want_msg) in bad {
        let e = TrainConfig::from_toml_str(text, None).unwrap_err();
        let ConfigError::Invalid { key, message, .. } = &e else {
            panic!("{text}: {e:?}")
        };
        assert_eq!(key, want_key, "{text}");
        assert!(message.contains(want_msg), "{text}: {e}");
    }
    // Supervised may go without unlabeled batches.
    TrainConfig::from_toml_str("method = \"supervised\"\nbatch_unlabeled = 0", None).unwrap();
    // A live registry instead of the built-in list.
    let cfg = TrainConfig::from_toml_str("method = \"cps\"", None).unwrap();
    let s = cfg
        .validate_with(&["hermes", "supervised"])
        .unwrap_err()
        .to_string();
    assert!(
        s.contains("unknown method \"cps\"; registered methods: hermes, supervised"),
        "{s}"
    );
    // Programmatic values are checked by validate() as well.
    let cfg = TrainConfig {
        seed: u64::MAX,
        ..TrainConfig::default()
    };
    assert!(cfg.validate().unwrap_err().to_string().contains("`seed`"));
}

#[test]
fn every_preset_names_registered_backbones() {
    for name in PRESETS {
        let cfg = TrainConfig::preset(name).unwrap();
        cfg.validate()
            .unwrap_or_else(|e| panic!("preset {name}: {e}"));
    }
    let mut cfg = TrainConfig::default();
    cfg.model.seg_backbone = "res2net101".into();
    let msg = cfg.validate().unwrap_err().to_string();
    assert!(
        msg.contains("model.seg_backbone") && msg.contains("res2net101_v1b"),
        "{msg}"
    );
}
