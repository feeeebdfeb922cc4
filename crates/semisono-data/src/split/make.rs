//! Drawing splits: strata, groups, hold-out, the labeled draw, k-fold.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{Budget, Fold, Split, SplitConfig, SplitProtocol, SPLIT_FORMAT_VERSION};
use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::manifest::ManifestEntry;
use crate::rng::Rng;

const STREAM_HOLDOUT: u64 = 0x5011_7001;
const STREAM_LABELED: u64 = 0x5011_7002;
const STREAM_FOLDS: u64 = 0x5011_7003;
const STREAM_FOLD_BASE: u64 = 0x5011_8000;

// ---------------------------------------------------------------------------------------------------
// Making splits

/// Stratum of an eligible image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Stratum {
    All,
    Class(u32),
    MaskOnly,
}

/// Images that must stay together (one group, or a single image), indices into `Pool::entries`.
#[derive(Clone, Debug)]
struct Unit {
    members: Vec<usize>,
}

/// The dataset prepared for drawing: entries sorted by id, eligible ones grouped into units per stratum.
struct Pool<'a> {
    entries: Vec<&'a ManifestEntry>,
    stratum: Vec<Option<Stratum>>, // None = not eligible
    /// Per stratum (sorted), units sorted by their first id.
    strata: BTreeMap<Stratum, Vec<Unit>>,
    /// Indices of the images that are not eligible.
    others: Vec<usize>,
    n_eligible: usize,
    classes: Vec<String>,
}

impl<'a> Pool<'a> {
    fn build(ds: &'a Dataset, cfg: &SplitConfig) -> Result<Self> {
        let mut entries: Vec<&ManifestEntry> = ds.entries.iter().collect();
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        let hermes = cfg.protocol == SplitProtocol::Hermes;
        let stratum: Vec<Option<Stratum>> = entries
            .iter()
            .map(|e| {
                let eligible = if hermes {
                    e.label.is_some()
                } else {
                    e.label.is_some() || e.mask.is_some()
                };
                eligible.then_some(match (cfg.stratify, e.label) {
                    (false, _) => Stratum::All,
                    (true, Some(l)) => Stratum::Class(l),
                    (true, None) => Stratum::MaskOnly,
                })
            })
            .collect();
        let n_eligible = stratum.iter().filter(|s| s.is_some()).count();
        if n_eligible == 0 {
            return Err(DataError::Invalid(format!(
                "dataset {:?} has no image with a {}; a split needs them for labeled, val and test",
                ds.info.name,
                if hermes {
                    "class label"
                } else {
                    "class label or mask"
                }
            )));
        }
        // Units: groups (when group-aware) or single images, in order of first id.
        let mut units: Vec<Unit> = Vec::new();
        let mut by_group: HashMap<&str, usize> = HashMap::new();
        let mut others = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if stratum[i].is_none() {
                others.push(i);
                continue;
            }
            match e.group.as_deref().filter(|_| cfg.group_aware) {
                Some(g) => match by_group.get(g) {
                    Some(&u) => units[u].members.push(i),
                    None => {
                        by_group.insert(g, units.len());
                        units.push(Unit { members: vec![i] });
                    }
                },
                None => units.push(Unit { members: vec![i] }),
            }
        }
        // A unit's stratum is the most common one among its members (ties: the smallest).
        let mut strata: BTreeMap<Stratum, Vec<Unit>> = BTreeMap::new();
        for u in units {
            let mut counts: BTreeMap<Stratum, usize> = BTreeMap::new();
            for &m in &u.members {
                *counts.entry(stratum[m].expect("eligible")).or_default() += 1;
            }
            let best = counts
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(s, _)| *s)
                .expect("non-empty unit");
            strata.entry(best).or_default().push(u);
        }
        Ok(Pool {
            entries,
            stratum,
            strata,
            others,
            n_eligible,
            classes: ds.info.classes.clone(),
        })
    }

    fn size(units: &[Unit]) -> usize {
        units.iter().map(|u| u.members.len()).sum()
    }
}

