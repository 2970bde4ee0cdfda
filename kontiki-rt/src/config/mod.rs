//! Service configuration: YAML files merged with Kontiki's rules, and the typed `kontiki.*` keys.
//!
//! A service is started with one or more YAML files (`--config base.yaml --config env.yaml`).
//! [`Config::load`] reads them in order and merges them the way Kontiki 2.3.2 does:
//!
//! * keys found only in the new file are added, mappings are merged recursively;
//! * a leaf defined again with the **same** value (lists compared as whole values) is accepted
//!   with a warning "`a.b.c` is defined twice with the same value";
//! * a leaf defined again with a **different** value, or a mapping against a scalar, is a
//!   [`ConfigError::MergeConflict`]: there is no override, a later file cannot change a value;
//! * an empty file is an empty mapping; a file whose top level is not a mapping is an error.
//!
//! Before merging, `${VAR}` and `${VAR:-default}` in string values are replaced from the
//! environment (Nameko's convention). When a whole value is one expression, the result is
//! read again as a plain YAML scalar, so `${PORT:-8080}` is the integer 8080 and
//! `${DEBUG:-false}` a boolean; inside a longer string the text is spliced in as is.
//! `$${` stands for a literal `${`. An unset variable without a default is an error.
//!
//! [`Settings::from_config`] then gives a typed, validated view of every `kontiki.*` key with
//! Kontiki's defaults, and [`Config::get`] / [`get_parameter`] read application keys.
//!
//! ```
//! use std::time::Duration;
//! use kontiki_rt::config::{Config, Settings, get_parameter};
//!
//! let config = Config::from_yaml_str(
//!     "service.yaml",
//!     "
//! kontiki:
//!   service_name: orders
//!   amqp:
//!     rpc:
//!       timeout: 2.5
//! app:
//!   cache:
//!     ttl_seconds: 30
//!   events: [orders.created, orders.cancelled]
//! ",
//! )?;
//!
//! let settings = Settings::from_config(&config)?;
//! assert_eq!(settings.service_name.as_deref(), Some("orders"));
//! assert_eq!(settings.amqp.rpc_timeout, Duration::from_millis(2500));
//! assert_eq!(settings.heartbeat.interval, Duration::from_secs(60)); // Kontiki's default
//!
//! let ttl: u64 = get_parameter(&config, "app.cache.ttl_seconds", 60)?;
//! assert_eq!(ttl, 30);
//! let size: u32 = config.get_or("app.cache.size", 1000)?;
//! assert_eq!(size, 1000);
//! assert_eq!(config.event_types("app.events")?, ["orders.created", "orders.cancelled"]);
//! # Ok::<(), kontiki_rt::config::ConfigError>(())
//! ```
//!
//! # Decisions worth knowing
//!
//! * The merged document is a [`serde_json::Value`]. YAML mapping keys that are not strings are
//!   converted to their text: `1` → `"1"`, `true` → `"true"`, `~` → `"null"`; a list or mapping
//!   used as a key is an error, and so are two keys of one mapping that become equal (`1` and
//!   `"1"`). YAML merge keys (`<<: *anchor`) are applied.
//! * Scalars follow YAML 1.2 (serde_norway): `yes`/`no`/`on`/`off` are strings, unlike PyYAML.
//!   `.inf` and `.nan` cannot be stored in JSON and are rejected with
//!   [`ConfigError::InvalidValue`].
//! * YAML tags: Nameko's `!env_var` is accepted and ignored (substitution happens anyway) and
//!   `!raw_env_var` substitutes without re-reading the result (it stays a string); any other
//!   tag is a [`ConfigError::InvalidValue`].
//! * Substitution applies to string values, quoted or not, never to keys. A variable set to the
//!   empty string takes the default in `${VAR:-default}` (shell semantics). A whole-value
//!   expression that gives the empty text stays an empty string (not null). Nameko's
//!   `${VAR:default}` form (single colon) is rejected with a hint.
//! * Dotted paths cannot reach keys that contain a dot, as in Kontiki.
//! * Reading a path through a value that is not a mapping (`a.b` when `a: 5`) is a
//!   [`ConfigError::WrongType`] from [`Config::get`], as Kontiki raises; a `null` anywhere on
//!   the path counts as missing.

mod env;
mod error;
mod load;
pub(crate) mod redact;
mod settings;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub use self::error::ConfigError;
pub use self::settings::{
    AmqpSettings, DocumentationSettings, HandlerSettings, HeartbeatSettings, HttpSettings,
    MetricsSettings, RegistrationSettings, Settings, ShutdownSettings, TlsSettings,
};

use self::load::Origins;

