//! Breaking changes between two versions of a contract (`kontiki-codegen breaking`).
//!
//! [`compare`] takes the old and the new checked model (each with the files it was read from)
//! and returns every [`Change`] that breaks someone, at one of two [`Level`]s:
//!
//! * [`Level::Wire`]: what a running Python Kontiki service or client, or a Rust client built
//!   from the old contract, sees: a method, event, route or service gone or renamed; a
//!   parameter removed, renamed (keyword callers), moved (positional callers) or added without
//!   a default; a type that no longer reads what the other side writes (a required field added
//!   to what callers send, a field retyped, an enum variant added to what old readers get); an
//!   error code removed; a handler's mode or `max_attempts` changed (other queues, other
//!   queue arguments).
//! * [`Level::Source`]: wire-compatible, but Rust code using the generated trait or client no
//!   longer compiles: a method added to the trait, a parameter added with a default, a type
//!   widened (`i32` to `i64`, `T` to `T?`), a struct field added (struct literals), an error
//!   code added to a method (exhaustive `match` on the client error enum), a type renamed.
//!
//! What is safe: docs, error messages, `version`, timeouts, task schedules, new types, events,
//! errors, services and emitted events, and reordered struct fields.
//!
//! Types are compared in the direction they travel: a type only callers send (parameters,
//! request bodies) may accept more than before; a type only the service sends (return values,
//! responses) may send less; event payloads and types nothing in the contract uses go both
//! ways. A type compared under another name (a renamed struct) is compared field by field.

use std::collections::{HashMap, HashSet};

use crate::diagnostic::{Code, Diagnostic, Severity};
use crate::error::Error;
use crate::model::{
    EventMode, EventSource, Field, HttpPath, Model, NamedType, Package, Rpc, Service, TypeDef,
    TypeRef,
};
use crate::span::{FileId, SourceMap, Span};

/// Who a [`Change`] breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Rust code using the generated trait or client stops compiling; the wire is unchanged.
    Source,
    /// Running callers or consumers (Python Kontiki, old Rust clients) break.
    Wire,
}

impl Level {
    /// `wire` or `source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Source => "source",
            Level::Wire => "wire",
        }
    }
}

/// One breaking change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Who it breaks.
    pub level: Level,
    /// What changed, lowercase, names in backticks.
    pub message: String,
    /// Why it breaks.
    pub why: String,
    /// What would not break.
    pub instead: String,
    /// Where, in the new files (for something removed: what held it).
    pub span: Span,
    /// Where it was, in the old files.
    pub old_span: Option<Span>,
}

/// A checked model and the files its spans point into.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// The model.
    pub model: &'a Model,
    /// Its files.
    pub sources: &'a SourceMap,
}

/// Every breaking change from `old` to `new`, in source order of the new files.
pub fn compare(old: Side<'_>, new: Side<'_>) -> Vec<Change> {
    let mut dirs = HashMap::new();
    directions(old.model, &mut dirs);
    directions(new.model, &mut dirs);
    let mut cx = Cx {
        old,
        new,
        dirs,
        out: Vec::new(),
    };
    let old_root = old.model.root_package();
    let new_root = new.model.root_package();
    if let (Some(po), Some(pn)) = (old_root, new_root) {
        if po.name != pn.name {
            let span = cx.package_span(pn);
            cx.push(
                Level::Source,
                format!("package `{}` renamed `{}`", po.name, pn.name),
                "the generated Rust module is named after the package, so paths such as `{old}::Type` no longer resolve",
                "keep the package name; the wire does not use it",
                span,
                None,
            );
        }
        cx.package(po, pn);
    }
    for po in &old.model.packages {
        if Some(po.name.as_str()) == old_root.map(|p| p.name.as_str()) {
            continue;
        }
        if let Some(pn) = new.model.package(&po.name)
            && Some(pn.name.as_str()) != new_root.map(|p| p.name.as_str())
        {
            cx.package(po, pn);
        }
    }
    let mut out = cx.out;
    out.sort_by(|a, b| {
        (a.span.file, a.span.start, &a.message).cmp(&(b.span.file, b.span.start, &b.message))
    });
    out.dedup();
    out
}

/// The changes as diagnostics pointing into one map holding the new files, then the old ones.
/// Changes at `fail` or above are errors, the others warnings.
pub fn report(changes: &[Change], old: &SourceMap, new: &SourceMap, fail: Level) -> Error {
    let (sources, offset) = merged(old, new);
    let diags = changes
        .iter()
        .map(|c| to_diagnostic(c, offset, fail))
        .collect();
    Error::new(diags, sources)
}

/// A map with the files of `new`, then those of `old`; the offset of the old file ids.
fn merged(old: &SourceMap, new: &SourceMap) -> (SourceMap, u32) {
    let mut sources = SourceMap::new();
    for (_, f) in new.files() {
        sources.add(f.name.clone(), &f.path, f.text.clone());
    }
    let offset = u32::try_from(new.files().count()).unwrap_or(u32::MAX);
    for (_, f) in old.files() {
        sources.add(f.name.clone(), &f.path, f.text.clone());
    }
    (sources, offset)
}

fn to_diagnostic(c: &Change, old_offset: u32, fail: Level) -> Diagnostic {
    let code = match c.level {
        Level::Wire => Code::BreakingWire,
        Level::Source => Code::BreakingSource,
    };
    let label = match c.level {
        Level::Wire => "breaks running callers and consumers",
        Level::Source => "breaks Rust code using the generated code",
    };
    let mut d = Diagnostic::new(code, c.span, c.message.clone())
        .with_label(label)
        .with_help(format!("{}; {}", c.why, c.instead))
        .with_severity(if c.level >= fail {
            Severity::Error
        } else {
            Severity::Warning
        });
    if let Some(old) = c.old_span {
        let span = Span {
            file: FileId(old.file.0.saturating_add(old_offset)),
            ..old
        };
        d = d.with_note(span, "old version");
    }
    d
}

const IN: u8 = 1;
const OUT: u8 = 2;
const BOTH: u8 = IN | OUT;
/// With `OUT`: a reader of nothing takes only `null` (the Rust client decodes an rpc that
/// returns nothing as `()`); without it, a reader of nothing ignores what comes (HTTP bodies).
const UNIT: u8 = 4;

