//! The view model the templates render: one [`FileView`] per package, with every Rust name,
//! type and expression worked out here so the templates only lay code out.

use heck::{ToShoutySnakeCase, ToSnakeCase, ToUpperCamelCase};
use kontiki_idl::model::{
    self as idl, EventSource, HttpPath, NamedKind, Package, Schedule, TypeRef, Value,
};
use serde::Serialize;

use crate::Opts;

/// A package, ready for the Rust template.
#[derive(Debug, Serialize)]
pub(crate) struct FileView {
    /// The source file as shown in the header.
    pub(crate) source: String,
    pub(crate) package: String,
    pub(crate) types: Vec<TypeView>,
    pub(crate) services: Vec<ServiceView>,
}

/// A declared type.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum TypeView {
    Struct {
        ident: String,
        docs: Vec<String>,
        fields: Vec<FieldView>,
    },
    Enum {
        ident: String,
        docs: Vec<String>,
        variants: Vec<VariantView>,
    },
    Alias {
        ident: String,
        docs: Vec<String>,
        ty: String,
    },
}

#[derive(Debug, Serialize)]
pub(crate) struct FieldView {
    pub(crate) ident: String,
    pub(crate) wire: String,
    pub(crate) docs: Vec<String>,
    pub(crate) ty: String,
    /// Contents of `#[serde(...)]`, if any.
    pub(crate) serde: Vec<String>,
    /// `fn default_x() -> T { expr }` for a declared default.
    pub(crate) default_fn: Option<String>,
    pub(crate) default_expr: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct VariantView {
    pub(crate) ident: String,
    pub(crate) wire: String,
    pub(crate) docs: Vec<String>,
}

/// A service, ready for the template.
#[derive(Debug, Serialize)]
pub(crate) struct ServiceView {
    pub(crate) ident: String,
    pub(crate) module: String,
    /// The module has the package's name (clippy's `module_inception`).
    pub(crate) inception: bool,
    pub(crate) wire_name: String,
    pub(crate) version: String,
    pub(crate) version_declared: bool,
    pub(crate) docs: Vec<String>,
    pub(crate) server: bool,
    pub(crate) client: bool,
    pub(crate) events: Vec<EventConst>,
    pub(crate) rpcs: Vec<MethodView>,
    pub(crate) handlers: Vec<HandlerView>,
    pub(crate) routes: Vec<MethodView>,
    pub(crate) tasks: Vec<TaskView>,
    pub(crate) emits: Vec<EventUse>,
    pub(crate) session_events: Vec<EventUse>,
    pub(crate) headers: Vec<HeaderView>,
    pub(crate) openapi: Vec<OpenApiConst>,
}

#[derive(Debug, Serialize)]
pub(crate) struct HeaderView {
    pub(crate) name: String,
    pub(crate) ty: String,
    pub(crate) docs: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct EventConst {
    pub(crate) ident: String,
    pub(crate) wire: String,
    pub(crate) docs: Vec<String>,
}

/// An event type used by a publisher or a session handle.
#[derive(Debug, Serialize)]
pub(crate) struct EventUse {
    pub(crate) method: String,
    pub(crate) konst: String,
    pub(crate) wire: String,
    pub(crate) payload: String,
    pub(crate) docs: Vec<String>,
}

/// An RPC or an HTTP route: a trait method with typed parameters and its error enums.
#[derive(Debug, Serialize)]
pub(crate) struct MethodView {
    pub(crate) wire: String,
    pub(crate) method: String,
    pub(crate) docs: Vec<String>,
    pub(crate) params: Vec<ParamView>,
    pub(crate) returns: String,
    pub(crate) include_headers: bool,
    /// More than clippy's `too_many_arguments` allows.
    pub(crate) many_args: bool,
    /// Named like a conversion (`from_x`, `to_x`...): clippy's `wrong_self_convention`.
    pub(crate) convention: bool,
    pub(crate) error: ErrorEnum,
    /// For routes: `GET /items/{id}`.
    pub(crate) http: Option<String>,
    pub(crate) route: Option<RouteView>,
}

/// What the server adapter needs to register a route.
#[derive(Debug, Serialize)]
pub(crate) struct RouteView {
    /// `GET`, `POST`...
    pub(crate) method: &'static str,
    /// The path template, or the config key holding it.
    pub(crate) path: String,
    pub(crate) from_config: bool,
    pub(crate) version: Option<String>,
    pub(crate) status: u16,
    pub(crate) has_response: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct ParamView {
    pub(crate) ident: String,
    pub(crate) wire: String,
    pub(crate) docs: Vec<String>,
    pub(crate) ty: String,
    /// The client takes `impl Into<String>` for plain strings.
    pub(crate) into_string: bool,
    pub(crate) required: bool,
    pub(crate) default_expr: Option<String>,
    /// `arg` (RPC), `path`, `query` or `body` (HTTP).
    pub(crate) source: &'static str,
}

#[derive(Debug, Serialize)]
pub(crate) struct ErrorEnum {
    pub(crate) ident: String,
    pub(crate) client_ident: String,
    pub(crate) variants: Vec<ErrorVariant>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ErrorVariant {
    pub(crate) ident: String,
    pub(crate) ctor: String,
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) docs: Vec<String>,
    pub(crate) status: Option<u16>,
}

#[derive(Debug, Serialize)]
pub(crate) struct HandlerView {
    pub(crate) name: String,
    pub(crate) method: String,
    pub(crate) docs: Vec<String>,
    pub(crate) include_headers: bool,
    pub(crate) convention: bool,
    pub(crate) mode: &'static str,
    pub(crate) max_attempts: u32,
    /// `single`, `multi` or `config`.
    pub(crate) shape: &'static str,
    /// The payload type (single), or the generated enum (multi).
    pub(crate) payload: String,
    pub(crate) enum_ident: String,
    pub(crate) events: Vec<EventUse>,
    pub(crate) config_key: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct TaskView {
    pub(crate) name: String,
    pub(crate) method: String,
    pub(crate) convention: bool,
    /// A `rt::Schedule` expression.
    pub(crate) schedule_expr: String,
    pub(crate) immediate: bool,
    pub(crate) time_zone: Option<String>,
    pub(crate) docs: Vec<String>,
    pub(crate) schedule: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct OpenApiConst {
    pub(crate) ident: String,
    pub(crate) version: String,
    pub(crate) file: String,
    pub(crate) literal: String,
}

/// Where a type is named from: the file's top level, or inside a service module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Top,
    Service,
}

/// Turns a package into its view.
pub(crate) fn file_view(
    model: &idl::Model,
    pkg: &Package,
    source: String,
    opts: &Opts,
    openapi: &dyn Fn(&idl::Service) -> Vec<OpenApiConst>,
) -> FileView {
    let cx = Cx { model, pkg };
    FileView {
        source,
        package: pkg.name.clone(),
        types: pkg.types.iter().map(|t| cx.type_view(t)).collect(),
        services: pkg
            .services
            .iter()
            .filter(|s| opts.wants_service(s))
            .map(|s| cx.service_view(s, opts, openapi(s)))
            .collect(),
    }
}

struct Cx<'a> {
    model: &'a idl::Model,
    pkg: &'a Package,
}

impl Cx<'_> {
    fn type_view(&self, t: &idl::TypeDef) -> TypeView {
        match t {
            idl::TypeDef::Struct(s) => {
                let ident = type_ident(&s.name);
                TypeView::Struct {
                    fields: s
                        .fields
                        .iter()
                        .map(|f| self.field_view(&ident, f))
                        .collect(),
                    ident,
                    docs: docs(&s.docs),
                }
            }
            idl::TypeDef::Enum(e) => TypeView::Enum {
                ident: type_ident(&e.name),
                docs: docs(&e.docs),
                variants: e
                    .variants
                    .iter()
                    .map(|v| VariantView {
                        ident: variant_ident(&v.name),
                        wire: v.wire.clone(),
                        docs: docs(&v.docs),
                    })
                    .collect(),
            },
            idl::TypeDef::Alias(a) => TypeView::Alias {
                ident: type_ident(&a.name),
                docs: docs(&a.docs),
                ty: self.rust_type(&a.ty, Scope::Top),
            },
        }
    }

