//! `[name, name = value]` options and service properties: known names, typed values.

use crate::ast::{self, OptionEntry, ValueKind};
use crate::diagnostic::{Code, Diagnostic, did_you_mean};

/// The options of one item, checked against the names it accepts.
pub(crate) struct Options<'a> {
    entries: &'a [OptionEntry],
}

impl<'a> Options<'a> {
    /// Reports unknown and repeated options.
    pub(crate) fn new(
        entries: &'a [OptionEntry],
        allowed: &[&str],
        what: &str,
        diags: &mut Vec<Diagnostic>,
    ) -> Self {
        for (i, e) in entries.iter().enumerate() {
            let name = e.name.name.as_str();
            if !allowed.contains(&name) {
                let help = did_you_mean(name, allowed.iter().copied()).unwrap_or_else(|| {
                    if allowed.is_empty() {
                        format!("{what} takes no options")
                    } else {
                        format!("{what} accepts: {}", allowed.join(", "))
                    }
                });
                diags.push(
                    Diagnostic::new(
                        Code::UnknownOption,
                        e.name.span,
                        format!("unknown option `{name}` for {what}"),
                    )
                    .with_label("unknown option")
                    .with_help(help),
                );
            } else if let Some(first) = entries[..i].iter().find(|f| f.name.name == name) {
                diags.push(
                    Diagnostic::new(
                        Code::Duplicate,
                        e.name.span,
                        format!("option `{name}` is given twice"),
                    )
                    .with_label("given again here")
                    .with_note(first.name.span, "first given here"),
                );
            }
        }
        Options { entries }
    }

    fn get(&self, name: &str) -> Option<&'a OptionEntry> {
        self.entries.iter().find(|e| e.name.name == name)
    }

    /// Whether a flag is set: `name`, `name = true`.
    pub(crate) fn flag(&self, name: &str, diags: &mut Vec<Diagnostic>) -> Option<bool> {
        let e = self.get(name)?;
        match &e.value {
            None => Some(true),
            Some(v) => match v.kind {
                ValueKind::Bool(b) => Some(b),
                _ => {
                    diags.push(invalid(
                        v,
                        format!("option `{name}` takes `true` or `false`"),
                    ));
                    None
                }
            },
        }
    }

    /// A string option.
    pub(crate) fn string(&self, name: &str, diags: &mut Vec<Diagnostic>) -> Option<String> {
        let e = self.get(name)?;
        match e.value.as_ref().map(|v| (v, &v.kind)) {
            Some((_, ValueKind::Str(s))) => Some(s.clone()),
            Some((v, _)) => {
                diags.push(invalid(v, format!("option `{name}` takes a string")));
                None
            }
            None => {
                diags.push(missing(
                    e,
                    format!("option `{name}` needs a value: `{name} = \"...\"`"),
                ));
                None
            }
        }
    }

    /// An integer option within `min..=max`.
    pub(crate) fn int(
        &self,
        name: &str,
        min: i64,
        max: i64,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<i64> {
        let e = self.get(name)?;
        match e.value.as_ref().map(|v| (v, &v.kind)) {
            Some((v, ValueKind::Int(s))) => match s.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Some(n),
                _ => {
                    diags.push(invalid(
                        v,
                        format!("option `{name}` must be between {min} and {max}"),
                    ));
                    None
                }
            },
            Some((v, _)) => {
                diags.push(invalid(v, format!("option `{name}` takes an integer")));
                None
            }
            None => {
                diags.push(missing(
                    e,
                    format!("option `{name}` needs a value: `{name} = {min}`"),
                ));
                None
            }
        }
    }

    /// A list of strings (a single string is a list of one).
    pub(crate) fn strings(&self, name: &str, diags: &mut Vec<Diagnostic>) -> Vec<String> {
        let Some(e) = self.get(name) else {
            return Vec::new();
        };
        match e.value.as_ref().map(|v| (v, &v.kind)) {
            Some((_, ValueKind::Str(s))) => vec![s.clone()],
            Some((v, ValueKind::List(items))) => {
                let mut out = Vec::new();
                for item in items {
                    match &item.kind {
                        ValueKind::Str(s) => out.push(s.clone()),
                        _ => diags.push(invalid(
                            item,
                            format!("option `{name}` takes a list of strings"),
                        )),
                    }
                }
                let _ = v;
                out
            }
            Some((v, _)) => {
                diags.push(invalid(
                    v,
                    format!("option `{name}` takes a list of strings"),
                ));
                Vec::new()
            }
            None => {
                diags.push(missing(
                    e,
                    format!("option `{name}` needs a value: `{name} = [\"...\"]`"),
                ));
                Vec::new()
            }
        }
    }

    /// The span of an option, if given.
    pub(crate) fn span(&self, name: &str) -> Option<crate::span::Span> {
        self.get(name).map(|e| e.span)
    }
}

fn invalid(v: &ast::Value, message: String) -> Diagnostic {
    Diagnostic::new(Code::InvalidOption, v.span, message).with_label("wrong value")
}

fn missing(e: &OptionEntry, message: String) -> Diagnostic {
    Diagnostic::new(Code::InvalidOption, e.span, message).with_label("value missing")
}
