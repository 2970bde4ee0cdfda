//! `kontiki-codegen fmt`.

use std::path::PathBuf;
use std::process::ExitCode;

use kontiki_idl::{JsonDiagnostic, Severity};

use super::{Format, handler, print_json};

/// Formats `files` in place, or with `check` names the files that would change (exit 1).
pub(crate) fn run(files: &[PathBuf], check: bool, format: Format) -> ExitCode {
    let mut json = Vec::new();
    let mut failed = false;
    let mut changed = Vec::new();
    for file in files {
        let name = file.display().to_string();
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                failed = true;
                let message = format!("cannot read `{name}`: {e}");
                match format {
                    Format::Json => json.push(file_diag("kontiki::idl::io", message, &name)),
                    Format::Human => eprintln!("error: {message}"),
                }
                continue;
            }
        };
        match kontiki_idl::fmt::format_source(&name, &text) {
            Ok(formatted) if formatted == text => {}
            Ok(formatted) => {
                if !check && let Err(e) = std::fs::write(file, formatted) {
                    failed = true;
                    eprintln!("error: cannot write `{name}`: {e}");
                    continue;
                }
                changed.push(name);
            }
            Err(e) => {
                failed = true;
                match format {
                    Format::Json => json.extend(e.to_json()),
                    Format::Human => eprint!("{}", e.render_with(&handler())),
                }
            }
        }
    }
    if check {
        for name in &changed {
            match format {
                Format::Json => json.push(file_diag(
                    "kontiki::fmt::unformatted",
                    format!("`{name}` is not formatted"),
                    name,
                )),
                Format::Human => eprintln!("would reformat {name}"),
            }
        }
    }
    if format == Format::Json {
        print_json(&json);
    } else if check && !changed.is_empty() {
        eprintln!(
            "error: {} of {} file{} not formatted (run `kontiki-codegen fmt` on them)",
            changed.len(),
            files.len(),
            super::plural(files.len())
        );
    } else if check && changed.is_empty() && !failed {
        println!(
            "ok: {} file{} formatted",
            files.len(),
            super::plural(files.len())
        );
    } else if !check {
        println!(
            "ok: {} file{} formatted, {} changed",
            files.len(),
            super::plural(files.len()),
            changed.len()
        );
    }
    if failed || (check && !changed.is_empty()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn file_diag(code: &str, message: String, name: &str) -> JsonDiagnostic {
    JsonDiagnostic {
        code: code.to_owned(),
        severity: Severity::Error,
        message,
        file: Some(name.to_owned()),
        line: None,
        col: None,
        end: None,
        hint: Some("run `kontiki-codegen fmt` on it".to_owned()),
    }
}
