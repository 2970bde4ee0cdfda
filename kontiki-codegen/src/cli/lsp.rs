//! `kontiki-codegen lsp`: a language server for `.kontiki` files over stdio.
//!
//! Built on `lsp-server` (rust-analyzer's scaffold: JSON-RPC framing, the initialize and
//! shutdown handshakes) and `lsp-types`. It keeps the open documents in memory and answers:
//!
//! * diagnostics as you type (`textDocument/publishDiagnostics` after each open and change):
//!   the checker's, with imports read from disk next to the file and from `-I` directories (a
//!   problem inside an imported file is shown on the import that brings it in), then, once the
//!   file checks, the lint rules configured by the nearest `kontiki.toml`;
//! * go-to-definition for type names, error codes and event types (in the file or through its
//!   imports, qualified or not) and for import paths (the imported file);
//! * hover: the first line and the `///` docs of what the cursor names: a declaration it refers
//!   to, or one it is on (items, fields, parameters, variants, service members);
//! * document symbols: items, their fields and variants, service members;
//! * formatting: the whole document through `kontiki_idl::fmt::format_source`.
//!
//! Text is synchronised whole (`TextDocumentSyncKind::FULL`); positions are UTF-16 as LSP
//! requires.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;

use kontiki_idl::ast::{self, Item, Member, TypeExpr, TypeExprKind};
use kontiki_idl::{FileId, Severity, Span};
use lsp_server::{Connection, Message, Notification, Request, Response};
use lsp_types as lsp;

/// Runs the server on stdin/stdout until the client says `exit`.
pub(crate) fn run(include: &[PathBuf]) -> ExitCode {
    let (connection, io) = Connection::stdio();
    let result = serve(&connection, include);
    drop(connection);
    let joined = io.join();
    match (result, joined) {
        (Ok(()), Ok(())) => ExitCode::SUCCESS,
        (Err(e), _) => {
            eprintln!("error: kontiki-codegen lsp: {e}");
            ExitCode::FAILURE
        }
        (_, Err(e)) => {
            eprintln!("error: kontiki-codegen lsp: {e}");
            ExitCode::FAILURE
        }
    }
}

