//! The error `load` and friends return: every diagnostic plus the sources they point into.

use std::fmt;

use miette::GraphicalReportHandler;

use crate::diagnostic::{Diagnostic, plain_handler, render_one};
use crate::span::SourceMap;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The input is not a valid contract: every diagnostic found, sorted by position.
///
/// `Display` and `Debug` both render every diagnostic without colour (source line, caret,
/// message, hint, code), so `load(..).unwrap()` in a build script prints a readable report.
#[derive(Clone, PartialEq)]
pub struct Error {
    diagnostics: Vec<Diagnostic>,
    sources: SourceMap,
}

impl Error {
    pub(crate) fn new(diagnostics: Vec<Diagnostic>, sources: SourceMap) -> Self {
        Error {
            diagnostics,
            sources,
        }
    }

    /// The diagnostics, sorted by file and position.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// The files the diagnostics point into.
    pub fn sources(&self) -> &SourceMap {
        &self.sources
    }

    /// Renders every diagnostic with a given miette handler (for colour in a terminal).
    pub fn render_with(&self, handler: &GraphicalReportHandler) -> String {
        let mut out = String::new();
        for d in &self.diagnostics {
            out.push_str(&render_one(d, &self.sources, handler));
            out.push('\n');
        }
        let n = self.diagnostics.len();
        out.push_str(&format!("{n} error{}\n", if n == 1 { "" } else { "s" }));
        out
    }

    /// Renders every diagnostic without colour at a fixed width (what goldens contain).
    pub fn render(&self) -> String {
        self.render_with(&plain_handler())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::error::Error for Error {}
