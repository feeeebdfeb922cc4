//! `semisono experiment`: methods × label budgets × seeds from one experiment file, run one cell
//! after another into one directory, then the report of `semisono report` over the cells.
//!
//! Resumable: a cell whose `eval/test/summary.json` exists is finished and skipped; one with a
//! `checkpoints/last` continues from it; a leftover without a checkpoint starts over. Everything in
//! the file (and every cell's configuration) is checked before anything is written, and a finished
//! or half-trained cell whose configuration differs from what the file now asks is an error rather
//! than a silent mix of two experiments. Format and layout: docs/experiment.md.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use semisono_data::split::{Budget, SplitConfig};
use semisono_data::Dataset;
use semisono_train::config::{Task, TrainConfig};
use semisono_train::methods;
use serde::Deserialize;
use toml::Spanned;

use crate::bad_input;
use crate::cell::{self, PhantomSpec};
use crate::cmd_report;

#[derive(Args, Debug)]
pub struct ExperimentArgs {
    /// Experiment file (TOML: [experiment] methods, labeled, seeds, preset, set; docs/experiment.md).
    #[arg(long)]
    pub config: PathBuf,
    /// Experiment directory (experiment.toml, splits/, runs/, table.md, table.csv, report.html);
    /// running again into it skips the finished cells.
    #[arg(long)]
    pub out: PathBuf,
    /// Overrides of every cell's training configuration, applied after the file's, e.g. --set steps=50.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Check the file and list the cells (finished, to resume, to train) without writing anything.
    #[arg(long)]
    pub dry_run: bool,
}

