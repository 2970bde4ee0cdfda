//! Reading one YAML document into JSON (with `${VAR}` substitution) and merging documents.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use serde_norway::Value as Yaml;

use super::ConfigError;
use super::env::{self, SubstError, Substituted};

/// For each node (by key path), the indices of the files that defined it, in order.
pub(super) type Origins = BTreeMap<Vec<String>, Vec<usize>>;

/// The environment lookup used for substitution.
pub(super) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Parses one file's text into a JSON mapping, substituting environment variables.
pub(super) fn parse_document(
    file: &Path,
    text: &str,
    env: Env<'_>,
) -> Result<Map<String, Value>, ConfigError> {
    let mut yaml: Yaml =
        serde_norway::from_str(text).map_err(|err| ConfigError::yaml(file, err))?;
    yaml.apply_merge()
        .map_err(|err| ConfigError::yaml(file, err))?;
    let yaml = match yaml {
        Yaml::Null => return Ok(Map::new()),
        Yaml::Mapping(mapping) => mapping,
        other => {
            return Err(ConfigError::NotAMapping {
                file: Some(file.to_path_buf()),
                found: kind(&other),
            });
        }
    };
    let converter = Converter { file, env };
    converter.mapping(yaml, &mut Vec::new())
}

/// "a list", "a string", ... for messages.
fn kind(value: &Yaml) -> &'static str {
    match value {
        Yaml::Null => "null",
        Yaml::Bool(_) => "a boolean",
        Yaml::Number(_) => "a number",
        Yaml::String(_) => "a string",
        Yaml::Sequence(_) => "a list",
        Yaml::Mapping(_) => "a mapping",
        Yaml::Tagged(_) => "a tagged value",
    }
}

/// Renders key path segments as a dotted path; list indices (`[0]`) attach without a dot.
pub(super) fn dotted(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if !out.is_empty() && !segment.starts_with('[') {
            out.push('.');
        }
        out.push_str(segment);
    }
    out
}

/// Converts YAML values of one file to JSON.
struct Converter<'a> {
    file: &'a Path,
    env: Env<'a>,
}

impl Converter<'_> {
    fn invalid(&self, path: &[String], message: String) -> ConfigError {
        ConfigError::InvalidValue {
            path: dotted(path),
            message,
            files: vec![self.file.to_path_buf()],
        }
    }

    fn mapping(
        &self,
        mapping: serde_norway::Mapping,
        path: &mut Vec<String>,
    ) -> Result<Map<String, Value>, ConfigError> {
        let mut out = Map::new();
        for (key, value) in mapping {
            let key = self.key(key, path)?;
            if out.contains_key(&key) {
                return Err(self.invalid(
                    path,
                    format!("has the key `{key}` twice once keys are converted to strings"),
                ));
            }
            path.push(key.clone());
            let value = self.value(value, path);
            path.pop();
            out.insert(key, value?);
        }
        Ok(out)
    }

    /// Mapping keys become strings: `1` → "1", `true` → "true", `~` → "null".
    fn key(&self, key: Yaml, path: &[String]) -> Result<String, ConfigError> {
        match key {
            Yaml::String(key) => Ok(key),
            Yaml::Number(number) => Ok(number.to_string()),
            Yaml::Bool(flag) => Ok(flag.to_string()),
            Yaml::Null => Ok("null".to_owned()),
            other => Err(self.invalid(
                path,
                format!(
                    "has a key that is {}; only scalar keys are supported",
                    kind(&other)
                ),
            )),
        }
    }

    fn value(&self, value: Yaml, path: &mut Vec<String>) -> Result<Value, ConfigError> {
        match value {
            Yaml::Null => Ok(Value::Null),
            Yaml::Bool(flag) => Ok(Value::Bool(flag)),
            Yaml::Number(number) => self.number(&number, path),
            Yaml::String(text) => self.string(text, path, true),
            Yaml::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (index, item) in items.into_iter().enumerate() {
                    path.push(format!("[{index}]"));
                    let item = self.value(item, path);
                    path.pop();
                    out.push(item?);
                }
                Ok(Value::Array(out))
            }
            Yaml::Mapping(mapping) => self.mapping(mapping, path).map(Value::Object),
            Yaml::Tagged(tagged) => {
                // Nameko's tags: `!env_var` is what we do anyway, `!raw_env_var` keeps a string.
                if tagged.tag == "env_var" {
                    self.value(tagged.value, path)
                } else if tagged.tag == "raw_env_var" {
                    match tagged.value {
                        Yaml::String(text) => self.string(text, path, false),
                        other => self.value(other, path),
                    }
                } else {
                    Err(self.invalid(
                        path,
                        format!(
                            "uses the YAML tag `{}`, which is not supported (only `!env_var` and `!raw_env_var` are)",
                            tagged.tag
                        ),
                    ))
                }
            }
        }
    }

    fn number(&self, number: &serde_norway::Number, path: &[String]) -> Result<Value, ConfigError> {
        if let Some(unsigned) = number.as_u64() {
            return Ok(Value::from(unsigned));
        }
        if let Some(signed) = number.as_i64() {
            return Ok(Value::from(signed));
        }
        number
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| self.invalid(path, format!("must be a finite number, found {number}")))
    }

    /// Substitutes `${...}` in a string scalar; `reread` re-reads a whole-scalar expression.
    fn string(&self, text: String, path: &[String], reread: bool) -> Result<Value, ConfigError> {
        match env::substitute(&text, self.env) {
            Ok(Substituted::Unchanged) => Ok(Value::String(text)),
            Ok(Substituted::Text(text)) => Ok(Value::String(text)),
            Ok(Substituted::Whole(text)) if !reread => Ok(Value::String(text)),
            Ok(Substituted::Whole(text)) => match env::plain_scalar(&text) {
                Yaml::Number(number) => self.number(&number, path),
                Yaml::Bool(flag) => Ok(Value::Bool(flag)),
                Yaml::Null => Ok(Value::Null),
                _ => Ok(Value::String(text)),
            },
            Err(SubstError::Unset(var)) => Err(ConfigError::UnsetEnvVar {
                var,
                file: self.file.to_path_buf(),
                path: dotted(path),
            }),
            Err(SubstError::Malformed(message)) => Err(self.invalid(path, message)),
        }
    }
}

