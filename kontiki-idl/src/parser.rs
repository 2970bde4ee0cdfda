//! Text to [`ast::File`] with pest. `Pair` never leaves this file.

use pest::Parser as _;
use pest::iterators::Pair;

use crate::ast::{self, Docs, Ident, StrLit};
use crate::diagnostic::{Code, Diagnostic};
use crate::span::{FileId, Span};

#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
struct KontikiParser;

/// Nesting deeper than this is refused before pest recurses (`list<list<...>>` a million deep).
const MAX_NESTING: usize = 64;

/// Parses one file. On a syntax error, returns one diagnostic at the first place the text
/// stops following the grammar.
pub(crate) fn parse(file: FileId, text: &str) -> Result<ast::File, Diagnostic> {
    if let Some(pos) = too_deep(text) {
        return Err(Diagnostic::new(
            Code::Syntax,
            Span::new(file, pos, pos + 1),
            "nesting is too deep",
        )
        .with_label("more than 64 levels of `<`, `[`, `{` or `(`"));
    }
    let mut pairs = parse_file_rule(text).map_err(|e| syntax_error(file, text, &e))?;
    let Some(root) = pairs.next() else {
        return Err(Diagnostic::new(
            Code::Syntax,
            Span::new(file, 0, 0),
            "empty parse",
        ));
    };
    Ok(Lower { file }.file(root))
}

/// Guards pest's process-wide "error detail" switch: it is on only while the write side is
/// held, so parses under the read side always run without it.
static ERROR_DETAIL: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Parses without pest's error-detail bookkeeping (a third of the time on valid files), and
/// again with it when the text does not parse, so the diagnostic lists what was expected.
fn parse_file_rule(
    text: &str,
) -> Result<pest::iterators::Pairs<'_, Rule>, pest::error::Error<Rule>> {
    let fast = {
        let _shared = ERROR_DETAIL.read().unwrap_or_else(|e| e.into_inner());
        KontikiParser::parse(Rule::file, text)
    };
    match fast {
        Ok(pairs) => Ok(pairs),
        Err(_) => {
            let _exclusive = ERROR_DETAIL.write().unwrap_or_else(|e| e.into_inner());
            pest::set_error_detail(true);
            let detailed = KontikiParser::parse(Rule::file, text);
            pest::set_error_detail(false);
            detailed
        }
    }
}

fn too_deep(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'<' | b'[' | b'{' | b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(i);
                }
            }
            b'>' | b']' | b'}' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// How a rule is named in "expected ..." messages; `None` hides it.
fn describe(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::EOI => "end of file",
        Rule::doc
        | Rule::inner_doc
        | Rule::doc_text
        | Rule::WHITESPACE
        | Rule::COMMENT
        | Rule::ident_char => return None,
        Rule::item => "a declaration",
        Rule::service_member => "a service member (`rpc`, `on_event`, `http`, `task`, ...)",
        Rule::package_decl | Rule::kw_package => "`package`",
        Rule::import_decl | Rule::kw_import => "`import`",
        Rule::struct_def | Rule::kw_struct => "`struct`",
        Rule::enum_def | Rule::kw_enum => "`enum`",
        Rule::alias_def | Rule::kw_type => "`type`",
        Rule::error_def | Rule::kw_error => "`error`",
        Rule::event_def | Rule::kw_event => "`event`",
        Rule::service_def | Rule::kw_service => "`service`",
        Rule::header_def | Rule::kw_header => "`header`",
        Rule::rpc_def | Rule::kw_rpc => "`rpc`",
        Rule::emits_def | Rule::kw_emits => "`emits`",
        Rule::handler_def | Rule::kw_on_event => "`on_event`",
        Rule::http_def | Rule::kw_http => "`http`",
        Rule::task_def | Rule::kw_task => "`task`",
        Rule::kw_raises | Rule::raises => "`raises`",
        Rule::kw_config | Rule::config_ref => "`config`",
        Rule::kw_query | Rule::query => "`query`",
        Rule::kw_body | Rule::body => "`body`",
        Rule::kw_every | Rule::every => "`every`",
        Rule::kw_cron | Rule::cron => "`cron`",
        Rule::schedule => "`every` or `cron`",
        Rule::kw_list | Rule::list_type => "`list`",
        Rule::kw_map | Rule::map_type => "`map`",
        Rule::kw_true | Rule::kw_false => "a boolean",
        Rule::kw_null => "`null`",
        Rule::file => "a declaration",
        Rule::field => "a field",
        Rule::variant => "an enum variant",
        Rule::default_value => "`=`",
        Rule::property => "a property (`name = ...;`)",
        Rule::header_name => "a header name",
        Rule::params | Rule::param => "a parameter",
        Rule::returns => "`->`",
        Rule::raise_item => "an error code",
        Rule::event_name | Rule::topic | Rule::topic_word => "an event type",
        Rule::event_source => "an event type or `config`",
        Rule::http_method => "an HTTP method (`GET`, `POST`, ...)",
        Rule::duration => "an interval such as `10s`",
        Rule::options | Rule::option => "options (`[...]`)",
        Rule::type_expr | Rule::named_type | Rule::optional_mark => "a type",
        Rule::qualified | Rule::ident => "an identifier",
        Rule::value | Rule::list_value | Rule::map_value | Rule::map_entry => "a value",
        Rule::integer => "an integer",
        Rule::float => "a number",
        Rule::string | Rule::string_inner => "a string",
    })
}

