//! `${VAR}` / `${VAR:-default}` substitution in string scalars.

/// The result of substituting one string scalar.
#[derive(Debug, PartialEq)]
pub(super) enum Substituted {
    /// No `${` and no `$${` in the text: keep the scalar as it is.
    Unchanged,
    /// The text had expressions or escapes inside a larger string: use this text as a string.
    Text(String),
    /// The whole scalar was one `${...}` expression: this text is re-read as a plain YAML scalar.
    Whole(String),
}

/// Why a string could not be substituted.
#[derive(Debug, PartialEq)]
pub(super) enum SubstError {
    /// The variable is not set and the expression has no default.
    Unset(String),
    /// The expression is malformed; the text ends a sentence ("has an unterminated `${`").
    Malformed(String),
}

/// Replaces `${VAR}` and `${VAR:-default}` in `text`; `$${` is a literal `${`.
///
/// A variable that is set to the empty string counts as unset for `${VAR:-default}`
/// (shell semantics) but is used as is by `${VAR}`.
pub(super) fn substitute(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Substituted, SubstError> {
    if !text.contains("${") {
        return Ok(Substituted::Unchanged);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut expressions = 0_usize;
    let mut whole = false;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let at_dollar = &rest[dollar..];
        if let Some(after) = at_dollar.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = at_dollar.strip_prefix("${") {
            let Some(close) = after.find('}') else {
                return Err(SubstError::Malformed(
                    "has an unterminated `${` (write `$${` for a literal `${`)".to_owned(),
                ));
            };
            let expression = &after[..close];
            let value = evaluate(expression, env)?;
            expressions += 1;
            whole = dollar == 0 && close + 1 == after.len() && out.is_empty();
            out.push_str(&value);
            rest = &after[close + 1..];
        } else {
            out.push('$');
            rest = &at_dollar[1..];
        }
    }
    out.push_str(rest);
    if expressions == 1 && whole {
        Ok(Substituted::Whole(out))
    } else {
        Ok(Substituted::Text(out))
    }
}

/// Evaluates the inside of one `${...}`.
fn evaluate(expression: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, SubstError> {
    let (name, default) = match expression.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (expression, None),
    };
    if !is_variable_name(name) {
        return Err(SubstError::Malformed(format!(
            "has an unsupported expression `${{{expression}}}` \
             (use `${{VAR}}` or `${{VAR:-default}}`, or `$${{` for a literal `${{`)"
        )));
    }
    match (env(name), default) {
        (Some(value), None) => Ok(value),
        (Some(value), Some(_)) if !value.is_empty() => Ok(value),
        (_, Some(default)) => Ok(default.to_owned()),
        (None, None) => Err(SubstError::Unset(name.to_owned())),
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads `text` as an unquoted (plain) YAML 1.2 scalar, as serde_norway resolves one:
/// `null`/`~` → null, `true`/`false` → bool, decimal/`0x`/`0o`/`0b` integers, floats
/// (including `.inf`/`.nan`), anything else → string. The empty text stays an empty string.
pub(super) fn plain_scalar(text: &str) -> serde_norway::Value {
    use serde_norway::Value;
    match text {
        "" => return Value::String(String::new()),
        "null" | "Null" | "NULL" | "~" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(int) = parse_int(text) {
        return int;
    }
    if digits_with_leading_zero(text) {
        return Value::String(text.to_owned());
    }
    if let Some(float) = parse_float(text) {
        return Value::Number(float.into());
    }
    Value::String(text.to_owned())
}

/// `007`, `-01`: leading zeros followed by digits make a string in YAML 1.2.
fn digits_with_leading_zero(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    unsigned.len() > 1 && unsigned.starts_with('0') && unsigned.bytes().all(|b| b.is_ascii_digit())
}

/// An integer in YAML 1.2 core syntax, as serde_norway reads it.
fn parse_int(text: &str) -> Option<serde_norway::Value> {
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(hex) = unsigned.strip_prefix("0x") {
        (16, hex)
    } else if let Some(octal) = unsigned.strip_prefix("0o") {
        (8, octal)
    } else if let Some(binary) = unsigned.strip_prefix("0b") {
        (2, binary)
    } else {
        if digits_with_leading_zero(unsigned) {
            return None;
        }
        (10, unsigned)
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if !negative {
        return Some(serde_norway::Value::Number(magnitude.into()));
    }
    let value = 0_i64.checked_sub_unsigned(magnitude)?;
    Some(serde_norway::Value::Number(value.into()))
}

/// A float in YAML 1.2 core syntax, as serde_norway reads it.
fn parse_float(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    match unsigned {
        ".inf" | ".Inf" | ".INF" => {
            return Some(if text.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            });
        }
        ".nan" | ".NaN" | ".NAN" if unsigned.len() == text.len() => return Some(f64::NAN),
        _ => {}
    }
    // Rust's parser also takes "inf", "nan", "infinity": YAML does not.
    let looks_numeric = unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && unsigned
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if !looks_numeric {
        return None;
    }
    text.parse::<f64>().ok().filter(|float| float.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_norway::Value;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes() {
        let sub = |text: &str| substitute(text, &env);
        assert_eq!(sub("plain"), Ok(Substituted::Unchanged));
        assert_eq!(sub("${HOST}"), Ok(Substituted::Whole("db".into())));
        assert_eq!(sub("${NOPE:-5}"), Ok(Substituted::Whole("5".into())));
        assert_eq!(sub("${EMPTY:-x}"), Ok(Substituted::Whole("x".into())));
        assert_eq!(sub("${EMPTY}"), Ok(Substituted::Whole(String::new())));
        assert_eq!(
            sub("h=${HOST}:${NOPE:-1}"),
            Ok(Substituted::Text("h=db:1".into()))
        );
        assert_eq!(sub("${HOST}${HOST}"), Ok(Substituted::Text("dbdb".into())));
        assert_eq!(sub("$${HOST}"), Ok(Substituted::Text("${HOST}".into())));
        // Left to right: `$` then `$${`.
        assert_eq!(sub("$$${HOST}"), Ok(Substituted::Text("$${HOST}".into())));
        assert_eq!(
            sub("cost $5 ${HOST}"),
            Ok(Substituted::Text("cost $5 db".into()))
        );
        assert_eq!(sub("${NOPE:-a:-b}"), Ok(Substituted::Whole("a:-b".into())));
        assert_eq!(sub("${NOPE}"), Err(SubstError::Unset("NOPE".into())));
        assert!(matches!(sub("${HOST"), Err(SubstError::Malformed(_))));
        assert!(matches!(sub("${}"), Err(SubstError::Malformed(_))));
        assert!(matches!(sub("${A:b}"), Err(SubstError::Malformed(_))));
        assert!(matches!(sub("${1A}"), Err(SubstError::Malformed(_))));
    }

    #[test]
    fn reads_plain_scalars() {
        assert_eq!(plain_scalar("8080"), Value::Number(8080.into()));
        assert_eq!(plain_scalar("-3"), Value::Number((-3).into()));
        assert_eq!(plain_scalar("0x1f"), Value::Number(31.into()));
        assert_eq!(plain_scalar("1.5"), Value::Number(1.5.into()));
        assert_eq!(plain_scalar("1e3"), Value::Number(1000.0.into()));
        assert_eq!(plain_scalar("true"), Value::Bool(true));
        assert_eq!(plain_scalar("FALSE"), Value::Bool(false));
        assert_eq!(plain_scalar("~"), Value::Null);
        assert_eq!(plain_scalar(""), Value::String(String::new()));
        for text in [
            "007", "yes", "inf", "nan", "1.2.3", "0x", "-", "+-1", "a: b", "12abc",
        ] {
            assert_eq!(plain_scalar(text), Value::String(text.into()), "{text}");
        }
        assert!(matches!(plain_scalar(".inf"), Value::Number(n) if n.is_infinite()));
        assert_eq!(
            plain_scalar("-9223372036854775808"),
            Value::Number(i64::MIN.into())
        );
        assert_eq!(
            plain_scalar("-9223372036854775809"),
            Value::Number((-9_223_372_036_854_775_809.0_f64).into())
        );
    }
}
