//! One module per subcommand, and what they share.

pub(crate) mod asyncapi;
pub(crate) mod breaking;
pub(crate) mod check;
pub(crate) mod fmt;
pub(crate) mod generate;
pub(crate) mod lint;
pub(crate) mod lsp;
pub(crate) mod openapi;
pub(crate) mod python;

use std::io::IsTerminal;

use miette::{GraphicalReportHandler, GraphicalTheme};

/// How diagnostics are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum Format {
    /// Rendered with source lines and carets, on stderr.
    #[default]
    Human,
    /// A JSON array on stdout, one object per diagnostic:
    /// `{code, severity, message, file, line, col, end: {line, col}, hint}`.
    Json,
}

pub(crate) fn handler() -> GraphicalReportHandler {
    if std::io::stderr().is_terminal() {
        GraphicalReportHandler::new_themed(GraphicalTheme::unicode())
    } else {
        kontiki_idl::diagnostic::plain_handler()
    }
}

pub(crate) fn print_json(diags: &[kontiki_idl::JsonDiagnostic]) {
    match serde_json::to_string_pretty(diags) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot write JSON: {e}"),
    }
}

pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
