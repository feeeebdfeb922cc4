//! Splits: which images of a dataset are `labeled`, `unlabeled`, `val` and `test`.
//!
//! # Split file (JSON, `format_version` 1)
//!
//! ```json
//! {
//!   "format_version": 1,
//!   "dataset": "busi",
//!   "seed": 0,
//!   "strategy": { "labeled": {"count": 60}, "val_fraction": 0.1, "test_fraction": 0.2,
//!                 "stratify": true, "group_aware": true, "seed": 0, "protocol": "clean" },
//!   "fold": {"k": 5, "index": 0},
//!   "labeled": ["benign_1", "..."],
//!   "unlabeled": ["..."],
//!   "val": ["..."],
//!   "test": ["..."],
//!   "excluded": [],
//!   "sha256": {"benign_1": "<hex sha256 of images/benign_1.png>", "...": "..."},
//!   "mask_sha256": {"benign_1": "<hex sha256 of masks/benign_1.png>"}
//! }
//! ```
//!
//! * `strategy` is the resolved [`SplitConfig`] (for the `hermes` protocol the fixed fractions it uses).
//!   `labeled` is written `{"count": n}` or `{"ratio": r}`; when read, a bare integer (`60`), a bare
//!   fraction (`0.1`) or a string (`"60"`, `"10%"`) are accepted as well.
//! * `fold` is `null` for a single split, and `{k, index}` (0-based) for one fold of a k-fold split.
//! * The four id lists are sorted and disjoint. `excluded` (optional when read, usually empty) lists images
//!   in no part: images with neither label nor mask whose `group` (patient) is in `val` or `test`, kept
//!   out of training so that a patient never sits on both sides.
//! * `sha256` has every listed id; `mask_sha256` every listed id that has a mask. [`Split::verify`]
//!   re-hashes the files, so a split cannot silently point at changed images.
//!
//! # Rules
//!
//! * **Eligible images** — those with a class label or a mask (with the `hermes` protocol: a class
//!   label) — are the only ones drawn for `labeled`, `val` and `test`. Images with neither always go to
//!   `unlabeled` (or `excluded`, see above).
//! * **Strata** are the class labels; eligible images without a label (mask only) form one more stratum.
//!   With `stratify = false` everything is one stratum. Counts per stratum use the largest-remainder
//!   method, so every stratum is within one image of its proportional share.
//! * **Groups** (`ManifestEntry::group`, e.g. a patient): with `group_aware` (the default) a group never
//!   straddles the train / val / test boundary; without groups this changes nothing. Counts are then
//!   approximate (a group is assigned whole). `labeled` and `unlabeled` may share a group: both are
//!   training data.
//! * **Determinism**: ids are sorted before anything is drawn, and every draw comes from
//!   [`Rng`](crate::rng::Rng) streams derived from `seed`. Test and val use one stream, the labeled draw
//!   another, so with one seed the test and val sets do not change when the label budget changes, and a
//!   larger budget usually contains the smaller one.
//!
//! # Protocols
//!
//! * `clean` (default): `test_fraction` and `val_fraction` of the eligible images are held out
//!   (stratified), the labeled budget is drawn from the rest (stratified, proportional to the strata),
//!   and the remainder is unlabeled. Select models on `val`, report on `test`.
//! * `hermes`: the Hermes `data_split.py` procedure (spec §3.2). Per class, `floor(0.7·n)` images form
//!   the training pool and the rest is `test`; `floor(N/K)` images per class (K classes, N the labeled
//!   count; `floor(N/2)` for two classes) are labeled, so labeled data is class-balanced whatever the
//!   prevalence, and the rest of the pool is unlabeled. There is **no val**: the paper selects models on
//!   the test set. `val_fraction` and `test_fraction` are ignored (recorded as 0 and 0.3). A ratio budget
//!   means `N = round(ratio · pool)`. An odd N for two classes gives N − 1 labeled images.
//!
//! k-fold ([`make_kfold`]): every eligible image is in exactly one fold's `test`; `val` is carved from the
//! other folds (`val_fraction` of all eligible images; none for `hermes`), and labeled / unlabeled are
//! drawn from what remains, as above. `test_fraction` is ignored and recorded as `1/k`. Folds are
//! balanced per stratum (sizes differ by at most one image, or one group). `hermes` k-fold uses the fold
//! as its test set instead of the 30%.
//!
//! The `hermes` protocol differs from the original script in two deliberate ways: it is seeded, and
//! budgets made with one seed are drawn from one shuffled pool (so a smaller budget is usually a subset
//! of a larger one), where the script draws each budget independently.