/// The experiment file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    experiment: RawExperiment,
    dataset: Option<RawDataset>,
    split: Option<RawSplit>,
    #[serde(default)]
    method: BTreeMap<String, RawMethod>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperiment {
    methods: Spanned<Vec<Spanned<String>>>,
    labeled: Spanned<Vec<Spanned<toml::Value>>>,
    seeds: Spanned<Vec<Spanned<u64>>>,
    preset: Option<Spanned<String>>,
    #[serde(default)]
    set: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataset {
    dir: Option<Spanned<String>>,
    phantom: Option<RawPhantom>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhantom {
    count: Option<u64>,
    size: Option<u32>,
    seed: Option<u64>,
    anatomy: Option<String>,
    probe: Option<String>,
    classes: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSplit {
    val: Option<f64>,
    test: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMethod {
    #[serde(default)]
    set: Vec<Spanned<String>>,
}

/// Where the images come from.
#[derive(Clone, Debug, PartialEq)]
pub enum DataSource {
    /// An existing dataset directory (absolute).
    Dir(PathBuf),
    /// A phantom synthesised into `<out>/phantom`.
    Phantom(PhantomSpec),
}

/// The experiment as resolved: defaults filled in, command-line overrides appended.
#[derive(Clone, Debug, PartialEq)]
pub struct Experiment {
    pub methods: Vec<String>,
    pub budgets: Vec<Budget>,
    pub seeds: Vec<u64>,
    pub preset: String,
    /// Overrides of every cell, in order.
    pub set: Vec<String>,
    /// Overrides of one method's cells, after `set`.
    pub method_set: BTreeMap<String, Vec<String>>,
    pub data: DataSource,
    pub val: f64,
    pub test: f64,
}

/// Keys the experiment sets itself for each cell; overriding them would break the grid.
const GRID_KEYS: [&str; 4] = ["method", "seed", "data.dataset", "data.split"];

/// Locations in the experiment file, for messages.
struct Src<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Src<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn at(&self, span: &Range<usize>) -> String {
        format!("{}:{}", self.path.display(), self.line(span.start))
    }

    /// The line of the first line starting with `prefix` (a table header), else the file alone.
    fn at_line_starting(&self, prefix: &str) -> String {
        match self
            .text
            .lines()
            .position(|l| l.trim_start().starts_with(prefix))
        {
            Some(i) => format!("{}:{}", self.path.display(), i + 1),
            None => self.path.display().to_string(),
        }
    }
}

fn check_grid_key(arg: &str) -> std::result::Result<(), String> {
    let key = arg.split_once('=').map(|(k, _)| k.trim()).unwrap_or(arg);
    if GRID_KEYS.contains(&key) {
        return Err(format!(
            "`{key}` is set by the experiment for each cell (from methods, seeds and the dataset); \
             remove this override"
        ));
    }
    Ok(())
}

/// An override and where it came from: (argument, location for messages, list name).
type Located = (String, String, String);

/// Applies the overrides of each method's cells in order (experiment `set`, the method's `set`,
/// then the command line), on the preset with that method, as the cells will: an override may be
/// valid only for some methods or only after an earlier one. The first failing one is named.
fn check_overrides(
    preset: &str,
    methods: &[String],
    common: &[Located],
    per_method: &BTreeMap<String, Vec<Located>>,
    cli: &[Located],
) -> Result<()> {
    // A table of a method outside the grid trains no cell: only its own keys are checked.
    let outside = per_method.keys().filter(|m| !methods.contains(m));
    for (m, in_grid) in methods
        .iter()
        .map(|m| (m, true))
        .chain(outside.map(|m| (m, false)))
    {
        let mut cfg = TrainConfig::preset(preset)?;
        cfg.set("method", m)?;
        let own = per_method.get(m).map(Vec::as_slice).unwrap_or(&[]);
        let (common, cli) = if in_grid {
            (common, cli)
        } else {
            (&[][..], &[][..])
        };
        for (arg, at, list) in common.iter().chain(own).chain(cli) {
            check_grid_key(arg)
                .and_then(|_| cfg.apply_override(arg).map_err(|e| e.to_string()))
                .map_err(|e| bad_input!("{at}: {list}: for method {m:?}: {e}"))?;
        }
    }
    Ok(())
}

/// Parses and checks an experiment file's text (`path` only names it in messages), with the
/// command line's overrides appended to `set`. Dataset directories are made absolute against the
/// current directory.
pub fn parse(text: &str, path: &Path, cli: &[String]) -> Result<Experiment> {
    let src = Src { path, text };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let at = match e.span() {
            Some(s) => src.at(&s),
            None => path.display().to_string(),
        };
        bad_input!(
            "{at}: {}; the format is in docs/experiment.md",
            e.message().trim_end()
        )
    })?;
    let ex = raw.experiment;

    let mut methods_out = Vec::new();
    if ex.methods.get_ref().is_empty() {
        return Err(bad_input!(
            "{}: experiment.methods is empty; name at least one of {}",
            src.at(&ex.methods.span()),
            methods::REGISTERED.join(", ")
        ));
    }
    for m in ex.methods.get_ref() {
        let name = m.get_ref();
        if !methods::REGISTERED.contains(&name.as_str()) {
            return Err(bad_input!(
                "{}: experiment.methods: unknown method {name:?}; valid methods: {}",
                src.at(&m.span()),
                methods::REGISTERED.join(", ")
            ));
        }
        if methods_out.contains(name) {
            return Err(bad_input!(
                "{}: experiment.methods: {name:?} is listed twice",
                src.at(&m.span())
            ));
        }
        methods_out.push(name.clone());
    }

    let mut budgets = Vec::new();
    if ex.labeled.get_ref().is_empty() {
        return Err(bad_input!(
            "{}: experiment.labeled is empty; give label budgets like [\"5%\", \"10%\"] or counts",
            src.at(&ex.labeled.span())
        ));
    }
    for b in ex.labeled.get_ref() {
        let budget = match b.get_ref() {
            toml::Value::String(s) => s.parse::<Budget>(),
            toml::Value::Integer(n) if *n >= 0 => Ok(Budget::Count(*n as usize)),
            toml::Value::Float(r) => Ok(Budget::Ratio(*r)),
            other => Err(format!("{other} is not a label budget")),
        }
        .and_then(|budget| {
            SplitConfig {
                labeled: budget,
                ..SplitConfig::default()
            }
            .validate()
            .map(|_| budget)
            .map_err(|e| e.to_string())
        })
        .map_err(|e| {
            bad_input!(
                "{}: experiment.labeled: {e}; use a ratio (\"5%\" or 0.05) or a count (60)",
                src.at(&b.span())
            )
        })?;
        if budgets
            .iter()
            .any(|&x| cell::budget_label(x) == cell::budget_label(budget))
        {
            return Err(bad_input!(
                "{}: experiment.labeled: {} is listed twice",
                src.at(&b.span()),
                cell::budget_label(budget)
            ));
        }
        budgets.push(budget);
    }

    let mut seeds = Vec::new();
    if ex.seeds.get_ref().is_empty() {
        return Err(bad_input!(
            "{}: experiment.seeds is empty; give seeds like [0, 1, 2]",
            src.at(&ex.seeds.span())
        ));
    }
    for s in ex.seeds.get_ref() {
        if seeds.contains(s.get_ref()) {
            return Err(bad_input!(
                "{}: experiment.seeds: {} is listed twice",
                src.at(&s.span()),
                s.get_ref()
            ));
        }
        seeds.push(*s.get_ref());
    }

    let preset = match &ex.preset {
        Some(p) => {
            TrainConfig::preset(p.get_ref())
                .map_err(|e| bad_input!("{}: experiment.preset: {e}", src.at(&p.span())))?;
            p.get_ref().clone()
        }
        None => "quickstart-cpu".to_string(),
    };

    let located = |list: &str, v: &[Spanned<String>]| -> Vec<Located> {
        v.iter()
            .map(|o| (o.get_ref().clone(), src.at(&o.span()), list.to_string()))
            .collect()
    };
    let common = located("experiment.set", &ex.set);
    let mut per_method = BTreeMap::new();
    for (name, m) in &raw.method {
        if !methods::REGISTERED.contains(&name.as_str()) {
            return Err(bad_input!(
                "{}: [method.{name}]: unknown method {name:?}; valid methods: {}",
                src.at_line_starting(&format!("[method.{name}]")),
                methods::REGISTERED.join(", ")
            ));
        }
        per_method.insert(name.clone(), located(&format!("method.{name}.set"), &m.set));
    }
    let cli_located: Vec<Located> = cli
        .iter()
        .map(|o| {
            (
                o.clone(),
                format!("--set {o:?}"),
                "command line".to_string(),
            )
        })
        .collect();
    check_overrides(&preset, &methods_out, &common, &per_method, &cli_located)?;
    let mut set: Vec<String> = common.into_iter().map(|(a, _, _)| a).collect();
    set.extend(cli.iter().cloned());
    let method_set: BTreeMap<String, Vec<String>> = per_method
        .into_iter()
        .map(|(m, v)| (m, v.into_iter().map(|(a, _, _)| a).collect()))
        .collect();

    let data = match raw.dataset {
        Some(RawDataset {
            dir: Some(_),
            phantom: Some(_),
        }) => {
            return Err(bad_input!(
                "{}: [dataset] has both `dir` and [dataset.phantom]; keep one",
                src.at_line_starting("[dataset")
            ))
        }
        Some(RawDataset {
            dir: Some(dir),
            phantom: None,
        }) => {
            let p = PathBuf::from(dir.get_ref());
            let abs = std::path::absolute(&p).map_err(|e| {
                bad_input!("{}: dataset.dir {}: {e}", src.at(&dir.span()), p.display())
            })?;
            DataSource::Dir(abs)
        }
        Some(RawDataset {
            dir: None,
            phantom: Some(ph),
        }) => {
            let d = PhantomSpec::quickstart(400, 0);
            let spec = PhantomSpec {
                count: ph.count.unwrap_or(d.count),
                size: ph.size.unwrap_or(d.size),
                seed: ph.seed.unwrap_or(d.seed),
                anatomy: ph.anatomy.unwrap_or(d.anatomy),
                probe: ph.probe.unwrap_or(d.probe),
                classes: ph.classes.unwrap_or(d.classes),
            };
            spec.validate().map_err(|e| {
                bad_input!(
                    "{}: [dataset.phantom]: {e:#}",
                    src.at_line_starting("[dataset")
                )
            })?;
            DataSource::Phantom(spec)
        }
        Some(RawDataset {
            dir: None,
            phantom: None,
        }) => {
            return Err(bad_input!(
                "{}: [dataset] needs `dir = \"DATASET_DIR\"` or a [dataset.phantom] table",
                src.at_line_starting("[dataset")
            ))
        }
        None => DataSource::Phantom(PhantomSpec::quickstart(400, 0)),
    };

    let (val, test) = match &raw.split {
        Some(s) => (s.val.unwrap_or(0.1), s.test.unwrap_or(0.2)),
        None => (0.1, 0.2),
    };
    SplitConfig {
        val_fraction: val,
        test_fraction: test,
        ..SplitConfig::default()
    }
    .validate()
    .map_err(|e| bad_input!("{}: [split]: {e}", src.at_line_starting("[split]")))?;

    Ok(Experiment {
        methods: methods_out,
        budgets,
        seeds,
        preset,
        set,
        method_set,
        data,
        val,
        test,
    })
}

fn tv_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn tv_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| tv_str(s)).collect();
    format!("[{}]", items.join(", "))
}

