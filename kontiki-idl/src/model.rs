//! The checked model: what code generators consume.
//!
//! Every reference is resolved: a [`TypeRef::Named`] says which package declares the type and
//! what kind it is, an [`ErrorRef`] carries the code's default message, an [`EventRef`] carries
//! the payload type. Docs are kept everywhere. Spans are kept for later diagnostics but are not
//! serialized.

use serde::Serialize;

use crate::ast::Docs;
use crate::span::Span;

/// A checked root file and every package it imports, directly or not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Model {
    /// Name of the root package (the file passed to `load`).
    pub root: String,
    /// Every package, imports before importers; the root is last.
    pub packages: Vec<Package>,
}

impl Model {
    /// The root package.
    pub fn root_package(&self) -> Option<&Package> {
        self.packages.iter().find(|p| p.name == self.root)
    }

    /// A package by name.
    pub fn package(&self, name: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.name == name)
    }

    /// The declaration a named type reference points at.
    pub fn type_def(&self, r: &NamedType) -> Option<&TypeDef> {
        self.package(&r.package)?
            .types
            .iter()
            .find(|t| t.name() == r.name)
    }
}

/// One `.kontiki` file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Package {
    /// `package name;`
    pub name: String,
    /// The file, as named in diagnostics.
    pub file: String,
    /// `//!` docs.
    pub docs: Docs,
    /// Names of the packages this file imports.
    pub imports: Vec<String>,
    /// Structs, enums and aliases, in source order.
    pub types: Vec<TypeDef>,
    /// Error codes, in source order.
    pub errors: Vec<ErrorDef>,
    /// Event types, in source order.
    pub events: Vec<EventDef>,
    /// Services, in source order.
    pub services: Vec<Service>,
}

/// A declared type.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TypeDef {
    /// `struct`
    Struct(Struct),
    /// `enum`
    Enum(Enum),
    /// `type X = T;`
    Alias(Alias),
}

impl TypeDef {
    /// The declared name.
    pub fn name(&self) -> &str {
        match self {
            TypeDef::Struct(s) => &s.name,
            TypeDef::Enum(e) => &e.name,
            TypeDef::Alias(a) => &a.name,
        }
    }

    /// The docs.
    pub fn docs(&self) -> &Docs {
        match self {
            TypeDef::Struct(s) => &s.docs,
            TypeDef::Enum(e) => &e.docs,
            TypeDef::Alias(a) => &a.docs,
        }
    }
}

/// A struct.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Struct {
    /// Name.
    pub name: String,
    /// Docs.
    pub docs: Docs,
    /// Fields, in order.
    pub fields: Vec<Field>,
    /// Where it is declared.
    #[serde(skip)]
    pub span: Span,
}

/// A struct field, or a parameter of an RPC or a route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    /// Name as written (may be a Rust keyword such as `type`).
    pub name: String,
    /// Docs.
    pub docs: Docs,
    /// Type.
    #[serde(rename = "type")]
    pub ty: TypeRef,
    /// Default value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Where it is declared.
    #[serde(skip)]
    pub span: Span,
}

/// A string enum.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Enum {
    /// Name.
    pub name: String,
    /// Docs.
    pub docs: Docs,
    /// Variants, in order.
    pub variants: Vec<Variant>,
    /// Where it is declared.
    #[serde(skip)]
    pub span: Span,
}

/// An enum variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Variant {
    /// Name in the IDL.
    pub name: String,
    /// The string on the wire (defaults to the name).
    pub wire: String,
    /// Docs.
    pub docs: Docs,
    /// Where it is declared.
    #[serde(skip)]
    pub span: Span,
}

/// A type alias.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alias {
    /// Name.
    pub name: String,
    /// Docs.
    pub docs: Docs,
    /// The aliased type.
    #[serde(rename = "type")]
    pub ty: TypeRef,
    /// Where it is declared.
    #[serde(skip)]
    pub span: Span,
}

/// A resolved type.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeRef {
    /// `bool`
    Bool,
    /// `i32`
    I32,
    /// `i64`
    I64,
    /// `u32`
    U32,
    /// `u64`
    U64,
    /// `f64`
    F64,
    /// `string`
    String,
    /// `bytes`: `{"__bytes__": true, "data": <base64>}` on the wire.
    Bytes,
    /// `datetime`: ISO 8601 date and time.
    Datetime,
    /// `date`: ISO 8601 date.
    Date,
    /// `uuid`
    Uuid,
    /// `json`: any JSON value.
    Json,
    /// `T?`
    Optional(Box<TypeRef>),
    /// `list<T>`
    List(Box<TypeRef>),
    /// `map<string, T>`: the value type.
    Map(Box<TypeRef>),
    /// A declared struct, enum or alias.
    Named(NamedType),
}