    fn field_view(&self, owner: &str, f: &idl::Field) -> FieldView {
        let ident = field_ident(&f.name);
        let mut serde = Vec::new();
        if unraw(&ident) != f.name {
            serde.push(format!("rename = {}", rust_str(&f.name)));
        }
        let ty = self.rust_type(&f.ty, Scope::Top);
        let mut default_fn = None;
        let mut default_expr = None;
        if let Some(v) = &f.default {
            let name = format!("default_{}", unraw(&ident));
            serde.push(format!(
                "default = {}",
                rust_str(&format!("{owner}::{name}"))
            ));
            default_expr = Some(self.value_expr(v, &f.ty, Scope::Top));
            default_fn = Some(name);
        } else if self.is_optional(&f.ty) {
            serde.push("default".to_owned());
        }
        FieldView {
            ident,
            wire: f.name.clone(),
            docs: docs(&f.docs),
            ty,
            serde,
            default_fn,
            default_expr,
        }
    }

    /// `T?` and `json` (directly or through aliases): may be missing or null.
    fn is_optional(&self, ty: &TypeRef) -> bool {
        matches!(self.resolve(ty), TypeRef::Optional(_) | TypeRef::Json)
    }

    /// Follows aliases.
    fn resolve<'t>(&'t self, ty: &'t TypeRef) -> &'t TypeRef {
        let mut ty = ty;
        for _ in 0..64 {
            match ty {
                TypeRef::Named(n) if n.kind == NamedKind::Alias => match self.model.type_def(n) {
                    Some(idl::TypeDef::Alias(a)) => ty = &a.ty,
                    _ => return ty,
                },
                _ => return ty,
            }
        }
        ty
    }