fn capabilities() -> lsp::ServerCapabilities {
    lsp::ServerCapabilities {
        text_document_sync: Some(lsp::TextDocumentSyncCapability::Kind(
            lsp::TextDocumentSyncKind::FULL,
        )),
        definition_provider: Some(lsp::OneOf::Left(true)),
        hover_provider: Some(lsp::HoverProviderCapability::Simple(true)),
        document_symbol_provider: Some(lsp::OneOf::Left(true)),
        document_formatting_provider: Some(lsp::OneOf::Left(true)),
        ..lsp::ServerCapabilities::default()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn serve(connection: &Connection, include: &[PathBuf]) -> Result<(), BoxError> {
    connection.initialize(serde_json::to_value(capabilities())?)?;
    let mut server = Server {
        docs: HashMap::new(),
        include: include.to_vec(),
    };
    for msg in &connection.receiver {
        match msg {
            Message::Request(req) => {
                if connection.handle_shutdown(&req)? {
                    return Ok(());
                }
                let response = server.request(req);
                connection.sender.send(Message::Response(response))?;
            }
            Message::Notification(n) => {
                for out in server.notification(n) {
                    connection.sender.send(Message::Notification(out))?;
                }
            }
            Message::Response(_) => {}
        }
    }
    Ok(())
}

struct Server {
    /// Open documents by URI.
    docs: HashMap<String, String>,
    include: Vec<PathBuf>,
}

fn ok<R: serde::Serialize>(req: &Request, r: R) -> Response {
    Response::new_ok(req.id.clone(), r)
}

impl Server {
    fn request(&mut self, req: Request) -> Response {
        let invalid = |req: &Request, e: serde_json::Error| {
            Response::new_err(
                req.id.clone(),
                lsp_server::ErrorCode::InvalidParams as i32,
                e.to_string(),
            )
        };
        match req.method.as_str() {
            "textDocument/definition" => {
                match serde_json::from_value::<lsp::GotoDefinitionParams>(req.params.clone()) {
                    Ok(p) => {
                        let pos = p.text_document_position_params;
                        ok(&req, self.definition(&pos.text_document.uri, pos.position))
                    }
                    Err(e) => invalid(&req, e),
                }
            }
            "textDocument/hover" => {
                match serde_json::from_value::<lsp::HoverParams>(req.params.clone()) {
                    Ok(p) => {
                        let pos = p.text_document_position_params;
                        ok(&req, self.hover(&pos.text_document.uri, pos.position))
                    }
                    Err(e) => invalid(&req, e),
                }
            }
            "textDocument/documentSymbol" => {
                match serde_json::from_value::<lsp::DocumentSymbolParams>(req.params.clone()) {
                    Ok(p) => ok(&req, self.symbols(&p.text_document.uri)),
                    Err(e) => invalid(&req, e),
                }
            }
            "textDocument/formatting" => {
                match serde_json::from_value::<lsp::DocumentFormattingParams>(req.params.clone()) {
                    Ok(p) => ok(&req, self.format(&p.text_document.uri)),
                    Err(e) => invalid(&req, e),
                }
            }
            _ => Response::new_err(
                req.id.clone(),
                lsp_server::ErrorCode::MethodNotFound as i32,
                format!("kontiki-codegen lsp does not handle `{}`", req.method),
            ),
        }
    }

    fn notification(&mut self, n: Notification) -> Vec<Notification> {
        match n.method.as_str() {
            "textDocument/didOpen" => {
                let Ok(p) = serde_json::from_value::<lsp::DidOpenTextDocumentParams>(n.params)
                else {
                    return Vec::new();
                };
                let uri = p.text_document.uri;
                self.docs
                    .insert(uri.as_str().to_owned(), p.text_document.text);
                vec![self.diagnostics(&uri, Some(p.text_document.version))]
            }
            "textDocument/didChange" => {
                let Ok(p) = serde_json::from_value::<lsp::DidChangeTextDocumentParams>(n.params)
                else {
                    return Vec::new();
                };
                let uri = p.text_document.uri;
                if let Some(change) = p.content_changes.into_iter().last() {
                    self.docs.insert(uri.as_str().to_owned(), change.text);
                }
                vec![self.diagnostics(&uri, Some(p.text_document.version))]
            }
            "textDocument/didClose" => {
                let Ok(p) = serde_json::from_value::<lsp::DidCloseTextDocumentParams>(n.params)
                else {
                    return Vec::new();
                };
                self.docs.remove(p.text_document.uri.as_str());
                vec![publish(p.text_document.uri, Vec::new(), None)]
            }
            _ => Vec::new(),
        }
    }

    fn text(&self, uri: &lsp::Uri) -> Option<&str> {
        self.docs.get(uri.as_str()).map(String::as_str)
    }

    fn diagnostics(&self, uri: &lsp::Uri, version: Option<i32>) -> Notification {
        let text = self.text(uri).unwrap_or("");
        let path = uri_to_path(uri);
        let name = path.display().to_string();
        let mut out = Vec::new();
        // Lint rules as configured by the nearest kontiki.toml, as `kontiki-codegen lint`.
        let config_path = path.parent().and_then(super::lint::find_config);
        let config = match config_path.as_deref().map(super::lint::read_config) {
            Some(Ok(c)) => c,
            Some(Err(message)) => {
                out.push(lsp::Diagnostic {
                    range: range(text, 0, 0),
                    severity: Some(lsp::DiagnosticSeverity::ERROR),
                    code: Some(lsp::NumberOrString::String(
                        kontiki_idl::Code::LintConfig.as_str().to_owned(),
                    )),
                    source: Some("kontiki".to_owned()),
                    message,
                    ..lsp::Diagnostic::default()
                });
                Default::default()
            }
            None => Default::default(),
        };
        // The checker's errors if the file does not check, else the lint findings.
        let found = match kontiki_idl::lint::lint_source(&name, text, &self.include, &config) {
            Ok(found) | Err(found) => found,
        };
        {
            let e = &found;
            let ast = kontiki_idl::parse_str(&name, text).ok();
            for d in e.diagnostics() {
                let (range, message) = match d.span {
                    Some(span) if span.file == FileId(0) => {
                        (range(text, span.start, span.end), d.message.clone())
                    }
                    Some(span) => {
                        let file = e.sources().get(span.file);
                        let at = e.sources().location(span);
                        // Shown on the import that brings the file in, if it is a direct one.
                        let import = file.and_then(|f| {
                            ast.as_ref()?.imports.iter().find(|i| {
                                Path::new(&f.name).file_name()
                                    == Path::new(&i.path.value).file_name()
                            })
                        });
                        let r = import.map_or_else(
                            || range(text, 0, 0),
                            |i| range(text, i.path.span.start, i.path.span.end),
                        );
                        (r, format!("{at}: {}", d.message))
                    }
                    None => (range(text, 0, 0), d.message.clone()),
                };
                let message = match &d.help {
                    Some(help) => format!("{message}\nhelp: {help}"),
                    None => message,
                };
                out.push(lsp::Diagnostic {
                    range,
                    severity: Some(match d.severity {
                        Severity::Error => lsp::DiagnosticSeverity::ERROR,
                        Severity::Warning => lsp::DiagnosticSeverity::WARNING,
                        Severity::Info => lsp::DiagnosticSeverity::INFORMATION,
                    }),
                    code: Some(lsp::NumberOrString::String(d.code.as_str().to_owned())),
                    source: Some("kontiki".to_owned()),
                    message,
                    ..lsp::Diagnostic::default()
                });
            }
        }
        publish(uri.clone(), out, version)
    }

    fn parsed(&self, uri: &lsp::Uri) -> Option<(PathBuf, &str, ast::File)> {
        let text = self.text(uri)?;
        let path = uri_to_path(uri);
        let file = kontiki_idl::parse_str(&path.display().to_string(), text).ok()?;
        Some((path, text, file))
    }

    /// What the cursor is on, resolved to its declaration.
    fn resolve(&self, uri: &lsp::Uri, pos: lsp::Position) -> Option<Found> {
        let (path, text, file) = self.parsed(uri)?;
        let offset = offset(text, pos);
        let target = targets(&file)
            .into_iter()
            .find(|(span, _)| span.start as usize <= offset && offset <= span.end as usize)?;
        let here = Loaded {
            path: path.clone(),
            text: text.to_owned(),
            file,
        };
        let (span, what) = target;
        let decl = match what {
            Target::Import(rel) => {
                let target = self.import_path(&path, &rel)?;
                return Some(Found {
                    origin: span,
                    path: target.clone(),
                    range: lsp::Range::default(),
                    hover: format!("imports `{}`", target.display()),
                });
            }
            Target::Decl(name) => find_decl(&here, &name)?,
            Target::Member(whole, docs) => Found {
                origin: span,
                path: path.clone(),
                range: range(text, span.start, span.end),
                hover: hover_text(text, whole, &docs),
            },
            Target::Type(None, name) if kontiki_idl::model::TypeRef::builtin(&name).is_some() => {
                return Some(Found {
                    origin: span,
                    path: PathBuf::new(),
                    range: lsp::Range::default(),
                    hover: format!("```kontiki\n{name}\n```\n\nbuilt-in type"),
                });
            }
            Target::Type(None, name) | Target::Error(None, name) => find_decl(&here, &name)?,
            Target::Type(Some(pkg), name) | Target::Error(Some(pkg), name) => {
                let other = self
                    .imports(&here)
                    .into_iter()
                    .find(|l| l.file.package.name == pkg)?;
                find_decl(&other, &name)?
            }
            Target::Event(name) => match find_decl(&here, &name) {
                Some(d) => d,
                None => self
                    .imports(&here)
                    .iter()
                    .find_map(|l| find_decl(l, &name))?,
            },
        };
        Some(Found {
            origin: span,
            ..decl
        })
    }

    fn import_path(&self, from: &Path, rel: &str) -> Option<PathBuf> {
        let dir = from.parent().map(Path::to_path_buf).unwrap_or_default();
        std::iter::once(&dir)
            .chain(&self.include)
            .map(|d| d.join(rel))
            .find(|p| p.is_file())
    }

    /// The files `here` imports, parsed (an open document's text wins over the disk).
    fn imports(&self, here: &Loaded) -> Vec<Loaded> {
        let mut out = Vec::new();
        for imp in &here.file.imports {
            let Some(path) = self.import_path(&here.path, &imp.path.value) else {
                continue;
            };
            let canonical = std::fs::canonicalize(&path).ok();
            let open = self
                .docs
                .iter()
                .find(|(u, _)| {
                    let p = lsp::Uri::from_str(u).ok().map(|u| uri_to_path(&u));
                    p.and_then(|p| std::fs::canonicalize(p).ok()) == canonical
                })
                .map(|(_, t)| t.clone());
            let Some(text) = open.or_else(|| std::fs::read_to_string(&path).ok()) else {
                continue;
            };
            if let Ok(file) = kontiki_idl::parse_str(&path.display().to_string(), &text) {
                out.push(Loaded { path, text, file });
            }
        }
        out
    }

    fn definition(
        &self,
        uri: &lsp::Uri,
        pos: lsp::Position,
    ) -> Option<lsp::GotoDefinitionResponse> {
        let found = self.resolve(uri, pos)?;
        if found.path.as_os_str().is_empty() {
            return None;
        }
        Some(lsp::GotoDefinitionResponse::Scalar(lsp::Location {
            uri: path_to_uri(&found.path)?,
            range: found.range,
        }))
    }

    fn hover(&self, uri: &lsp::Uri, pos: lsp::Position) -> Option<lsp::Hover> {
        let found = self.resolve(uri, pos)?;
        let text = self.text(uri)?;
        Some(lsp::Hover {
            contents: lsp::HoverContents::Markup(lsp::MarkupContent {
                kind: lsp::MarkupKind::Markdown,
                value: found.hover,
            }),
            range: Some(range(text, found.origin.start, found.origin.end)),
        })
    }

    fn symbols(&self, uri: &lsp::Uri) -> Option<lsp::DocumentSymbolResponse> {
        let (_, text, file) = self.parsed(uri)?;
        Some(lsp::DocumentSymbolResponse::Nested(symbols(text, &file)))
    }

    fn format(&self, uri: &lsp::Uri) -> Option<Vec<lsp::TextEdit>> {
        let text = self.text(uri)?;
        let name = uri_to_path(uri).display().to_string();
        let formatted = kontiki_idl::fmt::format_source(&name, text).ok()?;
        if formatted == text {
            return Some(Vec::new());
        }
        Some(vec![lsp::TextEdit {
            range: range(text, 0, u32::try_from(text.len()).unwrap_or(u32::MAX)),
            new_text: formatted,
        }])
    }
}

fn publish(uri: lsp::Uri, diagnostics: Vec<lsp::Diagnostic>, version: Option<i32>) -> Notification {
    Notification::new(
        "textDocument/publishDiagnostics".to_owned(),
        lsp::PublishDiagnosticsParams {
            uri,
            diagnostics,
            version,
        },
    )
}

/// A parsed file and where it is.
struct Loaded {
    path: PathBuf,
    text: String,
    file: ast::File,
}

/// A resolved declaration: where it is, what hover shows; `origin` is the span under the
/// cursor.
struct Found {
    origin: Span,
    path: PathBuf,
    range: lsp::Range,
    hover: String,
}

/// What a span of the text names.
enum Target {
    /// A type name, maybe qualified.
    Type(Option<String>, String),
    /// An error code, maybe qualified.
    Error(Option<String>, String),
    /// An event type.
    Event(String),
    /// An import path.
    Import(String),
    /// The name of a declaration.
    Decl(String),
    /// The name of a field, parameter, variant or service member: its whole span and docs.
    Member(Span, ast::Docs),
}

fn path_target(p: &ast::Path, error: bool) -> (Span, Target) {
    let pkg = p.package.as_ref().map(|i| i.name.clone());
    let name = p.name.name.clone();
    (
        p.span,
        if error {
            Target::Error(pkg, name)
        } else {
            Target::Type(pkg, name)
        },
    )
}

fn type_targets(t: &TypeExpr, out: &mut Vec<(Span, Target)>) {
    match &t.kind {
        TypeExprKind::Named(p) => out.push(path_target(p, false)),
        TypeExprKind::List(a) | TypeExprKind::Optional(a) => type_targets(a, out),
        TypeExprKind::Map(k, v) => {
            type_targets(k, out);
            type_targets(v, out);
        }
    }
}

fn field_targets(fields: &[ast::Field], out: &mut Vec<(Span, Target)>) {
    for f in fields {
        out.push((f.name.span, Target::Member(f.span, f.docs.clone())));
        type_targets(&f.ty, out);
    }
}

fn member(name: &ast::Ident, whole: Span, docs: &ast::Docs) -> (Span, Target) {
    (name.span, Target::Member(whole, docs.clone()))
}

/// Every name in the file that hover or go-to-definition can resolve.
fn targets(file: &ast::File) -> Vec<(Span, Target)> {
    let mut out = Vec::new();
    for imp in &file.imports {
        out.push((imp.path.span, Target::Import(imp.path.value.clone())));
    }
    let decl = |i: &ast::Ident| (i.span, Target::Decl(i.name.clone()));
    for item in &file.items {
        match item {
            Item::Struct(s) => {
                out.push(decl(&s.name));
                field_targets(&s.fields, &mut out);
            }
            Item::Enum(e) => {
                out.push(decl(&e.name));
                for v in &e.variants {
                    out.push(member(&v.name, v.span, &v.docs));
                }
            }
            Item::Alias(a) => {
                out.push(decl(&a.name));
                type_targets(&a.ty, &mut out);
            }
            Item::Error(e) => out.push(decl(&e.code)),
            Item::Event(e) => {
                out.push((e.name.span, Target::Decl(e.name.value.clone())));
                type_targets(&e.payload, &mut out);
            }
            Item::Service(s) => {
                out.push(decl(&s.name));
                for m in &s.members {
                    match m {
                        Member::Header(h) => type_targets(&h.ty, &mut out),
                        Member::Rpc(r) => {
                            out.push(member(&r.name, r.span, &r.docs));
                            field_targets(&r.params, &mut out);
                            if let Some(t) = &r.returns {
                                type_targets(t, &mut out);
                            }
                            for raise in &r.raises {
                                out.push(path_target(&raise.code, true));
                            }
                        }
                        Member::Emits(e) => {
                            for ev in &e.events {
                                out.push((ev.span, Target::Event(ev.value.clone())));
                            }
                        }
                        Member::Handler(h) => {
                            out.push(member(&h.name, h.span, &h.docs));
                            if let ast::EventSource::Events(evs) = &h.source {
                                for ev in evs {
                                    out.push((ev.span, Target::Event(ev.value.clone())));
                                }
                            }
                        }
                        Member::Http(h) => {
                            out.push(member(&h.name, h.span, &h.docs));
                            field_targets(&h.path_params, &mut out);
                            field_targets(&h.query, &mut out);
                            for t in h.body.iter().chain(&h.returns) {
                                type_targets(t, &mut out);
                            }
                            for raise in &h.raises {
                                out.push(path_target(&raise.code, true));
                            }
                        }
                        Member::Task(t) => out.push(member(&t.name, t.span, &t.docs)),
                        Member::Property(_) => {}
                    }
                }
            }
        }
    }
    out
}

/// The top-level declaration named `name` (a type, error code, event or service) in `l`.
fn find_decl(l: &Loaded, name: &str) -> Option<Found> {
    let (span, docs, whole) = l.file.items.iter().find_map(|item| {
        let (span, n, docs, whole) = match item {
            Item::Struct(s) => (s.name.span, &s.name.name, &s.docs, s.span),
            Item::Enum(e) => (e.name.span, &e.name.name, &e.docs, e.span),
            Item::Alias(a) => (a.name.span, &a.name.name, &a.docs, a.span),
            Item::Error(e) => (e.code.span, &e.code.name, &e.docs, e.span),
            Item::Event(e) => (e.name.span, &e.name.value, &e.docs, e.span),
            Item::Service(s) => (s.name.span, &s.name.name, &s.docs, s.span),
        };
        (n == name).then_some((span, docs, whole))
    })?;
    Some(Found {
        origin: span,
        path: l.path.clone(),
        range: range(&l.text, span.start, span.end),
        hover: hover_text(&l.text, whole, docs),
    })
}

/// The first line of a declaration (past its doc comments) as code, then its docs.
fn hover_text(text: &str, whole: Span, docs: &ast::Docs) -> String {
    let signature = text
        .get(whole.start as usize..whole.end as usize)
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .find(|line| !line.starts_with("//") && !line.is_empty())
        .unwrap_or("")
        .trim_end_matches(',');
    let mut hover = format!("```kontiki\n{signature}\n```");
    if !docs.is_empty() {
        hover.push_str("\n\n");
        hover.push_str(&docs.text());
    }
    hover
}

#[allow(
    deprecated,
    reason = "DocumentSymbol::deprecated must be set to construct it"
)]
fn symbol(
    text: &str,
    name: &str,
    detail: Option<String>,
    kind: lsp::SymbolKind,
    whole: Span,
    name_span: Span,
    children: Vec<lsp::DocumentSymbol>,
) -> lsp::DocumentSymbol {
    lsp::DocumentSymbol {
        name: name.to_owned(),
        detail,
        kind,
        tags: None,
        deprecated: None,
        range: range(text, whole.start, whole.end),
        selection_range: range(text, name_span.start, name_span.end),
        children: (!children.is_empty()).then_some(children),
    }
}

