#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod ast;
pub mod breaking;
mod check;
pub mod diagnostic;
mod error;
pub mod fmt;
mod lex;
pub mod lint;
mod load;
pub mod model;
mod parser;
pub mod span;

use std::path::{Path, PathBuf};

pub use check::names::{RESERVED_HEADERS, SESSION_OPEN_RPC};
pub use diagnostic::{Code, Diagnostic, JsonDiagnostic, Note, Severity};
pub use error::{Error, Result};
pub use model::Model;
pub use span::{FileId, SourceMap, Span};

/// Parses text (no checks, no imports): the syntax tree, or the syntax error.
pub fn parse_str(name: &str, text: &str) -> Result<ast::File> {
    load::parse_text(name, text)
}

/// Reads and parses one file (no checks, no imports).
pub fn parse_file(path: impl AsRef<Path>) -> Result<ast::File> {
    let path = path.as_ref();
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load::parse_text(&name, &text),
        Err(e) => Err(Error::new(
            vec![Diagnostic::global(
                Code::Io,
                format!("cannot read `{name}`: {e}"),
            )],
            SourceMap::new(),
        )),
    }
}

/// Loads a file and everything it imports, checks it all, and returns the checked model,
/// or every diagnostic.
///
/// ```no_run
/// let model = kontiki_idl::load("idl/compute.kontiki").unwrap();
/// for service in &model.root_package().unwrap().services {
///     println!("{} ({})", service.name, service.wire_name);
/// }
/// ```
pub fn load(path: impl AsRef<Path>) -> Result<Model> {
    load::load_path(path.as_ref(), &[])
}

/// Like [`load`], and an import not found next to the importing file is looked up in each of
/// `include_dirs`, in order (so several repositories can share contracts).
pub fn load_with_includes(path: impl AsRef<Path>, include_dirs: &[PathBuf]) -> Result<Model> {
    load::load_path(path.as_ref(), include_dirs)
}

/// Like [`load`], for text already in memory; `name` is used in diagnostics, and imports are
/// read relative to its directory.
pub fn load_str(name: &str, text: &str) -> Result<Model> {
    load::load_text(name, text, &[])
}

/// Like [`load_str`], with include directories as in [`load_with_includes`].
pub fn load_str_with_includes(name: &str, text: &str, include_dirs: &[PathBuf]) -> Result<Model> {
    load::load_text(name, text, include_dirs)
}

/// Like [`load_with_includes`], and also returns the files read (the root first), which the
/// model's spans point into.
pub fn load_with_sources(
    path: impl AsRef<Path>,
    include_dirs: &[PathBuf],
) -> Result<(Model, SourceMap)> {
    load::load_path_with_sources(path.as_ref(), include_dirs)
}

/// Like [`load_str_with_includes`], and also returns the files read (the root first).
pub fn load_str_with_sources(
    name: &str,
    text: &str,
    include_dirs: &[PathBuf],
) -> Result<(Model, SourceMap)> {
    load::load_text_with_sources(name, text, include_dirs)
}
