//! Shared helpers for the oracle tests: fixture loading, value decoding, failure collection.
#![allow(dead_code)]

use std::fmt::Debug;
use std::path::PathBuf;

use serde_json::Value;

/// Relative tolerance the oracle README suggests for segmentation and classification metrics.
pub const REL: f64 = 1e-12;
/// Absolute tolerance for values that are zero up to rounding.
pub const ABS: f64 = 1e-15;

/// The oracle directory: `$SEMISONO_ORACLES` if set, else the copied fixtures.
pub fn oracle_dir() -> PathBuf {
    match std::env::var_os("SEMISONO_ORACLES") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
    }
}

/// Loads `<oracle_dir>/<name>` and returns its `cases`, checking `n_cases`.
pub fn load_cases(name: &str) -> Vec<Value> {
    let path = oracle_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read oracle file {}: {e}", path.display()));
    let root: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
    let cases = root["cases"]
        .as_array()
        .expect("`cases` must be a list")
        .clone();
    if let Some(n) = root["n_cases"].as_u64() {
        assert_eq!(
            cases.len() as u64,
            n,
            "{}: n_cases does not match",
            path.display()
        );
    }
    assert!(!cases.is_empty(), "{}: no cases", path.display());
    cases
}

/// A stored value: a number (possibly non-finite) or a recorded library error.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    Num(f64),
    Error(String),
}

/// Decodes a stored scalar: number, "NaN" / "Infinity" / "-Infinity", or `{"error": ...}`.
pub fn stored(v: &Value) -> Stored {
    match v {
        Value::Number(n) => Stored::Num(n.as_f64().expect("number")),
        Value::String(s) => Stored::Num(match s.as_str() {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            other => panic!("unexpected string value {other:?}"),
        }),
        Value::Object(o) if o.contains_key("error") => {
            Stored::Error(o["error"].as_str().unwrap_or("").to_string())
        }
        other => panic!("unexpected stored value {other}"),
    }
}

/// Collects failures (with case ids) so every case is checked before the test fails.
#[derive(Default)]
pub struct Report {
    pub failures: Vec<String>,
    pub checked: usize,
    pub bit_exact: usize,
}

impl Report {
    pub fn fail(&mut self, id: &str, what: &str, msg: String) {
        self.failures.push(format!("[{id}] {what}: {msg}"));
    }

    /// Compares a computed value (`Err` = undefined) with a stored one.
    pub fn value<E: Debug>(&mut self, id: &str, what: &str, got: Result<f64, E>, want: &Value) {
        self.checked += 1;
        match (stored(want), got) {
            (Stored::Error(msg), Err(_)) => {
                let _ = msg;
                self.bit_exact += 1;
            }
            (Stored::Error(msg), Ok(g)) => {
                self.fail(id, what, format!("expected undefined ({msg}), got {g:?}"))
            }
            (Stored::Num(w), Err(e)) => self.fail(id, what, format!("expected {w:?}, got {e:?}")),
            (Stored::Num(w), Ok(g)) => {
                if g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()) {
                    self.bit_exact += 1;
                } else if !close(g, w) {
                    self.fail(
                        id,
                        what,
                        format!("expected {w:?}, got {g:?} (diff {:e})", g - w),
                    );
                }
            }
        }
    }

    /// Compares a plain number.
    pub fn num(&mut self, id: &str, what: &str, got: f64, want: &Value) {
        self.value::<()>(id, what, Ok(got), want);
    }

    /// Compares a list of numbers.
    pub fn nums(&mut self, id: &str, what: &str, got: &[f64], want: &Value) {
        let w = want
            .as_array()
            .unwrap_or_else(|| panic!("[{id}] {what}: expected a list"));
        if w.len() != got.len() {
            self.fail(
                id,
                what,
                format!("length {} vs stored {}", got.len(), w.len()),
            );
            return;
        }
        for (i, (g, wv)) in got.iter().zip(w).enumerate() {
            self.num(id, &format!("{what}[{i}]"), *g, wv);
        }
    }

    /// Compares an exact integer.
    pub fn int(&mut self, id: &str, what: &str, got: u64, want: &Value) {
        self.checked += 1;
        match want.as_u64() {
            Some(w) if w == got => self.bit_exact += 1,
            _ => self.fail(id, what, format!("expected {want}, got {got}")),
        }
    }

    /// Panics with every failure if there is any; prints a summary otherwise.
    pub fn finish(self, name: &str) {
        eprintln!(
            "{name}: {} comparisons, {} bit-exact, {} failures",
            self.checked,
            self.bit_exact,
            self.failures.len()
        );
        assert!(self.checked > 0, "{name}: nothing was compared");
        if !self.failures.is_empty() {
            panic!(
                "{name}: {} of {} comparisons failed:\n{}",
                self.failures.len(),
                self.checked,
                self.failures.join("\n")
            );
        }
    }
}

/// `rel` 1e-12 or `abs` 1e-15; NaN only equals NaN; infinities must match exactly.
pub fn close(g: f64, w: f64) -> bool {
    if g.is_nan() || w.is_nan() {
        return g.is_nan() && w.is_nan();
    }
    if g.is_infinite() || w.is_infinite() {
        return g == w;
    }
    (g - w).abs() <= (REL * w.abs()).max(ABS)
}

/// Decodes a mask from its `rows` strings into (pixels, height, width).
pub fn rows_to_mask(rows: &Value) -> (Vec<u8>, usize, usize) {
    let rows = rows.as_array().expect("rows must be a list");
    let h = rows.len();
    let w = rows.first().and_then(|r| r.as_str()).map_or(0, str::len);
    let mut data = Vec::with_capacity(h * w);
    for r in rows {
        let s = r.as_str().expect("row must be a string");
        assert_eq!(s.len(), w, "ragged rows");
        data.extend(s.bytes().map(|b| match b {
            b'1' => 1u8,
            b'0' => 0u8,
            other => panic!("bad mask char {other}"),
        }));
    }
    (data, h, w)
}

#[test]
fn comparison_helpers_can_fail() {
    assert!(close(1.0, 1.0 + 1e-13));
    assert!(!close(1.0, 1.0 + 1e-9));
    assert!(close(f64::NAN, f64::NAN) && !close(f64::NAN, 0.0) && !close(0.0, f64::NAN));
    assert!(!close(f64::INFINITY, 1e308));
    let mut r = Report::default();
    r.value::<()>("x", "y", Ok(0.5), &serde_json::json!({"error": "E"}));
    r.value("x", "z", Err::<f64, _>(()), &serde_json::json!(1.0));
    r.num("x", "w", 1.0, &serde_json::json!("NaN"));
    assert_eq!(r.failures.len(), 3);
}
