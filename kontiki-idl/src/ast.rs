//! The syntax tree of one `.kontiki` file: plain data, as written, before any check.
//!
//! Every node has a `span`; every declaration has `docs`. Names are [`Ident`]s so that
//! diagnostics can point at them.

use crate::span::Span;

/// The `///` (or `//!`) lines attached to a declaration, without the comment marker and
/// without one leading space.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(transparent)]
pub struct Docs(pub Vec<String>);

impl Docs {
    /// Whether there is no doc line.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The lines.
    pub fn lines(&self) -> &[String] {
        &self.0
    }

    /// The lines joined with `\n`.
    pub fn text(&self) -> String {
        self.0.join("\n")
    }
}

/// A name and where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Where.
    pub span: Span,
}

/// A string literal (escapes resolved) and where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrLit {
    /// The value.
    pub value: String,
    /// Where, quotes included.
    pub span: Span,
}

/// A whole file.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    /// `//!` lines at the top.
    pub docs: Docs,
    /// `package name;`
    pub package: Ident,
    /// `import "...";` lines.
    pub imports: Vec<Import>,
    /// Declarations, in order.
    pub items: Vec<Item>,
    /// The whole file.
    pub span: Span,
}

/// `import "path";`
#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    /// The path, relative to the importing file.
    pub path: StrLit,
    /// The whole statement.
    pub span: Span,
}

/// A top-level declaration.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `struct`
    Struct(Struct),
    /// `enum`
    Enum(Enum),
    /// `type X = ...;`
    Alias(Alias),
    /// `error CODE = "...";`
    Error(ErrorDecl),
    /// `event name: Payload;`
    Event(EventDecl),
    /// `service`
    Service(Service),
}

/// `struct Name { ... }`
#[derive(Debug, Clone, PartialEq)]
pub struct Struct {
    /// Docs.
    pub docs: Docs,
    /// Name.
    pub name: Ident,
    /// Fields, in order.
    pub fields: Vec<Field>,
    /// Whole declaration.
    pub span: Span,
}

/// A struct field or a parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Docs.
    pub docs: Docs,
    /// Name (any identifier, keywords included).
    pub name: Ident,
    /// Type.
    pub ty: TypeExpr,
    /// `= value`
    pub default: Option<Value>,
    /// Whole field.
    pub span: Span,
}

/// `enum Name { ... }`
#[derive(Debug, Clone, PartialEq)]
pub struct Enum {
    /// Docs.
    pub docs: Docs,
    /// Name.
    pub name: Ident,
    /// Variants, in order.
    pub variants: Vec<Variant>,
    /// Whole declaration.
    pub span: Span,
}

/// An enum variant.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Docs.
    pub docs: Docs,
    /// Name.
    pub name: Ident,
    /// `= "wire"`
    pub value: Option<StrLit>,
    /// Whole variant.
    pub span: Span,
}

/// `type Name = T;`
#[derive(Debug, Clone, PartialEq)]
pub struct Alias {
    /// Docs.
    pub docs: Docs,
    /// Name.
    pub name: Ident,
    /// Aliased type.
    pub ty: TypeExpr,
    /// Whole declaration.
    pub span: Span,
}

/// `error CODE = "message" [status = N];`
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorDecl {
    /// Docs.
    pub docs: Docs,
    /// The code.
    pub code: Ident,
    /// Default message.
    pub message: StrLit,
    /// Options.
    pub options: Vec<OptionEntry>,
    /// Whole declaration.
    pub span: Span,
}

/// `event name: Payload;`
#[derive(Debug, Clone, PartialEq)]
pub struct EventDecl {
    /// Docs.
    pub docs: Docs,
    /// The event type (routing key).
    pub name: EventName,
    /// Payload type.
    pub payload: TypeExpr,
    /// Whole declaration.
    pub span: Span,
}

/// An event type as written: dotted words or a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventName {
    /// The event type.
    pub value: String,
    /// Where.
    pub span: Span,
}

/// `service Name { ... }`
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Docs.
    pub docs: Docs,
    /// Identifier.
    pub name: Ident,
    /// Members, in order.
    pub members: Vec<Member>,
    /// Whole declaration.
    pub span: Span,
}

/// What a service body holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Member {
    /// `name = value;`
    Property(Property),
    /// `header name: T;`
    Header(Header),
    /// `rpc ...;`
    Rpc(Rpc),
    /// `emits ...;`
    Emits(Emits),
    /// `on_event ...;`
    Handler(Handler),
    /// `http ...;` (boxed: by far the largest member)
    Http(Box<Http>),
    /// `task ...;`
    Task(Task),
}

/// `name = value;` in a service.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    /// Property name.
    pub name: Ident,
    /// Value.
    pub value: Value,
    /// Whole statement.
    pub span: Span,
}