impl Experiment {
    /// The resolved file written into the experiment directory; [`parse`] reads it back.
    pub fn to_toml(&self) -> String {
        let labels: Vec<String> = self
            .budgets
            .iter()
            .map(|&b| cell::budget_label(b))
            .collect();
        let seeds: Vec<String> = self.seeds.iter().map(|s| s.to_string()).collect();
        let mut s = format!(
            "# Resolved by `semisono experiment` (defaults filled in, --set overrides appended).\n\
             [experiment]\nmethods = {}\nlabeled = {}\nseeds = [{}]\npreset = {}\nset = {}\n\n",
            tv_list(&self.methods),
            tv_list(&labels),
            seeds.join(", "),
            tv_str(&self.preset),
            tv_list(&self.set)
        );
        s.push_str(&self.data_toml());
        for (m, v) in &self.method_set {
            s.push_str(&format!("\n[method.{m}]\nset = {}\n", tv_list(v)));
        }
        s
    }

    /// The dataset and split tables: what every cell's data depends on.
    fn data_toml(&self) -> String {
        let data = match &self.data {
            DataSource::Dir(p) => format!("[dataset]\ndir = {}\n", tv_str(&p.to_string_lossy())),
            DataSource::Phantom(p) => format!(
                "[dataset.phantom]\ncount = {}\nsize = {}\nseed = {}\nanatomy = {}\nprobe = {}\nclasses = {}\n",
                p.count,
                p.size,
                p.seed,
                tv_str(&p.anatomy),
                tv_str(&p.probe),
                tv_str(&p.classes)
            ),
        };
        format!(
            "{data}\n[split]\nval = {}\ntest = {}\n",
            toml::Value::Float(self.val),
            toml::Value::Float(self.test)
        )
    }
}