fn syntax_error(file: FileId, text: &str, err: &pest::error::Error<Rule>) -> Diagnostic {
    let mut pos = match err.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let mut expected: Vec<String> = Vec::new();
    let push = |expected: &mut Vec<String>, s: String| {
        if !expected.contains(&s) {
            expected.push(s);
        }
    };
    if let Some(attempts) = err.parse_attempts() {
        pos = pos.max(attempts.max_position);
        for stack in attempts.call_stacks() {
            let rule = stack.deepest.get_rule().copied().or(stack.parent);
            if let Some(d) = rule.and_then(describe) {
                push(&mut expected, d.to_string());
            }
        }
        for token in attempts.expected_tokens() {
            let token = token.to_string();
            let hidden = [
                "//",
                "/*",
                "///",
                "//!",
                " ",
                "\t",
                "\r",
                "\n",
                "\r\n",
                "BUILTIN_RULE",
            ];
            let punctuation = !token.is_empty()
                && !token.contains("..")
                && token.chars().all(|c| !c.is_alphanumeric());
            if !hidden.contains(&token.as_str()) && punctuation {
                push(&mut expected, format!("`{token}`"));
            }
        }
    }
    if let pest::error::ErrorVariant::ParsingError { positives, .. } = &err.variant
        && expected.is_empty()
    {
        for r in positives {
            if let Some(d) = describe(*r) {
                push(&mut expected, d.to_string());
            }
        }
    }
    expected.sort();
    let pos = pos.min(text.len());
    let rest = text.get(pos..).unwrap_or("");
    let found_len = token_len(rest);
    let found = if rest.is_empty() {
        "end of file".to_string()
    } else {
        format!("`{}`", &rest[..found_len])
    };
    let message = match expected.as_slice() {
        [] => format!("unexpected {found}"),
        [one] => format!("expected {one}, found {found}"),
        [init @ .., last] => format!("expected {} or {last}, found {found}", init.join(", ")),
    };
    let end = pos + found_len.max(usize::from(!rest.is_empty()));
    Diagnostic::new(Code::Syntax, Span::new(file, pos, end), message).with_label("unexpected here")
}

/// Length of the token at the start of `s`: a word, or one character.
fn token_len(s: &str) -> usize {
    let word: usize = s
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .map(char::len_utf8)
        .sum();
    if word > 0 {
        word
    } else {
        s.chars().next().map_or(0, char::len_utf8)
    }
}

struct Lower {
    file: FileId,
}

