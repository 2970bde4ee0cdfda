//! Lint rules for `.kontiki` files (`kontiki-codegen lint`): style and hygiene the checker
//! does not require.
//!
//! Each rule has a stable id (the last part of its [`Code`], `kontiki::lint::<id>`), a message
//! and a hint. Every rule is on by default, as a warning; a [`LintConfig`] turns rules off or
//! on and changes their severity, and a `// kontiki:allow(rule, …)` comment silences rules for
//! the one declaration (item, service member, field, parameter or variant) that starts next.
//!
//! | id | what it reports |
//! |----|-----------------|
//! | `naming` | a name not in its kind's case: types, services `PascalCase`; fields, parameters, variants, methods, handlers, tasks, packages `snake_case`; error codes `SCREAMING_SNAKE_CASE`; event words lowercase |
//! | `missing-docs` | an item or service entrypoint (rpc, http, on_event, task) without `///` |
//! | `unused-import` | an import whose package is never named and whose events are never used |
//! | `unused-type` | a struct, enum or alias nothing in the file refers to |
//! | `unused-error` | an error code that no rpc or route of the file raises |
//! | `unversioned-route` | an `http` route without `[version = "…"]` |
//! | `cron-time-zone` | a `cron` task without `[time_zone = "…"]` (it runs in UTC) |

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use heck::{ToPascalCase, ToShoutySnakeCase, ToSnakeCase};

use crate::ast::{self, Item, Member};
use crate::diagnostic::{Code, Diagnostic, Severity};
use crate::error::{Error, Result};
use crate::lex::{self, Tok};
use crate::span::{SourceMap, Span};

/// Every lint rule, in order.
pub const RULES: &[Code] = &[
    Code::LintNaming,
    Code::LintMissingDocs,
    Code::LintUnusedImport,
    Code::LintUnusedType,
    Code::LintUnusedError,
    Code::LintUnversionedRoute,
    Code::LintCronTimeZone,
];

/// Which rules run and how serious they are (the `[lint]` table of `kontiki.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintConfig {
    /// Rule ids turned off.
    pub disable: Vec<String>,
    /// Rule ids turned back on (after `disable`; all rules are on by default).
    pub enable: Vec<String>,
    /// Severity per rule id; `warning` when not given.
    pub severity: BTreeMap<String, Severity>,
}

impl LintConfig {
    /// Rule ids the configuration names that are no rule.
    pub fn unknown_rules(&self) -> Vec<String> {
        self.disable
            .iter()
            .chain(&self.enable)
            .chain(self.severity.keys())
            .filter(|id| rule(id).is_none())
            .cloned()
            .collect()
    }

    fn enabled(&self, code: Code) -> bool {
        let id = code.lint_rule().unwrap_or_default();
        let named = |list: &[String]| list.iter().any(|r| r == id);
        !named(&self.disable) || named(&self.enable)
    }

    fn severity_of(&self, code: Code) -> Severity {
        let id = code.lint_rule().unwrap_or_default();
        self.severity.get(id).copied().unwrap_or(Severity::Warning)
    }
}

/// The rule with id `id`.
pub fn rule(id: &str) -> Option<Code> {
    RULES.iter().copied().find(|c| c.lint_rule() == Some(id))
}

/// Lints one file. The file must check (imports found via `include_dirs`); if it does not,
/// the checker's errors are returned as `Err`. `Ok` holds the lint findings (maybe none) with
/// the sources they point into.
pub fn lint_file(path: &Path, include_dirs: &[PathBuf], config: &LintConfig) -> Result<Error> {
    let Ok(text) = std::fs::read_to_string(path) else {
        // The loader names the file and the reason.
        crate::load_with_includes(path, include_dirs)?;
        return Ok(Error::new(Vec::new(), SourceMap::new()));
    };
    lint_source(&path.display().to_string(), &text, include_dirs, config)
}

/// Like [`lint_file`], for text in memory (an editor's buffer); `name` is the file's path, which
/// imports are read relative to.
pub fn lint_source(
    name: &str,
    text: &str,
    include_dirs: &[PathBuf],
    config: &LintConfig,
) -> Result<Error> {
    crate::load_str_with_includes(name, text, include_dirs)?;
    let file = crate::parse_str(name, text)?;
    let path = Path::new(name);
    let text = text.to_owned();
    let mut sources = SourceMap::new();
    sources.add(name.to_owned(), path, text.clone());
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut imports = Vec::new();
    for imp in &file.imports {
        let rel = Path::new(&imp.path.value);
        let found = std::iter::once(&dir)
            .chain(include_dirs)
            .map(|d| d.join(rel))
            .find(|p| p.is_file());
        if let Some(f) = found.and_then(|p| crate::parse_file(p).ok()) {
            imports.push((imp, f));
        }
    }
    let mut diags = Vec::new();
    let mut linter = Linter { diags: &mut diags };
    linter.run(&file, &imports);
    diags.retain(|d| config.enabled(d.code));
    for d in &mut diags {
        d.severity = config.severity_of(d.code);
    }
    apply_allows(&text, &file, &mut diags);
    Ok(Error::new(diags, sources))
}

