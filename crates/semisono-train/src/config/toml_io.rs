//! Reading and writing [`TrainConfig`] as TOML, command-line overrides, and the error type.
//!
//! Why two passes over a file: the merge with the base preset happens on `toml::Table`s, which have
//! no source positions, so the file is first deserialised on its own (`toml::from_str`, every key
//! defaulted). That pass sees exactly the file's keys and values with their byte spans, and finds every
//! unknown key and wrong type; `toml_edit` then maps the span back to the key's dotted path. Only a
//! file that passes is merged.

use std::path::{Path, PathBuf};

use super::{TrainConfig, METHODS, PRESETS};

/// Everything that can be wrong with a configuration. `at` names where: `file.toml:LINE:COL`,
/// `<config>:LINE:COL` for text without a file, or the `--set` argument.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown preset {name:?}; valid presets: {}", PRESETS.join(", "))]
    UnknownPreset { name: String },
    #[error("{at}: the file's preset {file:?} differs from the requested base preset {requested:?}; use one")]
    PresetConflict {
        at: String,
        file: String,
        requested: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{at}: not valid TOML: {message}")]
    Syntax { at: String, message: String },
    /// `table` is the dotted path of the table holding the key (empty for the top level).
    #[error("{at}: unknown key `{key}`; valid keys {}: {}", in_table(table), valid.join(", "))]
    UnknownKey {
        at: String,
        key: String,
        table: String,
        valid: Vec<String>,
    },
    #[error("{at}: `{key}`: {message}")]
    WrongType {
        at: String,
        key: String,
        message: String,
    },
    #[error("{at}: `{key}`: {message}")]
    Invalid {
        at: String,
        key: String,
        message: String,
    },
    #[error("--set {arg:?}: {message}")]
    BadOverride { arg: String, message: String },
    #[error("cannot write the configuration as TOML: {0}")]
    Serialize(String),
}

fn in_table(table: &str) -> String {
    if table.is_empty() {
        "at the top level".into()
    } else {
        format!("in [{table}]")
    }
}

impl TrainConfig {
    /// Parses a configuration from TOML text. The base is the text's `preset` key if it has one,
    /// else `base`, else [`TrainConfig::default`]; naming two different presets is an error. The
    /// result is validated against [`METHODS`].
    pub fn from_toml_str(text: &str, base: Option<&str>) -> Result<Self, ConfigError> {
        from_source(text, base, "<config>")
    }

    /// [`from_toml_str`](Self::from_toml_str) on a file; errors name the file and line.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        Self::from_file_with_base(path, None)
    }

    pub fn from_file_with_base(path: &Path, base: Option<&str>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        from_source(&text, base, &path.display().to_string())
    }

    /// Overrides one key, e.g. `set("optim.seg.lr", "3e-4")`. The value is read as a TOML value
    /// (`3e-4`, `true`, `[0.9, 0.99]`, `"text"`), and as a string if it is not one, so
    /// `set("model.seg_backbone", "resnet34")` works unquoted. The result is validated.
    pub fn set(&mut self, key_path: &str, value: &str) -> Result<(), ConfigError> {
        let arg = format!("{key_path}={value}");
        let bad = |message: &str| ConfigError::BadOverride {
            arg: arg.clone(),
            message: message.to_string(),
        };
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !key_path.split('.').all(segment_ok) {
            return Err(bad(
                "the key must be a dotted path of names, like optim.seg.lr",
            ));
        }
        if key_path == "preset" {
            return Err(bad(
                "the preset is the base of a configuration and cannot be overridden; \
                 start from it instead (`preset = ...` in the file)",
            ));
        }
        // A dotted key is valid TOML, so the override is checked exactly like a one-line file.
        let mut text = format!("{key_path} = {value}");
        if text.parse::<toml::Table>().is_err() {
            text = format!("{key_path} = {}", toml::Value::String(value.to_string()));
        }
        let at = format!("--set {arg}");
        let user = check_text(&text, &at, false)?;
        let mut merged = to_table(self)?;
        merge(&mut merged, user.clone());
        let mut cfg = from_table(merged, &at)?;
        sync_sizes(&mut cfg, &user).map_err(|(key, message)| ConfigError::Invalid {
            at: at.clone(),
            key,
            message,
        })?;
        cfg.check(METHODS)
            .map_err(|(key, message)| ConfigError::Invalid { at, key, message })?;
        *self = cfg;
        Ok(())
    }

    /// [`set`](Self::set) from one `key=value` argument.
    pub fn apply_override(&mut self, arg: &str) -> Result<(), ConfigError> {
        match arg.split_once('=') {
            Some((k, v)) => self.set(k.trim(), v.trim()),
            None => Err(ConfigError::BadOverride {
                arg: arg.to_string(),
                message: "expected KEY=VALUE, e.g. optim.seg.lr=3e-4".into(),
            }),
        }
    }

    /// The configuration as TOML, every key written out: what a run records as `config.toml`.
    /// Reading it back gives an equal configuration.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::Serialize(e.to_string()))
    }
}

