//! `semisono report`: evaluated run directories -> one paper-style table, mean ± sample std per
//! (method, label budget) of tumour Dice, IoU, HD95, accuracy, macro F1 and ROC AUC, as Markdown,
//! CSV and a self-contained HTML page. `semisono experiment` ends with the same report.
//!
//! A run's method and seed come from its resolved `config.toml`, its label budget from its copy of
//! the split (`split.json`, `strategy.labeled`), its figures from `eval/<part>/summary.json`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use semisono_data::split::Budget;
use semisono_train::trainer;

use crate::bad_input;
use crate::cell::{self, METRICS};

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run directories, or folders searched (recursively) for them, e.g. an experiment's runs/.
    #[arg(long, num_args = 1.., required = true)]
    pub runs: Vec<PathBuf>,
    /// Output folder for table.md, table.csv and report.html.
    #[arg(long)]
    pub out: PathBuf,
    /// The evaluated split part whose summaries are tabulated (eval/<part>/summary.json).
    #[arg(long, default_value = "test")]
    pub part: String,
    /// Replace table.md, table.csv and report.html if they exist in --out.
    #[arg(long)]
    pub overwrite: bool,
}

/// One evaluated run.
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub path: PathBuf,
    pub method: String,
    pub budget: Budget,
    pub seed: u64,
    pub values: [Option<f64>; 6],
}

/// Mean and sample standard deviation (n − 1) of the runs where a metric is defined.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stat {
    /// Runs with a defined value.
    pub n: usize,
    pub mean: Option<f64>,
    /// `None` for fewer than 2 values.
    pub std: Option<f64>,
}

impl Stat {
    pub fn of(values: &[f64]) -> Stat {
        let n = values.len();
        if n == 0 {
            return Stat::default();
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = (n >= 2).then(|| {
            let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
            (ss / (n - 1) as f64).sqrt()
        });
        Stat {
            n,
            mean: Some(mean),
            std,
        }
    }
}

/// One row of the table: the runs of one method at one label budget.
#[derive(Clone, Debug)]
pub struct Group {
    pub method: String,
    pub budget: String,
    /// Indices into [`Report::runs`], by seed.
    pub runs: Vec<usize>,
    pub stats: [Stat; 6],
}

#[derive(Clone, Debug)]
pub struct Report {
    pub part: String,
    pub runs: Vec<RunRecord>,
    pub groups: Vec<Group>,
}

/// Preferred row order (an experiment's lists); anything not named sorts after, by the method
/// registry's order and by budget size.
#[derive(Clone, Debug, Default)]
pub struct Order {
    pub methods: Vec<String>,
    pub budgets: Vec<String>,
}

fn summary_file(run: &Path, part: &str) -> PathBuf {
    run.join("eval").join(part).join("summary.json")
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| bad_input!("{}: cannot read: {e}", path.display()))
}

/// Reads one evaluated run directory.
pub fn read_run(run: &Path, part: &str) -> Result<RunRecord> {
    let config_path = run.join(trainer::CONFIG_FILE);
    let config: toml::Table = read_text(&config_path)?
        .parse()
        .map_err(|e| bad_input!("{}: not a run configuration: {e}", config_path.display()))?;
    let method = config
        .get("method")
        .and_then(|v| v.as_str())
        .ok_or_else(|| bad_input!("{}: no `method`", config_path.display()))?
        .to_string();
    let seed = config
        .get("seed")
        .and_then(|v| v.as_integer())
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| bad_input!("{}: no `seed`", config_path.display()))?;
    let split_path = run.join(trainer::SPLIT_FILE);
    let split: serde_json::Value = serde_json::from_str(&read_text(&split_path)?)
        .map_err(|e| bad_input!("{}: not a split file: {e}", split_path.display()))?;
    let budget: Budget = split
        .pointer("/strategy/labeled")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .ok_or_else(|| {
            bad_input!(
                "{}: no label budget (strategy.labeled); is it a split from `semisono split`?",
                split_path.display()
            )
        })?;
    let summary_path = summary_file(run, part);
    let summary: serde_json::Value = serde_json::from_str(&read_text(&summary_path)?)
        .map_err(|e| bad_input!("{}: not an evaluation summary: {e}", summary_path.display()))?;
    Ok(RunRecord {
        path: run.to_path_buf(),
        method,
        budget,
        seed,
        values: cell::headline(&summary),
    })
}

/// Run directories under `roots` (each root may itself be one): those with an evaluation of
/// `part`, and those without (trained but not evaluated), both sorted.
pub fn find_runs(roots: &[PathBuf], part: &str) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (mut done, mut pending) = (Vec::new(), Vec::new());
    for root in roots {
        if !root.is_dir() {
            return Err(bad_input!(
                "--runs {}: no such directory; pass run directories or folders holding them",
                root.display()
            ));
        }
        walk(root, part, &mut done, &mut pending)?;
    }
    // The same run reached through two roots (a folder and a run inside it) counts once.
    for v in [&mut done, &mut pending] {
        v.sort();
        v.dedup_by(|a, b| a.canonicalize().ok() == b.canonicalize().ok());
    }
    Ok((done, pending))
}

