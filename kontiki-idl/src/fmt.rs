//! The canonical layout of a `.kontiki` file (`kontiki-codegen fmt`).
//!
//! ```
//! let text = "package  demo ;\nstruct Point{x:i32,y :i32}\n";
//! let formatted = kontiki_idl::fmt::format_source("demo.kontiki", text).unwrap();
//! assert_eq!(formatted, "package demo;\nstruct Point {\n    x: i32,\n    y: i32,\n}\n");
//! ```
//!
//! The layout, decided by the tokens alone (line width only moves a long service member's
//! `raises` and `[options]` to lines of their own):
//! * four spaces per level; one statement, field, variant or service member per line;
//! * `struct` and `enum` bodies end every member with `,`; an empty body is `{}`;
//! * `(…)`, `[…]` and `{…}` stay on one line, without a trailing comma, unless they hold a
//!   line comment, a doc comment or a block comment over several lines: then one element
//!   per line, each ending with `,`;
//! * one space around `=` and `->` and after `:` and `,`; none inside brackets;
//! * blank lines as written, at most one in a row, none at the start or end of a body and
//!   none between `///` doc comments and what they document;
//! * comments and doc comments are kept byte for byte: a comment that ended a line still
//!   ends it, a comment on a line of its own stays on a line of its own; a comma or semicolon
//!   written after a comment moves before it;
//! * order is left as written.
//!
//! The parser skips ordinary comments, so the formatter reads the file twice: with the parser
//! (the file must parse; otherwise its syntax error is returned) and with a small lexer that
//! keeps comments and their places. Formatting changes no token the checker sees except
//! optional trailing commas, so the formatted file checks to the same model.

use crate::diagnostic::{Code, Diagnostic};
use crate::error::{Error, Result};
use crate::lex::{self, Tok, Token};
use crate::load;
use crate::span::{SourceMap, Span};

/// Formats `text` (named `name` in diagnostics). Returns the syntax error if it does not parse.
pub fn format_source(name: &str, text: &str) -> Result<String> {
    load::parse_text(name, text)?;
    let tokens = lex::lex(text).map_err(|e| {
        let mut sources = SourceMap::new();
        let id = sources.add(name, name, text.to_string());
        Error::new(
            vec![
                Diagnostic::new(
                    Code::Syntax,
                    Span::new(id, e.offset, e.offset + 1),
                    "unexpected character",
                )
                .with_label("the formatter cannot read this"),
            ],
            sources,
        )
    })?;
    Ok(Formatter::new(text, tokens).run())
}

/// A token with what the layout needs to know about the text before it.
#[derive(Debug, Clone, Copy)]
struct Tk {
    tok: Token,
    /// Line ends between the previous token and this one.
    newlines: usize,
}

impl Tk {
    /// A line comment, a doc comment, or a block comment over several lines.
    fn ends_line(&self, src: &str) -> bool {
        match self.tok.kind {
            Tok::BlockComment => self.tok.text(src).contains('\n'),
            k => k.is_comment(),
        }
    }