fn from_source(text: &str, base: Option<&str>, origin: &str) -> Result<TrainConfig, ConfigError> {
    let user = check_text(text, origin, true)?;
    let at_key = |key: &str| at_of_key(text, origin, key);
    let file_preset = match user.get("preset") {
        Some(toml::Value::String(s)) => Some(s.as_str()),
        _ => None,
    };
    let preset = match (file_preset, base) {
        (Some(f), Some(b)) if f != b => {
            return Err(ConfigError::PresetConflict {
                at: at_key("preset"),
                file: f.into(),
                requested: b.into(),
            })
        }
        (Some(p), _) | (None, Some(p)) => Some(p),
        (None, None) => None,
    };
    let base_cfg = match preset {
        None => TrainConfig::default(),
        Some(p) => TrainConfig::preset(p).map_err(|e| match file_preset {
            Some(_) => ConfigError::Invalid {
                at: at_key("preset"),
                key: "preset".into(),
                message: e.to_string(),
            },
            None => e,
        })?,
    };
    let mut merged = to_table(&base_cfg)?;
    merge(&mut merged, user.clone());
    let mut cfg = from_table(merged, origin)?;
    let invalid = |(key, message): (String, String)| ConfigError::Invalid {
        at: at_key(&key),
        key,
        message,
    };
    sync_sizes(&mut cfg, &user).map_err(invalid)?;
    cfg.check(METHODS).map_err(invalid)?;
    Ok(cfg)
}

/// `image_size` is the one size key; `augment.size` follows it. Setting `augment.size` to anything
/// else is an error rather than a silent override.
fn sync_sizes(cfg: &mut TrainConfig, user: &toml::Table) -> Result<(), (String, String)> {
    let user_size = user
        .get("augment")
        .and_then(|a| a.as_table())
        .and_then(|a| a.get("size"));
    if user_size.is_some() && cfg.augment.size != [cfg.image_size; 2] {
        return Err((
            "augment.size".into(),
            format!(
                "follows image_size ({0}); set image_size instead",
                cfg.image_size
            ),
        ));
    }
    cfg.augment.size = [cfg.image_size; 2];
    Ok(())
}

/// Deserialises `text` on its own to find unknown keys, wrong types and syntax errors with their
/// positions, and returns its table for the merge. `positions`: append `:LINE:COL` to `origin`.
fn check_text(text: &str, origin: &str, positions: bool) -> Result<toml::Table, ConfigError> {
    let err = match toml::from_str::<TrainConfig>(text) {
        Ok(_) => {
            return Ok(text
                .parse::<toml::Table>()
                .expect("text that deserialises is a table"))
        }
        Err(e) => e,
    };
    let offset = err.span().map(|s| s.start);
    let at = match offset {
        Some(o) if positions => format!("{origin}:{}", line_col(text, o)),
        _ => origin.to_string(),
    };
    // toml's syntax messages span lines ("invalid string\nexpected ..."); keep one line.
    let message = err.message().trim().replace('\n', "; ");
    let Ok(doc) = toml_edit::ImDocument::parse(text) else {
        return Err(ConfigError::Syntax { at, message });
    };
    let path = offset
        .and_then(|o| key_path_at(doc.as_table(), o))
        .unwrap_or_default();
    let key = path.join(".");
    if let Some(valid) = unknown_field_list(&message) {
        let table = path[..path.len().saturating_sub(1)].join(".");
        return Err(ConfigError::UnknownKey {
            at,
            key,
            table,
            valid,
        });
    }
    Err(ConfigError::WrongType {
        at,
        key,
        message: plain_types(&message),
    })
}