/// A merged configuration document.
///
/// Build one with [`Config::load`] (files), [`Config::from_yaml_str`] (text) or
/// [`Config::from_value`] (in code), then read it with [`Config::get`], the `use_config`
/// helpers ([`Config::event_types`], [`Config::duration`], [`Config::string`]) or
/// [`Settings::from_config`].
///
/// Its `Debug` output hides secrets as [`Config::redacted`] does.
#[derive(Clone, PartialEq)]
pub struct Config {
    /// Always a `Value::Object`.
    root: Value,
    files: Vec<PathBuf>,
    origins: Origins,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("files", &self.files)
            .field("root", &self.redacted())
            .finish_non_exhaustive()
    }
}

impl Config {
    /// An empty configuration: every key takes its default.
    pub fn empty() -> Config {
        Config {
            root: Value::Object(Map::new()),
            files: Vec::new(),
            origins: Origins::new(),
        }
    }

    /// Reads and merges YAML files in order, substituting variables from the process environment.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Io`] when a file cannot be read (or is not UTF-8), [`ConfigError::Yaml`]
    /// for a syntax error, [`ConfigError::NotAMapping`], [`ConfigError::UnsetEnvVar`],
    /// [`ConfigError::MergeConflict`], and [`ConfigError::InvalidValue`] for unsupported YAML
    /// (tags, list keys, `.inf`) or a malformed `${...}`.
    ///
    /// ```no_run
    /// # use kontiki_rt::config::Config;
    /// let config = Config::load(&["config/base.yaml", "config/prod.yaml"])?;
    /// # Ok::<(), kontiki_rt::config::ConfigError>(())
    /// ```
    pub fn load(paths: &[impl AsRef<Path>]) -> Result<Config, ConfigError> {
        Self::load_with_env(paths, process_env)
    }

    /// Like [`Config::load`], with `env` looking up environment variables (for tests).
    pub fn load_with_env(
        paths: &[impl AsRef<Path>],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut config = Config::empty();
        for path in paths {
            let path = path.as_ref();
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            config.merge_text(path, &text, &env)?;
        }
        Ok(config)
    }

    /// Parses one YAML document; `name` stands for the file in messages.
    ///
    /// Variables are substituted from the process environment.
    pub fn from_yaml_str(name: impl AsRef<Path>, text: &str) -> Result<Config, ConfigError> {
        Self::from_yaml_str_with_env(name, text, process_env)
    }

    /// Like [`Config::from_yaml_str`], with `env` looking up environment variables.
    ///
    /// ```
    /// # use kontiki_rt::config::Config;
    /// let env = |name: &str| (name == "PORT").then(|| "9000".to_owned());
    /// let config = Config::from_yaml_str_with_env("t.yaml", "port: ${PORT:-8080}", env)?;
    /// assert_eq!(config.get::<u16>("port")?, Some(9000));
    /// # Ok::<(), kontiki_rt::config::ConfigError>(())
    /// ```
    pub fn from_yaml_str_with_env(
        name: impl AsRef<Path>,
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut config = Config::empty();
        config.merge_text(name.as_ref(), text, &env)?;
        Ok(config)
    }

    /// Merges one more YAML document (named `name`) into this configuration, with the same rules
    /// as [`Config::load`]. Use it to add in-code layers after the files.
    pub fn merge_yaml_str(
        &mut self,
        name: impl AsRef<Path>,
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        self.merge_text(name.as_ref(), text, &env)
    }

    /// Wraps an in-code document, which must be a JSON object (`null` is an empty one).
    ///
    /// No substitution is done. [`Config::files`] is empty.
    ///
    /// ```
    /// # use kontiki_rt::config::Config;
    /// let config = Config::from_value(serde_json::json!({"app": {"limit": 3}}))?;
    /// assert_eq!(config.get_or("app.limit", 10)?, 3);
    /// # Ok::<(), kontiki_rt::config::ConfigError>(())
    /// ```
    pub fn from_value(value: Value) -> Result<Config, ConfigError> {
        let root = match value {
            Value::Object(root) => root,
            Value::Null => Map::new(),
            other => {
                return Err(ConfigError::NotAMapping {
                    file: None,
                    found: json_kind(&other),
                });
            }
        };
        Ok(Config {
            root: Value::Object(root),
            files: Vec::new(),
            origins: Origins::new(),
        })
    }

