//! Published backbone weights from local files: a torchvision ResNet or an official Res2Net v1b
//! `state_dict` (`.pth` / `.pt` / `.bin`, read by burn-store's `PytorchStore`) or the same tensors
//! in a `.safetensors` file (`SafetensorsStore`), loaded into a [`Backbone`] by name.
//!
//! # Name mapping
//! The backbones' field names mirror the reference implementations (see [`crate::nets::resnet`] and
//! [`crate::nets::res2net`]), so a `state_dict` key *is* the module path, with three rules burn-store
//! applies: enum variant names (`Backbone::ResNet`, `SequentialLayer::Conv`) are not part of a path;
//! BatchNorm's `weight` / `bias` are Burn's `gamma` / `beta` (`running_mean` / `running_var` keep their
//! names); `Vec` indices are PyTorch's `Sequential` indices, gaps included (Res2Net's deep stem
//! `conv1.0/1/3/4/6`, its v1b shortcut `downsample.1/2` after the parameter-free `AvgPool` at `.0`):
//!
//! | file key | module path |
//! |---|---|
//! | `conv1.weight`, `bn1.{weight,bias,running_mean,running_var}` | ResNet stem |
//! | `conv1.{0,3,6}.weight`, `conv1.{1,4}.*`, `bn1.*` | Res2Net v1b deep stem |
//! | `layerS.B.{conv1,bn1,conv2,bn2}.*`, `layerS.B.downsample.{0,1}.*` | ResNet BasicBlock `B` of stage `S` |
//! | `layerS.B.{conv1,bn1,conv3,bn3}.*`, `layerS.B.convs.N.*`, `layerS.B.bns.N.*`, `layerS.B.downsample.{1,2}.*` | Res2Net Bottle2neck |
//!
//! A checkpoint that wraps its `state_dict` (`{"state_dict": ...}`, `{"model": ...}`) or was saved
//! from `nn.DataParallel` (`module.` in front of every key) is recognised by where the stem
//! convolution's key sits, and that prefix is taken off.
//!
//! # What is skipped, what is an error
//! Skipped and reported in [`LoadReport::skipped`]: the ImageNet classifier (`fc.*`), BatchNorm's
//! `num_batches_tracked`, `layer4.*` when the backbone was built without its last stage (the
//! segmentation encoder), and anything outside the wrapped `state_dict` (optimizer state, ...).
//! Everything else must fit exactly, or [`load_encoder_weights`] fails and leaves the backbone as it
//! was:
//! * the file is missing, unreadable or of another kind ([`PretrainedError::Read`],
//!   [`PretrainedError::UnsupportedExtension`]);
//! * no tensor applies ([`PretrainedError::LoadedNothing`]): never a silent pass;
//! * the file is of the other family, a ResNet for a Res2Net or back
//!   ([`PretrainedError::WrongFamily`]);
//! * a tensor has another shape ([`PretrainedError::ShapeMismatch`]): published weights need
//!   `width_multiplier = 1.0`, `in_channels = 3` and the matching backbone name;
//! * a backbone tensor is absent from the file ([`PretrainedError::Missing`]);
//! * the file has backbone-like tensors the network has no place for
//!   ([`PretrainedError::Unexpected`], e.g. ResNet-34 weights for a ResNet-18).

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use burn::store::{
    ApplyError, ApplyResult, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore,
    SafetensorsStore,
};

use crate::nets::Backbone;

/// Extensions read as PyTorch pickles (`torch.save` of a `state_dict`).
pub const PYTORCH_EXTENSIONS: &[&str] = &["pth", "pt", "bin"];
/// Extensions read as safetensors.
pub const SAFETENSORS_EXTENSIONS: &[&str] = &["safetensors"];

/// How many keys an error message lists.
const SAMPLE: usize = 5;

/// The container format of a weights file, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsFormat {
    /// A `torch.save` pickle (`.pth`, `.pt`, `.bin`).
    Pytorch,
    /// A `.safetensors` file.
    Safetensors,
}

