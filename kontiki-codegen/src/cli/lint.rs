//! `kontiki-codegen lint` and its `kontiki.toml` configuration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kontiki_idl::Severity;
use kontiki_idl::lint::LintConfig;
use serde::Deserialize;

use super::{Format, handler, plural, print_json};

/// `kontiki.toml`: only the `[lint]` table is read here.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectFile {
    #[serde(default)]
    lint: LintTable,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LintTable {
    #[serde(default)]
    enable: Vec<String>,
    #[serde(default)]
    disable: Vec<String>,
    #[serde(default)]
    severity: BTreeMap<String, String>,
}

/// The `kontiki.toml` nearest to `start` (its directory, then each parent).
pub(crate) fn find_config(start: &Path) -> Option<PathBuf> {
    let abs = std::fs::canonicalize(start).ok()?;
    abs.ancestors()
        .map(|d| d.join("kontiki.toml"))
        .find(|p| p.is_file())
}

/// Reads a lint configuration; errors are one line each.
pub(crate) fn read_config(path: &Path) -> Result<LintConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let file: ProjectFile =
        toml::from_str(&text).map_err(|e| format!("`{}`: {e}", path.display()))?;
    let mut severity = BTreeMap::new();
    for (rule, sev) in file.lint.severity {
        let s = match sev.as_str() {
            "error" => Severity::Error,
            "warning" => Severity::Warning,
            "info" => Severity::Info,
            other => {
                return Err(format!(
                    "`{}`: severity of `{rule}` is `{other}`; use `error`, `warning` or `info`",
                    path.display()
                ));
            }
        };
        severity.insert(rule, s);
    }
    let config = LintConfig {
        disable: file.lint.disable,
        enable: file.lint.enable,
        severity,
    };
    let unknown = config.unknown_rules();
    if !unknown.is_empty() {
        return Err(format!(
            "`{}`: no lint rule {}; rules are {}",
            path.display(),
            unknown
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", "),
            kontiki_idl::lint::RULES
                .iter()
                .filter_map(|c| c.lint_rule())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(config)
}

/// Lints `files`; exit 1 on any error-severity finding (or any warning with `deny_warnings`).
pub(crate) fn run(
    files: &[PathBuf],
    include: &[PathBuf],
    config: Option<&Path>,
    deny_warnings: bool,
    format: Format,
) -> ExitCode {
    let config_path = config.map(Path::to_path_buf).or_else(|| {
        let parent = files.first()?.parent()?;
        find_config(if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        })
    });
    let config = match config_path.as_deref().map(read_config).transpose() {
        Ok(c) => c.unwrap_or_default(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut json = Vec::new();
    let (mut errors, mut warnings) = (0usize, 0usize);
    for file in files {
        let found = match kontiki_idl::lint::lint_file(file, include, &config) {
            Ok(found) | Err(found) => found,
        };
        for d in found.diagnostics() {
            match d.severity {
                Severity::Error => errors += 1,
                Severity::Warning => warnings += 1,
                Severity::Info => {}
            }
        }
        if found.diagnostics().is_empty() {
            continue;
        }
        match format {
            Format::Json => json.extend(found.to_json()),
            Format::Human => eprint!("{}", found.render_with(&handler())),
        }
    }
    if format == Format::Json {
        print_json(&json);
    } else if errors + warnings == 0 {
        println!("ok: {} file{} lint-clean", files.len(), plural(files.len()));
    }
    if errors > 0 || (deny_warnings && warnings > 0) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