struct Linter<'d> {
    diags: &'d mut Vec<Diagnostic>,
}

fn is_snake(s: &str) -> bool {
    s.to_snake_case() == s
}

impl Linter<'_> {
    fn push(&mut self, code: Code, span: Span, message: String, hint: String) {
        self.diags
            .push(Diagnostic::new(code, span, message).with_help(hint));
    }

    fn naming(&mut self, kind: &str, id: &ast::Ident, want: fn(&str) -> String, case: &str) {
        let fixed = want(&id.name);
        if fixed != id.name {
            self.push(
                Code::LintNaming,
                id.span,
                format!("{kind} `{}` is not {case}", id.name),
                format!("rename it `{fixed}`"),
            );
        }
    }

    fn docs(&mut self, kind: &str, docs: &ast::Docs, id: &ast::Ident) {
        if docs.is_empty() {
            self.push(
                Code::LintMissingDocs,
                id.span,
                format!("{kind} `{}` has no doc comment", id.name),
                "add a `///` line above it: it becomes the generated Rust docs and OpenAPI text"
                    .into(),
            );
        }
    }

    fn run(&mut self, file: &ast::File, imports: &[(&ast::Import, ast::File)]) {
        let snake = |s: &str| s.to_snake_case();
        let pascal = |s: &str| s.to_pascal_case();
        let shouty = |s: &str| s.to_shouty_snake_case();
        self.naming("package", &file.package, snake, "snake_case");
        let mut uses = Uses::default();
        for item in &file.items {
            uses.item(item);
        }
        for item in &file.items {
            match item {
                Item::Struct(s) => {
                    self.naming("struct", &s.name, pascal, "PascalCase");
                    self.docs("struct", &s.docs, &s.name);
                    for f in &s.fields {
                        self.naming("field", &f.name, snake, "snake_case");
                    }
                    self.unused_type(&s.name, &uses);
                }
                Item::Enum(e) => {
                    self.naming("enum", &e.name, pascal, "PascalCase");
                    self.docs("enum", &e.docs, &e.name);
                    for v in &e.variants {
                        self.naming("variant", &v.name, snake, "snake_case");
                    }
                    self.unused_type(&e.name, &uses);
                }
                Item::Alias(a) => {
                    self.naming("type alias", &a.name, pascal, "PascalCase");
                    self.docs("type alias", &a.docs, &a.name);
                    self.unused_type(&a.name, &uses);
                }
                Item::Error(e) => {
                    self.naming("error code", &e.code, shouty, "SCREAMING_SNAKE_CASE");
                    self.docs("error code", &e.docs, &e.code);
                    if !uses.errors.contains(&e.code.name) {
                        self.push(
                            Code::LintUnusedError,
                            e.code.span,
                            format!("error code `{}` is never raised", e.code.name),
                            "list it in the `raises` of the methods that return it, or remove it"
                                .into(),
                        );
                    }
                }
                Item::Event(ev) => {
                    if ev.name.value.to_lowercase() != ev.name.value
                        || ev.name.value.contains(['-', ' '])
                    {
                        self.push(
                            Code::LintNaming,
                            ev.name.span,
                            format!(
                                "event type `{}` is not lowercase dotted words",
                                ev.name.value
                            ),
                            format!(
                                "rename it `{}`",
                                ev.name
                                    .value
                                    .split('.')
                                    .map(|w| w.to_snake_case())
                                    .collect::<Vec<_>>()
                                    .join(".")
                            ),
                        );
                    }
                    if ev.docs.is_empty() {
                        self.push(
                            Code::LintMissingDocs,
                            ev.name.span,
                            format!("event `{}` has no doc comment", ev.name.value),
                            "add a `///` line above it".into(),
                        );
                    }
                }
                Item::Service(svc) => self.service(svc),
            }
        }
        for (imp, imported) in imports {
            let pkg = &imported.package.name;
            let events_used = imported.items.iter().any(|i| match i {
                Item::Event(e) => uses.events.contains(&e.name.value),
                _ => false,
            });
            if !uses.packages.contains(pkg) && !events_used {
                self.push(
                    Code::LintUnusedImport,
                    imp.span,
                    format!("import of `{}` (package `{pkg}`) is unused", imp.path.value),
                    "remove the import".into(),
                );
            }
        }
    }

    fn unused_type(&mut self, id: &ast::Ident, uses: &Uses) {
        if !uses.types.contains(&id.name) {
            self.push(
                Code::LintUnusedType,
                id.span,
                format!("type `{}` is never used in this file", id.name),
                "remove it, or `// kontiki:allow(unused-type)` if other contracts import it".into(),
            );
        }
    }

    fn service(&mut self, svc: &ast::Service) {
        let snake = |s: &str| s.to_snake_case();
        self.naming("service", &svc.name, |s| s.to_pascal_case(), "PascalCase");
        self.docs("service", &svc.docs, &svc.name);
        for m in &svc.members {
            match m {
                Member::Rpc(r) => {
                    self.naming("rpc", &r.name, snake, "snake_case");
                    self.docs("rpc", &r.docs, &r.name);
                    for p in &r.params {
                        self.naming("parameter", &p.name, snake, "snake_case");
                    }
                }
                Member::Http(h) => {
                    self.naming("http route", &h.name, snake, "snake_case");
                    self.docs("http route", &h.docs, &h.name);
                    for p in h.path_params.iter().chain(&h.query) {
                        if !is_snake(&p.name.name) {
                            self.naming("parameter", &p.name, snake, "snake_case");
                        }
                    }
                    if !h.options.iter().any(|o| o.name.name == "version") {
                        self.push(
                            Code::LintUnversionedRoute,
                            h.name.span,
                            format!("http route `{}` has no version", h.name.name),
                            "add `[version = \"v1\"]`: the route is served under `/v1/…` and \
                             can change later without breaking callers"
                                .into(),
                        );
                    }
                }
                Member::Handler(h) => {
                    self.naming("event handler", &h.name, snake, "snake_case");
                    self.docs("event handler", &h.docs, &h.name);
                }
                Member::Task(t) => {
                    self.naming("task", &t.name, snake, "snake_case");
                    self.docs("task", &t.docs, &t.name);
                    let cron = matches!(
                        t.schedule,
                        ast::Schedule::Cron(_) | ast::Schedule::CronConfig(_)
                    );
                    if cron && !t.options.iter().any(|o| o.name.name == "time_zone") {
                        self.push(
                            Code::LintCronTimeZone,
                            t.name.span,
                            format!("cron task `{}` has no time zone", t.name.name),
                            "add `[time_zone = \"UTC\"]` (or the zone the schedule is meant \
                             in, such as `Europe/Paris`): without it the runtime reads the \
                             schedule in UTC"
                                .into(),
                        );
                    }
                }
                Member::Property(_) | Member::Header(_) | Member::Emits(_) => {}
            }
        }
    }
}

