//! The error `load` and friends return: every diagnostic plus the sources they point into.

use std::fmt;

use miette::GraphicalReportHandler;

use crate::diagnostic::{Diagnostic, Severity, plain_handler, render_one};
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
    /// Diagnostics (sorted here) and the sources they point into.
    pub fn new(mut diagnostics: Vec<Diagnostic>, sources: SourceMap) -> Self {
        crate::diagnostic::sort(&mut diagnostics);
        Error {
            diagnostics,
            sources,
        }
    }

    /// The diagnostics, sorted by file and position.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// Every diagnostic in the machine-readable shape of `--format json`.
    pub fn to_json(&self) -> Vec<crate::diagnostic::JsonDiagnostic> {
        self.diagnostics
            .iter()
            .map(|d| crate::diagnostic::JsonDiagnostic::new(d, &self.sources))
            .collect()
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
        let count = |sev| {
            self.diagnostics
                .iter()
                .filter(|d| d.severity == sev)
                .count()
        };
        let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
        let n = self.diagnostics.len();
        if errors == n {
            out.push_str(&format!("{n} error{}\n", if n == 1 { "" } else { "s" }));
        } else {
            let others = n - errors - warnings;
            out.push_str(&format!(
                "{errors} error{}, {warnings} warning{}",
                if errors == 1 { "" } else { "s" },
                if warnings == 1 { "" } else { "s" },
            ));
            if others > 0 {
                out.push_str(&format!(
                    ", {others} note{}",
                    if others == 1 { "" } else { "s" }
                ));
            }
            out.push('\n');
        }
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