    pub(crate) fn rust_type(&self, ty: &TypeRef, scope: Scope) -> String {
        let rt = match scope {
            Scope::Top => "::kontiki_rt::codegen::",
            Scope::Service => "rt::",
        };
        match ty {
            TypeRef::Bool => "bool".into(),
            TypeRef::I32 => "i32".into(),
            TypeRef::I64 => "i64".into(),
            TypeRef::U32 => "u32".into(),
            TypeRef::U64 => "u64".into(),
            TypeRef::F64 => "f64".into(),
            TypeRef::String => "String".into(),
            TypeRef::Bytes => format!("{rt}Bytes"),
            TypeRef::Datetime => format!("{rt}DateTime"),
            TypeRef::Date => format!("{rt}Date"),
            TypeRef::Uuid => format!("{rt}Uuid"),
            TypeRef::Json => format!("{rt}Json"),
            TypeRef::Optional(t) => format!("Option<{}>", self.rust_type(t, scope)),
            TypeRef::List(t) => format!("Vec<{}>", self.rust_type(t, scope)),
            TypeRef::Map(t) => format!(
                "::std::collections::BTreeMap<String, {}>",
                self.rust_type(t, scope)
            ),
            TypeRef::Named(n) => {
                let up = match scope {
                    Scope::Top => "",
                    Scope::Service => "super::",
                };
                if n.package == self.pkg.name {
                    format!("{up}{}", type_ident(&n.name))
                } else {
                    format!("{up}super::{}::{}", n.package, type_ident(&n.name))
                }
            }
        }
    }