mod check;
mod make;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::manifest::write_atomic;

pub use check::{PartCounts, SplitSummary};
pub use make::{make_kfold, make_split};

pub const SPLIT_FORMAT_VERSION: u32 = 1;

/// How many images are labeled: a count, or a fraction of the eligible training pool.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Budget {
    Count(usize),
    Ratio(f64),
}

impl Default for Budget {
    fn default() -> Self {
        Budget::Ratio(0.1)
    }
}

impl FromStr for Budget {
    type Err = String;

    /// `"60"` is a count, `"0.1"` and `"10%"` are ratios.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        let bad =
            || format!("{s:?} is not a label budget; use a count (60) or a ratio (0.1 or 10%)");
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| bad())?;
            return Ok(Budget::Ratio(v / 100.0));
        }
        if let Ok(n) = s.parse::<usize>() {
            return Ok(Budget::Count(n));
        }
        s.parse::<f64>().map(Budget::Ratio).map_err(|_| bad())
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Budget::Count(n) => write!(f, "{n}"),
            Budget::Ratio(r) => write!(f, "{}%", r * 100.0),
        }
    }
}

impl<'de> Deserialize<'de> for Budget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Int(u64),
            Float(f64),
            Text(String),
            Tagged(Tagged),
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "kebab-case", deny_unknown_fields)]
        enum Tagged {
            Count(usize),
            Ratio(f64),
        }
        Ok(match Repr::deserialize(d)? {
            Repr::Int(n) => Budget::Count(n as usize),
            Repr::Float(r) => Budget::Ratio(r),
            Repr::Text(s) => s.parse().map_err(serde::de::Error::custom)?,
            Repr::Tagged(Tagged::Count(n)) => Budget::Count(n),
            Repr::Tagged(Tagged::Ratio(r)) => Budget::Ratio(r),
        })
    }
}

/// Which split procedure to follow (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitProtocol {
    #[default]
    Clean,
    Hermes,
}

/// How to split. Every field has a default, so `{}` is a valid config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitConfig {
    /// Labeled images: a count, or a ratio of the eligible training pool. Default `Ratio(0.1)`.
    pub labeled: Budget,
    /// Fraction of eligible images held out for validation. Default 0.1.
    pub val_fraction: f64,
    /// Fraction of eligible images held out for testing. Default 0.2.
    pub test_fraction: f64,
    /// Stratify by class. Default true.
    pub stratify: bool,
    /// Keep each `group` on one side of the train / val / test boundary. Default true (a no-op when
    /// the dataset has no groups).
    pub group_aware: bool,
    pub seed: u64,
    pub protocol: SplitProtocol,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            labeled: Budget::default(),
            val_fraction: 0.1,
            test_fraction: 0.2,
            stratify: true,
            group_aware: true,
            seed: 0,
            protocol: SplitProtocol::Clean,
        }
    }
}

impl SplitConfig {
    /// Checks ranges; the message names the offending key.
    pub fn validate(&self) -> Result<()> {
        let frac = |name: &str, v: f64| {
            if !(0.0..1.0).contains(&v) {
                Err(DataError::Invalid(format!(
                    "split: {name} = {v} is out of range; it must be in [0, 1)"
                )))
            } else {
                Ok(())
            }
        };
        frac("val_fraction", self.val_fraction)?;
        frac("test_fraction", self.test_fraction)?;
        if self.protocol == SplitProtocol::Clean && self.val_fraction + self.test_fraction >= 1.0 {
            return Err(DataError::Invalid(format!(
                "split: val_fraction + test_fraction = {} leaves no training images; keep the sum below 1",
                self.val_fraction + self.test_fraction
            )));
        }
        match self.labeled {
            Budget::Count(0) => Err(DataError::Invalid(
                "split: the labeled budget must be at least 1 image".into(),
            )),
            Budget::Ratio(r) if !(r > 0.0 && r <= 1.0) => Err(DataError::Invalid(format!(
                "split: labeled ratio {r} is out of range; it must be in (0, 1] (or give a count)"
            ))),
            _ => Ok(()),
        }
    }

    /// The config as applied: the `hermes` protocol fixes `test_fraction` 0.3, `val_fraction` 0 and
    /// stratification.
    pub fn resolved(&self) -> SplitConfig {
        let mut c = self.clone();
        if c.protocol == SplitProtocol::Hermes {
            c.val_fraction = 0.0;
            c.test_fraction = 0.3;
            c.stratify = true;
        }
        c
    }
}

