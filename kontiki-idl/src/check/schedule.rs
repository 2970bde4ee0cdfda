//! Task schedules: intervals (`10s`) and 5-field cron expressions.

use crate::ast;
use crate::diagnostic::{Code, Diagnostic, did_you_mean};
use crate::span::Span;

/// Checks every task's schedule.
pub(crate) fn check(file: &ast::File, diags: &mut Vec<Diagnostic>) {
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
                    if let Err(e) = validate_cron(&lit.value) {
                        let span = field_span(lit, e.offset, e.len);
                        diags.push(
                            Diagnostic::new(Code::InvalidCron, span, format!("invalid cron expression `{}`: {}", lit.value, e.message))
                                .with_label("here")
                                .with_help("a cron expression has 5 fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or JAN-DEC), day of week (0-7 or SUN-SAT)"),
                        );
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

const FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Validates a 5-field cron expression: `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`,
/// lists `a,b`, month names `JAN`-`DEC` and day names `SUN`-`SAT`.
pub(crate) fn validate_cron(expr: &str) -> Result<(), CronError> {
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
    if fields.len() != 5 {
        return Err(CronError {
            message: format!("expected 5 fields, found {}", fields.len()),
            offset: 0,
            len: expr.len(),
        });
    }
    for (idx, (offset, field)) in fields.into_iter().enumerate() {
        let (name, min, max) = FIELDS[idx];
        let names: &[&str] = match idx {
            3 => &MONTHS,
            4 => &DAYS,
            _ => &[],
        };
        let base = if idx == 3 { 1 } else { 0 };
        validate_field(field, name, min, max, names, base).map_err(|message| CronError {
            message,
            offset,
            len: field.len(),
        })?;
    }
    Ok(())
}

fn validate_field(
    field: &str,
    name: &str,
    min: u32,
    max: u32,
    names: &[&str],
    base: u32,
) -> Result<(), String> {
    for item in field.split(',') {
        if item.is_empty() {
            return Err(format!("empty item in the {name} field"));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        if let Some(step) = step {
            let n: u32 = step
                .parse()
                .map_err(|_| format!("step `{step}` in the {name} field is not a number"))?;
            if n == 0 || n > max {
                return Err(format!(
                    "step `{step}` in the {name} field must be between 1 and {max}"
                ));
            }
        }
        if range == "*" {
            continue;
        }
        let value = |s: &str| -> Result<u32, String> {
            if let Ok(n) = s.parse::<u32>() {
                if n < min || n > max {
                    return Err(format!(
                        "{n} is out of range for the {name} field ({min}-{max})"
                    ));
                }
                return Ok(n);
            }
            let upper = s.to_ascii_uppercase();
            names
                .iter()
                .position(|n| *n == upper)
                .and_then(|p| u32::try_from(p).ok())
                .map(|p| p + base)
                .ok_or_else(|| format!("`{s}` is not valid in the {name} field"))
        };
        match range.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (value(a)?, value(b)?);
                if a > b {
                    return Err(format!("range {a}-{b} in the {name} field goes backwards"));
                }
            }
            None => {
                value(range)?;
            }
        }
    }
    Ok(())
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
            "1,,2 * * * *",
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
