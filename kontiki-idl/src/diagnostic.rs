//! Diagnostics: what is wrong, where, and how to fix it; rendered with miette.

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};

use crate::span::{SourceMap, Span};

/// The width goldens and `Debug` output are rendered at.
pub const RENDER_WIDTH: usize = 100;

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident => $text:literal,)*) => {
        /// A stable diagnostic code, such as `kontiki::idl::unknown_type`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            /// The code as text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }

            /// Every code.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];
        }
    };
}

codes! {
    /// A file could not be read.
    Io => "kontiki::idl::io",
    /// The text does not follow the grammar.
    Syntax => "kontiki::idl::syntax",
    /// An imported file does not exist.
    MissingImport => "kontiki::idl::missing_import",
    /// Files import each other in a cycle.
    ImportCycle => "kontiki::idl::import_cycle",
    /// Two declarations share a name.
    Duplicate => "kontiki::idl::duplicate",
    /// Two names become the same after case conversion (`getUser`, `get_user`).
    CaseCollision => "kontiki::idl::case_collision",
    /// A name Kontiki reserves for itself.
    ReservedName => "kontiki::idl::reserved_name",
    /// A type name that is neither built in nor declared.
    UnknownType => "kontiki::idl::unknown_type",
    /// A qualifier that names no imported package.
    UnknownPackage => "kontiki::idl::unknown_package",
    /// A map key type other than `string`.
    MapKeyNotString => "kontiki::idl::map_key_not_string",
    /// An error code that is not declared.
    UnknownError => "kontiki::idl::unknown_error",
    /// An event type used but never declared.
    UnknownEvent => "kontiki::idl::unknown_event",
    /// An event type or service name that is not a valid AMQP topic word.
    InvalidTopic => "kontiki::idl::invalid_topic",
    /// A path parameter and its declaration do not match.
    PathParam => "kontiki::idl::path_param",
    /// A request body on a method that has none (GET, DELETE, HEAD, OPTIONS).
    BodyNotAllowed => "kontiki::idl::body_not_allowed",
    /// An HTTP path or status that is not valid.
    InvalidHttp => "kontiki::idl::invalid_http",
    /// A cron expression that is not valid.
    InvalidCron => "kontiki::idl::invalid_cron",
    /// An interval that is not valid.
    InvalidInterval => "kontiki::idl::invalid_interval",
    /// An option or property that is unknown for its item.
    UnknownOption => "kontiki::idl::unknown_option",
    /// An option or property with a wrong value.
    InvalidOption => "kontiki::idl::invalid_option",
    /// A default value that does not fit its type.
    InvalidDefault => "kontiki::idl::invalid_default",
    /// A type alias that refers to itself.
    AliasCycle => "kontiki::idl::alias_cycle",
    /// Lint: a name not in the case its kind uses.
    LintNaming => "kontiki::lint::naming",
    /// Lint: a public declaration without a `///` doc comment.
    LintMissingDocs => "kontiki::lint::missing-docs",
    /// Lint: an import nothing in the file uses.
    LintUnusedImport => "kontiki::lint::unused-import",
    /// Lint: a type nothing in the file uses.
    LintUnusedType => "kontiki::lint::unused-type",
    /// Lint: an error code no method raises.
    LintUnusedError => "kontiki::lint::unused-error",
    /// Lint: an HTTP route without `version`.
    LintUnversionedRoute => "kontiki::lint::unversioned-route",
    /// Lint: a cron task without `time_zone`.
    LintCronTimeZone => "kontiki::lint::cron-time-zone",
    /// Lint: a lint configuration or `kontiki:allow` naming no rule.
    LintConfig => "kontiki::lint::config",
    /// Breaking: a change a running caller or consumer (Python Kontiki, an old Rust client)
    /// sees on the wire.
    BreakingWire => "kontiki::breaking::wire",
    /// Breaking: a change that stops Rust code using the generated trait or client compiling.
    BreakingSource => "kontiki::breaking::source",
}

impl Code {
    /// For a lint code, the rule id (`missing-docs`); `None` for a checker code.
    pub fn lint_rule(self) -> Option<&'static str> {
        self.as_str().strip_prefix("kontiki::lint::")
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secondary place a diagnostic points at ("first declared here").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Where.
    pub span: Span,
    /// What it is.
    pub text: String,
}

/// One error found in the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Diagnostic {
    /// Stable code.
    pub code: Code,
    /// What is wrong, lowercase, names in backticks.
    pub message: String,
    /// Where, if anywhere (a file that cannot be read has no span).
    pub span: Option<Span>,
    /// Text under the caret.
    pub label: Option<String>,
    /// How to fix it, when we can guess.
    pub help: Option<String>,
    /// Other places involved.
    pub notes: Vec<Note>,
    /// How serious: checker diagnostics are errors; lint rules choose.
    pub severity: Severity,
}

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Shown, never fails a command.
    Info,
    /// Fails `lint` only when asked (`--deny-warnings`).
    Warning,
    /// Fails the command.
    #[default]
    Error,
}

impl Severity {
    /// `info`, `warning` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One position in a file, 1-based, columns in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

/// The machine-readable form of a [`Diagnostic`] (`--format json`): one shape for every
/// subcommand. `file`, `line`, `col` and `end` are `null` for a diagnostic without a place.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JsonDiagnostic {
    /// Stable code, such as `kontiki::idl::unknown_type` or `kontiki::lint::missing-docs`.
    pub code: String,
    /// `error`, `warning` or `info`.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// The file, as named on the command line or in an import.
    pub file: Option<String>,
    /// Line of the start, from 1.
    pub line: Option<usize>,
    /// Column of the start, from 1.
    pub col: Option<usize>,
    /// Where it ends (exclusive).
    pub end: Option<Position>,
    /// How to fix it, when known.
    pub hint: Option<String>,
}

