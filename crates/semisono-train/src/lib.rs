//! Semi-supervised methods behind the `SslMethod` trait, the training loop, checkpoints, evaluation, prediction.
//!
//! Empty shell: filled by issue 3 (Hermes, supervised) and issue 4 (PatchCL, MLRPL, Mean Teacher, FixMatch, CPS).
