//! [`ConfigError`]: everything that can go wrong while loading or reading configuration.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// An error raised while loading, merging or reading configuration.
///
/// Every message is one sentence that starts with `config:` and names the dotted path and,
/// when known, the file(s) the value came from, e.g.
/// ``config: `kontiki.amqp.rpc.timeout` must be a number of seconds, found "ten" (in env.yaml)``.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A configuration file could not be read.
    #[error("config: cannot read {}: {source}", path.display())]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A configuration file is not valid YAML.
    #[error("config: invalid YAML in {}{}: {message}", path.display(), Location(*line, *column))]
    Yaml {
        /// The file (or the name given to [`Config::from_yaml_str`](super::Config::from_yaml_str)).
        path: PathBuf,
        /// 1-based line of the problem, when the parser reports one.
        line: Option<usize>,
        /// 1-based column of the problem, when the parser reports one.
        column: Option<usize>,
        /// The parser's message, without its location.
        message: String,
        /// The parser's error.
        #[source]
        source: serde_norway::Error,
    },

    /// The top level of a file (or of an in-code value) is not a mapping.
    #[error("config: the top level of {} must be a mapping, found {found}", Origin(file.as_deref()))]
    NotAMapping {
        /// The file, or `None` for [`Config::from_value`](super::Config::from_value).
        file: Option<PathBuf>,
        /// What was found instead: "a list", "a string", ...
        found: &'static str,
    },

    /// Two files define the same key with different values (or a mapping against a scalar).
    ///
    /// Kontiki has no override: a later file cannot change a value set by an earlier one.
    #[error(
        "config: `{path}` is defined twice with different values, {} in {} and {} in {} \
         (a later file cannot override an earlier one)",
        Shown(first_value), first_file.display(), Shown(second_value), second_file.display()
    )]
    MergeConflict {
        /// Dotted path of the key.
        path: String,
        /// The file the first value came from.
        first_file: PathBuf,
        /// The first value.
        first_value: Box<Value>,
        /// The file that tried to define it again.
        second_file: PathBuf,
        /// The second value.
        second_value: Box<Value>,
    },

    /// A `${VAR}` expression names a variable that is not set and has no default.
    #[error(
        "config: environment variable `{var}` is not set and has no default (used by `{path}` in {})",
        file.display()
    )]
    UnsetEnvVar {
        /// The variable name.
        var: String,
        /// The file containing the expression.
        file: PathBuf,
        /// Dotted path of the value containing the expression.
        path: String,
    },

    /// A value has the wrong type.
    #[error(
        "config: `{path}` must be {expected}, found {}{}",
        Shown(found),
        InFiles(files)
    )]
    WrongType {
        /// Dotted path of the value.
        path: String,
        /// What was expected, e.g. "a number of seconds".
        expected: String,
        /// The value found.
        found: Value,
        /// The files the value came from (empty when unknown).
        files: Vec<PathBuf>,
        /// The deserialization error, for [`Config::get`](super::Config::get).
        #[source]
        source: Option<serde_json::Error>,
    },

    /// A value has the right type but is not acceptable (negative interval, contradicting keys, ...).
    #[error("config: `{path}` {message}{}", InFiles(files))]
    InvalidValue {
        /// Dotted path of the value.
        path: String,
        /// What is wrong, as the end of a sentence, e.g. "must not be negative, found -5".
        message: String,
        /// The files the value came from (empty when unknown).
        files: Vec<PathBuf>,
    },

    /// A required key is missing.
    #[error("config: `{path}` is required {}", condition.as_deref().unwrap_or("but not set"))]
    MissingKey {
        /// Dotted path of the key.
        path: String,
        /// Why it is required, e.g. "when `kontiki.amqp.tls.enabled` is true"; `None` when always.
        condition: Option<String>,
    },
}

impl ConfigError {
    /// The dotted configuration path the error is about, when there is one.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::MergeConflict { path, .. }
            | Self::UnsetEnvVar { path, .. }
            | Self::WrongType { path, .. }
            | Self::InvalidValue { path, .. }
            | Self::MissingKey { path, .. } => Some(path),
            Self::Io { .. } | Self::Yaml { .. } | Self::NotAMapping { .. } => None,
        }
    }

    /// Builds a [`ConfigError::Yaml`] from a parser error, splitting off its location.
    pub(super) fn yaml(path: &Path, source: serde_norway::Error) -> Self {
        let location = source.location();
        Self::Yaml {
            path: path.to_path_buf(),
            line: location.as_ref().map(serde_norway::Location::line),
            column: location.as_ref().map(serde_norway::Location::column),
            message: strip_locations(&source.to_string()),
            source,
        }
    }
}

/// Removes every " at line N column M" (and " at position N") from a parser message.
fn strip_locations(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(" at ") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 4..];
        match location_len(after) {
            Some(len) => rest = &after[len..],
            None => {
                out.push_str(" at ");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Length of a leading "line N column M" or "position N", if `text` starts with one.
fn location_len(text: &str) -> Option<usize> {
    fn digits(text: &str) -> usize {
        text.bytes().take_while(u8::is_ascii_digit).count()
    }
    if let Some(after_line) = text.strip_prefix("line ") {
        let line = digits(after_line);
        let after = after_line[line..].strip_prefix(" column ")?;
        let column = digits(after);
        (line > 0 && column > 0).then(|| text.len() - after.len() + column)
    } else {
        let after = text.strip_prefix("position ")?;
        let index = digits(after);
        (index > 0).then(|| "position ".len() + index)
    }
}

/// Formats " at line L, column C" when a location is known.
struct Location(Option<usize>, Option<usize>);

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(line), Some(column)) => write!(f, " at line {line}, column {column}"),
            (Some(line), None) => write!(f, " at line {line}"),
            _ => Ok(()),
        }
    }
}

/// Formats "env.yaml" or "the configuration".
struct Origin<'a>(Option<&'a Path>);

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(path) => write!(f, "{}", path.display()),
            None => f.write_str("the configuration"),
        }
    }
}

/// Formats " (in a.yaml, b.yaml)", or nothing when no file is known.
struct InFiles<'a>(&'a [PathBuf]);

impl fmt::Display for InFiles<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((first, rest)) = self.0.split_first() else {
            return Ok(());
        };
        write!(f, " (in {}", first.display())?;
        for file in rest {
            write!(f, ", {}", file.display())?;
        }
        f.write_str(")")
    }
}

/// Longest rendering of a value in a message, in characters.
const SHOWN_MAX_CHARS: usize = 80;

/// Formats a value as compact JSON, cut at [`SHOWN_MAX_CHARS`].
pub(super) struct Shown<'a>(pub(super) &'a Value);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        match text.char_indices().nth(SHOWN_MAX_CHARS) {
            Some((cut, _)) => write!(f, "{}…", &text[..cut]),
            None => f.write_str(&text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_parser_locations() {
        assert_eq!(
            strip_locations(
                "did not find expected ',' or ']' at line 2 column 2, while parsing a flow sequence at line 1 column 4"
            ),
            "did not find expected ',' or ']', while parsing a flow sequence"
        );
        assert_eq!(strip_locations("bad at position 7"), "bad");
        assert_eq!(strip_locations("look at this"), "look at this");
        assert_eq!(strip_locations("at line x"), "at line x");
    }

    #[test]
    fn shown_values_are_cut() {
        let long = Value::String("x".repeat(200));
        let shown = Shown(&long).to_string();
        assert_eq!(shown.chars().count(), SHOWN_MAX_CHARS + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(Shown(&Value::from("ten")).to_string(), "\"ten\"");
    }
}