/// `header name: T;`
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Docs.
    pub docs: Docs,
    /// Header key.
    pub name: StrLit,
    /// Value type.
    pub ty: TypeExpr,
    /// Whole statement.
    pub span: Span,
}

/// `rpc name(params) -> T raises ... [options];`
#[derive(Debug, Clone, PartialEq)]
pub struct Rpc {
    /// Docs.
    pub docs: Docs,
    /// Method name.
    pub name: Ident,
    /// Parameters, in order.
    pub params: Vec<Field>,
    /// Return type.
    pub returns: Option<TypeExpr>,
    /// `raises` list.
    pub raises: Vec<Raise>,
    /// Options.
    pub options: Vec<OptionEntry>,
    /// Whole statement.
    pub span: Span,
}

/// An error code after `raises`.
#[derive(Debug, Clone, PartialEq)]
pub struct Raise {
    /// The code, maybe qualified.
    pub code: Path,
    /// `= status`
    pub status: Option<(i64, Span)>,
    /// Whole item.
    pub span: Span,
}

/// `emits a, b;`
#[derive(Debug, Clone, PartialEq)]
pub struct Emits {
    /// Docs.
    pub docs: Docs,
    /// The events.
    pub events: Vec<EventName>,
    /// Whole statement.
    pub span: Span,
}

/// `on_event handler(...) [options];`
#[derive(Debug, Clone, PartialEq)]
pub struct Handler {
    /// Docs.
    pub docs: Docs,
    /// Handler name.
    pub name: Ident,
    /// Event types or a config key.
    pub source: EventSource,
    /// Options.
    pub options: Vec<OptionEntry>,
    /// Whole statement.
    pub span: Span,
}

/// The events a handler consumes.
#[derive(Debug, Clone, PartialEq)]
pub enum EventSource {
    /// Listed event types.
    Events(Vec<EventName>),
    /// `config "key"`
    Config(StrLit),
}

/// `http handler METHOD path ... ;`
#[derive(Debug, Clone, PartialEq)]
pub struct Http {
    /// Docs.
    pub docs: Docs,
    /// Handler name.
    pub name: Ident,
    /// Method, upper case.
    pub method: Ident,
    /// Path or config key.
    pub path: HttpPath,
    /// Path parameters.
    pub path_params: Vec<Field>,
    /// Query parameters.
    pub query: Vec<Field>,
    /// Request body type.
    pub body: Option<TypeExpr>,
    /// Response type.
    pub returns: Option<TypeExpr>,
    /// Error codes with statuses.
    pub raises: Vec<Raise>,
    /// Options.
    pub options: Vec<OptionEntry>,
    /// Whole statement.
    pub span: Span,
}

/// The path of a route.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpPath {
    /// A literal path template.
    Literal(StrLit),
    /// `config "key"`
    Config(StrLit),
}

/// `task name schedule [options];`
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Docs.
    pub docs: Docs,
    /// Task name.
    pub name: Ident,
    /// Schedule.
    pub schedule: Schedule,
    /// Options.
    pub options: Vec<OptionEntry>,
    /// Whole statement.
    pub span: Span,
}

/// When a task runs, as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// `every 10s`
    Every(StrLit),
    /// `every config "key"`
    EveryConfig(StrLit),
    /// `cron "..."`
    Cron(StrLit),
    /// `cron config "key"`
    CronConfig(StrLit),
}

/// `name` or `name = value` in `[...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionEntry {
    /// Option name.
    pub name: Ident,
    /// Value, absent for a flag.
    pub value: Option<Value>,
    /// Whole entry.
    pub span: Span,
}

/// `name` or `package.name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// The package qualifier.
    pub package: Option<Ident>,
    /// The name.
    pub name: Ident,
    /// Whole path.
    pub span: Span,
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.package {
            Some(p) => write!(f, "{}.{}", p.name, self.name.name),
            None => f.write_str(&self.name.name),
        }
    }
}

/// A type as written.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeExpr {
    /// The shape.
    pub kind: TypeExprKind,
    /// Whole type.
    pub span: Span,
}

/// The shape of a [`TypeExpr`].
#[derive(Debug, Clone, PartialEq)]
pub enum TypeExprKind {
    /// A built-in or declared name.
    Named(Path),
    /// `list<T>`
    List(Box<TypeExpr>),
    /// `map<K, V>`
    Map(Box<TypeExpr>, Box<TypeExpr>),
    /// `T?`
    Optional(Box<TypeExpr>),
}

/// A literal as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// The literal.
    pub kind: ValueKind,
    /// Where.
    pub span: Span,
}

/// The shape of a [`Value`].
#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A whole number (kept as text to check ranges per type).
    Int(String),
    /// A decimal number.
    Float(f64),
    /// A string.
    Str(String),
    /// A bare name, such as an enum variant or a flag.
    Name(Path),
    /// `[...]`
    List(Vec<Value>),
    /// `{...}`
    Map(Vec<(StrLit, Value)>),
}