    fn is(&self, b: u8) -> bool {
        self.tok.kind == Tok::Punct(b)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// A `struct`/`enum` body (members end with `,`) or a `service` body (members end with `;`).
    Block { commas: bool },
    /// `(…)`, `[…]` or a map `{…}`; `broken` when one element per line. `commas`: whether a
    /// trailing comma may be added (not after `config "key"`).
    Group { broken: bool, commas: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Sep {
    None,
    Space,
    Newline,
}

/// The column a service member's `raises` or `[options]` moves to a new line after.
const WIDTH: usize = 100;

struct Formatter<'a> {
    src: &'a str,
    toks: Vec<Tk>,
    /// For each opening bracket, the index of its closing bracket.
    close: Vec<Option<usize>>,
    /// For each opening bracket, whether a comment is inside.
    has_comment: Vec<bool>,
    out: String,
    stack: Vec<Ctx>,
    pending: Sep,
    /// The next code token starts a statement, member, field or element.
    item_start: bool,
    /// Code tokens since the current top-level statement or service member started.
    stmt_pos: usize,
    /// First word of the current top-level statement.
    stmt_word: &'a str,
    /// The last thing written was an opening bracket or a doc comment (no blank line after).
    no_blank: bool,
    prev_code: Option<Tk>,
}

impl<'a> Formatter<'a> {
    fn new(src: &'a str, tokens: Vec<Token>) -> Self {
        let mut toks: Vec<Tk> = Vec::with_capacity(tokens.len());
        let mut last_end = 0;
        for tok in tokens {
            let newlines = src[last_end..tok.start].matches('\n').count()
                + src[last_end..tok.start]
                    .matches('\r')
                    .count()
                    .saturating_sub(src[last_end..tok.start].matches("\r\n").count());
            last_end = tok.end;
            toks.push(Tk { tok, newlines });
        }
        // A `,` or `;` written after comments moves before them.
        for i in 1..toks.len() {
            let sep = toks[i].is(b',') || toks[i].is(b';');
            if !sep {
                continue;
            }
            let mut j = i;
            while j > 0 && toks[j - 1].tok.kind.is_comment() {
                toks.swap(j - 1, j);
                j -= 1;
            }
            if j != i {
                // The separator now follows code directly.
                toks[j].newlines = 0;
            }
        }
        let mut close = vec![None; toks.len()];
        let mut has_comment = vec![false; toks.len()];
        let mut open: Vec<usize> = Vec::new();
        for (i, t) in toks.iter().enumerate() {
            match t.tok.kind {
                Tok::Punct(b'(' | b'[' | b'{') => open.push(i),
                Tok::Punct(b')' | b']' | b'}') => {
                    if let Some(o) = open.pop() {
                        close[o] = Some(i);
                        has_comment[o] = toks[o..i].iter().any(|t| t.ends_line(src));
                    }
                }
                _ => {}
            }
        }
        Formatter {
            src,
            toks,
            close,
            has_comment,
            out: String::with_capacity(src.len() + src.len() / 8),
            stack: Vec::new(),
            pending: Sep::None,
            item_start: true,
            stmt_pos: 0,
            stmt_word: "",
            no_blank: true,
            prev_code: None,
        }
    }

    fn level(&self) -> usize {
        self.stack
            .iter()
            .filter(|c| !matches!(c, Ctx::Group { broken: false, .. }))
            .count()
    }

    fn at_line_start(&self) -> bool {
        self.out.is_empty() || self.out.ends_with('\n')
    }

    /// Starts a new line for token `t`, with a blank line first if one was written there.
    fn newline(&mut self, t: &Tk, extra: usize) {
        if !self.out.is_empty() {
            if !self.at_line_start() {
                self.out.push('\n');
            }
            if t.newlines >= 2 && !self.no_blank {
                self.out.push('\n');
            }
        }
        for _ in 0..(self.level() + extra) * 4 {
            self.out.push(' ');
        }
        self.pending = Sep::None;
    }

    /// The index of the next code token after `i`.
    fn next_code(&self, i: usize) -> Option<usize> {
        (i + 1..self.toks.len()).find(|&j| !self.toks[j].tok.kind.is_comment())
    }

    fn run(mut self) -> String {
        let mut i = 0;
        while i < self.toks.len() {
            let t = self.toks[i];
            if t.tok.kind.is_comment() {
                self.comment(i, &t);
            } else {
                i = self.code(i, &t);
            }
            i += 1;
        }
        let trimmed = self.out.trim_end().len();
        self.out.truncate(trimmed);
        self.out.push('\n');
        self.out
    }

    fn comment(&mut self, i: usize, t: &Tk) {
        let text = t.tok.text(self.src);
        let own_line = t.newlines > 0 || self.out.is_empty();
        let extra = usize::from(!self.item_start);
        match t.tok.kind {
            Tok::Doc | Tok::InnerDoc => {
                self.newline(t, extra);
                self.out.push_str(text);
                self.pending = Sep::Newline;
                self.no_blank = t.tok.kind == Tok::Doc;
                return;
            }
            _ if own_line || self.at_line_start() => self.newline(t, extra),
            _ => self.out.push(' '),
        }
        self.out.push_str(text);
        let line_follows =
            t.tok.kind == Tok::LineComment || self.toks.get(i + 1).is_none_or(|n| n.newlines > 0);
        self.pending = if line_follows {
            Sep::Newline
        } else {
            Sep::Space
        };
        self.no_blank = false;
    }

    /// Writes code token `i`; returns the index of the last token it consumed.
    fn code(&mut self, i: usize, t: &Tk) -> usize {
        let kind = t.tok.kind;
        let text = t.tok.text(self.src);
        let is_close = matches!(kind, Tok::Punct(b')' | b']' | b'}'));
        // An inline trailing comma is dropped.
        if t.is(b',')
            && matches!(self.stack.last(), Some(Ctx::Group { broken: false, .. }))
            && self
                .next_code(i)
                .is_some_and(|n| matches!(self.toks[n].tok.kind, Tok::Punct(b')' | b']' | b'}')))
        {
            return i;
        }
        if is_close {
            let ctx = self.stack.pop();
            match ctx {
                Some(Ctx::Block { .. } | Ctx::Group { broken: true, .. }) => {
                    self.no_blank = true;
                    self.newline(t, 0);
                }
                _ => {
                    if self.pending == Sep::Newline {
                        self.newline(t, 1);
                    }
                }
            }
        } else if self.wraps(i, t) {
            self.newline(t, 1);
        } else if self.pending == Sep::Newline || (self.out.is_empty() && self.item_start) {
            let extra = usize::from(!self.item_start);
            self.newline(t, extra);
        } else if self.pending == Sep::Space || self.wants_space(t) {
            self.out.push(' ');
        }
        self.out.push_str(text);
        self.pending = Sep::None;
        self.no_blank = false;
        if self.item_start && self.stack.is_empty() && kind == Tok::Word {
            self.stmt_word = text;
        }
        self.item_start = false;
        self.stmt_pos += 1;
        let mut last = i;
        match kind {
            Tok::Punct(b'{') if self.stack.is_empty() => {
                let empty = self.close[i].filter(|&c| c == i + 1);
                if let Some(c) = empty {
                    self.out.push('}');
                    last = c;
                    self.end_statement();
                } else {
                    let commas = matches!(self.stmt_word, "struct" | "enum");
                    self.stack.push(Ctx::Block { commas });
                    self.start_item();
                    self.no_blank = true;
                    self.stmt_pos = 0;
                }
            }
            Tok::Punct(b'(' | b'[' | b'{') => {
                let broken = self.has_comment[i];
                let commas = self
                    .next_code(i)
                    .is_none_or(|n| self.toks[n].tok.text(self.src) != "config");
                self.stack.push(Ctx::Group { broken, commas });
                if broken {
                    self.start_item();
                    self.no_blank = true;
                }
            }
            Tok::Punct(b'<') => self.stack.push(Ctx::Group {
                broken: false,
                commas: false,
            }),
            Tok::Punct(b'>') => {
                self.stack.pop();
            }
            Tok::Punct(b'}') if self.stack.is_empty() => self.end_statement(),
            Tok::Punct(b';') => {
                if matches!(self.stack.last(), None | Some(Ctx::Block { commas: false })) {
                    self.start_item();
                    self.stmt_pos = 0;
                }
            }
            Tok::Punct(b',') => match self.stack.last() {
                Some(Ctx::Block { commas: true } | Ctx::Group { broken: true, .. }) => {
                    self.start_item();
                }
                _ => self.pending = Sep::Space,
            },
            _ => {}
        }
        // A trailing comma is added to a body or broken group that lacks one.
        if kind != Tok::Punct(b',') && !matches!(kind, Tok::Punct(b'(' | b'[' | b'{')) {
            let wants = matches!(
                self.stack.last(),
                Some(
                    Ctx::Block { commas: true }
                        | Ctx::Group {
                            broken: true,
                            commas: true
                        }
                )
            );
            if wants
                && self.next_code(last).is_some_and(|n| {
                    matches!(self.toks[n].tok.kind, Tok::Punct(b')' | b']' | b'}'))
                })
            {
                self.out.push(',');
                self.start_item();
            }
        }
        self.prev_code = Some(self.toks[last]);
        last
    }

    fn start_item(&mut self) {
        self.item_start = true;
        self.pending = Sep::Newline;
    }

    fn end_statement(&mut self) {
        self.start_item();
        self.stmt_pos = 0;
    }

    /// Whether a long service member goes on with `raises` or its `[options]` on a new line:
    /// when the line would otherwise pass [`WIDTH`] columns.
    fn wraps(&self, i: usize, t: &Tk) -> bool {
        let at_member_level = matches!(self.stack.last(), Some(Ctx::Block { commas: false }));
        let starts_tail =
            (t.tok.kind == Tok::Word && t.tok.text(self.src) == "raises") || t.is(b'[');
        if !at_member_level || !starts_tail || self.stmt_pos < 2 || self.pending != Sep::None {
            return false;
        }
        let line = self.out.len() - self.out.rfind('\n').map_or(0, |p| p + 1);
        self.flat_width(i).is_some_and(|w| line + 1 + w > WIDTH)
    }

    /// The width of tokens `i..` up to the `;` that ends the member, on one line; `None` if a
    /// comment is in the way.
    fn flat_width(&self, i: usize) -> Option<usize> {
        let mut width = 0;
        let mut prev: Option<&Tk> = None;
        for (j, t) in self.toks.iter().enumerate().skip(i) {
            if t.tok.kind.is_comment() {
                return None;
            }
            let dropped = t.is(b',')
                && self
                    .toks
                    .get(j + 1)
                    .is_some_and(|n| matches!(n.tok.kind, Tok::Punct(b')' | b']' | b'}')));
            if dropped {
                continue;
            }
            let tight_before = matches!(
                t.tok.kind,
                Tok::Punct(b',' | b';' | b':' | b'?' | b')' | b']' | b'}' | b'>' | b'<')
            );
            let tight_after =
                prev.is_some_and(|p| matches!(p.tok.kind, Tok::Punct(b'(' | b'[' | b'{' | b'<')));
            if prev.is_some() && !tight_before && !tight_after {
                width += 1;
            }
            width += t.tok.end - t.tok.start;
            if t.is(b';') {
                break;
            }
            prev = Some(t);
        }
        Some(width)
    }

    fn wants_space(&self, t: &Tk) -> bool {
        let Some(prev) = self.prev_code else {
            return false;
        };
        if matches!(
            t.tok.kind,
            Tok::Punct(b',' | b';' | b':' | b'?' | b')' | b']' | b'}' | b'>' | b'<')
        ) {
            return false;
        }
        if matches!(prev.tok.kind, Tok::Punct(b'(' | b'[' | b'{' | b'<')) {
            return false;
        }
        // `rpc name(`, `on_event name(`: the parameter list hugs the name.
        !(t.is(b'(') && prev.tok.kind == Tok::Word && self.stmt_pos == 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(src: &str) -> String {
        let once = format_source("t.kontiki", src).unwrap();
        let twice = format_source("t.kontiki", &once).unwrap();
        assert_eq!(once, twice, "not idempotent for:\n{src}");
        once
    }

    #[test]
    fn lays_out_items() {
        assert_eq!(
            fmt("package p;struct A{a:list<map<string,i32>>?=[1,2,],b:T}enum E{x,y=\"Y\"}"),
            "package p;\nstruct A {\n    a: list<map<string, i32>>? = [1, 2],\n    b: T,\n}\nenum E {\n    x,\n    y = \"Y\",\n}\n"
        );
    }

    #[test]
    fn keeps_comments_in_place() {
        let src = "package p; // trailing\n\n\n// own line\nstruct A { // after brace\n  a: T // no comma\n  /* block */ }\n";
        assert_eq!(
            fmt(src),
            "package p; // trailing\n\n// own line\nstruct A { // after brace\n    a: T, // no comma\n    /* block */\n}\n"
        );
    }

    #[test]
    fn breaks_groups_with_comments() {
        let src = "package p;\nservice S {\n  rpc f(a: T, // first\n b: U) -> V [x , y,];\n on_event h(config \"k\" // c\n);\n}\n";
        assert_eq!(
            fmt(src),
            "package p;\nservice S {\n    rpc f(\n        a: T, // first\n        b: U,\n    ) -> V [x, y];\n    on_event h(\n        config \"k\" // c\n    );\n}\n"
        );
    }

    #[test]
    fn comment_mid_statement_continues_the_line() {
        let src = "package p;\nservice S { rpc f() // why\n -> T; }\n";
        assert_eq!(
            fmt(src),
            "package p;\nservice S {\n    rpc f() // why\n        -> T;\n}\n"
        );
    }

    #[test]
    fn syntax_errors_are_returned() {
        let e = format_source("t.kontiki", "package p; struct {").unwrap_err();
        assert_eq!(e.diagnostics()[0].code, Code::Syntax);
    }

    /// `text` with the whitespace between tokens replaced by separators picked by `picks`
    /// (never gluing two words, a line end right after a line comment).
    fn respace(text: &str, picks: &[u8]) -> String {
        const SEPS: [&str; 6] = ["", " ", "\n", "\n\n\n", "\t ", " \r\n  "];
        let tokens = lex::lex(text).unwrap();
        let mut out = String::new();
        let mut prev: Option<Token> = None;
        for (n, t) in tokens.iter().enumerate() {
            if let Some(p) = prev {
                let pick = picks.get(n % picks.len().max(1)).copied().unwrap_or(1);
                let mut sep = SEPS[usize::from(pick) % SEPS.len()];
                let glued = |k: Tok| matches!(k, Tok::Word | Tok::Str);
                if sep.is_empty() && (glued(p.kind) || glued(t.kind) || p.kind.is_comment()) {
                    sep = " ";
                }
                if matches!(p.kind, Tok::LineComment | Tok::Doc | Tok::InnerDoc)
                    && !sep.starts_with('\n')
                {
                    // Spaces after `//` text would be part of the comment.
                    sep = "\n";
                }
                out.push_str(sep);
            }
            out.push_str(t.text(text));
            prev = Some(*t);
        }
        out.push('\n');
        out
    }

    fn model_json(name: &str, text: &str) -> String {
        match crate::load_str(name, text) {
            Ok(m) => format!("{m:?}")
                .split("span: Span {")
                .map(|part| part.split_once('}').map_or(part, |(_, rest)| rest))
                .collect(),
            Err(e) => e
                .diagnostics()
                .iter()
                .map(|d| format!("{} ", d.code))
                .collect(),
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Any spacing of an idl/ file formats idempotently, loses or changes no token (commas
        /// aside: trailing ones come and go), and checks to the same model.
        #[test]
        fn spacing_never_matters(
            file in 0usize..64,
            picks in proptest::collection::vec(0u8..6, 1..64),
        ) {
            let mut paths: Vec<_> = std::fs::read_dir("../idl")
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "kontiki"))
                .collect();
            paths.sort();
            let path = &paths[file % paths.len()];
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).unwrap();
            let spaced = respace(&text, &picks);
            let formatted = fmt(&spaced);
            let ink = |t: &str| -> String {
                t.chars().filter(|c| !c.is_whitespace() && *c != ',').collect()
            };
            proptest::prop_assert_eq!(ink(&formatted), ink(&text));
            proptest::prop_assert_eq!(model_json(&name, &formatted), model_json(&name, &text));
        }
    }
}