impl WeightsFormat {
    /// The format of `path` by its extension (case-insensitive).
    pub fn of(path: &Path) -> Result<Self, PretrainedError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        if PYTORCH_EXTENSIONS.contains(&ext.as_str()) {
            Ok(Self::Pytorch)
        } else if SAFETENSORS_EXTENSIONS.contains(&ext.as_str()) {
            Ok(Self::Safetensors)
        } else {
            Err(PretrainedError::UnsupportedExtension {
                path: path.to_path_buf(),
                extension: ext,
            })
        }
    }
}

impl fmt::Display for WeightsFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pytorch => "pytorch",
            Self::Safetensors => "safetensors",
        })
    }
}

/// What a successful load did.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// The file read.
    pub path: PathBuf,
    /// Its format.
    pub format: WeightsFormat,
    /// The prefix taken off every key (`""` for a plain `state_dict`, else e.g. `"state_dict."` or
    /// `"module."`).
    pub prefix: String,
    /// Tensors copied into the backbone (every parameter and BatchNorm running statistic).
    pub applied: usize,
    /// File keys left out on purpose (see the module docs), sorted.
    pub skipped: Vec<String>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} tensors loaded ({}), {} skipped",
            self.path.display(),
            self.applied,
            self.format,
            self.skipped.len()
        )?;
        if !self.prefix.is_empty() {
            write!(f, ", key prefix {:?} removed", self.prefix)?;
        }
        Ok(())
    }
}

/// Why weights could not be loaded. Every message names the file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PretrainedError {
    /// Neither a PyTorch nor a safetensors extension.
    #[error(
        "{}: unsupported weights file extension {extension:?}; accepted: .pth, .pt, .bin \
         (PyTorch state_dict) or .safetensors",
        path.display()
    )]
    UnsupportedExtension { path: PathBuf, extension: String },
    /// The file does not exist or could not be parsed.
    #[error("{}: cannot read the weights file: {message}", path.display())]
    Read { path: PathBuf, message: String },
    /// Not one tensor of the file fits the backbone.
    #[error(
        "{}: loaded nothing: the file's keys look like {sample}, expected keys like \
         layer1.0.conv1.weight; is this a ResNet/Res2Net state_dict?",
        path.display()
    )]
    LoadedNothing { path: PathBuf, sample: String },
    /// A tensor of the file has another shape than the network's.
    #[error(
        "{}: tensor {key} has shape {file:?} in the file but {model:?} in the network{more}; \
         {hint}",
        path.display(),
        more = if *others > 0 { format!(" ({others} more tensors differ)") } else { String::new() }
    )]
    ShapeMismatch {
        path: PathBuf,
        /// The `state_dict` key.
        key: String,
        /// Shape in the file.
        file: Box<[usize]>,
        /// Shape the network has.
        model: Box<[usize]>,
        /// Further mismatching tensors.
        others: usize,
        /// What to change.
        hint: &'static str,
    },
    /// The file holds the other backbone family (a ResNet `state_dict` for a Res2Net or back).
    #[error(
        "{}: the file holds a {file_family} state_dict but the network is a {model_family}; \
         choose the backbone these weights were trained for",
        path.display()
    )]
    WrongFamily {
        path: PathBuf,
        file_family: &'static str,
        model_family: &'static str,
    },
    /// A tensor could not be read or is of the wrong kind (e.g. integer weights).
    #[error("{}: tensor {key}: {message}", path.display())]
    Tensor {
        path: PathBuf,
        key: String,
        message: String,
    },
    /// Backbone tensors the file does not have.
    #[error(
        "{}: {count} tensors of the network are missing from the file, e.g. {sample}; is it a \
         state_dict of the configured backbone?",
        path.display()
    )]
    Missing {
        path: PathBuf,
        count: usize,
        sample: String,
    },
    /// Backbone-like tensors of the file that the network has no place for.
    #[error(
        "{}: {count} tensors of the file fit nowhere in the network, e.g. {sample}; are these the \
         weights of a deeper backbone (e.g. resnet34 weights for resnet18)?",
        path.display()
    )]
    Unexpected {
        path: PathBuf,
        count: usize,
        sample: String,
    },
}