    fn merge_text(
        &mut self,
        name: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let document = load::parse_document(name, text, env)?;
        let index = self.files.len();
        self.files.push(name.to_path_buf());
        // Merge into copies so that a failed merge leaves `self` unchanged.
        let mut root = match &self.root {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        let mut origins = self.origins.clone();
        let merged = load::merge(
            &mut root,
            document,
            index,
            &self.files,
            &mut origins,
            &mut Vec::new(),
        );
        if let Err(err) = merged {
            self.files.pop();
            return Err(err);
        }
        self.root = Value::Object(root);
        self.origins = origins;
        Ok(())
    }

    /// The files merged into this configuration, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The whole merged document (always a JSON object).
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// The merged document with its secrets hidden, for printing (`--print-config`) and
    /// `Debug`: the password of every URL (`amqp://user:***@host`), and the whole value of
    /// every key whose name says it holds a secret (`password`, `passwd`, `secret`, `token`,
    /// `api_key`, `apikey`, `private_key`, `credentials`, in any case, as part of the name).
    pub fn redacted(&self) -> Value {
        redact_value(&self.root)
    }

    /// The raw value at a dotted path (`null` included), or `None` when it is missing or the
    /// path goes through a value that is not a mapping. `""` is the root.
    pub fn value(&self, path: &str) -> Option<&Value> {
        self.lookup_raw(path).ok().flatten()
    }

    /// The files that defined the value at `path` (several when an equal value was repeated, or
    /// for a mapping filled by several files). Empty for in-code configs and missing paths.
    pub fn defined_in(&self, path: &str) -> Vec<&Path> {
        let segments = split(path);
        self.files_of(&segments)
    }

    /// Reads the value at a dotted path as `T`.
    ///
    /// `Ok(None)` when the key is missing or `null`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::WrongType`] when the value does not deserialize as `T` (the serde error is
    /// its source) or when the path goes through a value that is not a mapping.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.lookup(path)? else {
            return Ok(None);
        };
        serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|source| ConfigError::WrongType {
                path: path.to_owned(),
                expected: format!("a value of type `{}`", short_type_name::<T>()),
                found: value.clone(),
                files: self.owned_files_of(path),
                source: Some(source),
            })
    }

    /// Reads the value at a dotted path as `T`, or `default` when it is missing or `null`.
    pub fn get_or<T: DeserializeOwned>(&self, path: &str, default: T) -> Result<T, ConfigError> {
        Ok(self.get(path)?.unwrap_or(default))
    }

    /// Reads the value at a dotted path as `T`; a missing key is a [`ConfigError::MissingKey`].
    pub fn require<T: DeserializeOwned>(&self, path: &str) -> Result<T, ConfigError> {
        self.get(path)?.ok_or_else(|| missing(path))
    }

    /// `use_config` for events: the value must be a non-empty string or a non-empty list of
    /// non-empty strings. A missing key is a [`ConfigError::MissingKey`].
    pub fn event_types(&self, path: &str) -> Result<Vec<String>, ConfigError> {
        const EXPECTED: &str = "a non-empty string or a non-empty list of non-empty strings";
        let value = self.lookup(path)?.ok_or_else(|| missing(path))?;
        let wrong = || self.wrong_type(path, EXPECTED, value);
        match value {
            Value::String(one) if !one.is_empty() => Ok(vec![one.clone()]),
            Value::Array(many) if !many.is_empty() => many
                .iter()
                .map(|item| match item {
                    Value::String(one) if !one.is_empty() => Ok(one.clone()),
                    _ => Err(wrong()),
                })
                .collect(),
            _ => Err(wrong()),
        }
    }

    /// `use_config` for intervals: an int or float number of seconds, not negative.
    /// A missing key is a [`ConfigError::MissingKey`].
    pub fn duration(&self, path: &str) -> Result<Duration, ConfigError> {
        let value = self.lookup(path)?.ok_or_else(|| missing(path))?;
        self.to_duration(path, value, false)
    }

    /// `use_config` for paths and cron expressions: the value must be a string.
    /// A missing key is a [`ConfigError::MissingKey`].
    pub fn string(&self, path: &str) -> Result<String, ConfigError> {
        let value = self.lookup(path)?.ok_or_else(|| missing(path))?;
        match value {
            Value::String(text) => Ok(text.clone()),
            other => Err(self.wrong_type(path, "a string", other)),
        }
    }

    // ----- internals shared with `settings` -----

    /// Walks a dotted path: `Ok(None)` when missing, null or under a null; an error when the
    /// path goes through a value that is neither a mapping nor null.
    fn lookup(&self, path: &str) -> Result<Option<&Value>, ConfigError> {
        Ok(self.lookup_raw(path)?.filter(|value| !value.is_null()))
    }

    /// Like [`Config::lookup`], but a null at the end of the path is returned.
    fn lookup_raw(&self, path: &str) -> Result<Option<&Value>, ConfigError> {
        let segments = split(path);
        let Some((first, rest)) = segments.split_first() else {
            return Ok(Some(&self.root));
        };
        let Value::Object(root) = &self.root else {
            return Ok(None);
        };
        let Some(mut current) = root.get(*first) else {
            return Ok(None);
        };
        for (depth, segment) in rest.iter().enumerate() {
            let map = match current {
                Value::Object(map) => map,
                Value::Null => return Ok(None),
                other => {
                    let prefix = segments[..=depth].join(".");
                    return Err(self.wrong_type(&prefix, "a mapping", other));
                }
            };
            let Some(next) = map.get(*segment) else {
                return Ok(None);
            };
            current = next;
        }
        Ok(Some(current))
    }

    fn files_of(&self, segments: &[&str]) -> Vec<&Path> {
        let key: Vec<String> = segments
            .iter()
            .map(|segment| (*segment).to_owned())
            .collect();
        self.origins
            .get(&key)
            .map(|found| {
                found
                    .iter()
                    .filter_map(|index| self.files.get(*index).map(PathBuf::as_path))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn owned_files_of(&self, path: &str) -> Vec<PathBuf> {
        self.files_of(&split(path))
            .into_iter()
            .map(Path::to_path_buf)
            .collect()
    }

    fn wrong_type(&self, path: &str, expected: &str, found: &Value) -> ConfigError {
        ConfigError::WrongType {
            path: path.to_owned(),
            expected: expected.to_owned(),
            found: found.clone(),
            files: self.owned_files_of(path),
            source: None,
        }
    }

    fn invalid(&self, path: &str, message: String) -> ConfigError {
        ConfigError::InvalidValue {
            path: path.to_owned(),
            message,
            files: self.owned_files_of(path),
        }
    }

    /// A number of seconds; `positive` also rejects zero.
    fn to_duration(
        &self,
        path: &str,
        value: &Value,
        positive: bool,
    ) -> Result<Duration, ConfigError> {
        let Value::Number(number) = value else {
            return Err(self.wrong_type(path, "a number of seconds", value));
        };
        let duration = if let Some(seconds) = number.as_u64() {
            Duration::from_secs(seconds)
        } else {
            let seconds = number.as_f64().unwrap_or(f64::NAN);
            if seconds < 0.0 {
                return Err(self.invalid(path, format!("must not be negative, found {number}")));
            }
            Duration::try_from_secs_f64(seconds).map_err(|_| {
                self.invalid(
                    path,
                    format!("is too large a number of seconds, found {number}"),
                )
            })?
        };
        if positive && duration.is_zero() {
            return Err(self.invalid(path, format!("must be greater than zero, found {number}")));
        }
        Ok(duration)
    }
}

/// Kontiki's `get_parameter(config, "a.b.c", default)`: the value at a dotted path, or `default`
/// when it is missing or `null` (logged at debug level).
///
/// ```
/// # use kontiki_rt::config::{Config, get_parameter};
/// let config = Config::from_yaml_str("app.yaml", "app: {cache: {ttl_seconds: 5}}")?;
/// assert_eq!(get_parameter(&config, "app.cache.ttl_seconds", 60_u64)?, 5);
/// assert_eq!(get_parameter(&config, "app.cache.size", 100_u32)?, 100);
/// # Ok::<(), kontiki_rt::config::ConfigError>(())
/// ```
pub fn get_parameter<T: DeserializeOwned>(
    config: &Config,
    path: &str,
    default: T,
) -> Result<T, ConfigError> {
    match config.get(path)? {
        Some(value) => Ok(value),
        None => {
            tracing::debug!(path, "`{path}` is not configured, using the default");
            Ok(default)
        }
    }
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn split(path: &str) -> Vec<&str> {
    if path.is_empty() {
        Vec::new()
    } else {
        path.split('.').collect()
    }
}

fn missing(path: &str) -> ConfigError {
    ConfigError::MissingKey {
        path: path.to_owned(),
        condition: None,
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// `alloc::vec::Vec<alloc::string::String>` → `Vec<String>`.
fn short_type_name<T>() -> String {
    let full = std::any::type_name::<T>();
    let mut out = String::with_capacity(full.len());
    let mut segment_start = 0;
    for (index, c) in full.char_indices() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            continue;
        }
        out.push_str(last_segment(&full[segment_start..index]));
        out.push(c);
        segment_start = index + c.len_utf8();
    }
    out.push_str(last_segment(&full[segment_start..]));
    out
}

fn last_segment(path: &str) -> &str {
    path.rsplit("::").next().unwrap_or(path)
}

impl Default for Config {
    fn default() -> Self {
        Config::empty()
    }
}

/// Whether a config key names a secret whose whole value must not be shown.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "private_key",
        "credentials",
    ]
    .iter()
    .any(|s| key.contains(s))
}

fn redact_value(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) && !v.is_null() {
                        Value::String("***".to_owned())
                    } else {
                        redact_value(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_value).collect()),
        Value::String(s) if s.contains("://") => Value::String(redact::redact_url(s)),
        other => other.clone(),
    }
}