    /// A Rust expression for a checked default value of type `ty`.
    fn value_expr(&self, v: &Value, ty: &TypeRef, scope: Scope) -> String {
        let rt = match scope {
            Scope::Top => "::kontiki_rt::codegen::",
            Scope::Service => "rt::",
        };
        let resolved = self.resolve(ty);
        match (v, resolved) {
            (_, TypeRef::Json) => {
                format!("{rt}serde_json::json!({})", json_literal(v))
            }
            (Value::Null, _) => "None".into(),
            (_, TypeRef::Optional(inner)) => {
                format!("Some({})", self.value_expr(v, inner, scope))
            }
            (Value::Bool(b), _) => b.to_string(),
            (Value::Int(i), TypeRef::F64) => format!("{i}.0"),
            (Value::Int(i), TypeRef::I32) => format!("{i}_i32"),
            (Value::Int(i), TypeRef::U32) => format!("{i}_u32"),
            (Value::Int(i), TypeRef::U64) => format!("{i}_u64"),
            (Value::Int(i), _) => format!("{i}_i64"),
            (Value::UInt(u), _) => format!("{u}_u64"),
            (Value::Float(f), _) => {
                let s = format!("{f:?}");
                if s.contains(['.', 'e', 'E']) {
                    format!("{s}_f64")
                } else {
                    format!("{s}.0")
                }
            }
            (Value::String(s), TypeRef::String) => format!("{}.to_owned()", rust_str(s)),
            (Value::EnumVariant { name, .. }, _) => {
                format!("{}::{}", self.rust_type(ty, scope), variant_ident(name))
            }
            (Value::List(items), TypeRef::List(inner)) => format!(
                "vec![{}]",
                items
                    .iter()
                    .map(|i| self.value_expr(i, inner, scope))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (Value::Map(entries), TypeRef::Map(inner)) => format!(
                "[{}].into_iter().collect()",
                entries
                    .iter()
                    .map(|(k, val)| format!(
                        "({}.to_owned(), {})",
                        rust_str(k),
                        self.value_expr(val, inner, scope)
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            // Dates, datetimes, uuids and struct literals: decoded from their JSON form,
            // exactly as a missing field would be filled in by a Python peer.
            _ => format!(
                "{rt}serde_json::from_value({rt}serde_json::json!({})).expect(\"invariant: kontiki-codegen checked the default\")",
                json_literal(v)
            ),
        }
    }

    fn service_view(
        &self,
        s: &idl::Service,
        opts: &Opts,
        openapi: Vec<OpenApiConst>,
    ) -> ServiceView {
        let module = s.name.to_snake_case();
        let mut events: Vec<EventConst> = Vec::new();
        let mut add_event = |name: &str| {
            if !events.iter().any(|e| e.wire == name) {
                let docs = self.event_docs(name);
                events.push(EventConst {
                    ident: const_ident(name),
                    wire: name.to_owned(),
                    docs,
                });
            }
        };
        for e in &s.emits {
            add_event(&e.name);
        }
        for h in &s.handlers {
            if let EventSource::Events(evs) = &h.source {
                for e in evs {
                    add_event(&e.name);
                }
            }
        }
        let mut session_events = Vec::new();
        for h in &s.handlers {
            if h.mode == idl::EventMode::InSession
                && let EventSource::Events(evs) = &h.source
            {
                for e in evs {
                    if !session_events.iter().any(|u: &EventUse| u.wire == e.name) {
                        session_events.push(self.event_use(e));
                    }
                }
            }
        }
        ServiceView {
            ident: type_ident(&s.name),
            inception: module == self.pkg.name,
            module,
            wire_name: s.wire_name.clone(),
            version: s.version.clone().unwrap_or_else(|| "1.0.0".to_owned()),
            version_declared: s.version.is_some(),
            docs: docs(&s.docs),
            server: opts.server(),
            client: opts.client(),
            events,
            rpcs: s.rpcs.iter().map(|r| self.rpc_view(r)).collect(),
            handlers: s.handlers.iter().map(|h| self.handler_view(h)).collect(),
            routes: s.routes.iter().map(|r| self.route_view(r)).collect(),
            tasks: s
                .tasks
                .iter()
                .map(|t| TaskView {
                    name: t.name.clone(),
                    method: method_ident(&t.name),
                    convention: conversion_name(&t.name),
                    schedule_expr: schedule_expr(&t.schedule),
                    immediate: t.immediate,
                    time_zone: t.time_zone.clone(),
                    docs: docs(&t.docs),
                    schedule: schedule_text(&t.schedule, t.immediate),
                })
                .collect(),
            emits: s.emits.iter().map(|e| self.event_use(e)).collect(),
            session_events,
            headers: s
                .headers
                .iter()
                .map(|h| HeaderView {
                    name: h.name.clone(),
                    ty: self.rust_type(&h.ty, Scope::Service),
                    docs: docs(&h.docs),
                })
                .collect(),
            openapi,
        }
    }

    fn event_docs(&self, name: &str) -> Vec<String> {
        self.model
            .packages
            .iter()
            .flat_map(|p| &p.events)
            .find(|e| e.name == name)
            .map(|e| docs(&e.docs))
            .unwrap_or_default()
    }

    fn event_use(&self, e: &idl::EventRef) -> EventUse {
        EventUse {
            method: method_ident(&e.name.replace(['.', '-'], "_")),
            konst: const_ident(&e.name),
            wire: e.name.clone(),
            payload: self.rust_type(&e.payload, Scope::Service),
            docs: self.event_docs(&e.name),
        }
    }

    fn param_view(&self, f: &idl::Field, source: &'static str) -> ParamView {
        let default_expr = f
            .default
            .as_ref()
            .map(|v| self.value_expr(v, &f.ty, Scope::Service));
        ParamView {
            ident: param_ident(&f.name),
            wire: f.name.clone(),
            docs: docs(&f.docs),
            ty: self.rust_type(&f.ty, Scope::Service),
            into_string: f.ty == TypeRef::String,
            required: f.default.is_none() && !self.is_optional(&f.ty),
            default_expr,
            source,
        }
    }

    fn error_enum(&self, name: &str, errors: &[(idl::ErrorRef, Option<u16>)]) -> ErrorEnum {
        let base = name.to_upper_camel_case();
        ErrorEnum {
            ident: format!("{base}Error"),
            client_ident: format!("{base}ClientError"),
            variants: errors
                .iter()
                .map(|(e, status)| ErrorVariant {
                    ident: variant_ident(&e.code.to_lowercase()),
                    ctor: method_ident(&e.code.to_lowercase()),
                    code: e.code.clone(),
                    message: e.message.clone(),
                    docs: self
                        .model
                        .package(&e.package)
                        .and_then(|p| p.errors.iter().find(|d| d.code == e.code))
                        .map(|d| docs(&d.docs))
                        .unwrap_or_default(),
                    status: *status,
                })
                .collect(),
        }
    }

    fn rpc_view(&self, r: &idl::Rpc) -> MethodView {
        let params: Vec<ParamView> = r.params.iter().map(|p| self.param_view(p, "arg")).collect();
        let errors: Vec<_> = r.errors.iter().map(|e| (e.clone(), None)).collect();
        MethodView {
            wire: r.name.clone(),
            method: method_ident(&r.name),
            docs: docs(&r.docs),
            many_args: params.len() + 2 + usize::from(r.include_headers) > 7,
            params,
            returns: r
                .returns
                .as_ref()
                .map_or_else(|| "()".to_owned(), |t| self.rust_type(t, Scope::Service)),
            include_headers: r.include_headers,
            convention: conversion_name(&r.name),
            error: self.error_enum(&r.name, &errors),
            http: None,
            route: None,
        }
    }

    fn route_view(&self, r: &idl::HttpRoute) -> MethodView {
        let mut params: Vec<ParamView> = r
            .path_params
            .iter()
            .map(|p| self.param_view(p, "path"))
            .chain(r.query.iter().map(|p| self.param_view(p, "query")))
            .collect();
        if let Some(body) = &r.body {
            params.push(ParamView {
                ident: "body".into(),
                wire: "body".into(),
                docs: vec!["The validated request body.".into()],
                ty: self.rust_type(body, Scope::Service),
                into_string: false,
                required: true,
                default_expr: None,
                source: "body",
            });
        }
        let errors: Vec<_> = r
            .errors
            .iter()
            .map(|e| (e.error.clone(), Some(e.status)))
            .collect();
        let (path, route_path, from_config) = match &r.path {
            HttpPath::Literal(p) => (p.clone(), p.clone(), false),
            HttpPath::Config(k) => (format!("<config {k}>"), k.clone(), true),
        };
        MethodView {
            wire: r.name.clone(),
            method: method_ident(&r.name),
            docs: docs(&r.docs),
            many_args: params.len() + 2 > 7,
            params,
            returns: r
                .response
                .as_ref()
                .map_or_else(|| "()".to_owned(), |t| self.rust_type(t, Scope::Service)),
            include_headers: false,
            convention: conversion_name(&r.name),
            error: self.error_enum(&r.name, &errors),
            http: Some(format!("{} {path}", r.method.as_str())),
            route: Some(RouteView {
                method: r.method.as_str(),
                path: route_path,
                from_config,
                version: r.version.clone(),
                status: r.status,
                has_response: r.response.is_some(),
            }),
        }
    }

    fn handler_view(&self, h: &idl::EventHandler) -> HandlerView {
        let (shape, payload, events, config_key) = match &h.source {
            EventSource::Events(evs) if evs.len() == 1 => (
                "single",
                self.rust_type(&evs[0].payload, Scope::Service),
                evs.iter().map(|e| self.event_use(e)).collect(),
                String::new(),
            ),
            EventSource::Events(evs) => (
                "multi",
                format!("{}Event", h.name.to_upper_camel_case()),
                evs.iter()
                    .map(|e| {
                        let mut u = self.event_use(e);
                        u.method = variant_ident(&e.name.replace(['.', '-'], "_"));
                        u
                    })
                    .collect(),
                String::new(),
            ),
            EventSource::Config(key) => ("config", "rt::Json".to_owned(), Vec::new(), key.clone()),
        };
        HandlerView {
            name: h.name.clone(),
            method: method_ident(&h.name),
            docs: docs(&h.docs),
            include_headers: h.include_headers,
            convention: conversion_name(&h.name),
            mode: match h.mode {
                idl::EventMode::Competing => "Competing",
                idl::EventMode::Broadcast => "Broadcast",
                idl::EventMode::InSession => "InSession",
            },
            max_attempts: h.max_attempts,
            shape,
            enum_ident: format!("{}Event", h.name.to_upper_camel_case()),
            payload,
            events,
            config_key,
        }
    }
}

/// Names clippy's `wrong_self_convention` expects to be conversions.
fn conversion_name(name: &str) -> bool {
    let n = name.to_snake_case();
    ["from_", "into_", "to_", "as_", "is_"]
        .iter()
        .any(|p| n.starts_with(p))
}

fn schedule_expr(s: &Schedule) -> String {
    match s {
        Schedule::Interval { seconds } => {
            format!("rt::Schedule::Every(std::time::Duration::from_secs({seconds}))")
        }
        Schedule::IntervalConfig(k) => {
            format!("rt::Schedule::EveryConfig({}.to_owned())", rust_str(k))
        }
        Schedule::Cron(c) => format!("rt::Schedule::Cron({}.to_owned())", rust_str(c)),
        Schedule::CronConfig(k) => format!("rt::Schedule::CronConfig({}.to_owned())", rust_str(k)),
    }
}

fn schedule_text(s: &Schedule, immediate: bool) -> String {
    let when = match s {
        Schedule::Interval { seconds } => format!("every {seconds} s"),
        Schedule::IntervalConfig(k) => format!("every N seconds, N from config `{k}`"),
        Schedule::Cron(c) => format!("on cron `{c}` (local time)"),
        Schedule::CronConfig(k) => format!("on the cron expression from config `{k}`"),
    };
    if immediate {
        format!("{when}, and once at start")
    } else {
        when
    }
}

/// Doc lines, each starting with a space so `///{line}` reads `/// line`.
pub(crate) fn docs(d: &kontiki_idl::ast::Docs) -> Vec<String> {
    d.lines().to_vec()
}

const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "else", "enum", "extern", "false", "fn", "for", "if",
    "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "static",
    "struct", "trait", "true", "type", "unsafe", "use", "where", "while", "async", "await", "dyn",
    "abstract", "become", "box", "do", "final", "macro", "override", "priv", "typeof", "unsized",
    "virtual", "yield", "try", "gen",
];

/// Keywords that cannot be raw identifiers.
const NOT_RAW: &[&str] = &["self", "Self", "super", "crate", "_"];

fn escape(ident: String) -> String {
    if NOT_RAW.contains(&ident.as_str()) {
        format!("{ident}_")
    } else if KEYWORDS.contains(&ident.as_str()) {
        format!("r#{ident}")
    } else {
        ident
    }
}

/// Strips `r#`.
pub(crate) fn unraw(ident: &str) -> &str {
    ident.strip_prefix("r#").unwrap_or(ident)
}

pub(crate) fn type_ident(name: &str) -> String {
    escape(name.to_upper_camel_case())
}

pub(crate) fn variant_ident(name: &str) -> String {
    escape(name.to_upper_camel_case())
}

pub(crate) fn field_ident(name: &str) -> String {
    escape(name.to_snake_case())
}

pub(crate) fn method_ident(name: &str) -> String {
    escape(name.to_snake_case())
}

/// Parameter names that would shadow the adapter's own locals get a trailing `_`.
fn param_ident(name: &str) -> String {
    let ident = field_ident(name);
    if [
        "ctx", "headers", "args", "svc", "call", "options", "event", "rt",
    ]
    .contains(&ident.as_str())
    {
        format!("{ident}_")
    } else {
        ident
    }
}

pub(crate) fn const_ident(name: &str) -> String {
    let s = name.replace(['.', '-', ' '], "_").to_shouty_snake_case();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        format!("E_{s}")
    } else {
        s
    }
}

/// A Rust string literal.
pub(crate) fn rust_str(s: &str) -> String {
    format!("{s:?}")
}

/// A JSON literal for `serde_json::json!`.
fn json_literal(v: &Value) -> String {
    serde_json::to_string(&to_json(v)).unwrap_or_else(|_| "null".to_owned())
}

/// A default value as JSON (enum variants as their wire strings).
pub(crate) fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::UInt(u) => (*u).into(),
        Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into)
        }
        Value::String(s) => s.clone().into(),
        Value::EnumVariant { wire, .. } => wire.clone().into(),
        Value::List(items) => items.iter().map(to_json).collect(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| (k.clone(), to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}
