//! The checker: one pass per concern over parsed files, each adding to one list of
//! diagnostics, and the lowering to the [`Model`](crate::model::Model).
//!
//! * [`names`]: duplicates, case collisions, reserved names, AMQP topic words;
//! * [`resolve`]: type, error and event references, options, defaults, alias cycles;
//! * [`http`]: path templates and parameters, request bodies;
//! * [`schedule`]: intervals and cron expressions.
//!
//! Import cycles and missing imports are found while loading (`load.rs`).

pub(crate) mod http;
pub(crate) mod names;
mod options;
pub(crate) mod resolve;
pub(crate) mod schedule;

use crate::ast;
use crate::diagnostic::Diagnostic;
use crate::model::Model;
use crate::span::{SourceMap, Span};

/// One parsed file with its imports resolved to other units.
#[derive(Debug)]
pub(crate) struct Unit<'a> {
    /// The file as named in diagnostics.
    pub(crate) name: String,
    /// Its syntax tree.
    pub(crate) ast: &'a ast::File,
    /// Indices of the units it imports (all before it in the list).
    pub(crate) imports: Vec<usize>,
    /// The sources, to quote types in messages.
    pub(crate) sources: &'a SourceMap,
}

impl Unit<'_> {
    /// The text a span covers.
    pub(crate) fn source_slice(&self, span: Span) -> Option<String> {
        let s = self.sources.slice(span);
        (!s.is_empty()).then(|| s.to_string())
    }
}

/// Runs every pass. `units` are ordered imports first; the root is last.
pub(crate) fn check(units: &[Unit<'_>], diags: &mut Vec<Diagnostic>) -> Model {
    names::check(units, diags);
    for unit in units {
        http::check(unit.ast, diags);
        schedule::check(unit.ast, diags);
    }
    let packages = resolve::lower(units, diags);
    Model {
        root: units
            .last()
            .map(|u| u.ast.package.name.clone())
            .unwrap_or_default(),
        packages,
    }
}