/// The valid names of serde's `unknown field `x`, expected one of `a`, `b`` message.
fn unknown_field_list(message: &str) -> Option<Vec<String>> {
    let rest = message.strip_prefix("unknown field `")?;
    let (_, expected) = rest.split_once("`, ")?;
    if expected.starts_with("there are no fields") {
        return Some(Vec::new());
    }
    Some(
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

/// serde names Rust types ("expected u64"); say what to write instead.
fn plain_types(message: &str) -> String {
    let mut m = message.to_string();
    for (rust, plain) in [
        ("expected usize", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected i32", "expected an integer"),
        ("expected f64", "expected a number"),
        ("expected path string", "expected a string (a path)"),
    ] {
        if let Some(i) = m.find(rust) {
            // Whole words only: "expected u32" must not match inside "expected u32x".
            let end = i + rust.len();
            if !m[end..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
                m.replace_range(i..end, plain);
            }
        }
    }
    m
}

/// The dotted key path whose key or value covers byte `offset` (the deepest one).
fn key_path_at(table: &toml_edit::Table, offset: usize) -> Option<Vec<String>> {
    let mut best = None;
    walk_table(table, offset, &mut Vec::new(), &mut best);
    best
}

fn covers(span: Option<std::ops::Range<usize>>, offset: usize) -> bool {
    span.is_some_and(|s| s.start <= offset && offset < s.end.max(s.start + 1))
}

fn walk_table(
    t: &toml_edit::Table,
    offset: usize,
    path: &mut Vec<String>,
    best: &mut Option<Vec<String>>,
) {
    for (name, _) in t.iter() {
        if let Some((key, item)) = t.get_key_value(name) {
            walk_entry(key, item, offset, path, best);
        }
    }
}

fn walk_entry(
    key: &toml_edit::Key,
    item: &toml_edit::Item,
    offset: usize,
    path: &mut Vec<String>,
    best: &mut Option<Vec<String>>,
) {
    path.push(key.get().to_string());
    // Every hit is deeper than or beside the ones before it, so the last hit is the deepest.
    if covers(key.span(), offset) || covers(item.span(), offset) {
        *best = Some(path.clone());
    }
    match item {
        toml_edit::Item::Table(t) => walk_table(t, offset, path, best),
        toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => {
            for (name, _) in t.iter() {
                if let Some((k, v)) = t.get_key_value(name) {
                    walk_entry(k, v, offset, path, best);
                }
            }
        }
        _ => {}
    }
    path.pop();
}

/// `origin:LINE:COL` of `key` (dotted) in `text`, or just `origin` if the text does not set it.
fn at_of_key(text: &str, origin: &str, key: &str) -> String {
    let Ok(doc) = toml_edit::ImDocument::parse(text) else {
        return origin.to_string();
    };
    let mut item = doc.as_item();
    let mut span = None;
    for part in key.split('.') {
        let Some((k, v)) = item.as_table_like().and_then(|t| t.get_key_value(part)) else {
            return origin.to_string();
        };
        span = k.span();
        item = v;
    }
    match span {
        Some(s) => format!("{origin}:{}", line_col(text, s.start)),
        None => origin.to_string(),
    }
}

/// 1-based `LINE:COL` of byte `offset`.
fn line_col(text: &str, offset: usize) -> String {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("{line}:{col}")
}

fn to_table(cfg: &TrainConfig) -> Result<toml::Table, ConfigError> {
    toml::Table::try_from(cfg).map_err(|e| ConfigError::Serialize(e.to_string()))
}

/// Deserialises a merged table. The file's keys and types were checked already, so a failure here
/// is a value the base and the file only reject together; the message is toml's.
fn from_table(table: toml::Table, origin: &str) -> Result<TrainConfig, ConfigError> {
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::WrongType {
            at: origin.to_string(),
            key: String::new(),
            message: e.message().trim().to_string(),
        })
}

/// Deep merge: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}
