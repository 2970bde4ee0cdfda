//! Task schedules: intervals (`10s`) and 5-field cron expressions.

use std::collections::HashSet;

use crate::ast;
use crate::diagnostic::{Code, Diagnostic, did_you_mean};
use crate::span::Span;

/// Checks every task's schedule. A cron expression that parsed once is not parsed again (croner
/// takes about 25 µs an expression, and contracts repeat their schedules).
pub(crate) fn check(file: &ast::File, diags: &mut Vec<Diagnostic>) {
    let mut valid_crons: HashSet<&str> = HashSet::new();
    for item in &file.items {
        let ast::Item::Service(svc) = item else {
            continue;
        };
        for member in &svc.members {
            let ast::Member::Task(task) = member else {
                continue;
            };
            match &task.schedule {
                ast::Schedule::Every(lit) => {
                    if let Err((msg, help)) = parse_interval(&lit.value) {
                        diags.push(
                            Diagnostic::new(
                                Code::InvalidInterval,
                                lit.span,
                                format!("invalid interval `{}`: {msg}", lit.value),
                            )
                            .with_label("not an interval")
                            .with_help_opt(help),
                        );
                    }
                }
                ast::Schedule::Cron(lit) => {
                    if valid_crons.contains(lit.value.as_str()) {
                        continue;
                    }
                    if let Err(e) = validate_cron(&lit.value) {
                        let span = field_span(lit, e.offset, e.len);
                        diags.push(
                            Diagnostic::new(Code::InvalidCron, span, format!("invalid cron expression `{}`: {}", lit.value, e.message))
                                .with_label("here")
                                .with_help("a cron expression has 5 fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or JAN-DEC), day of week (0-7 or SUN-SAT)"),
                        );
                    } else {
                        valid_crons.insert(&lit.value);
                    }
                }
                ast::Schedule::EveryConfig(key) | ast::Schedule::CronConfig(key) => {
                    if key.value.trim().is_empty() {
                        diags.push(
                            Diagnostic::new(Code::InvalidOption, key.span, "empty config key")
                                .with_label("a dotted config path such as `app.cleanup.interval` is expected"),
                        );
                    }
                }
            }
        }
    }
}

/// The span of a part of a string literal, when the literal has no escapes; else the whole literal.
fn field_span(lit: &ast::StrLit, offset: usize, len: usize) -> Span {
    let raw_len = lit.span.len();
    if raw_len == lit.value.len() + 2 && len > 0 {
        let start = lit.span.start as usize + 1 + offset;
        Span::new(lit.span.file, start, start + len)
    } else {
        lit.span
    }
}

/// Parses `10s`, `5m`, `1h`, `2d` to seconds.
pub(crate) fn parse_interval(text: &str) -> Result<u64, (String, Option<String>)> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(digits_end);
    let n: u64 = num
        .parse()
        .map_err(|_| ("the number is too large".to_string(), None))?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "" => {
            return Err((
                "the unit is missing".into(),
                Some(format!("write `{n}s` for seconds, or use `m`, `h`, `d`")),
            ));
        }
        other => {
            let hint = did_you_mean(other, ["s", "m", "h", "d"])
                .unwrap_or_else(|| "units are `s`, `m`, `h` and `d`".into());
            return Err((format!("unknown unit `{other}`"), Some(hint)));
        }
    };
    if n == 0 {
        return Err(("an interval must be longer than zero".into(), None));
    }
    n.checked_mul(factor)
        .ok_or_else(|| ("the interval is too large".to_string(), None))
}

/// A problem in a cron expression, at a byte range of it.
#[derive(Debug, PartialEq)]
pub(crate) struct CronError {
    pub(crate) message: String,
    pub(crate) offset: usize,
    pub(crate) len: usize,
}

/// Validates a cron expression with the parser the runtime schedules tasks with (croner:
/// 5 fields, no seconds, no year; `@daily`, `L`, `W`, `#` and names as croner takes them), so
/// the checker accepts exactly what the runtime runs. On an error, points at the first field
/// that fails on its own.
pub(crate) fn validate_cron(expr: &str) -> Result<(), CronError> {
    let Err(e) = parse_cron(expr) else {
        return Ok(());
    };
    let mut fields = Vec::new();
    let mut start = None;
    for (i, c) in expr.char_indices() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                fields.push((s, &expr[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        fields.push((s, &expr[s..]));
    }
    let whole = CronError {
        message: e.to_string(),
        offset: 0,
        len: expr.len(),
    };
    if fields.len() != 5 {
        return Err(CronError {
            message: format!("expected 5 fields, found {}", fields.len()),
            ..whole
        });
    }
    for (k, (offset, field)) in fields.iter().enumerate() {
        let mut alone = ["*"; 5];
        alone[k] = field;
        if let Err(e) = parse_cron(&alone.join(" ")) {
            return Err(CronError {
                message: format!("{} field `{field}`: {e}", FIELD_NAMES[k]),
                offset: *offset,
                len: field.len(),
            });
        }
    }
    Err(whole)
}

const FIELD_NAMES: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];

/// The runtime's cron parser (`kontiki_rt::task::parse_cron` builds the same one).
fn parse_cron(expr: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(expr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("10s"), Ok(10));
        assert_eq!(parse_interval("5m"), Ok(300));
        assert_eq!(parse_interval("1h"), Ok(3600));
        assert_eq!(parse_interval("2d"), Ok(172_800));
        assert!(parse_interval("10").is_err());
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("10x").is_err());
        assert!(parse_interval("99999999999999999999s").is_err());
    }

    #[test]
    fn valid_crons() {
        for ok in [
            "* * * * *",
            "0 3 * * *",
            "*/15 0-23/2 1,15 JAN-jun MON-FRI",
            "59 23 31 12 7",
            "0 0 1 * sun",
            // Accepted by the runtime's parser; the old hand-written checker rejected these.
            "@daily",
            "@hourly",
            "0 0 L * *",
            "0 12 * * MON#2",
            "0 12 * * 5L",
            "0 9 15W * *",
            // croner skips the empty list entry; the runtime runs it, so it is valid.
            "1,,2 * * * *",
        ] {
            assert_eq!(validate_cron(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn invalid_crons() {
        for bad in [
            "* * * *",
            "* * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 8",
            "*/0 * * * *",
            "5-1 * * * *",
            "* * * FOO *",
            "",
        ] {
            assert!(validate_cron(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cron_error_points_at_field() {
        let e = validate_cron("0 25 * * *").unwrap_err();
        assert_eq!((e.offset, e.len), (2, 2));
    }
}