/// Names a file refers to.
#[derive(Default)]
struct Uses {
    types: HashSet<String>,
    packages: HashSet<String>,
    errors: HashSet<String>,
    events: HashSet<String>,
}

impl Uses {
    fn path(&mut self, p: &ast::Path) {
        match &p.package {
            Some(pkg) => {
                self.packages.insert(pkg.name.clone());
            }
            None => {
                self.types.insert(p.name.name.clone());
            }
        }
    }

    fn ty(&mut self, t: &ast::TypeExpr) {
        match &t.kind {
            ast::TypeExprKind::Named(p) => self.path(p),
            ast::TypeExprKind::List(t) | ast::TypeExprKind::Optional(t) => self.ty(t),
            ast::TypeExprKind::Map(k, v) => {
                self.ty(k);
                self.ty(v);
            }
        }
    }

    fn value(&mut self, v: &ast::Value) {
        match &v.kind {
            ast::ValueKind::Name(p) => {
                if let Some(pkg) = &p.package {
                    self.packages.insert(pkg.name.clone());
                }
            }
            ast::ValueKind::List(vs) => vs.iter().for_each(|v| self.value(v)),
            ast::ValueKind::Map(es) => es.iter().for_each(|(_, v)| self.value(v)),
            _ => {}
        }
    }

    fn fields(&mut self, fields: &[ast::Field]) {
        for f in fields {
            self.ty(&f.ty);
            if let Some(d) = &f.default {
                self.value(d);
            }
        }
    }

