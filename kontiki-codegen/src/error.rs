//! The crate's error type.

use std::fmt;
use std::path::PathBuf;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why generation failed.
///
/// `Debug` is the same as `Display`, so `compile(..).unwrap()` in a build script prints the
/// rendered IDL diagnostics as they are.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A contract is invalid; the text is every rendered diagnostic.
    #[error("{0}")]
    Idl(#[source] kontiki_idl::Error),
    /// A template failed to render (a bug in kontiki-codegen).
    #[error("template `{name}` failed: {source:#}")]
    Template {
        /// The template.
        name: String,
        /// What minijinja reported.
        #[source]
        source: minijinja::Error,
    },
    /// An OpenAPI document could not be encoded.
    #[error("could not encode the OpenAPI document `{file}`: {source}")]
    OpenApi {
        /// The output file.
        file: String,
        /// What serde_json reported.
        #[source]
        source: serde_json::Error,
    },
    /// An AsyncAPI document could not be encoded.
    #[error("could not encode the AsyncAPI document `{file}`: {source}")]
    AsyncApi {
        /// The output file.
        file: String,
        /// What serde_json reported.
        #[source]
        source: serde_json::Error,
    },
    /// Two contracts declare the same package differently.
    #[error("package `{0}` is declared differently by two of the files given")]
    PackageConflict(String),
    /// A file could not be read or written.
    #[error("{action} `{}`: {source}", path.display())]
    Io {
        /// What was done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No service of that name in the file.
    #[error("no service `{name}` in the file (services: {})", if .known.is_empty() { "none".to_owned() } else { .known.join(", ") })]
    UnknownService {
        /// The name asked for.
        name: String,
        /// The services of the file.
        known: Vec<String>,
    },
    /// The service has no OpenAPI document of that version.
    #[error("service `{service}` has {}{}", match .asked { Some(v) => format!("no OpenAPI document for version `{v}`"), None => "several OpenAPI documents; pick one with --version".to_owned() }, if .versions.is_empty() { " (it has no versioned, documented route)".to_owned() } else { format!(" (versions: {})", .versions.join(", ")) })]
    UnknownVersion {
        /// The service.
        service: String,
        /// The version asked for.
        asked: Option<String>,
        /// The versions it has.
        versions: Vec<String>,
    },
    /// No output directory: neither `out_dir` nor `OUT_DIR` is set.
    #[error("no output directory: call `out_dir(..)` or run from a build script (OUT_DIR)")]
    NoOutDir,
    /// `--check` found files that differ from what would be generated.
    #[error("{} generated file{} out of date in {}: {}\nregenerate: run the same command without `--check`", stale.len(), if stale.len() == 1 { " is" } else { "s are" }, dir.display(), stale.join(", "))]
    Stale {
        /// The directory checked.
        dir: PathBuf,
        /// Files missing, different or extra.
        stale: Vec<String>,
    },
}

impl From<kontiki_idl::Error> for Error {
    fn from(e: kontiki_idl::Error) -> Self {
        Error::Idl(e)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
