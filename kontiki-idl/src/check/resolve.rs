//! Resolution: type, error and event references; options; defaults. Builds the model.

use std::collections::HashMap;

use super::Unit;
use super::options::Options;
use super::schedule::parse_interval;
use crate::ast::{self, ValueKind};
use crate::diagnostic::{Code, Diagnostic, did_you_mean};
use crate::model::{self, NamedKind, NamedType, TypeRef, Value};

/// A declared type as the resolver sees it.
struct TypeEntry<'a> {
    kind: NamedKind,
    alias: Option<&'a ast::TypeExpr>,
    variants: Option<&'a ast::Enum>,
}

/// Lowers every unit, imports first (units are in that order already).
pub(crate) fn lower(units: &[Unit<'_>], diags: &mut Vec<Diagnostic>) -> Vec<model::Package> {
    let tables: Vec<HashMap<&str, TypeEntry<'_>>> =
        units.iter().map(|u| type_table(u.ast)).collect();
    let mut packages: Vec<model::Package> = Vec::with_capacity(units.len());
    for idx in 0..units.len() {
        let cx = Cx {
            units,
            tables: &tables,
            unit: idx,
        };
        let package = cx.lower_unit(&packages, diags);
        packages.push(package);
    }
    check_alias_cycles(units, &tables, diags);
    packages
}

fn type_table<'a>(file: &'a ast::File) -> HashMap<&'a str, TypeEntry<'a>> {
    let mut map = HashMap::new();
    for item in &file.items {
        let (name, entry) = match item {
            ast::Item::Struct(s) => (
                &s.name.name,
                TypeEntry {
                    kind: NamedKind::Struct,
                    alias: None,
                    variants: None,
                },
            ),
            ast::Item::Enum(e) => (
                &e.name.name,
                TypeEntry {
                    kind: NamedKind::Enum,
                    alias: None,
                    variants: Some(e),
                },
            ),
            ast::Item::Alias(a) => (
                &a.name.name,
                TypeEntry {
                    kind: NamedKind::Alias,
                    alias: Some(&a.ty),
                    variants: None,
                },
            ),
            _ => continue,
        };
        map.entry(name.as_str()).or_insert(entry);
    }
    map
}