impl TypeRef {
    /// The built-in type with this name.
    pub fn builtin(name: &str) -> Option<TypeRef> {
        Some(match name {
            "bool" => TypeRef::Bool,
            "i32" => TypeRef::I32,
            "i64" => TypeRef::I64,
            "u32" => TypeRef::U32,
            "u64" => TypeRef::U64,
            "f64" => TypeRef::F64,
            "string" => TypeRef::String,
            "bytes" => TypeRef::Bytes,
            "datetime" => TypeRef::Datetime,
            "date" => TypeRef::Date,
            "uuid" => TypeRef::Uuid,
            "json" => TypeRef::Json,
            _ => return None,
        })
    }

    /// Names of the built-in types.
    pub const BUILTINS: &'static [&'static str] = &[
        "bool", "i32", "i64", "u32", "u64", "f64", "string", "bytes", "datetime", "date", "uuid",
        "json",
    ];

    /// Whether `T?` (or `json`, which may be null).
    pub fn is_optional(&self) -> bool {
        matches!(self, TypeRef::Optional(_) | TypeRef::Json)
    }
}

/// A reference to a declared type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamedType {
    /// Package that declares it.
    pub package: String,
    /// Its name.
    pub name: String,
    /// What it is.
    pub kind: NamedKind,
}

/// The kind of a declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NamedKind {
    /// A struct.
    Struct,
    /// A string enum.
    Enum,
    /// An alias.
    Alias,
}

/// A literal default value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    /// `null`
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer too large for `i64`.
    UInt(u64),
    /// A decimal number.
    Float(f64),
    /// A string.
    String(String),
    /// An enum variant: its name and wire string.
    EnumVariant {
        /// Variant name.
        name: String,
        /// Wire string.
        wire: String,
    },
    /// A list.
    List(Vec<Value>),
    /// A map with string keys, in source order.
    Map(Vec<(String, Value)>),
}

/// A declared error code.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorDef {
    /// The code, such as `USER_INPUT_ERROR`.
    pub code: String,
    /// Default message.
    pub message: String,
    /// Default HTTP status when a route raises it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Docs.
    pub docs: Docs,
    /// Where it is declared.
    #[serde(skip)]
    pub span: Span,
}

/// A use of an error code.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorRef {
    /// Package that declares it.
    pub package: String,
    /// The code.
    pub code: String,
    /// Its default message.
    pub message: String,
}

/// A declared event type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventDef {
    /// The event type (routing key), such as `user.created`.
    pub name: String,
    /// Payload type.
    pub payload: TypeRef,
    /// Docs.
    pub docs: Docs,
    /// Where it is declared.
    #[serde(skip)]
    pub span: Span,
}

/// A use of an event type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRef {
    /// Package that declares it.
    pub package: String,
    /// The event type.
    pub name: String,
    /// Payload type.
    pub payload: TypeRef,
}

/// A service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    /// Identifier, such as `ComputeApi`.
    pub name: String,
    /// Name on the wire, such as `compute-api` (defaults to the identifier).
    pub wire_name: String,
    /// Version reported to the registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Docs.
    pub docs: Docs,
    /// Extra message headers.
    pub headers: Vec<HeaderDef>,
    /// RPC methods, in order.
    pub rpcs: Vec<Rpc>,
    /// Events it publishes.
    pub emits: Vec<EventRef>,
    /// Event handlers, in order.
    pub handlers: Vec<EventHandler>,
    /// HTTP routes, in order.
    pub routes: Vec<HttpRoute>,
    /// Periodic tasks, in order.
    pub tasks: Vec<Task>,
    /// Where it is declared.
    #[serde(skip)]
    pub span: Span,
}

/// A declared extra header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeaderDef {
    /// Header key.
    pub name: String,
    /// Value type.
    #[serde(rename = "type")]
    pub ty: TypeRef,
    /// Docs.
    pub docs: Docs,
    /// Where it is declared.
    #[serde(skip)]
    pub span: Span,
}

/// An RPC method (`@rpc`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rpc {
    /// Method name, also the routing-key word.
    pub name: String,
    /// Docs.
    pub docs: Docs,
    /// Parameters, in positional order.
    pub params: Vec<Field>,
    /// Return type; `None` returns `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub returns: Option<TypeRef>,
    /// Error codes it may return as client errors.
    pub errors: Vec<ErrorRef>,
    /// `include_headers`: the handler receives the message headers.
    pub include_headers: bool,
    /// `timeout = N`: the handler timeout in seconds; `None` leaves it to the runtime's
    /// configuration (`kontiki.handler_timeout`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Where it is declared.
    #[serde(skip)]
    pub span: Span,
}