/// One fold of a k-fold split (`index` is 0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fold {
    pub k: usize,
    pub index: usize,
}

/// The parts of a split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    Labeled,
    Unlabeled,
    Val,
    Test,
    Excluded,
}

impl Part {
    pub const ALL: [Part; 5] = [
        Part::Labeled,
        Part::Unlabeled,
        Part::Val,
        Part::Test,
        Part::Excluded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Part::Labeled => "labeled",
            Part::Unlabeled => "unlabeled",
            Part::Val => "val",
            Part::Test => "test",
            Part::Excluded => "excluded",
        }
    }
}

/// A split of one dataset (the JSON file, see the module documentation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Split {
    pub format_version: u32,
    pub dataset: String,
    pub seed: u64,
    pub strategy: SplitConfig,
    pub fold: Option<Fold>,
    pub labeled: Vec<String>,
    pub unlabeled: Vec<String>,
    pub val: Vec<String>,
    pub test: Vec<String>,
    #[serde(default)]
    pub excluded: Vec<String>,
    pub sha256: BTreeMap<String, String>,
    #[serde(default)]
    pub mask_sha256: BTreeMap<String, String>,
    /// The file this split was loaded from, for messages. Not serialised.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

impl Split {
    pub fn part(&self, part: Part) -> &[String] {
        match part {
            Part::Labeled => &self.labeled,
            Part::Unlabeled => &self.unlabeled,
            Part::Val => &self.val,
            Part::Test => &self.test,
            Part::Excluded => &self.excluded,
        }
    }

    /// Writes the split as pretty JSON via a temporary file renamed into place.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
        }
        let mut bytes = serde_json::to_vec_pretty(self).expect("split serialises");
        bytes.push(b'\n');
        write_atomic(path, &bytes)
    }

    /// Reads a split file. Malformed JSON, an unknown format version or an id listed twice is an error
    /// naming the file.
    pub fn load(path: &Path) -> Result<Split> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let mut split: Split = serde_json::from_str(&text).map_err(|e| {
            DataError::bad_file(
                path,
                format!(
                    "not a valid split file: {e}; make one with `semisono split` \
                     (format: docs/formats/split.md)"
                ),
            )
        })?;
        if split.format_version != SPLIT_FORMAT_VERSION {
            return Err(DataError::bad_file(
                path,
                format!(
                    "split format version {} is not supported (this semisono reads {}); \
                     re-run `semisono split`",
                    split.format_version, SPLIT_FORMAT_VERSION
                ),
            ));
        }
        split.path = Some(path.to_path_buf());
        split.check_disjoint()?;
        Ok(split)
    }

    fn fail(&self, message: String) -> DataError {
        match &self.path {
            Some(p) => DataError::bad_file(p, message),
            None => DataError::Invalid(format!("split: {message}")),
        }
    }

    fn check_disjoint(&self) -> Result<()> {
        let mut seen: HashMap<&str, Part> = HashMap::new();
        for part in Part::ALL {
            for id in self.part(part) {
                if let Some(prev) = seen.insert(id, part) {
                    return Err(self.fail(format!(
                        "image {id:?} is listed in both '{}' and '{}'; a split's parts must be \
                         disjoint: re-run `semisono split`",
                        prev.as_str(),
                        part.as_str()
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_parsing() {
        assert_eq!("60".parse::<Budget>().unwrap(), Budget::Count(60));
        assert_eq!("10%".parse::<Budget>().unwrap(), Budget::Ratio(0.1));
        assert_eq!("0.25".parse::<Budget>().unwrap(), Budget::Ratio(0.25));
        assert!("abc".parse::<Budget>().is_err());
        let b: Budget = serde_json::from_str("{\"count\": 8}").unwrap();
        assert_eq!(b, Budget::Count(8));
        let b: Budget = serde_json::from_str("0.5").unwrap();
        assert_eq!(b, Budget::Ratio(0.5));
        let b: Budget = serde_json::from_str("12").unwrap();
        assert_eq!(b, Budget::Count(12));
        assert_eq!(
            serde_json::to_string(&Budget::Ratio(0.1)).unwrap(),
            "{\"ratio\":0.1}"
        );
        let cfg: SplitConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(cfg, SplitConfig::default());
        assert!(serde_json::from_str::<SplitConfig>("{\"bogus\": 1}").is_err());
    }
}