/// Loads a ResNet / Res2Net `state_dict` from `path` into `backbone` (see the module docs for the
/// name mapping and the errors). On error `backbone` is unchanged.
pub fn load_encoder_weights(
    backbone: &mut Backbone,
    path: &Path,
) -> Result<LoadReport, PretrainedError> {
    let format = WeightsFormat::of(path)?;
    let read_error = |message: String| PretrainedError::Read {
        path: path.to_path_buf(),
        message,
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(read_error("not a file".into())),
        Err(e) => return Err(read_error(e.to_string())),
    }

    let keys = match format {
        WeightsFormat::Pytorch => pytorch_store(path, "").keys().map_err(|e| e.to_string()),
        WeightsFormat::Safetensors => safetensors_store(path, "")
            .keys()
            .map_err(|e| e.to_string()),
    }
    .map_err(read_error)?;
    let prefix = state_dict_prefix(&keys);
    let model_family = family_name(backbone);
    if let Some(file_family) = file_family(&keys, &prefix) {
        if file_family != model_family {
            return Err(PretrainedError::WrongFamily {
                path: path.to_path_buf(),
                file_family,
                model_family,
            });
        }
    }

    let mut candidate = backbone.clone();
    let result: ApplyResult = match format {
        WeightsFormat::Pytorch => candidate
            .load_from(&mut pytorch_store(path, &prefix))
            .map_err(|e| read_error(e.to_string()))?,
        WeightsFormat::Safetensors => candidate
            .load_from(&mut safetensors_store(path, &prefix))
            .map_err(|e| read_error(e.to_string()))?,
    };

    let outside: BTreeSet<&str> = keys
        .iter()
        .filter(|k| !k.starts_with(prefix.as_str()))
        .map(String::as_str)
        .collect();
    let has_last_stage = backbone.has_last_stage();
    let (skipped, unexpected): (Vec<String>, Vec<String>) =
        result.unused.iter().cloned().partition(|k| {
            outside.contains(k.as_str())
                || k.starts_with("fc.")
                || k == "num_batches_tracked"
                || k.ends_with(".num_batches_tracked")
                || (!has_last_stage && k.starts_with("layer4."))
        });

    check(path, &keys, &prefix, &result, &unexpected)?;
    *backbone = candidate;
    let mut skipped = skipped;
    skipped.sort();
    Ok(LoadReport {
        path: path.to_path_buf(),
        format,
        prefix,
        applied: result.applied.len(),
        skipped,
    })
}

/// The first failed check of a load, in the order most useful to the user.
fn check(
    path: &Path,
    keys: &[String],
    prefix: &str,
    result: &ApplyResult,
    unexpected: &[String],
) -> Result<(), PretrainedError> {
    let path = path.to_path_buf();
    if let Some(first) = result.errors.first() {
        let others = result.errors.len() - 1;
        return Err(match first {
            ApplyError::ShapeMismatch {
                path: module_path,
                expected,
                found,
            } => {
                let key = torch_key(module_path);
                let file: Box<[usize]> = found.as_slice().into();
                let model: Box<[usize]> = expected.as_slice().into();
                let hint = shape_hint(&key, &file, &model);
                PretrainedError::ShapeMismatch {
                    path,
                    key,
                    file,
                    model,
                    others,
                    hint,
                }
            }
            ApplyError::DTypeMismatch {
                path: module_path,
                expected,
                found,
            } => PretrainedError::Tensor {
                path,
                key: torch_key(module_path),
                message: format!("the file stores {found:?}, the network needs {expected:?}"),
            },
            ApplyError::AdapterError {
                path: module_path,
                message,
            }
            | ApplyError::LoadError {
                path: module_path,
                message,
            } => PretrainedError::Tensor {
                path,
                key: torch_key(module_path),
                message: message.clone(),
            },
        });
    }
    if result.applied.is_empty() {
        let sample = if keys.is_empty() {
            "nothing (the file holds no tensor)".to_string()
        } else {
            let mut sorted: Vec<&String> = keys.iter().collect();
            sorted.sort();
            sample_of(
                sorted
                    .into_iter()
                    .map(|k| k.strip_prefix(prefix).unwrap_or(k)),
                keys.len(),
            )
        };
        return Err(PretrainedError::LoadedNothing { path, sample });
    }
    if !result.missing.is_empty() {
        return Err(PretrainedError::Missing {
            path,
            count: result.missing.len(),
            sample: sample_of(
                result.missing.iter().map(|(p, _)| torch_key(p)),
                result.missing.len(),
            ),
        });
    }
    if !unexpected.is_empty() {
        return Err(PretrainedError::Unexpected {
            path,
            count: unexpected.len(),
            sample: sample_of(unexpected.iter(), unexpected.len()),
        });
    }
    Ok(())
}