/// Merges `new` (from file number `file`) into `base` with Kontiki's rules: new keys are
/// added, mappings merge recursively, equal leaves warn, anything else is a conflict.
pub(super) fn merge(
    base: &mut Map<String, Value>,
    new: Map<String, Value>,
    file: usize,
    files: &[PathBuf],
    origins: &mut Origins,
    path: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for (key, value) in new {
        path.push(key.clone());
        let result = merge_entry(base, &key, value, file, files, origins, path);
        path.pop();
        if let Some(value) = result? {
            base.insert(key, value);
        }
    }
    Ok(())
}

/// Merges one entry; returns the value to insert when the key is new.
fn merge_entry(
    base: &mut Map<String, Value>,
    key: &str,
    value: Value,
    file: usize,
    files: &[PathBuf],
    origins: &mut Origins,
    path: &mut Vec<String>,
) -> Result<Option<Value>, ConfigError> {
    let Some(existing) = base.get_mut(key) else {
        record(&value, file, origins, path);
        return Ok(Some(value));
    };
    match (existing, value) {
        (Value::Object(existing), Value::Object(value)) => {
            add_origin(origins, path, file);
            merge(existing, value, file, files, origins, path)?;
        }
        (existing, value) if same_value(existing, &value) => {
            let first = first_file(origins, path, files);
            let dotted = dotted(path);
            tracing::warn!(
                path = %dotted,
                first_file = %first.display(),
                second_file = %file_name(files, file).display(),
                "`{dotted}` is defined twice with the same value (in {} and {})",
                first.display(),
                file_name(files, file).display(),
            );
            add_origin(origins, path, file);
        }
        (existing, value) => {
            return Err(ConfigError::MergeConflict {
                path: dotted(path),
                first_file: first_file(origins, path, files).to_path_buf(),
                first_value: Box::new(existing.clone()),
                second_file: file_name(files, file).to_path_buf(),
                second_value: Box::new(value),
            });
        }
    }
    Ok(None)
}

fn file_name(files: &[PathBuf], index: usize) -> &Path {
    files.get(index).map_or(Path::new("?"), PathBuf::as_path)
}

fn first_file<'a>(origins: &Origins, path: &[String], files: &'a [PathBuf]) -> &'a Path {
    let index = origins
        .get(path)
        .and_then(|found| found.first())
        .copied()
        .unwrap_or(0);
    file_name(files, index)
}

fn add_origin(origins: &mut Origins, path: &[String], file: usize) {
    let found = origins.entry(path.to_vec()).or_default();
    if !found.contains(&file) {
        found.push(file);
    }
}

/// Records `file` as the origin of `value` and of everything inside it (mappings only).
pub(super) fn record(value: &Value, file: usize, origins: &mut Origins, path: &mut Vec<String>) {
    add_origin(origins, path, file);
    if let Value::Object(map) = value {
        for (key, child) in map {
            path.push(key.clone());
            record(child, file, origins, path);
            path.pop();
        }
    }
}

/// Equality as Python sees it for config values: `1 == 1.0`, lists and mappings compared deeply.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => {
            match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
                (Some(a), Some(b), _, _) => a == b,
                (_, _, Some(a), Some(b)) => a == b,
                _ => a.as_f64() == b.as_f64(),
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_value(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, a)| b.get(key).is_some_and(|b| same_value(a, b)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_like_python() {
        assert!(same_value(&Value::from(1), &Value::from(1.0)));
        assert!(!same_value(&Value::from(1), &Value::from(1.5)));
        assert!(same_value(&Value::from(u64::MAX), &Value::from(u64::MAX)));
        assert!(!same_value(&Value::from(true), &Value::from(1)));
        assert!(same_value(
            &serde_json::json!([1, {"a": 2.0}]),
            &serde_json::json!([1.0, {"a": 2}])
        ));
    }

    #[test]
    fn dotted_paths() {
        let path = [
            "a".to_owned(),
            "b".to_owned(),
            "[2]".to_owned(),
            "c".to_owned(),
        ];
        assert_eq!(dotted(&path), "a.b[2].c");
        assert_eq!(dotted(&[]), "");
    }
}
