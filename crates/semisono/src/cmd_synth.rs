//! `semisono synth`: the procedural phantom dataset, written as a dataset directory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use semisono_data::export::{export_hermes, HermesSelection};
use semisono_data::split::Budget;
use semisono_data::{Dataset, DatasetInfo, DatasetWriter, GrayImage, NewEntry};
use semisono_phantom::{PhantomConfig, PhantomSample};

use crate::bad_input;

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Output dataset directory (manifest.jsonl + images/ + masks/).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of images.
    #[arg(long, default_value_t = 600)]
    pub count: u64,
    /// Image side in pixels (square); overrides width/height of --config.
    #[arg(long)]
    pub size: Option<u32>,
    /// Phantom configuration file (TOML, keys as in docs/phantom.md); flags override single values.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Anatomy: breast or thyroid.
    #[arg(long)]
    pub preset: Option<String>,
    /// Probe: linear, curvilinear, sector or mixed.
    #[arg(long)]
    pub probe: Option<String>,
    /// Classes: three-class (normal/benign/malignant) or binary (benign/malignant).
    #[arg(long)]
    pub classes: Option<String>,
    /// Cue overlap t in [0,1]: 1 makes benign and malignant look alike.
    #[arg(long)]
    pub overlap: Option<f64>,
    /// Probability of flipping the recorded label (the clean label stays in the manifest).
    #[arg(long)]
    pub label_noise: Option<f64>,
    /// Fraction of cases drawn with the other class's descriptors.
    #[arg(long)]
    pub ambiguous_fraction: Option<f64>,
    /// Seed: the same seed gives byte-identical images, whatever the thread count.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Also write the Hermes list layout (image/, mask/, labeled.txt, unlabeled.txt) to this directory.
    #[arg(long)]
    pub hermes: Option<PathBuf>,
    /// With --hermes: how many images go to labeled.txt, a count ("60") or a ratio ("10%"); the first
    /// ones by index (the phantom draws every image independently, so they are a random sample).
    #[arg(long, default_value = "10%", requires = "hermes")]
    pub hermes_labeled: String,
    /// Replace the output directories if they exist.
    #[arg(long)]
    pub overwrite: bool,
}

/// Parses an enum from its serde name, listing the valid names on failure.
pub fn parse_named<T: serde::de::DeserializeOwned>(
    option: &str,
    value: &str,
    valid: &[&str],
) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(value.to_string())).map_err(|_| {
        bad_input!(
            "--{option}: unknown value {value:?}; valid values: {}",
            valid.join(", ")
        )
    })
}

pub fn resolve_config(args: &SynthArgs) -> Result<PhantomConfig> {
    let mut cfg = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad_input!("{}: cannot read config: {e}", path.display()))?;
            toml::from_str::<PhantomConfig>(&text)
                .map_err(|e| bad_input!("{}: {e}", path.display()))?
        }
        None => PhantomConfig::default(),
    };
    if let Some(s) = args.size {
        cfg.width = s;
        cfg.height = s;
    }
    if let Some(v) = &args.preset {
        cfg.preset = parse_named("preset", v, &["breast", "thyroid"])?;
    }
    if let Some(v) = &args.probe {
        cfg.probe = parse_named("probe", v, &["linear", "curvilinear", "sector", "mixed"])?;
    }
    if let Some(v) = &args.classes {
        cfg.classes = parse_named("classes", v, &["three-class", "binary"])?;
    }
    if let Some(v) = args.overlap {
        cfg.overlap = v;
    }
    if let Some(v) = args.label_noise {
        cfg.label_noise = v;
    }
    if let Some(v) = args.ambiguous_fraction {
        cfg.ambiguous_fraction = v;
    }
    if let Some(v) = args.seed {
        cfg.seed = v;
    }
    cfg.validate()?;
    if args.count == 0 {
        return Err(bad_input!("--count must be at least 1"));
    }
    Ok(cfg)
}