/// The first few of `count` keys, comma-separated, with "..." when there are more.
fn sample_of<S: AsRef<str>>(keys: impl Iterator<Item = S>, count: usize) -> String {
    let shown: Vec<String> = keys.take(SAMPLE).map(|k| k.as_ref().to_string()).collect();
    let mut s = shown.join(", ");
    if count > shown.len() {
        s.push_str(&format!(", ... ({count} in all)"));
    }
    s
}

/// What to change when `key` has shape `file` in the file and `model` in the network.
fn shape_hint(key: &str, file: &[usize], model: &[usize]) -> &'static str {
    let stem_conv = key == "conv1.weight" || key == "conv1.0.weight";
    let channels_only = file.len() == 4
        && model.len() == 4
        && file[1] != model[1]
        && file[0] == model[0]
        && file[2..] == model[2..];
    if stem_conv && channels_only {
        "the stem takes another number of input channels: published weights take RGB, set \
         model.in_channels = 3 (gray images are replicated)"
    } else {
        "published weights need model.width_multiplier = 1.0 (the published widths) and the \
         backbone they were trained for"
    }
}

/// A module path as its `state_dict` key: BatchNorm's `gamma` / `beta` are `weight` / `bias`.
/// (Paths already have no enum variant names: the stores skip them.)
fn torch_key(module_path: &str) -> String {
    if let Some(stem) = module_path.strip_suffix(".gamma") {
        format!("{stem}.weight")
    } else if let Some(stem) = module_path.strip_suffix(".beta") {
        format!("{stem}.bias")
    } else {
        module_path.to_string()
    }
}

/// The prefix in front of the `state_dict` keys: the shortest `P` (empty or ending in `.`, without
/// a `layerN` segment) such that `P + "conv1.weight"` (ResNet) or `P + "conv1.0.weight"` (Res2Net
/// deep stem) is a key. Empty when there is none.
pub fn state_dict_prefix(keys: &[String]) -> String {
    keys.iter()
        .filter_map(|k| {
            ["conv1.weight", "conv1.0.weight"]
                .iter()
                .find_map(|stem| k.strip_suffix(stem))
        })
        .filter(|p| p.is_empty() || p.ends_with('.'))
        .filter(|p| !p.split('.').any(|seg| seg.starts_with("layer")))
        .min_by_key(|p| (p.len(), p.to_string()))
        .unwrap_or("")
        .to_string()
}

const RESNET: &str = "ResNet (BasicBlock)";
const RES2NET: &str = "Res2Net v1b";

fn family_name(backbone: &Backbone) -> &'static str {
    match backbone {
        Backbone::ResNet(_) => RESNET,
        Backbone::Res2Net(_) => RES2NET,
    }
}

/// The backbone family a `state_dict` is of, by its stem and block keys (after `prefix`); `None`
/// when it looks like neither.
fn file_family(keys: &[String], prefix: &str) -> Option<&'static str> {
    let inner = || keys.iter().filter_map(|k| k.strip_prefix(prefix));
    let block = |part: &str| inner().any(|k| k.starts_with("layer") && k.contains(part));
    if inner().any(|k| k == "conv1.0.weight") && block(".convs.") {
        Some(RES2NET)
    } else if inner().any(|k| k == "conv1.weight") && block(".conv2.") {
        Some(RESNET)
    } else {
        None
    }
}