/// Splits `total` over `sizes` proportionally (largest remainder, ties to the earlier stratum).
/// Requires `total <= sum(sizes)`; every share is then at most its size.
fn allocate(total: usize, sizes: &[usize]) -> Vec<usize> {
    let n: usize = sizes.iter().sum();
    if n == 0 {
        return vec![0; sizes.len()];
    }
    let total = total.min(n);
    let mut share: Vec<usize> = sizes.iter().map(|&s| total * s / n).collect();
    let mut rest: Vec<(usize, usize)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &s)| (total * s % n, i))
        .collect();
    rest.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let missing = total - share.iter().sum::<usize>();
    for &(_, i) in rest.iter().take(missing) {
        share[i] += 1;
    }
    share
}

fn round_count(fraction: f64, n: usize) -> usize {
    ((fraction * n as f64).round() as usize).min(n)
}

/// Where each unit of one stratum goes.
#[derive(Default)]
struct Holdout {
    test: Vec<usize>,
    val: Vec<usize>,
    train: Vec<usize>,
}

/// Fills test, then val, with whole units in the given (shuffled) order: a unit is taken when it
/// brings the count closer to the target (exact for single images; a group that would overshoot by more
/// than half its size is passed on to the next part).
fn fill(units: &[Unit], test_target: usize, val_target: usize, out: &mut Holdout) {
    let (mut t, mut v) = (0, 0);
    for u in units {
        let n = u.members.len();
        if 2 * t + n < 2 * test_target {
            t += n;
            out.test.extend(&u.members);
        } else if 2 * v + n < 2 * val_target {
            v += n;
            out.val.extend(&u.members);
        } else {
            out.train.extend(&u.members);
        }
    }
}

/// Draws the labeled images from the training pool (entry indices); the rest is returned unlabeled.
fn draw_labeled(
    pool: &Pool,
    train: &[usize],
    cfg: &SplitConfig,
    held_out: usize,
    rng: &mut Rng,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let mut by_stratum: BTreeMap<Stratum, Vec<usize>> = BTreeMap::new();
    for &i in train {
        by_stratum
            .entry(pool.stratum[i].expect("eligible"))
            .or_default()
            .push(i);
    }
    let sizes: Vec<usize> = by_stratum.values().map(Vec::len).collect();
    let n_pool: usize = sizes.iter().sum();
    let wanted = match cfg.labeled {
        Budget::Count(n) => n,
        Budget::Ratio(r) => ((r * n_pool as f64).round() as usize).max(1),
    };
    let targets: Vec<usize> = match cfg.protocol {
        SplitProtocol::Clean => {
            if wanted > n_pool {
                return Err(DataError::Invalid(format!(
                    "split: {wanted} labeled images requested, but the training pool has only \
                     {n_pool} images with a label or mask ({held_out} are held out for val and \
                     test); the maximum labeled count is {n_pool}"
                )));
            }
            allocate(wanted, &sizes)
        }
        SplitProtocol::Hermes => {
            let k = sizes.len();
            let per = wanted / k;
            let (smallest, &min_size) = sizes
                .iter()
                .enumerate()
                .min_by_key(|(_, &s)| s)
                .expect("at least one class");
            if per == 0 || per > min_size {
                let name = match by_stratum.keys().nth(smallest) {
                    Some(&Stratum::Class(c)) => match pool.classes.get(c as usize) {
                        Some(n) => format!("class {n:?}"),
                        None => format!("class {c}"),
                    },
                    _ => "a class".to_string(),
                };
                return Err(DataError::Invalid(format!(
                    "split (hermes protocol): {wanted} labeled images means {per} per class over \
                     {k} classes, but {name} has only {min_size} images in its training pool (70%); \
                     the labeled count must be between {k} and {}",
                    k * min_size
                )));
            }
            vec![per; k]
        }
    };
    let (mut labeled, mut unlabeled) = (Vec::new(), Vec::new());
    for (mut members, target) in by_stratum.into_values().zip(targets) {
        rng.shuffle(&mut members);
        labeled.extend_from_slice(&members[..target]);
        unlabeled.extend_from_slice(&members[target..]);
    }
    Ok((labeled, unlabeled))
}