fn symbols(text: &str, file: &ast::File) -> Vec<lsp::DocumentSymbol> {
    use lsp::SymbolKind as K;
    let fields = |fs: &[ast::Field]| -> Vec<lsp::DocumentSymbol> {
        fs.iter()
            .map(|f| {
                symbol(
                    text,
                    &f.name.name,
                    None,
                    K::FIELD,
                    f.span,
                    f.name.span,
                    Vec::new(),
                )
            })
            .collect()
    };
    let mut out = Vec::new();
    for item in &file.items {
        out.push(match item {
            Item::Struct(s) => symbol(
                text,
                &s.name.name,
                None,
                K::STRUCT,
                s.span,
                s.name.span,
                fields(&s.fields),
            ),
            Item::Enum(e) => {
                let vs = e
                    .variants
                    .iter()
                    .map(|v| {
                        symbol(
                            text,
                            &v.name.name,
                            None,
                            K::ENUM_MEMBER,
                            v.span,
                            v.name.span,
                            Vec::new(),
                        )
                    })
                    .collect();
                symbol(text, &e.name.name, None, K::ENUM, e.span, e.name.span, vs)
            }
            Item::Alias(a) => symbol(
                text,
                &a.name.name,
                Some("type alias".into()),
                K::TYPE_PARAMETER,
                a.span,
                a.name.span,
                Vec::new(),
            ),
            Item::Error(e) => symbol(
                text,
                &e.code.name,
                Some(e.message.value.clone()),
                K::CONSTANT,
                e.span,
                e.code.span,
                Vec::new(),
            ),
            Item::Event(e) => symbol(
                text,
                &e.name.value,
                Some("event".into()),
                K::EVENT,
                e.span,
                e.name.span,
                Vec::new(),
            ),
            Item::Service(s) => {
                let mut members = Vec::new();
                for m in &s.members {
                    match m {
                        Member::Rpc(r) => members.push(symbol(
                            text,
                            &r.name.name,
                            Some("rpc".into()),
                            K::METHOD,
                            r.span,
                            r.name.span,
                            fields(&r.params),
                        )),
                        Member::Handler(h) => members.push(symbol(
                            text,
                            &h.name.name,
                            Some("on_event".into()),
                            K::FUNCTION,
                            h.span,
                            h.name.span,
                            Vec::new(),
                        )),
                        Member::Http(h) => members.push(symbol(
                            text,
                            &h.name.name,
                            Some(format!("http {}", h.method.name)),
                            K::FUNCTION,
                            h.span,
                            h.name.span,
                            Vec::new(),
                        )),
                        Member::Task(t) => members.push(symbol(
                            text,
                            &t.name.name,
                            Some("task".into()),
                            K::FUNCTION,
                            t.span,
                            t.name.span,
                            Vec::new(),
                        )),
                        Member::Header(h) => members.push(symbol(
                            text,
                            &h.name.value,
                            Some("header".into()),
                            K::PROPERTY,
                            h.span,
                            h.name.span,
                            Vec::new(),
                        )),
                        Member::Property(_) | Member::Emits(_) => {}
                    }
                }
                symbol(
                    text,
                    &s.name.name,
                    Some("service".into()),
                    K::CLASS,
                    s.span,
                    s.name.span,
                    members,
                )
            }
        });
    }
    out
}