impl JsonDiagnostic {
    /// The JSON view of `diag`, positions resolved in `sources`.
    pub fn new(diag: &Diagnostic, sources: &SourceMap) -> Self {
        let place = diag.span.and_then(|span| {
            let file = sources.get(span.file)?;
            let pos = |offset: u32| {
                let offset = (offset as usize).min(file.text.len());
                let before = file.text.get(..offset).unwrap_or("");
                let line = before.matches('\n').count() + 1;
                let line_start = before.rfind('\n').map_or(0, |p| p + 1);
                let col = before.get(line_start..).map_or(0, |t| t.chars().count()) + 1;
                Position { line, col }
            };
            Some((file.name.clone(), pos(span.start), pos(span.end)))
        });
        JsonDiagnostic {
            code: diag.code.as_str().to_owned(),
            severity: diag.severity,
            message: diag.message.clone(),
            file: place.as_ref().map(|p| p.0.clone()),
            line: place.as_ref().map(|p| p.1.line),
            col: place.as_ref().map(|p| p.1.col),
            end: place.as_ref().map(|p| p.2),
            hint: diag.help.clone(),
        }
    }
}

impl Diagnostic {
    /// A diagnostic at `span`.
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            span: Some(span),
            label: None,
            help: None,
            notes: Vec::new(),
            severity: Severity::Error,
        }
    }

    /// A diagnostic without a place.
    pub fn global(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            span: None,
            label: None,
            help: None,
            notes: Vec::new(),
            severity: Severity::Error,
        }
    }

    /// Sets the label under the caret.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Sets the severity.
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// Sets the hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets the hint if there is one.
    pub fn with_help_opt(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    /// Adds a secondary place.
    pub fn with_note(mut self, span: Span, text: impl Into<String>) -> Self {
        self.notes.push(Note {
            span,
            text: text.into(),
        });
        self
    }

    /// Renders this diagnostic without colour at [`RENDER_WIDTH`].
    pub fn render(&self, sources: &SourceMap) -> String {
        render_one(self, sources, &plain_handler())
    }
}

/// Sorts diagnostics by file, position and code, and drops exact repeats.
pub fn sort(diags: &mut Vec<Diagnostic>) {
    diags.sort_by(|a, b| {
        let key = |d: &Diagnostic| d.span.map(|s| (s.file, s.start, s.end));
        key(a)
            .cmp(&key(b))
            .then(a.code.cmp(&b.code))
            .then(a.message.cmp(&b.message))
    });
    diags.dedup();
}

/// "did you mean `x`?" for the closest candidate, if one is close enough.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        if c == name {
            continue;
        }
        let score = strsim::jaro_winkler(&lower, &c.to_ascii_lowercase());
        if score >= 0.8 && best.is_none_or(|(s, b)| score > s || (score == s && c < b)) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

/// The handler goldens, `Debug` and build scripts use: unicode, no colour, fixed width.
pub fn plain_handler() -> GraphicalReportHandler {
    GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(RENDER_WIDTH)
        .with_links(false)
}

/// Renders one diagnostic with a given handler.
pub fn render_one(
    diag: &Diagnostic,
    sources: &SourceMap,
    handler: &GraphicalReportHandler,
) -> String {
    let report = Report::new(diag, sources);
    let mut out = String::new();
    if handler.render_report(&mut out, &report).is_err() {
        // Rendering into a String only fails if miette itself fails; fall back to one line.
        out = format!("error[{}]: {}\n", diag.code, diag.message);
    }
    out
}

/// The miette view of a [`Diagnostic`]: the file it points into and its labels.
#[derive(Debug)]
struct Report {
    code: Code,
    severity: Severity,
    message: String,
    source: Option<NamedSource<String>>,
    labels: Vec<LabeledSpan>,
    help: Option<String>,
}

impl Report {
    fn new(diag: &Diagnostic, sources: &SourceMap) -> Self {
        let file = diag.span.and_then(|s| sources.get(s.file));
        let source =
            file.map(|f| NamedSource::new(f.name.clone(), f.text.clone()).with_language("kontiki"));
        let to_source_span = |s: Span| SourceSpan::new((s.start as usize).into(), s.len());
        let mut labels = Vec::new();
        let mut help = diag.help.clone();
        let mut message = diag.message.clone();
        match diag.span {
            Some(span) if file.is_some() => {
                labels.push(LabeledSpan::new_primary_with_span(
                    diag.label.clone(),
                    to_source_span(span),
                ));
                for note in &diag.notes {
                    if note.span.file == span.file {
                        labels.push(LabeledSpan::new_with_span(
                            Some(note.text.clone()),
                            to_source_span(note.span),
                        ));
                    } else {
                        let extra = format!("{} at {}", note.text, sources.location(note.span));
                        help = Some(match help {
                            Some(h) => format!("{h}\n{extra}"),
                            None => extra,
                        });
                    }
                }
            }
            _ => {
                if let Some(label) = &diag.label {
                    message = format!("{message}: {label}");
                }
            }
        }
        Report {
            code: diag.code,
            severity: diag.severity,
            message,
            source,
            labels,
            help,
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code.as_str()))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Info => miette::Severity::Advice,
            Severity::Warning => miette::Severity::Warning,
            Severity::Error => miette::Severity::Error,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }
}