/// Turns index lists into a `Split`: sorted ids, sha256 maps, and the non-eligible images placed.
fn assemble(
    ds: &Dataset,
    pool: &Pool,
    cfg: &SplitConfig,
    fold: Option<Fold>,
    parts: [Vec<usize>; 4], // labeled, unlabeled(eligible), val, test
) -> Split {
    let [labeled, mut unlabeled, val, test] = parts;
    // Groups on the val/test side keep their non-eligible images out of training.
    let held_groups: HashSet<&str> = if cfg.group_aware {
        val.iter()
            .chain(&test)
            .filter_map(|&i| pool.entries[i].group.as_deref())
            .collect()
    } else {
        HashSet::new()
    };
    let mut excluded = Vec::new();
    for &i in &pool.others {
        match pool.entries[i].group.as_deref() {
            Some(g) if held_groups.contains(g) => excluded.push(i),
            _ => unlabeled.push(i),
        }
    }
    let ids = |idx: &[usize]| {
        let mut v: Vec<String> = idx.iter().map(|&i| pool.entries[i].id.clone()).collect();
        v.sort();
        v
    };
    let mut sha256 = BTreeMap::new();
    let mut mask_sha256 = BTreeMap::new();
    for e in &pool.entries {
        sha256.insert(e.id.clone(), e.sha256.clone());
        if let Some(m) = &e.mask_sha256 {
            mask_sha256.insert(e.id.clone(), m.clone());
        }
    }
    Split {
        format_version: SPLIT_FORMAT_VERSION,
        dataset: ds.info.name.clone(),
        seed: cfg.seed,
        strategy: cfg.clone(),
        fold,
        labeled: ids(&labeled),
        unlabeled: ids(&unlabeled),
        val: ids(&val),
        test: ids(&test),
        excluded: ids(&excluded),
        sha256,
        mask_sha256,
        path: None,
    }
}

/// Makes one split of `ds` (see the module documentation for the rules and protocols).
pub fn make_split(ds: &Dataset, cfg: &SplitConfig) -> Result<Split> {
    cfg.validate()?;
    let cfg = cfg.resolved();
    let pool = Pool::build(ds, &cfg)?;
    let mut rng = Rng::derive(cfg.seed, STREAM_HOLDOUT);
    let keys: Vec<Stratum> = pool.strata.keys().copied().collect();
    let sizes: Vec<usize> = pool.strata.values().map(|u| Pool::size(u)).collect();
    let (test_t, val_t) = match cfg.protocol {
        SplitProtocol::Clean => (
            allocate(round_count(cfg.test_fraction, pool.n_eligible), &sizes),
            allocate(round_count(cfg.val_fraction, pool.n_eligible), &sizes),
        ),
        // data_split.py: n_train = int(0.7 * n_class), the rest is test.
        SplitProtocol::Hermes => (
            sizes
                .iter()
                .map(|&n| n - (0.7 * n as f64) as usize)
                .collect(),
            vec![0; sizes.len()],
        ),
    };
    let mut h = Holdout::default();
    for (i, key) in keys.iter().enumerate() {
        let mut units = pool.strata[key].clone();
        rng.shuffle(&mut units);
        // Val is filled after test, so val's target counts only what test left.
        let val_target = val_t[i].min(sizes[i].saturating_sub(test_t[i]));
        fill(&units, test_t[i], val_target, &mut h);
    }
    let held_out = h.test.len() + h.val.len();
    let mut lrng = Rng::derive(cfg.seed, STREAM_LABELED);
    let (labeled, unlabeled) = draw_labeled(&pool, &h.train, &cfg, held_out, &mut lrng)?;
    Ok(assemble(
        ds,
        &pool,
        &cfg,
        None,
        [labeled, unlabeled, h.val, h.test],
    ))
}

