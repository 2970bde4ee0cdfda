//! HTTP routes: path templates, path parameters, request bodies.

use crate::ast;
use crate::diagnostic::{Code, Diagnostic, did_you_mean};
use crate::model::HttpMethod;
use crate::span::Span;

/// Checks every route of every service in a file.
pub(crate) fn check(file: &ast::File, diags: &mut Vec<Diagnostic>) {
    for item in &file.items {
        let ast::Item::Service(svc) = item else {
            continue;
        };
        for member in &svc.members {
            if let ast::Member::Http(route) = member {
                check_route(route, diags);
            }
        }
    }
}

fn check_route(route: &ast::Http, diags: &mut Vec<Diagnostic>) {
    let method = HttpMethod::parse(&route.method.name);
    if let (Some(m), Some(body)) = (method, &route.body)
        && !m.allows_body()
    {
        diags.push(
            Diagnostic::new(
                Code::BodyNotAllowed,
                body.span,
                format!("a `{}` route cannot have a request body", m.as_str()),
            )
            .with_label("request body declared here")
            .with_help("use `POST`, `PUT` or `PATCH`, or pass the data as query parameters"),
        );
    }
    let ast::HttpPath::Literal(path) = &route.path else {
        // A path from config is only known at startup; its parameters cannot be checked here.
        return;
    };
    let params = match path_params(&path.value) {
        Ok(p) => p,
        Err((msg, offset, len)) => {
            diags.push(
                Diagnostic::new(
                    Code::InvalidHttp,
                    sub_span(path, offset, len),
                    format!("invalid path `{}`: {msg}", path.value),
                )
                .with_label("here"),
            );
            return;
        }
    };
    if !path.value.starts_with('/') {
        diags.push(
            Diagnostic::new(
                Code::InvalidHttp,
                path.span,
                format!("path `{}` does not start with `/`", path.value),
            )
            .with_label("here")
            .with_help(format!("write `\"/{}\"`", path.value)),
        );
    }
    let declared: Vec<&str> = route
        .path_params
        .iter()
        .map(|p| p.name.name.as_str())
        .collect();
    for (name, offset) in &params {
        if !declared.contains(&name.as_str()) {
            let help = did_you_mean(name, declared.iter().copied()).unwrap_or_else(|| {
                if route.path_params.is_empty() {
                    format!(
                        "declare it after the path: `\"{}\" ({name}: string)`",
                        path.value
                    )
                } else {
                    format!("add `{name}: string` to the path parameters")
                }
            });
            diags.push(
                Diagnostic::new(
                    Code::PathParam,
                    sub_span(path, *offset, name.len() + 2),
                    format!("path parameter `{name}` is not declared"),
                )
                .with_label("no matching declaration")
                .with_help(help),
            );
        }
    }
    for p in &route.path_params {
        if !params.iter().any(|(n, _)| *n == p.name.name) {
            let help = did_you_mean(&p.name.name, params.iter().map(|(n, _)| n.as_str()))
                .unwrap_or_else(|| {
                    format!(
                        "add `{{{}}}` to the path, or move it to `query (...)`",
                        p.name.name
                    )
                });
            diags.push(
                Diagnostic::new(
                    Code::PathParam,
                    p.name.span,
                    format!(
                        "parameter `{}` does not appear in the path `{}`",
                        p.name.name, path.value
                    ),
                )
                .with_label("not in the path")
                .with_help(help),
            );
        }
    }
}

fn sub_span(lit: &ast::StrLit, offset: usize, len: usize) -> Span {
    if lit.span.len() == lit.value.len() + 2 {
        let start = lit.span.start as usize + 1 + offset;
        Span::new(lit.span.file, start, start + len.max(1))
    } else {
        lit.span
    }
}

/// The `{name}` parameters of a path template with their byte offsets.
pub(crate) fn path_params(path: &str) -> Result<Vec<(String, usize)>, (String, usize, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    let mut rest = path;
    let mut base = 0;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(("`}` without `{`".into(), base + open, 1));
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(("`{` is not closed".into(), base + open, 1));
        };
        let name = &after[..close];
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err((
                format!("`{{{name}}}` is not a parameter name"),
                base + open,
                name.len() + 2,
            ));
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err((
                format!("parameter `{name}` appears twice"),
                base + open,
                name.len() + 2,
            ));
        }
        out.push((name.to_string(), base + open));
        base += open + 1 + close + 1;
        rest = &after[close + 1..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params() {
        let p = path_params("/a/{x}/b/{y_1}").unwrap();
        assert_eq!(p, vec![("x".to_string(), 3), ("y_1".to_string(), 9)]);
        assert!(path_params("/a/{x").is_err());
        assert!(path_params("/a/x}").is_err());
        assert!(path_params("/a/{}").is_err());
        assert!(path_params("/a/{x}/{x}").is_err());
    }
}