/// Which way each declared type travels: `IN` (callers to the service), `OUT`, or both.
fn directions(model: &Model, dirs: &mut HashMap<(String, String), u8>) {
    fn mark(
        model: &Model,
        ty: &TypeRef,
        dir: u8,
        dirs: &mut HashMap<(String, String), u8>,
        seen: &mut HashSet<(String, String, u8)>,
    ) {
        match ty {
            TypeRef::Optional(t) | TypeRef::List(t) | TypeRef::Map(t) => {
                mark(model, t, dir, dirs, seen)
            }
            TypeRef::Named(n) => {
                if !seen.insert((n.package.clone(), n.name.clone(), dir)) {
                    return;
                }
                *dirs.entry((n.package.clone(), n.name.clone())).or_default() |= dir;
                match model.type_def(n) {
                    Some(TypeDef::Struct(s)) => {
                        for f in &s.fields {
                            mark(model, &f.ty, dir, dirs, seen);
                        }
                    }
                    Some(TypeDef::Alias(a)) => mark(model, &a.ty, dir, dirs, seen),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let mut seen = HashSet::new();
    for p in &model.packages {
        for e in &p.events {
            mark(model, &e.payload, BOTH, dirs, &mut seen);
        }
        for s in &p.services {
            for r in &s.rpcs {
                for f in &r.params {
                    mark(model, &f.ty, IN, dirs, &mut seen);
                }
                if let Some(t) = &r.returns {
                    mark(model, t, OUT, dirs, &mut seen);
                }
            }
            for h in &s.routes {
                for f in h.path_params.iter().chain(&h.query) {
                    mark(model, &f.ty, IN, dirs, &mut seen);
                }
                if let Some(t) = &h.body {
                    mark(model, t, IN, dirs, &mut seen);
                }
                if let Some(t) = &h.response {
                    mark(model, t, OUT, dirs, &mut seen);
                }
            }
        }
    }
}

/// The IDL spelling of a type.
pub fn show(ty: &TypeRef) -> String {
    show_in(ty, false)
}

/// Like [`show`], declared types qualified with their package.
fn show_in(ty: &TypeRef, qualified: bool) -> String {
    let show = |t: &TypeRef| show_in(t, qualified);
    match ty {
        TypeRef::Bool => "bool".into(),
        TypeRef::I32 => "i32".into(),
        TypeRef::I64 => "i64".into(),
        TypeRef::U32 => "u32".into(),
        TypeRef::U64 => "u64".into(),
        TypeRef::F64 => "f64".into(),
        TypeRef::String => "string".into(),
        TypeRef::Bytes => "bytes".into(),
        TypeRef::Datetime => "datetime".into(),
        TypeRef::Date => "date".into(),
        TypeRef::Uuid => "uuid".into(),
        TypeRef::Json => "json".into(),
        TypeRef::Optional(t) => format!("{}?", show(t)),
        TypeRef::List(t) => format!("list<{}>", show(t)),
        TypeRef::Map(t) => format!("map<string, {}>", show(t)),
        TypeRef::Named(n) if qualified => format!("{}.{}", n.package, n.name),
        TypeRef::Named(n) => n.name.clone(),
    }
}

fn show_opt(ty: Option<&TypeRef>, qualified: bool) -> String {
    ty.map_or_else(
        || "nothing (`null`)".to_owned(),
        |t| format!("`{}`", show_in(t, qualified)),
    )
}

/// Follows aliases (at most 64 deep: the checker rejects cycles).
fn unalias<'m>(model: &'m Model, mut ty: &'m TypeRef) -> &'m TypeRef {
    for _ in 0..64 {
        match ty {
            TypeRef::Named(n) => match model.type_def(n) {
                Some(TypeDef::Alias(a)) => ty = &a.ty,
                _ => return ty,
            },
            _ => return ty,
        }
    }
    ty
}

/// Whether a field or parameter may be left out: it has a default or its type (through
/// aliases) may be `null`, as the generated code decides.
fn may_be_missing(model: &Model, f: &Field) -> bool {
    f.default.is_some() || unalias(model, &f.ty).is_optional()
}

struct Cx<'a> {
    old: Side<'a>,
    new: Side<'a>,
    dirs: HashMap<(String, String), u8>,
    out: Vec<Change>,
}

/// Whether values written as `w` (in `wm`) read as `r` (in `rm`); `Err` says why not.
fn accepts(rm: &Model, r: &TypeRef, wm: &Model, w: &TypeRef, depth: u32) -> Result<(), String> {
    let r = unalias(rm, r);
    let w = unalias(wm, w);
    let no = || {
        Err(format!(
            "a `{}` value does not read as `{}`",
            show(w),
            show(r)
        ))
    };
    if depth > 32 {
        return Ok(());
    }
    match (r, w) {
        (TypeRef::Json, _) => Ok(()),
        (TypeRef::Optional(a), TypeRef::Optional(b)) => accepts(rm, a, wm, b, depth + 1),
        (TypeRef::Optional(a), b) => accepts(rm, a, wm, b, depth + 1),
        (_, TypeRef::Optional(_) | TypeRef::Json) => Err(format!(
            "`{}` may be `null`, which `{}` does not take",
            show(w),
            show(r)
        )),
        (TypeRef::List(a), TypeRef::List(b)) | (TypeRef::Map(a), TypeRef::Map(b)) => {
            accepts(rm, a, wm, b, depth + 1)
        }
        (TypeRef::I64, TypeRef::I32 | TypeRef::U32)
        | (TypeRef::U64, TypeRef::U32)
        | (TypeRef::F64, TypeRef::I32 | TypeRef::I64 | TypeRef::U32 | TypeRef::U64)
        | (TypeRef::String, TypeRef::Datetime | TypeRef::Date | TypeRef::Uuid) => Ok(()),
        (TypeRef::String, TypeRef::Named(n)) => match wm.type_def(n) {
            Some(TypeDef::Enum(_)) => Ok(()),
            _ => no(),
        },
        (TypeRef::Named(a), TypeRef::Named(b)) => {
            if a.package == b.package && a.name == b.name {
                // Same type: its declaration is compared on its own.
                return Ok(());
            }
            match (rm.type_def(a), wm.type_def(b)) {
                (Some(rd), Some(wd)) => accepts_defs(rm, a, rd, wm, b, wd, depth + 1),
                _ => no(),
            }
        }
        (a, b) if a == b => Ok(()),
        _ => no(),
    }
}

/// [`accepts`] where either side may be nothing (`None`: no return value, no body).
fn accepts_opt(
    rm: &Model,
    r: Option<&TypeRef>,
    wm: &Model,
    w: Option<&TypeRef>,
    unit: bool,
) -> Result<(), String> {
    match (r, w) {
        (Some(r), Some(w)) => accepts(rm, r, wm, w, 0),
        (None, None) => Ok(()),
        (Some(r), None) if unalias(rm, r).is_optional() => Ok(()),
        (Some(r), None) => Err(format!("nothing (`null`) does not read as `{}`", show(r))),
        (None, Some(w)) if unit => Err(format!(
            "a `{}` value does not read as nothing (the old Rust client decodes the reply as `()`)",
            show(w)
        )),
        (None, Some(_)) => Ok(()),
    }
}

/// Whether two types are the same Rust type (aliases are transparent in Rust too).
fn same_rust(am: &Model, a: &TypeRef, bm: &Model, b: &TypeRef) -> bool {
    let a = unalias(am, a);
    let b = unalias(bm, b);
    match (a, b) {
        (TypeRef::Optional(x), TypeRef::Optional(y))
        | (TypeRef::List(x), TypeRef::List(y))
        | (TypeRef::Map(x), TypeRef::Map(y)) => same_rust(am, x, bm, y),
        (TypeRef::Named(x), TypeRef::Named(y)) => x.package == y.package && x.name == y.name,
        (x, y) => x == y,
    }
}

impl<'a> Cx<'a> {
    fn push(
        &mut self,
        level: Level,
        message: String,
        why: impl Into<String>,
        instead: impl Into<String>,
        span: Span,
        old_span: Option<Span>,
    ) {
        self.out.push(Change {
            level,
            message,
            why: why.into(),
            instead: instead.into(),
            span,
            old_span,
        });
    }

    /// The span of `name` inside a declaration's span (past its doc comments), or the
    /// declaration's.
    fn name_in(sources: &SourceMap, span: Span, name: &str) -> Span {
        let text = sources.slice(span);
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            let t = line.trim_start();
            if t.starts_with("//") || t.is_empty() {
                offset += line.len();
            } else {
                break;
            }
        }
        let rest = text.get(offset..).unwrap_or("");
        let bytes = rest.as_bytes();
        let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        let mut from = 0;
        while let Some(i) = rest.get(from..).and_then(|r| r.find(name)) {
            let at = from + i;
            let end = at + name.len();
            let before_ok = at == 0 || !word(bytes[at - 1]);
            let after_ok = end >= bytes.len() || !word(bytes[end]);
            if before_ok && after_ok {
                let start = span.start as usize + offset + at;
                return Span::new(span.file, start, start + name.len());
            }
            from = at + name.len().max(1);
        }
        span
    }

    fn at_new(&self, span: Span, name: &str) -> Span {
        Self::name_in(self.new.sources, span, name)
    }

    fn at_old(&self, span: Span, name: &str) -> Option<Span> {
        Some(Self::name_in(self.old.sources, span, name))
    }

    fn package_span(&self, p: &Package) -> Span {
        let Some((id, f)) = self.new.sources.files().find(|(_, f)| f.name == p.file) else {
            return Span::default();
        };
        let whole = Span::new(id, 0, f.text.len());
        Self::name_in(self.new.sources, whole, &p.name)
    }

    fn dir(&self, package: &str, name: &str) -> u8 {
        match self
            .dirs
            .get(&(package.to_owned(), name.to_owned()))
            .copied()
        {
            Some(0) | None => BOTH,
            Some(d) => d,
        }
    }

    /// Compares a type at a use site: wire in `dir`, then Rust.
    fn use_site(
        &mut self,
        what: &str,
        dir: u8,
        old: Option<&TypeRef>,
        new: Option<&TypeRef>,
        span: Span,
        old_span: Option<Span>,
    ) {
        let (om, nm) = (self.old.model, self.new.model);
        let unit = dir & UNIT != 0;
        let mut wire = Vec::new();
        if dir & IN != 0
            && let Err(e) = accepts_opt(nm, new, om, old, unit)
        {
            wire.push(format!("old callers still send it: {e}"));
        }
        if dir & OUT != 0
            && let Err(e) = accepts_opt(om, old, nm, new, unit)
        {
            wire.push(format!("old readers get the new value: {e}"));
        }
        // Same spelling, other packages: say which.
        let qualified = show_opt(old, false) == show_opt(new, false);
        let message = format!(
            "{what} changed from {} to {}",
            show_opt(old, qualified),
            show_opt(new, qualified)
        );
        if !wire.is_empty() {
            self.push(
                Level::Wire,
                message,
                wire.join("; "),
                "add a new method, field or event with the new type and keep the old one",
                span,
                old_span,
            );
        } else if match (old, new) {
            (Some(o), Some(n)) => !same_rust(om, o, nm, n),
            (None, None) => false,
            _ => true,
        } {
            self.push(
                Level::Source,
                message,
                "the wire still carries what both sides read, but the Rust type in the generated signatures changes",
                "keep the type if Rust users must not change their code",
                span,
                old_span,
            );
        }
    }

    fn package(&mut self, po: &'a Package, pn: &'a Package) {
        let pkg_span = self.package_span(pn);
        // Types.
        for to in &po.types {
            let tn = pn.types.iter().find(|t| t.name() == to.name());
            let old_span = self.at_old(type_span(to), to.name());
            match tn {
                None => self.push(
                    Level::Source,
                    format!("type `{}` removed", to.name()),
                    format!(
                        "Rust code naming `{}::{}` no longer compiles (the wire does not carry type names; where it was used is compared on its own)",
                        po.name,
                        to.name()
                    ),
                    "keep the type",
                    pkg_span,
                    old_span,
                ),
                Some(tn) => self.type_decl(&po.name, to, tn, old_span),
            }
        }
        // Error codes: strings on the wire, so one moved to another package is still there.
        let new_model = self.new.model;
        for eo in &po.errors {
            if !new_model
                .packages
                .iter()
                .any(|p| p.errors.iter().any(|e| e.code == eo.code))
            {
                let old_span = self.at_old(eo.span, &eo.code);
                self.push(
                    Level::Wire,
                    format!("error code `{}` removed", eo.code),
                    format!(
                        "callers that handle `{}` (a Python `RpcClientError` with that code, a Rust client error variant) never see it again; the failure reaches them as another code",
                        eo.code
                    ),
                    "keep the code (say in its docs that it is deprecated)",
                    pkg_span,
                    old_span,
                );
            }
        }
        // Events: routing keys are global, so one moved to another package is still there.
        for eo in &po.events {
            let old_span = self.at_old(eo.span, &eo.name);
            let en = pn.events.iter().find(|e| e.name == eo.name).or_else(|| {
                new_model
                    .packages
                    .iter()
                    .flat_map(|p| &p.events)
                    .find(|e| e.name == eo.name)
            });
            match en {
                None => self.push(
                    Level::Wire,
                    format!("event `{}` removed", eo.name),
                    "publishers and consumers of this routing key lose their contract; handlers of it elsewhere get nothing",
                    "keep the event",
                    pkg_span,
                    old_span,
                ),
                Some(en) => {
                    let span = self.at_new(en.span, &en.name);
                    self.use_site(
                        &format!("payload of event `{}`", en.name),
                        BOTH,
                        Some(&eo.payload),
                        Some(&en.payload),
                        span,
                        old_span,
                    );
                }
            }
        }
        // Services.
        for so in &po.services {
            let sn = pn
                .services
                .iter()
                .find(|s| s.wire_name == so.wire_name)
                .or_else(|| pn.services.iter().find(|s| s.name == so.name));
            let old_span = self.at_old(so.span, &so.name);
            match sn {
                None => self.push(
                    Level::Wire,
                    format!("service `{}` (`{}`) removed", so.name, so.wire_name),
                    format!(
                        "callers of `{}.*` get an unknown-service error and its event queues are no longer consumed",
                        so.wire_name
                    ),
                    "keep the service",
                    pkg_span,
                    old_span,
                ),
                Some(sn) => self.service(so, sn, old_span),
            }
        }
    }

    fn type_decl(
        &mut self,
        package: &str,
        to: &'a TypeDef,
        tn: &'a TypeDef,
        old_span: Option<Span>,
    ) {
        let dir = self.dir(package, to.name());
        let span = self.at_new(type_span(tn), tn.name());
        let (om, nm) = (self.old.model, self.new.model);
        match (to, tn) {
            (TypeDef::Struct(so), TypeDef::Struct(sn)) => {
                for fo in &so.fields {
                    let fo_span = self.at_old(fo.span, &fo.name);
                    match sn.fields.iter().find(|f| f.name == fo.name) {
                        None => {
                            if dir & OUT != 0 && !may_be_missing(om, fo) {
                                self.push(
                                    Level::Wire,
                                    format!("required field `{}` removed from `{}`", fo.name, so.name),
                                    format!("old readers of `{}` require `{}` and reject values without it", so.name, fo.name),
                                    "keep the field, or make it optional (`T?`) or give it a default in a release before removing it",
                                    span,
                                    fo_span,
                                );
                            } else {
                                self.push(
                                    Level::Source,
                                    format!("field `{}` removed from `{}`", fo.name, so.name),
                                    "Rust code reading or building the field no longer compiles",
                                    "keep the field",
                                    span,
                                    fo_span,
                                );
                            }
                        }
                        Some(fnew) => {
                            let fspan = self.at_new(fnew.span, &fnew.name);
                            self.use_site(
                                &format!("field `{}.{}`", sn.name, fnew.name),
                                dir,
                                Some(&fo.ty),
                                Some(&fnew.ty),
                                fspan,
                                fo_span,
                            );
                            if dir & IN != 0 && may_be_missing(om, fo) && !may_be_missing(nm, fnew)
                            {
                                self.push(
                                    Level::Wire,
                                    format!("field `{}.{}` is now required", sn.name, fnew.name),
                                    "old writers leave it out",
                                    "keep a default (`= value`) or keep it optional",
                                    fspan,
                                    fo_span,
                                );
                            }
                        }
                    }
                }
                for fnew in &sn.fields {
                    if so.fields.iter().any(|f| f.name == fnew.name) {
                        continue;
                    }
                    let fspan = self.at_new(fnew.span, &fnew.name);
                    if dir & IN != 0 && !may_be_missing(nm, fnew) {
                        self.push(
                            Level::Wire,
                            format!("required field `{}` added to `{}`", fnew.name, sn.name),
                            format!(
                                "old writers of `{}` do not send it, and reading fails",
                                sn.name
                            ),
                            "make it optional (`T?`) or give it a default",
                            fspan,
                            None,
                        );
                    } else {
                        self.push(
                            Level::Source,
                            format!("field `{}` added to `{}`", fnew.name, sn.name),
                            format!(
                                "Rust struct literals `{} {{ .. }}` must name the new field; the wire is fine since it may be missing and old readers ignore it",
                                sn.name
                            ),
                            "nothing on the wire breaks; Rust users add the field",
                            fspan,
                            None,
                        );
                    }
                }
            }
            (TypeDef::Enum(eo), TypeDef::Enum(en)) => {
                for vo in &eo.variants {
                    let vspan = self.at_old(vo.span, &vo.name);
                    if !en.variants.iter().any(|v| v.wire == vo.wire) && dir & IN != 0 {
                        self.push(
                            Level::Wire,
                            format!(
                                "variant `{}` (`\"{}\"`) removed from `{}`",
                                vo.name, vo.wire, eo.name
                            ),
                            format!(
                                "old writers still send `\"{}\"`, which no longer reads",
                                vo.wire
                            ),
                            "keep the variant",
                            span,
                            vspan,
                        );
                    } else if !en.variants.iter().any(|v| v.name == vo.name) {
                        self.push(
                            Level::Source,
                            format!("variant `{}` removed from `{}`", vo.name, eo.name),
                            "Rust code naming the variant no longer compiles",
                            "keep the variant",
                            span,
                            vspan,
                        );
                    }
                }
                for vn in &en.variants {
                    let vspan = self.at_new(vn.span, &vn.name);
                    if !eo.variants.iter().any(|v| v.wire == vn.wire) && dir & OUT != 0 {
                        self.push(
                            Level::Wire,
                            format!("variant `{}` added to `{}`", vn.name, en.name),
                            format!(
                                "`{}` reaches old readers (returned, or an event payload), and they reject `\"{}\"`",
                                en.name, vn.wire
                            ),
                            "add the variant only where old readers are gone, or to an enum callers only send",
                            vspan,
                            None,
                        );
                    } else if !eo.variants.iter().any(|v| v.name == vn.name) {
                        self.push(
                            Level::Source,
                            format!("variant `{}` added to `{}`", vn.name, en.name),
                            "an exhaustive Rust `match` on the enum no longer compiles",
                            "nothing on the wire breaks",
                            vspan,
                            None,
                        );
                    }
                }
            }
            (TypeDef::Alias(ao), TypeDef::Alias(an)) => {
                self.use_site(
                    &format!("type alias `{}`", an.name),
                    dir,
                    Some(&ao.ty),
                    Some(&an.ty),
                    span,
                    old_span,
                );
            }
            _ => {
                let mut wire = None;
                if dir & IN != 0
                    && let Err(e) = accepts_decl(package, nm, tn, om, to)
                {
                    wire = Some(e);
                }
                if dir & OUT != 0
                    && let Err(e) = accepts_decl(package, om, to, nm, tn)
                {
                    wire = Some(e);
                }
                let message = format!("`{}` changed from {} to {}", tn.name(), kind(to), kind(tn));
                match wire {
                    Some(e) => self.push(
                        Level::Wire,
                        message,
                        e,
                        "declare a new type and keep the old one",
                        span,
                        old_span,
                    ),
                    None => self.push(
                        Level::Source,
                        message,
                        "the wire is unchanged but the Rust item changes kind",
                        "keep the kind",
                        span,
                        old_span,
                    ),
                }
            }
        }
    }

    fn service(&mut self, so: &'a Service, sn: &'a Service, old_span: Option<Span>) {
        let span = self.at_new(sn.span, &sn.name);
        if so.name != sn.name {
            self.push(
                Level::Source,
                format!("service `{}` renamed `{}`", so.name, sn.name),
                format!(
                    "the generated module, trait, server and client are named after it; the wire name `{}` is unchanged",
                    sn.wire_name
                ),
                "keep the identifier",
                span,
                old_span,
            );
        }
        if so.wire_name != sn.wire_name {
            self.push(
                Level::Wire,
                format!("wire name of `{}` changed from `{}` to `{}`", sn.name, so.wire_name, sn.wire_name),
                format!(
                    "callers send to `{0}.<method>` and bind `{0}.<event>.queue`; nothing answers there any more",
                    so.wire_name
                ),
                "keep `name`, or deploy a second service under the new name",
                span,
                old_span,
            );
        }
        for ho in &so.headers {
            if !sn.headers.iter().any(|h| h.name == ho.name) {
                self.push(
                    Level::Source,
                    format!("header `{}` removed from `{}`", ho.name, sn.name),
                    "the generated constant in `headers::` is gone (headers themselves are free-form on the wire)",
                    "keep the declaration",
                    span,
                    self.at_old(ho.span, &ho.name),
                );
            }
        }
        // RPCs.
        for ro in &so.rpcs {
            let rspan_old = self.at_old(ro.span, &ro.name);
            match sn.rpcs.iter().find(|r| r.name == ro.name) {
                Some(rn) => self.rpc(sn, ro, rn, rspan_old),
                None => {
                    let twin = sn.rpcs.iter().find(|r| {
                        !so.rpcs.iter().any(|o| o.name == r.name)
                            && r.params.len() == ro.params.len()
                            && r.returns == ro.returns
                    });
                    let instead = match twin {
                        Some(t) => format!(
                            "a rename is a removal on the wire: keep `{}` beside `{}` until callers moved",
                            ro.name, t.name
                        ),
                        None => "keep the method".to_owned(),
                    };
                    self.push(
                        Level::Wire,
                        format!("rpc `{}` removed from `{}`", ro.name, sn.name),
                        format!(
                            "callers of `{}.{}` get an unknown-method error",
                            sn.wire_name, ro.name
                        ),
                        instead,
                        span,
                        rspan_old,
                    );
                }
            }
        }
        for rn in &sn.rpcs {
            if !so.rpcs.iter().any(|r| r.name == rn.name) {
                let s = self.at_new(rn.span, &rn.name);
                self.push(
                    Level::Source,
                    format!("rpc `{}` added to `{}`", rn.name, sn.name),
                    format!("implementations of trait `{}` must add the method", sn.name),
                    "nothing on the wire breaks",
                    s,
                    None,
                );
            }
        }
        // Emitted events.
        for eo in &so.emits {
            if !sn.emits.iter().any(|e| e.name == eo.name) {
                self.push(
                    Level::Wire,
                    format!("`{}` no longer emits `{}`", sn.name, eo.name),
                    format!(
                        "consumers of `{}` stop receiving it from `{}`, and the publisher method is gone",
                        eo.name, sn.wire_name
                    ),
                    "keep emitting it",
                    span,
                    None,
                );
            }
        }
        // Event handlers.
        for ho in &so.handlers {
            let hspan_old = self.at_old(ho.span, &ho.name);
            let by_name = sn.handlers.iter().find(|h| h.name == ho.name);
            let twin = || {
                sn.handlers.iter().find(|h| {
                    !so.handlers.iter().any(|o| o.name == h.name)
                        && h.source == ho.source
                        && h.mode == ho.mode
                })
            };
            match (by_name, by_name.is_none().then(twin).flatten()) {
                (Some(hn), _) => self.handler(sn, ho, hn, hspan_old),
                (None, Some(hn)) => {
                    let s = self.at_new(hn.span, &hn.name);
                    self.push(
                        Level::Source,
                        format!("event handler `{}` renamed `{}`", ho.name, hn.name),
                        format!(
                            "the trait method `{}` is renamed; queues are named after the event, not the handler, so the wire is unchanged",
                            ho.name
                        ),
                        "keep the name",
                        s,
                        hspan_old,
                    );
                }
                (None, None) => self.push(
                    Level::Wire,
                    format!("event handler `{}` removed from `{}`", ho.name, sn.name),
                    match ho.mode {
                        EventMode::Competing => format!(
                            "nothing consumes the durable queue `{}.<event>.queue` any more: published events pile up",
                            sn.wire_name
                        ),
                        _ => "events published to this service are dropped".to_owned(),
                    },
                    "keep the handler",
                    span,
                    hspan_old,
                ),
            }
        }
        for hn in &sn.handlers {
            if !so.handlers.iter().any(|h| h.name == hn.name)
                && !so.handlers.iter().any(|h| {
                    h.source == hn.source
                        && h.mode == hn.mode
                        && !sn.handlers.iter().any(|x| x.name == h.name)
                })
            {
                let s = self.at_new(hn.span, &hn.name);
                self.push(
                    Level::Source,
                    format!("event handler `{}` added to `{}`", hn.name, sn.name),
                    format!("implementations of trait `{}` must add the method", sn.name),
                    "nothing on the wire breaks",
                    s,
                    None,
                );
            }
        }
        // HTTP routes.
        for ro in &so.routes {
            let old = self.at_old(ro.span, &ro.name);
            let by_name = sn.routes.iter().find(|r| r.name == ro.name);
            match by_name {
                Some(rn) => self.route(ro, rn, old),
                None => self.push(
                    Level::Wire,
                    format!(
                        "http route `{}` ({} {}) removed from `{}`",
                        ro.name,
                        ro.method.as_str(),
                        path_text(&ro.path),
                        sn.name
                    ),
                    "HTTP clients of the route get 404",
                    "keep the route",
                    span,
                    old,
                ),
            }
        }
        for rn in &sn.routes {
            if !so.routes.iter().any(|r| r.name == rn.name) {
                let s = self.at_new(rn.span, &rn.name);
                self.push(
                    Level::Source,
                    format!("http route `{}` added to `{}`", rn.name, sn.name),
                    format!("implementations of trait `{}` must add the method", sn.name),
                    "nothing on the wire breaks",
                    s,
                    None,
                );
            }
        }
        // Tasks: not on the wire, but trait methods.
        for to in &so.tasks {
            if !sn.tasks.iter().any(|t| t.name == to.name) {
                self.push(
                    Level::Source,
                    format!("task `{}` removed from `{}`", to.name, sn.name),
                    format!(
                        "implementations of trait `{}` define a method the trait no longer has",
                        sn.name
                    ),
                    "nothing on the wire breaks (tasks run inside the service)",
                    span,
                    self.at_old(to.span, &to.name),
                );
            }
        }
        for tn in &sn.tasks {
            if !so.tasks.iter().any(|t| t.name == tn.name) {
                let s = self.at_new(tn.span, &tn.name);
                self.push(
                    Level::Source,
                    format!("task `{}` added to `{}`", tn.name, sn.name),
                    format!("implementations of trait `{}` must add the method", sn.name),
                    "nothing on the wire breaks",
                    s,
                    None,
                );
            }
        }
    }

    fn rpc(&mut self, svc: &Service, ro: &'a Rpc, rn: &'a Rpc, old_span: Option<Span>) {
        let span = self.at_new(rn.span, &rn.name);
        let what = format!("rpc `{}`", rn.name);
        let mut renamed = HashSet::new();
        for (i, po) in ro.params.iter().enumerate() {
            let po_span = self.at_old(po.span, &po.name);
            match rn.params.iter().position(|p| p.name == po.name) {
                None => {
                    let renamed_to = rn
                        .params
                        .get(i)
                        .filter(|p| !ro.params.iter().any(|o| o.name == p.name));
                    if let Some(pn) = renamed_to {
                        renamed.insert(pn.name.clone());
                        let s = self.at_new(pn.span, &pn.name);
                        self.push(
                            Level::Wire,
                            format!("parameter `{}` of {what} renamed `{}`", po.name, pn.name),
                            format!(
                                "callers that pass it by keyword (`kwargs`, as kontiki-tui and many Python callers do) send `{}`, which the method no longer takes",
                                po.name
                            ),
                            "keep the name",
                            s,
                            po_span,
                        );
                        self.param_type(&what, po, pn, s, po_span);
                    } else {
                        self.push(
                            Level::Wire,
                            format!("parameter `{}` removed from {what}", po.name),
                            "old callers still send it: Python Kontiki raises `TypeError` on the extra argument and kontiki-rs answers `INVALID_ARGUMENTS`; positional arguments after it shift",
                            "keep the parameter and ignore it",
                            span,
                            po_span,
                        );
                    }
                }
                Some(j) => {
                    let pn = &rn.params[j];
                    let s = self.at_new(pn.span, &pn.name);
                    if j != i {
                        self.push(
                            Level::Wire,
                            format!("parameter `{}` of {what} moved from position {} to {}", po.name, i + 1, j + 1),
                            "callers pass arguments by position (the Rust client always does, Python callers mostly), so each lands in another parameter",
                            "keep the order; add new parameters at the end",
                            s,
                            po_span,
                        );
                    }
                    self.param_type(&what, po, pn, s, po_span);
                }
            }
        }
        for (j, pn) in rn.params.iter().enumerate() {
            if ro.params.iter().any(|p| p.name == pn.name) || renamed.contains(&pn.name) {
                continue;
            }
            let s = self.at_new(pn.span, &pn.name);
            let at_end = j >= ro.params.len();
            if !may_be_missing(self.new.model, pn) {
                self.push(
                    Level::Wire,
                    format!("parameter `{}` added to {what} without a default", pn.name),
                    "old callers do not send it, and the call fails",
                    "give it a default (`= value`) or make it optional (`T?`), at the end",
                    s,
                    None,
                );
            } else if !at_end {
                self.push(
                    Level::Wire,
                    format!("parameter `{}` inserted into {what} at position {}", pn.name, j + 1),
                    "old callers pass arguments by position, so the ones after it land in the wrong parameter",
                    "add new parameters at the end",
                    s,
                    None,
                );
            } else {
                self.push(
                    Level::Source,
                    format!("parameter `{}` added to {what}", pn.name),
                    "old callers leave it out and get the default, but the generated trait method and client method take one more argument",
                    "nothing on the wire breaks; Rust callers pass the new argument",
                    s,
                    None,
                );
            }
        }
        self.use_site(
            &format!("return type of {what}"),
            OUT | UNIT,
            ro.returns.as_ref(),
            rn.returns.as_ref(),
            span,
            old_span,
        );
        for e in &ro.errors {
            if !rn.errors.iter().any(|x| x.code == e.code) {
                self.push(
                    Level::Wire,
                    format!("{what} no longer raises `{}`", e.code),
                    format!(
                        "callers that handle `{}` from `{}.{}` never see it; the failure reaches them as another code",
                        e.code, svc.wire_name, rn.name
                    ),
                    "keep it in `raises`",
                    span,
                    old_span,
                );
            }
        }
        for e in &rn.errors {
            if !ro.errors.iter().any(|x| x.code == e.code) {
                self.push(
                    Level::Source,
                    format!("{what} now raises `{}`", e.code),
                    "the generated client error enum gets a variant, so an exhaustive Rust `match` on it no longer compiles; old clients see the code as an other/unknown client error",
                    "nothing on the wire breaks",
                    span,
                    old_span,
                );
            }
        }
        if ro.include_headers != rn.include_headers {
            self.push(
                Level::Source,
                format!("`include_headers` of {what} changed"),
                "the trait method gains or loses its `headers` parameter",
                "nothing on the wire breaks",
                span,
                old_span,
            );
        }
    }

    fn param_type(&mut self, what: &str, po: &Field, pn: &Field, span: Span, old: Option<Span>) {
        self.use_site(
            &format!("type of parameter `{}` of {what}", pn.name),
            IN,
            Some(&po.ty),
            Some(&pn.ty),
            span,
            old,
        );
        if may_be_missing(self.old.model, po) && !may_be_missing(self.new.model, pn) {
            self.push(
                Level::Wire,
                format!("parameter `{}` of {what} is now required", pn.name),
                "old callers may leave it out",
                "keep its default",
                span,
                old,
            );
        }
    }

    fn handler(
        &mut self,
        svc: &Service,
        ho: &crate::model::EventHandler,
        hn: &crate::model::EventHandler,
        old: Option<Span>,
    ) {
        let span = self.at_new(hn.span, &hn.name);
        let what = format!("event handler `{}`", hn.name);
        if ho.mode != hn.mode {
            // The event type in queue names: the handler's, or a placeholder for config ones.
            let ev = match &hn.source {
                EventSource::Events(evs) if evs.len() == 1 => evs[0].name.clone(),
                _ => "<event>".to_owned(),
            };
            let svc_name = &svc.wire_name;
            let q = |m: EventMode| match m {
                EventMode::Competing => {
                    format!("the shared quorum queue `{svc_name}.{ev}.queue`")
                }
                EventMode::Broadcast => format!(
                    "a queue per instance `{svc_name}.{ev}.<instance>.queue` bound with `{ev}`"
                ),
                EventMode::InSession => format!(
                    "a queue per instance `{svc_name}.{ev}.<instance>.queue` bound with `{ev}.<instance>`, which only session publishers use"
                ),
            };
            self.push(
                Level::Wire,
                format!(
                    "mode of {what} changed from {} to {}",
                    mode(ho.mode),
                    mode(hn.mode)
                ),
                format!("it consumed {}; it now consumes {}", q(ho.mode), q(hn.mode)),
                "add a second handler with the new mode and keep the old one",
                span,
                old,
            );
        } else if ho.mode == EventMode::Competing && ho.max_attempts != hn.max_attempts {
            self.push(
                Level::Wire,
                format!("`max_attempts` of {what} changed from {} to {}", ho.max_attempts, hn.max_attempts),
                format!(
                    "the durable queue of a running deployment was declared with `x-delivery-limit = {}`, and RabbitMQ refuses to declare it again with other arguments (PRECONDITION_FAILED) until it is deleted",
                    ho.max_attempts.saturating_sub(1)
                ),
                "keep `max_attempts`, or delete the queue while the service is stopped",
                span,
                old,
            );
        }
        match (&ho.source, &hn.source) {
            (EventSource::Events(eo), EventSource::Events(en)) => {
                for e in eo {
                    if !en.iter().any(|x| x.name == e.name) {
                        self.push(
                            Level::Wire,
                            format!("{what} no longer handles `{}`", e.name),
                            format!(
                                "published `{}` events are no longer consumed by `{}`",
                                e.name, svc.wire_name
                            ),
                            "keep the event in the handler",
                            span,
                            old,
                        );
                    }
                }
                if en.iter().any(|e| !eo.iter().any(|x| x.name == e.name)) {
                    self.push(
                        Level::Source,
                        format!("{what} handles more event types"),
                        "the trait method takes another payload type (an enum of the payloads), so implementations no longer compile",
                        "nothing on the wire breaks",
                        span,
                        old,
                    );
                }
            }
            (a, b) if a != b => self.push(
                Level::Wire,
                format!("events of {what} changed"),
                "it consumed other routing keys",
                "keep the event source",
                span,
                old,
            ),
            _ => {}
        }
        if ho.include_headers != hn.include_headers {
            self.push(
                Level::Source,
                format!("`include_headers` of {what} changed"),
                "the trait method gains or loses its `headers` parameter",
                "nothing on the wire breaks",
                span,
                old,
            );
        }
    }

    fn route(
        &mut self,
        ro: &'a crate::model::HttpRoute,
        rn: &'a crate::model::HttpRoute,
        old: Option<Span>,
    ) {
        let span = self.at_new(rn.span, &rn.name);
        let what = format!("http route `{}`", rn.name);
        if ro.method != rn.method || path_shape(&ro.path) != path_shape(&rn.path) {
            self.push(
                Level::Wire,
                format!(
                    "{what} moved from {} {} to {} {}",
                    ro.method.as_str(),
                    path_text(&ro.path),
                    rn.method.as_str(),
                    path_text(&rn.path)
                ),
                "HTTP clients of the old method and path get 404 or 405",
                "keep the old route beside the new one",
                span,
                old,
            );
        }
        for (po, pn) in ro.path_params.iter().zip(&rn.path_params) {
            let s = self.at_new(pn.span, &pn.name);
            self.use_site(
                &format!("path parameter `{}` of {what}", pn.name),
                IN,
                Some(&po.ty),
                Some(&pn.ty),
                s,
                old,
            );
        }
        for qo in &ro.query {
            match rn.query.iter().find(|q| q.name == qo.name) {
                None => self.push(
                    Level::Source,
                    format!("query parameter `{}` removed from {what}", qo.name),
                    "the trait method loses a parameter (clients that still send it are not refused: unknown query parameters are ignored)",
                    "keep the parameter",
                    span,
                    old,
                ),
                Some(qn) => {
                    let s = self.at_new(qn.span, &qn.name);
                    self.param_type(&what, qo, qn, s, old);
                }
            }
        }
        for qn in &rn.query {
            if ro.query.iter().any(|q| q.name == qn.name) {
                continue;
            }
            let s = self.at_new(qn.span, &qn.name);
            if may_be_missing(self.new.model, qn) {
                self.push(
                    Level::Source,
                    format!("query parameter `{}` added to {what}", qn.name),
                    "old clients leave it out and get the default, but the trait method takes one more argument",
                    "nothing on the wire breaks",
                    s,
                    None,
                );
            } else {
                self.push(
                    Level::Wire,
                    format!("required query parameter `{}` added to {what}", qn.name),
                    "old clients do not send it and get 422",
                    "make it optional or give it a default",
                    s,
                    None,
                );
            }
        }
        self.use_site(
            &format!("request body of {what}"),
            IN,
            ro.body.as_ref(),
            rn.body.as_ref(),
            span,
            old,
        );
        self.use_site(
            &format!("response of {what}"),
            OUT,
            ro.response.as_ref(),
            rn.response.as_ref(),
            span,
            old,
        );
        if ro.status != rn.status {
            self.push(
                Level::Wire,
                format!(
                    "success status of {what} changed from {} to {}",
                    ro.status, rn.status
                ),
                "HTTP clients that check the status see another one",
                "keep the status",
                span,
                old,
            );
        }
        for e in &ro.errors {
            match rn.errors.iter().find(|x| x.error.code == e.error.code) {
                None => self.push(
                    Level::Wire,
                    format!("{what} no longer maps `{}` to {}", e.error.code, e.status),
                    "HTTP clients that handle that status for that error see another one",
                    "keep it in `raises`",
                    span,
                    old,
                ),
                Some(x) if x.status != e.status => self.push(
                    Level::Wire,
                    format!(
                        "{what} maps `{}` to {} instead of {}",
                        e.error.code, x.status, e.status
                    ),
                    "HTTP clients that handle the old status see another one",
                    "keep the status",
                    span,
                    old,
                ),
                Some(_) => {}
            }
        }
    }
}

/// Whether values of the declaration `wd` (named `wn`, in `wm`) read as `rd` (`rn`, in `rm`).
fn accepts_defs(
    rm: &Model,
    rn: &NamedType,
    rd: &TypeDef,
    wm: &Model,
    wn: &NamedType,
    wd: &TypeDef,
    depth: u32,
) -> Result<(), String> {
    match (rd, wd) {
        (TypeDef::Struct(rs), TypeDef::Struct(ws)) => {
            for rf in &rs.fields {
                match ws.fields.iter().find(|f| f.name == rf.name) {
                    Some(wf) => accepts(rm, &rf.ty, wm, &wf.ty, depth + 1)
                        .map_err(|e| format!("field `{}`: {e}", rf.name))?,
                    None if may_be_missing(rm, rf) => {}
                    None => {
                        return Err(format!(
                            "`{}` requires field `{}`, which `{}` does not have",
                            rn.name, rf.name, wn.name
                        ));
                    }
                }
            }
            Ok(())
        }
        (TypeDef::Enum(re), TypeDef::Enum(we)) => match we
            .variants
            .iter()
            .find(|v| !re.variants.iter().any(|x| x.wire == v.wire))
        {
            Some(v) => Err(format!("`{}` has no variant `{}`", rn.name, v.wire)),
            None => Ok(()),
        },
        (TypeDef::Alias(a), _) => accepts(rm, &a.ty, wm, &TypeRef::Named(wn.clone()), depth + 1),
        (_, TypeDef::Alias(b)) => accepts(rm, &TypeRef::Named(rn.clone()), wm, &b.ty, depth + 1),
        _ => Err(format!(
            "a {} `{}` does not read as a {} `{}`",
            kind(wd),
            wn.name,
            kind(rd),
            rn.name
        )),
    }
}

/// [`accepts_defs`] for two versions of one declaration of `package`.
fn accepts_decl(
    package: &str,
    rm: &Model,
    r: &TypeDef,
    wm: &Model,
    w: &TypeDef,
) -> Result<(), String> {
    accepts_defs(rm, &named(package, r), r, wm, &named(package, w), w, 0)
}

fn named(package: &str, t: &TypeDef) -> NamedType {
    NamedType {
        package: package.to_owned(),
        name: t.name().to_owned(),
        kind: match t {
            TypeDef::Struct(_) => crate::model::NamedKind::Struct,
            TypeDef::Enum(_) => crate::model::NamedKind::Enum,
            TypeDef::Alias(_) => crate::model::NamedKind::Alias,
        },
    }
}

fn kind(t: &TypeDef) -> &'static str {
    match t {
        TypeDef::Struct(_) => "struct",
        TypeDef::Enum(_) => "enum",
        TypeDef::Alias(_) => "type alias",
    }
}

fn type_span(t: &TypeDef) -> Span {
    match t {
        TypeDef::Struct(s) => s.span,
        TypeDef::Enum(e) => e.span,
        TypeDef::Alias(a) => a.span,
    }
}

fn mode(m: EventMode) -> &'static str {
    match m {
        EventMode::Competing => "competing",
        EventMode::Broadcast => "broadcast",
        EventMode::InSession => "in_session",
    }
}

fn path_text(p: &HttpPath) -> String {
    match p {
        HttpPath::Literal(s) => s.clone(),
        HttpPath::Config(k) => format!("config \"{k}\""),
    }
}

/// A path with its parameter names blanked (`/a/{id}` and `/a/{key}` are the same URL).
fn path_shape(p: &HttpPath) -> String {
    match p {
        HttpPath::Literal(s) => {
            let mut out = String::new();
            let mut inside = false;
            for c in s.chars() {
                match c {
                    '{' => {
                        inside = true;
                        out.push('{');
                    }
                    '}' => {
                        inside = false;
                        out.push('}');
                    }
                    _ if inside => {}
                    c => out.push(c),
                }
            }
            out
        }
        HttpPath::Config(k) => format!("config:{k}"),
    }
}