/// `prefix` as a regex matching it literally at the start of a key.
fn prefix_pattern(prefix: &str) -> String {
    let mut pattern = String::from("^");
    for c in prefix.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern
}

fn pytorch_store(path: &Path, prefix: &str) -> PytorchStore {
    let store = PytorchStore::from_file(path)
        // Keep `Sequential` indices with their gaps (`conv1.0/1/3/4/6`, `downsample.1/2`): the
        // modules keep them too.
        .map_indices_contiguous(false)
        // Missing / unused / mismatching tensors are judged here, from the result.
        .allow_partial(true)
        .validate(false);
    if prefix.is_empty() {
        store
    } else {
        store.with_key_remapping(prefix_pattern(prefix), "")
    }
}

fn safetensors_store(path: &Path, prefix: &str) -> SafetensorsStore {
    let store = SafetensorsStore::from_file(path)
        .skip_enum_variants(true)
        // Keys as PyTorch writes them (`bn1.weight`); Burn's own names (`bn1.gamma`) match first.
        .with_from_adapter(PyTorchToBurnAdapter)
        .allow_partial(true)
        .validate(false);
    if prefix.is_empty() {
        store
    } else {
        store.with_key_remapping(prefix_pattern(prefix), "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn prefix_of_plain_wrapped_and_data_parallel_state_dicts() {
        let plain = keys(&["conv1.weight", "layer1.0.conv1.weight", "fc.bias"]);
        assert_eq!(state_dict_prefix(&plain), "");
        let deep = keys(&["conv1.0.weight", "layer1.0.conv1.weight"]);
        assert_eq!(state_dict_prefix(&deep), "");
        let wrapped = keys(&[
            "state_dict.module.conv1.weight",
            "state_dict.module.layer1.0.conv1.weight",
            "optimizer.state.0.momentum_buffer",
        ]);
        assert_eq!(state_dict_prefix(&wrapped), "state_dict.module.");
        // Only block convs: no stem, no prefix.
        assert_eq!(state_dict_prefix(&keys(&["layer1.0.conv1.weight"])), "");
        assert_eq!(state_dict_prefix(&keys(&["features.0.weight"])), "");
        assert_eq!(state_dict_prefix(&keys(&["xconv1.weight"])), "");
    }

    #[test]
    fn prefix_pattern_escapes_regex_characters() {
        assert_eq!(prefix_pattern("module."), r"^module\.");
        assert_eq!(prefix_pattern("a-b.c"), r"^a\-b\.c");
    }

    #[test]
    fn batch_norm_paths_read_as_state_dict_keys() {
        assert_eq!(torch_key("layer1.0.bn1.gamma"), "layer1.0.bn1.weight");
        assert_eq!(torch_key("bn1.beta"), "bn1.bias");
        assert_eq!(torch_key("bn1.running_var"), "bn1.running_var");
        assert_eq!(torch_key("conv1.weight"), "conv1.weight");
    }

    #[test]
    fn formats_by_extension() {
        for (name, want) in [
            ("a.pth", WeightsFormat::Pytorch),
            ("a.PT", WeightsFormat::Pytorch),
            ("b/c.bin", WeightsFormat::Pytorch),
            ("w.safetensors", WeightsFormat::Safetensors),
        ] {
            assert_eq!(WeightsFormat::of(Path::new(name)).unwrap(), want, "{name}");
        }
        let err = WeightsFormat::of(Path::new("w.ckpt"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(".pth") && err.contains(".safetensors"),
            "{err}"
        );
        assert!(WeightsFormat::of(Path::new("noext")).is_err());
    }

    #[test]
    fn shape_hints() {
        let stem = shape_hint("conv1.weight", &[64, 3, 7, 7], &[64, 1, 7, 7]);
        assert!(stem.contains("in_channels = 3"), "{stem}");
        let width = shape_hint("layer1.0.conv1.weight", &[64, 64, 3, 3], &[16, 16, 3, 3]);
        assert!(width.contains("width_multiplier = 1.0"), "{width}");
    }
}
