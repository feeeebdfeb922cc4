//! Helpers shared by the end-to-end tests of the `semisono` binary.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn semisono(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_semisono"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run semisono")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "expected success, got {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

/// Asserts exit code 2 and that stderr mentions every `needle`.
#[track_caller]
pub fn assert_bad_input(o: &Output, needles: &[&str]) {
    assert_eq!(
        o.status.code(),
        Some(2),
        "expected exit 2\nstdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
    let err = stderr(o);
    for n in needles {
        assert!(err.contains(n), "stderr does not mention {n:?}:\n{err}");
    }
}

/// Names in `dir`, hidden ones included (a leftover `.x.partial-*` staging dir must show up).
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

pub fn synth(dir: &Path, name: &str, count: &str) -> PathBuf {
    let o = semisono(
        &[
            "synth", "--out", name, "--count", count, "--size", "64", "--seed", "7",
        ],
        dir,
    );
    assert_ok(&o);
    dir.join(name)
}