/// What a cell needs next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CellState {
    /// `eval/test/summary.json` exists.
    Finished,
    /// Stopped with a `checkpoints/last`: continue from it.
    Resume,
    /// Stopped before its first checkpoint: start over.
    Restart,
    New,
}

struct Cell {
    method: String,
    budget: Budget,
    seed: u64,
    run: PathBuf,
    cfg: TrainConfig,
    state: CellState,
}

impl Cell {
    fn label(&self) -> String {
        format!(
            "{} {} seed {}",
            self.method,
            cell::budget_label(self.budget),
            self.seed
        )
    }
}

fn split_path(out: &Path, budget: Budget, seed: u64) -> PathBuf {
    out.join("splits").join(format!(
        "labeled-{}-seed{seed}.json",
        cell::budget_slug(budget)
    ))
}

fn run_path(out: &Path, method: &str, budget: Budget, seed: u64) -> PathBuf {
    out.join("runs")
        .join(method)
        .join(cell::budget_slug(budget))
        .join(format!("seed{seed}"))
}

/// `a.b.c = value` for every leaf of a TOML table.
fn flatten(prefix: &str, t: &toml::Table, out: &mut BTreeMap<String, String>) {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(sub) => flatten(&key, sub, out),
            v => {
                out.insert(key, v.to_string());
            }
        }
    }
}

/// The first key whose value differs between two resolved configurations.
fn first_difference(old: &str, new: &str) -> String {
    let (Ok(a), Ok(b)) = (old.parse::<toml::Table>(), new.parse::<toml::Table>()) else {
        return "the file is not valid TOML".into();
    };
    let (mut fa, mut fb) = (BTreeMap::new(), BTreeMap::new());
    flatten("", &a, &mut fa);
    flatten("", &b, &mut fb);
    let keys: std::collections::BTreeSet<&String> = fa.keys().chain(fb.keys()).collect();
    for k in keys {
        let (x, y) = (fa.get(k), fb.get(k));
        if x != y {
            let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "(absent)".into());
            return format!("`{k}` was {} and is now {}", show(x), show(y));
        }
    }
    "the formatting differs".into()
}