/// The byte offset of an LSP position (UTF-16 columns), clamped to the text.
fn offset(text: &str, pos: lsp::Position) -> usize {
    let mut line_start = 0;
    for _ in 0..pos.line {
        match text[line_start..].find('\n') {
            Some(i) => line_start += i + 1,
            None => return text.len(),
        }
    }
    let line = text[line_start..].split('\n').next().unwrap_or("");
    let mut units = 0;
    for (i, c) in line.char_indices() {
        if units >= pos.character as usize {
            return line_start + i;
        }
        units += c.len_utf16();
    }
    line_start + line.len()
}

/// The LSP position (UTF-16 columns) of a byte offset.
fn position(text: &str, offset: u32) -> lsp::Position {
    let offset = (offset as usize).min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let character: usize = before[line_start..].chars().map(char::len_utf16).sum();
    lsp::Position {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        character: u32::try_from(character).unwrap_or(u32::MAX),
    }
}

fn range(text: &str, start: u32, end: u32) -> lsp::Range {
    lsp::Range {
        start: position(text, start),
        end: position(text, end),
    }
}

/// The path of a `file:` URI (percent escapes decoded); other URIs as they are.
fn uri_to_path(uri: &lsp::Uri) -> PathBuf {
    let s = uri.as_str();
    let Some(rest) = s.strip_prefix("file://") else {
        return PathBuf::from(s);
    };
    let bytes = rest.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = rest
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(String::from_utf8_lossy(&out).into_owned())
}

/// The `file:` URI of a path (made absolute).
fn path_to_uri(path: &Path) -> Option<lsp::Uri> {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut s = String::from("file://");
    for b in abs.display().to_string().bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    lsp::Uri::from_str(&s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_utf16() {
        let text = "a\n\u{1F600}b\nc";
        // The emoji is 4 bytes and 2 UTF-16 units.
        let p = position(text, 6);
        assert_eq!((p.line, p.character), (1, 2));
        assert_eq!(offset(text, p), 6);
        assert_eq!(offset(text, lsp::Position::new(9, 0)), text.len());
    }

    #[test]
    fn uris_round_trip() {
        let uri = lsp::Uri::from_str("file:///tmp/a%20b/c.kontiki").unwrap();
        assert_eq!(uri_to_path(&uri), PathBuf::from("/tmp/a b/c.kontiki"));
        let back = path_to_uri(Path::new("/tmp/a b/c.kontiki")).unwrap();
        assert_eq!(back.as_str(), "file:///tmp/a%20b/c.kontiki");
    }
}