/// How an event handler's queue is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventMode {
    /// One shared quorum queue; replicas compete (the default).
    Competing,
    /// Every replica gets a copy.
    Broadcast,
    /// Only the replica pinned by a session.
    InSession,
}

/// The events a handler consumes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    /// Declared event types.
    Events(Vec<EventRef>),
    /// A config key holding one event type or a list (`use_config=True`).
    Config(String),
}

/// An event handler (`@on_event`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventHandler {
    /// Handler name.
    pub name: String,
    /// Docs.
    pub docs: Docs,
    /// What it consumes.
    pub source: EventSource,
    /// Queue sharing.
    pub mode: EventMode,
    /// Deliveries before a message goes to the failed queue (competing only; default 3).
    pub max_attempts: u32,
    /// The handler receives the message headers.
    pub include_headers: bool,
    /// `timeout = N`: the handler timeout in seconds; `None` leaves it to the runtime's
    /// configuration (`kontiki.handler_timeout`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Where it is declared.
    #[serde(skip)]
    pub span: Span,
}

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HttpMethod {
    /// GET
    #[serde(rename = "GET")]
    Get,
    /// POST
    #[serde(rename = "POST")]
    Post,
    /// PUT
    #[serde(rename = "PUT")]
    Put,
    /// PATCH
    #[serde(rename = "PATCH")]
    Patch,
    /// DELETE
    #[serde(rename = "DELETE")]
    Delete,
    /// HEAD
    #[serde(rename = "HEAD")]
    Head,
    /// OPTIONS
    #[serde(rename = "OPTIONS")]
    Options,
}

impl HttpMethod {
    /// Parses an upper-case method name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "GET" => HttpMethod::Get,
            "POST" => HttpMethod::Post,
            "PUT" => HttpMethod::Put,
            "PATCH" => HttpMethod::Patch,
            "DELETE" => HttpMethod::Delete,
            "HEAD" => HttpMethod::Head,
            "OPTIONS" => HttpMethod::Options,
            _ => return None,
        })
    }

    /// The upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Head => "HEAD",
            HttpMethod::Options => "OPTIONS",
        }
    }

    /// Whether a request body is allowed.
    pub fn allows_body(self) -> bool {
        matches!(self, HttpMethod::Post | HttpMethod::Put | HttpMethod::Patch)
    }
}

/// Where a route's path comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpPath {
    /// A path template such as `/items/{id}`.
    Literal(String),
    /// A config key holding the path (`use_config=True`).
    Config(String),
}

/// An error a route maps to a status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpError {
    /// The error.
    pub error: ErrorRef,
    /// Its status on this route.
    pub status: u16,
}

/// An HTTP route (`@http`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpRoute {
    /// Handler name.
    pub name: String,
    /// Docs (the OpenAPI description unless `description` is set).
    pub docs: Docs,
    /// Method.
    pub method: HttpMethod,
    /// Path.
    pub path: HttpPath,
    /// Path parameters, in declaration order.
    pub path_params: Vec<Field>,
    /// Query parameters.
    pub query: Vec<Field>,
    /// Request body type (validated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<TypeRef>,
    /// Response type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<TypeRef>,
    /// Success status (default 200).
    pub status: u16,
    /// OpenAPI version (`v1`); unversioned routes are in no document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// OpenAPI summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// OpenAPI description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// OpenAPI tags.
    pub tags: Vec<String>,
    /// Error codes and their statuses.
    pub errors: Vec<HttpError>,
    /// `skip_documentation=True`.
    pub exclude_from_docs: bool,
    /// Where it is declared.
    #[serde(skip)]
    pub span: Span,
}

/// When a task runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Every so many seconds.
    Interval {
        /// Seconds.
        seconds: u64,
    },
    /// Every N seconds, N read from a config key.
    IntervalConfig(String),
    /// A 5-field cron expression (validated).
    Cron(String),
    /// A cron expression read from a config key.
    CronConfig(String),
}

/// A periodic task (`@task`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    /// Task name.
    pub name: String,
    /// Docs.
    pub docs: Docs,
    /// Schedule.
    pub schedule: Schedule,
    /// Run once at start (default true for intervals, false for cron).
    pub immediate: bool,
    /// The IANA time zone cron schedules are read in (`[time_zone = "Europe/Paris"]`);
    /// `None`: UTC, as the runtime defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Where it is declared.
    #[serde(skip)]
    pub span: Span,
}