impl Lower {
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.file, s.start(), s.end())
    }

    fn ident(&self, pair: Pair<'_, Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn string(&self, pair: Pair<'_, Rule>) -> StrLit {
        let span = self.span(&pair);
        let inner = pair.into_inner().next().map(|p| p.as_str()).unwrap_or("");
        StrLit {
            value: unescape(inner),
            span,
        }
    }

    fn doc_line(pair: Pair<'_, Rule>) -> String {
        let text = pair.into_inner().next().map(|p| p.as_str()).unwrap_or("");
        let text = text.strip_suffix('\r').unwrap_or(text);
        text.strip_prefix(' ').unwrap_or(text).to_string()
    }

    /// Splits the leading `doc` pairs from the rest.
    fn docs_and_rest<'i>(pair: Pair<'i, Rule>) -> (Docs, Vec<Pair<'i, Rule>>) {
        let mut docs = Vec::new();
        let mut rest = Vec::new();
        for p in pair.into_inner() {
            if p.as_rule() == Rule::doc && rest.is_empty() {
                docs.push(Self::doc_line(p));
            } else {
                rest.push(p);
            }
        }
        (Docs(docs), rest)
    }

    fn file(&self, pair: Pair<'_, Rule>) -> ast::File {
        let span = self.span(&pair);
        let mut docs = Vec::new();
        let mut package = Ident {
            name: String::new(),
            span,
        };
        let mut imports = Vec::new();
        let mut items = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::inner_doc => docs.push(Self::doc_line(p)),
                Rule::package_decl => {
                    if let Some(id) = p.into_inner().find(|p| p.as_rule() == Rule::ident) {
                        package = self.ident(id);
                    }
                }
                Rule::import_decl => {
                    let span = self.span(&p);
                    if let Some(s) = p.into_inner().find(|p| p.as_rule() == Rule::string) {
                        imports.push(ast::Import {
                            path: self.string(s),
                            span,
                        });
                    }
                }
                Rule::struct_def => items.push(ast::Item::Struct(self.struct_def(p))),
                Rule::enum_def => items.push(ast::Item::Enum(self.enum_def(p))),
                Rule::alias_def => items.push(ast::Item::Alias(self.alias_def(p))),
                Rule::error_def => items.push(ast::Item::Error(self.error_def(p))),
                Rule::event_def => items.push(ast::Item::Event(self.event_def(p))),
                Rule::service_def => items.push(ast::Item::Service(self.service_def(p))),
                _ => {}
            }
        }
        ast::File {
            docs: Docs(docs),
            package,
            imports,
            items,
            span,
        }
    }

    fn struct_def(&self, pair: Pair<'_, Rule>) -> ast::Struct {
        let span = self.span(&pair);
        let (docs, rest) = Self::docs_and_rest(pair);
        let mut name = None;
        let mut fields = Vec::new();
        for p in rest {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(p)),
                Rule::field => fields.push(self.field(p)),
                _ => {}
            }
        }
        ast::Struct {
            docs,
            name: name.unwrap_or_else(|| self.missing(span)),
            fields,
            span,
        }
    }

    fn missing(&self, span: Span) -> Ident {
        Ident {
            name: String::new(),
            span,
        }
    }

    fn field(&self, pair: Pair<'_, Rule>) -> ast::Field {
        let span = self.span(&pair);
        let (docs, rest) = Self::docs_and_rest(pair);
        let mut name = None;
        let mut ty = None;
        let mut default = None;
        for p in rest {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(p)),
                Rule::type_expr => ty = Some(self.type_expr(p)),
                Rule::default_value => default = p.into_inner().next().map(|v| self.value(v)),
                _ => {}
            }
        }
        ast::Field {
            docs,
            name: name.unwrap_or_else(|| self.missing(span)),
            ty: ty.unwrap_or_else(|| self.missing_type(span)),
            default,
            span,
        }
    }

    fn missing_type(&self, span: Span) -> ast::TypeExpr {
        ast::TypeExpr {
            kind: ast::TypeExprKind::Named(ast::Path {
                package: None,
                name: Ident {
                    name: "json".into(),
                    span,
                },
                span,
            }),
            span,
        }
    }

    fn enum_def(&self, pair: Pair<'_, Rule>) -> ast::Enum {
        let span = self.span(&pair);
        let (docs, rest) = Self::docs_and_rest(pair);
        let mut name = None;
        let mut variants = Vec::new();
        for p in rest {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(p)),
                Rule::variant => {
                    let vspan = self.span(&p);
                    let (vdocs, vrest) = Self::docs_and_rest(p);
                    let mut vname = None;
                    let mut value = None;
                    for q in vrest {
                        match q.as_rule() {
                            Rule::ident => vname = Some(self.ident(q)),
                            Rule::string => value = Some(self.string(q)),
                            _ => {}
                        }
                    }
                    variants.push(ast::Variant {
                        docs: vdocs,
                        name: vname.unwrap_or_else(|| self.missing(vspan)),
                        value,
                        span: vspan,
                    });
                }
                _ => {}
            }
        }
        ast::Enum {
            docs,
            name: name.unwrap_or_else(|| self.missing(span)),
            variants,
            span,
        }
    }

    fn alias_def(&self, pair: Pair<'_, Rule>) -> ast::Alias {
        let span = self.span(&pair);
        let (docs, rest) = Self::docs_and_rest(pair);
        let mut name = None;
        let mut ty = None;
        for p in rest {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(p)),
                Rule::type_expr => ty = Some(self.type_expr(p)),
                _ => {}
            }
        }
        ast::Alias {
            docs,
            name: name.unwrap_or_else(|| self.missing(span)),
            ty: ty.unwrap_or_else(|| self.missing_type(span)),
            span,
        }
    }

    fn error_def(&self, pair: Pair<'_, Rule>) -> ast::ErrorDecl {
        let span = self.span(&pair);
        let (docs, rest) = Self::docs_and_rest(pair);
        let mut code = None;
        let mut message = None;
        let mut options = Vec::new();
        for p in rest {
            match p.as_rule() {
                Rule::ident => code = Some(self.ident(p)),
                Rule::string => message = Some(self.string(p)),
                Rule::options => options = self.options(p),
                _ => {}
            }
        }
        ast::ErrorDecl {
            docs,
            code: code.unwrap_or_else(|| self.missing(span)),
            message: message.unwrap_or(StrLit {
                value: String::new(),
                span,
            }),
            options,
            span,
        }
    }

    fn event_name(&self, pair: Pair<'_, Rule>) -> ast::EventName {
        let span = self.span(&pair);
        let value = match pair.into_inner().next() {
            Some(p) if p.as_rule() == Rule::string => self.string(p).value,
            Some(p) => p.as_str().to_string(),
            None => String::new(),
        };
        ast::EventName { value, span }
    }

    fn event_def(&self, pair: Pair<'_, Rule>) -> ast::EventDecl {
        let span = self.span(&pair);
        let (docs, rest) = Self::docs_and_rest(pair);
        let mut name = None;
        let mut payload = None;
        for p in rest {
            match p.as_rule() {
                Rule::event_name => name = Some(self.event_name(p)),
                Rule::type_expr => payload = Some(self.type_expr(p)),
                _ => {}
            }
        }
        ast::EventDecl {
            docs,
            name: name.unwrap_or(ast::EventName {
                value: String::new(),
                span,
            }),
            payload: payload.unwrap_or_else(|| self.missing_type(span)),
            span,
        }
    }

    fn service_def(&self, pair: Pair<'_, Rule>) -> ast::Service {
        let span = self.span(&pair);
        let (docs, rest) = Self::docs_and_rest(pair);
        let mut name = None;
        let mut members = Vec::new();
        for p in rest {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(p)),
                Rule::property => members.push(ast::Member::Property(self.property(p))),
                Rule::header_def => members.push(ast::Member::Header(self.header_def(p))),
                Rule::rpc_def => members.push(ast::Member::Rpc(self.rpc_def(p))),
                Rule::emits_def => members.push(ast::Member::Emits(self.emits_def(p))),
                Rule::handler_def => members.push(ast::Member::Handler(self.handler_def(p))),
                Rule::http_def => members.push(ast::Member::Http(Box::new(self.http_def(p)))),
                Rule::task_def => members.push(ast::Member::Task(self.task_def(p))),
                _ => {}
            }
        }
        ast::Service {
            docs,
            name: name.unwrap_or_else(|| self.missing(span)),
            members,
            span,
        }
    }

    fn property(&self, pair: Pair<'_, Rule>) -> ast::Property {
        let span = self.span(&pair);
        let mut name = None;
        let mut value = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(p)),
                Rule::value => value = Some(self.value(p)),
                _ => {}
            }
        }
        ast::Property {
            name: name.unwrap_or_else(|| self.missing(span)),
            value: value.unwrap_or(ast::Value {
                kind: ast::ValueKind::Null,
                span,
            }),
            span,
        }
    }

    fn header_def(&self, pair: Pair<'_, Rule>) -> ast::Header {
        let span = self.span(&pair);
        let (docs, rest) = Self::docs_and_rest(pair);
        let mut name = None;
        let mut ty = None;
        for p in rest {
            match p.as_rule() {
                Rule::header_name => {
                    name = p.into_inner().next().map(|n| {
                        if n.as_rule() == Rule::string {
                            self.string(n)
                        } else {
                            let id = self.ident(n);
                            StrLit {
                                value: id.name,
                                span: id.span,
                            }
                        }
                    });
                }
                Rule::type_expr => ty = Some(self.type_expr(p)),
                _ => {}
            }
        }
        ast::Header {
            docs,
            name: name.unwrap_or(StrLit {
                value: String::new(),
                span,
            }),
            ty: ty.unwrap_or_else(|| self.missing_type(span)),
            span,
        }
    }

    fn params(&self, pair: Pair<'_, Rule>) -> Vec<ast::Field> {
        pair.into_inner()
            .filter(|p| p.as_rule() == Rule::param)
            .map(|p| self.field(p))
            .collect()
    }

    fn raises(&self, pair: Pair<'_, Rule>) -> Vec<ast::Raise> {
        let mut out = Vec::new();
        for item in pair
            .into_inner()
            .filter(|p| p.as_rule() == Rule::raise_item)
        {
            let span = self.span(&item);
            let mut code = None;
            let mut status = None;
            for p in item.into_inner() {
                match p.as_rule() {
                    Rule::qualified => code = Some(self.path(p)),
                    Rule::integer => {
                        let s = self.span(&p);
                        status = Some((p.as_str().parse::<i64>().unwrap_or(i64::MAX), s));
                    }
                    _ => {}
                }
            }
            if let Some(code) = code {
                out.push(ast::Raise { code, status, span });
            }
        }
        out
    }

    fn rpc_def(&self, pair: Pair<'_, Rule>) -> ast::Rpc {
        let span = self.span(&pair);
        let (docs, rest) = Self::docs_and_rest(pair);
        let mut rpc = ast::Rpc {
            docs,
            name: self.missing(span),
            params: Vec::new(),
            returns: None,
            raises: Vec::new(),
            options: Vec::new(),
            span,
        };
        for p in rest {
            match p.as_rule() {
                Rule::ident => rpc.name = self.ident(p),
                Rule::params => rpc.params = self.params(p),
                Rule::returns => rpc.returns = p.into_inner().next().map(|t| self.type_expr(t)),
                Rule::raises => rpc.raises = self.raises(p),
                Rule::options => rpc.options = self.options(p),
                _ => {}
            }
        }
        rpc
    }

    fn emits_def(&self, pair: Pair<'_, Rule>) -> ast::Emits {
        let span = self.span(&pair);
        let (docs, rest) = Self::docs_and_rest(pair);
        let events = rest
            .into_iter()
            .filter(|p| p.as_rule() == Rule::event_name)
            .map(|p| self.event_name(p))
            .collect();
        ast::Emits { docs, events, span }
    }

    fn config_ref(&self, pair: Pair<'_, Rule>) -> StrLit {
        let span = self.span(&pair);
        pair.into_inner()
            .find(|p| p.as_rule() == Rule::string)
            .map(|s| self.string(s))
            .unwrap_or(StrLit {
                value: String::new(),
                span,
            })
    }

    fn handler_def(&self, pair: Pair<'_, Rule>) -> ast::Handler {
        let span = self.span(&pair);
        let (docs, rest) = Self::docs_and_rest(pair);
        let mut handler = ast::Handler {
            docs,
            name: self.missing(span),
            source: ast::EventSource::Events(Vec::new()),
            options: Vec::new(),
            span,
        };
        for p in rest {
            match p.as_rule() {
                Rule::ident => handler.name = self.ident(p),
                Rule::event_source => {
                    let mut events = Vec::new();
                    for q in p.into_inner() {
                        match q.as_rule() {
                            Rule::config_ref => {
                                handler.source = ast::EventSource::Config(self.config_ref(q));
                            }
                            Rule::event_name => events.push(self.event_name(q)),
                            _ => {}
                        }
                    }
                    if !events.is_empty() {
                        handler.source = ast::EventSource::Events(events);
                    }
                }
                Rule::options => handler.options = self.options(p),
                _ => {}
            }
        }
        handler
    }

    fn http_def(&self, pair: Pair<'_, Rule>) -> ast::Http {
        let span = self.span(&pair);
        let (docs, rest) = Self::docs_and_rest(pair);
        let mut http = ast::Http {
            docs,
            name: self.missing(span),
            method: self.missing(span),
            path: ast::HttpPath::Literal(StrLit {
                value: String::new(),
                span,
            }),
            path_params: Vec::new(),
            query: Vec::new(),
            body: None,
            returns: None,
            raises: Vec::new(),
            options: Vec::new(),
            span,
        };
        for p in rest {
            match p.as_rule() {
                Rule::ident => http.name = self.ident(p),
                Rule::http_method => http.method = self.ident(p),
                Rule::config_ref => http.path = ast::HttpPath::Config(self.config_ref(p)),
                Rule::string => http.path = ast::HttpPath::Literal(self.string(p)),
                Rule::params => http.path_params = self.params(p),
                Rule::query => {
                    if let Some(params) = p.into_inner().find(|q| q.as_rule() == Rule::params) {
                        http.query = self.params(params);
                    }
                }
                Rule::body => {
                    http.body = p
                        .into_inner()
                        .find(|q| q.as_rule() == Rule::type_expr)
                        .map(|t| self.type_expr(t))
                }
                Rule::returns => http.returns = p.into_inner().next().map(|t| self.type_expr(t)),
                Rule::raises => http.raises = self.raises(p),
                Rule::options => http.options = self.options(p),
                _ => {}
            }
        }
        http
    }

    fn task_def(&self, pair: Pair<'_, Rule>) -> ast::Task {
        let span = self.span(&pair);
        let (docs, rest) = Self::docs_and_rest(pair);
        let mut name = None;
        let mut schedule = ast::Schedule::Every(StrLit {
            value: String::new(),
            span,
        });
        let mut options = Vec::new();
        for p in rest {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(p)),
                Rule::schedule => {
                    if let Some(kind) = p.into_inner().next() {
                        let is_every = kind.as_rule() == Rule::every;
                        for q in kind.into_inner() {
                            schedule = match (q.as_rule(), is_every) {
                                (Rule::config_ref, true) => {
                                    ast::Schedule::EveryConfig(self.config_ref(q))
                                }
                                (Rule::config_ref, false) => {
                                    ast::Schedule::CronConfig(self.config_ref(q))
                                }
                                (Rule::duration, _) => ast::Schedule::Every(StrLit {
                                    value: q.as_str().to_string(),
                                    span: self.span(&q),
                                }),
                                (Rule::string, _) => ast::Schedule::Cron(self.string(q)),
                                _ => continue,
                            };
                        }
                    }
                }
                Rule::options => options = self.options(p),
                _ => {}
            }
        }
        ast::Task {
            docs,
            name: name.unwrap_or_else(|| self.missing(span)),
            schedule,
            options,
            span,
        }
    }

    fn options(&self, pair: Pair<'_, Rule>) -> Vec<ast::OptionEntry> {
        let mut out = Vec::new();
        for o in pair.into_inner().filter(|p| p.as_rule() == Rule::option) {
            let span = self.span(&o);
            let mut name = None;
            let mut value = None;
            for p in o.into_inner() {
                match p.as_rule() {
                    Rule::ident => name = Some(self.ident(p)),
                    Rule::value => value = Some(self.value(p)),
                    _ => {}
                }
            }
            if let Some(name) = name {
                out.push(ast::OptionEntry { name, value, span });
            }
        }
        out
    }

    fn path(&self, pair: Pair<'_, Rule>) -> ast::Path {
        let span = self.span(&pair);
        let mut idents: Vec<Ident> = pair.into_inner().map(|p| self.ident(p)).collect();
        let name = idents.pop().unwrap_or_else(|| self.missing(span));
        ast::Path {
            package: idents.pop(),
            name,
            span,
        }
    }

    fn type_expr(&self, pair: Pair<'_, Rule>) -> ast::TypeExpr {
        let mut span = self.span(&pair);
        // Implicit whitespace after the type belongs to the rule; the span stops at the last token.
        if let Some(last) = pair.clone().into_inner().last() {
            span.end = self.span(&last).end;
        }
        let mut inner = None;
        let mut optional = false;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::optional_mark => optional = true,
                Rule::list_type => {
                    let sub = p.into_inner().find(|q| q.as_rule() == Rule::type_expr);
                    let sub = sub.map_or_else(|| self.missing_type(span), |t| self.type_expr(t));
                    inner = Some(ast::TypeExprKind::List(Box::new(sub)));
                }
                Rule::map_type => {
                    let mut subs = p
                        .into_inner()
                        .filter(|q| q.as_rule() == Rule::type_expr)
                        .map(|t| self.type_expr(t));
                    let k = subs.next().unwrap_or_else(|| self.missing_type(span));
                    let v = subs.next().unwrap_or_else(|| self.missing_type(span));
                    inner = Some(ast::TypeExprKind::Map(Box::new(k), Box::new(v)));
                }
                Rule::named_type => {
                    if let Some(q) = p.into_inner().next() {
                        inner = Some(ast::TypeExprKind::Named(self.path(q)));
                    }
                }
                _ => {}
            }
        }
        let base = inner.unwrap_or_else(|| self.missing_type(span).kind);
        if optional {
            let inner_end = span.end.saturating_sub(1);
            let inner_span = Span {
                end: inner_end.max(span.start),
                ..span
            };
            ast::TypeExpr {
                kind: ast::TypeExprKind::Optional(Box::new(ast::TypeExpr {
                    kind: base,
                    span: inner_span,
                })),
                span,
            }
        } else {
            ast::TypeExpr { kind: base, span }
        }
    }

    fn value(&self, pair: Pair<'_, Rule>) -> ast::Value {
        let span = self.span(&pair);
        let inner = pair.into_inner().next();
        let kind = match inner {
            None => ast::ValueKind::Null,
            Some(p) => match p.as_rule() {
                Rule::string => ast::ValueKind::Str(self.string(p).value),
                Rule::integer => ast::ValueKind::Int(p.as_str().to_string()),
                Rule::float => ast::ValueKind::Float(p.as_str().parse().unwrap_or(f64::NAN)),
                Rule::kw_true => ast::ValueKind::Bool(true),
                Rule::kw_false => ast::ValueKind::Bool(false),
                Rule::kw_null => ast::ValueKind::Null,
                Rule::qualified => ast::ValueKind::Name(self.path(p)),
                Rule::list_value => ast::ValueKind::List(
                    p.into_inner()
                        .filter(|q| q.as_rule() == Rule::value)
                        .map(|q| self.value(q))
                        .collect(),
                ),
                Rule::map_value => {
                    let mut entries = Vec::new();
                    for e in p.into_inner().filter(|q| q.as_rule() == Rule::map_entry) {
                        let mut key = None;
                        let mut value = None;
                        for q in e.into_inner() {
                            match q.as_rule() {
                                Rule::string => key = Some(self.string(q)),
                                Rule::ident => {
                                    let id = self.ident(q);
                                    key = Some(StrLit {
                                        value: id.name,
                                        span: id.span,
                                    });
                                }
                                Rule::value => value = Some(self.value(q)),
                                _ => {}
                            }
                        }
                        if let (Some(k), Some(v)) = (key, value) {
                            entries.push((k, v));
                        }
                    }
                    ast::ValueKind::Map(entries)
                }
                _ => ast::ValueKind::Null,
            },
        };
        ast::Value { kind, span }
    }
}

