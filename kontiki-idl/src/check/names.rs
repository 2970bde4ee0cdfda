//! Names: duplicates at every level, collisions after case conversion, names Kontiki
//! reserves, and AMQP topic words.

use std::collections::HashMap;

use heck::{ToSnakeCase, ToUpperCamelCase};

use super::Unit;
use crate::ast;
use crate::diagnostic::{Code, Diagnostic};
use crate::model::TypeRef;
use crate::span::Span;

/// The internal RPC every Kontiki consumer serves to open a session.
pub const SESSION_OPEN_RPC: &str = "___kontiki__internal_session_open__";

/// Header names Kontiki writes itself (`kontiki.utils.RESERVED_HEADERS`).
pub const RESERVED_HEADERS: &[&str] = &[
    "entrypoint",
    "event_type",
    "flow_id",
    "hop_id",
    "host",
    "instance_id",
    "operation",
    "parent_hop_id",
    "remote_method",
    "reply_to",
    "rpc_service",
    "service_name",
    "session_id",
    "timestamp",
];

/// Runs every name check over all loaded files.
pub(crate) fn check(units: &[Unit<'_>], diags: &mut Vec<Diagnostic>) {
    let mut packages: HashMap<&str, Span> = HashMap::new();
    for unit in units {
        let pkg = &unit.ast.package;
        if let Some(first) = packages.get(pkg.name.as_str()) {
            diags.push(
                Diagnostic::new(Code::Duplicate, pkg.span, format!("package `{}` is declared by two files", pkg.name))
                    .with_label("second file with this package name")
                    .with_note(*first, "first declared here")
                    .with_help("give each file its own package name; references like `pkg.Type` must be unambiguous"),
            );
        } else {
            packages.insert(&pkg.name, pkg.span);
        }
        check_file(unit, units, diags);
    }
}

/// Records names in one namespace and reports duplicates and case collisions.
struct Namespace<'a> {
    what: &'static str,
    seen: HashMap<String, (String, Span)>,
    fold: Option<fn(&str) -> String>,
    diags: &'a mut Vec<Diagnostic>,
}

impl<'a> Namespace<'a> {
    fn new(what: &'static str, diags: &'a mut Vec<Diagnostic>) -> Self {
        Namespace {
            what,
            seen: HashMap::new(),
            fold: None,
            diags,
        }
    }

    fn folding(mut self, fold: fn(&str) -> String) -> Self {
        self.fold = Some(fold);
        self
    }

    fn add(&mut self, name: &str, span: Span) {
        if name.is_empty() {
            return;
        }
        let key = self.fold.map_or_else(|| name.to_string(), |f| f(name));
        match self.seen.get(&key) {
            Some((first, first_span)) if first == name => {
                self.diags.push(
                    Diagnostic::new(
                        Code::Duplicate,
                        span,
                        format!("duplicate {} `{name}`", self.what),
                    )
                    .with_label("declared again here")
                    .with_note(*first_span, "first declared here"),
                );
            }
            Some((first, first_span)) => {
                self.diags.push(
                    Diagnostic::new(
                        Code::CaseCollision,
                        span,
                        format!(
                            "{} `{name}` collides with `{first}`: both become `{key}`",
                            self.what
                        ),
                    )
                    .with_label("collides after case conversion")
                    .with_note(*first_span, format!("`{first}` declared here"))
                    .with_help("rename one of them; generated Rust names would be the same"),
                );
            }
            None => {
                self.seen.insert(key, (name.to_string(), span));
            }
        }
    }
}

fn snake(s: &str) -> String {
    s.to_snake_case()
}

/// The Rust name of an event type (`user.created` and `user-created`: `user_created`).
fn event_ident(s: &str) -> String {
    s.replace(['.', '-'], "_").to_snake_case()
}

fn pascal(s: &str) -> String {
    s.to_upper_camel_case()
}