    fn raises(&mut self, raises: &[ast::Raise]) {
        for r in raises {
            match &r.code.package {
                Some(pkg) => {
                    self.packages.insert(pkg.name.clone());
                }
                None => {
                    self.errors.insert(r.code.name.name.clone());
                }
            }
        }
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Struct(s) => self.fields(&s.fields),
            Item::Alias(a) => self.ty(&a.ty),
            Item::Event(e) => self.ty(&e.payload),
            Item::Enum(_) | Item::Error(_) => {}
            Item::Service(svc) => {
                for m in &svc.members {
                    match m {
                        Member::Rpc(r) => {
                            self.fields(&r.params);
                            if let Some(t) = &r.returns {
                                self.ty(t);
                            }
                            self.raises(&r.raises);
                        }
                        Member::Http(h) => {
                            self.fields(&h.path_params);
                            self.fields(&h.query);
                            for t in h.body.iter().chain(&h.returns) {
                                self.ty(t);
                            }
                            self.raises(&h.raises);
                        }
                        Member::Header(h) => self.ty(&h.ty),
                        Member::Emits(e) => {
                            self.events.extend(e.events.iter().map(|e| e.value.clone()));
                        }
                        Member::Handler(h) => {
                            if let ast::EventSource::Events(es) = &h.source {
                                self.events.extend(es.iter().map(|e| e.value.clone()));
                            }
                        }
                        Member::Property(p) => self.value(&p.value),
                        Member::Task(_) => {}
                    }
                }
            }
        }
    }
}

/// Spans of every declaration a `kontiki:allow` comment can apply to.
fn declarations(file: &ast::File) -> Vec<Span> {
    let mut out = Vec::new();
    let fields = |out: &mut Vec<Span>, fs: &[ast::Field]| out.extend(fs.iter().map(|f| f.span));
    for item in &file.items {
        match item {
            Item::Struct(s) => {
                out.push(s.span);
                fields(&mut out, &s.fields);
            }
            Item::Enum(e) => {
                out.push(e.span);
                out.extend(e.variants.iter().map(|v| v.span));
            }
            Item::Alias(a) => out.push(a.span),
            Item::Error(e) => out.push(e.span),
            Item::Event(e) => out.push(e.span),
            Item::Service(svc) => {
                out.push(svc.span);
                for m in &svc.members {
                    match m {
                        Member::Rpc(r) => {
                            out.push(r.span);
                            fields(&mut out, &r.params);
                        }
                        Member::Http(h) => {
                            out.push(h.span);
                            fields(&mut out, &h.path_params);
                            fields(&mut out, &h.query);
                        }
                        Member::Handler(h) => out.push(h.span),
                        Member::Task(t) => out.push(t.span),
                        Member::Header(h) => out.push(h.span),
                        Member::Emits(e) => out.push(e.span),
                        Member::Property(p) => out.push(p.span),
                    }
                }
            }
        }
    }
    out.extend(file.imports.iter().map(|i| i.span));
    out
}

/// Drops the diagnostics a `// kontiki:allow(rule)` comment silences; reports allow comments
/// that name no rule.
fn apply_allows(text: &str, file: &ast::File, diags: &mut Vec<Diagnostic>) {
    let Ok(tokens) = lex::lex(text) else {
        return;
    };
    let decls = declarations(file);
    let mut allowed: Vec<(Span, BTreeSet<String>)> = Vec::new();
    let mut bad = Vec::new();
    for t in tokens.iter().filter(|t| t.kind == Tok::LineComment) {
        let body = t.text(text).trim_start_matches('/').trim();
        let Some(rest) = body.strip_prefix("kontiki:allow(") else {
            continue;
        };
        let Some(list) = rest.split(')').next() else {
            continue;
        };
        let ids: BTreeSet<String> = list
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        for id in &ids {
            if rule(id).is_none() {
                bad.push(
                    Diagnostic::new(
                        Code::LintConfig,
                        Span::new(file.span.file, t.start, t.end),
                        format!("`kontiki:allow` names no lint rule `{id}`"),
                    )
                    .with_severity(Severity::Error)
                    .with_help(format!(
                        "rules are {}",
                        RULES
                            .iter()
                            .filter_map(|c| c.lint_rule())
                            .map(|r| format!("`{r}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                );
            }
        }
        // The declaration starting next (the outermost one if several start there).
        let next = decls
            .iter()
            .filter(|s| s.start as usize >= t.end)
            .min_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
        if let Some(span) = next {
            allowed.push((*span, ids));
        }
    }
    diags.retain(|d| {
        let (Some(span), Some(id)) = (d.span, d.code.lint_rule()) else {
            return true;
        };
        !allowed
            .iter()
            .any(|(a, ids)| ids.contains(id) && a.start <= span.start && span.end <= a.end)
    });
    diags.extend(bad);
}
