//! Shared by the oracle tests: reading `losses.json`, building tensors from it, and comparing.
//!
//! Reads `$SEMISONO_ORACLES/losses.json` when `SEMISONO_ORACLES` is set, else the copy in
//! `tests/fixtures/` (see its NOTICE.md). Tolerances: the oracle README's suggestions,
//! `|got − want| ≤ abs + rel·|want|` with (abs 1e-5, rel 1e-4) for f32 and (1e-12, 1e-10) for f64.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde_json::Value;

use semisono_nn::ops::float_tensor_to_vec;

pub mod loss_cases;
pub mod saliency_cases;
pub mod torch_keys;

/// `|got − want| ≤ abs + rel·|want|`.
#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    pub rel: f64,
    pub abs: f64,
}

/// The oracle README's tolerance for an f32 implementation.
pub const F32: Tolerance = Tolerance {
    rel: 1e-4,
    abs: 1e-5,
};

/// The oracle README's tolerance for losses and gradients in f64.
pub const F64: Tolerance = Tolerance {
    rel: 1e-10,
    abs: 1e-12,
};

// ---------------------------------------------------------------------------------------------
// Fixture access

pub fn oracle_cases(group: &str) -> Vec<Value> {
    let path = match std::env::var_os("SEMISONO_ORACLES") {
        Some(dir) => PathBuf::from(dir).join("losses.json"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/losses.json"),
    };
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the loss oracle {}: {e}", path.display()));
    let root: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
    let cases: Vec<Value> = root["cases"]
        .as_array()
        .expect("losses.json has a `cases` list")
        .iter()
        .filter(|c| c["group"] == group)
        .cloned()
        .collect();
    assert!(!cases.is_empty(), "no `{group}` case in {}", path.display());
    cases
}

/// A number, or one of the strings "NaN", "Infinity", "-Infinity".
pub fn number(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => match s.as_str() {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            other => panic!("unexpected number string {other:?}"),
        },
        other => panic!("expected a number, got {other}"),
    }
}

/// Flattens a nested list (row-major) and returns its values and shape.
pub fn flatten(v: &Value) -> (Vec<f64>, Vec<usize>) {
    fn walk(v: &Value, depth: usize, out: &mut Vec<f64>, shape: &mut Vec<usize>) {
        match v {
            Value::Array(items) => {
                if shape.len() == depth {
                    shape.push(items.len());
                }
                for item in items {
                    walk(item, depth + 1, out, shape);
                }
            }
            other => out.push(number(other)),
        }
    }
    let (mut out, mut shape) = (Vec::new(), Vec::new());
    walk(v, 0, &mut out, &mut shape);
    (out, shape)
}

pub fn float_tensor<const D: usize>(v: &Value, device: &Device) -> Tensor<D> {
    let (values, shape) = flatten(v);
    assert_eq!(shape.len(), D, "expected a rank-{D} tensor");
    Tensor::from_data(TensorData::new(values, shape), device)
}

pub fn int_tensor<const D: usize>(v: &Value, device: &Device) -> Tensor<D, Int> {
    let (values, shape) = flatten(v);
    assert_eq!(shape.len(), D, "expected a rank-{D} tensor");
    let values: Vec<i64> = values.iter().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

// ---------------------------------------------------------------------------------------------
// Comparison bookkeeping

/// Collects mismatches and the largest errors of one kind.
pub struct Checker {
    kind: &'static str,
    tolerance: Tolerance,
    failures: Vec<String>,
    max_abs: f64,
    max_rel: f64,
    compared: usize,
}

impl Checker {
    pub fn new(kind: &'static str, tolerance: Tolerance) -> Self {
        Self {
            kind,
            tolerance,
            failures: Vec::new(),
            max_abs: 0.0,
            max_rel: 0.0,
            compared: 0,
        }
    }

    pub fn values(&mut self, id: &str, field: &str, got: &[f64], want: &[f64]) {
        if got.len() != want.len() {
            self.failures.push(format!(
                "{id}/{field}: {} values, want {}",
                got.len(),
                want.len()
            ));
            return;
        }
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            self.compared += 1;
            let abs = (g - w).abs();
            let within = abs <= self.tolerance.abs + self.tolerance.rel * w.abs(); // false for NaN
            if w.is_nan() || !within {
                self.failures.push(format!(
                    "{id}/{field}[{i}]: got {g}, want {w} (abs err {abs:e})"
                ));
                continue;
            }
            self.max_abs = self.max_abs.max(abs);
            if w != 0.0 {
                self.max_rel = self.max_rel.max(abs / w.abs());
            }
        }
    }

    pub fn tensor<const D: usize>(&mut self, id: &str, field: &str, got: Tensor<D>, want: &Value) {
        let (want, _) = flatten(want);
        self.values(id, field, &float_tensor_to_vec(got), &want);
    }

    pub fn scalar(&mut self, id: &str, field: &str, got: Tensor<1>, want: &Value) {
        self.values(id, field, &float_tensor_to_vec(got), &[number(want)]);
    }

    pub fn finish(self, cases: usize) {
        println!(
            "{:<20} {cases:>2} cases, {:>5} values: max abs err {:.3e}, max rel err {:.3e}",
            self.kind, self.compared, self.max_abs, self.max_rel
        );
        assert!(
            self.failures.is_empty(),
            "{}: {} mismatches (tolerance abs {:e} + rel {:e}):\n{}",
            self.kind,
            self.failures.len(),
            self.tolerance.abs,
            self.tolerance.rel,
            self.failures.join("\n")
        );
    }
}

pub fn id(case: &Value) -> String {
    case["id"].as_str().unwrap_or("<no id>").to_string()
}