fn check_file(unit: &Unit<'_>, units: &[Unit<'_>], diags: &mut Vec<Diagnostic>) {
    let file = unit.ast;
    let mut types = Vec::new();
    let mut errors = Vec::new();
    let mut events: Vec<(&str, Span)> = Vec::new();
    for item in &file.items {
        match item {
            ast::Item::Struct(s) => {
                types.push((&s.name, "type"));
                check_fields(&s.fields, "field", diags);
            }
            ast::Item::Enum(e) => {
                types.push((&e.name, "type"));
                let mut names = Namespace::new("variant", diags).folding(pascal);
                for v in &e.variants {
                    names.add(&v.name.name, v.name.span);
                }
                let mut wires = Namespace::new("variant value", diags);
                for v in &e.variants {
                    let span = v.value.as_ref().map_or(v.name.span, |s| s.span);
                    wires.add(v.value.as_ref().map_or(&v.name.name, |s| &s.value), span);
                }
            }
            ast::Item::Alias(a) => types.push((&a.name, "type")),
            ast::Item::Error(e) => errors.push(&e.code),
            ast::Item::Event(e) => {
                check_topic(&e.name.value, e.name.span, true, "event type", diags);
                events.push((&e.name.value, e.name.span));
            }
            ast::Item::Service(s) => {
                types.push((&s.name, "service"));
                check_service(s, diags);
            }
        }
    }
    let mut ns = Namespace::new("type", diags);
    for (name, _) in &types {
        if TypeRef::builtin(&name.name).is_some() {
            ns.diags.push(
                Diagnostic::new(
                    Code::ReservedName,
                    name.span,
                    format!("`{}` is a built-in type", name.name),
                )
                .with_label("cannot be declared again")
                .with_help("choose another name"),
            );
        } else {
            ns.add(&name.name, name.span);
        }
    }
    let mut ns = Namespace::new("error code", diags);
    for code in errors {
        ns.add(&code.name, code.span);
    }
    // `x-y` and `x_y` would both become the constant `X_Y` and the method `x_y`.
    let mut ns = Namespace::new("event type", diags).folding(event_ident);
    for (name, span) in &events {
        ns.add(name, *span);
    }
    // Event types are global on the wire: one declared here and in an imported package clash.
    for (name, span) in &events {
        for &imp in &unit.imports {
            let Some(other) = units.get(imp) else {
                continue;
            };
            for item in &other.ast.items {
                if let ast::Item::Event(e) = item
                    && e.name.value == *name
                {
                    diags.push(
                        Diagnostic::new(
                            Code::Duplicate,
                            *span,
                            format!(
                                "event type `{name}` is also declared in package `{}`",
                                other.ast.package.name
                            ),
                        )
                        .with_label("declared again here")
                        .with_note(e.name.span, "first declared here")
                        .with_help(
                            "declare an event type once and import the file that declares it",
                        ),
                    );
                }
            }
        }
    }
    let mut ns = Namespace::new("import", diags);
    for imp in &file.imports {
        ns.add(&imp.path.value, imp.path.span);
    }
}

fn check_fields(fields: &[ast::Field], what: &'static str, diags: &mut Vec<Diagnostic>) {
    let mut ns = Namespace::new(what, diags).folding(snake);
    for f in fields {
        ns.add(&f.name.name, f.name.span);
    }
}

fn check_params(params: &[&ast::Field], http: bool, diags: &mut Vec<Diagnostic>) {
    let mut ns = Namespace::new("parameter", diags).folding(snake);
    for p in params {
        ns.add(&p.name.name, p.name.span);
    }
    for p in params {
        let name = p.name.name.as_str();
        let reserved = name == "_headers" || (http && (name == "request" || name == "body"));
        if reserved {
            let why = if name == "_headers" {
                "Kontiki passes the message headers as `_headers` (`include_headers`)"
            } else {
                "Kontiki passes `request` and `body` to HTTP handlers"
            };
            diags.push(
                Diagnostic::new(
                    Code::ReservedName,
                    p.name.span,
                    format!("parameter name `{name}` is reserved"),
                )
                .with_label("reserved by Kontiki")
                .with_help(format!("{why}; choose another name")),
            );
        }
    }
}