/// Lays out the cells (budget, then seed, then method, so that a stopped grid already compares
/// every method on its first budgets) and checks each configuration.
fn plan(exp: &Experiment, out: &Path, dataset: &Path, src: &Src) -> Result<Vec<Cell>> {
    let classes = match &exp.data {
        DataSource::Phantom(p) => Some(p.num_classes()),
        DataSource::Dir(d) => {
            let ds = Dataset::open(d)
                .with_context(|| format!("{}: dataset.dir", src.at_line_starting("[dataset")))?;
            (!ds.info.classes.is_empty()).then_some(ds.info.classes.len())
        }
    };
    let mut cells = Vec::new();
    for &budget in &exp.budgets {
        for &seed in &exp.seeds {
            for method in &exp.methods {
                let split = split_path(out, budget, seed);
                let mut overrides = exp.set.clone();
                if let Some(v) = exp.method_set.get(method) {
                    overrides.extend(v.iter().cloned());
                }
                let cfg = cell::cell_config(&exp.preset, method, seed, dataset, &split, &overrides)
                    .with_context(|| {
                        format!("{}: the configuration of {method}", src.path.display())
                    })?;
                cfg.validate_with(methods::REGISTERED)
                    .with_context(|| format!("{}: {method}", src.path.display()))?;
                if let Some(k) = classes {
                    if cfg.task != Task::Segmentation && cfg.model.num_classes != k {
                        return Err(bad_input!(
                            "{}: the dataset has {k} classes but model.num_classes = {}; add \
                             \"model.num_classes={k}\" to experiment.set",
                            src.path.display(),
                            cfg.model.num_classes
                        ));
                    }
                }
                let run = run_path(out, method, budget, seed);
                let state = if cell::summary_path(&run).is_file() {
                    CellState::Finished
                } else if cell::resumable(&run) {
                    CellState::Resume
                } else if run.exists() {
                    CellState::Restart
                } else {
                    CellState::New
                };
                let c = Cell {
                    method: method.clone(),
                    budget,
                    seed,
                    run,
                    cfg,
                    state,
                };
                if matches!(c.state, CellState::Finished | CellState::Resume) {
                    check_cell_config(&c)?;
                }
                cells.push(c);
            }
        }
    }
    Ok(cells)
}

/// A cell trained earlier is reused only if the experiment still asks for exactly its
/// configuration; otherwise the table would mix two experiments. A finished cell's file is read
/// back through the configuration type first, so a key added to semisono since (with its default)
/// is no difference; a stopped cell must match the text exactly, as the trainer's resume requires.
fn check_cell_config(c: &Cell) -> Result<()> {
    let path = c.run.join(semisono_train::trainer::CONFIG_FILE);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let old = match c.state {
        CellState::Finished => TrainConfig::from_toml_str(&text, None)
            .and_then(|cfg| cfg.to_toml())
            .unwrap_or(text),
        _ => text,
    };
    let new = c.cfg.to_toml()?;
    if old != new {
        return Err(bad_input!(
            "{}: cell {} was run with another configuration ({}); restore the experiment file, \
             choose a new --out, or delete {} to rerun that cell",
            path.display(),
            c.label(),
            first_difference(&old, &new),
            c.run.display()
        ));
    }
    Ok(())
}

