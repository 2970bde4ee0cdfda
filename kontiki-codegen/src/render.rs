//! The minijinja environment: strict about undefined values, templates embedded in the binary.

use minijinja::{Environment, UndefinedBehavior, Value};

use crate::error::{Error, Result};

/// The templates, by name; `templates/` is the only copy (this crate's `templates` is a symlink).
const TEMPLATES: &[(&str, &str)] = &[
    (
        "package.rs.jinja",
        include_str!("../templates/package.rs.jinja"),
    ),
    (
        "service.rs.jinja",
        include_str!("../templates/service.rs.jinja"),
    ),
    ("lib.rs.jinja", include_str!("../templates/lib.rs.jinja")),
    (
        "package.py.jinja",
        include_str!("../templates/python/package.py.jinja"),
    ),
    (
        "__init__.py.jinja",
        include_str!("../templates/python/__init__.py.jinja"),
    ),
];

/// The environment every output is rendered with.
pub(crate) fn environment() -> Result<Environment<'static>> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .map_err(|source| Error::Template {
                name: (*name).to_owned(),
                source,
            })?;
    }
    env.add_filter("doc", doc);
    env.add_filter("rust_str", rust_str);
    env.add_filter("pydoc", pydoc);
    Ok(env)
}

/// Renders `name` with `ctx`.
pub(crate) fn render(env: &Environment<'_>, name: &str, ctx: Value) -> Result<String> {
    env.get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|source| Error::Template {
            name: name.to_owned(),
            source,
        })
}

/// What the `doc` filter starts its second and later lines with: [`crate::rust::tidy`]
/// replaces it with the indentation of the line before, so that a doc comment of several
/// lines rendered at `{{ docs | doc }}` lines up under its first line.
pub(crate) const DOC_CONTINUATION: &str = "\u{1}";

/// Doc lines as `///` comments, the second and later ones starting with [`DOC_CONTINUATION`];
/// nothing for no lines.
fn doc(lines: Vec<String>) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(DOC_CONTINUATION);
        }
        out.push_str("///");
        if !line.is_empty() {
            out.push(' ');
            // A doc line is one line: a stray carriage return must not end the comment.
            out.push_str(&line.replace(['\r', '\n'], " "));
        }
    }
    out
}

/// A Rust string literal.
fn rust_str(s: String) -> String {
    format!("{s:?}")
}

/// Doc lines as a Python docstring indented by `indent` spaces (empty without lines).
fn pydoc(lines: Vec<String>, indent: usize) -> String {
    let pad = " ".repeat(indent);
    match lines.as_slice() {
        [] => String::new(),
        [one] => format!("{pad}\"\"\"{one}\"\"\""),
        [first, rest @ ..] => {
            let mut out = format!("{pad}\"\"\"{first}\n");
            for line in rest {
                if !line.is_empty() {
                    out.push_str(&pad);
                    out.push_str(line);
                }
                out.push('\n');
            }
            out.push_str(&pad);
            out.push_str("\"\"\"");
            out
        }
    }
}