/// Makes the `k` splits of a k-fold cross-validation: fold `i`'s test set is the i-th of `k` stratified
/// (and group-aware) folds, so every eligible image is in exactly one test set; val is carved from the
/// other folds, then labeled and unlabeled are drawn from what remains.
pub fn make_kfold(ds: &Dataset, cfg: &SplitConfig, k: usize) -> Result<Vec<Split>> {
    let mut cfg = cfg.clone();
    cfg.test_fraction = 0.0;
    cfg.validate()?;
    let mut cfg = cfg.resolved();
    if k < 2 {
        return Err(DataError::Invalid(format!(
            "split: k-fold needs k >= 2 (got {k})"
        )));
    }
    cfg.test_fraction = 1.0 / k as f64;
    if cfg.val_fraction + cfg.test_fraction >= 1.0 {
        return Err(DataError::Invalid(format!(
            "split: with k = {k} folds, val_fraction {} leaves no training images; lower it below {}",
            cfg.val_fraction,
            1.0 - cfg.test_fraction
        )));
    }
    let pool = Pool::build(ds, &cfg)?;
    let n_units: usize = pool.strata.values().map(Vec::len).sum();
    if k > n_units {
        return Err(DataError::Invalid(format!(
            "split: k = {k} folds but only {n_units} images (or groups) with a label or mask; \
             the maximum k is {n_units}"
        )));
    }
    // Deal units to folds: per stratum, shuffled, largest groups first, each to the fold with the
    // fewest images of this stratum (then fewest overall, then lowest index).
    let mut rng = Rng::derive(cfg.seed, STREAM_FOLDS);
    let mut fold_units: Vec<BTreeMap<Stratum, Vec<Unit>>> = vec![BTreeMap::new(); k];
    let mut totals = vec![0usize; k];
    for (key, units) in &pool.strata {
        let mut units = units.clone();
        rng.shuffle(&mut units);
        units.sort_by_key(|u| std::cmp::Reverse(u.members.len()));
        let mut here = vec![0usize; k];
        for u in units {
            let f = (0..k)
                .min_by_key(|&f| (here[f], totals[f], f))
                .expect("k >= 2");
            here[f] += u.members.len();
            totals[f] += u.members.len();
            fold_units[f].entry(*key).or_default().push(u);
        }
    }
    let mut splits = Vec::with_capacity(k);
    for index in 0..k {
        let mut frng = Rng::derive(cfg.seed, STREAM_FOLD_BASE + index as u64);
        let test: Vec<usize> = fold_units[index]
            .values()
            .flatten()
            .flat_map(|u| u.members.iter().copied())
            .collect();
        // The other folds, per stratum, in a stable order before shuffling.
        let mut rest: BTreeMap<Stratum, Vec<Unit>> = BTreeMap::new();
        for (f, fu) in fold_units.iter().enumerate() {
            if f != index {
                for (key, units) in fu {
                    rest.entry(*key).or_default().extend(units.iter().cloned());
                }
            }
        }
        let sizes: Vec<usize> = rest.values().map(|u| Pool::size(u)).collect();
        let val_total = match cfg.protocol {
            SplitProtocol::Clean => round_count(cfg.val_fraction, pool.n_eligible),
            SplitProtocol::Hermes => 0,
        };
        let val_t = allocate(val_total, &sizes);
        let mut h = Holdout::default();
        for ((_, mut units), vt) in rest.into_iter().zip(val_t) {
            units.sort_by(|a, b| {
                pool.entries[a.members[0]]
                    .id
                    .cmp(&pool.entries[b.members[0]].id)
            });
            frng.shuffle(&mut units);
            fill(&units, 0, vt, &mut h);
        }
        let held_out = test.len() + h.val.len();
        let (labeled, unlabeled) = draw_labeled(&pool, &h.train, &cfg, held_out, &mut frng)?;
        let fold = Some(Fold { k, index });
        splits.push(assemble(
            ds,
            &pool,
            &cfg,
            fold,
            [labeled, unlabeled, h.val, test],
        ));
    }
    Ok(splits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocate_is_proportional_and_exact() {
        assert_eq!(allocate(10, &[50, 30, 20]), vec![5, 3, 2]);
        assert_eq!(allocate(7, &[5, 5]), vec![4, 3]);
        assert_eq!(allocate(3, &[1, 1, 1, 1]), vec![1, 1, 1, 0]);
        assert_eq!(allocate(0, &[4, 2]), vec![0, 0]);
        let s = allocate(129, &[437, 210]);
        assert_eq!(s.iter().sum::<usize>(), 129);
        assert_eq!(s, vec![87, 42]);
    }

    #[test]
    fn hermes_train_counts_match_python_int() {
        // BUSI: 437 benign / 210 malignant -> 305 + 147 in the training pool (spec §3.2).
        assert_eq!((0.7 * 437f64) as usize, 305);
        assert_eq!((0.7 * 210f64) as usize, 147);
    }
}
