//! `semisono`: one subcommand per pipeline stage (synth, import, export, split, eval-masks, ...).
//!
//! Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input (see `exit`).

/// mimalloc keeps freed pages for reuse: the training step allocates and frees tens of MB per op,
/// and glibc's malloc returned them to the kernel, so each op faulted fresh zeroed pages back in.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_decommits` of mimalloc.h (the same number in mimalloc 2 and 3).
const MI_OPTION_PURGE_DECOMMITS: std::ffi::c_int = 5;

extern "C" {
    // mimalloc's C API, linked in with the allocator above.
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// Freed memory that mimalloc gives back is marked `MADV_FREE` instead of `MADV_DONTNEED`: the
/// kernel takes those pages only when it needs memory, so the next op's buffers reuse them
/// without faulting in freshly zeroed pages. `perf` of the hermes-paper training step had 21% of
/// its time in the kernel's `clear_page_erms`; with this the step took 40 s instead of 51 s
/// (docs/benchmarks.md, session 10). The pages stay counted in the resident size until taken.
fn reuse_freed_pages() {
    // SAFETY: sets one integer option of the allocator; no memory is touched.
    unsafe { mi_option_set(MI_OPTION_PURGE_DECOMMITS, 0) }
}

mod cell;
mod cmd_bench;
mod cmd_bench_profile;
mod cmd_bench_unet;
mod cmd_eval_masks;
mod cmd_experiment;
mod cmd_import;
mod cmd_predict;
mod cmd_quickstart;
mod cmd_report;
mod cmd_split;
mod cmd_synth;
mod cmd_train;
mod exit;
mod report_html;
mod seg_report;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "semisono",
    version,
    about = "Semi-supervised ultrasound classification and segmentation",
    long_about = "Semi-supervised ultrasound classification and segmentation.\n\n\
        Pipeline: synth/import -> split -> train -> eval/predict -> report.\n\
        Start with `semisono quickstart`, or step by step `semisono synth --out data/phantom`, \
        `semisono split --dataset data/phantom`, `semisono train ...`, `semisono eval --run ...`, \
        `semisono predict --run ... --input ...`; comparisons with `semisono experiment --config FILE --out DIR`."
)]
struct Cli {
    /// Compute device for train, eval, predict, quickstart, experiment and bench: cpu, or cuda / wgpu
    /// in builds with those features (default: $SEMISONO_DEVICE, else cpu).
    #[arg(long, global = true)]
    device: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate the procedural B-mode phantom dataset (exact masks, known labels).
    Synth(cmd_synth::SynthArgs),
    /// Import a public dataset layout (BUSI, UDIAT, BUS-BRA, Hermes lists, folders, DICOM).
    Import(cmd_import::ImportArgs),
    /// Export a dataset (or a split of it) to another layout (Hermes lists).
    Export(cmd_import::ExportArgs),
    /// Split a dataset into labeled / unlabeled / val / test (ratio or count, stratified, k-fold, seeded).
    Split(cmd_split::SplitArgs),
    /// Score a folder of predicted masks against ground truth (Dice, IoU, HD95, ASSD, ...).
    EvalMasks(cmd_eval_masks::EvalMasksArgs),
    /// Train a method (supervised, hermes, patchcl, mlrpl, mean-teacher, fixmatch, cps) into a run directory; resumable.
    Train(cmd_train::TrainArgs),
    /// Evaluate a run's checkpoint on a split part (per-image CSV + summary JSON).
    Eval(cmd_train::EvalArgs),
    /// Predict masks, probability maps, classes, overlays and saliency maps of new images (PNG, JPEG, DICOM).
    Predict(cmd_predict::PredictArgs),
    /// Phantom -> split -> train supervised and hermes -> eval -> one table, on the CPU preset.
    Quickstart(cmd_quickstart::QuickstartArgs),
    /// Methods x label budgets x seeds from one experiment file, resumable, ending in the report.
    Experiment(cmd_experiment::ExperimentArgs),
    /// Run directories -> mean ± std table per method and label budget (Markdown, CSV, HTML).
    Report(cmd_report::ReportArgs),
    /// Measure throughput of the CPU stages (phantom images/s, metric time per mask pair).
    Bench(cmd_bench::BenchArgs),
}

fn main() -> ExitCode {
    reuse_freed_pages();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout with success, usage errors to stderr with code 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if let Some(name) = &cli.device {
        if let Err(e) = semisono_train::methods::select_device(name) {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    let result = match cli.command {
        Command::Synth(a) => cmd_synth::run(a),
        Command::Import(a) => cmd_import::run_import(a),
        Command::Export(a) => cmd_import::run_export(a),
        Command::Split(a) => cmd_split::run(a),
        Command::EvalMasks(a) => cmd_eval_masks::run(a),
        Command::Bench(a) => cmd_bench::run(a),
        Command::Train(a) => cmd_train::run_train(a),
        Command::Eval(a) => cmd_train::run_eval(a),
        Command::Predict(a) => cmd_predict::run(a),
        Command::Quickstart(a) => cmd_quickstart::run(a),
        Command::Experiment(a) => cmd_experiment::run(a),
        Command::Report(a) => cmd_report::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::code_for(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::{c_char, c_void, CStr};

    extern "C" {
        fn mi_options_print_out(out: extern "C" fn(*const c_char, *mut c_void), arg: *mut c_void);
    }

    extern "C" fn append(msg: *const c_char, text: *mut c_void) {
        // SAFETY: mimalloc passes a NUL-terminated message and our `String` back.
        let (msg, text) = unsafe { (CStr::from_ptr(msg), &mut *text.cast::<String>()) };
        text.push_str(&msg.to_string_lossy());
    }

    /// By name, as mimalloc lists its options: the number set is `purge_decommits`.
    #[test]
    fn freed_pages_are_reset_not_decommitted() {
        super::reuse_freed_pages();
        let mut text = String::new();
        // SAFETY: `append` only appends to `text`, which outlives the call.
        unsafe { mi_options_print_out(append, (&mut text as *mut String).cast()) };
        assert!(
            text.lines()
                .any(|l| l.trim_end() == "option 'purge_decommits': 0"),
            "{text}"
        );
    }
}