/// Resolves `\"`, `\\`, `\n`, `\t`, `\r`, `\u{...}`; an unknown escape is kept as written.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('u') if chars.peek() == Some(&'{') => {
                chars.next();
                let hex: String = chars.by_ref().take_while(|c| *c != '}').collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => {
                        out.push_str("\\u{");
                        out.push_str(&hex);
                        out.push('}');
                    }
                }
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_field_names() {
        let f = parse(
            FileId(0),
            "package p; struct S { type: string, match: i32, ref: bool }",
        )
        .unwrap();
        let ast::Item::Struct(s) = &f.items[0] else {
            panic!("not a struct")
        };
        let names: Vec<_> = s.fields.iter().map(|f| f.name.name.as_str()).collect();
        assert_eq!(names, ["type", "match", "ref"]);
    }

    #[test]
    fn docs_are_kept() {
        let f = parse(
            FileId(0),
            "//! pkg\npackage p;\n/// one\n///   two\n//// not doc\nstruct S {}",
        )
        .unwrap();
        assert_eq!(f.docs.lines(), ["pkg"]);
        let ast::Item::Struct(s) = &f.items[0] else {
            panic!("not a struct")
        };
        assert_eq!(s.docs.lines(), ["one", "  two"]);
    }

    #[test]
    fn syntax_error_names_tokens() {
        let e = parse(FileId(0), "package p\nstruct S {}").unwrap_err();
        assert_eq!(e.code, Code::Syntax);
        assert!(e.message.contains("`;`"), "{}", e.message);
    }

    #[test]
    fn unescapes() {
        assert_eq!(unescape(r#"a\"b\n\u{e9}"#), "a\"b\né");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!(
            "package p; type A = {}string{};",
            "list<".repeat(100),
            ">".repeat(100)
        );
        assert!(parse(FileId(0), &text).is_err());
    }
}