fn check_service(svc: &ast::Service, diags: &mut Vec<Diagnostic>) {
    let mut props = Namespace::new("property", diags);
    for m in &svc.members {
        if let ast::Member::Property(p) = m {
            props.add(&p.name.name, p.name.span);
        }
    }
    for m in &svc.members {
        if let ast::Member::Property(p) = m
            && p.name.name == "name"
            && let ast::ValueKind::Str(s) = &p.value.kind
        {
            check_topic(s, p.value.span, false, "service name", diags);
        }
    }
    if !svc
        .members
        .iter()
        .any(|m| matches!(m, ast::Member::Property(p) if p.name.name == "name"))
    {
        check_topic(&svc.name.name, svc.name.span, false, "service name", diags);
    }

    // Every entrypoint becomes a method of one generated trait: one namespace, snake_case.
    let mut methods = Namespace::new("entrypoint", diags).folding(snake);
    for m in &svc.members {
        let name = match m {
            ast::Member::Rpc(r) => &r.name,
            ast::Member::Handler(h) => &h.name,
            ast::Member::Http(h) => &h.name,
            ast::Member::Task(t) => &t.name,
            _ => continue,
        };
        methods.add(&name.name, name.span);
    }
    let mut headers = Namespace::new("header", diags);
    for m in &svc.members {
        if let ast::Member::Header(h) = m {
            headers.add(&h.name.value, h.name.span);
        }
    }
    let mut emitted = Namespace::new("emitted event", diags);
    for m in &svc.members {
        if let ast::Member::Emits(e) = m {
            for ev in &e.events {
                emitted.add(&ev.value, ev.span);
            }
        }
    }
    for m in &svc.members {
        match m {
            ast::Member::Rpc(r) => {
                if r.name.name == SESSION_OPEN_RPC {
                    diags.push(
                        Diagnostic::new(Code::ReservedName, r.name.span, format!("RPC name `{SESSION_OPEN_RPC}` is reserved"))
                            .with_label("Kontiki's own session-open RPC")
                            .with_help("every Kontiki consumer already serves this method; choose another name"),
                    );
                }
                check_params(&r.params.iter().collect::<Vec<_>>(), false, diags);
            }
            ast::Member::Header(h) => {
                if RESERVED_HEADERS.contains(&h.name.value.as_str()) {
                    diags.push(
                        Diagnostic::new(
                            Code::ReservedName,
                            h.name.span,
                            format!("header name `{}` is reserved", h.name.value),
                        )
                        .with_label("Kontiki writes this header itself")
                        .with_help(format!(
                            "reserved header names: {}",
                            RESERVED_HEADERS.join(", ")
                        )),
                    );
                } else if h.name.value.trim().is_empty() {
                    diags.push(
                        Diagnostic::new(Code::InvalidOption, h.name.span, "empty header name")
                            .with_label("here"),
                    );
                }
            }
            ast::Member::Emits(e) => {
                for ev in &e.events {
                    check_topic(&ev.value, ev.span, true, "event type", diags);
                }
            }
            ast::Member::Handler(h) => {
                if let ast::EventSource::Events(evs) = &h.source {
                    let mut ns = Namespace::new("event type in this handler", diags);
                    for ev in evs {
                        ns.add(&ev.value, ev.span);
                    }
                    for ev in evs {
                        check_topic(&ev.value, ev.span, true, "event type", diags);
                    }
                }
            }
            ast::Member::Http(h) => {
                let all: Vec<&ast::Field> = h.path_params.iter().chain(&h.query).collect();
                check_params(&all, true, diags);
            }
            ast::Member::Property(_) | ast::Member::Task(_) => {}
        }
    }
}

/// Checks that `value` is a valid topic routing key (dotted words when `dots` is set, a single
/// word otherwise): no empty word, no `*` or `#`, no whitespace.
fn check_topic(value: &str, span: Span, dots: bool, what: &str, diags: &mut Vec<Diagnostic>) {
    let problem = if value.is_empty() {
        Some("it is empty".to_string())
    } else if value.contains(['*', '#']) {
        Some("`*` and `#` are AMQP topic wildcards".to_string())
    } else if value.chars().any(char::is_whitespace) {
        Some("it contains whitespace".to_string())
    } else if !dots && value.contains('.') {
        Some("a `.` would split it into several routing-key words".to_string())
    } else if value.split('.').any(str::is_empty) {
        Some("it has an empty word (`..`, or a `.` at either end)".to_string())
    } else {
        None
    };
    if let Some(problem) = problem {
        diags.push(
            Diagnostic::new(
                Code::InvalidTopic,
                span,
                format!("invalid {what} `{value}`: {problem}"),
            )
            .with_label("not a valid AMQP topic word")
            .with_help(if dots {
                "use dotted words of letters, digits, `_` and `-`, such as `user.created`"
            } else {
                "use one word of letters, digits, `_` and `-`, such as `compute-api`"
            }),
        );
    }
}