fn to_entry(cfg: &PhantomConfig, index: u64, s: PhantomSample) -> NewEntry {
    let id = format!("{index:06}");
    let mut e = NewEntry::new(
        id,
        GrayImage::new(s.width, s.height, s.image),
        format!("phantom:{}:{index}", cfg.seed),
    );
    e.mask = Some(GrayImage::new(s.width, s.height, s.mask));
    e.label = Some(u32::from(s.label));
    e.pixel_spacing_mm = Some(s.pixel_spacing_mm);
    let mut meta = s.meta;
    if let Some(obj) = meta.as_object_mut() {
        obj.insert("clean_label".into(), s.clean_label.into());
    }
    e.meta = meta;
    e
}

pub fn run(args: SynthArgs) -> Result<()> {
    let out = synthesize(args)?;
    println!("next: semisono split --dataset {}", out.display());
    Ok(())
}

/// Writes the phantom dataset of `args` (staged: complete or not at all); returns its directory.
/// Quickstart and experiment call this directly, without `run`'s hint about the next command.
pub fn synthesize(args: SynthArgs) -> Result<PathBuf> {
    let cfg = resolve_config(&args)?;
    let hermes_labeled = hermes_labeled_count(&args)?;
    if let Some(h) = args
        .hermes
        .as_ref()
        .filter(|h| h.exists() && !args.overwrite)
    {
        return Err(bad_input!(
            "{} already exists; choose another --hermes directory or pass --overwrite",
            h.display()
        ));
    }
    let classes: Vec<String> = semisono_phantom::class_names(&cfg)
        .into_iter()
        .map(String::from)
        .collect();
    let mut info = DatasetInfo::new("phantom", classes.clone(), "phantom");
    info.meta = serde_json::json!({
        "phantom_config": &cfg,
        "count": args.count,
        "bayes_accuracy": semisono_phantom::bayes_accuracy(&cfg),
    });
    let start = Instant::now();
    let mut writer = DatasetWriter::create(&args.out, info, args.overwrite)?;
    let mut per_class = vec![0usize; classes.len()];
    const CHUNK: u64 = 256;
    let mut index = 0;
    while index < args.count {
        let n = CHUNK.min(args.count - index);
        let samples = semisono_phantom::generate_many(&cfg, index, n);
        let entries: Vec<NewEntry> = samples
            .into_iter()
            .zip(index..)
            .map(|(s, i)| {
                per_class[s.label as usize] += 1;
                to_entry(&cfg, i, s)
            })
            .collect();
        writer.add_batch(entries)?;
        index += n;
    }
    let out = writer
        .finish()
        .with_context(|| format!("writing {}", args.out.display()))?;
    let secs = start.elapsed().as_secs_f64();
    let counts: Vec<String> = classes
        .iter()
        .zip(&per_class)
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    println!(
        "wrote {} phantom images {}x{} ({}) to {} in {secs:.1} s ({:.0} images/s)",
        args.count,
        cfg.width,
        cfg.height,
        counts.join(", "),
        out.display(),
        args.count as f64 / secs.max(1e-9)
    );
    if let Some(hermes) = &args.hermes {
        write_hermes_layout(&out, hermes, hermes_labeled, args.overwrite)?;
    }
    Ok(out)
}

/// The number of images `--hermes-labeled` asks for, checked before anything is generated.
fn hermes_labeled_count(args: &SynthArgs) -> Result<usize> {
    let n = args.count as usize;
    let count = match crate::cmd_split::parse_budget(&args.hermes_labeled)? {
        Budget::Count(c) => c,
        Budget::Ratio(r) => (r * n as f64).round() as usize,
    };
    if count > n {
        return Err(bad_input!(
            "--hermes-labeled {}: only {n} images are generated (--count)",
            args.hermes_labeled
        ));
    }
    Ok(count)
}

fn write_hermes_layout(
    dataset: &Path,
    out: &Path,
    n_labeled: usize,
    overwrite: bool,
) -> Result<()> {
    let ds = Dataset::open(dataset)?;
    let ids: Vec<String> = ds.entries.iter().map(|e| e.id.clone()).collect();
    let (l, u) = ids.split_at(n_labeled);
    let s = export_hermes(
        &ds,
        HermesSelection::Sets {
            labeled: l,
            unlabeled: u,
        },
        out,
        overwrite,
    )?;
    println!(
        "wrote the Hermes layout to {}: {} in labeled.txt, {} in unlabeled.txt",
        s.out.display(),
        s.labeled,
        s.unlabeled
    );
    Ok(())
}
