//! Parsers of command-line values: JSON arguments, `K=V` headers, keyword arguments, seconds.
//! They return the message clap prints after `error: invalid value ...` (exit 2).

use serde_json::{Map, Value};
use std::time::Duration;

/// One JSON value (`21`, `'"bad_input"'`, `'{"a":1}'`). A bare word is refused with the
/// quoted form as a hint, since a string argument needs JSON quotes.
pub(crate) fn json_value(s: &str) -> Result<Value, String> {
    serde_json::from_str(s).map_err(|e| {
        let first = s.trim_start().chars().next();
        if matches!(first, Some('{' | '[' | '"')) {
            format!("not valid JSON ({e})")
        } else {
            let quoted = Value::String(s.to_owned()).to_string();
            format!(
                "not valid JSON; did you mean '{quoted}'? (a string needs JSON quotes inside shell quotes)"
            )
        }
    })
}

/// `--kwargs`: a JSON object.
pub(crate) fn json_object(s: &str) -> Result<Map<String, Value>, String> {
    match json_value(s)? {
        Value::Object(m) => Ok(m),
        other => Err(format!(
            "expected a JSON object such as '{{\"x\": 21}}', got {}",
            kontiki_rt::wire::json_kind(&other)
        )),
    }
}

/// `--header K=V`: V is read as JSON when it parses (`5`, `true`, `{"a":1}`), else taken as
/// a string. Names Kontiki reserves (`flow_id`, `service_name`, ...) are refused.
pub(crate) fn header(s: &str) -> Result<(String, Value), String> {
    let Some((key, raw)) = s.split_once('=') else {
        return Err("expected KEY=VALUE, e.g. tenant=t1".to_owned());
    };
    if key.is_empty() {
        return Err("the header name before `=` is empty".to_owned());
    }
    if key.len() > 255 {
        return Err("a header name may have at most 255 bytes".to_owned());
    }
    if !kontiki_rt::wire::reserved_header_names([key]).is_empty() {
        let hint = if key == "flow_id" {
            "; use --flow-id to set the flow id"
        } else {
            ""
        };
        return Err(format!(
            "`{key}` is a header name Kontiki reserves for itself{hint}"
        ));
    }
    let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
    Ok((key.to_owned(), value))
}

/// `--timeout`: seconds, fractions allowed, more than zero.
pub(crate) fn seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of seconds such as 5 or 0.5, got `{s}`"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 * 365.0 {
        return Err(format!(
            "the timeout must be more than 0 seconds (and less than a year), got {s}"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Header pairs as the map `CallOptions` / `PublishOptions` take; a repeated name keeps the
/// last value.
pub(crate) fn header_map(pairs: &[(String, Value)]) -> Map<String, Value> {
    pairs.iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_are_json_values() {
        assert_eq!(json_value("21"), Ok(json!(21)));
        assert_eq!(json_value("-3.5"), Ok(json!(-3.5)));
        assert_eq!(json_value("\"bad_input\""), Ok(json!("bad_input")));
        assert_eq!(json_value("{\"a\":1}"), Ok(json!({"a": 1})));
        assert_eq!(json_value("null"), Ok(Value::Null));
    }

    #[test]
    fn a_bare_word_gets_the_quoted_form_as_hint() {
        let e = json_value("bad_input").unwrap_err();
        assert!(e.contains("did you mean '\"bad_input\"'?"), "{e}");
        let e = json_value("say \"hi\"").unwrap_err();
        assert!(e.contains(r#"'"say \"hi\""'"#), "{e}");
        // Broken JSON gets the parser's reason instead.
        let e = json_value("{\"a\":").unwrap_err();
        assert!(e.starts_with("not valid JSON (EOF"), "{e}");
    }

    #[test]
    fn kwargs_must_be_an_object() {
        assert_eq!(json_object("{\"x\":1}").unwrap()["x"], json!(1));
        let e = json_object("[1]").unwrap_err();
        assert!(e.contains("got an array"), "{e}");
    }

    #[test]
    fn header_values_are_json_when_they_parse() {
        assert_eq!(header("tenant=t1"), Ok(("tenant".into(), json!("t1"))));
        assert_eq!(header("num=5"), Ok(("num".into(), json!(5))));
        assert_eq!(header("flag=true"), Ok(("flag".into(), json!(true))));
        assert_eq!(header("s=\"5\""), Ok(("s".into(), json!("5"))));
        assert_eq!(header("eq=a=b"), Ok(("eq".into(), json!("a=b"))));
        assert_eq!(header("empty="), Ok(("empty".into(), json!(""))));
        assert!(header("novalue").unwrap_err().contains("KEY=VALUE"));
        assert!(header("=v").unwrap_err().contains("empty"));
        let e = header("flow_id=x").unwrap_err();
        assert!(e.contains("reserves") && e.contains("--flow-id"), "{e}");
        assert!(header("service_name=x").unwrap_err().contains("reserves"));
    }

    #[test]
    fn timeouts_are_positive_seconds() {
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(seconds("3"), Ok(Duration::from_secs(3)));
        assert!(seconds("0").is_err());
        assert!(seconds("-1").is_err());
        assert!(seconds("soon").is_err());
        assert!(seconds("inf").is_err());
    }
}