fn check_alias_cycles(
    units: &[Unit<'_>],
    tables: &[HashMap<&str, TypeEntry<'_>>],
    diags: &mut Vec<Diagnostic>,
) {
    for (idx, unit) in units.iter().enumerate() {
        for item in &unit.ast.items {
            let ast::Item::Alias(a) = item else { continue };
            let mut at = (idx, a.name.name.clone());
            for _ in 0..64 {
                let Some(entry) = tables[at.0].get(at.1.as_str()) else {
                    break;
                };
                let Some(mut ty) = entry.alias else { break };
                while let ast::TypeExprKind::Optional(inner) = &ty.kind {
                    ty = inner;
                }
                let ast::TypeExprKind::Named(path) = &ty.kind else {
                    break;
                };
                let cx = Cx {
                    units,
                    tables,
                    unit: at.0,
                };
                let Some((u, _)) = cx.lookup(path) else { break };
                at = (u, path.name.name.clone());
                if at.0 == idx && at.1 == a.name.name {
                    diags.push(
                        Diagnostic::new(Code::AliasCycle, a.name.span, format!("type alias `{}` refers to itself", a.name.name))
                            .with_label("this alias never reaches a real type")
                            .with_help("an alias must end in a built-in type, a struct, an enum, `list<...>` or `map<...>`"),
                    );
                    break;
                }
            }
        }
    }
}

struct Cx<'u, 'a> {
    units: &'u [Unit<'a>],
    tables: &'u [HashMap<&'a str, TypeEntry<'a>>],
    unit: usize,
}

impl<'u, 'a> Cx<'u, 'a> {
    fn file(&self) -> &'a ast::File {
        self.units[self.unit].ast
    }

    fn package_name(&self) -> &'a str {
        &self.file().package.name
    }

    /// The unit a package qualifier names (this file or a direct import).
    fn unit_of(&self, pkg: &str) -> Option<usize> {
        if pkg == self.package_name() {
            return Some(self.unit);
        }
        self.units[self.unit]
            .imports
            .iter()
            .copied()
            .find(|&i| self.units[i].ast.package.name == pkg)
    }

    fn imported_names(&self) -> Vec<&'a str> {
        self.units[self.unit]
            .imports
            .iter()
            .map(|&i| self.units[i].ast.package.name.as_str())
            .collect()
    }

    /// Finds a declared type without reporting anything.
    fn lookup(&self, path: &ast::Path) -> Option<(usize, NamedKind)> {
        let unit = match &path.package {
            Some(p) => self.unit_of(&p.name)?,
            None => self.unit,
        };
        self.tables[unit]
            .get(path.name.name.as_str())
            .map(|e| (unit, e.kind))
    }

    fn unknown_package(&self, pkg: &ast::Ident, diags: &mut Vec<Diagnostic>) {
        let imported = self.imported_names();
        let help = did_you_mean(&pkg.name, imported.iter().copied()).unwrap_or_else(|| {
            format!(
                "import the file that declares `package {};` with `import \"{}.kontiki\";`",
                pkg.name, pkg.name
            )
        });
        diags.push(
            Diagnostic::new(
                Code::UnknownPackage,
                pkg.span,
                format!("unknown package `{}`", pkg.name),
            )
            .with_label("not this file's package and not imported")
            .with_help(help),
        );
    }

    fn resolve_type(&self, expr: &ast::TypeExpr, diags: &mut Vec<Diagnostic>) -> TypeRef {
        match &expr.kind {
            ast::TypeExprKind::Optional(inner) => {
                let t = self.resolve_type(inner, diags);
                if matches!(t, TypeRef::Optional(_)) {
                    t
                } else {
                    TypeRef::Optional(Box::new(t))
                }
            }
            ast::TypeExprKind::List(inner) => {
                TypeRef::List(Box::new(self.resolve_type(inner, diags)))
            }
            ast::TypeExprKind::Map(key, value) => {
                let k = self.resolve_type(key, diags);
                if !self.is_string(&k, 0) {
                    let shown = self.units[self.unit]
                        .source_slice(key.span)
                        .unwrap_or_else(|| "this type".to_string());
                    diags.push(
                        Diagnostic::new(Code::MapKeyNotString, key.span, format!("map key type `{shown}` is not `string`"))
                            .with_label("map keys must be strings")
                            .with_help("JSON object keys are strings: write `map<string, ...>`, or use a `list` of structs"),
                    );
                }
                TypeRef::Map(Box::new(self.resolve_type(value, diags)))
            }
            ast::TypeExprKind::Named(path) => self.resolve_named(path, diags),
        }
    }

    fn resolve_named(&self, path: &ast::Path, diags: &mut Vec<Diagnostic>) -> TypeRef {
        if path.package.is_none()
            && let Some(t) = TypeRef::builtin(&path.name.name)
        {
            return t;
        }
        if let Some(pkg) = &path.package
            && self.unit_of(&pkg.name).is_none()
        {
            self.unknown_package(pkg, diags);
            return TypeRef::Json;
        }
        match self.lookup(path) {
            Some((unit, kind)) => TypeRef::Named(NamedType {
                package: self.units[unit].ast.package.name.clone(),
                name: path.name.name.clone(),
                kind,
            }),
            None => {
                let target = path
                    .package
                    .as_ref()
                    .and_then(|p| self.unit_of(&p.name))
                    .unwrap_or(self.unit);
                let mut candidates: Vec<String> = self.tables[target]
                    .keys()
                    .map(|k| (*k).to_string())
                    .collect();
                if path.package.is_none() {
                    candidates.extend(TypeRef::BUILTINS.iter().map(|s| (*s).to_string()));
                }
                candidates.sort();
                let mut help = did_you_mean(&path.name.name, candidates.iter().map(String::as_str));
                if help.is_none() && path.package.is_none() {
                    for &i in &self.units[self.unit].imports {
                        if self.tables[i].contains_key(path.name.name.as_str()) {
                            let pkg = &self.units[i].ast.package.name;
                            help = Some(format!(
                                "`{}` is declared in package `{pkg}`: write `{pkg}.{}`",
                                path.name.name, path.name.name
                            ));
                            break;
                        }
                    }
                }
                if help.is_none() {
                    help = case_hint(&path.name.name);
                }
                diags.push(
                    Diagnostic::new(
                        Code::UnknownType,
                        path.span,
                        format!("unknown type `{path}`"),
                    )
                    .with_label("not a built-in or declared type")
                    .with_help_opt(help),
                );
                TypeRef::Json
            }
        }
    }

    /// Whether a type is `string`, or an alias of it.
    fn is_string(&self, t: &TypeRef, depth: usize) -> bool {
        match t {
            TypeRef::String => true,
            TypeRef::Named(n) if n.kind == NamedKind::Alias && depth < 32 => {
                let Some(unit) = self.unit_of(&n.package) else {
                    return false;
                };
                let Some(expr) = self.tables[unit].get(n.name.as_str()).and_then(|e| e.alias)
                else {
                    return false;
                };
                let cx = Cx {
                    units: self.units,
                    tables: self.tables,
                    unit,
                };
                let mut quiet = Vec::new();
                let inner = cx.resolve_type(expr, &mut quiet);
                cx.is_string(&inner, depth + 1)
            }
            _ => false,
        }
    }

    fn lower_unit(&self, done: &[model::Package], diags: &mut Vec<Diagnostic>) -> model::Package {
        let file = self.file();
        let mut pkg = model::Package {
            name: file.package.name.clone(),
            file: self.units[self.unit].name.clone(),
            docs: file.docs.clone(),
            imports: self
                .imported_names()
                .into_iter()
                .map(str::to_string)
                .collect(),
            types: Vec::new(),
            errors: Vec::new(),
            events: Vec::new(),
            services: Vec::new(),
        };
        for item in &file.items {
            match item {
                ast::Item::Struct(s) => {
                    let fields = s.fields.iter().map(|f| self.field(f, diags)).collect();
                    pkg.types.push(model::TypeDef::Struct(model::Struct {
                        name: s.name.name.clone(),
                        docs: s.docs.clone(),
                        fields,
                        span: s.span,
                    }));
                }
                ast::Item::Enum(e) => pkg.types.push(model::TypeDef::Enum(model::Enum {
                    name: e.name.name.clone(),
                    docs: e.docs.clone(),
                    variants: e
                        .variants
                        .iter()
                        .map(|v| model::Variant {
                            name: v.name.name.clone(),
                            wire: v
                                .value
                                .as_ref()
                                .map_or_else(|| v.name.name.clone(), |s| s.value.clone()),
                            docs: v.docs.clone(),
                            span: v.span,
                        })
                        .collect(),
                    span: e.span,
                })),
                ast::Item::Alias(a) => pkg.types.push(model::TypeDef::Alias(model::Alias {
                    name: a.name.name.clone(),
                    docs: a.docs.clone(),
                    ty: self.resolve_type(&a.ty, diags),
                    span: a.span,
                })),
                ast::Item::Error(e) => {
                    let opts = Options::new(&e.options, &["status"], "an error", diags);
                    let status = opts
                        .int("status", 100, 599, diags)
                        .and_then(|n| u16::try_from(n).ok());
                    pkg.errors.push(model::ErrorDef {
                        code: e.code.name.clone(),
                        message: e.message.value.clone(),
                        status,
                        docs: e.docs.clone(),
                        span: e.span,
                    });
                }
                ast::Item::Event(e) => pkg.events.push(model::EventDef {
                    name: e.name.value.clone(),
                    payload: self.resolve_type(&e.payload, diags),
                    docs: e.docs.clone(),
                    span: e.span,
                }),
                ast::Item::Service(_) => {}
            }
        }
        for item in &file.items {
            if let ast::Item::Service(s) = item {
                let svc = self.service(s, &pkg, done, diags);
                pkg.services.push(svc);
            }
        }
        pkg
    }

    fn field(&self, f: &ast::Field, diags: &mut Vec<Diagnostic>) -> model::Field {
        let ty = self.resolve_type(&f.ty, diags);
        let default = f
            .default
            .as_ref()
            .and_then(|v| self.value(v, &ty, &f.ty, diags));
        model::Field {
            name: f.name.name.clone(),
            docs: f.docs.clone(),
            ty,
            default,
            span: f.span,
        }
    }

    /// Checks a default against its type and converts it.
    fn value(
        &self,
        v: &ast::Value,
        ty: &TypeRef,
        expr: &ast::TypeExpr,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<Value> {
        let shown = self.units[self.unit]
            .source_slice(expr.span)
            .unwrap_or_default();
        let bad = |diags: &mut Vec<Diagnostic>, why: String| {
            diags.push(
                Diagnostic::new(
                    Code::InvalidDefault,
                    v.span,
                    format!("default value does not fit type `{shown}`"),
                )
                .with_label(why),
            );
            None
        };
        self.value_inner(v, ty, 0).or_else(|| {
            let why = match (&v.kind, ty) {
                (ValueKind::Null, _) => {
                    "`null` is only allowed for optional types (`T?`)".to_string()
                }
                (ValueKind::Int(_), TypeRef::I32 | TypeRef::I64 | TypeRef::U32 | TypeRef::U64) => {
                    "out of range for this integer type".to_string()
                }
                (ValueKind::Name(p), TypeRef::Named(n)) if n.kind == NamedKind::Enum => {
                    format!("`{p}` is not a variant of `{}`", n.name)
                }
                _ => "wrong kind of value".to_string(),
            };
            bad(diags, why)
        })
    }

    fn value_inner(&self, v: &ast::Value, ty: &TypeRef, depth: usize) -> Option<Value> {
        if depth > 32 {
            return None;
        }
        if let TypeRef::Json = ty {
            return json_value(v);
        }
        match (&v.kind, ty) {
            (ValueKind::Null, TypeRef::Optional(_)) => Some(Value::Null),
            (_, TypeRef::Optional(inner)) => self.value_inner(v, inner, depth + 1),
            (ValueKind::Bool(b), TypeRef::Bool) => Some(Value::Bool(*b)),
            (ValueKind::Int(s), TypeRef::I32) => {
                s.parse::<i32>().ok().map(|n| Value::Int(n.into()))
            }
            (ValueKind::Int(s), TypeRef::I64) => s.parse::<i64>().ok().map(Value::Int),
            (ValueKind::Int(s), TypeRef::U32) => {
                s.parse::<u32>().ok().map(|n| Value::Int(n.into()))
            }
            (ValueKind::Int(s), TypeRef::U64) => s
                .parse::<u64>()
                .ok()
                .map(|n| i64::try_from(n).map_or(Value::UInt(n), Value::Int)),
            (ValueKind::Int(s), TypeRef::F64) => s.parse::<f64>().ok().map(Value::Float),
            (ValueKind::Float(f), TypeRef::F64) => Some(Value::Float(*f)),
            (
                ValueKind::Str(s),
                TypeRef::String | TypeRef::Date | TypeRef::Datetime | TypeRef::Uuid,
            ) => Some(Value::String(s.clone())),
            (ValueKind::List(items), TypeRef::List(inner)) => items
                .iter()
                .map(|i| self.value_inner(i, inner, depth + 1))
                .collect::<Option<Vec<_>>>()
                .map(Value::List),
            (ValueKind::Map(entries), TypeRef::Map(inner)) => entries
                .iter()
                .map(|(k, val)| Some((k.value.clone(), self.value_inner(val, inner, depth + 1)?)))
                .collect::<Option<Vec<_>>>()
                .map(Value::Map),
            (_, TypeRef::Named(n)) => {
                let unit = self.unit_of(&n.package)?;
                let entry = self.tables[unit].get(n.name.as_str())?;
                match n.kind {
                    NamedKind::Enum => {
                        let e = entry.variants?;
                        let found = match &v.kind {
                            ValueKind::Name(p) if p.package.is_none() => {
                                e.variants.iter().find(|var| var.name.name == p.name.name)
                            }
                            ValueKind::Name(p)
                                if p.package.as_ref().is_some_and(|q| q.name == n.name) =>
                            {
                                e.variants.iter().find(|var| var.name.name == p.name.name)
                            }
                            ValueKind::Str(s) => e.variants.iter().find(|var| {
                                var.value.as_ref().map_or(&var.name.name, |w| &w.value) == s
                            }),
                            _ => None,
                        }?;
                        Some(Value::EnumVariant {
                            name: found.name.name.clone(),
                            wire: found
                                .value
                                .as_ref()
                                .map_or_else(|| found.name.name.clone(), |w| w.value.clone()),
                        })
                    }
                    NamedKind::Alias => {
                        let expr = entry.alias?;
                        let cx = Cx {
                            units: self.units,
                            tables: self.tables,
                            unit,
                        };
                        let mut quiet = Vec::new();
                        let target = cx.resolve_type(expr, &mut quiet);
                        cx.value_inner(v, &target, depth + 1)
                    }
                    NamedKind::Struct => match &v.kind {
                        ValueKind::Map(_) => json_value(v),
                        _ => None,
                    },
                }
            }
            _ => None,
        }
    }

    fn error_ref(
        &self,
        path: &ast::Path,
        own: &model::Package,
        done: &[model::Package],
        diags: &mut Vec<Diagnostic>,
    ) -> Option<(model::ErrorRef, Option<u16>)> {
        let unit = match &path.package {
            Some(p) => match self.unit_of(&p.name) {
                Some(u) => u,
                None => {
                    self.unknown_package(p, diags);
                    return None;
                }
            },
            None => self.unit,
        };
        let pkg = if unit == self.unit {
            own
        } else {
            done.get(unit)?
        };
        if let Some(e) = pkg.errors.iter().find(|e| e.code == path.name.name) {
            return Some((
                model::ErrorRef {
                    package: pkg.name.clone(),
                    code: e.code.clone(),
                    message: e.message.clone(),
                },
                e.status,
            ));
        }
        let mut help = did_you_mean(&path.name.name, pkg.errors.iter().map(|e| e.code.as_str()));
        if help.is_none() && path.package.is_none() {
            for &i in &self.units[self.unit].imports {
                if let Some(p) = done.get(i)
                    && p.errors.iter().any(|e| e.code == path.name.name)
                {
                    help = Some(format!(
                        "`{}` is declared in package `{}`: write `{}.{}`",
                        path.name.name, p.name, p.name, path.name.name
                    ));
                }
            }
        }
        let help = help
            .unwrap_or_else(|| format!("declare it: `error {} = \"message\";`", path.name.name));
        diags.push(
            Diagnostic::new(
                Code::UnknownError,
                path.span,
                format!("error code `{path}` is not declared"),
            )
            .with_label("unknown error code")
            .with_help(help),
        );
        None
    }

    fn event_ref(
        &self,
        name: &ast::EventName,
        own: &model::Package,
        done: &[model::Package],
        use_: &str,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<model::EventRef> {
        let visible = std::iter::once(own).chain(
            self.units[self.unit]
                .imports
                .iter()
                .filter_map(|&i| done.get(i)),
        );
        let mut all = Vec::new();
        for pkg in visible {
            if let Some(e) = pkg.events.iter().find(|e| e.name == name.value) {
                return Some(model::EventRef {
                    package: pkg.name.clone(),
                    name: e.name.clone(),
                    payload: e.payload.clone(),
                });
            }
            all.extend(pkg.events.iter().map(|e| e.name.clone()));
        }
        let help = did_you_mean(&name.value, all.iter().map(String::as_str)).unwrap_or_else(|| {
            format!(
                "declare it with `event {}: Payload;`, or import the file that declares it",
                name.value
            )
        });
        diags.push(
            Diagnostic::new(
                Code::UnknownEvent,
                name.span,
                format!("event `{}` is {use_} but never declared", name.value),
            )
            .with_label("unknown event type")
            .with_help(help),
        );
        None
    }

    fn service(
        &self,
        s: &ast::Service,
        own: &model::Package,
        done: &[model::Package],
        diags: &mut Vec<Diagnostic>,
    ) -> model::Service {
        let mut svc = model::Service {
            name: s.name.name.clone(),
            wire_name: s.name.name.clone(),
            version: None,
            docs: s.docs.clone(),
            headers: Vec::new(),
            rpcs: Vec::new(),
            emits: Vec::new(),
            handlers: Vec::new(),
            routes: Vec::new(),
            tasks: Vec::new(),
            span: s.span,
        };
        for m in &s.members {
            match m {
                ast::Member::Property(p) => {
                    let known = ["name", "version"];
                    if !known.contains(&p.name.name.as_str()) {
                        diags.push(
                            Diagnostic::new(Code::UnknownOption, p.name.span, format!("unknown service property `{}`", p.name.name))
                                .with_label("unknown property")
                                .with_help(
                                    did_you_mean(&p.name.name, known)
                                        .unwrap_or_else(|| "a service accepts `name = \"wire-name\";` and `version = \"1.0.0\";`".into()),
                                ),
                        );
                        continue;
                    }
                    match &p.value.kind {
                        ValueKind::Str(v) if p.name.name == "name" => svc.wire_name = v.clone(),
                        ValueKind::Str(v) => svc.version = Some(v.clone()),
                        _ => diags.push(
                            Diagnostic::new(
                                Code::InvalidOption,
                                p.value.span,
                                format!("service property `{}` takes a string", p.name.name),
                            )
                            .with_label("wrong value"),
                        ),
                    }
                }
                ast::Member::Header(h) => svc.headers.push(model::HeaderDef {
                    name: h.name.value.clone(),
                    ty: self.resolve_type(&h.ty, diags),
                    docs: h.docs.clone(),
                    span: h.span,
                }),
                ast::Member::Rpc(r) => {
                    let opts =
                        Options::new(&r.options, &["include_headers", "timeout"], "an RPC", diags);
                    let include_headers = opts.flag("include_headers", diags).unwrap_or(false);
                    let timeout = timeout_option(&opts, diags);
                    let mut errors = Vec::new();
                    for raise in &r.raises {
                        if let Some((_, span)) = raise.status {
                            diags.push(
                                Diagnostic::new(
                                    Code::InvalidOption,
                                    span,
                                    "an RPC error has no HTTP status",
                                )
                                .with_label("only HTTP routes map errors to statuses")
                                .with_help(format!("write `raises {}`", raise.code)),
                            );
                        }
                        if let Some((e, _)) = self.error_ref(&raise.code, own, done, diags) {
                            errors.push(e);
                        }
                    }
                    svc.rpcs.push(model::Rpc {
                        name: r.name.name.clone(),
                        docs: r.docs.clone(),
                        params: r.params.iter().map(|p| self.field(p, diags)).collect(),
                        returns: r.returns.as_ref().map(|t| self.resolve_type(t, diags)),
                        errors,
                        include_headers,
                        timeout,
                        span: r.span,
                    });
                }
                ast::Member::Emits(e) => {
                    for ev in &e.events {
                        if let Some(r) = self.event_ref(ev, own, done, "emitted", diags) {
                            svc.emits.push(r);
                        }
                    }
                }
                ast::Member::Handler(h) => svc.handlers.push(self.handler(h, own, done, diags)),
                ast::Member::Http(h) => svc.routes.push(self.route(h, own, done, diags)),
                ast::Member::Task(t) => svc.tasks.push(self.task(t, diags)),
            }
        }
        svc
    }

    fn handler(
        &self,
        h: &ast::Handler,
        own: &model::Package,
        done: &[model::Package],
        diags: &mut Vec<Diagnostic>,
    ) -> model::EventHandler {
        let opts = Options::new(
            &h.options,
            &[
                "broadcast",
                "in_session",
                "max_attempts",
                "include_headers",
                "timeout",
            ],
            "an event handler",
            diags,
        );
        let broadcast = opts.flag("broadcast", diags).unwrap_or(false);
        let in_session = opts.flag("in_session", diags).unwrap_or(false);
        let mode = match (broadcast, in_session) {
            (true, true) => {
                if let Some(span) = opts.span("in_session") {
                    diags.push(
                        Diagnostic::new(
                            Code::InvalidOption,
                            span,
                            "a handler cannot be both `broadcast` and `in_session`",
                        )
                        .with_label("conflicts with `broadcast`")
                        .with_help("choose one delivery mode"),
                    );
                }
                model::EventMode::Broadcast
            }
            (true, false) => model::EventMode::Broadcast,
            (false, true) => model::EventMode::InSession,
            (false, false) => model::EventMode::Competing,
        };
        let max_attempts = opts.int("max_attempts", 1, 1_000_000, diags);
        if let (Some(_), Some(span)) = (max_attempts, opts.span("max_attempts"))
            && mode != model::EventMode::Competing
        {
            diags.push(
                Diagnostic::new(
                    Code::InvalidOption,
                    span,
                    "`max_attempts` only applies to competing handlers",
                )
                .with_label("ignored for broadcast and in-session handlers")
                .with_help("remove it, or remove `broadcast` / `in_session`"),
            );
        }
        let source = match &h.source {
            ast::EventSource::Config(key) => model::EventSource::Config(key.value.clone()),
            ast::EventSource::Events(evs) => model::EventSource::Events(
                evs.iter()
                    .filter_map(|ev| self.event_ref(ev, own, done, "handled", diags))
                    .collect(),
            ),
        };
        model::EventHandler {
            name: h.name.name.clone(),
            docs: h.docs.clone(),
            source,
            mode,
            max_attempts: max_attempts
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(3),
            include_headers: opts.flag("include_headers", diags).unwrap_or(false),
            timeout: timeout_option(&opts, diags),
            span: h.span,
        }
    }

    fn route(
        &self,
        h: &ast::Http,
        own: &model::Package,
        done: &[model::Package],
        diags: &mut Vec<Diagnostic>,
    ) -> model::HttpRoute {
        let opts = Options::new(
            &h.options,
            &[
                "version",
                "summary",
                "description",
                "tags",
                "status",
                "exclude_from_docs",
            ],
            "an HTTP route",
            diags,
        );
        let mut errors = Vec::new();
        for raise in &h.raises {
            let Some((error, default_status)) = self.error_ref(&raise.code, own, done, diags)
            else {
                continue;
            };
            let status = match raise.status {
                Some((n, span)) => {
                    match u16::try_from(n).ok().filter(|s| (100..=599).contains(s)) {
                        Some(s) => Some(s),
                        None => {
                            diags.push(
                                Diagnostic::new(
                                    Code::InvalidHttp,
                                    span,
                                    format!("`{n}` is not an HTTP status"),
                                )
                                .with_label("must be between 100 and 599"),
                            );
                            continue;
                        }
                    }
                }
                None => default_status,
            };
            match status {
                Some(status) => errors.push(model::HttpError { error, status }),
                None => diags.push(
                    Diagnostic::new(Code::InvalidHttp, raise.span, format!("error `{}` has no HTTP status on this route", raise.code))
                        .with_label("status missing")
                        .with_help(format!(
                            "write `raises {} = 400`, or give the error a default: `error {} = \"...\" [status = 400];`",
                            raise.code, raise.code.name.name
                        )),
                ),
            }
        }
        model::HttpRoute {
            name: h.name.name.clone(),
            docs: h.docs.clone(),
            method: model::HttpMethod::parse(&h.method.name).unwrap_or(model::HttpMethod::Get),
            path: match &h.path {
                ast::HttpPath::Literal(s) => model::HttpPath::Literal(s.value.clone()),
                ast::HttpPath::Config(s) => model::HttpPath::Config(s.value.clone()),
            },
            path_params: h.path_params.iter().map(|p| self.field(p, diags)).collect(),
            query: h.query.iter().map(|p| self.field(p, diags)).collect(),
            body: h.body.as_ref().map(|t| self.resolve_type(t, diags)),
            response: h.returns.as_ref().map(|t| self.resolve_type(t, diags)),
            status: opts
                .int("status", 100, 599, diags)
                .and_then(|n| u16::try_from(n).ok())
                .unwrap_or(200),
            version: opts.string("version", diags),
            summary: opts.string("summary", diags),
            description: opts.string("description", diags),
            tags: opts.strings("tags", diags),
            errors,
            exclude_from_docs: opts.flag("exclude_from_docs", diags).unwrap_or(false),
            span: h.span,
        }
    }

    fn task(&self, t: &ast::Task, diags: &mut Vec<Diagnostic>) -> model::Task {
        let opts = Options::new(&t.options, &["immediate", "time_zone"], "a task", diags);
        let time_zone = opts.string("time_zone", diags);
        if let (Some(tz), Some(span)) = (&time_zone, opts.span("time_zone"))
            && tz.parse::<chrono_tz::Tz>().is_err()
        {
            diags.push(
                Diagnostic::new(
                    Code::InvalidOption,
                    span,
                    format!("unknown time zone `{tz}`"),
                )
                .with_label("not an IANA time zone")
                .with_help("use an IANA name such as `UTC` or `Europe/Paris`"),
            );
        }
        let (schedule, default_immediate) = match &t.schedule {
            ast::Schedule::Every(d) => (
                model::Schedule::Interval {
                    seconds: parse_interval(&d.value).unwrap_or(0),
                },
                true,
            ),
            ast::Schedule::EveryConfig(k) => {
                (model::Schedule::IntervalConfig(k.value.clone()), true)
            }
            ast::Schedule::Cron(c) => (model::Schedule::Cron(c.value.clone()), false),
            ast::Schedule::CronConfig(k) => (model::Schedule::CronConfig(k.value.clone()), false),
        };
        model::Task {
            name: t.name.name.clone(),
            docs: t.docs.clone(),
            schedule,
            immediate: opts.flag("immediate", diags).unwrap_or(default_immediate),
            time_zone,
            span: t.span,
        }
    }
}

/// A hint for a built-in written in another case (`String`, `I64`).
fn case_hint(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    TypeRef::BUILTINS
        .iter()
        .find(|b| **b == lower)
        .map(|b| format!("did you mean `{b}`? built-in types are lowercase"))
}

/// Converts a literal to a JSON-ish value, for `json` fields.
fn json_value(v: &ast::Value) -> Option<Value> {
    Some(match &v.kind {
        ValueKind::Null => Value::Null,
        ValueKind::Bool(b) => Value::Bool(*b),
        ValueKind::Int(s) => match s.parse::<i64>() {
            Ok(n) => Value::Int(n),
            Err(_) => Value::UInt(s.parse().ok()?),
        },
        ValueKind::Float(f) => Value::Float(*f),
        ValueKind::Str(s) => Value::String(s.clone()),
        ValueKind::Name(_) => return None,
        ValueKind::List(items) => Value::List(items.iter().map(json_value).collect::<Option<_>>()?),
        ValueKind::Map(entries) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| Some((k.value.clone(), json_value(v)?)))
                .collect::<Option<_>>()?,
        ),
    })
}

/// The `timeout = N` option of an RPC or an event handler: whole seconds, 1 to 86,400 (a day).
fn timeout_option(opts: &Options<'_>, diags: &mut Vec<Diagnostic>) -> Option<u64> {
    opts.int("timeout", 1, 86_400, diags)
        .and_then(|n| u64::try_from(n).ok())
}