fn walk(dir: &Path, part: &str, done: &mut Vec<PathBuf>, pending: &mut Vec<PathBuf>) -> Result<()> {
    if dir.join(trainer::CONFIG_FILE).is_file() && dir.join(trainer::SPLIT_FILE).is_file() {
        if summary_file(dir, part).is_file() {
            done.push(dir.to_path_buf());
        } else {
            pending.push(dir.to_path_buf());
        }
        // A run's own folders (checkpoints, eval, predict) hold no runs.
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| bad_input!("{}: cannot list: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    entries.sort();
    for e in entries {
        walk(&e, part, done, pending)?;
    }
    Ok(())
}

fn method_rank(order: &Order, m: &str) -> (usize, usize, String) {
    if let Some(i) = order.methods.iter().position(|x| x == m) {
        return (0, i, String::new());
    }
    match semisono_train::config::METHODS.iter().position(|x| *x == m) {
        Some(i) => (1, i, String::new()),
        None => (2, 0, m.to_string()),
    }
}

fn budget_rank(order: &Order, b: Budget) -> (usize, usize, u64, u64) {
    if let Some(i) = order
        .budgets
        .iter()
        .position(|x| *x == cell::budget_label(b))
    {
        return (0, i, 0, 0);
    }
    // Ratios before counts, each ascending (f64::to_bits orders non-negative values).
    match b {
        Budget::Ratio(r) => (1, 0, 0, r.to_bits()),
        Budget::Count(n) => (1, 0, 1, n as u64),
    }
}

/// Groups runs by (method, budget) in a stable order and computes each group's statistics.
pub fn build(mut runs: Vec<RunRecord>, part: &str, order: &Order) -> Report {
    runs.sort_by(|a, b| {
        (
            method_rank(order, &a.method),
            budget_rank(order, a.budget),
            a.seed,
            &a.path,
        )
            .cmp(&(
                method_rank(order, &b.method),
                budget_rank(order, b.budget),
                b.seed,
                &b.path,
            ))
    });
    let mut groups: Vec<Group> = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let label = cell::budget_label(r.budget);
        match groups.last_mut() {
            Some(g) if g.method == r.method && g.budget == label => g.runs.push(i),
            _ => groups.push(Group {
                method: r.method.clone(),
                budget: label,
                runs: vec![i],
                stats: Default::default(),
            }),
        }
    }
    for g in &mut groups {
        for (k, stat) in g.stats.iter_mut().enumerate() {
            let values: Vec<f64> = g.runs.iter().filter_map(|&i| runs[i].values[k]).collect();
            *stat = Stat::of(&values);
        }
    }
    Report {
        part: part.to_string(),
        runs,
        groups,
    }
}

/// `mean ± std` with 3 decimals (the mean alone for one run, `-` for none), and `(k/n)` when only
/// k of the group's n runs define the metric.
pub fn stat_text(s: &Stat, n_runs: usize) -> String {
    let mut t = match (s.mean, s.std) {
        (None, _) => return "-".into(),
        (Some(m), None) => format!("{m:.3}"),
        (Some(m), Some(sd)) => format!("{m:.3} ± {sd:.3}"),
    };
    if s.n < n_runs {
        let _ = write!(t, " ({}/{n_runs})", s.n);
    }
    t
}

/// The explanation above each table: what the numbers are.
pub fn caption(part: &str) -> String {
    format!(
        "Split part `{part}`; per run the per-image mean (tumour masks at native resolution) and the \
         classification figures; per row the mean ± sample standard deviation (n − 1) over runs \
         (seeds). HD95 in mm where the images carry a pixel spacing, else in pixels. `(k/n)`: \
         only k of n runs define the metric."
    )
}

pub fn markdown(r: &Report) -> String {
    let mut s = String::from("| method | labeled | runs |");
    for (_, h) in METRICS {
        let _ = write!(s, " {h} |");
    }
    s.push_str("\n|---|---|---:|");
    s.push_str(&"---|".repeat(METRICS.len()));
    s.push('\n');
    for g in &r.groups {
        let _ = write!(s, "| {} | {} | {} |", g.method, g.budget, g.runs.len());
        for st in &g.stats {
            let _ = write!(s, " {} |", stat_text(st, g.runs.len()));
        }
        s.push('\n');
    }
    s
}

fn num(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One row per (method, budget): runs, then mean, std and the number of defined values per
/// metric, at full precision (empty where undefined).
pub fn csv(r: &Report) -> String {
    let mut s = String::from("method,labeled,runs");
    for (k, _) in METRICS {
        let _ = write!(s, ",{k}_mean,{k}_std,{k}_n");
    }
    s.push('\n');
    for g in &r.groups {
        let _ = write!(
            s,
            "{},{},{}",
            csv_field(&g.method),
            csv_field(&g.budget),
            g.runs.len()
        );
        for st in &g.stats {
            let _ = write!(s, ",{},{},{}", num(st.mean), num(st.std), st.n);
        }
        s.push('\n');
    }
    s
}

/// Writes `table.md`, `table.csv` and `report.html` into `out`, each to a temporary name first
/// and all renamed only when every one is written.
pub fn write(out: &Path, r: &Report, title: &str) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let md = format!("# {title}\n\n{}\n\n{}", caption(&r.part), markdown(r));
    let files = [
        ("table.md", md),
        ("table.csv", csv(r)),
        ("report.html", crate::report_html::html(r, title)),
    ];
    for (name, text) in &files {
        std::fs::write(out.join(format!(".{name}.tmp")), text)?;
    }
    for (name, _) in &files {
        std::fs::rename(out.join(format!(".{name}.tmp")), out.join(name))?;
    }
    Ok(())
}

pub fn run(args: ReportArgs) -> Result<()> {
    crate::cmd_train::parse_part(&args.part)?;
    let (done, pending) = find_runs(&args.runs, &args.part)?;
    if done.is_empty() {
        return Err(bad_input!(
            "no evaluated run under {}: a run directory needs config.toml, split.json and \
             eval/{}/summary.json (`semisono eval --run DIR --part {}`)",
            args.runs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            args.part,
            args.part
        ));
    }
    if !args.overwrite {
        for name in ["table.md", "table.csv", "report.html"] {
            let p = args.out.join(name);
            if p.exists() {
                return Err(bad_input!(
                    "{} already exists; pass --overwrite or choose another --out",
                    p.display()
                ));
            }
        }
    }
    // Every run is read before anything is written, so one bad run leaves no partial report.
    let runs = done
        .iter()
        .map(|d| read_run(d, &args.part))
        .collect::<Result<Vec<_>>>()?;
    for p in &pending {
        eprintln!(
            "note: {} has no eval/{}/summary.json; not in the table",
            p.display(),
            args.part
        );
    }
    let report = build(runs, &args.part, &Order::default());
    write(&args.out, &report, "semisono report")?;
    print!("{}", markdown(&report));
    println!(
        "{} runs in {} rows; wrote {}/table.md, table.csv, report.html",
        report.runs.len(),
        report.groups.len(),
        args.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(method: &str, budget: Budget, seed: u64, dice: Option<f64>) -> RunRecord {
        RunRecord {
            path: PathBuf::from(format!("{method}-{seed}")),
            method: method.into(),
            budget,
            seed,
            values: [dice, None, None, Some(0.5), None, None],
        }
    }

    #[test]
    fn sample_std_and_single_run() {
        let s = Stat::of(&[1.0, 2.0, 4.0]);
        assert_eq!(s.mean, Some(7.0 / 3.0));
        // Σ(x − 7/3)² = 14/3, / (n − 1) = 7/3.
        assert!((s.std.unwrap() - (7.0f64 / 3.0).sqrt()).abs() < 1e-15);
        let one = Stat::of(&[0.25]);
        assert_eq!((one.mean, one.std), (Some(0.25), None));
        assert_eq!(stat_text(&one, 1), "0.250");
        assert_eq!(stat_text(&s, 4), "2.333 ± 1.528 (3/4)");
        assert_eq!(stat_text(&Stat::default(), 2), "-");
    }

    #[test]
    fn rows_in_registry_and_budget_order() {
        let runs = vec![
            rec("hermes", Budget::Ratio(0.1), 1, Some(0.6)),
            rec("hermes", Budget::Ratio(0.05), 0, Some(0.4)),
            rec("supervised", Budget::Count(20), 0, None),
            rec("hermes", Budget::Ratio(0.1), 0, Some(0.5)),
            rec("supervised", Budget::Ratio(0.1), 0, Some(0.3)),
        ];
        let r = build(runs, "test", &Order::default());
        let rows: Vec<(String, String, usize)> = r
            .groups
            .iter()
            .map(|g| (g.method.clone(), g.budget.clone(), g.runs.len()))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("supervised".into(), "10%".into(), 1),
                ("supervised".into(), "20".into(), 1),
                ("hermes".into(), "5%".into(), 1),
                ("hermes".into(), "10%".into(), 2),
            ]
        );
        assert_eq!(r.groups[3].stats[0].mean, Some((0.5 + 0.6) / 2.0));
        assert_eq!(r.groups[1].stats[0].n, 0);
        // An experiment's own order wins.
        let order = Order {
            methods: vec!["hermes".into()],
            budgets: vec!["10%".into(), "5%".into()],
        };
        let r = build(r.runs, "test", &order);
        assert_eq!(
            (r.groups[0].method.as_str(), r.groups[0].budget.as_str()),
            ("hermes", "10%")
        );
        let csv = csv(&r);
        assert!(csv.starts_with("method,labeled,runs,dice_mean,dice_std,dice_n,iou_mean"));
        assert!(csv.contains("\nhermes,10%,2,0.55,"), "{csv}");
    }
}