/// Builds each method once, so a method that cannot run (not implemented yet, a bad option) stops
/// the grid before anything is written rather than after hours of other cells.
fn check_methods_build(cells: &[Cell], src: &Src) -> Result<()> {
    let device = methods::default_device();
    let mut seen: Vec<&str> = Vec::new();
    for c in cells {
        if seen.contains(&c.method.as_str()) || c.state == CellState::Finished {
            continue;
        }
        seen.push(&c.method);
        methods::create(&c.cfg, &device)
            .map(drop)
            .with_context(|| {
                format!(
                "{}: method {:?} cannot be built; remove it from experiment.methods or fix its \
                 overrides",
                src.at_line_starting("methods"),
                c.method
            )
            })?;
    }
    Ok(())
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

pub const EXPERIMENT_FILE: &str = "experiment.toml";

pub fn run(args: ExperimentArgs) -> Result<()> {
    let started = Instant::now();
    let text = std::fs::read_to_string(&args.config)
        .map_err(|e| bad_input!("{}: cannot read: {e}", args.config.display()))?;
    let src = Src {
        path: &args.config,
        text: &text,
    };
    let exp = parse(&text, &args.config, &args.overrides)?;
    let out = std::path::absolute(&args.out)
        .map_err(|e| bad_input!("--out {}: {e}", args.out.display()))?;

    // An existing directory must hold this experiment's data: same dataset, same split fractions.
    let resolved_path = out.join(EXPERIMENT_FILE);
    if resolved_path.is_file() {
        let old_text = std::fs::read_to_string(&resolved_path)?;
        let old = parse(&old_text, &resolved_path, &[])?;
        if old.data_toml() != exp.data_toml() {
            return Err(bad_input!(
                "{}: the dataset or split settings differ from {} ({}); choose a new --out",
                args.config.display(),
                resolved_path.display(),
                first_difference(&old.data_toml(), &exp.data_toml())
            ));
        }
    } else if out.is_dir() && std::fs::read_dir(&out)?.next().is_some() {
        return Err(bad_input!(
            "--out {}: exists, is not empty and holds no {EXPERIMENT_FILE}; choose a new directory",
            out.display()
        ));
    } else if out.exists() && !out.is_dir() {
        return Err(bad_input!("--out {}: not a directory", out.display()));
    }

    let dataset = match &exp.data {
        DataSource::Dir(d) => d.clone(),
        DataSource::Phantom(_) => out.join("phantom"),
    };
    let cells = plan(&exp, &out, &dataset, &src)?;
    check_methods_build(&cells, &src)?;
    let count = |s: CellState| cells.iter().filter(|c| c.state == s).count();
    let (n_done, n_resume) = (count(CellState::Finished), count(CellState::Resume));
    let n_train = cells.len() - n_done - n_resume;
    println!(
        "experiment {}: {} methods x {} label budgets x {} seeds = {} cells ({n_done} finished, \
         {n_resume} to resume, {n_train} to train) -> {}",
        args.config.display(),
        exp.methods.len(),
        exp.budgets.len(),
        exp.seeds.len(),
        cells.len(),
        out.display()
    );
    if args.dry_run {
        for (i, c) in cells.iter().enumerate() {
            let what = match c.state {
                CellState::Finished => "finished",
                CellState::Resume => "resume",
                CellState::Restart => "restart",
                CellState::New => "train",
            };
            println!(
                "[{}/{}] {}: {what} ({})",
                i + 1,
                cells.len(),
                c.label(),
                c.run.display()
            );
        }
        println!("dry run: nothing written");
        return Ok(());
    }

    std::fs::create_dir_all(&out)?;
    write_atomic(&resolved_path, &exp.to_toml())?;
    if let DataSource::Phantom(spec) = &exp.data {
        if !dataset.exists() {
            spec.synth(&dataset)?;
        }
    }
    write_splits(&exp, &out, &dataset)?;

    let (mut trained, mut resumed, mut skipped) = (0, 0, 0);
    for (i, c) in cells.iter().enumerate() {
        let tag = format!("[{}/{}] {}", i + 1, cells.len(), c.label());
        let resume = match c.state {
            CellState::Finished => {
                skipped += 1;
                println!("{tag}: finished earlier, skipped");
                continue;
            }
            CellState::Resume => {
                resumed += 1;
                true
            }
            CellState::Restart => {
                // Only a configuration, the split copy and a few log lines: nothing to continue.
                std::fs::remove_dir_all(&c.run)?;
                trained += 1;
                false
            }
            CellState::New => {
                trained += 1;
                false
            }
        };
        println!(
            "{tag}: {} -> {}",
            if resume { "resuming" } else { "training" },
            c.run.display()
        );
        let (report, secs) = cell::train_and_eval(&c.cfg, &c.run, resume, &c.method)?;
        println!(
            "{tag}: {} ({secs:.0} s)",
            crate::cmd_train::summary_line(&report)
        );
    }

    let runs = cells
        .iter()
        .map(|c| cmd_report::read_run(&c.run, "test"))
        .collect::<Result<Vec<_>>>()?;
    let order = cmd_report::Order {
        methods: exp.methods.clone(),
        budgets: exp.budgets.iter().map(|&b| cell::budget_label(b)).collect(),
    };
    let report = cmd_report::build(runs, "test", &order);
    let title = format!(
        "semisono experiment {}",
        args.config
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
    );
    cmd_report::write(&out, &report, &title)?;
    println!("\n{}", cmd_report::markdown(&report));
    println!(
        "{} cells: {trained} trained, {resumed} resumed, {skipped} skipped (finished earlier) in \
         {:.0} s. Tables: {}/table.md, table.csv; report: {}/report.html",
        cells.len(),
        started.elapsed().as_secs_f64(),
        out.display(),
        out.display()
    );
    Ok(())
}

/// One split per (budget, seed), shared by every method. An existing split file must be the one
/// this experiment makes (it is a pure function of dataset, budget and seed), else the dataset
/// changed under the finished cells. All are computed and compared before any is written.
fn write_splits(exp: &Experiment, out: &Path, dataset: &Path) -> Result<()> {
    let ds = Dataset::open(dataset)?;
    let mut todo = Vec::new();
    for &budget in &exp.budgets {
        for &seed in &exp.seeds {
            let path = split_path(out, budget, seed);
            let split = cell::make_split(&ds, budget, exp.val, exp.test, seed)?;
            if path.is_file() {
                let old = semisono_data::split::Split::load(&path)?;
                if serde_json::to_value(&old)? != serde_json::to_value(&split)? {
                    return Err(bad_input!(
                        "{}: differs from the split the dataset {} gives now (the dataset changed); \
                         choose a new --out",
                        path.display(),
                        dataset.display()
                    ));
                }
            } else {
                todo.push((path, split));
            }
        }
    }
    for (path, split) in todo {
        split.save(&path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[experiment]
methods = ["supervised", "hermes"]
labeled = ["5%", 0.1, 20]
seeds = [0, 1]
set = ["steps=3"]

[dataset.phantom]
count = 30
size = 48

[method.hermes]
set = ["hermes.image_contrast=false"]
"#;

    fn err(text: &str) -> String {
        format!("{:#}", parse(text, Path::new("x.toml"), &[]).unwrap_err())
    }

    #[test]
    fn parses_and_round_trips() {
        let e = parse(FILE, Path::new("x.toml"), &["steps=4".into()]).unwrap();
        assert_eq!(e.set, ["steps=3", "steps=4"]);
        assert_eq!(e.methods, ["supervised", "hermes"]);
        assert_eq!(
            e.budgets,
            [Budget::Ratio(0.05), Budget::Ratio(0.1), Budget::Count(20)]
        );
        assert_eq!(e.preset, "quickstart-cpu");
        let again = parse(&e.to_toml(), Path::new("resolved.toml"), &[]).unwrap();
        assert_eq!(again, e);
    }

    #[test]
    fn overrides_are_checked_per_method_and_in_order() {
        // Valid for supervised only: named with the method it fails for.
        let only_sup = FILE.replace("steps=3", "batch_unlabeled=0");
        let m = err(&only_sup);
        assert!(m.contains("x.toml:6:") && m.contains("\"hermes\""), "{m}");
        let sup = only_sup.replace(
            "methods = [\"supervised\", \"hermes\"]",
            "methods = [\"supervised\"]",
        );
        let e = parse(&sup, Path::new("x.toml"), &[]).unwrap();
        assert_eq!(e.set, ["batch_unlabeled=0"]);
        // A per-method override comes after the common ones, a command-line one after both.
        let m = format!(
            "{:#}",
            parse(&sup, Path::new("x.toml"), &["method=hermes".into()]).unwrap_err()
        );
        assert!(
            m.contains("--set") && m.contains("set by the experiment"),
            "{m}"
        );
    }

    #[test]
    fn errors_name_the_line() {
        let bad = FILE.replace("\"hermes\"]", "\"hermez\"]");
        let m = err(&bad);
        assert!(m.contains("x.toml:3:") && m.contains("hermez"), "{m}");
        let m = err(&FILE.replace("\"5%\"", "\"5 percent\""));
        assert!(m.contains("x.toml:4:") && m.contains("label budget"), "{m}");
        let m = err(&FILE.replace("seeds = [0, 1]", "seeds = [0, 0]"));
        assert!(m.contains("x.toml:5:") && m.contains("twice"), "{m}");
        let m = err(&FILE.replace("steps=3", "stepz=3"));
        assert!(m.contains("x.toml:6:") && m.contains("stepz"), "{m}");
        let m = err(&FILE.replace("steps=3", "seed=3"));
        assert!(
            m.contains("x.toml:6:") && m.contains("set by the experiment"),
            "{m}"
        );
        let m = err(&FILE.replace("size = 48", "size = 48\ncolour = 1"));
        assert!(m.contains("x.toml:11") && m.contains("colour"), "{m}");
        let m = err(&FILE.replace("[method.hermes]", "[method.hermez]"));
        assert!(m.contains("x.toml:12:") && m.contains("hermez"), "{m}");
        let m = err(&FILE.replace("labeled = [\"5%\", 0.1, 20]", "labeled = []"));
        assert!(m.contains("x.toml:4:") && m.contains("empty"), "{m}");
    }
}
